"""What a pixel data element really holds, told from its bytes when the declared transfer syntax does not decode.

A file meta can lie: a converter that re-wrote the dataset uncompressed but kept "JPEG Baseline" in
(0002,0010), or JPEG 2000 fragments under a JPEG Lossless UID. Only what the bytes themselves say is used:

- a value of defined length that holds at least every frame's native bytes is native (uncompressed) data;
- encapsulated fragments are recognised by their codec's own signature: JPEG (SOI, then the SOF marker tells
  baseline/extended, lossless or JPEG-LS), a JPEG 2000 codestream or JP2 box (with a CAP marker: HTJ2K), or
  an RLE header (segment count, first offset 64).

Anything else is ``None``: the bytes cannot tell, and the caller drops the image with its reason.
"""
from __future__ import annotations

import struct

from viewer.io.dicom_header import ImageFile
from viewer.io.regular_file import open_bounded

EXPLICIT_LE = "1.2.840.10008.1.2.1"
JPEG_BASELINE, JPEG_EXTENDED, JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", \
    "1.2.840.10008.1.2.4.70"
JPEG_LS_LOSSLESS, JPEG_2000, HTJ2K, RLE = "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.90", \
    "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.5"
_ITEM, _SEQ_END = 0xFFFEE000, 0xFFFEE0DD
_HEAD = 4096  # bytes of the first fragment looked at


def native_frame_bytes(f: ImageFile) -> int:
    return f.rows * f.columns * f.samples_per_pixel * max(f.bits_allocated, 8) // 8


def actual_syntax(f: ImageFile) -> str | None:
    """The transfer syntax ``f``'s pixel bytes really have, or None when they cannot tell."""
    if f.pixel_value_offset is None or f.pixel_tag != "PixelData":
        return None
    if f.pixel_length is not None:
        if f.bits_allocated >= 8 and f.pixel_length >= native_frame_bytes(f) * f.number_of_frames:
            return EXPLICIT_LE  # (defined length: never encapsulated)
        return None
    head = _first_fragment(f.path, f.pixel_value_offset)
    return codec_of(head) if head else None


def _first_fragment(path: str, offset: int) -> bytes | None:
    """The first bytes of the first non-empty fragment after the Basic Offset Table, or None."""
    with open_bounded(path) as fp:
        pos = offset
        for n in range(3):  # the Basic Offset Table item, then (normally) the first fragment
            fp.seek(pos)
            head = fp.read(8)
            if len(head) < 8:
                return None
            group, elem, length = struct.unpack("<HHI", head)
            tag = (group << 16) | elem
            if tag != _ITEM or length == 0xFFFFFFFF:
                return None
            if n > 0 and length:
                return fp.read(min(length, _HEAD))
            pos += 8 + length
    return None


def codec_of(data: bytes) -> str | None:
    """The transfer syntax whose codec wrote ``data`` (the start of a fragment), or None."""
    if data[:2] == b"\xff\xd8":
        return _jpeg_kind(data)
    if data[:4] == b"\xff\x4f\xff\x51":  # JPEG 2000 codestream: SOC, SIZ
        return HTJ2K if b"\xff\x50" in data[4:512] else JPEG_2000
    if data[4:8] == b"jP  " or data[4:8] == b"jP\x1a\x1a":  # JP2 signature box
        return JPEG_2000
    if len(data) >= 8:
        n_segments, first = struct.unpack("<II", data[:8])
        if 1 <= n_segments <= 15 and first == 64:
            return RLE
    return None


def _jpeg_kind(data: bytes) -> str | None:
    """Walk the JPEG markers to the start of frame: which JPEG process wrote it."""
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xC0, 0xC1, 0xC2):
            return JPEG_BASELINE if marker == 0xC0 else JPEG_EXTENDED
        if marker == 0xC3:
            return JPEG_LOSSLESS_SV1
        if marker == 0xF7:
            return JPEG_LS_LOSSLESS
        length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        pos += 2 + length
    return None
