"""Scan a folder for DICOM files, reading headers only, into patients → studies → series.

A DICOM series that mixes orientations, sizes, echoes or magnitude/phase
images is split into separate volumes (as dcm2niix does); localizers and
secondary captures stay apart from the volume series. Images with no common
3D grid — radiographs, mammograms, ultrasound, nuclear medicine, cine, and any
image without ImagePositionPatient/ImageOrientationPatient — are 2D series
(kind ``projection``, ``stack`` or ``cine``, see :mod:`viewer.io.planar`): their
images in display order (InstanceNumber, then acquisition time), each with what
its file says about letters, calibration and frames. Every skipped file and
every refused series carries a reason a user can read.

Only regular files are read: a FIFO, a device (a link to ``/dev/zero``) or a
socket in the folder is skipped with its reason, never opened. A slice that
cannot take part in its volume (no usable position, an outlier) is dropped from
it with its reason — the rest of the series opens, with a warning that says
where the gap is — and is listed with the skipped files.
"""
from __future__ import annotations

import os
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np

from radview_base.cancel import Cancelled
from viewer.io.dicom_header import FrameRecord, ImageFile, Skipped, read_header
from viewer.io.planar_header import CINE_MODALITIES, PROJECTION_MODALITIES, ImageDisplay, read_display
from viewer.io.slice_stack import StackError, StackPlan, plan_stack

ProgressFn = Callable[[int, int, str], None]
_IMAGE_FILE_EXTENSIONS = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")


@dataclass
class SeriesEntry:
    """One loadable volume (or one refused group) of a DICOM series."""

    key: str  # unique: the SeriesInstanceUID, or "<uid>#<n>" when a series was split
    series_uid: str
    study_uid: str
    patient_id: str
    modality: str
    description: str
    series_number: int | None
    date: str
    time: str
    kind: str  # "volume", "localizer", "secondary"; 2D series: "projection", "stack", "cine" (``planar``)
    frames: list[FrameRecord]
    plan: StackPlan | None
    refusal: str | None = None
    split_label: str = ""
    warnings: list[str] = field(default_factory=list)
    #: 2D series: one entry per image (file) in display order; empty for volumes
    images: list[ImageDisplay] = field(default_factory=list)
    planar: bool = False
    #: slices of this volume left out, each (path, reason): also listed in the index's skipped files
    dropped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def files(self) -> list[str]:
        return sorted({f.file.path for f in self.frames})

    @property
    def n_images(self) -> int:
        return len(self.frames)

    @property
    def shape_zyx(self) -> tuple[int, int, int] | None:
        return self.plan.geometry.shape_zyx if self.plan else None

    @property
    def spacing_zyx(self) -> tuple[float, float, float] | None:
        return self.plan.geometry.spacing_zyx if self.plan else None

    @property
    def orientation(self) -> str:
        return self.plan.geometry.describe_orientation() if self.plan else ""

    @property
    def n_timepoints(self) -> int:
        return self.plan.n_timepoints if self.plan else 0

    @property
    def loadable(self) -> bool:
        return self.refusal is None and (self.plan is not None or (self.planar and bool(self.images)))

    @property
    def n_voxels(self) -> int:
        return int(np.prod(self.shape_zyx)) * self.n_timepoints if self.plan else 0

    def to_dict(self) -> dict:
        g = self.plan.geometry if self.plan else None
        return {
            "key": self.key,
            "series_uid": self.series_uid,
            "study_uid": self.study_uid,
            "patient_id": self.patient_id,
            "modality": self.modality,
            "description": self.description,
            "series_number": self.series_number,
            "date": self.date,
            "kind": self.kind,
            "split": self.split_label,
            "n_images": self.n_images,
            "n_files": len(self.files),
            "n_timepoints": self.n_timepoints,
            "shape_zyx": list(g.shape_zyx) if g else None,
            "spacing_zyx": [round(v, 6) for v in g.spacing_zyx] if g else None,
            "origin_lps": [round(v, 4) for v in g.origin_lps] if g else None,
            "direction": [list(r) for r in g.direction] if g else None,
            "orientation": self.orientation,
            "loadable": self.loadable,
            "refusal": self.refusal,
            "warnings": list(self.warnings),
            "dropped": [{"path": path, "reason": reason} for path, reason in self.dropped],
            **({"images": [dict(path=d.path, sop_instance_uid=d.sop_instance_uid, instance_number=d.instance_number,
                                rows=d.rows, columns=d.columns, display=d.as_dict()) for d in self.images]}
               if self.planar else {}),
        }


@dataclass
class Study:
    uid: str
    date: str
    description: str
    series: list[SeriesEntry] = field(default_factory=list)


@dataclass
class Patient:
    id: str
    name: str
    birth_date: str
    sex: str
    studies: list[Study] = field(default_factory=list)


@dataclass
class StudyIndex:
    root: str
    patients: list[Patient]
    series: list[SeriesEntry]
    skipped: list[Skipped]
    n_files: int

    def find(self, key: str) -> SeriesEntry:
        """The series with this key; a split series' bare UID is ambiguous and raises KeyError."""
        for s in self.series:
            if s.key == key:
                return s
        parts = [s for s in self.series if s.series_uid == key]
        if len(parts) == 1:
            return parts[0]
        if parts:
            listing = "; ".join(f"{p.key} ({p.split_label})" for p in parts)
            raise KeyError(f"series {key} was split into {len(parts)} volumes: {listing}")
        raise KeyError(f"no series {key} in {self.root}")

    def volumes(self) -> list[SeriesEntry]:
        return [s for s in self.series if s.loadable and s.kind == "volume"]

    def planar_series(self) -> list[SeriesEntry]:
        return [s for s in self.series if s.loadable and s.planar]

    def largest_volume(self) -> SeriesEntry | None:
        candidates = self.volumes() or [s for s in self.series if s.loadable]
        return max(candidates, key=lambda s: (s.n_voxels, s.n_images), default=None)

    def to_dict(self) -> dict:
        return {
            "root": self.root,
            "n_files": self.n_files,
            "patients": [
                {"id": p.id, "name": p.name, "birth_date": p.birth_date, "sex": p.sex,
                 "studies": [{"uid": st.uid, "date": st.date, "description": st.description,
                              "series": [s.key for s in st.series]} for st in p.studies]}
                for p in self.patients],
            "series": [s.to_dict() for s in self.series],
            "skipped": [{"path": k.path, "reason": k.reason} for k in self.skipped],
        }


def iter_files(root: str) -> list[str]:
    """Every entry under ``root`` that is not a folder (or ``root`` itself), in a stable order.

    Nothing is opened here: FIFOs, devices, sockets and links are listed like files, and the header reader skips
    whatever is not a regular file with its reason (so the user sees why it was not read).
    """
    if not os.path.isdir(root):
        return [root]
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith(".") or name.upper() == "DICOMDIR":
                continue
            found.append(os.path.join(dirpath, name))
    return found


def scan(root: str, progress: ProgressFn | None = None, cancel: threading.Event | None = None) -> StudyIndex:
    """Index every DICOM file under ``root`` (headers only).

    ``progress(done, total, path)`` is called as files are read; setting
    ``cancel`` stops the scan with :class:`Cancelled`.
    """
    root = os.path.abspath(root)
    if not os.path.exists(root):
        raise FileNotFoundError(f"{root} does not exist")
    paths = iter_files(root)
    images: list[ImageFile] = []
    skipped: list[Skipped] = []
    total = len(paths)
    for i, path in enumerate(paths):
        if cancel is not None and cancel.is_set():
            raise Cancelled("scan cancelled")
        if path.lower().endswith(_IMAGE_FILE_EXTENSIONS):
            result = Skipped(path, "image file (NIfTI/NRRD/MetaImage), not DICOM: open it on its own")
        else:
            result = read_header(path)
        if isinstance(result, Skipped):
            skipped.append(result)
        else:
            images.append(result)
        if progress is not None and (i % 64 == 0 or i == total - 1):
            progress(i + 1, total, path)
    return build_index(root, images, skipped, total)


def build_index(root: str, images: Iterable[ImageFile], skipped: list[Skipped], n_files: int) -> StudyIndex:
    by_series: dict[str, list[ImageFile]] = defaultdict(list)
    seen_sop: dict[str, str] = {}
    duplicates: dict[str, int] = defaultdict(int)  # path read → files with the same SOPInstanceUID not read
    for img in images:
        uid = img.series["uid"] or f"no-series-uid:{os.path.dirname(img.path)}"
        if img.sop_instance_uid and img.sop_instance_uid in seen_sop:
            skipped.append(Skipped(img.path, f"duplicate of {seen_sop[img.sop_instance_uid]} (same SOPInstanceUID)"))
            duplicates[seen_sop[img.sop_instance_uid]] += 1
            continue
        if img.sop_instance_uid:
            seen_sop[img.sop_instance_uid] = img.path
        by_series[uid].append(img)

    entries: list[SeriesEntry] = []
    for uid, files in by_series.items():
        for entry in _series_entries(uid, files):
            n_duplicates = sum(duplicates.get(path, 0) for path in entry.files)
            if n_duplicates:
                entry.warnings.append(f"{n_duplicates} more file(s) hold an instance already read (same "
                                      "SOPInstanceUID): each instance is read once (see the skipped files)")
            entries.append(entry)
    entries.sort(key=lambda s: (s.study_uid, s.series_number if s.series_number is not None else 1 << 30, s.key))
    for entry in entries:
        name = entry.description or (f"series {entry.series_number}" if entry.series_number is not None
                                     else entry.key)
        skipped.extend(Skipped(path, f"slice dropped from {name}: {reason}") for path, reason in entry.dropped)
    return StudyIndex(root, _hierarchy(by_series, entries), entries, skipped, n_files)


def _hierarchy(by_series: dict[str, list[ImageFile]], entries: list[SeriesEntry]) -> list[Patient]:
    patients: dict[str, Patient] = {}
    studies: dict[str, Study] = {}
    first_file = {uid: files[0] for uid, files in by_series.items()}
    for entry in entries:
        f = first_file[entry.series_uid]
        pid = f.patient["id"] or f.patient["name"] or "(no patient ID)"
        patient = patients.get(pid)
        if patient is None:
            patient = patients[pid] = Patient(pid, f.patient["name"], f.patient["birth_date"], f.patient["sex"])
        study = studies.get(entry.study_uid)
        if study is None:
            study = studies[entry.study_uid] = Study(entry.study_uid, f.study["date"], f.study["description"])
            patient.studies.append(study)
        study.series.append(entry)
    return list(patients.values())


def _orientation_cluster(orientation, clusters: list) -> int:
    if orientation is None:
        return -1
    o = np.asarray(orientation)
    for i, c in enumerate(clusters):
        if np.max(np.abs(o - c)) < 1e-3:
            return i
    clusters.append(o)
    return len(clusters) - 1


def _split_key(frame: FrameRecord, clusters: list) -> tuple:
    f = frame.file
    spacing = tuple(round(v, 4) for v in frame.pixel_spacing) if frame.pixel_spacing else None
    return (f.category, _orientation_cluster(frame.orientation, clusters), f.rows, f.columns, spacing,
            frame.echo, frame.component, f.samples_per_pixel)


_SPLIT_FIELDS = ("kind", "orientation", "size", "size", "pixel spacing", "echo", "component", "samples per pixel")


def _describe_split(key: tuple, all_keys: list[tuple]) -> tuple[str, str]:
    """(what differs between the parts, what this part is), e.g. ("echo", "echo 2")."""
    differing, parts = [], []
    for i, name in enumerate(_SPLIT_FIELDS):
        if len({k[i] for k in all_keys}) < 2 or name in differing:
            continue
        differing.append(name)
        value = key[i]
        if name == "orientation":
            parts.append(f"orientation {value + 1}")
        elif name == "size":
            parts.append(f"{key[2]}×{key[3]}")
        elif name == "echo":
            parts.append(f"echo {value:g}" if value is not None else "no echo")
        elif name == "component":
            parts.append(value or "magnitude")
        elif name == "kind":
            parts.append(value)
        elif name == "pixel spacing":
            parts.append(f"pixel spacing {value[0]:g}×{value[1]:g} mm" if value else "no pixel spacing")
        else:
            parts.append(f"{name} {value}")
    return ", ".join(differing), ", ".join(parts)


def is_planar(frame: FrameRecord) -> bool:
    """A 2D image rather than a slice of a volume: a projection modality, or no patient position/orientation."""
    return frame.file.modality in PROJECTION_MODALITIES or frame.position is None or frame.orientation is None


def _series_entries(uid: str, files: list[ImageFile]) -> list[SeriesEntry]:
    clusters: list = []
    groups: dict[tuple, list[FrameRecord]] = defaultdict(list)
    planar: dict[tuple, list[FrameRecord]] = defaultdict(list)
    unplaced: list[FrameRecord] = []
    for img in files:
        for frame in img.frames:
            if _unplaced_slice(frame):
                unplaced.append(frame)
            elif is_planar(frame):
                planar[(img.modality, img.category)].append(frame)
            else:
                groups[_split_key(frame, clusters)].append(frame)
    dropped: dict[tuple, list[tuple[FrameRecord, str]]] = defaultdict(list)
    for frame in unplaced:  # after the volumes are grouped: a slice of one of them, or a 2D image as before
        key = _split_key(frame, clusters)
        if len(groups.get(key, ())) >= 2:
            dropped[key].append((frame, frame.position_problem or
                                 "no ImagePositionPatient: the slice cannot be placed in its volume"))
        else:
            planar[(frame.file.modality, frame.file.category)].append(frame)
    entries = _volume_entries(uid, groups, dropped)
    for key in sorted(planar, key=str):
        entries.append(_planar_entry(uid, planar[key]))
    if len(entries) > 1:
        for entry in entries:
            if entry.planar:
                entry.split_label = entry.split_label or f"{entry.kind}, {entry.modality or 'no modality'}"
                entry.warnings.insert(0, f"series split into {len(entries)} parts: this is the 2D images "
                                         f"({entry.split_label})")
    for n, entry in enumerate(entries, start=1):
        entry.key = uid if len(entries) == 1 else f"{uid}#{n}"
    return entries


def _entry(uid: str, frames: list[FrameRecord], kind: str) -> SeriesEntry:
    f0 = frames[0].file
    return SeriesEntry(key=uid, series_uid=uid, study_uid=f0.study["uid"], patient_id=f0.patient["id"],
                       modality=f0.modality, description=f0.series["description"], series_number=f0.series["number"],
                       date=f0.series["date"] or f0.study["date"], time=f0.series["time"], kind=kind, frames=frames,
                       plan=None)


def _planar_entry(uid: str, frames: list[FrameRecord]) -> SeriesEntry:
    """The 2D images of a series: ``projection`` (one radiograph), ``cine`` (one multi-frame file played at its
    rate), else ``stack`` (images of any sizes, scrolled one by one; SC images alone stay ``secondary``).

    A single file also keeps the stack plan it always had (frames in file order, image coordinates), so that
    :func:`viewer.io.series_loader.load_series` still reads it as an array; the viewer shows it as 2D images.
    """
    files = list({id(fr.file): fr.file for fr in frames}.values())
    f0 = files[0]
    entry = _entry(uid, frames, "stack")
    entry.planar = True
    if f0.bits_allocated == 1:
        entry.refusal = "1-bit (binary) pixel data: a segmentation or bitmap, not an image"
        return entry
    displays, problems = [], []
    for f in files:
        try:
            displays.append(read_display(f.path)[0])
        except Exception as exc:  # the header was read once already: this is a corrupt detail, say which
            problems.append(f"{os.path.basename(f.path)}: display attributes unreadable ({type(exc).__name__})")
    displays.sort(key=lambda d: (d.instance_number is None, d.instance_number or 0, d.time, d.path))
    entry.images = displays
    entry.warnings.extend(problems)
    if len(files) == 1 and f0.number_of_frames > 1:
        timed = bool(displays and displays[0].frame_time_ms)
        entry.kind = "cine" if timed or f0.modality in CINE_MODALITIES else "stack"
    elif len(files) == 1:
        entry.kind = ("projection" if f0.modality in PROJECTION_MODALITIES
                      else "secondary" if f0.category == "secondary" else "stack")
    if len(files) == 1 and f0.samples_per_pixel in (1, 3):
        try:
            entry.plan = plan_stack(frames)
        except (StackError, ValueError, ArithmeticError, TypeError):
            entry.plan = None
    if any(f.lossy for f in files):
        entry.warnings.append("lossy compressed pixel data")
    if not displays:
        entry.refusal = "no image of this series has readable display attributes"
    return entry


def _unplaced_slice(frame: FrameRecord) -> bool:
    """A slice that has an orientation but no usable position (absent, NaN, …): it belongs to the volume its
    orientation, size and kind match, if there is one, and is dropped from it with its reason."""
    return (frame.position is None and frame.orientation is not None
            and frame.file.modality not in PROJECTION_MODALITIES)


def _volume_entries(uid: str, groups: dict[tuple, list[FrameRecord]],
                    dropped: dict[tuple, list[tuple[FrameRecord, str]]]) -> list[SeriesEntry]:
    keys = sorted(groups, key=lambda k: (k[0] != "image", -len(groups[k]), str(k)))
    entries = []
    for key in keys:
        frames = groups[key]
        entry = _entry(uid, frames, {"image": "volume"}.get(key[0], key[0]))
        if len(keys) > 1:
            differing, entry.split_label = _describe_split(key, keys)
            entry.warnings.append(f"series split into {len(keys)} parts differing in {differing}: "
                                  f"this is {entry.split_label}")
        _plan_entry(entry, dropped.get(key, []))
        entries.append(entry)
    return entries


def _plan_entry(entry: SeriesEntry, dropped: list[tuple[FrameRecord, str]] = ()) -> None:
    f0 = entry.frames[0].file
    if f0.bits_allocated == 1:
        entry.refusal = "1-bit (binary) pixel data: a segmentation or bitmap, not an image volume"
        return
    if f0.samples_per_pixel not in (1, 3):
        entry.refusal = f"{f0.samples_per_pixel} samples per pixel are not supported"
        return
    entry.dropped = [(fr.file.path, reason) for fr, reason in dropped]
    try:
        entry.plan = plan_stack(entry.frames, dropped=list(dropped))
    except StackError as exc:
        entry.refusal = str(exc)
        return
    except (ValueError, ArithmeticError, TypeError) as exc:  # malformed geometry values
        entry.refusal = f"inconsistent image geometry ({exc})"
        return
    if len(entry.plan.dropped) > len(dropped):  # the plan left out more (outliers at an end of the stack)
        gone = {id(fr) for fr, _ in entry.plan.dropped}
        entry.frames = [fr for fr in entry.frames if id(fr) not in gone]
        entry.dropped = [(fr.file.path, reason) for fr, reason in entry.plan.dropped]
    entry.warnings.extend(entry.plan.warnings)
    if any(f.file.lossy for f in entry.frames):
        entry.warnings.append("lossy compressed pixel data")
