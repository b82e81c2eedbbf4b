"""What one frame of a 3D view shows, as plain values: the hand-over from the GUI's scene to the frame thread.

A :class:`FrameSpec` is a snapshot of a :class:`~viewer.render3d.scene.Scene3D` (camera, window size, quality,
volume with its transfer function, crop box, cursor, each label surface with its look) taken on the GUI thread in
well under a millisecond: numbers, a :class:`~viewer.render3d.transfer_presets.TransferPreset` copy, and
references to data nobody changes any more (the :class:`~viewer.render3d.volume_prep.PreparedVolume`, the
surfaces' ``vtkPolyData``). :class:`~viewer.render3d.mirror.MirrorScene` draws it on another thread.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class CameraState:
    """A ``vtkCamera``'s placement, copied out (``of``) and back (``apply``)."""

    position: tuple[float, float, float]
    focal_point: tuple[float, float, float]
    view_up: tuple[float, float, float]
    view_angle: float
    parallel: bool
    parallel_scale: float
    clipping_range: tuple[float, float]

    @classmethod
    def of(cls, camera) -> CameraState:
        return cls(tuple(camera.GetPosition()), tuple(camera.GetFocalPoint()), tuple(camera.GetViewUp()),
                   float(camera.GetViewAngle()), bool(camera.GetParallelProjection()),
                   float(camera.GetParallelScale()), tuple(camera.GetClippingRange()))

    def apply(self, camera) -> None:
        camera.SetPosition(*self.position)
        camera.SetFocalPoint(*self.focal_point)
        camera.SetViewUp(*self.view_up)
        camera.SetViewAngle(self.view_angle)
        camera.SetParallelProjection(self.parallel)
        camera.SetParallelScale(self.parallel_scale)
        camera.SetClippingRange(*self.clipping_range)


@dataclass(frozen=True, eq=False)
class SurfaceLook:
    """One label surface as drawn: which (``key``), its mesh (the coarse copy at interactive quality), its look."""

    key: tuple
    poly: object  # vtkPolyData, never modified once handed over
    rgb: tuple[float, float, float]
    opacity: float
    visible: bool

    def signature(self) -> tuple:
        return (self.key, id(self.poly), self.rgb, self.opacity, self.visible)


@dataclass(frozen=True, eq=False)
class FrameSpec:
    """Everything one frame shows. ``job`` tags it: the frame that comes back carries it."""

    job: int
    size: tuple[int, int]  # (w, h) in device pixels
    camera: CameraState
    quality: str = "full"
    volume: object = None  # PreparedVolume or None
    preset: object = None  # TransferPreset (resolved, a copy) or None
    volume_visible: bool = True
    crop_box: tuple | None = None
    cursor: tuple | None = None  # LPS point, or None (hidden)
    cursor_geometry: object = None  # the Geometry whose planes the cursor outlines, or None
    surfaces: tuple = ()  # SurfaceLook, ...
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    marker: bool = True  # the orientation cube in the corner
    crop_outline: tuple | None = None  # the crop box being edited, LPS bounds (drawn with its handles), or None

    def signature(self) -> tuple:
        """Equal for two specs that draw the same picture (``job`` aside)."""
        return (self.size, self.camera, self.quality, id(self.volume), self.preset, self.volume_visible,
                self.crop_box, self.cursor, id(self.cursor_geometry), tuple(s.signature() for s in self.surfaces),
                self.background, self.marker, self.crop_outline)


@dataclass(eq=False)
class FrameResult:
    """A frame drawn for ``job``: ``rgb`` ``(h, w, 3)`` uint8, top row first, or ``error``."""

    job: int
    quality: str
    rgb: np.ndarray | None = None
    ms: float = 0.0  # the time the frame took to draw (not counting the read-back)
    signature: tuple = field(default=(), repr=False)
    error: str = ""
