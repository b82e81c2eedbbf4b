"""The findings panel: the detections of the AI results shown over the series, with their provenance.

It follows the session: every marker layer that carries detections (``layer.meta["detections"]``)
is listed; layers that go (another series opened) take their rows with them. Clicking or
activating a row moves the linked cursor to the finding's centre, so every view jumps there.
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
EMPTY_TEXT = "No AI findings.\nAI → Run AI… (Ctrl+R) runs a model on the open series."
NO_DETECTIONS_TEXT = "The AI result has no findings to list (a segmentation only: see Overlays)."


def location_text(location: str) -> str:
    """``"lung_left"`` → ``"left lung"``."""
    parts = [p for p in str(location or "").replace("-", "_").split("_") if p]
    if len(parts) >= 2 and parts[-1].lower() in ("left", "right"):
        parts = [parts[-1], *parts[:-1]]
    return " ".join(parts) or "—"


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
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        for c, tip in enumerate(COLUMN_TIPS):
            self.table.horizontalHeaderItem(c).setToolTip(tip)
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.horizontalHeader().setSortIndicator(0, Qt.AscendingOrder)
        self.table.setSortingEnabled(True)
        self._filling = False
        self.table.setToolTip("Click a finding to move the cursor (and every view) to its centre")
        self.table.cellClicked.connect(lambda row, _col: self.jump_to_row(row))
        self.table.cellActivated.connect(lambda row, _col: self.jump_to_row(row))
        self.table.currentCellChanged.connect(lambda row, _c, prev, _p: row != prev and not self._filling
                                              and self.jump_to_row(row))
        box.addWidget(self.table, 1)
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
        self._filling = True
        self.table.setSortingEnabled(False)
        self.table.clearContents()
        self.table.setRowCount(len(rows))
        for r, (n, det) in enumerate(rows):
            values = [
                _Item(f"N{n}", n),
                _Item(det.kind or "—"),
                _Item(f"{det.diameter_mm:.1f}", float(det.diameter_mm)),
                _Item(f"{det.volume_ml:.2f}", float(det.volume_ml)),
                _Item(f"{det.mean_hu:.0f}", float(det.mean_hu)),
                _Item(f"{det.score:.2f}", float(det.score)),
                _Item(location_text(det.location)),
            ]
            values[0].setData(Qt.UserRole + 1, tuple(det.center_lps))
            for c, item in enumerate(values):
                self.table.setItem(r, c, item)
        self.table.setSortingEnabled(True)
        self.table.setCurrentCell(-1, -1)
        self._filling = False
        self.table.setVisible(bool(rows))
        self.empty_label.setText(NO_DETECTIONS_TEXT if provenances else EMPTY_TEXT)
        self.empty_label.setVisible(not rows)

    # --- the one logic call -------------------------------------------------------------------------
    def centre_of_row(self, row: int):
        item = self.table.item(row, 0)
        return None if item is None else np.asarray(item.data(Qt.UserRole + 1), dtype=float)

    def jump_to_row(self, row: int) -> None:
        """Move the linked cursor to the finding in ``row`` (as displayed, after sorting)."""
        centre = self.centre_of_row(row)
        if centre is not None and self.session.volume is not None:
            self.session.move_cursor(centre)

    def row_count(self) -> int:
        return self.table.rowCount()
