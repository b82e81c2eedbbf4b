"""Read the stored pixel values of one frame.

Native (uncompressed) pixel data is read straight from the byte offset the
index recorded, into a caller-provided buffer; compressed and deflated data is
decoded through pydicom's pixel handlers (pylibjpeg, openjpeg, libjpeg, RLE).
"""
from __future__ import annotations

import os

import numpy as np
import pydicom

from viewer.io.dicom_header import ImageFile


class PixelDecodeError(RuntimeError):
    pass


def stored_dtype(f: ImageFile) -> np.dtype:
    """The numpy dtype of the stored values (before rescale)."""
    if f.pixel_tag == "FloatPixelData":
        return np.dtype(np.float32)
    if f.pixel_tag == "DoubleFloatPixelData":
        return np.dtype(np.float64)
    signed = f.pixel_representation == 1
    kind = {8: "i1" if signed else "u1", 16: "i2" if signed else "u2", 32: "i4" if signed else "u4",
            64: "i8" if signed else "u8"}.get(f.bits_allocated)
    if kind is None:
        raise PixelDecodeError(f"unsupported BitsAllocated {f.bits_allocated}")
    return np.dtype(kind)


def frame_shape(f: ImageFile) -> tuple[int, ...]:
    return (f.rows, f.columns) if f.samples_per_pixel == 1 else (f.rows, f.columns, f.samples_per_pixel)


def _fix_bits(arr: np.ndarray, f: ImageFile) -> np.ndarray:
    """Mask bits above BitsStored (unsigned) or sign-extend them (signed), in place."""
    ba, bs = f.bits_allocated, f.bits_stored
    if arr.dtype.kind not in "iu" or bs >= ba or bs <= 0:
        return arr
    if f.pixel_representation == 1:
        shift = ba - bs
        np.left_shift(arr, shift, out=arr)
        np.right_shift(arr, shift, out=arr)
    else:
        np.bitwise_and(arr, (1 << bs) - 1, out=arr)
    return arr


_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0)
_HAVE_PREADV = hasattr(os, "preadv")  # not on Windows


def read_bytes_into(path: str, offset: int, buf, nbytes: int | None = None) -> int:
    """Read ``path`` from byte ``offset`` into ``buf`` (a writable C-contiguous buffer, e.g. an output slice).

    One ``open`` and, normally, one ``preadv`` straight into ``buf``: no Python file object, no seek, no
    intermediate copy, and the GIL is released while the kernel copies. ``nbytes``: the buffer's size in bytes,
    when the caller knows it. Returns the number of bytes read (fewer only at the end of the file).
    """
    if not _HAVE_PREADV:
        view = memoryview(buf).cast("B")
        with open(path, "rb", buffering=0) as fp:
            fp.seek(offset)
            got = 0
            while got < view.nbytes:
                r = fp.readinto(view[got:])
                if not r:
                    break
                got += r
            return got
    fd = os.open(path, _OPEN_FLAGS)
    try:
        got = os.preadv(fd, [buf], offset)
        if nbytes is None:
            nbytes = memoryview(buf).nbytes
        if 0 < got < nbytes:  # a short read from a regular file is rare (signals, network file systems)
            view = memoryview(buf).cast("B")
            while got < nbytes:
                r = os.preadv(fd, [view[got:]], offset + got)
                if not r:
                    break
                got += r
    finally:
        os.close(fd)
    return got


def read_native_into(f: ImageFile, frame: int, out: np.ndarray) -> np.ndarray:
    """Read a native frame's stored values into ``out`` (C-contiguous, dtype = stored dtype)."""
    dtype = stored_dtype(f)
    nbytes = int(np.prod(frame_shape(f))) * dtype.itemsize
    if f.samples_per_pixel > 1 and f.planar_configuration == 1:
        raise PixelDecodeError("planar colour handled by the decoder path")
    if out.nbytes != nbytes or not out.flags.c_contiguous:
        raise PixelDecodeError(f"{f.path}: frame of {nbytes} bytes does not match its {out.nbytes}-byte slot")
    got = read_bytes_into(f.path, f.pixel_offset + frame * nbytes, out, nbytes)
    if got != nbytes:
        raise PixelDecodeError(f"{f.path}: pixel data truncated ({got} of {nbytes} bytes)")
    if f.big_endian and dtype.itemsize > 1:
        out.byteswap(inplace=True)
    return _fix_bits(out, f)


def read_frame(f: ImageFile, frame: int) -> np.ndarray:
    """Stored values of one frame as a new array ``(rows, cols[, samples])``."""
    if f.is_native and f.pixel_tag == "PixelData" and f.bits_allocated >= 8 and not (
            f.samples_per_pixel > 1 and f.planar_configuration == 1) and not f.photometric.startswith("YBR"):
        out = np.empty(frame_shape(f), dtype=stored_dtype(f))
        return read_native_into(f, frame, out)
    return decode_frame(f, frame)


def _decoding_plugins(transfer_syntax: str) -> list[str]:
    """pydicom's decoding plugins for ``transfer_syntax``, in its order, without GDCM where another exists.

    On corrupt JPEG-LS / JPEG 2000 data GDCM throws a C++ exception that aborts the whole process (found by
    fuzzing), and pydicom would hand every stream GDCM first. ``[""]``: let pydicom choose (native, deflate).
    """
    try:
        from pydicom.pixels import get_decoder

        names = list(get_decoder(transfer_syntax).available_plugins)
    except Exception:  # no decoder for this transfer syntax (native data, or unknown): pydicom says why
        return [""]
    return [n for n in names if n != "gdcm"] or names or [""]


def decode_frame(f: ImageFile, frame: int) -> np.ndarray:
    """Decode one frame with pydicom's handlers (compressed, deflated, planar, YBR, float)."""
    from pydicom.pixels import pixel_array

    first = None
    for plugin in _decoding_plugins(f.transfer_syntax):
        try:
            arr = pixel_array(f.path, index=frame if f.number_of_frames > 1 else None, raw=False,
                              decoding_plugin=plugin)
            break
        except Exception as exc:  # try the next plugin, as pydicom would; report the preferred one's error
            first = first or exc
    else:
        raise PixelDecodeError(_decode_reason(f, first)) from first
    if f.samples_per_pixel == 1 and f.number_of_frames > 1 and arr.ndim == 3:
        arr = arr[0]
    if arr.shape[:2] != (f.rows, f.columns):
        raise PixelDecodeError(f"{f.path}: decoded frame has shape {arr.shape}, expected {(f.rows, f.columns)}")
    return np.ascontiguousarray(arr)


def _decode_reason(f: ImageFile, exc: Exception) -> str:
    ts = pydicom.uid.UID(f.transfer_syntax)
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"{f.path}: cannot decode {ts.name or ts} pixel data ({msg[:160]})"
