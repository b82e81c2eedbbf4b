"""AI → Train model…: train radview's 3D U-Net on labelled cases, watch it learn, add the result.

The data is "A folder of cases" or "Reviewed results in radview's store": the latter lists the store's AI label
layers with their review state (:class:`viewer.qt.dialogs.reviewed_cases.ReviewedCasesPanel`, the reviewed ones
ticked); Start first exports the ticked ones as a dataset folder (:func:`viewer.logic.reviewed_export.export_reviewed`
on a :class:`viewer.qt.jobs.BackgroundTasks` thread, Cancel stops it) and then trains on that folder.
The dialog collects a :class:`viewer.logic.training_run.TrainingRequest` (data folder, output model folder, labels,
time budget, device) and starts it with :func:`viewer.logic.training_run.start_training`: the training runs in a
child process (``radview-cli ai train``), never in the GUI's. A QTimer polls the run's thread-safe snapshot and
draws the loss and validation Dice per step; the GUI thread never waits on the child. Cancel interrupts the child
(its checkpoint resumes the run when the same training is started again). At the end "Add to models" adds the
output folder to the user's model folders (:class:`viewer.qt.model_folders.ModelFolders`), so Run AI lists it
at once. Closing the dialog while a run goes on cancels it.
"""
from __future__ import annotations

import dataclasses
import os

import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from ai.registry import ManifestError
from viewer.logic.training_run import TrainingRequest, TrainingRun, TrainingSnapshot, start_training
from viewer.qt.dialogs.reviewed_cases import ReviewedCasesPanel
from viewer.qt.jobs import BackgroundTasks

#: (shown text, device of the request)
DEVICES = (("Automatic (GPU if available)", "auto"), ("CPU", "cpu"), ("GPU (CUDA)", "cuda"))
POLL_MS = 200
DEFAULT_MINUTES = 15.0
#: the exported dataset's folder when none is given: beside the output model folder
DATASET_SUFFIX = "-data"
REVIEWED_MIN_WIDTH = 900  # the table of cases shows its paths


class TrainModelDialog(QDialog):
    """``model_folders``: the user's :class:`ModelFolders` ("Add to models" adds to it); ``on_added(manifest)``:
    told when a model was added; ``extra``: further ``ai train`` options (tests make the network tiny);
    ``store_dir`` / ``study_db``: the store and local study database the reviewed results come from (None: the
    user's own, as the viewer's)."""

    def __init__(self, model_folders, parent=None, on_added=None, extra: tuple[str, ...] = (), start=start_training,
                 store_dir=None, study_db=None):
        super().__init__(parent)
        self.setWindowTitle("Train model")
        self.setObjectName("TrainModelDialog")
        self.model_folders = model_folders
        self.on_added = on_added
        self.extra = tuple(extra)
        self._start = start
        self.run: TrainingRun | None = None
        self.snapshot: TrainingSnapshot | None = None
        self.added = None  # the manifest "Add to models" added
        self.tasks = BackgroundTasks(self)
        self.export_job: int | None = None  # the reviewed results being exported before the training starts
        self.exported = None  # the last export's ExportResult
        self._pending: TrainingRequest | None = None  # what starts once the export is done

        self.folder_radio = QRadioButton("A folder of cases")
        self.reviewed_radio = QRadioButton("Reviewed results in radview's store")
        self.folder_radio.setChecked(True)
        self.reviewed_radio.toggled.connect(self._data_choice_changed)
        self.reviewed_panel = ReviewedCasesPanel(self.tasks, self, store_dir, study_db)
        self.dataset_edit = QLineEdit()
        self.dataset_edit.setPlaceholderText(f"where the dataset is written (default: the output folder + "
                                             f"'{DATASET_SUFFIX}'); an earlier export there is replaced")
        self.tasks.finished.connect(self._export_finished)
        self.tasks.failed.connect(self._export_failed)
        self.tasks.cancelled.connect(self._export_cancelled)
        self.tasks.progressed.connect(self._export_progress)

        self.data_edit = QLineEdit()
        self.data_edit.setPlaceholderText("a folder of cases: image + label map + labels.json each")
        self.out_edit = QLineEdit()
        self.out_edit.setPlaceholderText("the model folder to write (a matching checkpoint in it is resumed)")
        self.labels_edit = QLineEdit()
        self.labels_edit.setPlaceholderText("optional, comma-separated (default: all of the dataset's labels)")
        self.minutes_spin = QDoubleSpinBox()
        self.minutes_spin.setRange(0.1, 24 * 60)
        self.minutes_spin.setDecimals(1)
        self.minutes_spin.setSuffix(" min")
        self.minutes_spin.setValue(DEFAULT_MINUTES)
        self.device_combo = QComboBox()
        for text, device in DEVICES:
            self.device_combo.addItem(text, device)

        self.restart_box = QCheckBox("Start over (ignore a checkpoint already in the output folder)")
        choice = QWidget()
        ch = QHBoxLayout(choice)
        ch.setContentsMargins(0, 0, 0, 0)
        ch.addWidget(self.folder_radio)
        ch.addWidget(self.reviewed_radio)
        ch.addStretch(1)
        form = QFormLayout()
        self.form = form
        form.addRow("Data", choice)
        self.data_row = self._with_browse(self.data_edit, "Choose the training data folder")
        form.addRow("Data folder", self.data_row)
        form.addRow(self.reviewed_panel)
        self.dataset_row = self._with_browse(self.dataset_edit, "Choose the folder to write the dataset to")
        form.addRow("Dataset folder", self.dataset_row)
        form.addRow("Output model folder", self._with_browse(self.out_edit, "Choose the model folder to write"))
        form.addRow("Labels", self.labels_edit)
        form.addRow("Time budget", self.minutes_spin)
        form.addRow("Device", self.device_combo)
        form.addRow("", self.restart_box)

        self.plot = pg.PlotWidget(background="w")
        self.plot.setMinimumSize(480, 240)
        self.plot.setLabel("bottom", "step")
        self.plot.showGrid(x=True, y=True, alpha=0.3)
        self.plot.addLegend(offset=(-10, 10), labelTextColor="#333")
        self.loss_curve = self.plot.plot([], [], name="training loss", pen=pg.mkPen("#d62728", width=2),
                                         symbol="o", symbolSize=5, symbolBrush="#d62728")
        self.dice_curve = self.plot.plot([], [], name="validation Dice (mean)", pen=pg.mkPen("#1f77b4", width=2),
                                         symbol="s", symbolSize=5, symbolBrush="#1f77b4")

        self.status_label = QLabel("Choose the data and the output folder, then Start.")
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.start_button = QPushButton("Start")
        self.cancel_button = QPushButton("Cancel training")
        self.add_button = QPushButton("Add to models")
        self.close_button = QPushButton("Close")
        self.cancel_button.setEnabled(False)
        self.add_button.setEnabled(False)
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.add_button.clicked.connect(self.add_to_models)
        self.close_button.clicked.connect(self.close)
        buttons = QHBoxLayout()
        for b in (self.start_button, self.cancel_button, self.add_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        buttons.addWidget(self.close_button)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.status_label)
        layout.addLayout(buttons)

        self.timer = QTimer(self)
        self.timer.setInterval(POLL_MS)
        self.timer.timeout.connect(self.poll)
        self._data_choice_changed(False)

    # --- the data ---------------------------------------------------------------------------------------------
    @property
    def from_reviewed(self) -> bool:
        return self.reviewed_radio.isChecked()

    def _data_choice_changed(self, reviewed: bool) -> None:
        self.form.setRowVisible(self.data_row, not reviewed)
        self.form.setRowVisible(self.reviewed_panel, reviewed)
        self.form.setRowVisible(self.dataset_row, reviewed)
        if reviewed and self.reviewed_panel.listing is None and not self.reviewed_panel.listing_running:
            self.reviewed_panel.refresh()  # in the background
        self.adjustSize()
        if reviewed and self.width() < REVIEWED_MIN_WIDTH:
            self.resize(REVIEWED_MIN_WIDTH, self.height())

    def dataset_folder(self) -> str:
        """Where the reviewed results are exported: the field, else the output model folder + ``-data``."""
        given = self.dataset_edit.text().strip()
        out = self.out_edit.text().strip().rstrip("/\\")
        return given or (out + DATASET_SUFFIX if out else "")

    def _with_browse(self, edit: QLineEdit, title: str) -> QWidget:
        row = QWidget()
        h = QHBoxLayout(row)
        h.setContentsMargins(0, 0, 0, 0)
        h.addWidget(edit, 1)
        button = QPushButton("Browse…")
        button.clicked.connect(lambda: self._browse(edit, title))
        h.addWidget(button)
        return row

    def _browse(self, edit: QLineEdit, title: str) -> None:
        path = QFileDialog.getExistingDirectory(self, title, edit.text() or os.path.expanduser("~"))
        if path:
            edit.setText(path)

    # --- the run --------------------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.export_job is not None or (
            self.run is not None and not (self.snapshot is not None and self.snapshot.finished))

    def request(self, data: str | None = None) -> TrainingRequest:
        """The request the fields describe; raises ValueError (its message is for the user)."""
        labels = tuple(n.strip() for n in self.labels_edit.text().split(",") if n.strip())
        data = self.data_edit.text().strip() if data is None else data
        return TrainingRequest(data=data, out=self.out_edit.text().strip(), labels=labels,
                               minutes=float(self.minutes_spin.value()), device=self.device_combo.currentData(),
                               restart=self.restart_box.isChecked(), extra=self.extra)

    def start(self) -> bool:
        """Start the training (from reviewed results: their export first, in the background); False if refused."""
        if self.running:
            return False
        if self.from_reviewed:
            return self._start_export()
        try:
            request = self.request()
        except ValueError as exc:
            self.status_label.setText(f"Not started: {exc}")
            return False
        if not os.path.isdir(request.data):
            self.status_label.setText(f"Not started: {request.data} is not a folder")
            return False
        return self._start_run(request)

    def _start_export(self) -> bool:
        from viewer.logic.reviewed_export import export_reviewed

        cases = self.reviewed_panel.checked_cases()
        folder = self.dataset_folder()
        try:
            request = self.request(data=folder)
        except ValueError as exc:
            self.status_label.setText(f"Not started: {exc}")
            return False
        if not cases:
            self.status_label.setText("Not started: no reviewed case is ticked" + (
                " (the store is still being listed)" if self.reviewed_panel.listing_running else ""))
            return False
        store, listed = self.reviewed_panel.store_dir, list(self.reviewed_panel.cases)
        chosen = [c.layer_id for c in cases]  # the others go into export.json with the reason they stayed out
        self.exported = None
        self.export_job = self.tasks.submit(lambda progress, cancel: export_reviewed(
            listed, folder, store, labels=request.labels, replace=True, progress=progress, cancel=cancel,
            chosen=chosen))
        self._pending = request
        self._set_running(True)
        self.status_label.setText(f"Exporting {len(cases)} reviewed case(s) to {folder}…")
        return True

    def _export_progress(self, job: int, done: int, total: int, message: str) -> None:
        if job == self.export_job:
            self.status_label.setText(f"Exporting the reviewed cases: {done} of {total} — {message}")

    def _export_finished(self, job: int, result) -> None:
        if job != self.export_job:
            return
        self.export_job = None
        self.exported = result
        self._set_running(False)
        if not self.isVisible():  # closed while exporting: no training follows
            self.status_label.setText(f"Exported {result.description} to {result.root}; the training was not "
                                      "started (the dialog was closed).")
            return
        request = dataclasses.replace(self._pending, data=result.root)
        if not self._start_run(request):
            return
        left = f"; {len(result.left_out)} left out (see export.json)" if result.left_out else ""
        self.status_label.setText(f"Exported {result.description}{left}. Starting the training process…")

    def _export_failed(self, job: int, message: str) -> None:
        if job == self.export_job:
            self.export_job = None
            self._set_running(False)
            self.status_label.setText(f"Not started: {message.removeprefix('ReviewedDataError: ')}")

    def _export_cancelled(self, job: int) -> None:
        if job == self.export_job:
            self.export_job = None
            self._set_running(False)
            self.status_label.setText("Export cancelled; nothing was written and no training started.")

    def _start_run(self, request: TrainingRequest) -> bool:
        self.snapshot = None
        self.added = None
        self.loss_curve.setData([], [])
        self.dice_curve.setData([], [])
        try:
            self.run = self._start(request)
        except OSError as exc:
            self.status_label.setText(f"Not started: {exc}")
            return False
        self._set_running(True)
        self.status_label.setText("Starting the training process…")
        self.timer.start()
        return True

    def cancel(self) -> None:
        """Ask the run to stop (the child is interrupted on the run's own thread; nothing waits here)."""
        if self.export_job is not None:
            self.tasks.cancel(self.export_job)
            self.cancel_button.setEnabled(False)
            self.status_label.setText("Cancelling the export…")
            return
        if self.running:
            self.run.cancel()
            self.cancel_button.setEnabled(False)
            self.status_label.setText("Cancelling… (the checkpoint keeps what was learned)")

    def poll(self) -> None:
        if self.run is None:
            return
        snap = self.run.snapshot()
        self.snapshot = snap
        losses = [(p.step, p.loss) for p in snap.points if p.loss is not None]
        dice = [(p.step, p.dice) for p in snap.points if p.dice is not None]
        self.loss_curve.setData([s for s, _ in losses], [v for _, v in losses])
        self.dice_curve.setData([s for s, _ in dice], [v for _, v in dice])
        if not snap.finished:
            if not self.cancel_button.isEnabled() and not self.run.cancel_event.is_set():
                self.cancel_button.setEnabled(True)
            on = f" on {self.exported.description}" if self.exported is not None and \
                self.run.request.data == self.exported.root else ""
            self.status_label.setText(f"Training{on}: {snap.message}")
            return
        self.timer.stop()
        self._set_running(False)
        text = {"done": "Done", "cancelled": "Training cancelled", "failed": "Training failed"}[snap.state]
        self.status_label.setText(f"{text}: {snap.message}" if snap.state != "cancelled" else
                                  f"{text} — {snap.message}")
        self.add_button.setEnabled(snap.state == "done")

    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        for w in (self.data_edit, self.out_edit, self.labels_edit, self.minutes_spin, self.device_combo,
                  self.restart_box, self.folder_radio, self.reviewed_radio, self.reviewed_panel, self.dataset_edit):
            w.setEnabled(not running)
        if running:
            self.add_button.setEnabled(False)

    def add_to_models(self):
        """Add the trained model folder to the user's model folders; return its manifest (None if refused)."""
        if self.run is None:
            return None
        try:
            manifest = self.model_folders.add_folder(self.run.request.out)
        except ManifestError as exc:
            self.status_label.setText(f"Not added: {exc}")
            return None
        self.added = manifest
        self.add_button.setEnabled(False)
        self.status_label.setText(f"Added model '{manifest.name}' to your models; AI → Run AI… lists it.")
        if self.on_added is not None:
            self.on_added(manifest)
        return manifest

    def shutdown(self) -> None:
        """The window is closing: close, then wait for an export or listing thread to end (they check Cancel
        often), so that no thread outlives its QThread."""
        self.close()
        self.tasks.shutdown(timeout_ms=10000)

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        if self.tasks.running:  # an export or a listing: asked to stop, not waited for (the dialog is only
            self.tasks.cancel_all()  # hidden; the window's shutdown waits for the threads: :meth:`shutdown`)
        if self.running and self.run is not None:
            self.run.cancel()  # the child is stopped by the run's own thread; polling goes on until it has ended
        super().closeEvent(event)
