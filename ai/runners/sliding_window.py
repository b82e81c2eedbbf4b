"""Patch-wise inference over a volume with Gaussian-weighted blending (nnU-Net style tiling).

``fn`` sees batches of patches ``(B, C, pz, py, px)`` and returns ``(B, K, pz, py, px)``;
the blended ``(K, Z, Y, X)`` float32 result sits on ``ctx.device``, or in host memory
when ``ctx.stitch_on_cpu``. A GPU out-of-memory error halves the batch and retries.
"""
from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F

from ai.runners.base import RunContext
from ai.runners.device import autocast, free_cached_memory, is_oom

#: Smallest blending weight (centre = 1): no zero weight sums, yet far below any real Gaussian weight.
MIN_WEIGHT = 1e-12


def tile_starts(size: int, patch: int, overlap: float) -> list[int]:
    """Start indices along one axis: evenly spread, neighbours overlapping by at least ``overlap``."""
    if size <= patch:
        return [0]
    target = max(patch * (1.0 - overlap), 1.0)
    n = int(math.ceil((size - patch) / target)) + 1
    step = (size - patch) / (n - 1)
    return [int(round(step * i)) for i in range(n)]


def gaussian_importance(patch_zyx: Sequence[int], sigma_scale: float = 0.125,
                        device: torch.device | str = "cpu") -> torch.Tensor:
    """A ``patch_zyx`` float32 weight map: 1 at the centre, Gaussian fall-off, never below MIN_WEIGHT.

    ``sigma_scale <= 0`` gives uniform weights (plain averaging).
    """
    patch = [int(p) for p in patch_zyx]
    if sigma_scale <= 0:
        return torch.ones(patch, dtype=torch.float32, device=device)
    axes = []
    for p in patch:
        x = torch.arange(p, dtype=torch.float64, device=device)
        axes.append(torch.exp(-0.5 * ((x - (p - 1) / 2.0) / (sigma_scale * p)) ** 2))
    g = axes[0][:, None, None] * axes[1][None, :, None] * axes[2][None, None, :]
    g = g / g.max()
    return g.clamp_min(MIN_WEIGHT).to(torch.float32)


def _pad_to(image: torch.Tensor, patch: tuple[int, int, int], value: float) -> tuple[torch.Tensor, tuple[slice, ...]]:
    size = tuple(image.shape[1:])
    before = [max(p - s, 0) // 2 for s, p in zip(size, patch)]
    after = [max(p - s, 0) - b for s, p, b in zip(size, patch, before)]
    crop = tuple(slice(b, b + s) for b, s in zip(before, size))
    if not any(before) and not any(after):
        return image, crop
    pad = (before[2], after[2], before[1], after[1], before[0], after[0])
    return F.pad(image, pad, mode="constant", value=value), crop


def sliding_window(fn: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor, patch_zyx: Sequence[int],
                   ctx: RunContext, overlap: float = 0.5, batch_size: Optional[int] = None,
                   sigma_scale: float = 0.125, out_channels: Optional[int] = None,
                   pad_value: float = 0.0) -> torch.Tensor:
    """Run ``fn`` over overlapping patches of ``image`` ((C, Z, Y, X) or (Z, Y, X)) and blend the outputs.

    An image smaller than the patch is padded with ``pad_value`` (and the result cropped back).
    ``batch_size`` defaults to ``ctx.batch_size`` or 1. Progress: ``ctx.step`` once per batch.
    """
    if image.ndim == 3:
        image = image[None]
    if image.ndim != 4:
        raise ValueError(f"sliding_window needs a (C, Z, Y, X) or (Z, Y, X) image, got shape {tuple(image.shape)}")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    patch = tuple(int(p) for p in patch_zyx)
    if len(patch) != 3 or min(patch) < 1:
        raise ValueError(f"patch_zyx must be three positive sizes, got {patch_zyx}")
    image, crop = _pad_to(image, patch, pad_value)
    size = tuple(image.shape[1:])
    starts = [tile_starts(s, p, overlap) for s, p in zip(size, patch)]
    tiles = [(z, y, x) for z in starts[0] for y in starts[1] for x in starts[2]]
    acc_device = torch.device("cpu") if ctx.stitch_on_cpu else torch.device(ctx.device)
    weight = gaussian_importance(patch, sigma_scale, acc_device)
    norm = torch.zeros(size, dtype=torch.float32, device=acc_device)
    out = None if out_channels is None else torch.zeros((out_channels, *size), dtype=torch.float32, device=acc_device)
    bs = max(int(batch_size or ctx.batch_size or 1), 1)
    n, done = len(tiles), 0
    with torch.no_grad():
        while done < n:
            ctx.check_cancel()
            chunk = tiles[done:done + bs]
            try:
                pred = _predict(fn, image, chunk, patch, ctx)
            except Exception as exc:
                if not is_oom(exc) or bs == 1:
                    raise
                pred = None  # the traceback (and its tensors) is dropped before the retry
            if pred is None:
                free_cached_memory(ctx.device)
                bs = max(bs // 2, 1)
                continue
            pred = pred.to(device=acc_device, dtype=torch.float32)
            if out is None:
                out = torch.zeros((pred.shape[1], *size), dtype=torch.float32, device=acc_device)
            elif pred.shape[1] != out.shape[0]:
                raise ValueError(f"the model returned {pred.shape[1]} channels, expected {out.shape[0]}")
            for b, (z, y, x) in enumerate(chunk):
                region = (slice(z, z + patch[0]), slice(y, y + patch[1]), slice(x, x + patch[2]))
                out[(slice(None), *region)].addcmul_(pred[b], weight)  # no (K, patch) temporary
                norm[region].add_(weight)
            del pred
            done += len(chunk)
            ctx.step(done / n, f"window {done}/{n}")
        out /= norm
        return out[(slice(None), *crop)].contiguous()


def _predict(fn, image: torch.Tensor, chunk, patch, ctx: RunContext) -> torch.Tensor:
    batch = torch.stack([image[:, z:z + patch[0], y:y + patch[1], x:x + patch[2]] for z, y, x in chunk])
    batch = batch.to(ctx.device, non_blocking=True)
    with autocast(ctx.device, ctx.mixed_precision):
        pred = fn(batch)
    if pred.ndim != 5 or pred.shape[0] != len(chunk) or tuple(pred.shape[2:]) != patch:
        raise ValueError(f"the model returned shape {tuple(pred.shape)} for a batch of shape {tuple(batch.shape)}; "
                         f"expected ({len(chunk)}, K, {', '.join(map(str, patch))})")
    return pred
