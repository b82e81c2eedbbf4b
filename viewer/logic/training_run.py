"""AI → Train model… without Qt: a training run in a child process, its progress, its Cancel.

The child is ``radview-cli ai train`` (``python -m viewer.cli.main ai train …``): torch lives there only, never
in the viewer's process. Its log lines (``untrained: validation Dice …``, ``epoch N (step S, T s): loss X,
validation Dice …``, ``end (step S): …``) are read as they come by a reader thread and become
:class:`TrainingPoint` updates passed to ``on_update`` (on that thread) and kept in a thread-safe
:meth:`TrainingRun.snapshot` that a GUI polls. Cancel (:meth:`TrainingRun.cancel`, or the ``threading.Event``
given) interrupts the child (SIGINT, then SIGTERM, then kill) and waits for it: the trainer checkpoints atomically,
so the same request started again resumes where the run stopped.
"""
from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from typing import Callable, Optional

DEVICES = ("auto", "cpu", "cuda")
_EPOCH = re.compile(r"^epoch (\d+) \(step (\d+), [^)]*\): loss ([-+0-9.eEnaifNA]+), validation Dice (.*)$")
_UNTRAINED = re.compile(r"^untrained: validation Dice (.*)$")
_END = re.compile(r"^end \(step (\d+)\): validation Dice (.*)$")
_RESUMING = re.compile(r"^resuming run \S+ at step (\d+) \(epoch (\d+)")
_WROTE = re.compile(r"^wrote model (\S+) ")
_ERROR = "radview-cli: error: "
#: how long a cancelled child gets after SIGINT, and then after SIGTERM, before it is killed
INTERRUPT_WAIT_S = 10.0
TERMINATE_WAIT_S = 5.0


@dataclass(frozen=True)
class TrainingRequest:
    """What to train: ``data`` (a folder of cases), ``out`` (the model folder, resumed if it holds a matching
    checkpoint unless ``restart``), ``labels`` (default: the dataset's), a budget (``minutes`` or ``epochs``), the
    device, and ``extra`` options of ``radview-cli ai train`` (``("--patch", "16")``…)."""

    data: str
    out: str
    labels: tuple[str, ...] = ()
    minutes: Optional[float] = None
    epochs: Optional[int] = None
    device: str = "auto"
    restart: bool = False  # start over, ignoring a checkpoint in ``out``
    extra: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.data or not self.out:
            raise ValueError("choose the data folder and the output model folder")
        if self.minutes is not None and self.epochs is not None:
            raise ValueError("give a time budget or a number of epochs, not both")
        if self.minutes is not None and not self.minutes > 0:
            raise ValueError("the time budget must be positive")
        if self.epochs is not None and self.epochs < 1:
            raise ValueError("the number of epochs must be at least 1")
        if self.device not in DEVICES and not self.device.startswith("cuda:"):
            raise ValueError(f"device must be one of {', '.join(DEVICES)}")

    def argv(self) -> list[str]:
        """The child's command line."""
        args = [sys.executable, "-m", "viewer.cli.main", "ai", "train", "--data", self.data, "--out", self.out,
                "--device", self.device]
        if self.labels:
            args += ["--labels", ",".join(self.labels)]
        if self.minutes is not None:
            args += ["--minutes", f"{self.minutes:g}"]
        if self.epochs is not None:
            args += ["--epochs", str(self.epochs)]
        if self.restart:
            args.append("--restart")
        return args + list(self.extra)


@dataclass(frozen=True)
class TrainingPoint:
    """One measurement of the run: after ``step`` steps (``epoch`` epochs), the last training loss (None for the
    untrained network) and the mean validation Dice with each label's."""

    step: int
    epoch: int
    loss: Optional[float]
    dice: Optional[float]
    dice_by_label: dict = field(default_factory=dict)


@dataclass(frozen=True)
class TrainingSnapshot:
    """What a GUI shows: ``state`` is starting, running, done, failed or cancelled."""

    state: str
    points: tuple[TrainingPoint, ...]
    message: str
    model_id: str = ""
    log: tuple[str, ...] = ()

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed", "cancelled")


def parse_dice(text: str) -> dict:
    """``"lung_left 0.912, lung_right 0.871"`` → ``{"lung_left": 0.912, …}`` (the trainer's way of writing it)."""
    out = {}
    for part in text.split(", "):
        name, _, value = part.strip().rpartition(" ")
        try:
            out[name] = float(value)
        except ValueError:
            continue
    return out


def _point(step: int, epoch: int, loss: Optional[float], dice_text: str) -> TrainingPoint:
    """The trainer writes each label's Dice and their mean; the mean is computed when it is absent."""
    dice = parse_dice(dice_text)
    mean = dice.pop("mean", None)
    if mean is None:
        finite = [v for v in dice.values() if math.isfinite(v)]
        mean = sum(finite) / len(finite) if finite else None
    return TrainingPoint(step, epoch, loss, mean, dice)


class TrainingRun:
    """One training child. ``start()`` returns at once; ``on_update(point)`` and ``on_finished(snapshot)`` are
    called on the reader thread. ``cancel_event`` (a ``threading.Event``) cancels when set, like :meth:`cancel`."""

    def __init__(self, request: TrainingRequest, on_update: Optional[Callable[[TrainingPoint], None]] = None,
                 on_finished: Optional[Callable[[TrainingSnapshot], None]] = None,
                 cancel_event: Optional[threading.Event] = None):
        self.request = request
        self.on_update = on_update
        self.on_finished = on_finished
        self.cancel_event = cancel_event if cancel_event is not None else threading.Event()
        self._lock = threading.Lock()
        self._state = "starting"
        self._message = "starting the training process"
        self._points: list[TrainingPoint] = []
        self._log: list[str] = []
        self._model_id = ""
        self._error = ""
        self._step = 0
        self._epoch = 0
        self._process: Optional[subprocess.Popen] = None
        self._reader: Optional[threading.Thread] = None
        self._watcher: Optional[threading.Thread] = None
        self._done = threading.Event()

    @property
    def pid(self) -> Optional[int]:
        return self._process.pid if self._process is not None else None

    def start(self) -> TrainingRun:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self._process = subprocess.Popen(self.request.argv(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, text=True, bufsize=1, env=env)
        self._reader = threading.Thread(target=self._read, name="training-run-reader", daemon=True)
        self._watcher = threading.Thread(target=self._watch_cancel, name="training-run-cancel", daemon=True)
        self._reader.start()
        self._watcher.start()
        return self

    def cancel(self) -> None:
        self.cancel_event.set()

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Wait (off the GUI thread) until the run has ended; True when it has."""
        return self._done.wait(timeout)

    def snapshot(self) -> TrainingSnapshot:
        with self._lock:
            return TrainingSnapshot(self._state, tuple(self._points), self._message, self._model_id,
                                    tuple(self._log[-200:]))

    # --- the child's side --------------------------------------------------------------------------------
    def _watch_cancel(self) -> None:
        while not self._done.is_set():
            if self.cancel_event.wait(0.1):
                break
        if self._done.is_set() or self._process is None:
            return
        with self._lock:
            self._message = "cancelling (the checkpoint keeps what was learned)"
        proc = self._process
        steps = ((signal.SIGINT, INTERRUPT_WAIT_S), (signal.SIGTERM, TERMINATE_WAIT_S))
        if sys.platform == "win32":  # no SIGINT to a child there: terminate it (the checkpoint is atomic)
            steps = ((signal.SIGTERM, TERMINATE_WAIT_S),)
        for sig, wait_s in steps:
            if proc.poll() is not None:
                return
            try:
                proc.send_signal(sig)
                proc.wait(wait_s)
                return
            except subprocess.TimeoutExpired:
                continue
            except ProcessLookupError:
                return
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    def _add(self, point: TrainingPoint) -> None:
        with self._lock:
            self._points.append(point)
            self._step, self._epoch = point.step, point.epoch
            loss = "" if point.loss is None else f", loss {point.loss:.3f}"
            dice = "" if point.dice is None else f", validation Dice {point.dice:.3f}"
            self._message = f"epoch {point.epoch}, step {point.step}{loss}{dice}"
        if self.on_update is not None:
            self.on_update(point)

    def _line(self, line: str) -> None:
        with self._lock:
            self._log.append(line)
            if self._state == "starting":
                self._state = "running"
        if m := _EPOCH.match(line):
            self._add(_point(int(m.group(2)), int(m.group(1)), float(m.group(3)), m.group(4)))
        elif m := _UNTRAINED.match(line):
            self._add(_point(self._step, self._epoch, None, m.group(1)))
        elif m := _END.match(line):
            self._add(_point(int(m.group(1)), self._epoch, None, m.group(2)))
        elif m := _RESUMING.match(line):
            with self._lock:
                self._step, self._epoch = int(m.group(1)), int(m.group(2))
                self._message = line
        elif m := _WROTE.match(line):
            with self._lock:
                self._model_id = m.group(1)
                self._message = line
        elif line.startswith(_ERROR):
            with self._lock:
                self._error = line[len(_ERROR):]
        elif line.startswith(("training on ", "dataset ", "stopped (")):
            with self._lock:
                self._message = line

    def _read(self) -> None:
        proc = self._process
        assert proc is not None and proc.stdout is not None
        try:
            for raw in proc.stdout:
                line = raw.rstrip("\n")
                if line:
                    self._line(line)
        finally:
            code = proc.wait()
            with self._lock:
                if self.cancel_event.is_set() and code != 0:
                    self._state = "cancelled"
                    self._message = (f"cancelled at step {self._step}; starting the same training again "
                                     "resumes from its checkpoint")
                elif code == 0:
                    self._state = "done"
                    self._message = f"done: model {self._model_id or '?'} in {self.request.out}"
                else:
                    self._state = "failed"
                    last = self._error or (self._log[-1] if self._log else f"exit status {code}")
                    self._message = f"failed: {last}"
            self._done.set()
            if self.on_finished is not None:
                self.on_finished(self.snapshot())


def start_training(request: TrainingRequest, on_update=None, on_finished=None, cancel_event=None) -> TrainingRun:
    """Start ``request`` in a child process and return its :class:`TrainingRun` at once."""
    return TrainingRun(request, on_update, on_finished, cancel_event).start()


__all__ = ["TrainingRequest", "TrainingPoint", "TrainingSnapshot", "TrainingRun", "start_training", "parse_dice",
           "DEVICES"]
