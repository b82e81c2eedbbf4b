"""Training checkpoints: written atomically (temporary file, then one rename), read without unpickling code.

A checkpoint holds everything a killed run needs to go on as if it had not stopped: the network and the best
network so far, the optimiser (and the GradScaler on GPU), the step, epoch and elapsed training time, the
patch sampler's and augmentation's random state, the loss and validation history, and the run's key
(:func:`ai.training.settings.run_key`): only a run with the same data and parameters resumes from it.
A run killed while writing one leaves only a temporary file beside the last complete checkpoint; the next run
removes it (:func:`remove_leftovers`).
It is read back with ``torch.load(weights_only=True)``: tensors, numbers, strings, lists and dicts only.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

import torch

from radview_base.atomic_file import TEMP_PREFIX, atomic_path

FOLDER = "training"
NAME = "checkpoint.pt"


def checkpoint_path(out: str | os.PathLike) -> Path:
    return Path(out) / FOLDER / NAME


def save_checkpoint(out: str | os.PathLike, state: dict[str, Any]) -> Path:
    path = checkpoint_path(out)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


def remove_leftovers(out: str | os.PathLike) -> list[str]:
    """Delete the temporary files of checkpoints a killed run was writing (never the checkpoint itself)."""
    folder = Path(out) / FOLDER
    gone = []
    if folder.is_dir():
        for p in folder.glob(f"{TEMP_PREFIX}*-{NAME}"):
            p.unlink(missing_ok=True)
            gone.append(p.name)
    return gone


def load_checkpoint(out: str | os.PathLike) -> Optional[dict[str, Any]]:
    """The checkpoint in ``out``, or None when there is none; a damaged one raises ValueError."""
    path = checkpoint_path(out)
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: say so, never guess
        raise ValueError(f"{path}: not a readable training checkpoint ({str(exc).splitlines()[0][:200]})") from None
    if not isinstance(state, dict) or "key" not in state or "model" not in state:
        raise ValueError(f"{path}: not a radview training checkpoint")
    return state
