"""A minimal, fast reader for the top level of classic DICOM headers.

pydicom parses every element of a header into Python objects; a folder scan
needs about forty attributes and the byte offset of the pixel data. This walker
skips everything else by its length (nested sequences included), which makes
indexing several times faster. It handles little-endian implicit/explicit VR
files with or without the Part 10 preamble; anything else (enhanced
multi-frame functional groups, big endian, deflate, odd structure) returns
``None`` and the caller falls back to pydicom.
"""
from __future__ import annotations

import struct

from pydicom.datadict import dictionary_VR, tag_for_keyword

from viewer.io.b_value import is_wanted_private
from viewer.io.regular_file import read_head

KEYWORDS = (
    "SpecificCharacterSet", "ImageType", "SOPClassUID", "SOPInstanceUID", "StudyDate", "SeriesDate",
    "AcquisitionDate", "StudyTime", "SeriesTime", "AcquisitionTime", "AccessionNumber", "Modality",
    "Manufacturer", "InstitutionName", "StudyDescription", "SeriesDescription", "PatientName", "PatientID",
    "PatientBirthDate", "PatientSex", "BodyPartExamined", "SliceThickness", "SpacingBetweenSlices",
    "EchoTime", "EchoNumbers", "ProtocolName", "TriggerTime", "DiffusionBValue", "StudyInstanceUID",
    "SeriesInstanceUID",
    "SeriesNumber", "AcquisitionNumber", "InstanceNumber", "ImagePositionPatient", "ImageOrientationPatient",
    "FrameOfReferenceUID", "TemporalPositionIdentifier", "SamplesPerPixel", "PhotometricInterpretation",
    "PlanarConfiguration", "NumberOfFrames", "Rows", "Columns", "PixelSpacing", "ImagerPixelSpacing",
    "BitsAllocated", "BitsStored", "PixelRepresentation", "WindowCenter", "WindowWidth", "RescaleIntercept",
    "RescaleSlope", "LossyImageCompression", "RepetitionTime", "MagneticFieldStrength",
    "KVP", "XRayTubeCurrent", "Exposure", "ExposureTime", "ConvolutionKernel",
)
WANTED = {tag_for_keyword(k): k for k in KEYWORDS}
_VR = {tag: dictionary_VR(tag) for tag in WANTED}
#: Philips private "scale slope" (2005,100E), FL: needed for Philips' floating-point values.
PHILIPS_SCALE_SLOPE = 0x2005100E
WANTED[PHILIPS_SCALE_SLOPE] = "PhilipsScaleSlope"
_VR[PHILIPS_SCALE_SLOPE] = "FL"
#: a private element longer than this is never a creator or a b-value (not kept)
_MAX_PRIVATE_BYTES = 256
_FALLBACK_TAGS = {0x52009229, 0x52009230}  # functional groups: enhanced multi-frame → pydicom
PIXEL_TAGS = {0x7FE00010: "PixelData", 0x7FE00008: "FloatPixelData", 0x7FE00009: "DoubleFloatPixelData"}
LONG_VRS = {b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"SQ", b"UC", b"UN", b"UR", b"UT"}
_KNOWN_VRS = {vr.encode() for vr in (
    "AE", "AS", "AT", "CS", "DA", "DS", "DT", "FL", "FD", "IS", "LO", "LT", "OB", "OD", "OF", "OL", "OV", "OW", "PN",
    "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UN", "UR", "US", "UT", "UV")}
_ITEM, _ITEM_END, _SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_TAG = struct.Struct("<HH")


class _Fallback(Exception):
    pass


class FastDataset:
    """The decoded wanted attributes, with a pydicom-like ``get``; ``private``: the private creators and b-value
    elements of the vendors' groups (:mod:`viewer.io.b_value`), ``{tag: (VR or "", raw bytes)}``."""

    __slots__ = ("values", "transfer_syntax", "pixel", "at_eof", "private")

    def __init__(self, values, transfer_syntax, pixel, at_eof, private=None):
        self.values = values
        self.transfer_syntax = transfer_syntax
        self.pixel = pixel
        self.at_eof = at_eof
        self.private = private if private is not None else {}

    def get(self, keyword, default=None):
        return self.values.get(keyword, default)

    def __contains__(self, keyword):
        return keyword in self.values


def _decode(tag: int, raw: bytes, encoding: str):
    vr = _VR[tag]
    if vr == "US":
        n = len(raw) // 2
        vals = struct.unpack(f"<{n}H", raw[: 2 * n])
        return vals[0] if n == 1 else list(vals)
    if vr == "SQ":
        return None
    if vr == "FL":
        return struct.unpack("<f", raw[:4])[0] if len(raw) >= 4 else None
    if vr == "FD":
        return struct.unpack("<d", raw[:8])[0] if len(raw) >= 8 else None
    text = raw.decode(encoding, errors="replace").rstrip("\x00 ").strip()
    if vr in ("DS", "IS", "CS") or (vr in ("LO", "SH", "PN", "UI") and "\\" in text):
        parts = [p.strip() for p in text.split("\\")]
        if vr in ("DS", "IS"):
            try:
                nums = [float(p) if vr == "DS" else int(float(p)) for p in parts if p != ""]
            except (ValueError, OverflowError):  # "inf" in an IS
                return None
            if not nums:
                return None
            return nums[0] if len(nums) == 1 else nums
        return parts[0] if len(parts) == 1 else parts
    return text


def _skip_undefined(buf: bytes, pos: int, explicit: bool) -> int:
    """Position just after the sequence delimiter of an undefined-length value starting at ``pos``."""
    while True:
        if pos + 8 > len(buf):
            raise _Fallback("header longer than buffer")
        g, e = _TAG.unpack_from(buf, pos)
        tag = (g << 16) | e
        length = _U32.unpack_from(buf, pos + 4)[0]
        pos += 8
        if tag == _SEQ_END:
            return pos
        if tag != _ITEM:
            raise _Fallback("unexpected element in sequence")
        if length != 0xFFFFFFFF:
            pos += length
            continue
        # item of undefined length: walk its elements until the item delimiter
        while True:
            g, e = _TAG.unpack_from(buf, pos)
            tag = (g << 16) | e
            if tag == _ITEM_END:
                pos += 8
                break
            pos, length = _element_header(buf, pos, explicit)
            pos = _skip_undefined(buf, pos, explicit) if length == 0xFFFFFFFF else pos + length


def _element_header(buf: bytes, pos: int, explicit: bool) -> tuple[int, int]:
    """(value position, value length) of the element at ``pos``."""
    if explicit and buf[pos + 4:pos + 6].isalpha() and buf[pos + 4:pos + 6].isupper():
        vr = buf[pos + 4:pos + 6]
        if vr in LONG_VRS:
            return pos + 12, _U32.unpack_from(buf, pos + 8)[0]
        return pos + 8, _U16.unpack_from(buf, pos + 6)[0]
    if explicit:
        raise _Fallback("malformed explicit VR")
    return pos + 8, _U32.unpack_from(buf, pos + 4)[0]


def read_fast(path: str, chunk: int = 65536, stat_first: bool = True) -> FastDataset | None:
    """Parse ``path``'s header, or ``None`` when the caller should use pydicom.

    Only a regular file is opened (anything else: ``None``, and the caller says why), and no read goes past its size
    (``stat_first=False``: the caller has just checked that it is a regular file).
    """
    try:
        for _ in range(4):  # 64 KiB, then 256 KiB, 1 MiB, 4 MiB: a longer header goes to pydicom
            buf, size = read_head(path, chunk, stat_first)
            try:
                return _parse(buf, eof=len(buf) >= size)
            except _NeedMore:
                if len(buf) >= size:
                    return None
                chunk *= 4
    except (_Fallback, struct.error, IndexError, UnicodeDecodeError, OSError, RecursionError):
        return None
    return None


class _NeedMore(Exception):
    pass


def _parse(buf: bytes, eof: bool) -> FastDataset | None:
    ts = "1.2.840.10008.1.2"
    pos = 0
    if len(buf) >= 132 and buf[128:132] == b"DICM":
        pos = 132
    if buf[pos:pos + 2] == b"\x02\x00":  # file meta group, always explicit VR little endian
        while pos + 8 <= len(buf) and buf[pos:pos + 2] == b"\x02\x00":
            e = _U16.unpack_from(buf, pos + 2)[0]
            vpos, length = _element_header(buf, pos, True)
            if e == 0x0010:
                ts = buf[vpos:vpos + length].decode("ascii", "replace").rstrip("\x00 ")
            pos = vpos + length
    elif pos == 0 and not (buf[:2] == b"\x08\x00"):
        return None  # neither Part 10 nor a bare dataset starting at group 0008
    if ts in ("1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"):
        return None
    explicit = ts != "1.2.840.10008.1.2"
    if pos + 8 <= len(buf):
        # The encoding the bytes really have wins over the declared one (a bare dataset written in explicit VR, or a
        # file meta that lies about the transfer syntax), as pydicom decides it: a known VR in bytes 4-5 of the
        # first element means explicit VR.
        explicit = bytes(buf[pos + 4:pos + 6]) in _KNOWN_VRS
    values: dict = {}
    raw: dict[int, bytes] = {}
    private: dict[int, tuple[str, bytes]] = {}
    n = len(buf)
    pixel = None
    while True:
        if pos + 8 > n:
            if eof and pos >= n:
                break
            raise _NeedMore
        g, e = _TAG.unpack_from(buf, pos)
        tag = (g << 16) | e
        if tag in _FALLBACK_TAGS:
            return None
        if pos + 12 > n and not eof:
            raise _NeedMore
        vpos, length = _element_header(buf, pos, explicit)
        if tag in PIXEL_TAGS:
            pixel = (PIXEL_TAGS[tag], vpos, None if length == 0xFFFFFFFF else length)
            break
        if length == 0xFFFFFFFF:
            try:
                pos = _skip_undefined(buf, vpos, explicit)
            except (_Fallback, struct.error, IndexError):
                if eof:
                    raise _Fallback("truncated sequence") from None
                raise _NeedMore from None
            continue
        if tag in WANTED:
            if vpos + length > n:
                if eof:
                    raise _Fallback("truncated value")
                raise _NeedMore
            raw[tag] = buf[vpos:vpos + length]
        elif g & 1 and length <= _MAX_PRIVATE_BYTES and is_wanted_private(tag):
            if vpos + length > n:
                if eof:
                    raise _Fallback("truncated value")
                raise _NeedMore
            vr = bytes(buf[pos + 4:pos + 6]).decode("ascii") if explicit else ""  # (checked by _element_header)
            private[tag] = (vr, bytes(buf[vpos:vpos + length]))
        pos = vpos + length
    encoding = "latin-1"
    cs = raw.get(0x00080005)
    if cs is not None:
        charset = cs.decode("ascii", "replace").strip("\x00 ")
        if charset.replace("ISO_IR 6", "").strip("\\ "):
            if charset in ("ISO_IR 192",):
                encoding = "utf-8"
            elif charset not in ("ISO_IR 100",):
                return None  # other character sets: let pydicom decode them
    for tag, value in raw.items():
        decoded = _decode(tag, value, encoding)
        if decoded is not None and decoded != "":
            values[WANTED[tag]] = decoded
    return FastDataset(values, ts, pixel, at_eof=pixel is None, private=private)
