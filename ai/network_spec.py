"""What a user's learned model folder declares about its network (torch-free; checked when the folder is listed).

A model folder holds ``model.toml`` and the weights. Besides the common manifest fields
(see :mod:`ai.registry`), a learned model has::

    [input]
    spacing_mm = [2.0, 1.5, 1.5]     # z, y, x of the model's grid; omit to run at the image's own spacing
    orientation = "LPS"              # array x, y, z point to these patient directions; omit to keep the image's axes
    channels = 1
    patch_size = [64, 128, 128]      # z, y, x
    overlap = 0.5

    [input.normalization]
    kind = "ct"                      # "ct": clip to [clip], then (x - mean) / std;  "zscore": per image;
    clip = [-1000.0, 1000.0]         # "scale": clip, then map to [0, 1];  "none"
    mean = 0.0
    std = 1000.0

    [network]
    format = "torchscript"           # "torchscript" | "safetensors" | "checkpoint" (a state_dict) | "onnx"
    file = "model.pt"                # inside the folder: no absolute path, no '..', no link leading out
    architecture = "unet3d"          # safetensors / checkpoint: a network defined by radview
    output = "logits"                # "logits" (softmax over channels) | "probabilities"
    resample_back = "probabilities"  # "probabilities": resample, then argmax | "labels": argmax, then nearest
    [network.args]                   # the architecture's arguments
    features = [16, 32, 64]

Output channel ``c`` is label ``c`` (channel 0 is the background), so the network must have
``max(label id) + 1`` output channels; that is checked on a test patch when the model loads.

Security rule: the folder is untrusted input. ``network.file`` must lie inside it (:mod:`ai.model_paths`), and
``format = "torchscript"`` weights are a program that runs with the user's permissions: such a model runs only
where the user allowed it (:mod:`ai.code_consent`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ai.model_paths import inside

FORMATS = ("torchscript", "safetensors", "checkpoint", "onnx")
ARCHITECTURES = ("unet3d",)
NORMALIZATIONS = ("ct", "zscore", "scale", "none")
OUTPUTS = ("logits", "probabilities")
RESAMPLE_BACK = ("probabilities", "labels")
_ORIENTATION = re.compile(r"^[LRAPSI]{3}$")


class SpecError(ValueError):
    """The [network] or [input] tables of a learned model are wrong; the message names the field."""


@dataclass(frozen=True)
class Normalization:
    kind: str = "none"
    clip: tuple[float, float] | None = None
    mean: float = 0.0
    std: float = 1.0
    nonzero: bool = False  # zscore: statistics over non-zero voxels only (MR)

    def describe(self) -> str:
        if self.kind == "ct":
            return f"clip to [{self.clip[0]:g}, {self.clip[1]:g}], then (x - {self.mean:g}) / {self.std:g}"
        if self.kind == "scale":
            return f"clip to [{self.clip[0]:g}, {self.clip[1]:g}], then scale to [0, 1]"
        if self.kind == "zscore":
            return "z-score per image" + (" (non-zero voxels)" if self.nonzero else "")
        return "none"


@dataclass(frozen=True)
class NetworkSpec:
    format: str
    file: str  # absolute path
    architecture: str = ""
    args: Mapping[str, Any] = field(default_factory=dict)
    output: str = "logits"
    resample_back: str = "probabilities"
    orientation: str = ""
    channels: int = 1
    normalization: Normalization = Normalization()

    @property
    def method(self) -> str:
        names = {"torchscript": "TorchScript", "safetensors": "safetensors", "checkpoint": "PyTorch state_dict",
                 "onnx": "ONNX"}
        return f"learned network ({names[self.format]})"


def orientation_ok(code: str) -> bool:
    """Three letters, one from each of L/R, A/P, S/I."""
    if not _ORIENTATION.match(code):
        return False
    return all(sum(c in pair for c in code) == 1 for pair in ("LR", "AP", "SI"))


def _choice(table: Mapping, key: str, choices: tuple[str, ...], default: str | None, where: str) -> str:
    value = table.get(key, default)
    if value is None:
        raise SpecError(f"missing field '{where}{key}' (one of {', '.join(choices)})")
    if value not in choices:
        raise SpecError(f"field '{where}{key}' = {value!r}: use one of {', '.join(choices)}")
    return value


def _number(table: Mapping, key: str, default: float, where: str) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(f"field '{where}{key}' must be a number")
    return float(value)


def parse_normalization(table: Any) -> Normalization:
    if not isinstance(table, dict):
        raise SpecError("[input.normalization] must be a table")
    where = "input.normalization."
    kind = _choice(table, "kind", NORMALIZATIONS, "none", where)
    clip = None
    if kind in ("ct", "scale"):
        raw = table.get("clip")
        if not (isinstance(raw, list) and len(raw) == 2 and all(isinstance(v, (int, float)) for v in raw)
                and raw[0] < raw[1]):
            raise SpecError(f"field '{where}clip' must be two increasing numbers [low, high] for kind = {kind!r}")
        clip = (float(raw[0]), float(raw[1]))
    std = _number(table, "std", 1.0, where)
    if std <= 0:
        raise SpecError(f"field '{where}std' must be positive")
    return Normalization(kind=kind, clip=clip, mean=_number(table, "mean", 0.0, where), std=std,
                         nonzero=bool(table.get("nonzero", False)))


def parse_network(network: Any, inp: Mapping[str, Any], folder: str | Path) -> NetworkSpec:
    """Check the [network] table (and the learned-model fields of [input]); resolve the weights file."""
    if not isinstance(network, dict):
        raise SpecError("[network] must be a table")
    where = "network."
    fmt = _choice(network, "format", FORMATS, None, where)
    name = network.get("file")
    if not isinstance(name, str) or not name.strip():
        raise SpecError("missing field 'network.file' (the weights file, relative to the model folder)")
    path = inside(folder, name, "network.file", SpecError)  # before anything looks at the file
    if not path.is_file():
        raise SpecError(f"weights file '{name}' not found in {folder}")
    if fmt in ("safetensors", "checkpoint"):
        arch = _choice(network, "architecture", ARCHITECTURES, None, where)
    else:
        arch = str(network.get("architecture", ""))
    args = network.get("args", {})
    if not isinstance(args, dict):
        raise SpecError("[network.args] must be a table")
    if "patch_size" not in inp:
        raise SpecError("a learned model needs 'input.patch_size' (z, y, x)")
    orientation = inp.get("orientation", "")
    if orientation and (not isinstance(orientation, str) or not orientation_ok(orientation.upper())):
        raise SpecError(f"field 'input.orientation' = {orientation!r}: three letters such as LPS or RAS")
    channels = inp.get("channels", 1)
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise SpecError("field 'input.channels' must be a positive integer")
    if channels != 1:
        raise SpecError(f"input.channels = {channels}: radview feeds one image per run, so only 1 channel works")
    return NetworkSpec(
        format=fmt, file=str(path), architecture=arch, args=dict(args),
        output=_choice(network, "output", OUTPUTS, "logits", where),
        resample_back=_choice(network, "resample_back", RESAMPLE_BACK, "probabilities", where),
        orientation=orientation.upper(), channels=channels,
        normalization=parse_normalization(inp.get("normalization", {})),
    )
