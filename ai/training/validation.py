"""Validation: the network over each validation case (sliding window, as the runner does), Dice per label.

Measured on the model grid, against the label map resampled there (:mod:`ai.training.prepared`); the model's
final figures on the image grid come from ``radview-cli ai run`` + ``ai eval``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from ai.runners.base import RunContext
from ai.runners.model_grid import channel_argmax
from ai.runners.sliding_window import sliding_window
from ai.training.prepared import PreparedCase


@dataclass(frozen=True)
class CaseMetrics:
    case: str
    dice: dict[str, float]  # label name -> Dice (1.0 where both are empty)
    reference_ml: dict[str, float]
    predicted_ml: dict[str, float]

    def as_dict(self) -> dict:
        return {"case": self.case, "dice": dict(self.dice), "reference_ml": dict(self.reference_ml),
                "predicted_ml": dict(self.predicted_ml)}


def dice(pred: torch.Tensor, ref: torch.Tensor, label: int) -> float:
    p, r = pred == label, ref == label
    total = int(p.sum()) + int(r.sum())
    return 1.0 if total == 0 else 2.0 * int((p & r).sum()) / total


def predict(net, image: torch.Tensor, patch: Sequence[int], classes: int, device: torch.device,
            mixed_precision: bool = False, overlap: float = 0.25) -> torch.Tensor:
    """Labels ``(z, y, x)`` of a prepared image ``(1, z, y, x)``."""
    ctx = RunContext(device, lambda f, m: None, mixed_precision=mixed_precision, batch_size=2)
    was_training = net.training
    net.eval()
    try:
        scores = sliding_window(net, image.to(device), patch, ctx, overlap=overlap, out_channels=classes)
    finally:
        net.train(was_training)
    return channel_argmax(scores, 0).cpu()


def validate(net, cases: Sequence[PreparedCase], patch: Sequence[int], names: Sequence[str], ids: Sequence[int],
             device: torch.device, mixed_precision: bool = False) -> list[CaseMetrics]:
    out = []
    for case in cases:
        pred = predict(net, case.image, patch, max(ids) + 1, device, mixed_precision)
        ref = case.labels.to(torch.int64)
        pred = pred.to(torch.int64)
        ml = math.prod(case.grid.model_spacing) / 1000.0
        out.append(CaseMetrics(
            case.id, {n: dice(pred, ref, i) for n, i in zip(names, ids)},
            {n: float((ref == i).sum()) * ml for n, i in zip(names, ids)},
            {n: float((pred == i).sum()) * ml for n, i in zip(names, ids)}))
    return out


def mean_dice(metrics: Sequence[CaseMetrics]) -> dict[str, float]:
    """Per label, the mean over the cases; ``"mean"``: over the labels."""
    if not metrics:
        return {"mean": float("nan")}
    names = list(metrics[0].dice)
    per = {n: sum(m.dice[n] for m in metrics) / len(metrics) for n in names}
    per["mean"] = sum(per.values()) / len(names) if names else float("nan")
    return per
