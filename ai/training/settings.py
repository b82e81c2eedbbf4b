"""What a training run is asked to do (no torch): the options of ``radview-cli ai train`` as one frozen record.

:meth:`TrainSettings.key_parameters` are the settings that change what is learned; a checkpoint is resumed
only when they and the data hash are those it was made with. The budget (``minutes``, ``epochs``), the device,
the patience and the checkpoint interval may change between a killed run and its resumption.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

DEFAULT_MINUTES = 60.0
RESUME = ("auto", "always", "never")
_ID = re.compile(r"[^A-Za-z0-9._-]+")


class TrainingError(Exception):
    """A training that cannot start or go on; the message says why (for the user)."""


@dataclass(frozen=True)
class TrainSettings:
    data: str
    out: str
    init: str = ""  # a model folder to fine-tune
    labels: tuple[str, ...] = ()  # label names to train (default: the dataset's)
    minutes: Optional[float] = None  # time budget of the whole run, resumed parts included
    epochs: Optional[int] = None  # or a number of epochs
    device: str = "auto"
    spacing_mm: Optional[tuple[float, float, float]] = None  # model grid (z, y, x); default: the data's median
    patch_size: Optional[tuple[int, int, int]] = None  # default: the median model-grid volume, capped
    features: Optional[tuple[int, ...]] = None  # U-Net level widths; default (16, 32, 64, 128)
    batch_size: int = 2
    learning_rate: float = 2e-3
    steps_per_epoch: int = 50
    patience: int = 10  # epochs without a better validation Dice before stopping early (0: never)
    checkpoint_every: int = 50  # steps; a checkpoint is also written at every epoch's end
    seed: int = 0
    augment: bool = True
    foreground_fraction: float = 0.67  # patches centred on a label voxel (each label equally often)
    mirror: float = 0.5  # probability of mirroring each allowed axis
    model_id: str = ""
    model_name: str = ""
    resume: str = "auto"  # auto: resume a matching checkpoint; always: one must exist; never: start over
    threads: int = 0  # CPU threads for torch (0: torch's default)

    def __post_init__(self) -> None:
        if self.minutes is not None and self.epochs is not None:
            raise ValueError("give a time budget (minutes) or a number of epochs, not both")
        if self.minutes is not None and self.minutes <= 0:
            raise ValueError("minutes must be positive")
        if self.epochs is not None and self.epochs < 1:
            raise ValueError("epochs must be at least 1")
        if self.batch_size < 1 or self.steps_per_epoch < 1 or self.checkpoint_every < 1:
            raise ValueError("batch size, steps per epoch and the checkpoint interval must be at least 1")
        if not 0.0 <= self.foreground_fraction <= 1.0 or not 0.0 <= self.mirror <= 1.0:
            raise ValueError("foreground_fraction and mirror are probabilities in [0, 1]")
        if self.resume not in RESUME:
            raise ValueError(f"resume must be one of {', '.join(RESUME)}")

    @property
    def budget_s(self) -> Optional[float]:
        if self.epochs is not None:
            return None
        return 60.0 * (self.minutes if self.minutes is not None else DEFAULT_MINUTES)

    def key_parameters(self) -> dict:
        """The settings that change what is learned (not the budget, device or bookkeeping)."""
        return {"labels": list(self.labels), "spacing_mm": list(self.spacing_mm) if self.spacing_mm else None,
                "patch_size": list(self.patch_size) if self.patch_size else None,
                "features": list(self.features) if self.features else None, "batch_size": self.batch_size,
                "learning_rate": self.learning_rate, "steps_per_epoch": self.steps_per_epoch, "seed": self.seed,
                "augment": self.augment, "foreground_fraction": self.foreground_fraction, "mirror": self.mirror}

    def resolved_id(self) -> str:
        if self.model_id:
            return self.model_id
        name = _ID.sub("-", Path(self.out).resolve().name).strip("-.") or "trained-model"
        return name if name[0].isalnum() else f"m{name}"


def run_key(data_hash: str, parameters: dict, init_hash: str = "") -> str:
    """What a checkpoint must match to be resumed: the data, the parameters that shape learning, the start."""
    text = json.dumps({"data": data_hash, "parameters": parameters, "init": init_hash}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()
