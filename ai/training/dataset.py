"""A training dataset: a folder of cases, each an image with a label map and its label table (no torch).

Layout::

    DATA/
      dataset.toml              optional: labels, split, patients, modality
      case-01/                  one case per sub-folder; the folder name is the case id
        dicom/...               the image: a DICOM folder (the series on the label map's grid is used) ...
        image.nii.gz            ... or one NIfTI / NRRD / MetaImage file
        truth/labels.nii.gz     the label map (also labels.nii.gz, label.nii.gz, seg.nrrd, ... in the case folder)
        truth/labels.json       its label table {"1": "body", ...} (or <stem>.json; Slicer's .seg.nrrd names)

The folder ``radview-cli demo OUTDIR`` writes is one such case. ``dataset.toml``::

    labels = ["lung_left", "lung_right"]   # the labels to train (default: every label of the tables)
    modality = "CT"
    patient_key = "PatientID"              # or "case": every case is its own patient
    [split]
    validation = ["case-07", "case-08"]    # explicit validation cases, or
    validation_fraction = 0.2              # this share of the patients (at least one)
    seed = 0
    [patients]                             # case id -> patient, overriding the DICOM PatientID
    case-01 = "P001"

Splits go by patient, never by slice or by case: every case of one patient lands on the same side
(:mod:`ai.training.split`). A case's
patient is, in order, its ``[patients]`` entry, its DICOM PatientID (unless ``patient_key = "case"``), and
its case id. Refused, with the reason: a label map on another grid than its image, a label (asked for, or
present in the map) missing from the table, fewer patients than a training and a validation split need.
"""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np
import tomllib

from ai.training.split import DATASET_FILE, SplitError, split_by_patient
from radview_base.geometry import Geometry, GeometryMismatchError, require_same_grid
from radview_base.label_table import read_label_names

IMAGE_EXTENSIONS = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
LABEL_STEMS = ("labels", "label", "seg", "segmentation", "mask")
MAX_KEPT_ID = 32  # label ids up to this are kept as the model's output channels
_LATERAL = ("left", "right")
_SIDE_TOKENS = ("l", "r", "lt", "rt")


class DatasetError(ValueError):
    """A dataset that cannot be trained on; the message names the case and the reason."""


@dataclass(frozen=True)
class Case:
    id: str
    patient: str
    image: str  # an image file, or the folder of a DICOM series
    image_files: tuple[str, ...]  # the files the image is read from
    label_map: str
    label_table: Mapping[int, str]  # id -> name, from labels.json (or the label map's own names)
    label_table_file: str = ""
    modality: str = ""


@dataclass(frozen=True)
class Dataset:
    root: str
    cases: tuple[Case, ...]
    labels: tuple[str, ...]  # the labels trained
    label_ids: tuple[int, ...]  # their ids in the model's output (channel = id): the cases' own ids where they agree
    training: tuple[str, ...]  # case ids
    validation: tuple[str, ...]
    data_hash: str  # sha256 over every file read (names and contents)
    modality: str = "CT"
    settings: Mapping = field(default_factory=dict)  # dataset.toml's [training] table

    def case(self, case_id: str) -> Case:
        return next(c for c in self.cases if c.id == case_id)

    def has_laterality(self) -> bool:
        """True when a trained label is lateral (left/right): such data is never mirrored left-right."""
        return any(has_side(name) for name in self.labels)

    def describe(self) -> str:
        patients = len({c.patient for c in self.cases})
        return (f"{len(self.cases)} cases of {patients} patients ({len(self.training)} training, "
                f"{len(self.validation)} validation); labels {', '.join(self.labels)}")


@dataclass(frozen=True)
class CaseData:
    """A case read: its image (its own pixel type) and label map re-numbered to the dataset's ids (0 = background)."""

    case: Case
    image: np.ndarray
    labels: np.ndarray  # uint8/uint16: 0 background, Dataset.label_ids[i] = Dataset.labels[i]
    geometry: Geometry


def has_side(name: str) -> bool:
    """A lateral label name: "lung_left", "Kidney R", "rt femur", "leftAtrium"."""
    lower = name.lower()
    tokens = re.split(r"[^a-z]+", lower)
    return any(t in _SIDE_TOKENS for t in tokens) or any(side in lower for side in _LATERAL)


def _key(name: str) -> str:
    return name.strip().lower().replace(" ", "_").replace("-", "_")


# --- finding the cases ----------------------------------------------------------------------------------------
def _is_image(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(IMAGE_EXTENSIONS)


def _stem(path: Path) -> str:
    name = path.name.lower()
    for ext in (".seg.nrrd",) + IMAGE_EXTENSIONS:
        if name.endswith(ext):
            return name[: -len(ext)]
    return name


def _find_label_map(folder: Path) -> Optional[Path]:
    for where in (folder / "truth", folder / "labels", folder):
        if not where.is_dir():
            continue
        found = sorted(p for p in where.iterdir() if _is_image(p) and
                       (_stem(p) in LABEL_STEMS or p.name.lower().endswith(".seg.nrrd")))
        if found:
            return found[0]
    return None


def _find_image(folder: Path, label_map: Path) -> Optional[Path]:
    files = sorted(p for p in folder.iterdir() if _is_image(p) and p != label_map and _stem(p) not in LABEL_STEMS
                   and not p.name.lower().endswith(".seg.nrrd"))
    if files:
        return files[0]
    for name in ("dicom", "DICOM", "image", "images"):
        if (folder / name).is_dir():
            return folder / name
    dirs = sorted(p for p in folder.iterdir() if p.is_dir() and p.name not in ("truth", "labels")
                  and not p.name.startswith("."))
    return dirs[0] if dirs else None


@dataclass(frozen=True)
class _Series:
    files: tuple[str, ...]
    shape_zyx: tuple[int, int, int]
    patient: str
    modality: str


def _dicom_series(folder: Path) -> list[_Series]:
    """The DICOM series under ``folder`` (sub-folders too), each with its files in slice order."""
    import pydicom
    import SimpleITK as sitk

    found = []
    for d in sorted({str(p.parent) for p in folder.rglob("*") if p.is_file()}):
        for uid in sitk.ImageSeriesReader.GetGDCMSeriesIDs(d) or ():
            files = tuple(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(d, uid))
            if not files:
                continue
            try:
                ds = pydicom.dcmread(files[0], stop_before_pixels=True)
                rows, cols = int(ds.Rows), int(ds.Columns)
                frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
            except Exception:  # not an image: skipped
                continue
            nz = len(files) if frames == 1 else frames
            found.append(_Series(files, (nz, rows, cols), str(getattr(ds, "PatientID", "") or ""),
                                 str(getattr(ds, "Modality", "") or "")))
    return found


def _label_shape(path: Path) -> tuple[int, int, int]:
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise DatasetError(f"{path}: not a readable label map: {str(exc).strip().splitlines()[-1][:200]}") from None
    size = reader.GetSize()
    if len(size) != 3:
        raise DatasetError(f"{path}: a label map must be 3D, this one has {len(size)} dimensions")
    return (int(size[2]), int(size[1]), int(size[0]))


def _read_case(folder: Path, patients: Mapping[str, str], patient_key: str) -> Case:
    label_map = _find_label_map(folder)
    if label_map is None:
        raise DatasetError(f"case {folder.name}: no label map (truth/labels.nii.gz, labels.nii.gz, "
                           f"labels.nrrd or a .seg.nrrd)")
    table = read_label_names(str(label_map))
    if not table:
        raise DatasetError(f"case {folder.name}: the label map {label_map.name} has no label table "
                           f"(labels.json beside it)")
    table_file = next((str(p) for p in (label_map.parent / f"{_stem(label_map)}.json",
                                        label_map.parent / "labels.json") if p.is_file()), "")
    image = _find_image(folder, label_map)
    if image is None:
        raise DatasetError(f"case {folder.name}: no image (a DICOM folder, or a NIfTI/NRRD file beside the labels)")
    patient, modality = patients.get(folder.name, ""), ""
    if image.is_dir():
        series = _dicom_series(image)
        if not series:
            raise DatasetError(f"case {folder.name}: {image.name}/ holds no readable DICOM series")
        shape = _label_shape(label_map)
        match = [s for s in series if s.shape_zyx == shape]
        if not match:
            shapes = ", ".join(" × ".join(map(str, s.shape_zyx)) for s in series)
            raise DatasetError(f"case {folder.name}: the label map {label_map.name} is on another grid than its "
                               f"image: its shape {' × '.join(map(str, shape))} matches none of the DICOM series "
                               f"({shapes})")
        chosen = max(match, key=lambda s: len(s.files))
        files, modality = chosen.files, chosen.modality
        if not patient and patient_key != "case":
            patient = chosen.patient
    else:
        files = tuple(str(p) for p in _with_data_file(image))
    return Case(id=folder.name, patient=patient or folder.name, image=str(image), image_files=files,
                label_map=str(label_map), label_table=dict(table), label_table_file=table_file, modality=modality)


def _with_data_file(path: Path) -> list[Path]:
    """An image file and, for a detached header (.nhdr, .mhd), the data file it names."""
    files = [path]
    if path.suffix.lower() in (".nhdr", ".mhd"):
        key = "data file:" if path.suffix.lower() == ".nhdr" else "elementdatafile ="
        for line in path.read_text(errors="replace").splitlines():
            if line.lower().startswith(key):
                data = path.parent / line.split(":" if ":" in key else "=", 1)[1].strip()
                if data.is_file():
                    files.append(data)
    return files


# --- the dataset -----------------------------------------------------------------------------------------------
def _read_toml(root: Path) -> dict:
    path = root / DATASET_FILE
    if not path.is_file():
        return {}
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise DatasetError(f"{path}: not valid TOML: {exc}") from None


def _choose_labels(cases: Sequence[Case], asked: Optional[Sequence[str]]) -> tuple[str, ...]:
    if asked:
        labels = tuple(dict.fromkeys(a.strip() for a in asked if a.strip()))
        for case in cases:
            names = {_key(n) for n in case.label_table.values()}
            missing = [a for a in labels if _key(a) not in names]
            if missing:
                raise DatasetError(f"case {case.id}: label {', '.join(missing)} is missing from its label table "
                                   f"({', '.join(case.label_table.values())})")
        return labels
    labels: dict[str, str] = {}
    for case in cases:
        for _, name in sorted(case.label_table.items()):
            labels.setdefault(_key(name), name)
    for case in cases:
        names = {_key(n) for n in case.label_table.values()}
        missing = [n for k, n in labels.items() if k not in names]
        if missing:
            raise DatasetError(f"case {case.id}: label {', '.join(missing)} is missing from its label table "
                               f"(every case must name every trained label, or choose them with --labels)")
    return tuple(labels.values())


def output_ids(cases: Sequence[Case], labels: Sequence[str]) -> tuple[int, ...]:
    """The model's id of each label: the first case's own id (so results compare with the references id by id)
    when those ids are distinct and small; else 1..K."""
    table = {_key(n): int(i) for i, n in cases[0].label_table.items()}
    ids = tuple(table[_key(n)] for n in labels)
    if len(set(ids)) == len(ids) and max(ids) <= MAX_KEPT_ID:
        return ids
    return tuple(range(1, len(labels) + 1))


def hash_files(paths: Sequence[str], root: str) -> str:
    """sha256 over the files' names (relative to ``root``) and contents, in sorted order."""
    h = hashlib.sha256()
    for path in sorted(set(paths)):
        rel = os.path.relpath(path, root)
        h.update(rel.encode("utf-8") + b"\0" + str(os.path.getsize(path)).encode() + b"\0")
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return "sha256:" + h.hexdigest()


def open_dataset(root: str | os.PathLike, labels: Optional[Sequence[str]] = None) -> Dataset:
    """Find and check the cases of ``root`` (cheap checks: files, tables, split); raise DatasetError."""
    base = Path(root)
    if not base.is_dir():
        raise DatasetError(f"{root}: no such dataset folder")
    config = _read_toml(base)
    patients = config.get("patients", {})
    if not isinstance(patients, dict):
        raise DatasetError(f"{DATASET_FILE}: [patients] must be a table of case = \"patient\"")
    if not isinstance(config.get("labels", []), list):
        raise DatasetError(f"{DATASET_FILE}: labels must be a list of label names")
    patient_key = str(config.get("patient_key", "PatientID"))
    if patient_key not in ("PatientID", "case"):
        raise DatasetError(f"{DATASET_FILE}: patient_key must be \"PatientID\" or \"case\"")
    folders = sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise DatasetError(f"{root}: no cases (one sub-folder per case: an image, a label map and labels.json)")
    cases = tuple(_read_case(f, {str(k): str(v) for k, v in patients.items()}, patient_key) for f in folders)
    chosen = _choose_labels(cases, labels if labels else config.get("labels"))
    try:
        training, validation = split_by_patient([(c.id, c.patient) for c in cases], config.get("split", {}))
    except SplitError as exc:
        raise DatasetError(str(exc)) from None
    files = [f for c in cases for f in (*c.image_files, c.label_map, c.label_table_file) if f]
    if (base / DATASET_FILE).is_file():
        files.append(str(base / DATASET_FILE))
    modality = str(config.get("modality") or next((c.modality for c in cases if c.modality), "") or "CT")
    return Dataset(root=str(base), cases=cases, labels=chosen, label_ids=output_ids(cases, chosen),
                   training=training, validation=validation,
                   data_hash=hash_files(files, str(base)), modality=modality.upper(),
                   settings=dict(config.get("training", {})))


# --- reading a case --------------------------------------------------------------------------------------------
def _geometry(img) -> Geometry:
    sx, sy, sz = img.GetSpacing()[:3]
    nx, ny, nz = img.GetSize()[:3]
    direction = np.asarray(img.GetDirection(), dtype=float).reshape(3, 3)
    return Geometry((nz, ny, nx), (sz, sy, sx), img.GetOrigin()[:3], direction)


def _read_image(case: Case):
    import SimpleITK as sitk

    try:
        if Path(case.image).is_dir():
            reader = sitk.ImageSeriesReader()
            reader.SetFileNames(list(case.image_files))
            img = reader.Execute()
        else:
            img = sitk.ReadImage(case.image)
    except RuntimeError as exc:
        raise DatasetError(f"case {case.id}: cannot read its image: {str(exc).strip().splitlines()[-1][:200]}") \
            from None
    if img.GetDimension() != 3 or img.GetNumberOfComponentsPerPixel() != 1:
        raise DatasetError(f"case {case.id}: the image must be a 3D grayscale volume")
    return img


def label_geometry(case: Case) -> Geometry:
    """The grid of a case's label map, from its header alone (its image must share it: :func:`load_case`)."""
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(case.label_map)
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise DatasetError(f"case {case.id}: cannot read its label map: {str(exc).strip().splitlines()[-1][:200]}") \
            from None
    return _geometry(reader)


def load_case(dataset: Dataset, case: Case) -> CaseData:
    """Read a case; refuse a label map on another grid or holding a label its table does not name."""
    import SimpleITK as sitk

    img = _read_image(case)
    geometry = _geometry(img)
    try:
        lab = sitk.ReadImage(case.label_map)
    except RuntimeError as exc:
        raise DatasetError(f"case {case.id}: cannot read its label map: {str(exc).strip().splitlines()[-1][:200]}") \
            from None
    lab_geometry = _geometry(lab)
    try:
        require_same_grid(geometry, lab_geometry, tol_mm=0.05, what="the label map")
    except GeometryMismatchError as exc:
        raise DatasetError(f"case {case.id}: the label map is on another grid than its image: {exc}") from None
    raw = sitk.GetArrayFromImage(lab)
    if not np.issubdtype(raw.dtype, np.integer):
        if not np.all(np.equal(np.mod(raw, 1), 0)):
            raise DatasetError(f"case {case.id}: the label map holds non-integer values")
        raw = raw.astype(np.int64)
    present = [int(v) for v in np.unique(raw) if v != 0]
    unnamed = [v for v in present if v not in case.label_table]
    if unnamed:
        raise DatasetError(f"case {case.id}: label {', '.join(map(str, unnamed))} of the label map is missing from "
                           f"its label table ({Path(case.label_table_file).name or 'labels.json'})")
    lut = np.zeros(max([0, *present, *case.label_table]) + 1, dtype=np.uint16)
    index = {_key(name): i for name, i in zip(dataset.labels, dataset.label_ids)}
    for value, name in case.label_table.items():
        lut[int(value)] = index.get(_key(name), 0)
    labels = lut[raw.astype(np.int64, copy=False)]
    labels = labels.astype(np.uint8 if max(dataset.label_ids) < 256 else np.uint16)
    return CaseData(case, sitk.GetArrayFromImage(img), labels, geometry)
