"""NIfTI, NRRD and MetaImage files ↔ :class:`Volume` / :class:`LabelMap`: read through SimpleITK, written
streamed (:mod:`viewer.io.image_writer`; SimpleITK for colour).

SimpleITK works in LPS and converts NIfTI's RAS at the file boundary, so the
geometry of a Volume maps one to one onto an ``sitk.Image``.
"""
from __future__ import annotations

import os
import tempfile

import numpy as np

from radview_base.geometry import Geometry
from viewer.io.volume import LabelMap, Volume

IMAGE_EXTENSIONS = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")


class ImageFileError(RuntimeError):
    pass


def is_image_file(path: str) -> bool:
    return os.path.isfile(path) and path.lower().endswith(IMAGE_EXTENSIONS)


def geometry_from_sitk(img) -> Geometry:
    sx, sy, sz = img.GetSpacing()[:3]
    nx, ny, nz = img.GetSize()[:3]
    direction = np.asarray(img.GetDirection(), dtype=float).reshape(img.GetDimension(), img.GetDimension())[:3, :3]
    origin = img.GetOrigin()[:3]
    return Geometry((nz, ny, nx), (sz, sy, sx), origin, direction)


def _apply_geometry(img, geometry: Geometry) -> None:
    img.SetSpacing(tuple(float(v) for v in geometry.spacing_xyz))
    img.SetOrigin(tuple(float(v) for v in geometry.origin_lps))
    img.SetDirection(tuple(float(v) for v in geometry.direction_matrix.reshape(-1)))


def to_sitk(array: np.ndarray, geometry: Geometry):
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.ascontiguousarray(array), isVector=array.ndim == 4)
    _apply_geometry(img, geometry)
    return img


def read_image(path: str) -> Volume:
    """Read a NIfTI/NRRD/MetaImage file as a Volume (3D; a 4D file gives its first volume)."""
    import SimpleITK as sitk

    try:
        img = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise ImageFileError(f"cannot read {path}: {str(exc).strip().splitlines()[-1][:200]}") from exc
    warnings = []
    if img.GetDimension() == 4:
        size = list(img.GetSize())
        warnings.append(f"4D image with {size[3]} volumes: showing the first")
        size[3] = 0
        img = sitk.Extract(img, size, [0, 0, 0, 0])
    elif img.GetDimension() == 2:
        img = sitk.JoinSeries([img])
    array = sitk.GetArrayFromImage(img)
    geometry = geometry_from_sitk(img)
    meta = {"modality": "", "description": os.path.basename(str(path)), "source_file": str(path)}
    return Volume(array, geometry, meta=meta, warnings=warnings)


def read_label_map(path: str, labels: dict[int, str] | None = None) -> LabelMap:
    vol = read_image(path)
    array = vol.array
    if not np.issubdtype(array.dtype, np.integer):
        rounded = np.rint(array)
        if not np.array_equal(rounded, array):
            raise ImageFileError(f"{path} holds non-integer values: not a label map")
        array = rounded
    if array.min() < 0:
        raise ImageFileError(f"{path} holds negative values: not a label map")
    array = array.astype(np.uint8 if array.max() < 256 else np.uint16)
    if labels is None:
        from radview_base.label_table import read_label_names

        labels = read_label_names(path)
    names = {int(v): f"label {int(v)}" for v in np.unique(array) if v}
    names.update(labels)
    return LabelMap(array, vol.geometry, names, meta={"path": str(path)})


def write_image(image: Volume | LabelMap, path: str) -> str:
    """Write atomically (temporary name, then rename); the format follows the extension.

    A scalar 3D array is streamed slice by slice (:mod:`viewer.io.image_writer`): no second copy of the volume.
    Colour volumes go through SimpleITK, which copies the array first.
    """
    from viewer.io.image_writer import can_stream, write_streamed

    path = str(path)
    if not path.lower().endswith(IMAGE_EXTENSIONS):
        raise ImageFileError(f"unknown image format for {path}: use one of {', '.join(IMAGE_EXTENSIONS)}")
    if can_stream(image.array, image.geometry):
        return write_streamed(image.array, image.geometry, path)
    import SimpleITK as sitk

    img = to_sitk(image.array, image.geometry)
    if path.lower().endswith((".mhd", ".nhdr")):  # header + separate data file: written in place
        sitk.WriteImage(img, path, useCompression=True)
        return path
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    suffix = next(ext for ext in sorted(IMAGE_EXTENSIONS, key=len, reverse=True) if path.lower().endswith(ext))
    fd, tmp = tempfile.mkstemp(prefix=".radview-", suffix=suffix, dir=directory)
    os.close(fd)
    try:
        sitk.WriteImage(img, tmp, useCompression=suffix in (".nii.gz", ".nrrd", ".mha"))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
