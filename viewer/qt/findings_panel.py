"""The findings panel: the detections of the AI results shown over the series, with their provenance.

It follows the session: every marker layer that carries detections (``layer.meta["detections"]``)
is listed, and below them the measured structures of the AI label layers (``layer.meta["structures"]``,
``ai.api.StructureFeatures``: volume, diameters, sphericity, HU); layers that go (another series
opened) take their rows with them. Clicking or activating a row moves the linked cursor to the
finding's centre or the structure's centroid, so every view jumps there.
"""
from __future__ import annotations

from html import escape

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QLabel, QTableWidget, QTableWidgetItem, QVBoxLayout, \
    QWidget

from viewer.core.ai_bridge import NOT_REVIEWED, method_in_plain_words, provenance_text
from viewer.core.session import Session

COLUMNS = ("#", "Type", "Ø mm", "mL", "HU", "Score", "Location")
COLUMN_TIPS = ("Finding number", "Solid or subsolid", "Diameter (mm)", "Volume (mL)", "Mean density (HU)",
               "The model's score, 0-1 (higher = more likely); not a probability of disease", "Where it lies")
STRUCTURE_COLUMNS = ("Structure", "mL", "axial\nØ mm", "3D\nØ mm", "spher-\nicity", "mean\nHU", "SD\nHU")
STRUCTURE_TIPS = ("The segmented structure (#n: its n-th connected piece, largest first)", "Volume (mL)",
                  "Longest diameter within one axial (transverse) plane, between voxel centres (mm)",
                  "Longest diameter in 3D (Feret diameter), between voxel centres (mm)",
                  "Sphericity: 1 for a ball, smaller for flatter or longer shapes (reads high below ~10 voxels "
                  "across)", "Mean density (HU)", "Standard deviation of the density (HU)")
EMPTY_TEXT = "No AI findings.\nAI → Run AI… (Ctrl+R) runs a model on the open series."
NO_DETECTIONS_TEXT = "The AI result has no findings to list (a segmentation only: see Overlays)."
#: a detection's ``features`` keys shown in its row's tooltip, in this order: (key, words, format)
FEATURE_WORDS = (("axial_diameter_mm", "axial Ø", "{:.1f} mm"), ("diameter_3d_mm", "3D Ø", "{:.1f} mm"),
                 ("sphericity", "sphericity", "{:.2f}"), ("sd_hu", "SD", "{:.0f} HU"))


def location_text(location: str) -> str:
    """``"lung_left"`` → ``"left lung"``."""
    parts = [p for p in str(location or "").replace("-", "_").split("_") if p]
    if len(parts) >= 2 and parts[-1].lower() in ("left", "right"):
        parts = [parts[-1], *parts[:-1]]
    return " ".join(parts) or "—"


def _number(value, fmt: str = "{:.1f}") -> str:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return "—"
    return "—" if not np.isfinite(value) else fmt.format(value)


def _length(value) -> str:
    """Millimetres: one decimal below 100 mm (nodules), whole mm above (organs), to keep the columns narrow."""
    try:
        big = abs(float(value)) >= 100
    except (TypeError, ValueError):
        big = False
    return _number(value, "{:.0f}" if big else "{:.1f}")


def _key(value) -> float:
    """A sort key: NaN (not measured) sorts first, like the smallest number."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return float("-inf")
    return value if np.isfinite(value) else float("-inf")


def volume_text(ml: float) -> str:
    """``0.52``, ``12.6``, ``1975``: about three significant digits."""
    if not np.isfinite(ml):
        return "—"
    return f"{ml:.0f}" if abs(ml) >= 100 else f"{ml:.1f}" if abs(ml) >= 10 else f"{ml:.2f}"


def structure_name(feature) -> str:
    """``"lung_left"`` → ``"left lung"``; a connected component gets its number: ``"nodule #2"``."""
    name = location_text(feature.name) if feature.name else f"label {feature.label}"
    return f"{name} #{feature.component}" if feature.component else name


def structure_tip(feature) -> str:
    c = ", ".join(f"{v:.1f}" for v in feature.centroid_lps)
    return (f"{structure_name(feature)} (label {feature.label}): {feature.voxels} voxels, "
            f"{_number(feature.volume_ml, '{:.2f}')} mL\n"
            f"HU {_number(feature.mean_hu, '{:.0f}')} ± {_number(feature.sd_hu, '{:.0f}')}, "
            f"from {_number(feature.min_hu, '{:.0f}')} to {_number(feature.max_hu, '{:.0f}')}\n"
            f"centroid ({c}) mm LPS\nClick to move the cursor there")


def features_text(features) -> str:
    """A detection's measured features in words, one per line (known keys first, then the rest)."""
    features = dict(features or {})
    lines = [f"{words} {_number(features.pop(key), fmt)}" for key, words, fmt in FEATURE_WORDS if key in features]
    for key, value in sorted(features.items(), key=lambda kv: str(kv[0])):
        lines.append(f"{str(key).replace('_', ' ')}: {value:g}" if isinstance(value, (int, float))
                     else f"{str(key).replace('_', ' ')}: {value}")
    return "\n".join(lines)


class _Item(QTableWidgetItem):
    """Sorts by its number (``Qt.UserRole``) where it has one, else by text."""

    def __init__(self, text: str, key=None):
        super().__init__(text)
        self.setData(Qt.UserRole, key if key is not None else text)
        self.setFlags(Qt.ItemIsSelectable | Qt.ItemIsEnabled)
        if isinstance(key, (int, float)):
            self.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)

    def __lt__(self, other):
        a, b = self.data(Qt.UserRole), other.data(Qt.UserRole)
        try:
            return a < b
        except TypeError:
            return str(a) < str(b)


def _table(columns, tips, tip: str) -> QTableWidget:
    table = QTableWidget(0, len(columns))
    table.setHorizontalHeaderLabels(columns)
    for c, text in enumerate(tips):
        table.horizontalHeaderItem(c).setToolTip(text)
    table.verticalHeader().hide()
    table.verticalHeader().setDefaultSectionSize(table.fontMetrics().height() + 8)  # compact rows: more of them show
    table.setSelectionBehavior(QAbstractItemView.SelectRows)
    table.setSelectionMode(QAbstractItemView.SingleSelection)
    table.setEditTriggers(QAbstractItemView.NoEditTriggers)
    table.setAlternatingRowColors(True)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
    table.horizontalHeader().setMinimumSectionSize(24)
    table.horizontalHeader().setStretchLastSection(True)
    table.horizontalHeader().setSortIndicator(0, Qt.AscendingOrder)
    table.setSortingEnabled(True)
    table.setToolTip(tip)
    table.setStyleSheet("QHeaderView::section { padding: 1px 3px; } QTableWidget::item { padding: 0px 2px; }")
    return table


def _section_label(text: str) -> QLabel:
    label = QLabel(text)
    label.setStyleSheet("font-weight: bold;")
    return label


class FindingsPanel(QWidget):
    def __init__(self, session: Session, parent=None):
        super().__init__(parent)
        self.session = session
        box = QVBoxLayout(self)
        box.setContentsMargins(4, 4, 4, 4)
        self.provenance_label = QLabel()
        self.provenance_label.setWordWrap(True)
        self.provenance_label.setTextFormat(Qt.RichText)
        box.addWidget(self.provenance_label)
        self.review_label = QLabel(NOT_REVIEWED)
        self.review_label.setStyleSheet("color: #e0a000; font-weight: bold;")
        self.review_label.setWordWrap(True)
        box.addWidget(self.review_label)
        self._filling = False
        self.findings_label = _section_label("Findings")
        box.addWidget(self.findings_label)
        self.table = _table(COLUMNS, COLUMN_TIPS, "Click a finding to move the cursor (and every view) to its centre")
        box.addWidget(self.table, 1)
        self.structures_label = _section_label("Structures")
        box.addWidget(self.structures_label)
        self.structure_table = _table(STRUCTURE_COLUMNS, STRUCTURE_TIPS,
                                      "Click a structure to move the cursor (and every view) to its centroid")
        box.addWidget(self.structure_table, 1)
        for table, jump in ((self.table, self.jump_to_row), (self.structure_table, self.jump_to_structure)):
            table.cellClicked.connect(lambda row, _col, jump=jump: jump(row))
            table.cellActivated.connect(lambda row, _col, jump=jump: jump(row))
            table.currentCellChanged.connect(lambda row, _c, prev, _p, jump=jump: row != prev and not self._filling
                                             and jump(row))
        self.empty_label = QLabel(EMPTY_TEXT)
        self.empty_label.setWordWrap(True)
        self.empty_label.setAlignment(Qt.AlignTop | Qt.AlignLeft)
        self.empty_label.setStyleSheet("color: #888;")
        box.addWidget(self.empty_label, 1)
        session.layer_added.connect(self._on_layers_changed)
        session.layer_removed.connect(self._on_layers_changed)
        self.refresh()

    # --- contents -------------------------------------------------------------------------------
    def ai_layers(self) -> list:
        return [layer for layer in self.session.layers if getattr(layer, "meta", {}).get("provenance") is not None]

    def detections(self) -> list:
        """``(number, detection)`` of every AI marker layer, in the order the layers were added."""
        out = []
        for layer in self.ai_layers():
            for n, det in enumerate(layer.meta.get("detections", ()), start=1):
                out.append((n, det))
        return out

    def structures(self) -> list:
        """The ``StructureFeatures`` of every AI layer, in the order the layers were added."""
        return [f for layer in self.ai_layers() for f in layer.meta.get("structures", ())]

    def _on_layers_changed(self, _layer=None) -> None:
        self.refresh()

    def refresh(self) -> None:
        layers = self.ai_layers()
        provenances = []
        for layer in layers:
            prov = layer.meta["provenance"]
            if not any(prov is p for p in provenances):
                provenances.append(prov)
        self.provenance_label.setText("<br>".join(
            f"<b>{escape(p.model_name)}</b> {escape(p.model_version)} · {escape(p.device)} · {p.run_time_s:.1f} s"
            f"<br><span style='color:#888'>{escape(method_in_plain_words(p.method))}</span>" for p in provenances))
        self.provenance_label.setToolTip("\n\n".join(provenance_text(p) for p in provenances))
        self.provenance_label.setVisible(bool(provenances))
        self.review_label.setVisible(bool(provenances))

        rows = self.detections()
        structures = self.structures()
        self._filling = True
        self._fill(self.table, [self._detection_row(n, det) for n, det in rows])
        self._fill(self.structure_table, [self._structure_row(f) for f in structures])
        self._filling = False
        self.table.setVisible(bool(rows))
        self.findings_label.setVisible(bool(rows) and bool(structures))
        self.structure_table.setVisible(bool(structures))
        self.structures_label.setVisible(bool(structures))
        self.empty_label.setText(NO_DETECTIONS_TEXT if provenances else EMPTY_TEXT)
        self.empty_label.setVisible(not rows and not structures)

    @staticmethod
    def _fill(table: QTableWidget, rows: list) -> None:
        table.setSortingEnabled(False)
        table.clearContents()
        table.setRowCount(len(rows))
        for r, (items, centre, tip) in enumerate(rows):
            items[0].setData(Qt.UserRole + 1, tuple(centre))
            for c, item in enumerate(items):
                if tip:
                    item.setToolTip(tip)
                table.setItem(r, c, item)
        table.setSortingEnabled(True)
        table.setCurrentCell(-1, -1)

    @staticmethod
    def _detection_row(n: int, det):
        items = [
            _Item(f"N{n}", n),
            _Item(det.kind or "—"),
            _Item(f"{det.diameter_mm:.1f}", float(det.diameter_mm)),
            _Item(f"{det.volume_ml:.2f}", float(det.volume_ml)),
            _Item(f"{det.mean_hu:.0f}", float(det.mean_hu)),
            _Item(f"{det.score:.2f}", float(det.score)),
            _Item(location_text(det.location)),
        ]
        return items, det.center_lps, features_text(det.features)

    @staticmethod
    def _structure_row(f):
        items = [
            _Item(structure_name(f), (f.label, f.component)),
            _Item(volume_text(f.volume_ml), _key(f.volume_ml)),
            _Item(_length(f.axial_diameter_mm), _key(f.axial_diameter_mm)),
            _Item(_length(f.diameter_3d_mm), _key(f.diameter_3d_mm)),
            _Item(_number(f.sphericity, "{:.2f}"), _key(f.sphericity)),
            _Item(_number(f.mean_hu, "{:.0f}"), _key(f.mean_hu)),
            _Item(_number(f.sd_hu, "{:.0f}"), _key(f.sd_hu)),
        ]
        return items, f.centroid_lps, structure_tip(f)

    # --- the one logic call -------------------------------------------------------------------------
    @staticmethod
    def _point_of(table: QTableWidget, row: int):
        item = table.item(row, 0)
        return None if item is None else np.asarray(item.data(Qt.UserRole + 1), dtype=float)

    def centre_of_row(self, row: int):
        return self._point_of(self.table, row)

    def centroid_of_structure(self, row: int):
        return self._point_of(self.structure_table, row)

    def jump_to_row(self, row: int) -> None:
        """Move the linked cursor to the finding in ``row`` (as displayed, after sorting)."""
        centre = self.centre_of_row(row)
        if centre is not None and self.session.volume is not None:
            self.session.move_cursor(centre)

    def jump_to_structure(self, row: int) -> None:
        """Move the linked cursor to the centroid of the structure in ``row`` (as displayed, after sorting)."""
        centroid = self.centroid_of_structure(row)
        if centroid is not None and self.session.volume is not None:
            self.session.move_cursor(centroid)

    def row_count(self) -> int:
        return self.table.rowCount()

    def structure_count(self) -> int:
        return self.structure_table.rowCount()
