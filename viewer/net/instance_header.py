"""The attributes an arriving instance is filed and indexed by, read from its header only (never its pixels).

:func:`header_of_bytes` reads them from an encoded DICOM file (what a C-STORE or a WADO-RS part carries),
:func:`header_of_dataset` from a pydicom Dataset, :func:`header_of_file` from a file on disk. UIDs become file
names only through :func:`safe_name`: a peer cannot choose where a file lands.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from io import BytesIO

_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
HEADER_KEYWORDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID", "PatientName",
                   "PatientID", "PatientBirthDate", "StudyDate", "StudyTime", "AccessionNumber", "StudyDescription",
                   "Modality", "SeriesDescription", "SeriesNumber", "InstanceNumber")


class HeaderError(ValueError):
    """The instance lacks a UID it must have, or is not DICOM."""


@dataclass(frozen=True)
class InstanceHeader:
    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class_uid: str = ""
    transfer_syntax: str = ""
    patient_name: str = ""
    patient_id: str = ""
    birth_date: str = ""
    study_date: str = ""
    study_time: str = ""
    accession: str = ""
    study_description: str = ""
    modality: str = ""
    series_description: str = ""
    series_number: int | None = None
    instance_number: int | None = None


def safe_name(uid: str) -> str:
    """``uid`` itself when it is a well-formed UID (digits and dots, ≤ 64), else a hash of it: always a plain name."""
    uid = str(uid)
    if _UID.match(uid) and len(uid) <= 64:
        return uid
    return "x" + hashlib.sha256(uid.encode("utf-8", "surrogateescape")).hexdigest()[:40]


def _value(ds, keyword: str):
    value = ds.get(keyword, None)
    if value is None:
        return ""
    return str(value).strip()


def _number(ds, keyword: str) -> int | None:
    try:
        value = ds.get(keyword, None)
        return None if value in (None, "") else int(value)
    except (TypeError, ValueError):
        return None


def header_of_dataset(ds, transfer_syntax: str | None = None, sop_uid: str = "",
                      sop_class_uid: str = "") -> InstanceHeader:
    """The header of ``ds``; its file meta gives the transfer syntax and stands in for missing SOP UIDs — or, for a
    data set without one (a C-STORE's), ``transfer_syntax``, ``sop_uid`` and ``sop_class_uid`` do."""
    meta = getattr(ds, "file_meta", None)
    if transfer_syntax is None:
        transfer_syntax = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    if meta:
        sop_uid = str(meta.get("MediaStorageSOPInstanceUID", "")) or sop_uid
        sop_class_uid = str(meta.get("MediaStorageSOPClassUID", "")) or sop_class_uid
    ts = transfer_syntax
    sop_uid = _value(ds, "SOPInstanceUID") or str(sop_uid or "").strip()
    sop_class = _value(ds, "SOPClassUID") or str(sop_class_uid or "").strip()
    h = InstanceHeader(study_uid=_value(ds, "StudyInstanceUID"), series_uid=_value(ds, "SeriesInstanceUID"),
                       sop_uid=sop_uid, sop_class_uid=sop_class, transfer_syntax=ts,
                       patient_name=_value(ds, "PatientName"), patient_id=_value(ds, "PatientID"),
                       birth_date=_value(ds, "PatientBirthDate"), study_date=_value(ds, "StudyDate"),
                       study_time=_value(ds, "StudyTime"), accession=_value(ds, "AccessionNumber"),
                       study_description=_value(ds, "StudyDescription"), modality=_value(ds, "Modality"),
                       series_description=_value(ds, "SeriesDescription"),
                       series_number=_number(ds, "SeriesNumber"), instance_number=_number(ds, "InstanceNumber"))
    missing = [k for k, v in (("StudyInstanceUID", h.study_uid), ("SeriesInstanceUID", h.series_uid),
                              ("SOPInstanceUID", h.sop_uid)) if not v]
    if missing:
        raise HeaderError(f"the instance has no {', '.join(missing)}")
    return h


def header_of_bytes(data: bytes) -> InstanceHeader:
    """The header of an encoded DICOM file (preamble and file meta included)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(BytesIO(data), stop_before_pixels=True, specific_tags=list(HEADER_KEYWORDS))
    except (InvalidDicomError, EOFError, ValueError, KeyError) as exc:
        raise HeaderError(f"not a readable DICOM instance: {exc}") from exc
    return header_of_dataset(ds)


def header_of_file(path: str) -> InstanceHeader:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=list(HEADER_KEYWORDS))
    except (InvalidDicomError, EOFError, ValueError, KeyError) as exc:
        raise HeaderError(f"{path}: not a readable DICOM file ({exc})") from exc
    return header_of_dataset(ds)
