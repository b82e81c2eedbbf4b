"""Where training patches are centred: label-balanced draws over the training cases.

A share ``foreground_fraction`` of the patches is centred near a voxel of one label, each label present in
the case equally likely (small structures are seen as often as large ones); the rest anywhere in the
volume. A labelled centre is moved by up to a quarter patch, so the structure does not always sit in the
middle. Along an axis the patch covers whole, it is centred on the volume as the runner's sliding window pads
it (padding split evenly before and after), so training sees what inference will. Every draw uses the
sampler's own ``torch.Generator``, whose state a checkpoint keeps.
"""
from __future__ import annotations

from typing import Sequence

import torch

from ai.training.prepared import PreparedCase


class PatchSampler:
    def __init__(self, cases: Sequence[PreparedCase], patch: Sequence[int], foreground_fraction: float,
                 generator: torch.Generator):
        if not cases:
            raise ValueError("no training cases")
        self.cases = list(cases)
        self.patch = tuple(int(p) for p in patch)
        self.foreground_fraction = float(foreground_fraction)
        self.generator = generator

    def _uniform(self, n: int) -> int:
        return int(torch.randint(n, (1,), generator=self.generator))

    def draw(self) -> tuple[int, tuple[int, int, int]]:
        """(case index, patch centre ``(z, y, x)`` in model-grid voxels)."""
        index = self._uniform(len(self.cases))
        case = self.cases[index]
        shape = case.shape
        present = [k for k, where in enumerate(case.positions) if where.numel()]
        if present and float(torch.rand((1,), generator=self.generator)) < self.foreground_fraction:
            where = case.positions[present[self._uniform(len(present))]]
            flat = int(where[self._uniform(where.numel())])
            centre = [flat // (shape[1] * shape[2]), (flat // shape[2]) % shape[1], flat % shape[2]]
            jitter = [int(torch.randint(-(p // 4), p // 4 + 1, (1,), generator=self.generator)) for p in self.patch]
            centre = [min(max(c + j, 0), s - 1) for c, j, s in zip(centre, jitter, shape)]
        else:
            centre = [self._uniform(s) for s in shape]
        centre = [p // 2 - (p - s) // 2 if p >= s else c for c, p, s in zip(centre, self.patch, shape)]
        return index, (centre[0], centre[1], centre[2])
