"""AI → Compare with reference segmentation…: the current AI label layer against a reference label map.

The reference file is read off the GUI thread, refused (a non-modal message; the viewer goes on) unless it
lies on the open series' voxel grid, and shown as its own label layer in outlines. The comparison (Dice,
IoU, HD95, ASD, volume difference per structure; ``ai.metrics``) runs off the GUI thread too, again each
time a new AI label layer arrives; opening another series clears it. Structures are paired by name when
both layers name their labels (AI "lung_left" with reference "lung_left", whatever their ids), else by id.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from html import escape

import numpy as np
from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (QAbstractItemView, QDockWidget, QFileDialog, QHeaderView, QLabel, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

from viewer.core.layers import LabelLayer
from viewer.qt.jobs import BackgroundTasks

COLUMNS = ("Structure", "Dice", "IoU", "HD95", "ASD", "ΔV mL", "ΔV %")
COLUMN_TIPS = ("Structure (AI label paired with the reference label)", "Dice overlap, 0-1 (1 = identical)",
               "Intersection over union, 0-1", "95th percentile of the surface distances, both ways (mm)",
               "Average symmetric surface distance (mm)", "AI volume minus reference volume (mL)",
               "Volume difference relative to the reference (%)")
NOT_VALIDATION = "Agreement with this reference, not a clinical validation."
UNITS = "HD95 and ASD in mm; ΔV: AI volume minus reference volume."
NO_REFERENCE_TEXT = ("No reference loaded.\nAI → Compare with reference segmentation… loads a label map made on "
                     "this series and compares the AI segmentation with it.")
NO_AI_TEXT = "Reference loaded. Run AI (Ctrl+R): its segmentation is compared with the reference when it arrives."
_DEFAULT_NAME = re.compile(r"^label \d+$")


# --- pairing the labels (pure) -----------------------------------------------------------------------------
@dataclass(frozen=True)
class LabelPairing:
    pairs: tuple[tuple[int, int, str], ...]  # (AI id, reference id, name shown)
    by_name: bool
    ai_only: tuple[str, ...] = ()  # AI structures with no reference counterpart
    ref_only: tuple[str, ...] = ()  # reference structures with no AI counterpart


def _key(name: str) -> str:
    return name.strip().lower().replace(" ", "_").replace("-", "_")


def _real_names(names: dict[int, str], ids) -> dict[int, str]:
    return {i: names[i] for i in sorted(ids) if i > 0 and names.get(i, "").strip()
            and not _DEFAULT_NAME.match(names[i].strip())}


def pair_labels(ai_names: dict[int, str], ai_present, ref_names: dict[int, str], ref_present) -> LabelPairing:
    """By name when both sides name their labels and share a name; else by id over the labels present."""
    ai_named = _real_names(ai_names, set(ai_names) | set(ai_present))
    ref_named = _real_names(ref_names, set(ref_names) | set(ref_present))
    if {_key(n) for n in ai_named.values()} & {_key(n) for n in ref_named.values()}:
        pairs, ai_only, used = [], [], set()
        for ai_id, name in ai_named.items():
            ref_id = next((r for r, n in ref_named.items() if _key(n) == _key(name)), None)
            if ref_id is None:
                ai_only.append(name)
            else:
                pairs.append((ai_id, ref_id, name))
                used.add(ref_id)
        ai_only += [f"label {i}" for i in sorted(ai_present) if i > 0 and i not in ai_named]
        ref_only = [n for r, n in ref_named.items() if r not in used]
        return LabelPairing(tuple(pairs), True, tuple(ai_only), tuple(ref_only))
    ids = sorted(i for i in set(ai_present) | set(ref_present) if i > 0)
    return LabelPairing(tuple((i, i, ai_names.get(i) or ref_names.get(i) or f"label {i}") for i in ids), False)


def _remapped(array: np.ndarray, pairs, slab: int = 8) -> np.ndarray:
    """The AI array with each paired AI id replaced by its reference id (others 0), a few slices at a time."""
    lut = np.zeros(max(int(array.max(initial=0)), *(a for a, _, _ in pairs)) + 1, np.uint16)
    for ai_id, ref_id, _ in pairs:
        lut[ai_id] = ref_id
    out = np.empty(array.shape, np.uint16)
    for z in range(0, array.shape[0], slab):
        np.take(lut, array[z:z + slab], out=out[z:z + slab])
    return out


def compare_layers(ai_layer: LabelLayer, reference: LabelLayer, progress=None):
    """``(pairing, [LabelMetrics])`` of ``ai_layer`` against ``reference`` (both on one grid). Slow: off the GUI."""
    from ai.metrics import segmentation_metrics

    pairing = pair_labels(ai_layer.label_map.labels, ai_layer.volumes_ml, reference.label_map.labels,
                          reference.volumes_ml)
    if not pairing.pairs:
        return pairing, []
    identity = all(a == r for a, r, _ in pairing.pairs) and not pairing.by_name
    pred = ai_layer.label_map.array if identity else _remapped(ai_layer.label_map.array, pairing.pairs)
    names = {r: name for _, r, name in pairing.pairs}
    rows = segmentation_metrics(pred, reference.label_map.array, reference.geometry.spacing_zyx, names,
                                labels=sorted(names), progress=progress)
    return pairing, rows


# --- the panel ------------------------------------------------------------------------------------------------
def _text(value: float, fmt: str) -> str:
    return "—" if value is None or math.isnan(value) else format(value, fmt)


class _Item(QTableWidgetItem):
    def __init__(self, text: str, value=None):
        super().__init__(text)
        self.setData(Qt.UserRole, value)
        self.setFlags(Qt.ItemIsSelectable | Qt.ItemIsEnabled)
        if value is not None and not isinstance(value, str):
            self.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)


class MetricsPanel(QWidget):
    """What is compared with what, the per-structure table, and what was left out."""

    def __init__(self, parent=None):
        super().__init__(parent)
        box = QVBoxLayout(self)
        box.setContentsMargins(4, 4, 4, 4)
        self.title_label = QLabel()
        self.title_label.setWordWrap(True)
        self.title_label.setTextFormat(Qt.RichText)
        box.addWidget(self.title_label)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        for c, tip in enumerate(COLUMN_TIPS):
            self.table.horizontalHeaderItem(c).setToolTip(tip)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setAlternatingRowColors(True)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        box.addWidget(self.table, 1)
        self.notes_label = QLabel()
        self.notes_label.setWordWrap(True)
        self.notes_label.setStyleSheet("color: #888;")
        box.addWidget(self.notes_label)
        self.message_label = QLabel()
        self.message_label.setWordWrap(True)
        self.message_label.setAlignment(Qt.AlignTop | Qt.AlignLeft)
        self.message_label.setStyleSheet("color: #888;")
        box.addWidget(self.message_label, 1)
        self.rows: list = []
        self.show_message(NO_REFERENCE_TEXT)

    def show_message(self, text: str, title: str = "") -> None:
        self.rows = []
        self.table.setRowCount(0)
        self.table.hide()
        self.notes_label.hide()
        self.title_label.setText(title)
        self.title_label.setVisible(bool(title))
        self.message_label.setText(text)
        self.message_label.show()

    def show_result(self, title: str, pairing: LabelPairing, rows: list) -> None:
        self.rows = list(rows)
        by = "paired by name" if pairing.by_name else "paired by label id"
        self.title_label.setText(f"{title}<br><span style='color:#888'>{by}</span>")
        self.title_label.show()
        ids = {r: a for a, r, _ in pairing.pairs}
        self.table.setRowCount(len(rows))
        for i, m in enumerate(rows):
            values = [_Item(m.name, m.name), _Item(_text(m.dice, ".3f"), m.dice), _Item(_text(m.iou, ".3f"), m.iou),
                      _Item(_text(m.hd95_mm, ".1f"), m.hd95_mm), _Item(_text(m.asd_mm, ".2f"), m.asd_mm),
                      _Item(_text(m.volume_diff_ml, "+.1f"), m.volume_diff_ml),
                      _Item(_text(m.volume_diff_pct, "+.1f"), m.volume_diff_pct)]
            tip = (f"AI label {ids.get(m.label, m.label)} vs reference label {m.label}\n"
                   f"volume: AI {m.volume_pred_ml:.2f} mL, reference {m.volume_ref_ml:.2f} mL\n"
                   f"voxels: {m.tp_voxels} both, {m.fp_voxels} AI only, {m.fn_voxels} reference only"
                   + (f"\n{m.note}" if m.note else ""))
            for c, item in enumerate(values):
                item.setToolTip(tip)
                self.table.setItem(i, c, item)
        self.table.show()
        notes = []
        if pairing.ref_only:
            notes.append("Not compared (no AI label of that name): " + ", ".join(pairing.ref_only) + ".")
        if pairing.ai_only:
            notes.append("Not in the reference: " + ", ".join(pairing.ai_only) + ".")
        if not rows:
            notes.append("No structure to compare.")
        notes += [UNITS, NOT_VALIDATION]
        self.notes_label.setText("\n".join(notes))
        self.notes_label.show()
        self.message_label.hide()

    def cell_value(self, row: int, column: int):
        item = self.table.item(row, column)
        return None if item is None else item.data(Qt.UserRole)


# --- the controller --------------------------------------------------------------------------------------------
class ReferenceComparison(QObject):
    """The action in the AI menu, the "Reference" dock and the two background jobs (reading, comparing)."""

    def __init__(self, window):
        super().__init__(window)
        self.window = window
        self.session = window.session
        self.reference: LabelLayer | None = None
        self.compared_layer: LabelLayer | None = None
        self._load_job: int | None = None
        self._load_for = None  # the volume a reference is being read for
        self._compare_job: int | None = None
        self._compare_title = ""
        self.tasks = BackgroundTasks(self)
        self.tasks.finished.connect(self._on_finished)
        self.tasks.failed.connect(self._on_failed)
        self.action = QAction("Compare with &reference segmentation…", window)
        self.action.setStatusTip("Load a reference label map of this series and compare the AI segmentation with it")
        self.action.triggered.connect(self.choose_reference)
        window.ai.menu.addSeparator()
        window.ai.menu.addAction(self.action)
        self.panel = MetricsPanel()
        self.dock = QDockWidget("Reference", window)
        self.dock.setObjectName("Reference")
        self.dock.setWidget(self.panel)
        self.dock.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetFloatable)
        window.addDockWidget(Qt.RightDockWidgetArea, self.dock)
        window.tabifyDockWidget(window.ai.findings_dock, self.dock)
        self.dock.hide()
        self.session.volume_loaded.connect(self._reset)
        self.session.volume_cleared.connect(self._reset)
        self.session.layer_added.connect(self._on_layer_added)
        self.session.layer_removed.connect(self._on_layer_removed)

    # --- the reference ---------------------------------------------------------------------------
    def choose_reference(self) -> None:
        if self.session.volume is None:
            self.window._report("Open a series first: a reference segmentation is compared on the open series.")
            return
        path, _ = QFileDialog.getOpenFileName(self.window, "Reference segmentation", "", "Label maps (*.nii *.nii.gz "
                                              "*.nrrd *.seg.nrrd *.nhdr *.mha *.mhd);;All files (*)")
        if path:
            self.load_reference(path)

    def load_reference(self, path: str) -> int | None:
        """Read ``path`` off the GUI thread; on arrival it becomes the reference (if it fits the series' grid)."""
        from viewer.io.image_io import read_label_map

        if self.session.volume is None:
            self.window._report("Open a series first: a reference segmentation is compared on the open series.")
            return None
        path = str(path)
        name = os.path.basename(path)

        def work(progress, cancel):  # reading and counting the labels (every voxel) stay off the GUI
            return LabelLayer(read_label_map(path), name=f"Reference: {name}", outline=True,
                              meta={"reference": True, "path": path})

        if self._load_job is not None:
            self.tasks.cancel(self._load_job)
        self._load_job = self.tasks.submit(work)
        self._load_for = self.session.volume
        self.window.status_label.setText(f"Reading the reference {name}…")
        return self._load_job

    def _accept_reference(self, layer: LabelLayer) -> None:
        from radview_base.geometry import GeometryMismatchError, require_same_grid

        volume = self.session.volume
        name = os.path.basename(layer.meta["path"])
        if volume is None or volume is not self._load_for:
            return  # another series was opened meanwhile
        try:
            require_same_grid(volume.geometry, layer.geometry, what=f"the reference {name}")
        except GeometryMismatchError as exc:
            from viewer.cli.ai_eval import grid_differences

            what = "; ".join(grid_differences(layer.geometry, volume.geometry)) or str(exc)
            self.window._report(f"{name} was not used as a reference: it does not lie on this series' voxel grid "
                                f"({what}, reference vs series). Use a label map made on this series.")
            return
        old, self.reference = self.reference, None
        if old is not None:
            self.session.remove_layer(old)
        self.session.add_layer(layer)
        self.reference = layer
        self.dock.show()
        self.dock.raise_()
        if self.dock.width() < 440:  # room for the table's columns (the user may resize)
            self.window.resizeDocks([self.dock], [440], Qt.Horizontal)
        self.window.status_label.setText(f"Reference {name}: {len(layer.volumes_ml)} labels")
        self.compare()

    # --- comparing ------------------------------------------------------------------------------
    def ai_label_layer(self) -> LabelLayer | None:
        """The newest AI segmentation over the series."""
        layers = [layer for layer in self.session.label_layers() if layer.meta.get("ai")]
        return layers[-1] if layers else None

    def compare(self) -> int | None:
        """(Re)compute the table for the newest AI label layer against the reference, off the GUI thread."""
        if self._compare_job is not None:
            self.tasks.cancel(self._compare_job)
            self._compare_job = None
        ai_layer, reference = self.ai_label_layer(), self.reference
        self.compared_layer = ai_layer
        if reference is None:
            self.panel.show_message(NO_REFERENCE_TEXT)
            return None
        title = f"<b>{escape(ai_layer.name if ai_layer else 'AI')}</b> vs <b>{escape(reference.name)}</b>"
        if ai_layer is None:
            self.panel.show_message(NO_AI_TEXT, title)
            return None

        def work(progress, cancel):
            from viewer.io.dicom_index import Cancelled

            def step(done, total):
                if cancel.is_set():
                    raise Cancelled()
                progress(done, total, "")
            return compare_layers(ai_layer, reference, step)

        self.panel.show_message("Comparing…", title)
        self._compare_job = self.tasks.submit(work)
        self._compare_title = title
        return self._compare_job

    @property
    def busy(self) -> bool:
        return self._load_job is not None or self._compare_job is not None

    # --- events -------------------------------------------------------------------------------------
    def _on_finished(self, job: int, result) -> None:
        if job == self._load_job:
            self._load_job = None
            self._accept_reference(result)
        elif job == self._compare_job:
            self._compare_job = None
            pairing, rows = result
            self.panel.show_result(self._compare_title, pairing, rows)
            if rows:
                mean = float(np.mean([m.dice for m in rows]))
                self.window.status_label.setText(f"Compared with the reference: mean Dice {mean:.3f} over "
                                                 f"{len(rows)} structure(s)")

    def _on_failed(self, job: int, message: str) -> None:
        if job == self._load_job:
            self._load_job = None
            self.window._report(f"The reference was not loaded: {message}")
        elif job == self._compare_job:
            self._compare_job = None
            self.panel.show_message(f"The comparison failed: {message}")

    def _on_layer_added(self, layer) -> None:
        if isinstance(layer, LabelLayer) and layer.meta.get("ai") and self.reference is not None:
            self.compare()

    def _on_layer_removed(self, layer) -> None:
        if layer is self.reference:
            self.reference = None
            self.compare()
        elif layer is self.compared_layer and self.reference is not None:
            self.compare()

    def _reset(self, *_args) -> None:
        """Another series (or none): drop the reference, the table and any job in flight."""
        for job in (self._load_job, self._compare_job):
            if job is not None:
                self.tasks.cancel(job)
        self._load_job = self._compare_job = None
        self._load_for = None
        self.reference = self.compared_layer = None
        self.panel.show_message(NO_REFERENCE_TEXT)

    def shutdown(self) -> None:
        self.tasks.shutdown()
