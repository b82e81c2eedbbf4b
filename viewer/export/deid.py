"""A de-identified copy of a DICOM study: PS3.15 Annex E, Basic Application Level Confidentiality Profile.

``deidentify_study(src, out_dir)`` reads every DICOM file under ``src`` and writes a de-identified
copy of each into ``out_dir`` (``<patient pseudonym>/study-<h>/<modality><series number>-<h>/<instance
number>-<h>.dcm``, names made only from de-identified values), one file per instance, each written
atomically (``radview_base.atomic_file``: temporary file in the destination folder, then one rename), so
a cancelled or failed run never leaves a half-written file. The source is never modified. The returned
:class:`DeidReport` lists every file written and every file skipped with its reason.

What is done to each instance (the Basic Profile without options):

* every attribute, at any depth, goes through :class:`viewer.export.deid_clean.AttributeCleaner`: the
  action of PS3.15 Table E.1-1 (edition 2026c, :mod:`viewer.export.deid_table`) for the attributes it
  lists, the compound codes resolved by the attribute's Type in the IOD (:mod:`viewer.export.deid_types`):
  a Type 3 attribute marked X/Z, X/D, X/Z/D or X/Z/U* is removed, a Type 2 one emptied, a Type 1 one
  given a dummy (a sequence of references: kept, its instance UIDs replaced); private attributes, curves,
  overlays and attributes the data dictionary does not know are removed; see that module for the rest;
* UIDs are remapped consistently across the whole run: the same original UID gives the same new UID
  in every file (Study, Series, SOP Instance, Frame of Reference, references in sequences, the file
  meta's Media Storage SOP Instance UID, any UI attribute listed U). UI attributes the table does not
  list are remapped too unless they name a class, a transfer syntax or a coding scheme, or hold a
  UID of the DICOM registry or under the DICOM root 1.2.840.10008 (such UIDs identify no patient).
  New UIDs are ``generate_uid(prefix, entropy=[secret, old])`` with a random per-run secret (or
  ``DeidOptions.secret`` for mappings reproducible across runs); an instance without a SOP Instance
  UID gets a new one;
* dates and times: the table's actions; dates and times the table does not list (Frame Acquisition
  DateTime in functional groups, ...) also become dummies (``blank_unlisted_dates``, on by default), so
  no real date is left. Dates are not shifted: the Basic Profile has no longitudinal option, and
  Longitudinal Temporal Information Modified is set to REMOVED;
* Patient's Name becomes ``DeidOptions.patient_name`` ("ANONYMOUS") and Patient ID a keyed hash of
  the original (``ANON-`` + 12 hex digits of HMAC-SHA256 with the run's secret: the same patient gets
  the same pseudonym within a run, and the original ID cannot be recovered by hashing guesses);
* Patient Identity Removed = YES, De-identification Method names the profile, and
  De-identification Method Code Sequence gets (113100, DCM, "Basic Application Confidentiality
  Profile");
* radview's own SEG and SR (:func:`is_radview_object`: Manufacturer ``radview``, Software Versions
  ``radview ...``) keep their review stamp (:data:`RADVIEW_STAMPS`, "AI result, not reviewed"): a Series
  Description or Content Description that holds it becomes the stamp alone, and SR text items equal to
  it are not replaced by dummies; nothing else of their text is kept;
* pixel data is copied unchanged, in its transfer syntax (compressed data stays compressed); the
  file meta is rebuilt (Implementation Class UID: pydicom's; no Source AE Title, no private meta).

Skipped, with a reason in the report: files that are not DICOM or cannot be read, DICOMDIRs,
objects without a SOP Class UID, a second file holding an instance already written (same SOP
Instance UID), encapsulated documents (their content is not de-identified), and images whose pixel
data may show patient data: Burned In Annotation = YES, or no Burned In
Annotation at all on a class that usually carries burned-in text (secondary capture, ultrasound,
visible-light photography/endoscopy/video). ``DeidOptions.allow_burned_in`` writes those too (their
Patient Identity Removed is then NO, since the pixels were not cleaned).

This module is Qt-free and torch-free.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import threading
from dataclasses import asdict, dataclass, field
from typing import Callable

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    PYDICOM_ROOT_UID,
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)

from radview_base.atomic_file import atomic_write
from viewer.export import AI_NOT_REVIEWED, ExportError
from viewer.export.deid_clean import DUMMY_VALUES, PIXEL_TAGS, AttributeCleaner
from viewer.export.deid_profile import BASIC_PROFILE, TABLE_EDITION, TABLE_SOURCE

__all__ = ["DeidOptions", "DeidReport", "DeidError", "WrittenFile", "SkippedFile", "deidentify_study",
           "BURNED_IN_REASON", "DEID_METHOD", "DEID_CODE", "DUMMY_VALUES", "BASIC_PROFILE", "TABLE_SOURCE",
           "TABLE_EDITION", "RADVIEW_STAMPS", "is_radview_object"]

ProgressFn = Callable[[float, str], None]

BURNED_IN_REASON = "burned-in annotation: pixel data may show patient data"
DEID_METHOD = "PS3.15 Annex E Basic Application Confidentiality Profile"
#: CID 7050 "De-identification Method": (code value, coding scheme, code meaning)
DEID_CODE = ("113100", "DCM", "Basic Application Confidentiality Profile")
DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
#: radview's review stamps (``viewer.export.seg.seg_note``, ``viewer.export.sr.review_note`` for an AI result
#: nobody reviewed): the only text of radview's own SEG and SR kept where the profile removes or replaces text
RADVIEW_STAMPS = (AI_NOT_REVIEWED, "AI result, edited, not reviewed")
#: where a stamp may stand at the top level of radview's SEG and SR (Series Description is X in the table)
_STAMP_ATTRIBUTES = ("SeriesDescription", "ContentDescription")
#: Classes whose pixels usually carry burned-in text (when Burned In Annotation is absent).
_SUSPECT_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.7": "Secondary Capture Image Storage",
    "1.2.840.10008.5.1.4.1.1.7.1": "Multi-frame Single Bit Secondary Capture Image Storage",
    "1.2.840.10008.5.1.4.1.1.7.2": "Multi-frame Grayscale Byte Secondary Capture Image Storage",
    "1.2.840.10008.5.1.4.1.1.7.3": "Multi-frame Grayscale Word Secondary Capture Image Storage",
    "1.2.840.10008.5.1.4.1.1.7.4": "Multi-frame True Color Secondary Capture Image Storage",
    "1.2.840.10008.5.1.4.1.1.6": "Ultrasound Image Storage (Retired)",
    "1.2.840.10008.5.1.4.1.1.6.1": "Ultrasound Image Storage",
    "1.2.840.10008.5.1.4.1.1.3": "Ultrasound Multi-frame Image Storage (Retired)",
    "1.2.840.10008.5.1.4.1.1.3.1": "Ultrasound Multi-frame Image Storage",
    "1.2.840.10008.5.1.4.1.1.77.1.1": "VL Endoscopic Image Storage",
    "1.2.840.10008.5.1.4.1.1.77.1.1.1": "Video Endoscopic Image Storage",
    "1.2.840.10008.5.1.4.1.1.77.1.4": "VL Photographic Image Storage",
    "1.2.840.10008.5.1.4.1.1.77.1.4.1": "Video Photographic Image Storage",
}


class DeidError(ExportError):
    """The de-identification cannot start (bad source or destination); the message says why."""


@dataclass
class DeidOptions:
    patient_name: str = "ANONYMOUS"
    #: None: "ANON-" + keyed hash of the original Patient ID (one pseudonym per original patient)
    patient_id: str | None = None
    #: write images flagged (or suspected) to have burned-in annotation anyway
    allow_burned_in: bool = False
    #: treat secondary capture / ultrasound / VL photo images without the Burned In Annotation flag as burned in
    suspect_unflagged: bool = True
    #: secret for the UID map and the pseudonyms; None: a random one per run (mappings differ between runs)
    secret: str | bytes | None = None
    uid_prefix: str = PYDICOM_ROOT_UID
    #: dates and times that Table E.1-1 does not list become dummies too
    blank_unlisted_dates: bool = True


@dataclass
class WrittenFile:
    source: str
    path: str
    series_uid: str  # the new Series Instance UID
    sop_instance_uid: str  # the new SOP Instance UID


@dataclass
class SkippedFile:
    path: str
    reason: str


@dataclass
class DeidReport:
    src: str
    out_dir: str
    n_files: int = 0  # files found under src
    n_processed: int = 0  # files looked at before the run ended (all of them unless cancelled)
    written: list[WrittenFile] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    uid_map_count: int = 0  # distinct original UIDs replaced
    n_patients: int = 0  # distinct pseudonyms given
    cancelled: bool = False

    @property
    def n_written(self) -> int:
        return len(self.written)

    def summary(self) -> str:
        state = (f"cancelled after {self.n_processed} of {self.n_files} files" if self.cancelled
                 else f"{self.n_files} files")
        return (f"de-identified copy: {state}; {self.n_written} written, {len(self.skipped)} skipped, "
                f"{self.uid_map_count} UIDs remapped")

    def skipped_lines(self) -> list[str]:
        """One line per skipped file: ``skipped <path>: <reason>``."""
        return [f"skipped {s.path}: {s.reason}" for s in self.skipped]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["n_written"] = self.n_written
        d["summary"] = self.summary()
        return d


# ---------------------------------------------------------------------------------------------- run
def deidentify_study(src: str, out_dir: str, progress: ProgressFn | None = None,
                     cancel: threading.Event | None = None, options: DeidOptions | None = None) -> DeidReport:
    """Write a de-identified copy of every DICOM file under ``src`` into ``out_dir``.

    ``progress(fraction, message)`` is called after each file; ``cancel`` (a threading.Event) is
    checked before each file: the run then stops, keeps the files already written (each one
    complete) and returns a report with ``cancelled`` set that says how far it got.
    Raises :class:`DeidError` when ``src`` does not exist or ``out_dir`` is, or is inside, ``src``.
    """
    options = options or DeidOptions()
    if not os.path.exists(src):
        raise DeidError(f"{src}: no such file or folder")
    src_real = os.path.realpath(src)
    out_real = os.path.realpath(out_dir)
    if os.path.isdir(src_real) and _within(out_real, src_real):
        raise DeidError(f"the output folder {out_dir} must not be the source folder or inside it")
    if os.path.exists(out_real) and not os.path.isdir(out_real):
        raise DeidError(f"{out_dir} exists and is not a folder")

    files = _list_files(src_real)
    report = DeidReport(src=src_real, out_dir=out_real, n_files=len(files))
    work = _Deidentifier(options)
    os.makedirs(out_real, exist_ok=True)
    produced: dict[str, str] = {}
    for i, path in enumerate(files):
        if cancel is not None and cancel.is_set():
            report.cancelled = True
            break
        outcome = _one_file(path, work, out_real, src_real, produced)
        if isinstance(outcome, SkippedFile):
            report.skipped.append(outcome)
        else:
            report.written.append(outcome)
        report.n_processed = i + 1
        if progress is not None:
            progress((i + 1) / max(len(files), 1), f"de-identifying {i + 1}/{len(files)}")
    report.uid_map_count = len(work.uid_map)
    report.n_patients = len(work.pseudonyms)
    if progress is not None:
        progress(report.n_processed / max(len(files), 1), report.summary())
    return report


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _list_files(root: str) -> list[str]:
    if os.path.isfile(root):
        return [root]
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(os.path.join(dirpath, n) for n in sorted(filenames) if not n.startswith("."))
    return found


def _one_file(path: str, work: _Deidentifier, out_root: str, protected: str,
              produced: dict[str, str]) -> WrittenFile | SkippedFile:
    ds = _read(path)
    if isinstance(ds, SkippedFile):
        return ds
    reason = work.refusal(ds)
    if reason:
        return SkippedFile(path, reason)
    try:
        rel = work.deidentify(ds, os.path.relpath(path, protected) if os.path.isdir(protected) else path)
    except Exception as exc:  # a broken attribute must not stop the run
        return SkippedFile(path, f"could not de-identify ({type(exc).__name__}: {str(exc)[:160]})")
    dst = os.path.join(out_root, rel)
    if _within(os.path.join(os.path.realpath(os.path.dirname(dst)), os.path.basename(dst)), protected):
        return SkippedFile(path, "its output path would lie inside the source: not written")
    if dst in produced:
        return SkippedFile(path, f"same SOP Instance UID as {produced[dst]}: written once")
    try:
        _atomic_save(ds, dst)
    except Exception as exc:
        return SkippedFile(path, f"could not write the de-identified copy ({type(exc).__name__}: {str(exc)[:160]})")
    produced[dst] = path
    return WrittenFile(path, dst, str(ds.get("SeriesInstanceUID", "") or ""), str(ds.SOPInstanceUID))


def _read(path: str) -> Dataset | SkippedFile:
    if os.path.basename(path).upper() == "DICOMDIR":
        return SkippedFile(path, "DICOMDIR (file-set directory): not copied, it lists the original files")
    try:
        ds = pydicom.dcmread(path)
    except InvalidDicomError:
        try:  # a dataset without the Part 10 header: accept it only if it is clearly an instance
            ds = pydicom.dcmread(path, force=True)
        except Exception:
            return SkippedFile(path, "not a DICOM file")
        if "SOPClassUID" not in ds and not ("Rows" in ds and "Columns" in ds):
            return SkippedFile(path, "not a DICOM file")
    except Exception as exc:
        return SkippedFile(path, f"unreadable DICOM file ({type(exc).__name__}: {str(exc)[:160]})")
    meta = getattr(ds, "file_meta", None)
    if str(getattr(meta, "MediaStorageSOPClassUID", "")) == DICOMDIR_CLASS:
        return SkippedFile(path, "DICOMDIR (file-set directory): not copied, it lists the original files")
    if len(ds) == 0:
        return SkippedFile(path, "unreadable DICOM file: no dataset after the file meta (truncated?)")
    if not str(ds.get("SOPClassUID", "") or "").strip():
        return SkippedFile(path, "no SOP Class UID: not a storable instance")
    return ds


def _atomic_save(ds: Dataset, dst: str) -> None:
    """Write ``ds`` to ``dst`` through :func:`atomic_write` (temporary file beside it, then one rename)."""
    def write(tmp: str) -> None:
        with open(tmp, "wb") as fp:
            _write(fp, ds)

    atomic_write(dst, write)


def _write(fp, ds: Dataset) -> None:
    ts = UID(str(ds.file_meta.TransferSyntaxUID))
    if ts.is_transfer_syntax:
        pydicom.dcmwrite(fp, ds, enforce_file_format=True)
        return
    # a transfer syntax newer than pydicom (e.g. Deflated Image Frame Compression): keep it in the file
    # meta and encode the dataset as it was read (such syntaxes compress frames, not the dataset)
    implicit, little = (v if v is not None else d for v, d in zip(ds.original_encoding, (False, True)))
    ds.file_meta.FileMetaInformationGroupLength = 0  # recomputed by the writer
    pydicom.dcmwrite(fp, ds, implicit_vr=implicit, little_endian=little, force_encoding=True)


# ------------------------------------------------------------------------------------------ profile
class _Deidentifier:
    """The state of one run: the UID map and the pseudonyms, consistent across all its files."""

    def __init__(self, options: DeidOptions):
        self.options = options
        secret = options.secret if options.secret is not None else secrets.token_hex(32)
        self.secret = secret.encode() if isinstance(secret, str) else bytes(secret)
        self._secret_text = hashlib.sha256(b"radview-deid-uid" + self.secret).hexdigest()
        self.uid_map: dict[str, str] = {}
        self.pseudonyms: dict[str, str] = {}

    # -- mappings
    def new_uid(self, old: str) -> str:
        new = self.uid_map.get(old)
        if new is None:
            new = str(generate_uid(self.options.uid_prefix, entropy_srcs=[self._secret_text, "|", old]))
            self.uid_map[old] = new
        return new

    def pseudonym(self, patient_id: str) -> str:
        if self.options.patient_id is not None:
            self.pseudonyms[patient_id] = self.options.patient_id
            return self.options.patient_id
        p = self.pseudonyms.get(patient_id)
        if p is None:
            digest = hmac.new(self.secret, b"patient-id|" + patient_id.encode("utf-8", "replace"), hashlib.sha256)
            p = self.pseudonyms[patient_id] = "ANON-" + digest.hexdigest()[:12].upper()
        return p

    # -- whole instance
    def refusal(self, ds: Dataset) -> str | None:
        """Why ``ds`` must not be written (None: write it)."""
        return None if self.options.allow_burned_in else self.burned_in(ds)

    def burned_in(self, ds: Dataset) -> str | None:
        """Why the content of ``ds`` beyond its attributes may show patient data (None: it should not)."""
        if "EncapsulatedDocument" in ds:
            return "encapsulated document: its content (PDF, CDA, ...) may show patient data and is not de-identified"
        if not _has_pixels(ds):
            return None
        flag = str(ds.get("BurnedInAnnotation", "") or "").strip().upper()
        if flag == "YES":
            return f"{BURNED_IN_REASON} (Burned In Annotation is YES)"
        sop_class = str(ds.get("SOPClassUID", "") or "").strip()
        if not flag and self.options.suspect_unflagged and sop_class in _SUSPECT_CLASSES:
            return (f"{BURNED_IN_REASON} (no Burned In Annotation flag on a {_SUSPECT_CLASSES[sop_class]} "
                    "object, a class that often carries burned-in text)")
        return None

    def deidentify(self, ds: Dataset, source: str = "") -> str:
        """De-identify ``ds`` in place (file meta rebuilt); return its relative output path."""
        original_pid = str(ds.get("PatientID", "") or "")
        if not str(ds.get("SOPInstanceUID", "") or "").strip():  # an instance without its UID: give it one
            ds.SOPInstanceUID = self.new_uid(f"no-sop-instance-uid:{source}")
        burned = self.burned_in(ds) is not None
        transfer_syntax = _transfer_syntax(ds)
        own = is_radview_object(ds)
        stamps = {kw: _stamp_in(ds.get(kw)) for kw in _STAMP_ATTRIBUTES} if own else {}
        cleaner = AttributeCleaner(self.new_uid, str(ds.get("SOPClassUID", "") or "").strip(),
                                   self.options.blank_unlisted_dates,
                                   keep_text=frozenset(RADVIEW_STAMPS) if own else frozenset())
        cleaner.clean(ds)
        for kw, stamp in stamps.items():
            if stamp:  # only the stamp itself, none of the rest of the original text
                setattr(ds, kw, stamp)
        ds.PatientName = self.options.patient_name
        ds.PatientID = self.pseudonym(original_pid)
        ds.PatientIdentityRemoved = "NO" if burned else "YES"
        methods = [str(v) for v in _values(ds.get("DeidentificationMethod")) if str(v).strip()]
        if DEID_METHOD not in methods:
            methods.append(DEID_METHOD)
        ds.DeidentificationMethod = methods if len(methods) > 1 else methods[0]
        codes = ds.get("DeidentificationMethodCodeSequence") or Sequence([])
        if not any(str(item.get("CodeValue", "")) == DEID_CODE[0] for item in codes):
            item = Dataset()
            item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = DEID_CODE
            codes.append(item)
        ds.DeidentificationMethodCodeSequence = codes
        ds.LongitudinalTemporalInformationModified = "REMOVED"
        if "SOPInstanceUID" not in ds or not str(ds.SOPInstanceUID):
            raise ValueError("no SOP Instance UID")
        ds.file_meta = _file_meta(ds, transfer_syntax)
        ds.preamble = b"\x00" * 128
        return self.relative_path(ds)

    def relative_path(self, ds: Dataset) -> str:
        def short(uid) -> str:
            return hashlib.sha1(str(uid).encode()).hexdigest()[:10]

        patient = _safe(str(ds.PatientID)) or "ANONYMOUS"
        study = f"study-{short(ds.get('StudyInstanceUID', ''))}"
        modality = _safe(str(ds.get("Modality", "") or "")) or "OT"
        number = _int(ds.get("SeriesNumber"))
        series = f"{modality}{number if number is not None else ''}-{short(ds.get('SeriesInstanceUID', ''))}"
        instance = _int(ds.get("InstanceNumber"))
        prefix = f"{instance:05d}-" if instance is not None and instance >= 0 else ""
        name = f"{prefix}{short(ds.SOPInstanceUID)}.dcm"
        return os.path.join(patient, study, series, name)


# ---------------------------------------------------------------------------------------- helpers
def is_radview_object(ds: Dataset) -> bool:
    """True for a SEG or SR that radview wrote (``viewer.export.seg``, ``viewer.export.sr``): Manufacturer
    ``radview`` and Software Versions ``radview <version>``."""
    software = [str(v) for v in _values(ds.get("SoftwareVersions"))]
    return str(ds.get("Manufacturer", "") or "").strip() == "radview" and any(
        v.strip().startswith("radview") for v in software)


def _stamp_in(value) -> str | None:
    text = " ".join(str(v) for v in _values(value))
    return next((s for s in sorted(RADVIEW_STAMPS, key=len, reverse=True) if s in text), None)


def _has_pixels(ds: Dataset) -> bool:
    return any(int(t) in PIXEL_TAGS for t in ds.keys())


def _transfer_syntax(ds: Dataset) -> str:
    meta = getattr(ds, "file_meta", None)
    ts = str(getattr(meta, "TransferSyntaxUID", "") or "") if meta is not None else ""
    if ts:
        return ts
    implicit, little = getattr(ds, "original_encoding", (True, True))
    if implicit:
        return ImplicitVRLittleEndian
    return ExplicitVRLittleEndian if little else ExplicitVRBigEndian


def _file_meta(ds: Dataset, transfer_syntax: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.MediaStorageSOPClassUID = UID(str(ds.SOPClassUID))
    meta.MediaStorageSOPInstanceUID = UID(str(ds.SOPInstanceUID))
    meta.TransferSyntaxUID = UID(transfer_syntax)
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "RADVIEW_DEID_1"
    return meta


def _values(value) -> list:
    if value is None:
        return []
    if isinstance(value, (list, tuple, MultiValue)):
        return list(value)
    return [value]


def _int(value) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")[:64]
