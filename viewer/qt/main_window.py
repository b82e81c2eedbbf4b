"""The main window (foundation version): study browser and an axial image view.

Scanning and loading run on background threads with progress and cancel; the
first slice shows as soon as it is read. The full reading views (MPR,
overlays, 3D) arrive with the viewer issue.
"""
from __future__ import annotations

import os

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QFileDialog, QLabel, QMainWindow, QMessageBox, QProgressBar, QPushButton, QSplitter,
                               QTreeWidget, QTreeWidgetItem)

from viewer import ABOUT_TEXT
from viewer.qt.background import BackgroundTasks


class MainWindow(QMainWindow):
    def __init__(self):
        super().__init__()
        self.setWindowTitle("radview — research viewer, not for clinical use")
        self.resize(1280, 800)
        self.tasks = BackgroundTasks(self)
        self.tasks.progressed.connect(self._on_progress)
        self.tasks.finished.connect(self._on_finished)
        self.tasks.failed.connect(self._on_failed)
        self.tasks.cancelled.connect(self._on_cancelled)
        self._handlers: dict[int, callable] = {}
        self._current_job: int | None = None
        self._load_job: int | None = None
        self.index = None
        self.volume = None
        self._preview: np.ndarray | None = None

        self.browser = QTreeWidget()
        self.browser.setHeaderLabels(["Series", "Modality", "Images", "Shape"])
        self.browser.itemActivated.connect(self._on_series_activated)
        self.browser.itemClicked.connect(self._on_series_activated)
        self.image_view = pg.ImageView()
        self.image_view.ui.roiBtn.hide()
        self.image_view.ui.menuBtn.hide()
        splitter = QSplitter(Qt.Horizontal)
        splitter.addWidget(self.browser)
        splitter.addWidget(self.image_view)
        splitter.setSizes([380, 900])
        self.setCentralWidget(splitter)

        self.progress = QProgressBar()
        self.progress.setMaximumWidth(240)
        self.progress.hide()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.hide()
        self.cancel_button.clicked.connect(self.cancel_current)
        self.status_label = QLabel("Open a study folder (File → Open folder…)")
        self.statusBar().addWidget(self.status_label, 1)
        self.statusBar().addPermanentWidget(self.progress)
        self.statusBar().addPermanentWidget(self.cancel_button)

        file_menu = self.menuBar().addMenu("&File")
        file_menu.addAction("&Open folder…", self.choose_folder, "Ctrl+O")
        file_menu.addSeparator()
        file_menu.addAction("&Quit", self.close, "Ctrl+Q")
        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction("&About radview", self.show_about)

    # --- actions -------------------------------------------------------------
    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open study folder")
        if folder:
            self.open_path(folder)

    def show_about(self) -> None:
        QMessageBox.about(self, "About radview", ABOUT_TEXT)

    def open_demo(self) -> None:
        from viewer.core.demo import ensure_demo

        def work(progress, cancel):
            paths = ensure_demo(progress=lambda f, msg: progress(int(f * 100), 100, msg))
            return str(paths.dicom_dir)

        self._start(work, lambda folder: self.open_path(folder), "Preparing the demo study…")

    def open_path(self, path: str) -> None:
        from viewer.core.dicom_index import scan
        from viewer.core.image_io import is_image_file, read_image

        if is_image_file(path):
            self._start(lambda progress, cancel: read_image(path), self._show_volume, f"Reading {path}…")
            return

        def work(progress, cancel):
            return scan(path, progress=lambda d, t, p: progress(d, t, os.path.basename(p)), cancel=cancel)

        self._start(work, self._show_index, f"Indexing {path}…")

    def load_series(self, key: str) -> None:
        from viewer.core.series_loader import load_series

        entry = self.index.find(key)
        if not entry.loadable:
            self.status_label.setText(f"{entry.description or key}: {entry.refusal}")
            return
        if self._load_job is not None:  # superseded: cancel it and drop its result if it still arrives
            self.tasks.cancel(self._load_job)
            self._handlers.pop(self._load_job, None)
        nz, ny, nx = entry.shape_zyx
        self._preview = None

        def work(progress, cancel):
            def first_slice(z, img):
                if self._preview is None:
                    self._preview = np.array(img)
                    progress(0, 1, "first slice")
            return load_series(entry, progress=lambda d, t: progress(d, t, ""), cancel=cancel, on_slice=first_slice)

        self._load_job = self._start(work, self._show_volume, f"Loading {entry.description or key}…")

    def cancel_current(self) -> None:
        if self._current_job is not None:
            self.tasks.cancel(self._current_job)

    # --- task plumbing -------------------------------------------------------
    def _start(self, work, on_done, message: str) -> int:
        job = self.tasks.submit(work)
        self._handlers[job] = on_done
        self._current_job = job
        self.status_label.setText(message)
        self.progress.setRange(0, 0)
        self.progress.show()
        self.cancel_button.show()
        return job

    def _finish_ui(self, job: int) -> None:
        self._handlers.pop(job, None)
        if job == self._current_job:
            self.progress.hide()
            self.cancel_button.hide()
            self._current_job = None

    def _on_progress(self, job: int, done: int, total: int, message: str) -> None:
        if job != self._current_job:
            return
        if message == "first slice" and self._preview is not None and job == self._load_job:
            self.image_view.setImage(self._preview, autoRange=True, autoLevels=True)
            return
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)

    def _on_finished(self, job: int, result) -> None:
        handler = self._handlers.get(job)
        self._finish_ui(job)
        if handler is not None:
            handler(result)

    def _on_failed(self, job: int, message: str) -> None:
        self._finish_ui(job)
        self.status_label.setText(f"Error: {message}")
        QMessageBox.warning(self, "radview", message)

    def _on_cancelled(self, job: int) -> None:
        self._finish_ui(job)
        self.status_label.setText("Cancelled")

    # --- results -------------------------------------------------------------
    def _show_index(self, index) -> None:
        self.index = index
        self.browser.clear()
        for patient in index.patients:
            p_item = QTreeWidgetItem([f"{patient.name or patient.id}", "", "", ""])
            self.browser.addTopLevelItem(p_item)
            for study in patient.studies:
                s_item = QTreeWidgetItem(p_item, [f"{study.description or 'Study'} {study.date}", "", "", ""])
                for entry in study.series:
                    shape = "×".join(str(v) for v in entry.shape_zyx) if entry.shape_zyx else "refused"
                    label = entry.description or entry.key
                    if entry.split_label:
                        label += f" [{entry.split_label}]"
                    if entry.kind != "volume":
                        label += f" ({entry.kind})"
                    item = QTreeWidgetItem(s_item, [label, entry.modality, str(entry.n_images), shape])
                    item.setData(0, Qt.UserRole, entry.key)
                    tips = entry.warnings + ([entry.refusal] if entry.refusal else [])
                    if tips:
                        item.setToolTip(0, "\n".join(tips))
        self.browser.expandAll()
        for column in range(self.browser.columnCount()):
            self.browser.resizeColumnToContents(column)
        n_skipped = len(index.skipped)
        self.status_label.setText(f"{len(index.series)} series, {n_skipped} files skipped" if n_skipped
                                  else f"{len(index.series)} series")
        best = index.largest_volume()
        if best is not None:
            self.load_series(best.key)

    def _on_series_activated(self, item: QTreeWidgetItem, _column: int = 0) -> None:
        key = item.data(0, Qt.UserRole)
        if key and self.index is not None:
            self.load_series(key)

    def _show_volume(self, volume) -> None:
        self.volume = volume
        array = volume.array
        levels = None
        if volume.meta.get("window"):
            center, width = volume.meta["window"]
            levels = (center - width / 2, center + width / 2)
        self.image_view.setImage(array, axes={"t": 0, "y": 1, "x": 2, "c": 3} if volume.is_color else
                                 {"t": 0, "y": 1, "x": 2}, autoLevels=levels is None, levels=levels)
        self.image_view.setCurrentIndex(array.shape[0] // 2)
        text = f"{volume.meta.get('description', '')}: {array.shape} {array.dtype}"
        if volume.warnings:
            text += " — " + "; ".join(volume.warnings)
        self.status_label.setText(text)

    def closeEvent(self, event) -> None:
        self.tasks.shutdown()
        super().closeEvent(event)
