"""Volume-rendering presets as plain data, and the ``vtkVolumeProperty`` built from one.

A :class:`TransferPreset` is what a transfer-function editor edits: lists of ``(value, opacity)``
and ``(value, r, g, b)`` points (colours 0-1), a blend mode (``"composite"``, ``"mip"``,
``"minip"``), shading and its lighting coefficients. CT presets are in Hounsfield units; MR
intensities have no fixed scale, so MR presets are ``units="relative"``: 0 and 1 stand for the
volume's robust low and high intensity (0.5th and 99.5th percentile) and :meth:`TransferPreset.resolved`
turns them into intensities for one volume (an editor shows and edits the resolved preset).

The CT numbers follow 3D Slicer's VolumeRendering presets ("CT-Bone", "CT-Muscle", "CT-Lung",
"CT-AAA", "CT-MIP", "MR-Default", "MR-MIP"), tuned where noted: Slicer's CT-Bone ramps opacity up
from -16 HU, which at 1 mm unit distance makes 20 cm of soft tissue opaque and hides the skeleton
behind the skin; ``ct_bone`` starts at 200 HU so bone shows through (contrast-filled heart and
vessels faintly, as in Slicer).
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field, replace

import numpy as np

BLEND_MODES = ("composite", "mip", "minip")
#: "HU" and "value" are absolute intensities (CT, other); "relative" is 0-1 of the robust range.
UNITS = ("HU", "value", "relative")


@dataclass
class TransferPreset:
    """An editable transfer function: points sorted by value, colours and opacities in 0-1."""

    name: str
    title: str
    modality: str  # "CT", "MR" or "" (any)
    opacity_points: list[tuple[float, float]]
    color_points: list[tuple[float, float, float, float]]
    blend: str = "composite"
    shade: bool = True
    ambient: float = 0.1
    diffuse: float = 0.9
    specular: float = 0.2
    specular_power: float = 10.0
    units: str = "HU"  # one of UNITS
    unit_distance_mm: float = 1.0  # the path length over which an opacity point's opacity applies
    description: str = ""
    gradient_opacity_points: list[tuple[float, float]] = field(default_factory=list)  # empty: none

    def __post_init__(self) -> None:
        if self.blend not in BLEND_MODES:
            raise ValueError(f"blend is one of {BLEND_MODES}, got {self.blend!r}")
        if self.units not in UNITS:
            raise ValueError(f"units is one of {UNITS}, got {self.units!r}")
        self.opacity_points = sorted((float(v), float(a)) for v, a in self.opacity_points)
        self.color_points = sorted((float(v), float(r), float(g), float(b)) for v, r, g, b in self.color_points)
        self.gradient_opacity_points = sorted((float(v), float(a)) for v, a in self.gradient_opacity_points)
        if not self.opacity_points or not self.color_points:
            raise ValueError("a preset needs at least one opacity point and one colour point")

    def copy(self) -> "TransferPreset":
        return copy.deepcopy(self)

    def shifted(self, offset: float) -> "TransferPreset":
        """All opacity and colour points moved by ``offset`` (the "shift" slider of other viewers)."""
        return replace(self, opacity_points=[(v + offset, a) for v, a in self.opacity_points],
                       color_points=[(v + offset, r, g, b) for v, r, g, b in self.color_points])

    def resolved(self, low: float, high: float) -> "TransferPreset":
        """This preset in intensities: relative points mapped from 0-1 onto ``low``-``high``; HU presets unchanged."""
        if self.units != "relative":
            return self.copy()
        span = float(high) - float(low) or 1.0

        def f(v: float) -> float:
            return float(low) + v * span

        return replace(self, units="HU" if self.modality == "CT" else "value",
                       opacity_points=[(f(v), a) for v, a in self.opacity_points],
                       color_points=[(f(v), r, g, b) for v, r, g, b in self.color_points])

    def to_dict(self) -> dict:
        """JSON-ready form (lists of lists), for saving user presets."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TransferPreset":
        return cls(**data)


def _ct(name, title, opacity, color, **kw) -> TransferPreset:
    return TransferPreset(name, title, "CT", opacity, color, **kw)


#: name → preset. Names are stable identifiers (settings, tests); titles are for menus.
PRESETS: dict[str, TransferPreset] = {p.name: p for p in (
    _ct("ct_bone", "CT bone",
        [(-1024, 0.0), (200, 0.0), (450, 0.45), (750, 0.85), (3071, 0.85)],
        [(-1024, 0.0, 0.0, 0.0), (200, 0.73, 0.25, 0.30), (450, 0.91, 0.82, 0.55), (1200, 1.0, 1.0, 0.95),
         (3071, 1.0, 1.0, 1.0)],
        description="Skeleton, shaded; soft tissue transparent."),
    _ct("ct_soft_tissue", "CT soft tissue",
        [(-1024, 0.0), (-155, 0.0), (218, 0.68), (420, 0.83), (3071, 0.80)],
        [(-1024, 0.0, 0.0, 0.0), (-155, 0.55, 0.25, 0.15), (218, 0.88, 0.60, 0.29), (420, 1.0, 0.94, 0.95),
         (3071, 0.83, 0.66, 1.0)],
        description="Skin and muscle surface (after Slicer's CT-Muscle)."),
    _ct("ct_lung", "CT lung",
        [(-1024, 0.0), (-600, 0.0), (-599, 0.15), (-400, 0.15), (-399, 0.0), (3071, 0.0)],
        [(-1024, 0.3, 0.3, 1.0), (-600, 0.0, 0.0, 1.0), (-530, 0.13, 0.78, 0.07), (-460, 0.93, 1.0, 0.11),
         (-400, 0.89, 0.25, 0.02), (3071, 1.0, 0.3, 0.3)],
        shade=True, ambient=0.2, diffuse=1.0, specular=0.0, specular_power=1.0,
        description="Lung boundaries and vessels (-600 to -400 HU) as a coloured shell."),
    _ct("ct_angio", "CT angiography",
        [(-1024, 0.0), (140, 0.0), (166, 0.69), (214, 0.70), (420, 0.83), (3071, 0.80)],
        [(-1024, 0.0, 0.0, 0.0), (140, 0.62, 0.36, 0.18), (166, 0.88, 0.60, 0.29), (214, 1.0, 1.0, 1.0),
         (420, 1.0, 0.94, 0.95), (3071, 0.83, 0.66, 1.0)],
        description="Contrast-filled vessels and bone (after Slicer's CT-AAA)."),
    _ct("ct_mip", "CT MIP",
        [(-1024, 1.0), (3071, 1.0)],
        [(-1024, 0.0, 0.0, 0.0), (-200, 0.0, 0.0, 0.0), (800, 1.0, 1.0, 1.0), (3071, 1.0, 1.0, 1.0)],
        blend="mip", shade=False, ambient=1.0, diffuse=0.0, specular=0.0,
        description="Maximum-intensity projection, grey -200 to 800 HU."),
    _ct("ct_minip", "CT MinIP",
        [(-1024, 1.0), (3071, 1.0)],
        [(-1024, 0.0, 0.0, 0.0), (-1000, 0.0, 0.0, 0.0), (-500, 1.0, 1.0, 1.0), (3071, 1.0, 1.0, 1.0)],
        blend="minip", shade=False, ambient=1.0, diffuse=0.0, specular=0.0,
        description="Minimum-intensity projection, grey -1000 to -500 HU. Air around the patient is the "
                    "minimum of every ray that crosses it: use with a crop box (a slab inside the body)."),
    TransferPreset("mr_default", "MR default", "MR",
                   [(0.0, 0.0), (0.03, 0.0), (0.06, 0.15), (0.2, 0.3), (0.35, 0.375), (1.0, 0.5)],
                   [(0.0, 0.0, 0.0, 0.0), (0.03, 0.17, 0.0, 0.0), (0.06, 0.40, 0.15, 0.08),
                    (0.2, 0.78, 0.61, 0.38), (0.35, 0.85, 0.84, 0.79), (1.0, 1.0, 1.0, 1.0)],
                   shade=True, ambient=0.2, diffuse=1.0, specular=0.0, specular_power=1.0, units="relative",
                   description="Translucent tissue (after Slicer's MR-Default), relative to the robust range."),
    TransferPreset("mr_mip", "MR MIP", "MR",
                   [(0.0, 1.0), (1.0, 1.0)],
                   [(0.0, 0.0, 0.0, 0.0), (0.1, 0.0, 0.0, 0.0), (1.0, 1.0, 1.0, 1.0)],
                   blend="mip", shade=False, ambient=1.0, diffuse=0.0, specular=0.0, units="relative",
                   description="Maximum-intensity projection (MR angiography), relative to the robust range."),
)}

#: The preset a new volume of a modality starts with.
DEFAULT_PRESET = {"CT": "ct_bone", "MR": "mr_default"}


def preset_names(modality: str | None = None) -> list[str]:
    """Preset names, for one modality when given (presets of another modality left out)."""
    return [n for n, p in PRESETS.items() if modality is None or p.modality in ("", modality)]


def get_preset(name: str) -> TransferPreset:
    """A copy of the named preset (edit it freely)."""
    try:
        return PRESETS[name].copy()
    except KeyError:
        raise KeyError(f"no volume-rendering preset {name!r}; known: {', '.join(PRESETS)}") from None


def default_preset_name(modality: str) -> str:
    return DEFAULT_PRESET.get(modality.upper(), "ct_bone" if modality.upper() == "CT" else "mr_default")


def robust_range(array: np.ndarray, low_pct: float = 0.5, high_pct: float = 99.5) -> tuple[float, float]:
    """Percentile range of an intensity array, from a subsample of at most ~1 M voxels (fast on big volumes)."""
    step = max(1, int(round((array.size / 1_000_000) ** (1 / 3))))
    sample = array[::step, ::step, ::step] if array.ndim == 3 else array
    lo, hi = np.percentile(sample, (low_pct, high_pct))
    return float(lo), float(hi) if hi > lo else float(lo) + 1.0


def blend_mode_id(blend: str) -> int:
    """The ``vtkVolumeMapper`` blend-mode constant for a preset's blend name."""
    from vtkmodules.vtkRenderingVolume import vtkVolumeMapper

    return {"composite": vtkVolumeMapper.COMPOSITE_BLEND, "mip": vtkVolumeMapper.MAXIMUM_INTENSITY_BLEND,
            "minip": vtkVolumeMapper.MINIMUM_INTENSITY_BLEND}[blend]


def build_volume_property(preset: TransferPreset, prop=None):
    """A ``vtkVolumeProperty`` (new, or ``prop`` updated in place) showing ``preset``.

    The blend mode belongs to the mapper: set it with :func:`blend_mode_id`.
    """
    from vtkmodules.vtkCommonDataModel import vtkPiecewiseFunction
    from vtkmodules.vtkRenderingCore import vtkColorTransferFunction, vtkVolumeProperty

    prop = prop if prop is not None else vtkVolumeProperty()
    color = vtkColorTransferFunction()
    for v, r, g, b in preset.color_points:
        color.AddRGBPoint(v, r, g, b)
    opacity = vtkPiecewiseFunction()
    for v, a in preset.opacity_points:
        opacity.AddPoint(v, a)
    prop.SetColor(color)
    prop.SetScalarOpacity(opacity)
    prop.SetScalarOpacityUnitDistance(preset.unit_distance_mm)
    if preset.gradient_opacity_points:
        gradient = vtkPiecewiseFunction()
        for v, a in preset.gradient_opacity_points:
            gradient.AddPoint(v, a)
        prop.SetGradientOpacity(gradient)
        prop.DisableGradientOpacityOff()
    else:
        prop.DisableGradientOpacityOn()
    prop.SetInterpolationTypeToLinear()
    prop.SetShade(1 if preset.shade else 0)
    prop.SetAmbient(preset.ambient)
    prop.SetDiffuse(preset.diffuse)
    prop.SetSpecular(preset.specular)
    prop.SetSpecularPower(preset.specular_power)
    return prop


_ALIASES_3D = {"angiography": "angio", "ct_angiography": "angio", "cta": "angio", "vessels": "angio",
               "soft": "soft_tissue", "default": "default"}


def find_preset_name(name: str, modality: str = "CT") -> str:
    """A preset key from a user's name: ``ct_bone``, or ``bone`` / ``soft tissue`` / ``MIP`` for ``modality``."""
    if name in PRESETS:
        return name
    key = name.strip().lower().replace(" ", "_").replace("-", "_")
    key = _ALIASES_3D.get(key, key)
    for candidate in (key, f"{modality.lower()}_{key}", f"ct_{key}", f"mr_{key}"):
        if candidate in PRESETS and PRESETS[candidate].modality in ("", modality.upper()):
            return candidate
    raise KeyError(f"no volume-rendering preset {name!r} for {modality}; known: "
                   f"{', '.join(preset_names(modality.upper()))}")
