"""Write a scalar ``(z, y, x)`` array with its geometry as NIfTI-1, NRRD or MetaImage, streamed slice by slice.

No second copy of the volume is ever made: the header is written, then each z slice goes to the file (or
through gzip/zlib) straight from the array's memory. SimpleITK would copy the whole array first
(``GetImageFromArray``; SimpleITK 2.5 has no view of a numpy array), which doubles the peak memory of
``radview-cli convert`` on a large CT.

Geometry is LPS inside radview. NRRD and MetaImage are written in LPS, as SimpleITK writes them; NIfTI is RAS
on disk, converted here at the file boundary: the sform holds the exact affine and the qform the same rotation as
a quaternion (``qfac`` -1 for a left-handed grid), both with code 1 (scanner), as ITK writes them.

Every file is written under a temporary name in the target folder and renamed into place; a detached header's
data file (``.mhd`` → ``.zraw``/``.raw``, ``.nhdr`` → ``.raw.gz``/``.raw``) likewise, before its header.
"""
from __future__ import annotations

import gzip
import os
import struct
import tempfile
import zlib
from contextlib import contextmanager

import numpy as np

from radview_base.geometry import Geometry

#: zlib/gzip level: 1 is several times faster than the default 6 on CT and a few per cent larger
COMPRESS_LEVEL = 1
SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")

_NIFTI_TYPES = {  # numpy dtype → (NIfTI datatype code, bits)
    "uint8": (2, 8), "int16": (4, 16), "int32": (8, 32), "float32": (16, 32), "float64": (64, 64),
    "int8": (256, 8), "uint16": (512, 16), "uint32": (768, 32), "int64": (1024, 64), "uint64": (1280, 64)}
_NRRD_TYPES = {
    "int8": "signed char", "uint8": "unsigned char", "int16": "short", "uint16": "unsigned short", "int32": "int",
    "uint32": "unsigned int", "int64": "long long int", "uint64": "unsigned long long int", "float32": "float",
    "float64": "double"}
_MET_TYPES = {
    "int8": "MET_CHAR", "uint8": "MET_UCHAR", "int16": "MET_SHORT", "uint16": "MET_USHORT", "int32": "MET_INT",
    "uint32": "MET_UINT", "int64": "MET_LONG_LONG", "uint64": "MET_ULONG_LONG", "float32": "MET_FLOAT",
    "float64": "MET_DOUBLE"}
_NIFTI_HEADER = struct.Struct("<i10s18sihcB8h3f4h8f3fhBB4f2i80s24s2h3f3f4f4f4f16s4s")
assert _NIFTI_HEADER.size == 348


class ImageWriteError(ValueError):
    """The array cannot be written this way (type, shape, format); the message says why."""


def suffix_of(path: str) -> str | None:
    lower = str(path).lower()
    return next((s for s in SUFFIXES if lower.endswith(s)), None)


def can_stream(array: np.ndarray, geometry: Geometry) -> bool:
    """Whether :func:`write_streamed` takes this array: scalar 3D, a supported type, an orthonormal direction."""
    d = geometry.direction_matrix
    return (array.ndim == 3 and _type_name(array.dtype) in _NIFTI_TYPES
            and bool(np.allclose(d.T @ d, np.eye(3), atol=1e-4)))


def write_streamed(array: np.ndarray, geometry: Geometry, path: str) -> str:
    """Write ``array`` (``(z, y, x)``, on ``geometry``) to ``path``; the format follows the extension."""
    path = str(path)
    suffix = suffix_of(path)
    if suffix is None:
        raise ImageWriteError(f"unknown image format for {path}: use one of {', '.join(SUFFIXES)}")
    if not can_stream(array, geometry):
        raise ImageWriteError(f"cannot stream a {array.dtype} array of shape {array.shape} on this geometry")
    if tuple(array.shape) != geometry.shape_zyx:
        raise ImageWriteError(f"array shape {array.shape} does not match geometry {geometry.shape_zyx}")
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    if suffix in (".nii", ".nii.gz"):
        with _atomic(path, suffix) as fp:
            _write_nifti(fp, array, geometry, compressed=suffix == ".nii.gz")
    elif suffix == ".nrrd":
        with _atomic(path, suffix) as fp:
            fp.write(_nrrd_header(array, geometry, "gzip"))
            _write_slices(fp, array, "gzip")
    elif suffix == ".mha":
        with _atomic(path, suffix) as fp:
            _write_mha(fp, array, geometry)
    else:  # detached header: .nhdr / .mhd with their data file beside them
        _write_detached(path, suffix, array, geometry)
    return path


# --- formats --------------------------------------------------------------------------------------------------

def _type_name(dtype) -> str:
    dtype = np.dtype(dtype)
    return "uint8" if dtype == np.bool_ else dtype.newbyteorder("=").name


def _write_nifti(fp, array: np.ndarray, geometry: Geometry, compressed: bool) -> None:
    code, bits = _NIFTI_TYPES[_type_name(array.dtype)]
    nz, ny, nx = array.shape
    affine = geometry.affine_ras()
    b, c, d, qfac = _quaternion(affine[:3, :3] / geometry.spacing_xyz)
    sx, sy, sz = (float(v) for v in geometry.spacing_xyz)
    header = _NIFTI_HEADER.pack(
        348, b"", b"", 0, 0, b"r", 0,
        3, nx, ny, nz, 1, 1, 1, 1,  # dim
        0.0, 0.0, 0.0,  # intent_p1..3
        0, code, bits, 0,  # intent_code, datatype, bitpix, slice_start
        qfac, sx, sy, sz, 0.0, 0.0, 0.0, 0.0,  # pixdim
        352.0, 0.0, 0.0,  # vox_offset, scl_slope (0: no scaling), scl_inter
        0, 0, 2 | 8,  # slice_end, slice_code, xyzt_units: mm and s
        0.0, 0.0, 0.0, 0.0, 0, 0,  # cal_max, cal_min, slice_duration, toffset, glmax, glmin
        b"radview", b"",  # descrip, aux_file
        1, 1,  # qform_code, sform_code: scanner
        b, c, d, *(float(v) for v in affine[:3, 3]),
        *(float(v) for v in affine[0]), *(float(v) for v in affine[1]), *(float(v) for v in affine[2]),
        b"", b"n+1\0")
    if compressed:
        with gzip.GzipFile(fileobj=fp, mode="wb", compresslevel=COMPRESS_LEVEL, mtime=0) as gz:
            gz.write(header + b"\0\0\0\0")  # no extension
            _write_slices(gz, array, "raw")
    else:
        fp.write(header + b"\0\0\0\0")
        _write_slices(fp, array, "raw")


def _quaternion(r: np.ndarray) -> tuple[float, float, float, float]:
    """(quatern_b, c, d, qfac) of the rotation ``r`` (unit columns), as nifti1_io's nifti_mat44_to_quatern."""
    u, _, vt = np.linalg.svd(r)
    r = u @ vt  # nearest orthonormal matrix
    qfac = 1.0
    if np.linalg.det(r) < 0:
        r[:, 2] = -r[:, 2]
        qfac = -1.0
    (r11, r12, r13), (r21, r22, r23), (r31, r32, r33) = r
    a = r11 + r22 + r33 + 1.0
    if a > 0.5:
        a = 0.5 * np.sqrt(a)
        b, c, d = 0.25 * (r32 - r23) / a, 0.25 * (r13 - r31) / a, 0.25 * (r21 - r12) / a
    else:
        xd, yd, zd = 1.0 + r11 - (r22 + r33), 1.0 + r22 - (r11 + r33), 1.0 + r33 - (r11 + r22)
        if xd > 1.0:
            b = 0.5 * np.sqrt(xd)
            c, d, a = 0.25 * (r12 + r21) / b, 0.25 * (r13 + r31) / b, 0.25 * (r32 - r23) / b
        elif yd > 1.0:
            c = 0.5 * np.sqrt(yd)
            b, d, a = 0.25 * (r12 + r21) / c, 0.25 * (r23 + r32) / c, 0.25 * (r13 - r31) / c
        else:
            d = 0.5 * np.sqrt(zd)
            b, c, a = 0.25 * (r13 + r31) / d, 0.25 * (r23 + r32) / d, 0.25 * (r21 - r12) / d
        if a < 0:
            b, c, d = -b, -c, -d
    return float(b), float(c), float(d), qfac


def _num(v: float) -> str:
    return repr(float(v)) if v != int(v) else str(int(v))


def _nrrd_header(array: np.ndarray, geometry: Geometry, encoding: str, data_file: str | None = None) -> bytes:
    nz, ny, nx = array.shape
    axes = geometry.direction_matrix * geometry.spacing_xyz  # columns: one voxel step along x, y, z (LPS mm)
    directions = " ".join("(" + ",".join(_num(v) for v in axes[:, k]) + ")" for k in range(3))
    lines = ["NRRD0004", "# Complete NRRD file format specification at:",
             "# http://teem.sourceforge.net/nrrd/format.html",
             f"type: {_NRRD_TYPES[_type_name(array.dtype)]}", "dimension: 3", "space: left-posterior-superior",
             f"sizes: {nx} {ny} {nz}", f"space directions: {directions}", "kinds: domain domain domain",
             "endian: little", f"encoding: {encoding}",
             "space origin: (" + ",".join(_num(v) for v in geometry.origin_lps) + ")"]
    if data_file:
        lines.append(f"data file: {data_file}")
    return ("\n".join(lines) + "\n" + ("" if data_file else "\n")).encode("ascii")


def _mha_header(array: np.ndarray, geometry: Geometry, compressed_size: int | None, data_file: str) -> bytes:
    nz, ny, nx = array.shape
    d = geometry.direction_matrix
    lines = ["ObjectType = Image", "NDims = 3", "BinaryData = True", "BinaryDataByteOrderMSB = False",
             f"CompressedData = {'True' if compressed_size is not None else 'False'}"]
    if compressed_size is not None:
        lines.append(f"CompressedDataSize = {compressed_size:020d}")  # fixed width: filled in afterwards
    lines += ["TransformMatrix = " + " ".join(_num(v) for v in d.T.reshape(-1)),  # direction, column by column
              "Offset = " + " ".join(_num(v) for v in geometry.origin_lps), "CenterOfRotation = 0 0 0",
              "AnatomicalOrientation = RAI",
              "ElementSpacing = " + " ".join(_num(v) for v in geometry.spacing_xyz),
              f"DimSize = {nx} {ny} {nz}", f"ElementType = {_MET_TYPES[_type_name(array.dtype)]}",
              f"ElementDataFile = {data_file}"]
    return ("\n".join(lines) + "\n").encode("ascii")


def _write_mha(fp, array: np.ndarray, geometry: Geometry) -> None:
    start = fp.tell()
    header = _mha_header(array, geometry, 0, "LOCAL")
    fp.write(header)
    size = _write_slices(fp, array, "zlib")
    fp.seek(start)
    fp.write(_mha_header(array, geometry, size, "LOCAL"))  # same length: only the digits change
    fp.seek(0, os.SEEK_END)


def _write_detached(path: str, suffix: str, array: np.ndarray, geometry: Geometry) -> None:
    base = os.path.basename(path)[: -len(suffix)]
    directory = os.path.dirname(os.path.abspath(path))
    if suffix == ".nhdr":
        data_name = base + ".raw.gz"
        with _atomic(os.path.join(directory, data_name), ".raw.gz") as fp:
            _write_slices(fp, array, "gzip")
        with _atomic(path, suffix) as fp:
            fp.write(_nrrd_header(array, geometry, "gzip", data_file=data_name))
        return
    data_name = base + ".zraw"
    with _atomic(os.path.join(directory, data_name), ".zraw") as fp:
        size = _write_slices(fp, array, "zlib")
    with _atomic(path, suffix) as fp:
        fp.write(_mha_header(array, geometry, size, data_name))


def _slices(array: np.ndarray):
    """Each z slice as little-endian C-contiguous bytes-like, without copying when it already is."""
    little = np.dtype(_type_name(array.dtype)).newbyteorder("<")
    for plane in array:
        if plane.dtype == np.bool_:
            plane = plane.view(np.uint8)
        yield np.ascontiguousarray(plane, dtype=little)


def _write_slices(fp, array: np.ndarray, encoding: str) -> int:
    """Write every slice raw, through gzip or through zlib; the number of bytes that reached ``fp``."""
    if encoding == "raw":
        total = 0
        for plane in _slices(array):
            fp.write(memoryview(plane).cast("B"))
            total += plane.nbytes
        return total
    if encoding == "gzip":
        start = fp.tell()
        with gzip.GzipFile(fileobj=fp, mode="wb", compresslevel=COMPRESS_LEVEL, mtime=0) as gz:
            for plane in _slices(array):
                gz.write(memoryview(plane).cast("B"))
        return fp.tell() - start
    z = zlib.compressobj(COMPRESS_LEVEL)
    total = 0
    for plane in _slices(array):
        chunk = z.compress(memoryview(plane).cast("B"))
        fp.write(chunk)
        total += len(chunk)
    chunk = z.flush()
    fp.write(chunk)
    return total + len(chunk)


@contextmanager
def _atomic(path: str, suffix: str):
    """A file object for a temporary name beside ``path``, renamed to ``path`` when the block succeeds."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".radview-", suffix=suffix, dir=directory)
    try:
        with os.fdopen(fd, "wb") as fp:
            yield fp
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise

