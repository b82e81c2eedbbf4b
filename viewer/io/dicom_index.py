"""Scan a folder for DICOM files, reading headers only, into patients → studies → series.

A DICOM series that mixes orientations, sizes, echoes or magnitude/phase
images is split into separate volumes (as dcm2niix does); localizers and
secondary captures stay apart from the volume series. Every skipped file and
every refused series carries a reason a user can read.
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
    kind: str  # "volume", "localizer", "secondary"
    frames: list[FrameRecord]
    plan: StackPlan | None
    refusal: str | None = None
    split_label: str = ""
    warnings: list[str] = field(default_factory=list)

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
        return self.plan is not None and self.refusal is None

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
    """All regular files under ``root`` (or ``root`` itself), in a stable order."""
    if os.path.isfile(root):
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
    for img in images:
        if img.sop_instance_uid and img.sop_instance_uid in seen_sop:
            skipped.append(Skipped(img.path, f"duplicate of {seen_sop[img.sop_instance_uid]} (same SOPInstanceUID)"))
            continue
        if img.sop_instance_uid:
            seen_sop[img.sop_instance_uid] = img.path
        uid = img.series["uid"] or f"no-series-uid:{os.path.dirname(img.path)}"
        by_series[uid].append(img)

    entries: list[SeriesEntry] = []
    for uid, files in by_series.items():
        entries.extend(_series_entries(uid, files))
    entries.sort(key=lambda s: (s.study_uid, s.series_number if s.series_number is not None else 1 << 30, s.key))
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


def _series_entries(uid: str, files: list[ImageFile]) -> list[SeriesEntry]:
    clusters: list = []
    groups: dict[tuple, list[FrameRecord]] = defaultdict(list)
    for img in files:
        for frame in img.frames:
            groups[_split_key(frame, clusters)].append(frame)
    keys = sorted(groups, key=lambda k: (k[0] != "image", -len(groups[k]), str(k)))
    entries = []
    for n, key in enumerate(keys, start=1):
        frames = groups[key]
        f0 = frames[0].file
        kind = {"image": "volume"}.get(key[0], key[0])
        entry = SeriesEntry(
            key=uid if len(keys) == 1 else f"{uid}#{n}",
            series_uid=uid,
            study_uid=f0.study["uid"],
            patient_id=f0.patient["id"],
            modality=f0.modality,
            description=f0.series["description"],
            series_number=f0.series["number"],
            date=f0.series["date"] or f0.study["date"],
            time=f0.series["time"],
            kind=kind,
            frames=frames,
            plan=None,
        )
        if len(keys) > 1:
            differing, entry.split_label = _describe_split(key, keys)
            entry.warnings.append(f"series split into {len(keys)} parts differing in {differing}: "
                                  f"this is {entry.split_label}")
        _plan_entry(entry)
        entries.append(entry)
    return entries


def _plan_entry(entry: SeriesEntry) -> None:
    f0 = entry.frames[0].file
    if f0.bits_allocated == 1:
        entry.refusal = "1-bit (binary) pixel data: a segmentation or bitmap, not an image volume"
        return
    if f0.samples_per_pixel not in (1, 3):
        entry.refusal = f"{f0.samples_per_pixel} samples per pixel are not supported"
        return
    try:
        entry.plan = plan_stack(entry.frames)
    except StackError as exc:
        entry.refusal = str(exc)
        return
    except (ValueError, ArithmeticError, TypeError) as exc:  # malformed geometry values
        entry.refusal = f"inconsistent image geometry ({exc})"
        return
    entry.warnings.extend(entry.plan.warnings)
    if any(f.file.lossy for f in entry.frames):
        entry.warnings.append("lossy compressed pixel data")
