"""Pick the torch device, describe it, recognise out-of-memory errors, autocast on GPU."""
from __future__ import annotations

import contextlib
import gc
import re

import torch

from ai.api import ModelError

_CUDA = re.compile(r"^cuda(?::(\d+))?$")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def choose_device(requested: str = "auto") -> torch.device:
    """``auto`` (CUDA, then Apple MPS, then CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``."""
    req = (requested or "auto").strip().lower()
    if req == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if req == "cpu":
        return torch.device("cpu")
    if req == "mps":
        if not _mps_available():
            raise ModelError("the Apple GPU (MPS) was requested, but it is not available on this computer")
        return torch.device("mps")
    m = _CUDA.match(req)
    if m is None:
        raise ModelError(f"unknown device '{requested}': use auto, cpu, cuda, cuda:N or mps")
    if not torch.cuda.is_available():
        build = "a CPU-only build of torch" if torch.version.cuda is None else "no usable NVIDIA GPU or driver"
        raise ModelError(f"a CUDA GPU was requested, but none is available ({build}); use the CPU instead")
    index = int(m.group(1)) if m.group(1) is not None else torch.cuda.current_device()
    count = torch.cuda.device_count()
    if index >= count:
        raise ModelError(f"GPU cuda:{index} was requested, but this computer has {count} CUDA GPU(s)")
    return torch.device("cuda", index)


def describe_device(device: torch.device) -> str:
    """E.g. ``cuda:0 (NVIDIA H200, 139 GiB)``, ``mps (Apple GPU)``, ``cpu (2 threads)``."""
    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        return f"cuda:{index} ({props.name}, {props.total_memory / 2 ** 30:.0f} GiB)"
    if device.type == "mps":
        return "mps (Apple GPU)"
    return f"{device.type} ({torch.get_num_threads()} threads)"


def is_oom(exc: BaseException) -> bool:
    """True for a GPU (CUDA or MPS) out-of-memory error."""
    candidates = (getattr(torch, "OutOfMemoryError", None), getattr(torch.cuda, "OutOfMemoryError", None))
    oom_types = tuple(t for t in candidates if isinstance(t, type))
    if oom_types and isinstance(exc, oom_types):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def autocast(device: torch.device, enabled: bool = True):
    """float16 autocast on CUDA; a no-op context elsewhere."""
    device = torch.device(device)
    if enabled and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def precision_name(device: torch.device, mixed_precision: bool) -> str:
    return "float16 (autocast)" if mixed_precision and torch.device(device).type == "cuda" else "float32"


def free_cached_memory(device: torch.device) -> None:
    """Drop unreferenced tensors and hand the allocator's cached blocks back to the driver."""
    device = torch.device(device)
    gc.collect()
    if device.type == "cuda" and torch.cuda.is_available():
        torch.cuda.empty_cache()
    elif device.type == "mps" and _mps_available():
        torch.mps.empty_cache()
