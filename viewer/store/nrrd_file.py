"""A label layer's voxels on disk: gzip NRRD, streamed both ways (no second copy of the array).

Why gzip NRRD, and why written here (streamed in 4 MB chunks, gzip level 1) rather than through SimpleITK (which
radview depends on) or pynrrd: measured by ``bench/layer_store.py`` on a 300×512×512 uint8 label map with 4 labels
(75 MiB; 2-core machine, load average 0.5-1.3; peak memory above the resident size before the call, a read's
including the 75 MiB array it returns; "GIL" is the longest a thread ticking every 5 ms waited meanwhile)::

                            write     read     write peak   read peak   GIL write/read   file
    this module             150 ms    66 ms    +0 MiB       84 MiB      6 / 9 ms         0.9 MiB
    SimpleITK (level 1/ITK) 133-138   97-99    +78 MiB      152 MiB     13-19 / 5 ms     1.4 / 0.6 MiB
    pynrrd (level 1/9)      206/1257  227-237  +75 MiB      151 MiB     44-47 / 97-99    0.9 / 0.3 MiB

SimpleITK writes ~10% faster, but only after ``GetImageFromArray`` has copied the whole snapshot (+78 MiB, and the
GIL held 2-3× as long while it does: with it the GUI stalled up to ~140 ms while an AI result arrived on a busy
2-core machine, ~40-70 ms without), and it reads 1.5× slower (a writable array that outlives the image is a second
copy); pynrrd is 1.4-8× slower to write and 3.5× slower to read, copies the volume too and holds the GIL ~100 ms
per read. So the library does not serve here: this writer keeps memory bounded (no second copy of the volume,
the CRC-32 computed on the way) and the reader inflates 4 MB at a time straight into the returned array. For
160×512×512 (the demo's grid) it writes in ~85 ms and reads in ~45 ms. The files are plain NRRD (LPS, every float
to 17 significant digits): 3D Slicer, ITK, SimpleITK and pynrrd open them as they are, and the benchmark checks
that SimpleITK and pynrrd read this module's file voxel for voxel. NIfTI (``.nii.gz``) was ~5× slower to write
and keeps the geometry in float32; ``np.savez_compressed`` took ~130 ms for the demo's label map.

Reading trusts nothing in the file: before anything is allocated the header's declared size is checked against
the caller's grid, against :data:`MAX_VOXEL_BYTES`, and against the data actually there (a raw body must hold
exactly that many bytes; a gzip body cannot inflate more than :data:`MAX_DEFLATE_RATIO` times its length), so a
header declaring ``sizes: 100000 100000 100000`` is refused at once instead of asking for a petabyte.
"""
from __future__ import annotations

import math
import os
import zlib
from pathlib import Path
from typing import Mapping

import numpy as np

from radview_base.atomic_file import atomic_path
from radview_base.geometry import Geometry

_NRRD_TYPES = {"u1": "uint8", "i1": "int8", "u2": "uint16", "i2": "int16", "u4": "uint32", "i4": "int32",
               "u8": "uint64", "i8": "int64"}
_NRRD_DTYPES = {v: k for k, v in _NRRD_TYPES.items()}
_NRRD_DTYPES.update({"uchar": "u1", "unsigned char": "u1", "ushort": "u2", "unsigned short": "u2", "short": "i2",
                     "signed char": "i1", "int": "i4", "uint": "u4", "unsigned int": "u4"})
CHUNK = 1 << 22
GZIP_LEVEL = 1  # ~40 ms for the demo's 40 MB label map; level 6 is 3× slower for ~half the (already small) file
MAX_HEADER_BYTES = 1 << 16
#: the largest label map read (a 2000×1024×1024 uint32 grid); more is a damaged header, not a layer
MAX_VOXEL_BYTES = 1 << 33
#: deflate never inflates more than 1032 bytes per byte of input (its longest match costs ~2 bits for 258 bytes)
MAX_DEFLATE_RATIO = 1032


class LayerFormatError(ValueError):
    """A stored layer that does not follow the format (or whose data file does not match its manifest)."""


def little(dtype) -> np.dtype:
    return np.dtype(dtype).newbyteorder("<")


def _vector(v) -> str:
    return "(" + ",".join(repr(float(c)) for c in v) + ")"


def nrrd_header(shape_zyx, dtype, geometry: Geometry) -> bytes:
    """A detached-free NRRD 4 header for a ``(z, y, x)`` array on ``geometry`` (LPS; every float to 17 digits)."""
    kind = little(dtype).str[1:]
    if kind not in _NRRD_TYPES:
        raise LayerFormatError(f"a label map of {np.dtype(dtype)} cannot be stored")
    z, y, x = (int(v) for v in shape_zyx)
    lines = ["NRRD0004", "# radview label layer (viewer/store/nrrd_file.py)", f"type: {_NRRD_TYPES[kind]}",
             "dimension: 3", "space: left-posterior-superior", f"sizes: {x} {y} {z}",
             "space directions: " + " ".join(_vector(v) for v in geometry.axes_lps),
             "kinds: domain domain domain", "endian: little", "encoding: gzip",
             f"space origin: {_vector(geometry.origin_lps)}"]
    return ("\n".join(lines) + "\n\n").encode("ascii")


def write_nrrd_atomic(path: Path, array: np.ndarray, geometry: Geometry) -> int:
    """Write ``array`` as a gzip NRRD at ``path`` (temporary file, fsync, rename, folder fsync); its CRC-32."""
    array = np.ascontiguousarray(array, dtype=little(array.dtype))
    header = nrrd_header(array.shape, array.dtype, geometry)
    flat = memoryview(array.reshape(-1)).cast("B")
    crc = 0
    with atomic_path(path, mode=0o600) as tmp, open(tmp, "wb") as fh:
        fh.write(header)
        gz = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
        for start in range(0, flat.nbytes, CHUNK):
            part = flat[start:start + CHUNK]
            crc = zlib.crc32(part, crc)
            fh.write(gz.compress(part))
        fh.write(gz.flush())
    return crc


def _floats(text: str, n: int) -> list[float]:
    try:
        values = [float(v) for v in text.replace("(", " ").replace(")", " ").replace(",", " ").split()]
    except ValueError:
        raise LayerFormatError(f"expected {n} numbers, got {text[:80]!r}") from None
    if len(values) != n or not all(math.isfinite(v) for v in values):
        raise LayerFormatError(f"expected {n} finite numbers, got {text[:80]!r}")
    return values


def _read_header(fh, name: str) -> tuple[dict, bytes, int]:
    """``(fields, the body bytes read with the header, the header's length)``."""
    head = b""
    while b"\n\n" not in head:
        more = fh.read(4096)
        if not more:
            raise LayerFormatError(f"{name} ends inside its header")
        head += more
        if len(head) > MAX_HEADER_BYTES and b"\n\n" not in head:
            raise LayerFormatError(f"{name} has no NRRD header")
    head, _, body = head.partition(b"\n\n")
    lines = head.decode("ascii", "replace").splitlines()
    if not lines or not lines[0].startswith("NRRD000"):
        raise LayerFormatError(f"{name} is not an NRRD file")
    fields = {}
    for line in lines[1:]:
        if line.startswith("#") or ":" not in line:
            continue
        key, _, value = line.partition(":")
        fields[key.strip().lower()] = value.lstrip("=").strip()
    return fields, body, len(head) + 2


def _declared(fields: Mapping, name: str) -> tuple[np.dtype, tuple[int, int, int], str]:
    """``(dtype, (z, y, x), encoding)`` the header declares, each checked."""
    kind = _NRRD_DTYPES.get(fields.get("type", ""))
    if kind is None or fields.get("dimension") != "3":
        raise LayerFormatError(f"{name}: not a 3D integer NRRD (type {fields.get('type')!r}, "
                               f"dimension {fields.get('dimension')!r})")
    endian = fields.get("endian", "little")
    if endian not in ("little", "big"):
        raise LayerFormatError(f"{name}: endian {endian!r}")
    dtype = np.dtype(("<" if endian == "little" else ">") + kind)
    sizes = fields.get("sizes", "").split()
    if len(sizes) != 3 or not all(s.isdigit() and int(s) >= 1 for s in sizes):
        raise LayerFormatError(f"{name}: sizes {fields.get('sizes')!r} are not three positive numbers")
    x, y, z = (int(s) for s in sizes)
    encoding = fields.get("encoding", "")
    if encoding not in ("gzip", "gz", "raw"):
        raise LayerFormatError(f"{name}: encoding {encoding!r} is not read here")
    if "data file" in fields or "datafile" in fields:
        raise LayerFormatError(f"{name}: detached data ({fields.get('data file') or fields.get('datafile')!r}) "
                               "is not read here")
    return dtype, (z, y, x), encoding


def read_nrrd(path: Path, expected_shape_zyx: tuple[int, int, int] | None = None) -> tuple[np.ndarray, Geometry]:
    """A gzip (or raw) NRRD as written by :func:`write_nrrd_atomic`: a writable ``(z, y, x)`` array and its grid.

    The voxels are inflated 4 MB at a time straight into the returned array (no second copy of the volume; the GIL
    is held only to copy each piece). A size the header declares is refused before anything is allocated when it
    is not ``expected_shape_zyx`` (the manifest's grid), exceeds :data:`MAX_VOXEL_BYTES`, or is more than the data
    in the file can hold.
    """
    name = path.name
    with open(path, "rb") as fh:
        fields, body, header_bytes = _read_header(fh, name)
        dtype, (z, y, x), encoding = _declared(fields, name)
        if expected_shape_zyx is not None and (z, y, x) != tuple(expected_shape_zyx):
            raise LayerFormatError(f"{name} holds {(z, y, x)}, the manifest says {tuple(expected_shape_zyx)}")
        nbytes = x * y * z * dtype.itemsize
        stored = os.fstat(fh.fileno()).st_size - header_bytes
        if nbytes > MAX_VOXEL_BYTES:
            raise LayerFormatError(f"{name} declares {(z, y, x)} voxels ({nbytes / 2**30:.3g} GiB), more than "
                                   f"a label map is read ({MAX_VOXEL_BYTES >> 30} GiB)")
        if encoding == "raw" and stored < nbytes:
            raise LayerFormatError(f"{name} holds {stored} of {nbytes} bytes of voxels (truncated)")
        if encoding != "raw" and nbytes > stored * MAX_DEFLATE_RATIO + 1024:
            raise LayerFormatError(f"{name} declares {nbytes} bytes of voxels, more than its {stored} bytes of "
                                   "gzip data can hold")
        geometry = Geometry.from_affine_lps(_affine(fields), (z, y, x))
        out = np.empty(x * y * z, dtype)
        _inflate_into(fh, body, memoryview(out).cast("B"), encoding, name)
    return out.astype(dtype.newbyteorder("="), copy=False).reshape(z, y, x), geometry


def _inflate_into(fh, body: bytes, buffer: memoryview, encoding: str, name: str) -> None:
    inflate = zlib.decompressobj(31) if encoding != "raw" else None
    pos, ended = 0, False
    while True:
        if not body and not ended:
            body = fh.read(CHUNK)
            ended = not body
        if inflate is None:
            piece, body = body, b""
        else:  # at most one chunk out per call (one more byte than fits tells a file that holds too much)
            piece = inflate.decompress(body, min(CHUNK, buffer.nbytes - pos + 1))
            body = inflate.unconsumed_tail
        if pos + len(piece) > buffer.nbytes:
            raise LayerFormatError(f"{name} holds more voxels than its header says")
        buffer[pos:pos + len(piece)] = piece
        pos += len(piece)
        if (inflate is not None and inflate.eof) or (ended and not body and not piece):
            break
    if pos != buffer.nbytes or (inflate is not None and not inflate.eof):
        raise LayerFormatError(f"{name} holds {pos} of {buffer.nbytes} bytes of voxels (truncated)")


def _affine(fields: Mapping) -> np.ndarray:
    if fields.get("space", "left-posterior-superior") not in ("left-posterior-superior", "LPS"):
        raise LayerFormatError(f"space {fields.get('space')!r} is not LPS")
    directions = _floats(fields.get("space directions", ""), 9)
    affine = np.eye(4)
    affine[:3, :3] = np.asarray(directions).reshape(3, 3).T  # columns: the steps of x, y, z
    if not np.all(np.linalg.norm(affine[:3, :3], axis=0) > 0):
        raise LayerFormatError(f"space directions {fields.get('space directions')[:80]!r} hold a zero step")
    affine[:3, 3] = _floats(fields.get("space origin", ""), 3)
    return affine


__all__ = ["LayerFormatError", "nrrd_header", "write_nrrd_atomic", "read_nrrd", "little", "CHUNK", "GZIP_LEVEL",
           "MAX_VOXEL_BYTES", "MAX_DEFLATE_RATIO"]
