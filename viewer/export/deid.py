"""A de-identified copy of a DICOM study: PS3.15 Annex E, Basic Application Level Confidentiality Profile.

``deidentify_study(src, out_dir)`` reads every DICOM file under ``src`` and writes a de-identified
copy of each into ``out_dir`` (``<patient pseudonym>/study-<h>/<modality><series number>-<h>/<instance
number>-<h>.dcm``, names made only from de-identified values), one file per instance, each written
atomically (``radview_base.atomic_file``: temporary file in the destination folder, then one rename), so
a cancelled or failed run never leaves a half-written file. The source is never modified.

What is done to each instance (the Basic Profile without options, see ``deid_profile`` for the table
and its source):

* every attribute of PS3.15 Table E.1-1 gets its action, at any depth (attributes inside sequence
  items too): X removed, Z emptied, D a dummy value valid for the VR, U a new UID. Combined codes
  need the attribute's Type in the IOD, which varies by SOP class; the choice made here keeps the
  file conformant whatever that Type is and keeps none of the original value:
  ``X/Z`` -> Z (empty); ``X/D``, ``X/Z/D`` -> D (dummy); ``Z/D`` -> D for dates and times (Content
  Date and Time are Type 1 in the enhanced multi-frame IODs), Z otherwise, for plain attributes; for
  sequences ``Z``, ``X/Z``, ``X/Z/D`` -> an empty sequence, ``X/D`` -> removed, ``D`` (Content
  Sequence, Graphic Annotation Sequence, ...) -> kept with every item de-identified recursively and
  its free text (LT, ST, UT, UC) and person names replaced by dummies (code values of Person
  Identification Code Sequence items too), ``X/Z/U*`` (Referenced Image Sequence, Source Image Sequence) -> kept with
  its items de-identified and their instance UIDs remapped, so references still resolve;
* all private attributes (odd groups, creators included) are removed (no Retain Safe Private
  option), and so are the whole curve (50xx) and overlay (60xx) groups;
* UIDs are remapped consistently across the whole run: the same original UID gives the same new UID
  in every file (Study, Series, SOP Instance, Frame of Reference, references in sequences, the file
  meta's Media Storage SOP Instance UID, any UI attribute listed U). UI attributes the table does not
  list are remapped too unless they name a class, a transfer syntax or a coding scheme, or hold a
  UID of the DICOM registry or under the DICOM root 1.2.840.10008 (such UIDs identify no patient).
  New UIDs are ``generate_uid(prefix, entropy=[secret, old])`` with a random per-run secret (or
  ``DeidOptions.secret`` for mappings reproducible across runs); an instance without a SOP Instance
  UID gets a new one;
* dates and times: Table E.1-1 actions (``StudyDate`` Z -> empty, ``ContentDate`` Z/D -> dummy
  ``19000101``, ...); dates and times the table does not list (Instance Creation Date, Frame
  Acquisition DateTime in functional groups, ...) also become dummies (``blank_unlisted_dates``,
  on by default), so no real date is left. Dates are not shifted: the Basic Profile has no
  longitudinal option, and Longitudinal Temporal Information Modified is set to REMOVED;
* Patient's Name becomes ``DeidOptions.patient_name`` ("ANONYMOUS") and Patient ID a keyed hash of
  the original (``ANON-`` + 12 hex digits of HMAC-SHA256 with the run's secret: the same patient gets
  the same pseudonym within a run, and the original ID cannot be recovered by hashing guesses);
* Patient Identity Removed = YES, De-identification Method names the profile, and
  De-identification Method Code Sequence gets (113100, DCM, "Basic Application Confidentiality
  Profile");
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
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement
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
    UID_dictionary,
    generate_uid,
)

from radview_base.atomic_file import atomic_write
from viewer.export import ExportError
from viewer.export.deid_profile import BASIC_PROFILE, TABLE_SOURCE

__all__ = ["DeidOptions", "DeidReport", "DeidError", "WrittenFile", "SkippedFile", "deidentify_study",
           "BURNED_IN_REASON", "DEID_METHOD", "DEID_CODE", "DUMMY_VALUES", "BASIC_PROFILE", "TABLE_SOURCE"]

ProgressFn = Callable[[float, str], None]

BURNED_IN_REASON = "burned-in annotation: pixel data may show patient data"
DEID_METHOD = "PS3.15 Annex E Basic Application Confidentiality Profile"
#: CID 7050 "De-identification Method": (code value, coding scheme, code meaning)
DEID_CODE = ("113100", "DCM", "Basic Application Confidentiality Profile")
DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
#: UIDs under the DICOM root are the standard's own (classes, syntaxes, context groups): never a patient's
DICOM_ROOT = "1.2.840.10008."

#: D action: a non-empty value valid for the VR that says nothing about the patient.
DUMMY_VALUES: dict[str, object] = {
    "AE": "ANONYMIZED", "AS": "000D", "CS": "ANONYMIZED", "DA": "19000101", "DS": "0",
    "DT": "19000101000000.000000", "IS": "0", "LO": "ANONYMIZED", "LT": "ANONYMIZED", "PN": "ANONYMIZED",
    "SH": "ANONYMIZED", "ST": "ANONYMIZED", "TM": "000000.00", "UC": "ANONYMIZED", "UR": "urn:anonymized",
    "UT": "ANONYMIZED", "FL": 0.0, "FD": 0.0, "SL": 0, "SS": 0, "SV": 0, "UL": 0, "US": 0, "UV": 0,
    "OB": b"\x00\x00", "OD": b"\x00" * 8, "OF": b"\x00" * 4, "OL": b"\x00" * 4, "OV": b"\x00" * 8,
    "OW": b"\x00\x00", "UN": b"\x00\x00", "AT": 0,
}
_DATE_VRS = ("DA", "DT", "TM")
_FREE_TEXT_VRS = ("LT", "ST", "UT", "UC", "PN")
_PIXEL_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009}
#: Person Identification Code Sequence (D): its items are codes that identify a person.
_PERSON_CODE_SEQ = 0x00401101
_CODE_TEXT = ("CodeValue", "LongCodeValue", "CodeMeaning")
#: UI attributes that name a class, an encoding or a coding scheme, not an instance: never remapped.
_CLASS_LIKE_UI = re.compile(r"ClassUID|TransferSyntaxUID|CodingSchemeUID|ContextGroupExtensionCreatorUID"
                            r"|MappingResourceUID|ContextUID|PrivateInformationCreatorUID")
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
        self.clean(ds)
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

    # -- attributes, recursively
    def clean(self, ds: Dataset, in_dummy_sequence: bool = False) -> None:
        """Apply the profile to every attribute of ``ds`` and of its sequence items.

        ``in_dummy_sequence``: ``ds`` is an item of a sequence whose action is D (Content Sequence,
        Graphic Annotation Sequence, ...): its free text and person names become dummies too.
        """
        for tag in list(ds.keys()):
            t = int(tag)
            group = t >> 16
            if group % 2 == 1 or (group & 0xFF00) in (0x5000, 0x6000):
                del ds[tag]  # private attributes and creators; curves and overlays (whole groups)
                continue
            if t in _PIXEL_TAGS:
                continue
            action = BASIC_PROFILE.get(t)
            try:
                elem = ds[tag]
            except Exception:  # a value pydicom cannot decode: nothing of it may stay
                if action is None or action.startswith("X"):
                    del ds[tag]
                else:
                    ds[tag] = self._replacement(tag, action, None)
                continue
            if action is None:
                self._unlisted(ds, elem, in_dummy_sequence)
            else:
                self._apply(ds, elem, action)

    def _unlisted(self, ds: Dataset, elem: DataElement, in_dummy_sequence: bool) -> None:
        vr = elem.VR
        if vr == "SQ":
            for item in elem.value or ():
                self.clean(item, in_dummy_sequence)
        elif in_dummy_sequence and vr in _FREE_TEXT_VRS:
            if not _is_empty(elem.value):
                elem.value = DUMMY_VALUES[vr]
        elif vr == "UN" and not _known(elem.tag):
            del ds[elem.tag]  # a public attribute this dictionary does not know: its content cannot be judged
        elif vr in _DATE_VRS and self.options.blank_unlisted_dates:
            if not _is_empty(elem.value):
                elem.value = DUMMY_VALUES[vr]
        elif vr == "UI":
            keyword = keyword_for_tag(elem.tag) or ""
            if not _CLASS_LIKE_UI.search(keyword):
                elem.value = self._map_uids(elem.value, keep_registered=True)

    def _apply(self, ds: Dataset, elem: DataElement, action: str) -> None:
        vr = elem.VR
        if action == "X":
            del ds[elem.tag]
        elif action == "U":
            if vr in ("UI", "UN", "LO", "SH"):
                elem.value = self._map_uids(elem.value, keep_registered=False)
                if vr == "UN":
                    ds[elem.tag] = DataElement(elem.tag, "UI", _uid_text(elem.value))
            else:
                del ds[elem.tag]
        elif vr == "SQ":
            if action in ("X/Z/U*", "D"):
                for item in elem.value or ():
                    self.clean(item, in_dummy_sequence=action == "D")
                    if int(elem.tag) == _PERSON_CODE_SEQ:
                        for kw in _CODE_TEXT:
                            if kw in item:
                                item[kw].value = "ANONYMIZED"
            elif action == "X/D":
                del ds[elem.tag]
            else:  # Z, X/Z, X/Z/D: an empty sequence (zero length) is conformant for Type 2 and Type 3
                elem.value = Sequence([])
        elif action in ("Z", "X/Z") or (action == "Z/D" and vr not in _DATE_VRS):
            elem.value = _empty(vr)
        elif action in ("D", "X/D", "X/Z/D", "Z/D", "X/Z/U*"):
            ds[elem.tag] = self._replacement(elem.tag, "D", vr)
        else:  # K or C would come from options this module does not offer: remove, never keep unseen
            del ds[elem.tag]

    def _replacement(self, tag, action: str, vr: str | None) -> DataElement:
        if vr is None or vr == "UN":
            try:
                vr = dictionary_VR(tag).split(" or ")[0]
            except KeyError:
                vr = "UN"
        if action in ("Z", "X/Z"):
            return DataElement(tag, vr, _empty(vr))
        if action == "U":
            return DataElement(tag, "UI", self.new_uid(f"unreadable:{int(tag):08X}"))
        if vr == "SQ":
            return DataElement(tag, "SQ", Sequence([]))
        return DataElement(tag, vr, DUMMY_VALUES.get(vr, b"\x00\x00"))

    def _map_uids(self, value, keep_registered: bool):
        def one(v):
            s = _uid_text(v)
            if not s or (keep_registered and (s in UID_dictionary or s.startswith(DICOM_ROOT))):
                return s
            return self.new_uid(s)

        if isinstance(value, (list, tuple, MultiValue)):
            return [one(v) for v in value]
        if isinstance(value, bytes):
            value = value.decode("ascii", "replace")
        return one(value)


# ---------------------------------------------------------------------------------------- helpers
def _has_pixels(ds: Dataset) -> bool:
    return any(int(t) in _PIXEL_TAGS for t in ds.keys())


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


def _known(tag) -> bool:
    try:
        dictionary_VR(tag)
        return True
    except KeyError:
        return False


def _uid_text(v) -> str:
    if isinstance(v, bytes):
        v = v.decode("ascii", "replace")
    return str(v).strip().rstrip("\x00").strip() if v is not None else ""


def _values(value) -> list:
    if value is None:
        return []
    if isinstance(value, (list, tuple, MultiValue)):
        return list(value)
    return [value]


def _is_empty(value) -> bool:
    return value is None or value == "" or value == b"" or (isinstance(value, (list, MultiValue)) and not value)


def _empty(vr: str):
    if vr == "SQ":
        return Sequence([])
    if vr in ("OB", "OD", "OF", "OL", "OV", "OW", "UN"):
        return b""
    return None


def _int(value) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")[:64]
