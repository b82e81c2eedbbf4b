"""AI → Train model…: train radview's 3D U-Net on a folder of labelled cases, watch it learn, add the result.

The dialog collects a :class:`viewer.logic.training_run.TrainingRequest` (data folder, output model folder, labels,
time budget, device) and starts it with :func:`viewer.logic.training_run.start_training`: the training runs in a
child process (``radview-cli ai train``), never in the GUI's. A QTimer polls the run's thread-safe snapshot and
draws the loss and validation Dice per step; the GUI thread never waits on the child. Cancel interrupts the child
(its checkpoint resumes the run when the same training is started again). At the end "Add to models" adds the
output folder to the user's model folders (:class:`viewer.qt.model_folders.ModelFolders`), so Run AI lists it
at once. Closing the dialog while a run goes on cancels it.
"""
from __future__ import annotations

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
    QVBoxLayout,
    QWidget,
)

from ai.registry import ManifestError
from viewer.logic.training_run import TrainingRequest, TrainingRun, TrainingSnapshot, start_training

#: (shown text, device of the request)
DEVICES = (("Automatic (GPU if available)", "auto"), ("CPU", "cpu"), ("GPU (CUDA)", "cuda"))
POLL_MS = 200
DEFAULT_MINUTES = 15.0


class TrainModelDialog(QDialog):
    """``model_folders``: the user's :class:`ModelFolders` ("Add to models" adds to it); ``on_added(manifest)``:
    told when a model was added; ``extra``: further ``ai train`` options (tests make the network tiny)."""

    def __init__(self, model_folders, parent=None, on_added=None, extra: tuple[str, ...] = (), start=start_training):
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
        form = QFormLayout()
        form.addRow("Data folder", self._with_browse(self.data_edit, "Choose the training data folder"))
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
        return self.run is not None and not (self.snapshot is not None and self.snapshot.finished)

    def request(self) -> TrainingRequest:
        """The request the fields describe; raises ValueError (its message is for the user)."""
        labels = tuple(n.strip() for n in self.labels_edit.text().split(",") if n.strip())
        return TrainingRequest(data=self.data_edit.text().strip(), out=self.out_edit.text().strip(), labels=labels,
                               minutes=float(self.minutes_spin.value()), device=self.device_combo.currentData(),
                               restart=self.restart_box.isChecked(), extra=self.extra)

    def start(self) -> bool:
        if self.running:
            return False
        try:
            request = self.request()
        except ValueError as exc:
            self.status_label.setText(f"Not started: {exc}")
            return False
        if not os.path.isdir(request.data):
            self.status_label.setText(f"Not started: {request.data} is not a folder")
            return False
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
            self.status_label.setText(f"Training: {snap.message}")
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
                  self.restart_box):
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

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        if self.running:
            self.run.cancel()  # the child is stopped by the run's own thread; polling goes on until it has ended
        super().closeEvent(event)
