"""A real radview store of reviewed AI results, made by the real code: tiny DICOM phantom studies (one patient
each), an AI label layer per series saved by :class:`LayerAutosave`, review decisions saved by the annotation
:class:`Autosave`. Shared by tests/ai/test_reviewed_data.py and tests/qt/test_train_dialog.py."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom

from ai.api import InferenceResult, Provenance
from radview_base.geometry import Geometry
from viewer.core import review
from viewer.core.ai_bridge import layers_from_result
from viewer.core.annotations import study_key
from viewer.core.label_edit import BrushStroke, record_edit
from viewer.core.session import Session
from viewer.core.slicing import SlicePlane
from viewer.demo.dicom_writer import CT_SUBDIR, write_study
from viewer.demo.phantom import make_phantom
from viewer.io.dicom_index import scan
from viewer.io.series_loader import load_series
from viewer.io.volume import Volume
from viewer.store.annotation_store import AnnotationStore, Autosave
from viewer.store.layer_store import LayerAutosave, LayerStore

SHAPE, SPACING = (24, 40, 40), (14.0, 10.0, 10.0)  # as training_cases.SMALL_SHAPE
LABELS = {2: "lung_left", 3: "lung_right"}
#: (patient, review decision, painted on before the decision, grid moved by mm)
PLAN = (("P1", review.ACCEPTED, False, 0.0), ("P2", review.ACCEPTED, True, 0.0), ("P3", review.REJECTED, False, 0.0),
        ("P4", None, False, 0.0), ("P5", review.ACCEPTED, False, 7.5))


@dataclass
class Made:
    patient: str
    study_uid: str
    series_uid: str
    folder: Path  # the thin CT series' folder


@functools.lru_cache(maxsize=1)
def _phantom():
    return make_phantom(30, shape_zyx=SHAPE, spacing_zyx=SPACING)  # one phantom (~1 s); each study its own UIDs


def write_patient(images: Path, seed: int, patient: str) -> Made:
    """A phantom study under ``images/<patient>/`` (UIDs from ``seed``; every file re-labelled with ``patient``)."""
    p = _phantom()
    root = images / patient
    uids = write_study(root, p.hu_zyx, p.grid, seed)
    for path in root.rglob("*.dcm"):
        ds = pydicom.dcmread(path)
        ds.PatientID = patient
        ds.save_as(path)
    return Made(patient, uids.study, uids.ct_series, root / CT_SUBDIR)


def _provenance(model="test-lungs"):
    return Provenance(model, "Test lungs", "1.0", "classical image analysis, not a learned network", "cpu",
                      "float32", 0.1, "2026-01-01T00:00:00Z", {}, "radview test")


def save_result(store_dir: Path, made: Made, state: str | None, edit: bool = False, shift_mm: float = 0.0) -> None:
    """Open the series in a session, add an AI label map (the phantom's lungs), optionally paint on it, decide on
    it (``state``: accepted/rejected/None) and let the autosaves write it. ``shift_mm``: the series is shown on a
    grid moved that far (so the stored layer is not on the series' own grid)."""
    volume = load_series(scan(str(made.folder)).largest_volume())
    if shift_mm:
        g = volume.geometry
        moved = Geometry(g.shape_zyx, g.spacing_zyx, tuple(np.add(g.origin_lps, (shift_mm, 0.0, 0.0))), g.direction)
        volume = Volume(volume.array, moved, meta=dict(volume.meta))
    decide(store_dir, volume, made.study_uid, state, edit)


def decide(store_dir: Path, volume: Volume, study_uid: str, state: str | None, edit: bool = False,
           index=None) -> None:
    """Add an AI label map to ``volume``, optionally paint on it, decide on it (``state``), and let the autosaves
    write. ``index``: a callable giving the open study index, as the window's opener gives the layer autosave."""
    truth = _phantom().labels_zyx
    labels = np.where(np.isin(truth, list(LABELS)), truth, 0).astype(np.uint8)
    session = Session()
    session.load_volume(volume)
    layers = LayerAutosave(session, LayerStore(store_dir), index=index)
    notes = Autosave(session.annotations, AnnotationStore(store_dir))
    notes.open_study(study_uid)
    try:
        label_layer, _ = layers_from_result(InferenceResult(volume.geometry, _provenance(), labels, LABELS),
                                            volume.geometry)
        session.add_layer(label_layer)
        if edit:
            plane = SlicePlane.for_view("axial", volume.geometry)
            stroke = BrushStroke(label_layer, plane, SHAPE[0] // 2, 2, 15.0)
            stroke.add(20, 20)
            record_edit(session, stroke.finish())
        if state is not None:
            (result,) = review.ai_results(session)
            review.decide_result(session.annotations, result, state, "dr_test", "2026-02-02T10:00:00+01:00")
        assert layers.flush() and notes.flush()
    finally:
        layers.close()
        notes.close()


def save_file_result(store_dir: Path, path: Path, state: str | None) -> None:
    """The phantom written as ``path`` (NIfTI), opened on its own (no DICOM UIDs: its study key is a hash of the
    path), an AI label map added and decided on, saved by the autosaves."""
    from viewer.io.image_io import read_image, write_image

    p = _phantom()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(Volume(p.hu_zyx, _geometry(p.grid)), str(path))
    volume = read_image(str(path))
    decide(store_dir, volume, study_key(volume.meta), state)


def _geometry(grid) -> Geometry:
    return Geometry(tuple(grid.shape_zyx), tuple(grid.spacing_zyx), tuple(grid.origin_lps))


def make_store(tmp: Path) -> tuple[Path, Path, dict[str, Made]]:
    """``(store folder, images folder, {patient: Made})``: P1 accepted, P2 edited then accepted, P3 rejected,
    P4 not reviewed, P5 accepted but stored on another grid than its series."""
    store, images = tmp / "annotations", tmp / "images"
    made = {}
    for i, (patient, state, edit, shift) in enumerate(PLAN):
        made[patient] = write_patient(images, 30 + i, patient)
        save_result(store, made[patient], state, edit=edit, shift_mm=shift)
    return store, images, made
