"""The training loss: cross-entropy plus soft Dice over the labels (background left out), as nnU-Net.

The Dice term is a batch Dice (sums over the batch and the voxels), so a label absent from one patch does
not give that patch a Dice of zero. Computed in float32 also under autocast.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

SMOOTH = 1e-5


def soft_dice(probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-class soft Dice ``(K,)`` of probabilities ``(B, K, ...)`` against integer labels ``(B, ...)``."""
    classes = probs.shape[1]
    onehot = F.one_hot(target, classes).movedim(-1, 1).to(probs.dtype)
    dims = (0, *range(2, probs.ndim))
    inter = (probs * onehot).sum(dims)
    denom = probs.sum(dims) + onehot.sum(dims)
    return (2.0 * inter + SMOOTH) / (denom + SMOOTH)


def dice_ce_loss(logits: torch.Tensor, target: torch.Tensor, channels: Sequence[int] = ()) -> torch.Tensor:
    """Cross-entropy + (1 - mean soft Dice of the label ``channels``; default 1..K-1) for logits ``(B, K, ...)``.

    Channels the model has but does not learn (ids between the labels' ids) stay out of the Dice term; the
    cross-entropy teaches them to stay empty.
    """
    logits = logits.float()
    ce = F.cross_entropy(logits, target)
    dice = soft_dice(logits.softmax(1), target)
    chosen = list(channels) or list(range(1, dice.numel())) or [0]
    return ce + (1.0 - dice[chosen].mean())
