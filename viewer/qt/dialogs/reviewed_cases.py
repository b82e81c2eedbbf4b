"""The "Reviewed results in radview's store" choice of AI → Train model…: the store's AI label layers as a table of
cases with their review state, the reviewed ones ticked.

Listing (:func:`viewer.logic.reviewed_data.list_cases`: manifests, review tables and a scan of each series'
recorded source or of the image folder) runs on a :class:`viewer.qt.jobs.BackgroundTasks` thread, never on the GUI
thread; a newer listing supersedes an older one. Only a case that can go into a dataset (accepted or edited, then
accepted; its image found; its label map on the image's grid) can be ticked; the others say why they stay out.
"""
from __future__ import annotations

import os

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from viewer.logic.reviewed_data import Listing, ReviewedCase, list_cases

COLUMNS = ("Patient", "Review", "Layer (model)", "Labels", "Image, or why it is left out")


class ReviewedCasesPanel(QWidget):
    """``tasks``: the :class:`BackgroundTasks` the listing runs on. ``store_dir`` / ``study_db``: None for the
    user's own (the viewer's annotation store and local study database)."""

    def __init__(self, tasks, parent=None, store_dir=None, study_db=None):
        super().__init__(parent)
        self.tasks = tasks
        self.store_dir, self.study_db = store_dir, study_db
        self.listing: Listing | None = None
        self.cases: list[ReviewedCase] = []
        self.job: int | None = None  # the listing running
        self.images_edit = QLineEdit()
        self.images_edit.setPlaceholderText("optional: a folder holding the series (where each was opened from, "
                                            "and the local study database, are searched anyway)")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        self.refresh_button = QPushButton("List")
        self.refresh_button.setToolTip("Read the store and look for each layer's series again")
        self.refresh_button.clicked.connect(self.refresh)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel("Images in"))
        row.addWidget(self.images_edit, 1)
        row.addWidget(browse)
        row.addWidget(self.refresh_button)

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionMode(QAbstractItemView.NoSelection)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        for i in range(len(COLUMNS) - 1):
            header.setSectionResizeMode(i, QHeaderView.ResizeToContents)
        header.setSectionResizeMode(len(COLUMNS) - 1, QHeaderView.Stretch)
        self.table.setMinimumHeight(170)
        self.summary = QLabel("")
        self.summary.setWordWrap(True)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.summary)
        tasks.finished.connect(self._on_finished)
        tasks.failed.connect(self._on_failed)

    def _browse(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Folder holding the series",
                                                self.images_edit.text() or os.path.expanduser("~"))
        if path:
            self.images_edit.setText(path)
            self.refresh()

    # --- listing (off the GUI thread) -----------------------------------------------------------------------
    @property
    def listing_running(self) -> bool:
        return self.job is not None

    def refresh(self) -> int:
        """List the store again in the background; returns the job id."""
        if self.job is not None:
            self.tasks.cancel(self.job)  # superseded: its result is ignored
        folder = self.images_edit.text().strip()
        store, db = self.store_dir, self.study_db
        self.job = self.tasks.submit(lambda _progress, cancel: list_cases(store, [folder] if folder else [], db,
                                                                          cancel))
        self.summary.setText("Reading the store and looking for the series…")
        self.refresh_button.setEnabled(False)
        return self.job

    def _on_finished(self, job: int, listing) -> None:
        if job != self.job:
            return
        self.job = None
        self.refresh_button.setEnabled(True)
        self.show_listing(listing)

    def _on_failed(self, job: int, message: str) -> None:
        if job != self.job:
            return
        self.job = None
        self.refresh_button.setEnabled(True)
        self.summary.setText(f"The store could not be listed: {message}")

    def show_listing(self, listing: Listing) -> None:
        self.listing = listing
        self.cases = list(listing.cases)
        self.table.setRowCount(len(self.cases))
        for r, case in enumerate(self.cases):
            why = case.left_out_because()
            first = QTableWidgetItem(case.patient_id or "?")
            first.setToolTip(f"study {case.study_uid}\nseries {case.series_uid}")
            if why:
                first.setFlags(first.flags() & ~Qt.ItemIsUserCheckable & ~Qt.ItemIsEnabled)
                first.setCheckState(Qt.Unchecked)
            else:
                first.setFlags(first.flags() | Qt.ItemIsUserCheckable)
                first.setCheckState(Qt.Checked)
            review = QTableWidgetItem(case.state)
            review.setToolTip(case.review_text)
            labels = ", ".join(v for _, v in sorted(case.labels.items()))
            where = QTableWidgetItem(why or f"{case.image} ({case.found_in})")
            where.setToolTip(why or "\n".join((case.image, case.found_in)))
            for c, item in enumerate((first, review, QTableWidgetItem(f"{case.name} ({case.model_id})"),
                                      QTableWidgetItem(labels), where)):
                if why and c:
                    item.setForeground(Qt.gray)
                self.table.setItem(r, c, item)
        n_ok = sum(1 for c in self.cases if not c.left_out_because())
        problems = f" {len(listing.problems)} file(s) could not be read: {listing.problems[0]}" \
            if listing.problems else ""
        self.summary.setText(f"{len(self.cases)} AI label layer(s) in the store; {n_ok} reviewed and ready "
                             f"(ticked); the others are left out, with the reason.{problems}" if self.cases else
                             f"No AI label layers in the store.{problems}")

    def checked_cases(self) -> list[ReviewedCase]:
        """The ticked cases, in the table's order."""
        return [case for r, case in enumerate(self.cases)
                if self.table.item(r, 0) is not None and self.table.item(r, 0).checkState() == Qt.Checked]
