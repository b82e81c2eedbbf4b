"""What volume rendering needs of a volume, computed once, off the GUI thread: plain numpy, no VTK objects.

:func:`prepare_volume` takes the robust intensity range (for relative presets) and the downsampled copy drawn at
interactive quality. The result is shared, read-only, by the scene on the GUI thread (picking, bounds) and the
scene that draws on the frame thread (:mod:`viewer.render3d.frame_thread`); each wraps the arrays in its own
``vtkImageData`` (:func:`viewer.render3d.image_data.to_vtk_image`, no copy), so no VTK object is shared between
threads. On the demo CT (160×512×512 int16) it takes about 60 ms, in a worker.

A 4D series (``Volume.meta["timepoints"]``) is prepared at the time point it shows; :func:`prepare_timepoint`
prepares another of its time points like the first (the same robust range, so a transfer function keeps its
meaning over time; the same interactive step), for the 3D view to follow the session's time point.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from radview_base.cancel import Cancelled
from radview_base.geometry import Geometry
from viewer.io.volume import Volume

#: the interactive copy has at most this many voxels along each axis
INTERACTIVE_MAX_SIZE = 256
#: volumes up to this many voxels are prepared at once where they are asked for (well under 16 ms)
PREPARE_INLINE_VOXELS = 2_000_000


@dataclass(frozen=True, eq=False)
class PreparedVolume:
    """A volume with its robust range and, per quality, the array drawn and its geometry; ``timepoint``: which time
    point of a 4D series the arrays are (0 for a 3D volume); ``step``: the interactive copy's step."""

    volume: Volume
    value_range: tuple[float, float]
    arrays: dict  # quality ("full", "interactive") → (array (z, y, x), Geometry)
    timepoint: int = 0
    step: tuple[int, int, int] = (1, 1, 1)

    def array(self, quality: str) -> tuple[np.ndarray, Geometry]:
        return self.arrays[quality]


def renderable_array(array: np.ndarray) -> np.ndarray:
    """``array`` as VTK's volume mappers take it: C-contiguous, float32 unless a native integer type."""
    from viewer.render3d.image_data import native_dtype

    if not native_dtype(array.dtype):
        array = array.astype(np.float32)
    return np.ascontiguousarray(array)


def _check(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled("3D preparation cancelled")


def _arrays(array: np.ndarray, geometry: Geometry, step, cancel) -> dict:
    from viewer.render3d.image_data import downsampled

    arrays = {"full": (array, geometry)}
    if step == (1, 1, 1):
        arrays["interactive"] = arrays["full"]
    else:
        _check(cancel)
        small, small_geometry = downsampled(array, geometry, step)
        arrays["interactive"] = (np.ascontiguousarray(small), small_geometry)
    return arrays


def prepare_volume(volume: Volume, max_size: int = INTERACTIVE_MAX_SIZE,
                   cancel: threading.Event | None = None, array: np.ndarray | None = None,
                   timepoint: int | None = None) -> PreparedVolume:
    """The robust range and the full and interactive arrays of ``volume`` (a colour volume: ValueError).

    ``array`` / ``timepoint``: the time point to prepare, as the GUI thread read them (default: what ``volume``
    shows now). Safe on any thread: it reads ``volume`` and allocates new arrays only.
    """
    from viewer.render3d.image_data import interactive_step
    from viewer.render3d.transfer_presets import robust_range

    if volume.is_color:
        raise ValueError("colour (RGB) volumes are not volume-rendered")
    if array is None:
        array, timepoint = volume.array, volume.timepoint
    full = renderable_array(array)
    _check(cancel)
    value_range = robust_range(full)
    step = interactive_step(volume.geometry, max_size)
    return PreparedVolume(volume, value_range, _arrays(full, volume.geometry, step, cancel),
                          int(timepoint or 0), step)


def prepare_timepoint(prepared: PreparedVolume, timepoint: int, array: np.ndarray,
                      cancel: threading.Event | None = None) -> PreparedVolume:
    """Time point ``timepoint`` (its ``(z, y, x)`` ``array``) of the 4D series ``prepared`` shows, prepared like
    ``prepared``: the same volume, robust range and interactive step. Safe on any thread (new arrays only)."""
    geometry = prepared.volume.geometry
    if tuple(array.shape) != geometry.shape_zyx:
        raise ValueError(f"time point {timepoint}: shape {array.shape} is not the volume's {geometry.shape_zyx}")
    full = renderable_array(array)
    _check(cancel)
    return PreparedVolume(prepared.volume, prepared.value_range, _arrays(full, geometry, prepared.step, cancel),
                          int(timepoint), prepared.step)


def prepares_inline(volume: Volume | None) -> bool:
    """Whether ``volume`` is small enough to prepare where it is asked for (a tiny test volume, a thumbnail)."""
    return volume is not None and int(np.prod(volume.array.shape)) <= PREPARE_INLINE_VOXELS
