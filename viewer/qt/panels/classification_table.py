"""A classification model's answer in the findings panel: one table of class probabilities per result.

Each result (``review.AiResult`` whose ``classification`` is an ``ai.api.ClassificationResult``) shows a header —
the model's name and version, its review state ("AI result, not reviewed — not a diagnosis" until a user accepts
it as a whole, then "reviewed by <user> at <time> — not a diagnosis") — and a table sorted from the most to the
least probable class: the class, its probability, a bar, and what the model answers (a multi-label class at or
above its threshold is *flagged*; a single-label model answers its most probable class). The tooltip says what
the network saw (its preprocessing). Review is that of a label map: the result as a whole is accepted or rejected
(Shift+Y / Shift+N, the findings panel's Result buttons, or this table's context menu).
Everything here is display: the numbers come with the result (the GUI thread never computes them).
"""
from __future__ import annotations

from html import escape

from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QStyledItemDelegate,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from viewer.core import review

COLUMNS = ("Class", "Probability", "", "Model says")
COLUMN_TIPS = ("The class, as the model names it",
               "The model's probability for the class (0-1); not a probability of disease",
               "The probability as a bar",
               "Multi-label (sigmoid): flagged at or above the class's threshold; single-label (softmax): the most "
               "probable class is the answer")
BAR_COLUMN = COLUMNS.index("")
FLAGGED_BAR = QColor(224, 160, 0)  # amber, the colour of "not reviewed"
OTHER_BAR = QColor(110, 140, 180)
BAR_WIDTH = 90
NOT_A_DIAGNOSIS = "not a diagnosis"


class BarDelegate(QStyledItemDelegate):
    """Paints the probability (``Qt.UserRole``, 0-1) of a cell as a horizontal bar."""

    def paint(self, painter: QPainter, option, index) -> None:
        super().paint(painter, option, index)
        value = index.data(Qt.UserRole)
        try:
            value = min(max(float(value), 0.0), 1.0)
        except (TypeError, ValueError):
            return
        flagged = bool(index.data(Qt.UserRole + 1))
        r = option.rect.adjusted(3, 4, -3, -4)
        painter.save()
        painter.setPen(QColor(120, 120, 120))
        painter.setBrush(Qt.NoBrush)
        painter.drawRect(r)
        painter.setPen(Qt.NoPen)
        painter.setBrush(FLAGGED_BAR if flagged else OTHER_BAR)
        painter.drawRect(QRect(r.left() + 1, r.top() + 1, round((r.width() - 1) * value), r.height() - 1))
        painter.restore()


def _item(text: str, key=None) -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    item.setFlags(Qt.ItemIsSelectable | Qt.ItemIsEnabled)
    if key is not None:
        item.setData(Qt.UserRole, key)
        item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
    return item


def answer_text(classification, name: str, flagged: set) -> str:
    if classification.multi_label:
        t = classification.threshold(name)
        return f"flagged (≥ {t:.2f})" if name in flagged else f"below {t:.2f}"
    return "most probable" if name in flagged else ""


def header_html(result, status) -> str:
    """The model, its version and device, and the review line."""
    p = result.provenance
    c = result.classification
    color = "#3cb371" if status.state == "reviewed" else "#999" if status.state == "rejected" else "#e0a000"
    line = status.header
    if status.state == "not reviewed":
        line = f"AI — not reviewed · {NOT_A_DIAGNOSIS}"
    return (f"<b>{escape(p.model_name or p.model_id)}</b> {escape(p.model_version)} · class probabilities "
            f"({escape(c.kind)})<br><span style='color:{color}; font-weight:bold'>{escape(line)}</span>")


class ClassificationView(QWidget):
    """One classification result: its header and its table (rows sorted by probability, most probable first)."""

    def __init__(self, result, parent=None):
        super().__init__(parent)
        self.result = result
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        box.setSpacing(2)
        self.header = QLabel()
        self.header.setTextFormat(Qt.RichText)
        self.header.setWordWrap(True)
        box.addWidget(self.header)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("classification_table")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        for col, tip in enumerate(COLUMN_TIPS):
            self.table.horizontalHeaderItem(col).setToolTip(tip)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(self.table.fontMetrics().height() + 8)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        head = self.table.horizontalHeader()
        head.setSectionResizeMode(QHeaderView.ResizeToContents)
        head.setSectionResizeMode(0, QHeaderView.Stretch)  # long class names are elided; the numbers always show
        head.setSectionResizeMode(BAR_COLUMN, QHeaderView.Fixed)
        head.resizeSection(BAR_COLUMN, BAR_WIDTH)
        head.setStretchLastSection(False)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.table.setTextElideMode(Qt.ElideRight)
        self.table.setItemDelegateForColumn(BAR_COLUMN, BarDelegate(self.table))
        self.table.setContextMenuPolicy(Qt.CustomContextMenu)
        box.addWidget(self.table, 1)
        self.fill()

    def fill(self) -> None:
        c = self.result.classification
        flagged = set(c.flagged())
        ranked = c.ranked()
        self.table.setRowCount(len(ranked))
        tip = "\n".join(t for t in (f"Input: {c.preprocessing}" if c.preprocessing else "",
                                    f"Classified: {c.image}" if c.image else "", c.note) if t)
        for row, (name, p) in enumerate(ranked):
            bar = _item("")
            bar.setData(Qt.UserRole, float(p))
            bar.setData(Qt.UserRole + 1, name in flagged)
            items = [_item(name), _item(f"{p:.3f}", float(p)), bar, _item(answer_text(c, name, flagged))]
            if name in flagged:
                font = items[0].font()
                font.setBold(True)
                items[0].setFont(font)
            for col, item in enumerate(items):
                item.setToolTip(f"{name}: {p:.3f}\n{tip}")
                self.table.setItem(row, col, item)
        rows = min(len(ranked), 8)  # small tables show whole; long ones scroll (at least 8 rows in view)
        height = (self.table.horizontalHeader().sizeHint().height()
                  + rows * self.table.verticalHeader().defaultSectionSize() + 2 * self.table.frameWidth())
        self.table.setMinimumHeight(height)
        if len(ranked) <= 8:
            self.table.setMaximumHeight(height)

    def set_status(self, status) -> None:
        self.header.setText(header_html(self.result, status))
        self.header.setToolTip("\n".join(t for t in (self.result.classification.preprocessing,
                                                      self.result.classification.image) if t))

    # --- what a test or the report reads ----------------------------------------------------------------
    def rows(self) -> list[tuple[str, str, str]]:
        """``(class, probability text, answer)`` as displayed, top row first."""
        return [(self.table.item(r, 0).text(), self.table.item(r, 1).text(), self.table.item(r, 3).text())
                for r in range(self.table.rowCount())]


class ClassificationSection(QWidget):
    """Every classification result of the session, one :class:`ClassificationView` each (rebuilt when they change)."""

    def __init__(self, parent=None, context_menu=None):
        super().__init__(parent)
        self.box = QVBoxLayout(self)
        self.box.setContentsMargins(0, 0, 0, 0)
        self.box.addStretch(1)  # the tables stay at the top, their own height
        self.views: list[ClassificationView] = []
        self._context_menu = context_menu  # (view, pos): the panel's review menu

    def show_results(self, results, review_table) -> None:
        results = [r for r in results if r.classification is not None]
        if [v.result.classified for v in self.views] != [r.classified for r in results]:
            for view in self.views:
                self.box.removeWidget(view)
                view.deleteLater()
            self.views = []
            for r in results:
                view = ClassificationView(r, self)
                if self._context_menu is not None:
                    view.table.customContextMenuRequested.connect(
                        lambda pos, v=view: self._context_menu(v, pos))
                self.box.insertWidget(len(self.views), view)
                self.views.append(view)
        else:  # the same results: the review table changed (a key's series UID may differ: keep the new ones)
            for view, r in zip(self.views, results):
                view.result = r
        for view in self.views:
            view.set_status(review.result_status(review_table, view.result))
        self.setVisible(bool(self.views))
