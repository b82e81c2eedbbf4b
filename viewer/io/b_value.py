"""The diffusion b-value of an image: the standard DiffusionBValue (0018,9087), else the vendors' private tags.

Private tags are numbered per block: the private creator (gggg,00xx) names the block, and the block's elements are
(gggg,xxEE). A value is read only from the block its vendor's creator names, so another vendor's element at the
same number (GE's "GEMS_ACQU_01" also lives in group 0019) is never taken for a b-value:

* GE: "GEMS_PARM_01" (0043,xx39), IS, "1000\\8\\0\\0": the first value; GE adds 1e9 to it on some scanners
  (a value ≥ 1e9 means value − 1e9, as dcm2niix reads it).
* Siemens: "SIEMENS MR HEADER" (or "SIEMENS CSA HEADER") (0019,xx0C) B_value, IS.
* Philips: "Philips Imaging DD 001" (2001,xx03) Diffusion B-Factor, FL.

Both header readers give the private elements as ``{tag: (VR, value)}``: :mod:`viewer.io.fast_header` raw bytes
(VR "" in implicit VR files, "UN" where a system did not know the element), pydicom decoded values
(:func:`pydicom_private_elements`).
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass


@dataclass(frozen=True)
class VendorBValue:
    vendor: str
    group: int
    offset: int  # the element's number inside its block: (group, block << 8 | offset)
    creators: tuple[str, ...]  # upper case, stripped
    binary: str = ""  # struct format of a binary value ("<f"); "" for a text value (IS/DS)


VENDOR_TAGS = (
    VendorBValue("GE", 0x0043, 0x39, ("GEMS_PARM_01",)),
    VendorBValue("Siemens", 0x0019, 0x0C, ("SIEMENS MR HEADER", "SIEMENS CSA HEADER")),
    VendorBValue("Philips", 0x2001, 0x03, ("PHILIPS IMAGING DD 001",), binary="<f"),
)
#: group → the offsets of the b-value elements in it (what a header reader keeps of the private groups)
PRIVATE_OFFSETS: dict[int, frozenset[int]] = {
    group: frozenset(t.offset for t in VENDOR_TAGS if t.group == group) for group in {t.group for t in VENDOR_TAGS}}
_TEXT_VRS = {"IS", "DS", "LO", "SH", "ST", "LT", "UT", "CS"}
_BINARY_VRS = {"FL": "<f", "FD": "<d", "SL": "<i", "UL": "<I", "SS": "<h", "US": "<H"}
#: anything larger is not a b-value (s/mm²)
MAX_B_VALUE = 1e5


def is_wanted_private(tag: int) -> bool:
    """Whether a header reader keeps element ``tag``: a private creator or a b-value element of a vendor group."""
    group, element = tag >> 16, tag & 0xFFFF
    offsets = PRIVATE_OFFSETS.get(group)
    if offsets is None:
        return False
    return 0x10 <= element <= 0xFF or (element >= 0x1000 and (element & 0xFF) in offsets)


def pydicom_private_elements(ds) -> dict:
    """The private creators and b-value elements of a pydicom dataset, as ``{tag: (VR, value)}``."""
    out: dict = {}
    for group, offsets in PRIVATE_OFFSETS.items():
        try:
            creators = list(ds[(group, 0x0010):(group, 0x0100)])
        except Exception:  # noqa: BLE001 (a malformed group: no private b-value)
            continue
        for elem in creators:
            out[int(elem.tag)] = (str(elem.VR), elem.value)
            for offset in offsets:
                tag = (group << 16) | (elem.tag.element << 8) | offset
                try:
                    data = ds.get(tag)
                except Exception:  # noqa: BLE001
                    data = None
                if data is not None:
                    out[tag] = (str(data.VR), data.value)
    return out


def _text(value) -> str:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("latin-1", "replace").strip("\x00 ")
    return str(value).strip("\x00 ")


def _first_number(value, vr: str, binary: str) -> float | None:
    """The first number of an element's value, whatever form it comes in."""
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        raw = bytes(value)
        fmt = _BINARY_VRS.get(vr) or ("" if vr in _TEXT_VRS else binary)
        if fmt:
            size = struct.calcsize(fmt)
            return float(struct.unpack_from(fmt, raw)[0]) if len(raw) >= size else None
        value = _text(raw)
    if isinstance(value, str):
        first = value.split("\\")[0].strip()
        try:
            return float(first) if first else None
        except ValueError:
            return None
    if isinstance(value, (int, float)):
        return float(value)
    try:  # a pydicom MultiValue, a list
        return _first_number(value[0], vr, binary) if len(value) else None
    except (TypeError, IndexError, KeyError):
        return None


def private_b_value(elements: dict) -> float | None:
    """The b-value the vendors' private tags give (None when none does), from ``{tag: (VR, value)}``."""
    if not elements:
        return None
    for spec in VENDOR_TAGS:
        for block in range(0x10, 0x100):
            creator = elements.get((spec.group << 16) | block)
            if creator is None or _text(creator[1]).upper() not in spec.creators:
                continue
            data = elements.get((spec.group << 16) | (block << 8) | spec.offset)
            if data is None:
                continue
            try:
                value = _first_number(data[1], data[0], spec.binary)
            except (struct.error, ValueError, OverflowError):
                value = None
            if value is None or not math.isfinite(value):
                continue
            if spec.vendor == "GE" and value >= 1e9:
                value = math.fmod(value, 1e9)  # GE's flag added to the b-value
            if 0 <= value <= MAX_B_VALUE:
                return value
    return None


def b_value(standard, private_elements: dict) -> float | None:
    """DiffusionBValue (0018,9087) when the header has it, else the vendors' private b-value (s/mm²)."""
    value = _first_number(standard, "FD", "")
    if value is not None and math.isfinite(value) and value >= 0:
        return value
    return private_b_value(private_elements)
