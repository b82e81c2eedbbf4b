"""What volume rendering needs of a volume, computed once, off the GUI thread: plain numpy, no VTK objects.

:func:`prepare_volume` takes the robust intensity range (for relative presets) and the downsampled copy drawn at
interactive quality. The result is shared, read-only, by the scene on the GUI thread (picking, bounds) and the
scene that draws on the frame thread (:mod:`viewer.render3d.frame_thread`); each wraps the arrays in its own
``vtkImageData`` (:func:`viewer.render3d.image_data.to_vtk_image`, no copy), so no VTK object is shared between
threads. On the demo CT (160×512×512 int16) it takes about 60 ms, in a worker.
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
    """A volume with its robust range and, per quality, the array drawn and its geometry."""

    volume: Volume
    value_range: tuple[float, float]
    arrays: dict  # quality ("full", "interactive") → (array (z, y, x), Geometry)

    def array(self, quality: str) -> tuple[np.ndarray, Geometry]:
        return self.arrays[quality]


def renderable_array(array: np.ndarray) -> np.ndarray:
    """``array`` as VTK's volume mappers take it: C-contiguous, float32 unless a native integer type."""
    from viewer.render3d.image_data import native_dtype

    if not native_dtype(array.dtype):
        array = array.astype(np.float32)
    return np.ascontiguousarray(array)


def prepare_volume(volume: Volume, max_size: int = INTERACTIVE_MAX_SIZE,
                   cancel: threading.Event | None = None) -> PreparedVolume:
    """The robust range and the full and interactive arrays of ``volume`` (a colour volume: ValueError).

    Safe on any thread: it reads ``volume`` and allocates new arrays only.
    """
    from viewer.render3d.image_data import downsampled, interactive_step
    from viewer.render3d.transfer_presets import robust_range

    if volume.is_color:
        raise ValueError("colour (RGB) volumes are not volume-rendered")
    full = renderable_array(volume.array)
    if cancel is not None and cancel.is_set():
        raise Cancelled("3D preparation cancelled")
    value_range = robust_range(full)
    step = interactive_step(volume.geometry, max_size)
    arrays = {"full": (full, volume.geometry)}
    if step == (1, 1, 1):
        arrays["interactive"] = arrays["full"]
    else:
        if cancel is not None and cancel.is_set():
            raise Cancelled("3D preparation cancelled")
        small, geometry = downsampled(full, volume.geometry, step)
        arrays["interactive"] = (np.ascontiguousarray(small), geometry)
    return PreparedVolume(volume, value_range, arrays)


def prepares_inline(volume: Volume | None) -> bool:
    """Whether ``volume`` is small enough to prepare where it is asked for (a tiny test volume, a thumbnail)."""
    return volume is not None and int(np.prod(volume.array.shape)) <= PREPARE_INLINE_VOXELS
