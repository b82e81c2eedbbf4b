"""ai.runners.ct_ops morphology: the CPU path (scipy's maximum_filter1d) gives bit for bit what torch's max_pool3d
gives — boolean masks and HU, odd windows of any size per axis, strided (permuted) tensors, the outside left out."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ai.runners import ct_ops as ops


def torch_box_max(m: torch.Tensor, kz: int, ky: int, kx: int) -> torch.Tensor:
    t = m[None, None].float() if m.dtype == torch.bool else m[None, None]
    for k, kernel, pad in ((kx, (1, 1, kx), (0, 0, kx // 2)), (ky, (1, ky, 1), (0, ky // 2, 0)),
                           (kz, (kz, 1, 1), (kz // 2, 0, 0))):
        if k > 1:
            t = F.max_pool3d(t, kernel, stride=1, padding=pad)
    return t[0, 0]


@pytest.mark.parametrize("seed", range(12))
def test_the_cpu_box_max_is_torchs(seed):
    rng = np.random.default_rng(seed)
    shape = tuple(int(x) for x in rng.integers(3, 18, 3))
    k = [int(2 * rng.integers(0, 4) + 1) for _ in range(3)]
    mask = torch.from_numpy(rng.uniform(size=shape) > rng.uniform(0.3, 0.95))
    hu = torch.from_numpy((rng.normal(size=shape) * 300 - 400).astype(np.float32))
    assert torch.equal(ops.max_pool(mask, *k), torch_box_max(mask, *k))
    assert torch.equal(ops.max_pool(hu, *k), torch_box_max(hu, *k))
    r = [x // 2 for x in k]
    assert torch.equal(ops.dilate(mask, *r), torch_box_max(mask, *k) > 0.5)
    assert torch.equal(ops.erode(mask, *r), ~(torch_box_max(~mask, *k) > 0.5))
    strided = mask.permute(2, 0, 1)
    assert torch.equal(ops.dilate(strided, 1, 1, 1), torch_box_max(strided.contiguous(), 3, 3, 3) > 0.5)


def test_erosion_counts_the_outside_as_foreground():
    full = torch.ones((3, 4, 5), dtype=torch.bool)
    assert bool(ops.erode(full, 1, 1, 1).all())
    one = torch.zeros((5, 5, 5), dtype=torch.bool)
    one[2, 2, 2] = True
    grown = ops.dilate(one, 0, 1, 2)
    assert int(grown.sum()) == 1 * 3 * 5 and bool(grown[2, 1:4, 0:5].all())
