"""CT window presets (width / level in HU) and the keys that select them.

The table follows ``shared/CONVENTIONS.md`` (what radiologists know from
Slicer, OHIF, Weasis, RadiAnt and Horos). A unit test pins every name to its
numbers: a swapped pair is a clinical error, not a cosmetic one.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class WindowPreset:
    name: str
    width: float
    level: float
    key: str

    @property
    def levels(self) -> tuple[float, float]:
        """(low, high) display range."""
        return self.level - self.width / 2, self.level + self.width / 2


#: Key "0" is "from file": the series' own WindowWidth/WindowCenter, else a robust min-max.
FROM_FILE = "from file"

CT_PRESETS: tuple[WindowPreset, ...] = (
    WindowPreset("soft tissue", 400, 40, "1"),
    WindowPreset("lung", 1500, -600, "2"),
    WindowPreset("bone", 2500, 480, "3"),
    WindowPreset("brain", 80, 40, "4"),
    WindowPreset("liver", 150, 90, "5"),
    WindowPreset("mediastinum", 500, 50, "6"),
    WindowPreset("stroke", 30, 30, "7"),
    WindowPreset("CT angiography", 600, 170, "8"),
)

_BY_NAME = {p.name.lower(): p for p in CT_PRESETS}
_ALIASES = {"abdomen": "soft tissue", "soft": "soft tissue", "soft-tissue": "soft tissue", "cta": "CT angiography",
            "angio": "CT angiography", "ct-angiography": "CT angiography", "mediastinal": "mediastinum"}


def preset_names() -> list[str]:
    return [FROM_FILE] + [p.name for p in CT_PRESETS]


def find_preset(name: str) -> WindowPreset | None:
    """The preset called ``name`` (case-insensitive, a few aliases); None for "from file"."""
    key = name.strip().lower().replace("_", " ")
    if key in (FROM_FILE, "file", "default", "auto"):
        return None
    key = _ALIASES.get(key, _ALIASES.get(key.replace(" ", "-"), key)).lower()
    if key not in _BY_NAME:
        raise KeyError(f"unknown window preset {name!r}; known: {', '.join(preset_names())}")
    return _BY_NAME[key]


def preset_for_key(key: str) -> WindowPreset | None | str:
    """The preset bound to keyboard key ``key``: a WindowPreset, FROM_FILE for "0", or None if unbound."""
    if key == "0":
        return FROM_FILE
    for p in CT_PRESETS:
        if p.key == key:
            return p
    return None


def robust_window(array: np.ndarray, sample: int = 2_000_000) -> tuple[float, float]:
    """(width, level) covering the 0.5–99.5 percentiles of (a strided sample of) ``array``."""
    flat = array.reshape(-1)
    step = max(1, flat.size // sample)
    values = flat[::step]
    if values.dtype.kind == "f":
        values = values[np.isfinite(values)]
    if values.size == 0:
        return 1.0, 0.0
    lo, hi = np.percentile(values, [0.5, 99.5])
    if hi <= lo:
        hi = lo + 1
    return float(hi - lo), float((hi + lo) / 2)


def file_window(meta: dict, array: np.ndarray) -> tuple[float, float]:
    """(width, level) from the series' WindowWidth/WindowCenter, else a robust min-max."""
    window = meta.get("window")
    if window:
        center, width = window
        if width and width > 0:
            return float(width), float(center)
    return robust_window(array)
