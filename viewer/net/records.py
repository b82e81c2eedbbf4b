"""Query criteria and the rows a query returns, the same for C-FIND, QIDO-RS and the local database.

:class:`QueryCriteria` is what the user asks (patient name with ``*``/``?`` wildcards, patient ID, a study date
or range ``YYYYMMDD[-YYYYMMDD]``, modality, accession number, description, study UID); :class:`StudyRecord` and
:class:`SeriesRecord` are what comes back, built from a pydicom Dataset (a C-FIND identifier, or a QIDO-RS JSON
object read with ``Dataset.from_json``). ``to_json()`` gives the keys ``radview-cli pacs query --json`` prints.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from viewer.net.errors import SettingsError

LEVELS = ("study", "series")
_DATE = re.compile(r"^(\d{8})?(-)?(\d{8})?$")


def check_date_range(text: str) -> str:
    """``YYYYMMDD``, ``YYYYMMDD-YYYYMMDD``, ``YYYYMMDD-`` or ``-YYYYMMDD``; anything else is a SettingsError."""
    text = str(text or "").strip()
    if not text:
        return ""
    m = _DATE.match(text)
    if not m or not (m.group(1) or m.group(3)) or (m.group(3) and not m.group(2)):
        raise SettingsError(f"study date {text!r}: expected YYYYMMDD or YYYYMMDD-YYYYMMDD (either end may be open)")
    if m.group(1) and m.group(3) and m.group(1) > m.group(3):
        raise SettingsError(f"study date {text!r}: the range ends before it starts")
    return text


def date_bounds(text: str) -> tuple[str, str]:
    """(first, last) dates of a range as ``YYYYMMDD`` strings ("" for an open end)."""
    text = check_date_range(text)
    if not text:
        return "", ""
    if "-" not in text:
        return text, text
    lo, hi = text.split("-", 1)
    return lo, hi


@dataclass(frozen=True)
class QueryCriteria:
    """What to search for; empty fields match anything. ``level``: ``study`` or ``series``."""

    level: str = "study"
    patient_name: str = ""
    patient_id: str = ""
    study_date: str = ""
    modality: str = ""
    accession: str = ""
    description: str = ""
    study_uid: str = ""
    series_uid: str = ""
    limit: int = 0  # 0: no limit

    def __post_init__(self):
        if self.level not in LEVELS:
            raise SettingsError(f"query level must be one of {', '.join(LEVELS)}, not {self.level!r}")
        object.__setattr__(self, "study_date", check_date_range(self.study_date))


def _text(ds, keyword: str) -> str:
    from pydicom.multival import MultiValue

    value = ds.get(keyword, "")
    if value is None:
        return ""
    if isinstance(value, (MultiValue, list, tuple)):
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def _int(ds, keyword: str) -> int | None:
    value = ds.get(keyword, None)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class StudyRecord:
    study_uid: str
    patient_name: str = ""
    patient_id: str = ""
    birth_date: str = ""
    study_date: str = ""
    study_time: str = ""
    accession: str = ""
    description: str = ""
    modalities: tuple[str, ...] = ()
    n_series: int | None = None
    n_instances: int | None = None

    @classmethod
    def from_dataset(cls, ds) -> StudyRecord:
        modalities = _text(ds, "ModalitiesInStudy")
        return cls(study_uid=_text(ds, "StudyInstanceUID"), patient_name=_text(ds, "PatientName"),
                   patient_id=_text(ds, "PatientID"), birth_date=_text(ds, "PatientBirthDate"),
                   study_date=_text(ds, "StudyDate"), study_time=_text(ds, "StudyTime"),
                   accession=_text(ds, "AccessionNumber"), description=_text(ds, "StudyDescription"),
                   modalities=tuple(m for m in modalities.split("\\") if m),
                   n_series=_int(ds, "NumberOfStudyRelatedSeries"),
                   n_instances=_int(ds, "NumberOfStudyRelatedInstances"))

    def to_json(self) -> dict:
        return {"level": "study", "study_uid": self.study_uid, "patient_name": self.patient_name,
                "patient_id": self.patient_id, "study_date": self.study_date, "study_time": self.study_time,
                "accession": self.accession, "modality": "\\".join(self.modalities),
                "modalities": list(self.modalities), "description": self.description, "n_series": self.n_series,
                "n_instances": self.n_instances}


@dataclass(frozen=True)
class SeriesRecord:
    study_uid: str
    series_uid: str
    modality: str = ""
    description: str = ""
    number: int | None = None
    n_instances: int | None = None
    patient_id: str = ""  # of the study it belongs to
    patient_name: str = ""
    study_date: str = ""

    @classmethod
    def from_dataset(cls, ds, study: StudyRecord | None = None) -> SeriesRecord:
        return cls(study_uid=_text(ds, "StudyInstanceUID") or (study.study_uid if study else ""),
                   series_uid=_text(ds, "SeriesInstanceUID"), modality=_text(ds, "Modality"),
                   description=_text(ds, "SeriesDescription"), number=_int(ds, "SeriesNumber"),
                   n_instances=_int(ds, "NumberOfSeriesRelatedInstances"),
                   patient_id=_text(ds, "PatientID") or (study.patient_id if study else ""),
                   patient_name=_text(ds, "PatientName") or (study.patient_name if study else ""),
                   study_date=_text(ds, "StudyDate") or (study.study_date if study else ""))

    def to_json(self) -> dict:
        return {"level": "series", "study_uid": self.study_uid, "series_uid": self.series_uid,
                "patient_id": self.patient_id, "patient_name": self.patient_name, "study_date": self.study_date,
                "modality": self.modality, "description": self.description, "series_number": self.number,
                "n_instances": self.n_instances}


@dataclass(frozen=True)
class InstanceRef:
    """One instance a node holds (from an instance-level query): what a resumed retrieve compares against."""

    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class_uid: str = ""
