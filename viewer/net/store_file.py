"""An instance received by C-STORE, turned into the DICOM file radview writes — cheaply, off the network thread.

A C-STORE request carries the data set as encoded (its ``BytesIO``, as pynetdicom assembled it from the PDUs), the
SOP class and instance UIDs, and — through its presentation context — the transfer syntax. The file is the 128-byte
preamble, ``DICM``, the File Meta Information (:func:`file_prefix`: encoded directly with ``struct``, byte for byte
what pynetdicom's ``Event.encoded_dataset()`` writes, but without building and encoding a pydicom dataset, which
cost half a millisecond per instance) and the data set bytes unchanged. The header the store files an instance by is
read from the data set's first elements only (:func:`header_of_data_set`: parsing stops after Instance Number,
0020,0013; nothing after it — pixels, group 0028, private groups — is looked at).

:class:`ReceivedDataSet` bundles the four things, so that the C-STORE handler only hands them over: the node waits
for the response to one instance before it sends the next, so every microsecond the handler spends is on the
critical path of each instance, while the writer threads (``viewer.net.receive.InstanceWriter``) overlap with the
transfer of the next one.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from io import BytesIO

from viewer.net.instance_header import HEADER_KEYWORDS, HeaderError, InstanceHeader, header_of_bytes, header_of_dataset

PREAMBLE = b"\x00" * 128 + b"DICM"
LAST_HEADER_TAG = 0x00200013  # Instance Number: the largest tag InstanceHeader needs


def _element(tag: int, vr: bytes, value: bytes) -> bytes:
    """An explicit VR little endian element with a 2-byte length (UL, UI, SH)."""
    return struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr, len(value)) + value


def _padded(text: str, pad: bytes) -> bytes:
    raw = str(text).encode("ascii", "replace")
    return raw + pad * (len(raw) % 2)


def file_prefix(sop_class_uid: str, sop_uid: str, transfer_syntax: str) -> bytes:
    """Preamble, ``DICM`` and the File Meta Information group for a received data set (pynetdicom's
    implementation UID and version, as ``Event.encoded_dataset()`` writes them)."""
    from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID, PYNETDICOM_IMPLEMENTATION_VERSION

    body = b"".join((
        struct.pack("<HH2sHI", 0x0002, 0x0001, b"OB", 0, 2), b"\x00\x01",  # File Meta Information Version
        _element(0x00020002, b"UI", _padded(sop_class_uid, b"\x00")),
        _element(0x00020003, b"UI", _padded(sop_uid, b"\x00")),
        _element(0x00020010, b"UI", _padded(transfer_syntax, b"\x00")),
        _element(0x00020012, b"UI", _padded(PYNETDICOM_IMPLEMENTATION_UID, b"\x00")),
        _element(0x00020013, b"SH", _padded(PYNETDICOM_IMPLEMENTATION_VERSION, b" ")),
    ))
    return PREAMBLE + _element(0x00020000, b"UL", struct.pack("<I", len(body))) + body


def _past_header(tag, _vr, _length) -> bool:
    return tag > LAST_HEADER_TAG


def header_of_data_set(data: BytesIO, transfer_syntax: str, sop_class_uid: str = "",
                       sop_uid: str = "") -> InstanceHeader:
    """The header of a data set without file meta, encoded in ``transfer_syntax``; the request's SOP class and
    instance UIDs stand in for the data set's when it lacks them (as the file meta does for a file)."""
    from pydicom.filereader import read_dataset
    from pydicom.tag import Tag
    from pydicom.uid import UID

    ts = UID(transfer_syntax)
    if not ts.is_transfer_syntax or ts.is_deflated or not ts.is_little_endian:  # rare: the general path
        return header_of_bytes(file_prefix(sop_class_uid, sop_uid, transfer_syntax) + data.getvalue())
    data.seek(0)
    try:
        ds = read_dataset(data, ts.is_implicit_VR, True, stop_when=_past_header,
                          specific_tags=[Tag(k) for k in ("SpecificCharacterSet", *HEADER_KEYWORDS)])
    except (EOFError, ValueError, KeyError, struct.error) as exc:
        raise HeaderError(f"not a readable DICOM data set: {exc}") from exc
    return header_of_dataset(ds, transfer_syntax=str(ts), sop_uid=sop_uid, sop_class_uid=sop_class_uid)


@dataclass(frozen=True)
class ReceivedDataSet:
    """One C-STORE's data set as received, and what its file meta is made of."""

    data: BytesIO
    sop_class_uid: str
    sop_uid: str
    transfer_syntax: str

    def header(self) -> InstanceHeader:
        return header_of_data_set(self.data, self.transfer_syntax, self.sop_class_uid, self.sop_uid)

    def write(self, path: str) -> None:
        """Write the whole file at ``path`` (the data set bytes as they came, not copied again)."""
        with open(path, "wb") as fh, self.data.getbuffer() as view:
            fh.write(file_prefix(self.sop_class_uid, self.sop_uid, self.transfer_syntax))
            fh.write(view)

    def encoded(self) -> bytes:
        """The whole file's bytes (what ``write`` writes)."""
        return file_prefix(self.sop_class_uid, self.sop_uid, self.transfer_syntax) + self.data.getvalue()
