"""The findings panel: the detections of the AI results shown over the series, with their provenance.

It follows the session: every marker layer that carries detections (``layer.meta["detections"]``)
is listed, and below them the measured structures of the AI label layers (``layer.meta["structures"]``,
``ai.api.StructureFeatures``: volume, diameters, sphericity, HU); layers that go (another series
opened) take their rows with them. Clicking or activating a row moves the linked cursor to the
finding's centre or the structure's centroid, so every view jumps there.

Review (:mod:`viewer.core.review`): each finding can be accepted (Y), rejected (N) or put back to
"not reviewed" (U), and each result as a whole (its label map) accepted (Shift+Y) or rejected
(Shift+N), with the buttons above the table, the table's context menu, or those keys while the panel
has the focus. The Review column shows ✓ accepted / ✗ rejected / not reviewed; each result's header
reads "AI result, not reviewed — not a diagnosis" until the result is accepted and every finding of it
decided, then "reviewed by <user> at <time> — not a diagnosis". Decisions are stored in the study's
annotation file (autosaved) and undone with Ctrl+Z / Ctrl+Y like the measurements.

A classification model's answer (``session.classifications``) is a result without layers: its table of class
probabilities (:mod:`viewer.qt.panels.classification_table`) shows under "Classification", and it is reviewed as a
whole, like a label map (Accept result / Reject result).
"""
from __future__ import annotations

from html import escape

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from viewer.core import review
from viewer.core.ai_bridge import NOT_REVIEWED, method_in_plain_words, provenance_text
from viewer.core.session import Session
from viewer.qt.panels.classification_table import ClassificationSection

COLUMNS = ("#", "Type", "Ø mm", "mL", "HU", "Score", "Location", "Review")
COLUMN_TIPS = ("Finding number", "Solid or subsolid", "Diameter (mm)", "Volume (mL)", "Mean density (HU)",
               "The model's score, 0-1 (higher = more likely); not a probability of disease", "Where it lies",
               "Your decision: ✓ accepted (Y), ✗ rejected (N) or not reviewed (U)")
REVIEW_COLUMN = COLUMNS.index("Review")
#: the review keys (active while the findings panel has the focus): action → (key, words)
REVIEW_KEYS = {"accept": ("Y", "Accept the selected finding"), "reject": ("N", "Reject the selected finding"),
               "clear": ("U", "Put the selected finding back to not reviewed"),
               "accept_result": ("Shift+Y", "Accept the AI result as a whole (its label map)"),
               "reject_result": ("Shift+N", "Reject the AI result as a whole (its label map)")}
HEADER_COLORS = {"not reviewed": "#e0a000", "in review": "#e0a000", "reviewed": "#3cb371", "rejected": "#999999"}
REJECTED_TEXT = QColor(140, 140, 140)
ACCEPTED_TEXT = QColor(60, 179, 113)
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
        self.user = None  # who decides (None: the OS account name); tests may set it
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
        self.result_state_label = QLabel()
        self.result_state_label.setWordWrap(True)
        self.result_state_label.setStyleSheet("color: #aaa;")
        box.addWidget(self.result_state_label)
        self._build_review_bar(box)
        self._filling = False
        self.findings_label = _section_label("Findings")
        box.addWidget(self.findings_label)
        self.table = _table(COLUMNS, COLUMN_TIPS, "Click a finding to move the cursor (and every view) to its centre; "
                            "Y accept, N reject, U not reviewed (right-click: more)")
        self.table.setContextMenuPolicy(Qt.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._context_menu)
        rows_shown = 3  # a review needs a few rows in view, however crowded the dock
        self.table.setMinimumHeight(self.table.horizontalHeader().sizeHint().height()
                                    + rows_shown * self.table.verticalHeader().defaultSectionSize() + 6)
        box.addWidget(self.table, 3)
        self.structures_label = _section_label("Structures")
        box.addWidget(self.structures_label)
        self.structure_table = _table(STRUCTURE_COLUMNS, STRUCTURE_TIPS,
                                      "Click a structure to move the cursor (and every view) to its centroid")
        box.addWidget(self.structure_table, 2)
        self.classification_label = _section_label("Classification")
        box.addWidget(self.classification_label)
        self.classifications = ClassificationSection(self, context_menu=self._classification_menu)
        box.addWidget(self.classifications, 2)
        for table, jump in ((self.table, self.jump_to_row), (self.structure_table, self.jump_to_structure)):
            table.cellClicked.connect(lambda row, _col, jump=jump: jump(row))
            table.cellActivated.connect(lambda row, _col, jump=jump: jump(row))
            table.currentCellChanged.connect(lambda row, _c, prev, _p, jump=jump: row != prev and not self._filling
                                             and jump(row))
        self.table.currentCellChanged.connect(lambda *_: self._on_current_finding())
        self.empty_label = QLabel(EMPTY_TEXT)
        self.empty_label.setWordWrap(True)
        self.empty_label.setAlignment(Qt.AlignTop | Qt.AlignLeft)
        self.empty_label.setStyleSheet("color: #888;")
        box.addWidget(self.empty_label, 1)
        session.layer_added.connect(self._on_layers_changed)
        session.layer_removed.connect(self._on_layers_changed)
        session.classification_added.connect(self._on_classifications_changed)
        session.classification_removed.connect(self._on_classifications_changed)
        session.labels_edited.connect(lambda _layer, finished: finished and self.refresh())
        session.annotations.reviews_changed.connect(self._on_layers_changed)
        session.annotations.annotations_reset.connect(self._on_layers_changed)
        self.refresh()

    def _build_review_bar(self, box) -> None:
        """Two rows: the selected finding (Accept, Reject, Not reviewed), and a result as a whole (which one,
        Accept result, Reject result); the keys work while the panel has the focus."""
        self.review_bar = QWidget()
        rows = QVBoxLayout(self.review_bar)
        rows.setContentsMargins(0, 0, 0, 0)
        rows.setSpacing(2)
        finding_row, result_row = QHBoxLayout(), QHBoxLayout()
        for row, title in ((finding_row, "Finding"), (result_row, "Result")):
            row.setSpacing(3)
            label = QLabel(title)
            label.setMinimumWidth(label.fontMetrics().horizontalAdvance("Finding") + 6)
            row.addWidget(label)
            rows.addLayout(row)
        self.result_box = QComboBox()
        self.result_box.setToolTip("The AI result that Accept result / Reject result decide on (selecting a finding "
                                   "selects its result)")
        self.result_box.setFocusPolicy(Qt.NoFocus)
        self.result_box.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.result_box.setMinimumContentsLength(10)
        self.result_box.currentIndexChanged.connect(lambda _i: not self._filling and
                                                    (self._sync_buttons(), self._show_result_state()))
        result_row.addWidget(self.result_box, 1)
        self.buttons: dict[str, QPushButton] = {}
        self.shortcuts: dict[str, QShortcut] = {}
        specs = (("accept", "✓ Accept", lambda: self.decide_current(review.ACCEPTED), finding_row),
                 ("reject", "✗ Reject", lambda: self.decide_current(review.REJECTED), finding_row),
                 ("clear", "Not reviewed", lambda: self.decide_current(None), finding_row),
                 ("accept_result", "✓ Accept result", lambda: self.decide_result(review.ACCEPTED), result_row),
                 ("reject_result", "✗ Reject result", lambda: self.decide_result(review.REJECTED), result_row))
        for name, text, slot, row in specs:
            key, words = REVIEW_KEYS[name]
            button = QPushButton(text)
            button.setToolTip(f"{words} ({key}); Ctrl+Z undoes")
            button.setFocusPolicy(Qt.NoFocus)  # the table keeps the focus (and the keys)
            button.clicked.connect(slot)
            row.addWidget(button)
            self.buttons[name] = button
            shortcut = QShortcut(QKeySequence(key), self)
            shortcut.setContext(Qt.WidgetWithChildrenShortcut)
            shortcut.activated.connect(slot)
            self.shortcuts[name] = shortcut
        finding_row.addStretch(1)
        box.addWidget(self.review_bar)

    # --- contents -------------------------------------------------------------------------------
    def ai_layers(self) -> list:
        return [layer for layer in self.session.layers if getattr(layer, "meta", {}).get("provenance") is not None]

    def results(self) -> list:
        """The AI results shown (``review.AiResult``), in the order their layers were added."""
        return review.ai_results(self.session)

    def detections(self) -> list:
        """``(number, detection)`` of every AI marker layer, in the order the layers were added."""
        return [(i + 1, det) for r in self.results() for i, det in enumerate(r.detections)]

    def structures(self) -> list:
        """The ``StructureFeatures`` of every AI layer, in the order the layers were added."""
        return [f for layer in self.ai_layers() for f in layer.meta.get("structures", ())]

    def _on_layers_changed(self, _layer=None) -> None:
        self.refresh()

    def _on_classifications_changed(self, _classified=None) -> None:
        self.refresh()

    def classification_views(self) -> list:
        """The classification tables shown (``ClassificationView``), one per classification result."""
        return list(self.classifications.views)

    def header_texts(self) -> list[str]:
        """Each result's review line, e.g. "AI result, not reviewed — not a diagnosis"."""
        table = self.session.annotations.review
        return [review.result_status(table, r).header for r in self.results()]

    def refresh(self) -> None:
        results = self.results()
        table = self.session.annotations.review
        review.sync_layer_meta(table, results)
        provenances = [r.provenance for r in results]
        self.provenance_label.setText("<br>".join(
            f"<b>{escape(p.model_name)}</b> {escape(p.model_version)} · {escape(p.device)} · {p.run_time_s:.1f} s"
            f"<br><span style='color:#888'>{escape(method_in_plain_words(p.method))}</span>" for p in provenances))
        self.provenance_label.setToolTip("\n\n".join(provenance_text(p) for p in provenances))
        self.provenance_label.setVisible(bool(provenances))
        statuses = [review.result_status(table, r) for r in results]
        if len(results) == 1:
            text = statuses[0].header
        else:
            text = "\n".join(f"{r.name}: {st.header}" for r, st in zip(results, statuses))
        self.review_label.setText(text or NOT_REVIEWED)
        worst = next((s for s in ("not reviewed", "in review", "rejected", "reviewed") if any(st.state == s
                                                                                              for st in statuses)),
                     "not reviewed")
        self.review_label.setStyleSheet(f"color: {HEADER_COLORS[worst]}; font-weight: bold;")
        self.review_label.setVisible(bool(provenances))

        current = self.current_key()
        rows = [(r, i) for r in results for i in range(len(r.detections))]
        structures = self.structures()
        self._filling = True
        self._fill(self.table, [self._detection_row(r, i, table) for r, i in rows])
        self._fill(self.structure_table, [self._structure_row(f) for f in structures])
        if current is not None:
            for row in range(self.table.rowCount()):
                if self._row_key(row) == current:
                    self.table.setCurrentCell(row, 0)
                    break
        self._filling = False
        self.table.setVisible(bool(rows))
        self.findings_label.setVisible(bool(rows) and bool(structures))
        self.structure_table.setVisible(bool(structures))
        edited = any(r.edited for r in results if r.label_layer is not None and r.label_layer.meta.get("structures"))
        self.structures_label.setText("Structures (as the model found them, before your edits)" if edited
                                      else "Structures")
        self.structures_label.setVisible(bool(structures))
        self.classifications.show_results(results, table)
        classified = bool(self.classifications.views)
        self.classification_label.setVisible(classified and bool(rows or structures))
        self.empty_label.setText(NO_DETECTIONS_TEXT if provenances else EMPTY_TEXT)
        self.empty_label.setVisible(not rows and not structures and not classified)
        self.review_bar.setEnabled(bool(results))  # always shown: showing it late would resize the views
        self._fill_result_box(results)
        self._sync_buttons()
        self._show_result_state()

    def _fill_result_box(self, results) -> None:
        chosen = self.result_box.currentData()
        known = {self.result_box.itemData(i) for i in range(self.result_box.count())}
        new = [r.key for r in results if r.key not in known]
        if new:  # a result just added: it is the one to decide on
            chosen = new[-1]
        self.result_box.blockSignals(True)
        self.result_box.clear()
        for r in results:
            self.result_box.addItem(r.name, r.key)
        index = self.result_box.findData(chosen) if chosen is not None else -1
        self.result_box.setCurrentIndex(index if index >= 0 else len(results) - 1)
        self.result_box.blockSignals(False)
        self.result_box.setEnabled(len(results) > 1)

    def _on_current_finding(self) -> None:
        found = self.current_finding()
        if found is not None:
            index = self.result_box.findData(found[0].key)
            if index >= 0 and index != self.result_box.currentIndex():
                self.result_box.blockSignals(True)
                self.result_box.setCurrentIndex(index)
                self.result_box.blockSignals(False)
        self._sync_buttons()
        self._show_result_state()

    def _result_line(self, result, status, named: bool) -> str:
        what = "Label map" if result.label_layer is not None else \
            "Classification" if result.classification is not None else "Result"
        state = review.STATE_TEXT[status.result_state]
        entry = review.result_entry(self.session.annotations.review, result)
        if entry is not None:
            state += f" by {entry.get('user', '?')}"
        elif isinstance(self.session.annotations.review.get(result.key), dict):
            state += " (a decision on another version of the label map: decide again)"
        parts = [f"{what}: {state}"]
        if status.total:
            parts.append(f"{status.decided} of {status.total} findings decided")
        if result.edited:
            meta = result.label_layer.meta
            parts.append(f"edited by {meta.get('edited_by')} at {meta.get('edited_at')}")
        return (f"{result.name}: " if named else "") + " · ".join(parts)

    def _show_result_state(self) -> None:
        """One line on the result the result buttons act on (the selected finding's, else the last one)."""
        results = self.results()
        result = self.current_result()
        if result is None:
            self.result_state_label.setVisible(False)
            return
        status = review.result_status(self.session.annotations.review, result)
        line = self._result_line(result, status, len(results) > 1)
        self.result_state_label.setText(line)
        self.result_box.setToolTip(f"{line}\n\nThe AI result that Accept result / Reject result decide on "
                                   "(selecting a finding selects its result)")
        stale = isinstance(self.session.annotations.review.get(result.key), dict) and \
            review.result_entry(self.session.annotations.review, result) is None
        self.result_state_label.setVisible(result.edited or stale)  # (otherwise the header says it all)

    def _sync_buttons(self) -> None:
        has_row = self.current_finding() is not None
        for name in ("accept", "reject", "clear"):
            self.buttons[name].setEnabled(has_row)
        has_result = self.current_result() is not None
        for name in ("accept_result", "reject_result"):
            self.buttons[name].setEnabled(has_result)

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

    def _detection_row(self, result, index: int, table):
        det = result.detections[index]
        n = index + 1
        state = review.shown_states(table, result)[index]
        own = (review.finding_entry(table, result, index) or {})
        state_text = review.STATE_TEXT[state]
        if state == review.REJECTED and not own:
            state_text += " (with the result)"
        items = [
            _Item({review.ACCEPTED: "✓ ", review.REJECTED: "✗ "}.get(state, "") + f"N{n}", n),
            _Item(det.kind or "—"),
            _Item(f"{det.diameter_mm:.1f}", float(det.diameter_mm)),
            _Item(f"{det.volume_ml:.2f}", float(det.volume_ml)),
            _Item(f"{det.mean_hu:.0f}", float(det.mean_hu)),
            _Item(f"{det.score:.2f}", float(det.score)),
            _Item(location_text(det.location)),
            _Item(state_text, {review.ACCEPTED: 1, review.REJECTED: 2}.get(state, 0)),
        ]
        items[0].setData(Qt.UserRole + 2, (result.detection_key(index), index))
        color = REJECTED_TEXT if state == review.REJECTED else None
        for item in items:
            if color is not None:
                item.setForeground(QBrush(color))
        if state == review.ACCEPTED:
            items[REVIEW_COLUMN].setForeground(QBrush(ACCEPTED_TEXT))
        tip = features_text(det.features)
        if own:
            tip = (tip + "\n" if tip else "") + f"{own['state']} by {own.get('user', '?')} at {own.get('time', '?')}"
        return items, det.center_lps, tip

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

    # --- review -----------------------------------------------------------------------------------------
    def _row_key(self, row: int) -> str | None:
        item = self.table.item(row, 0)
        data = None if item is None else item.data(Qt.UserRole + 2)
        return None if data is None else data[0]

    def finding_at(self, row: int):
        """``(result, detection index)`` of the table row ``row`` (as displayed), or None."""
        key = self._row_key(row)
        if key is None:
            return None
        for result in self.results():
            for i in range(len(result.detections)):
                if result.detection_key(i) == key:
                    return result, i
        return None

    def current_key(self) -> str | None:
        row = self.table.currentRow()
        return self._row_key(row) if row >= 0 else None

    def current_finding(self):
        row = self.table.currentRow()
        return self.finding_at(row) if row >= 0 else None

    def current_result(self):
        """The result chosen in the result box (the selected finding's; at first the last result added)."""
        results = self.results()
        if not results:
            return None
        key = self.result_box.currentData()
        return next((r for r in results if r.key == key), results[-1])

    def select_result(self, result) -> None:
        index = self.result_box.findData(result.key)
        if index >= 0:
            self.result_box.setCurrentIndex(index)

    def review_text(self, row: int) -> str:
        item = self.table.item(row, REVIEW_COLUMN)
        return "" if item is None else item.text()

    def decide_row(self, row: int, state: str | None) -> bool:
        """Accept ("accepted"), reject ("rejected") or clear (None) the finding in ``row`` (as displayed)."""
        found = self.finding_at(row)
        if found is None:
            return False
        result, index = found
        review.decide_findings(self.session.annotations, result, [index], state, user=self.user)
        return True

    def decide_current(self, state: str | None) -> bool:
        row = self.table.currentRow()
        return row >= 0 and self.decide_row(row, state)

    def decide_result(self, state: str | None, result=None) -> bool:
        """Accept, reject or clear the result as a whole (default: the one chosen in the result box)."""
        result = result or self.current_result()
        if result is None:
            return False
        review.decide_result(self.session.annotations, result, state, user=self.user)
        return True

    def accept_undecided(self, result=None) -> bool:
        """Accept every finding of the result not yet decided (one undo step)."""
        result = result or self.current_result()
        if result is None:
            return False
        states = review.finding_states(self.session.annotations.review, result)
        undecided = [i for i, s in enumerate(states) if s is None]
        review.decide_findings(self.session.annotations, result, undecided, review.ACCEPTED, user=self.user)
        return bool(undecided)

    def _context_menu(self, pos) -> None:
        row = self.table.rowAt(pos.y())
        if row >= 0:
            self.table.setCurrentCell(row, 0)
        menu = self.build_context_menu()
        menu.exec(self.table.viewport().mapToGlobal(pos))

    def build_context_menu(self) -> QMenu:
        menu = QMenu(self)
        has_row = self.current_finding() is not None
        for name, text, state in (("accept", "✓ Accept finding", review.ACCEPTED),
                                  ("reject", "✗ Reject finding", review.REJECTED),
                                  ("clear", "Not reviewed", None)):
            action = menu.addAction(f"{text}\t{REVIEW_KEYS[name][0]}")
            action.setEnabled(has_row)
            action.triggered.connect(lambda _=False, s=state: self.decide_current(s))
        menu.addSeparator()
        menu.addAction("Accept all findings not yet decided").triggered.connect(lambda: self.accept_undecided())
        for name, text, state in (("accept_result", "✓ Accept result as a whole", review.ACCEPTED),
                                  ("reject_result", "✗ Reject result as a whole", review.REJECTED)):
            menu.addAction(f"{text}\t{REVIEW_KEYS[name][0]}").triggered.connect(
                lambda _=False, s=state: self.decide_result(s))
        menu.addAction("Result not reviewed").triggered.connect(lambda: self.decide_result(None))
        return menu

    def _classification_menu(self, view, pos) -> None:
        self.select_result(view.result)
        menu = self.build_classification_menu(view.result)
        menu.exec(view.table.viewport().mapToGlobal(pos))

    def build_classification_menu(self, result) -> QMenu:
        """Accept / reject a classification as a whole, or put it back to not reviewed."""
        menu = QMenu(self)
        for name, text, state in (("accept_result", "✓ Accept classification", review.ACCEPTED),
                                  ("reject_result", "✗ Reject classification", review.REJECTED)):
            menu.addAction(f"{text}\t{REVIEW_KEYS[name][0]}").triggered.connect(
                lambda _=False, s=state: self.decide_result(s, result))
        menu.addAction("Classification not reviewed").triggered.connect(lambda: self.decide_result(None, result))
        return menu

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
