"""Load model files as untrusted input: never unpickle arbitrary Python objects.

A ``torch.save`` file is a pickle, and unpickling can run any code the file names
(``os.system`` and friends). :func:`load_checkpoint` therefore uses torch's restricted
unpickler (``weights_only=True``), which only rebuilds tensors, containers and plain
values, plus numpy scalars and dtypes (their reconstructors run no code). A file that
needs anything else is refused with a message saying why and what to save instead.
Safetensors and TorchScript files hold no Python pickles of user objects at all.
"""
from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ai.api import ModelError

SAVE_SAFELY = ("save the weights as safetensors, as TorchScript (torch.jit.save), "
               "or as a plain state_dict (torch.save(model.state_dict()))")


def _numpy_safe_globals() -> list:
    """numpy's scalar/dtype reconstructors: they rebuild numbers and run nothing else."""
    found = []
    for module, names in (("numpy._core.multiarray", ("scalar", "_reconstruct")),
                          ("numpy.core.multiarray", ("scalar", "_reconstruct"))):
        try:
            mod = __import__(module, fromlist=list(names))
        except Exception:
            continue
        found += [getattr(mod, n) for n in names if hasattr(mod, n) and n == "scalar"]
    found.append(np.dtype)
    found += [type(np.dtype(t)) for t in ("float64", "float32", "int64", "int32", "bool", "float16", "int16",
                                          "uint8", "uint16", "int8")]
    return found


def _describe_refusal(exc: Exception) -> str:
    text = str(exc)
    for line in text.splitlines():
        line = line.strip()
        if "Unsupported global" in line or "unsupported" in line.lower() and "GLOBAL" in line:
            return line.split("Unsupported global:", 1)[-1].strip().rstrip(".") or line
    return text.splitlines()[0][:200] if text else type(exc).__name__


def is_torchscript(path: str | os.PathLike) -> bool:
    """A TorchScript archive is a zip with a ``code/`` folder (a torch.save zip has none)."""
    try:
        with zipfile.ZipFile(path) as zf:
            return any("/code/" in f"/{name}" for name in zf.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``: tensors, containers, numbers, strings; nothing that runs code.

    Raises :class:`ModelError` when the file is missing, unreadable, or would need unpickling of
    other objects (the message names the object the file asked for).
    """
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"{p.name}: model file not found ({p})")
    if is_torchscript(p):
        raise ModelError(f"{p.name} is a TorchScript archive, not a checkpoint: set format = \"torchscript\"")
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            return torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ModelError(f"{p.name}: refused to load: the file asks to unpickle Python objects "
                         f"({_describe_refusal(exc)}), which could run code on this computer; "
                         f"{SAVE_SAFELY}") from None
    except (RuntimeError, EOFError, OSError, ValueError, AttributeError, ImportError) as exc:
        raise ModelError(f"{p.name}: not a readable PyTorch checkpoint: {str(exc).splitlines()[0][:200]}") from None


def load_state_dict(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, torch.Tensor]:
    """Weights from a ``.safetensors`` file or a plain ``state_dict`` checkpoint (loaded safely)."""
    p = Path(path)
    if p.suffix == ".safetensors":
        if not p.is_file():
            raise ModelError(f"{p.name}: model file not found ({p})")
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(p), device=str(map_location))
        except (SafetensorError, OSError, ValueError) as exc:
            raise ModelError(f"{p.name}: not a readable safetensors file: {exc}") from None
    data = load_checkpoint(p, map_location)
    for key in ("state_dict", "network_weights", "model"):  # common wrappers
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
            break
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise ModelError(f"{p.name}: holds {type(data).__name__}, not a state_dict of tensors")
    return data


def load_torchscript(path: str | os.PathLike, map_location: Any = "cpu"):
    """A TorchScript module (its code is TorchScript, run by torch's interpreter, not Python pickles)."""
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"{p.name}: model file not found ({p})")
    if not is_torchscript(p):
        raise ModelError(f"{p.name}: not a TorchScript archive (save it with torch.jit.save)")
    try:
        module = torch.jit.load(str(p), map_location=map_location)
    except (RuntimeError, ValueError, OSError) as exc:
        raise ModelError(f"{p.name}: not a loadable TorchScript model: {str(exc).splitlines()[0][:200]}") from None
    module.eval()
    return module


def load_into(net: torch.nn.Module, state, what: str) -> torch.nn.Module:
    """``net.load_state_dict(state, strict=True)``; a mismatch becomes a ModelError saying the weights do not fit
    ``what`` (torch's first lines of the mismatch, shortened)."""
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        raise ModelError(f"the weights do not fit {what}: {' '.join(lines[1:3]) or lines[0]}"[:400]) from None
    return net
