"""Read the stored pixel values of one frame.

Native (uncompressed) pixel data is read straight from the byte offset the
index recorded, into a caller-provided buffer; compressed and deflated data is
decoded through pydicom's pixel handlers (pylibjpeg, openjpeg, libjpeg, RLE).
Where the declared transfer syntax does not decode, the bytes are asked what
they really are (:mod:`viewer.io.syntax_sniff`) and decoded as that.

Only regular files are opened, and no read goes past a file's size (:mod:`viewer.io.regular_file`).
"""
from __future__ import annotations

import os
import struct

import numpy as np
import pydicom

from viewer.io.dicom_header import ImageFile
from viewer.io.regular_file import NotRegularFileError, open_bounded, open_fd


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


_HAVE_PREADV = hasattr(os, "preadv")  # not on Windows


def read_bytes_into(path: str, offset: int, buf, nbytes: int | None = None) -> int:
    """Read ``path`` from byte ``offset`` into ``buf`` (a writable C-contiguous buffer, e.g. an output slice).

    One ``open`` and, normally, one ``preadv`` straight into ``buf``: no Python file object, no seek, no
    intermediate copy, and the GIL is released while the kernel copies. ``nbytes``: the buffer's size in bytes,
    when the caller knows it. Returns the number of bytes read (fewer at the end of the file: no read goes past
    the file's size). Only a regular file is opened (:class:`PixelDecodeError` for anything else).
    """
    try:
        fd, size = open_fd(path, stat_first=False)  # (examined when indexed; checked again on the descriptor)
    except NotRegularFileError as exc:
        raise PixelDecodeError(str(exc)) from None
    try:
        if nbytes is None:
            nbytes = memoryview(buf).nbytes
        want = max(0, min(nbytes, size - offset))
        if not _HAVE_PREADV:
            view = memoryview(buf).cast("B")
            os.lseek(fd, offset, os.SEEK_SET)
            got = 0
            while got < want:
                data = os.read(fd, want - got)
                if not data:
                    break
                view[got:got + len(data)] = data
                got += len(data)
            return got
        if want == nbytes:
            got = os.preadv(fd, [buf], offset)
        else:  # the file ends first: read only what it holds
            got = os.preadv(fd, [memoryview(buf).cast("B")[:want]], offset) if want else 0
        if 0 < got < want:  # a short read from a regular file is rare (signals, network file systems)
            view = memoryview(buf).cast("B")
            while got < want:
                r = os.preadv(fd, [view[got:want]], offset + got)
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
    """Decode one frame with pydicom's handlers (compressed, deflated, planar, YBR, float).

    The declared transfer syntax is tried first; where it fails and the bytes say they are something else
    (native data under a compressed UID, another codec's stream), they are decoded as what they are.
    """
    try:
        arr = _decode_declared(f, frame)
    except PixelDecodeError as declared_error:
        arr = _decode_actual(f, frame, declared_error)
    return _checked(f, arr)


def _decode_declared(f: ImageFile, frame: int, transfer_syntax: str | None = None) -> np.ndarray:
    """Decode with pydicom, as ``transfer_syntax`` (default: the declared one)."""
    from pydicom.pixels import pixel_array

    first = None
    ts = transfer_syntax or f.transfer_syntax
    for plugin in _decoding_plugins(ts):
        try:
            with open_bounded(f.path) as fp:
                if transfer_syntax is None:
                    return pixel_array(fp, index=frame if f.number_of_frames > 1 else None, raw=False,
                                       decoding_plugin=plugin)
                ds = pydicom.dcmread(fp, force=True)
                meta = getattr(ds, "file_meta", None) or pydicom.dataset.FileMetaDataset()
                meta.TransferSyntaxUID = pydicom.uid.UID(ts)
                ds.file_meta = meta
                return pixel_array(ds, index=frame if f.number_of_frames > 1 else None, raw=False,
                                   decoding_plugin=plugin)
        except NotRegularFileError as exc:
            raise PixelDecodeError(str(exc)) from None
        except Exception as exc:  # try the next plugin, as pydicom would; report the preferred one's error
            first = first or exc
    raise PixelDecodeError(_decode_reason(f, first, ts)) from first


def _decode_actual(f: ImageFile, frame: int, declared_error: PixelDecodeError) -> np.ndarray:
    """Decode as the transfer syntax the bytes really have; ``declared_error`` when they cannot tell or fail too."""
    from viewer.io.syntax_sniff import EXPLICIT_LE, actual_syntax

    try:
        actual = actual_syntax(f)
    except (OSError, ValueError, struct.error):
        actual = None
    if actual is None or actual == f.transfer_syntax:
        raise declared_error
    name = pydicom.uid.UID(actual).name
    try:
        if actual == EXPLICIT_LE:
            return _read_native_at(f, frame)
        return _decode_declared(f, frame, actual)
    except PixelDecodeError as exc:
        raise PixelDecodeError(f"{declared_error}; its bytes look like {name}, which does not decode either") from exc


def _read_native_at(f: ImageFile, frame: int) -> np.ndarray:
    """Native little-endian values of ``frame`` at the pixel element's value offset, whatever the file declares."""
    dtype = stored_dtype(f).newbyteorder("<")
    if f.samples_per_pixel > 1 and f.planar_configuration == 1:
        shape = (f.samples_per_pixel, f.rows, f.columns)
    else:
        shape = frame_shape(f)
    out = np.empty(shape, dtype=dtype)
    nbytes = out.nbytes
    got = read_bytes_into(f.path, f.pixel_value_offset + frame * nbytes, out, nbytes)
    if got != nbytes:
        raise PixelDecodeError(f"{f.path}: pixel data truncated ({got} of {nbytes} bytes)")
    out = _fix_bits(out.astype(dtype.newbyteorder("="), copy=False), f)
    if len(shape) == 3 and shape[0] == f.samples_per_pixel and f.samples_per_pixel > 1:
        out = np.moveaxis(out, 0, -1)
    return out


def _checked(f: ImageFile, arr: np.ndarray) -> np.ndarray:
    if f.samples_per_pixel == 1 and f.number_of_frames > 1 and arr.ndim == 3:
        arr = arr[0]
    if arr.shape[:2] != (f.rows, f.columns):
        raise PixelDecodeError(f"{f.path}: decoded frame has shape {arr.shape}, expected {(f.rows, f.columns)}")
    return np.ascontiguousarray(arr)


def _decode_reason(f: ImageFile, exc: Exception, transfer_syntax: str | None = None) -> str:
    ts = pydicom.uid.UID(transfer_syntax or f.transfer_syntax)
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"{f.path}: cannot decode {ts.name or ts} pixel data ({msg[:160]})"
