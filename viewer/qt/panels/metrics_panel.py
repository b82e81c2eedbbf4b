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
from html import escape

import numpy as np
from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDockWidget,
    QFileDialog,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from viewer.core.layers import LabelLayer
from viewer.logic.evaluation import LabelPairing, compare_layers
from viewer.qt.actions import ActionSpec

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
#: the AI menu's entry
COMPARE_ACTIONS = [
    ActionSpec("ai.compare_reference", "Compare with &reference segmentation…", "choose_reference", menu="AI#compare",
               status_tip="Load a reference label map of this series and compare the AI segmentation with it"),
]


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
    """The action in the AI menu, the "Reference" dock and the two jobs (reading, comparing).

    ``tasks``: the jobs service; ``notices``: the notifier; ``actions``: the action registry; ``dock_host``: the
    main window (the dock goes there, tabbed with ``tabify_with``).
    """

    def __init__(self, session, tasks, notices, actions, dock_host, tabify_with=None):
        super().__init__(dock_host)
        self.session, self.tasks, self.notices = session, tasks, notices
        self.dock_host = dock_host
        self.reference: LabelLayer | None = None
        self.compared_layer: LabelLayer | None = None
        self._load_job: int | None = None
        self._load_for = None  # the volume a reference is being read for
        self._compare_job: int | None = None
        self.action = actions.add(COMPARE_ACTIONS, target=self)["ai.compare_reference"]
        self.panel = MetricsPanel()
        self.dock = QDockWidget("Reference", dock_host)
        self.dock.setObjectName("Reference")
        self.dock.setWidget(self.panel)
        self.dock.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetFloatable)
        dock_host.addDockWidget(Qt.RightDockWidgetArea, self.dock)
        if tabify_with is not None:
            dock_host.tabifyDockWidget(tabify_with, self.dock)
        self.dock.hide()
        self.session.volume_loaded.connect(self._reset)
        self.session.volume_cleared.connect(self._reset)
        self.session.layer_added.connect(self._on_layer_added)
        self.session.layer_removed.connect(self._on_layer_removed)

    # --- the reference ---------------------------------------------------------------------------
    def choose_reference(self) -> None:
        if self.session.volume is None:
            self.notices.error("Open a series first: a reference segmentation is compared on the open series.")
            return
        path, _ = QFileDialog.getOpenFileName(self.dock_host, "Reference segmentation", "", "Label maps (*.nii "
                                              "*.nii.gz *.nrrd *.seg.nrrd *.nhdr *.mha *.mhd);;All files (*)")
        if path:
            self.load_reference(path)

    def load_reference(self, path: str) -> int | None:
        """Read ``path`` off the GUI thread; on arrival it becomes the reference (if it fits the series' grid)."""
        from viewer.io.image_io import read_label_map

        if self.session.volume is None:
            self.notices.error("Open a series first: a reference segmentation is compared on the open series.")
            return None
        path = str(path)
        name = os.path.basename(path)

        def work(progress, cancel):  # reading and counting the labels (every voxel) stay off the GUI
            return LabelLayer(read_label_map(path), name=f"Reference: {name}", outline=True,
                              meta={"reference": True, "path": path})

        if self._load_job is not None:
            self.tasks.cancel(self._load_job, drop=True)
        self._load_job = self.tasks.submit(work, self._on_loaded, f"Reading the reference {name}…",
                                           cancellable=False, on_failed=self._on_load_failed)
        self._load_for = self.session.volume
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
            from viewer.logic.evaluation import grid_differences

            what = "; ".join(grid_differences(layer.geometry, volume.geometry)) or str(exc)
            self.notices.error(f"{name} was not used as a reference: it does not lie on this series' voxel grid "
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
            self.dock_host.resizeDocks([self.dock], [440], Qt.Horizontal)
        self.notices.info(f"Reference {name}: {len(layer.volumes_ml)} labels")
        self.compare()

    # --- comparing ------------------------------------------------------------------------------
    def ai_label_layer(self) -> LabelLayer | None:
        """The newest AI segmentation over the series."""
        layers = [layer for layer in self.session.label_layers() if layer.meta.get("ai")]
        return layers[-1] if layers else None

    def compare(self) -> int | None:
        """(Re)compute the table for the newest AI label layer against the reference, off the GUI thread."""
        if self._compare_job is not None:
            self.tasks.cancel(self._compare_job, drop=True)
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
            from radview_base.cancel import Cancelled

            def step(done, total):
                if cancel.is_set():
                    raise Cancelled()
                progress(done, total, "")
            return compare_layers(ai_layer, reference, step)

        self.panel.show_message("Comparing…", title)
        self._compare_job = self.tasks.submit(work, lambda result: self._on_compared(title, result),
                                              cancellable=False, on_failed=self._on_compare_failed)
        return self._compare_job

    @property
    def busy(self) -> bool:
        return self._load_job is not None or self._compare_job is not None

    # --- events -------------------------------------------------------------------------------------
    def _on_loaded(self, layer: LabelLayer) -> None:
        self._load_job = None
        self._accept_reference(layer)

    def _on_load_failed(self, message: str) -> None:
        self._load_job = None
        self.notices.error(f"The reference was not loaded: {message}")

    def _on_compared(self, title: str, result) -> None:
        self._compare_job = None
        pairing, rows = result
        self.panel.show_result(title, pairing, rows)
        if rows:
            mean = float(np.mean([m.dice for m in rows]))
            self.notices.info(f"Compared with the reference: mean Dice {mean:.3f} over {len(rows)} structure(s)")

    def _on_compare_failed(self, message: str) -> None:
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
                self.tasks.cancel(job, drop=True)
        self._load_job = self._compare_job = None
        self._load_for = None
        self.reference = self.compared_layer = None
        self.panel.show_message(NO_REFERENCE_TEXT)

    def shutdown(self) -> None:
        """Stop reading and comparing (the window is closing)."""
        for job in (self._load_job, self._compare_job):
            if job is not None:
                self.tasks.cancel(job, drop=True)
        self._load_job = self._compare_job = None
