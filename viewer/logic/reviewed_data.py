"""Reviewed AI results as training data, the listing: the store's AI label layers with their review state and
where their image is. Qt-free; the export is :mod:`viewer.logic.reviewed_export`.

Listing (:func:`list_cases`) reads only the layer manifests (``viewer.store.layer_json``: no label data) and each
study's review table (:class:`viewer.store.annotation_store.AnnotationStore`), and judges each AI result with radview's
own review rules (:func:`viewer.core.review.result_status`): a result whose label map was accepted (at its current
revision) and every detection decided is **accepted** — **edited** when someone painted on it before accepting —; a
rejected result is **rejected**; a result with some decisions is **in review**; one without is **not reviewed**.
Hand-painted layers without an AI provenance have no review and are not listed.

A layer's image series is looked up first where the manifest records it was read from (its **recorded source**,
:func:`viewer.store.layer_json.source_of`: the DICOM series' folder, scanned, and the series with the layer's key
or UID in it; or the image file, when it exists and its path still gives the layer's study key); then, when that
is missing, moved or does not match (or a manifest saved before sources were recorded has none), in radview's local
study database (``viewer.net.study_db``, where retrieved, received and imported studies are), then in the folders
given (``image_folders``: DICOM series by their UID; an image file opened on its own is found by the key its study
was stored under, a hash of its path). The recorded path is data from the store: it is only checked, scanned or
read, and one that does not exist is skipped. The patient ID (the split key) comes from the image's DICOM headers;
without an image a case has no patient and is left out, with the reason. A label map on another grid than its
image is marked with the reason (never resampled).
"""
from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

from radview_base.cancel import Cancelled
from radview_base.geometry import Geometry, GeometryMismatchError, require_same_grid

ACCEPTED, EDITED, REJECTED, IN_REVIEW, NOT_REVIEWED = "accepted", "edited", "rejected", "in review", "not reviewed"
STATES = (ACCEPTED, EDITED, REJECTED, IN_REVIEW, NOT_REVIEWED)
#: what goes into a dataset unless asked otherwise
EXPORTED_STATES = (ACCEPTED, EDITED)
GRID_TOLERANCE_MM = 0.01
_IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")

ProgressFn = Callable[[int, int, str], None]


@dataclass(frozen=True)
class ReviewedCase:
    """One AI label layer of the store, as a candidate training case."""

    study_uid: str
    series_uid: str
    series_key: str
    layer_id: str
    name: str  # the layer's name in the viewer
    model_id: str
    model_version: str
    labels: Mapping[int, str]
    geometry: Geometry  # the stored label map's grid
    state: str  # one of STATES
    review_text: str  # radview's own line for the result ("reviewed by … at … — not a diagnosis")
    decided_by: str = ""
    decided_at: str = ""
    patient_id: str = ""  # from the image's DICOM headers ("" when the image was not found or has none)
    image: str = ""  # the DICOM series' folder, or the image file ("" when not found)
    image_files: tuple[str, ...] = ()
    found_in: str = ""  # "recorded source", "study database", "folder <path>" or ""
    problem: str = ""  # why the case cannot be exported whatever its state (no image, another grid, …)
    source: object = field(default=None, compare=False, repr=False)  # the index's SeriesEntry, or None (a file)

    @property
    def reviewed(self) -> bool:
        return self.state in EXPORTED_STATES

    def left_out_because(self, states: Sequence[str] = EXPORTED_STATES) -> str:
        """Why the case stays out of a dataset of ``states`` ("" when it goes in)."""
        if self.state not in states:
            return f"{self.state}: {self.review_text}" if self.state != NOT_REVIEWED else \
                "not reviewed: only reviewed results (accepted or edited, then accepted) are training data"
        return self.problem

    @property
    def patient(self) -> str:
        """The split key: the PatientID, else the study (cases of one study stay on one side)."""
        return self.patient_id or f"study {self.study_uid}"


@dataclass(frozen=True)
class Listing:
    cases: tuple[ReviewedCase, ...]
    problems: tuple[str, ...] = ()  # manifests or review tables that could not be read, folders not scanned

    @property
    def reviewed(self) -> tuple[ReviewedCase, ...]:
        return tuple(c for c in self.cases if not c.left_out_because())


# --- listing ------------------------------------------------------------------------------------------------------
class _Stub:
    """What :mod:`viewer.core.review` reads of a layer: its meta (and a marker layer's markers)."""

    def __init__(self, meta: dict, markers=()):
        self.meta, self.markers = meta, markers


def _state(review: Mapping, prov, label_meta: dict, marker_meta: dict | None, series_uid: str):
    from viewer.core import review as rv

    result = rv.AiResult(prov, _Stub(label_meta), None if marker_meta is None else _Stub(marker_meta),
                         series_uid=series_uid)
    status = rv.result_status(review, result)
    state = {"reviewed": EDITED if result.edited or label_meta.get("edited") else ACCEPTED,
             "rejected": REJECTED, "in review": IN_REVIEW}.get(status.state, NOT_REVIEWED)
    return state, status.header, status.user, status.time


def _manifests(folder: Path, problems: list[str]) -> list[dict]:
    from viewer.store.layer_json import FORMAT
    from viewer.store.set_aside import read_json

    out = []
    for path in sorted(folder.glob("*.json")):
        if path.name.startswith("."):
            continue
        try:
            manifest = read_json(path)
        except Exception as exc:  # noqa: BLE001 - reported, the others are listed
            problems.append(f"{path}: {exc}")
            continue
        if isinstance(manifest, dict) and manifest.get("format") == FORMAT:
            manifest["_path"] = str(path)
            out.append(manifest)
    return out


def _stored_layers(store: Path, problems: list[str]):
    """``(study uid, review table, label manifests with meta, marker metas by result id)`` per study."""
    from viewer.store.annotation_store import AnnotationStore
    from viewer.store.layer_json import decode_meta, geometry_from_dict, label_layer_fields, source_of

    annotations = AnnotationStore(store)
    if not store.is_dir():
        return
    for study_dir in sorted(p for p in store.iterdir() if p.is_dir() and (p / "layers").is_dir()):
        labels, markers, study_uid = [], {}, ""
        for manifest in _manifests(study_dir / "layers", problems):
            try:
                meta = decode_meta(manifest.get("meta"))
                study_uid = study_uid or str(manifest.get("study_uid") or "")
                if manifest.get("kind") == "markers":
                    markers[str(manifest.get("result_id"))] = meta
                elif manifest.get("kind") == "labels" and meta.get("provenance") is not None:
                    fields = label_layer_fields(manifest)
                    labels.append((manifest, meta, fields, geometry_from_dict(manifest.get("geometry")),
                                   source_of(manifest)))
            except Exception as exc:  # noqa: BLE001 - one bad manifest: reported, the others listed
                problems.append(f"{manifest['_path']}: {exc}")
        if not labels or not study_uid:
            continue
        stored = annotations.load(study_uid)
        if stored.message:
            problems.append(stored.message)
        yield study_uid, stored.review, labels, markers


def _file_key(path: str) -> str:
    """The key a study opened from an image file is stored under (:func:`viewer.core.annotations.study_key`)."""
    return "file-" + hashlib.sha1(os.path.abspath(path).encode("utf-8")).hexdigest()[:20]


class _Images:
    """Where the image series are: the recorded source, the local study database, then the folders given (each
    folder scanned once)."""

    def __init__(self, image_folders: Iterable[str], study_db, problems: list[str], cancel=None):
        self.folders = [str(f) for f in image_folders if str(f).strip()]
        self.study_db, self.problems, self.cancel = study_db, problems, cancel
        self._db = None
        self._indexes = None
        self._files: dict[str, str] = {}
        self._sources: dict[str, object] = {}  # recorded folder -> its index (None: not scanned)

    def _database(self):
        if self._db is None:
            from viewer.net.study_db import StudyDatabase, default_root

            root = Path(self.study_db) if self.study_db is not None else default_root()
            self._db = StudyDatabase(root) if (root / "index.sqlite").is_file() else False
        return self._db

    def _scanned(self):
        if self._indexes is None:
            from viewer.io.dicom_index import scan

            self._indexes = []
            for folder in self.folders:
                try:
                    self._indexes.append((folder, scan(folder, cancel=self.cancel)))
                except (OSError, ValueError) as exc:
                    self.problems.append(f"{folder}: not scanned ({exc})")
                for base, _dirs, names in os.walk(folder):
                    for name in names:
                        if name.lower().endswith(_IMAGE_SUFFIXES):
                            path = os.path.join(base, name)
                            self._files.setdefault(_file_key(path), path)
        return self._indexes

    def _recorded(self, source, study_uid: str, series_uid: str, series_key: str):
        """The image at the recorded ``source`` when it is still there and is this layer's; else None."""
        path = source["path"] if source else ""
        if not path or not os.path.isabs(path) or os.path.dirname(path) == path:  # (a file system's root: not scanned)
            return None
        if os.path.isdir(path):
            if not series_uid or source["series_uid"] not in ("", series_uid):
                return None
            if path not in self._sources:
                from viewer.io.dicom_index import scan

                try:
                    self._sources[path] = scan(path, cancel=self.cancel)
                except (OSError, ValueError) as exc:
                    self._sources[path] = None
                    self.problems.append(f"{path} (a recorded source): not scanned ({exc})")
            index = self._sources[path]
            entry = _entry(index, series_key, series_uid) if index is not None else None
            if entry is not None and entry.series_uid == series_uid and entry.files:
                return entry, _folder(entry), tuple(entry.files), entry.patient_id, "recorded source"
        elif os.path.isfile(path) and _file_key(path) == study_uid:
            return None, path, (path,), "", "recorded source"
        return None

    def find(self, study_uid: str, series_uid: str, series_key: str, source=None):
        """``(entry or None, image path, files, patient id, found in)``; ``(None, "", (), "", "")`` when not found.
        ``source``: the recorded source of the series (:func:`viewer.store.layer_json.source_of`), tried first."""
        found = self._recorded(source, study_uid, series_uid, series_key)
        if found is not None:
            return found
        db = self._database()
        if db and series_uid and db.holds(study_uid, series_uid):
            from viewer.io.dicom_index import scan

            folder = db.location(study_uid, series_uid)
            entry = _entry(scan(folder, cancel=self.cancel), series_key, series_uid)
            if entry is not None:
                return entry, folder, tuple(entry.files), entry.patient_id, "study database"
        for folder, index in self._scanned():
            entry = _entry(index, series_key, series_uid) if series_uid else None
            if entry is not None:
                return entry, _folder(entry), tuple(entry.files), entry.patient_id, f"folder {folder}"
        path = self._files.get(study_uid)
        if path is not None:
            return None, path, (path,), "", "folder " + next(f for f in self.folders if path.startswith(f))
        return None, "", (), "", ""

    def close(self) -> None:
        if self._db:
            self._db.close()


def _folder(entry) -> str:
    files = entry.files
    return os.path.commonpath(files) if len(files) > 1 else os.path.dirname(files[0])


def _entry(index, series_key: str, series_uid: str):
    for entry in index.series:
        if entry.key == (series_key or series_uid):
            return entry
    matches = [e for e in index.series if e.series_uid == series_uid and e.loadable and not e.planar]
    return matches[0] if len(matches) == 1 else None


def _not_found(source) -> str:
    if source:
        return (f"its image was not found: not at its recorded source {source['path']} (moved or deleted?), nor in "
                "the study database or a folder given; give the folder of its series")
    return "its image was not found: the layer was saved without its series' location; give the folder of its series"


def _grid_problem(entry, path: str, geometry: Geometry) -> str:
    """Why the label map cannot go with its image ("" when it lies on the image's grid)."""
    if entry is not None:
        if not entry.loadable or entry.plan is None:
            return f"its series cannot be loaded as a volume ({entry.refusal or entry.kind})"
        image_grid = entry.plan.geometry
    else:
        import SimpleITK as sitk

        from viewer.io.image_io import geometry_from_sitk

        reader = sitk.ImageFileReader()
        reader.SetFileName(path)
        try:
            reader.ReadImageInformation()
        except RuntimeError as exc:
            return f"its image {path} cannot be read ({str(exc).strip().splitlines()[-1][:120]})"
        image_grid = geometry_from_sitk(reader)
    try:
        require_same_grid(image_grid, geometry, tol_mm=GRID_TOLERANCE_MM, what="the label map")
    except GeometryMismatchError as exc:
        return f"the label map is on another grid than its image ({exc}); it is not resampled"
    return ""


def list_cases(store_dir: str | os.PathLike | None = None, image_folders: Iterable[str] = (),
               study_db: str | os.PathLike | None = None, cancel: threading.Event | None = None) -> Listing:
    """The AI label layers of the store (``store_dir``: the annotation folder, default the user's) as cases.

    ``study_db``: the local study database's folder (default the user's; used only when it exists);
    ``image_folders``: more places to look for the series. Nothing of the layers is written; reading a study's
    review table goes through :meth:`AnnotationStore.load`, which (as when the viewer opens the study) sets a damaged
    file aside and removes temporary files a crash left.
    """
    from viewer.store.annotation_store import default_directory

    store = Path(store_dir) if store_dir is not None else default_directory()
    problems: list[str] = []
    images = _Images(image_folders, study_db, problems, cancel)
    cases = []
    try:
        for study_uid, review, labels, markers in _stored_layers(store, problems):
            for manifest, meta, fields, geometry, source in labels:
                if cancel is not None and cancel.is_set():
                    raise Cancelled("listing cancelled")
                prov = meta["provenance"]
                series_uid = str(manifest.get("series_uid") or "")
                series_key = str(manifest.get("series_key") or series_uid)
                state, text, user, when = _state(review, prov, meta, markers.get(str(manifest.get("result_id"))),
                                                 series_uid)
                entry, image, files, patient, found_in = images.find(study_uid, series_uid, series_key, source)
                problem = _not_found(source) if not image else _grid_problem(entry, image, geometry)
                cases.append(ReviewedCase(
                    study_uid, series_uid, series_key, str(manifest.get("layer_id")), fields["name"],
                    str(getattr(prov, "model_id", "")), str(getattr(prov, "model_version", "")),
                    dict(fields["labels"]), geometry, state, text, user, when, patient, image, files, found_in,
                    problem, entry))
    finally:
        images.close()
    cases.sort(key=lambda c: (not c.patient_id, c.patient_id, c.study_uid, c.series_uid, c.name, c.layer_id))
    return Listing(tuple(cases), tuple(problems))
