"""Sliding-window inference: exact blending, padding, progress per batch, cancel, out-of-memory batch halving."""
from __future__ import annotations

import threading
from contextlib import nullcontext

import pytest
import torch
import torch.nn.functional as F

from ai.api import Cancelled, ModelError
from ai.runners import device as dev
from ai.runners.base import RunContext
from ai.runners.sliding_window import MIN_WEIGHT, gaussian_importance, sliding_window, tile_starts


def make_ctx(calls=None, cancel=None, **kw) -> RunContext:
    calls = [] if calls is None else calls
    return RunContext(torch.device("cpu"), lambda f, m: calls.append((f, m)), cancel, **kw)


def test_tile_starts_cover_the_axis_with_at_least_the_overlap():
    for size, patch, overlap in [(100, 32, 0.5), (33, 32, 0.25), (160, 160, 0.5), (517, 96, 0.25), (10, 32, 0.5)]:
        s = tile_starts(size, patch, overlap)
        assert s[0] == 0 and s[-1] == max(size - patch, 0)
        assert all(b - a <= patch * (1 - overlap) + 1 for a, b in zip(s, s[1:]))


def test_gaussian_importance_is_centred_normalised_and_positive():
    g = gaussian_importance((9, 16, 12), 0.125, "cpu")
    assert g.shape == (9, 16, 12) and g.dtype == torch.float32
    assert float(g.max()) == pytest.approx(1.0, abs=1e-3) and float(g.min()) >= MIN_WEIGHT * 0.999
    assert torch.allclose(g, g.flip(0)) and torch.allclose(g, g.flip(1)) and torch.allclose(g, g.flip(2))
    assert torch.equal(gaussian_importance((4, 4, 4), 0, "cpu"), torch.ones(4, 4, 4))


@pytest.mark.parametrize("shape, patch", [((37, 41, 29), (16, 20, 16)), ((5, 7, 3), (8, 8, 8)), ((8, 8, 8), (8, 8, 8))])
def test_elementwise_fn_gives_the_whole_volume_result(shape, patch):
    torch.manual_seed(0)
    image = torch.randn(2, *shape)
    out = sliding_window(lambda b: torch.cat([b * 2 + 1, b[:, :1] ** 2], 1), image, patch, make_ctx(), batch_size=3)
    expected = torch.cat([image * 2 + 1, image[:1] ** 2])
    assert out.shape == (3, *shape) and out.dtype == torch.float32
    assert torch.allclose(out, expected, atol=1e-5)


def test_a_3d_image_and_integer_input_work():
    image = torch.arange(5 * 6 * 7, dtype=torch.int16).reshape(5, 6, 7)
    out = sliding_window(lambda b: b.float() * 0.5, image, (4, 4, 4), make_ctx(), overlap=0.25)
    assert torch.allclose(out[0], image.float() * 0.5, atol=1e-4)


def _patch_edges(shape, patch, overlap) -> torch.Tensor:
    """Voxels that lie on some patch's outer shell inside the volume (where a patch's zero padding is wrong)."""
    edges = torch.zeros(shape, dtype=torch.bool)
    starts = [tile_starts(s, p, overlap) for s, p in zip(shape, patch)]
    for axis in range(3):
        for s0 in starts[axis]:
            inside = [i for i in (s0, s0 + patch[axis] - 1) if 0 < i < shape[axis] - 1]
            for i in inside:
                index = [slice(None)] * 3
                index[axis] = i
                edges[tuple(index)] = True
    return edges


def test_a_convolution_is_exact_where_no_patch_edge_lies_and_close_elsewhere():
    torch.manual_seed(1)
    shape, patch = (30, 34, 26), (16, 16, 16)
    image = torch.randn(1, *shape)
    weight = torch.randn(2, 1, 3, 3, 3)
    fn = lambda b: F.conv3d(b, weight, padding=1)  # noqa: E731 -- receptive field 1 voxel, inside the overlap
    whole = F.conv3d(image[None], weight, padding=1)[0]
    out = sliding_window(fn, image, patch, make_ctx(), overlap=0.5)
    edges = _patch_edges(shape, patch, 0.5)
    inner = ~edges
    assert inner.sum() > 0.3 * inner.numel()
    assert torch.allclose(out[:, inner], whole[:, inner], atol=1e-5)
    # on patch edges the Gaussian gives the wrong (edge) values little weight: far better than plain averaging
    err_gauss = (out - whole).abs().max()
    err_mean = (sliding_window(fn, image, patch, make_ctx(), overlap=0.5, sigma_scale=0) - whole).abs().max()
    assert err_gauss < 0.1 * err_mean and err_gauss < 0.02 * whole.abs().max()


def test_progress_is_reported_once_per_batch_with_increasing_fractions():
    calls = []
    n_tiles = len(tile_starts(20, 8, 0.5)) ** 3  # 4 ** 3 = 64
    sliding_window(lambda b: b, torch.zeros(20, 20, 20), (8, 8, 8), make_ctx(calls), batch_size=5)
    assert len(calls) == -(-n_tiles // 5)
    fractions = [f for f, _ in calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and calls[-1][1] == f"window {n_tiles}/{n_tiles}"


def test_cancel_after_the_first_batch_stops_the_run():
    cancel = threading.Event()
    batches = []

    def fn(b):
        batches.append(len(b))
        return b

    ctx = RunContext(torch.device("cpu"), lambda f, m: cancel.set(), cancel)
    with pytest.raises(Cancelled):
        sliding_window(fn, torch.zeros(20, 20, 20), (8, 8, 8), ctx, batch_size=4)
    assert batches == [4]


def test_out_of_memory_halves_the_batch_and_the_result_is_still_right():
    seen = []
    freed = []

    def fn(b):
        seen.append(len(b))
        if len(b) > 1:
            raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 MiB")
        return b * 3

    image = torch.randn(1, 20, 21, 22)
    ctx = make_ctx()
    orig = dev.free_cached_memory
    import ai.runners.sliding_window as sw

    sw.free_cached_memory = lambda d: (freed.append(str(d)), orig(d))
    try:
        out = sliding_window(fn, image, (8, 8, 8), ctx, batch_size=8)
    finally:
        sw.free_cached_memory = orig
    assert seen[:4] == [8, 4, 2, 1] and set(seen[4:]) == {1} and freed == ["cpu"] * 3
    assert torch.allclose(out, image * 3, atol=1e-5)


def test_out_of_memory_at_batch_size_one_is_raised_and_other_errors_are_not_retried():
    def oom(b):
        raise torch.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(torch.OutOfMemoryError):
        sliding_window(oom, torch.zeros(8, 8, 8), (8, 8, 8), make_ctx(), batch_size=4)
    calls = []

    def broken(b):
        calls.append(len(b))
        raise ValueError("shape mismatch")

    with pytest.raises(ValueError):
        sliding_window(broken, torch.zeros(16, 16, 16), (8, 8, 8), make_ctx(), batch_size=4)
    assert calls == [4]


def test_stitch_on_cpu_and_mixed_precision_reach_the_accumulators_and_fn(monkeypatch):
    entered = []

    def fake_autocast(device, enabled=True):
        entered.append((str(device), enabled))
        return nullcontext()

    import ai.runners.sliding_window as sw

    monkeypatch.setattr(sw, "autocast", fake_autocast)
    ctx = make_ctx(mixed_precision=True, stitch_on_cpu=True)
    out = sliding_window(lambda b: b.half(), torch.ones(8, 8, 8), (8, 8, 8), ctx)
    assert entered == [("cpu", True)] and out.device.type == "cpu" and out.dtype == torch.float32


def test_bad_fn_output_is_refused():
    with pytest.raises(ValueError, match="returned shape"):
        sliding_window(lambda b: b[:, :, :4], torch.zeros(8, 8, 8), (8, 8, 8), make_ctx())


# --- device helpers ------------------------------------------------------------------------------------------
def test_choose_device_without_a_gpu():
    assert dev.choose_device("auto").type in ("cpu", "mps", "cuda")
    assert dev.choose_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="CUDA GPU was requested, but none is available"):
            dev.choose_device("cuda")
        assert dev.choose_device("auto").type in ("cpu", "mps")
    with pytest.raises(ModelError, match="unknown device 'tpu'"):
        dev.choose_device("tpu")
    assert dev.describe_device(torch.device("cpu")) == f"cpu ({torch.get_num_threads()} threads)"


def test_choose_device_with_a_pretend_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert dev.choose_device("auto") == torch.device("cuda", 0)
    assert dev.choose_device("cuda") == torch.device("cuda", 0)
    assert dev.choose_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ModelError, match="cuda:2 was requested, but this computer has 2"):
        dev.choose_device("cuda:2")

    class Props:
        name = "NVIDIA H200"
        total_memory = 139 * 2 ** 30

    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: Props)
    assert dev.describe_device(torch.device("cuda", 0)) == "cuda:0 (NVIDIA H200, 139 GiB)"


def test_mps_requested_where_there_is_none(monkeypatch):
    monkeypatch.setattr(dev, "_mps_available", lambda: False)
    with pytest.raises(ModelError, match="MPS"):
        dev.choose_device("mps")


def test_is_oom_recognises_cuda_and_mps_messages():
    assert dev.is_oom(torch.OutOfMemoryError("x"))
    assert dev.is_oom(RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"))
    assert dev.is_oom(RuntimeError("MPS backend out of memory (MPS allocated: 1 GB)"))
    assert not dev.is_oom(RuntimeError("size mismatch"))
    assert not dev.is_oom(ValueError("out of memory"))


def test_autocast_is_float16_on_cuda_only():
    assert isinstance(dev.autocast(torch.device("cpu"), True), nullcontext)
    assert isinstance(dev.autocast(torch.device("cuda", 0), False), nullcontext)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "CUDA is not available" on a machine without a GPU
        ac = dev.autocast(torch.device("cuda", 0), True)
    assert isinstance(ac, torch.autocast) and ac.fast_dtype == torch.float16
    assert dev.precision_name(torch.device("cuda", 0), True) == "float16 (autocast)"
    assert dev.precision_name(torch.device("cpu"), True) == "float32"
    dev.free_cached_memory(torch.device("cpu"))  # no GPU: only a garbage collection
