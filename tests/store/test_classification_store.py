"""AI classifications kept on disk beside the layer store (viewer.store.classification_store) and brought back with
their review state (which the annotation autosave keeps); a damaged file is set aside and reported, the rest
restores. Qt-free."""
from __future__ import annotations

import json

import numpy as np
import pytest

from ai.api import ClassificationResult, Provenance
from radview_base.geometry import Geometry
from viewer.core import review
from viewer.core.ai_bridge import ClassifiedSeries
from viewer.core.session import Session
from viewer.io.volume import Volume
from viewer.store.annotation_store import AnnotationStore, Autosave
from viewer.store.classification_store import (
    FORMAT,
    ClassificationAutosave,
    ClassificationStore,
    decode,
    encode,
)
from viewer.store.set_aside import CORRUPT_MARK

GEOM = Geometry((3, 4, 5), (2.0, 1.0, 1.0), (0.0, 0.0, 0.0))
STUDY, SERIES, OTHER = "1.2.826.0.1.3", "1.2.826.0.1.3.1", "1.2.826.0.1.3.2"


def _prov(model="xr-findings", version="1.2") -> Provenance:
    return Provenance(model, f"Model {model}", version, "learned network (safetensors)", "cpu", "float32", 0.25,
                      "2026-01-01T00:00:00+00:00", {"input_size": [224, 224], "thresholds": [0.5, 0.4]})


def _classified(series=SERIES, model="xr-findings", probs=(0.812345, 0.123456), sop="1.2.3.4.1") -> ClassifiedSeries:
    c = ClassificationResult(("effusion", "nodule"), probs, "sigmoid", (0.5, 0.4), "resized as a whole to 224 × 224",
                             (224, 224), "image 256 × 300")
    return ClassifiedSeries(_prov(model), c, series, sop, ("ran on the CPU",))


def _volume(series=SERIES) -> Volume:
    return Volume(np.zeros(GEOM.shape_zyx, np.int16), GEOM,
                  {"study_uid": STUDY, "series_uid": series, "modality": "DX"})


class Reader:
    """What StudyAutosave does, without Qt: the study's annotations (review table) and its classifications."""

    def __init__(self, folder):
        self.session = Session()
        self.autosave = Autosave(self.session.annotations, AnnotationStore(folder))
        self.store = ClassificationStore(folder)
        self.saver = ClassificationAutosave(self.session, self.store)

    def open(self, volume):
        self.session.load_volume(volume)
        self.autosave.open_study(STUDY)
        loaded = self.saver.load_series(STUDY, volume.meta["series_uid"], volume.meta["series_uid"])
        self.saver.restore(loaded)
        return loaded

    def close(self):
        self.saver.close()
        self.autosave.close()


@pytest.fixture
def reader(tmp_path):
    made = []

    def make():
        r = Reader(tmp_path / "store")
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


def test_an_entry_round_trips_exactly():
    item = _classified()
    back = decode(json.loads(json.dumps(encode(item))))
    assert back.provenance == item.provenance and back.classification == item.classification
    assert (back.series_uid, back.sop_instance_uid, back.messages) == (SERIES, "1.2.3.4.1", ("ran on the CPU",))


def test_saved_then_restored_in_a_new_session_with_its_review_state(reader, tmp_path):
    first = reader()
    first.open(_volume())
    first.session.add_classification(_classified())
    (result,) = [r for r in review.ai_results(first.session) if r.classification is not None]
    review.decide_result(first.session.annotations, result, review.ACCEPTED, user="alice",
                         time="2026-02-01T10:00:00+00:00")
    first.close()
    path = ClassificationStore(tmp_path / "store").path(STUDY, SERIES)
    assert path.parent == tmp_path / "store" / STUDY / "classifications"
    assert json.loads(path.read_text())["format"] == FORMAT

    second = reader()
    before = path.stat().st_mtime_ns
    loaded = second.open(_volume())
    assert loaded.problems == [] and loaded.messages == []
    (back,) = second.session.classifications
    assert back.classification.probabilities == (0.812345, 0.123456)
    assert back.classification.classes == ("effusion", "nodule") and back.classification.thresholds == (0.5, 0.4)
    assert back.provenance == _prov() and back.sop_instance_uid == "1.2.3.4.1"
    (result,) = [r for r in review.ai_results(second.session) if r.classification is not None]
    status = review.result_status(second.session.annotations.review, result)
    assert status.state == "reviewed" and status.user == "alice"
    second.saver.flush()
    assert path.stat().st_mtime_ns == before  # restoring writes nothing
    # another series of the study has none of them
    second.open(_volume(OTHER))
    assert second.session.classifications == []


def test_a_newer_answer_replaces_and_a_removal_is_kept_but_a_series_change_is_not(reader, tmp_path):
    r = reader()
    r.open(_volume())
    r.session.add_classification(_classified(model="a"))
    r.session.add_classification(_classified(model="b"))
    r.session.add_classification(_classified(model="a", probs=(0.1, 0.2)))  # a newer run of model a
    r.saver.flush()
    stored = r.store.load(STUDY, SERIES).items
    assert sorted((c.provenance.model_id, c.classification.probabilities) for c in stored) == [
        ("a", (0.1, 0.2)), ("b", (0.812345, 0.123456))]
    r.open(_volume(OTHER))  # the series goes: its classifications leave the session, not the disk
    r.saver.settle()
    r.saver.flush()
    assert len(r.store.load(STUDY, SERIES).items) == 2
    r.open(_volume())
    assert len(r.session.classifications) == 2
    r.session.remove_classification(r.session.classifications[0])  # removed while its series stays open
    r.saver.settle()
    r.saver.flush()
    assert [c.provenance.model_id for c in r.store.load(STUDY, SERIES).items] == \
        [c.provenance.model_id for c in r.session.classifications]


def test_a_restore_does_not_replace_an_answer_that_arrived_meanwhile(reader):
    r = reader()
    r.open(_volume())
    r.session.add_classification(_classified(probs=(0.3, 0.3)))
    r.saver.flush()
    loaded = r.saver.load_series(STUDY, SERIES, SERIES)
    r.session.remove_classification(r.session.classifications[0])
    r.session.add_classification(_classified(probs=(0.9, 0.9)))  # newer than what the job read
    assert r.saver.restore(loaded) == []
    assert r.session.classifications[0].classification.probabilities == (0.9, 0.9)


def _write_raw(store: ClassificationStore, series: str, text: str):
    path = store.path(STUDY, series)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _doc(series, entries) -> str:
    return json.dumps({"format": FORMAT, "version": 1, "study_uid": STUDY, "series_uid": series,
                       "series_key": series, "classifications": entries})


@pytest.mark.parametrize("text, reason", [
    ("{not json", "not valid JSON"),
    ("[" * 500 + "]" * 500, "nested 500 levels deep"),
    (json.dumps({"format": "something else"}), "not a radview classification file"),
    (_doc(OTHER, []), "holds series"),
    (_doc(SERIES, {"a": 1}), "'classifications' is not a list"),
])
def test_a_file_that_cannot_be_read_is_set_aside_and_reported(reader, tmp_path, text, reason):
    store = ClassificationStore(tmp_path / "store")
    path = _write_raw(store, SERIES, text)
    r = reader()
    loaded = r.open(_volume())
    assert r.session.classifications == []
    (problem,) = loaded.problems
    assert problem.file == path and reason in problem.reason and "kept as" in problem.reason
    assert not path.exists() and len(list(path.parent.glob(f"{path.name}{CORRUPT_MARK}*"))) == 1
    assert "could not be read" in loaded.messages[0]


def test_bad_entries_are_reported_and_the_rest_restores_and_is_written_back(reader, tmp_path):
    good = encode(_classified(model="good"))
    wrong_type = encode(_classified(model="bad-type"))
    wrong_type["classification"]["probabilities"] = ["0.8", 0.1]  # a string where a number belongs
    out_of_range = encode(_classified(model="bad-value"))
    out_of_range["classification"]["probabilities"] = [1.5, 0.1]
    bad_prov = encode(_classified(model="bad-prov"))
    bad_prov["provenance"]["run_time_s"] = "slow"
    store = ClassificationStore(tmp_path / "store")
    path = _write_raw(store, SERIES, _doc(SERIES, [wrong_type, good, out_of_range, bad_prov, "junk"]))
    r = reader()
    loaded = r.open(_volume())
    assert [c.provenance.model_id for c in r.session.classifications] == ["good"]
    (problem,) = loaded.problems
    for words in ("entry 1", "'probabilities' is not a list of finite numbers", "entry 3", "in [0, 1]", "entry 4",
                  "and 1 more", "kept as"):
        assert words in problem.reason, problem.reason
    assert "1 classification(s) of it were restored" in loaded.messages[0]
    assert len(list(path.parent.glob(f"{path.name}{CORRUPT_MARK}*"))) == 1
    r.saver.flush()  # what was recovered is written back at once
    assert [c.provenance.model_id for c in store.load(STUDY, SERIES).items] == ["good"]


def test_a_newer_format_is_left_as_it_is(reader, tmp_path):
    store = ClassificationStore(tmp_path / "store")
    path = _write_raw(store, SERIES, json.dumps({"format": FORMAT, "version": 99, "series_uid": SERIES}))
    r = reader()
    loaded = r.open(_volume())
    assert loaded.problems == [] and "newer radview" in loaded.messages[0] and path.exists()


def test_an_image_file_without_uids_keeps_its_classification(tmp_path):
    from viewer.store.classification_store import series_keys

    meta = {"source_file": str(tmp_path / "ct.nii.gz"), "modality": "CT"}
    study, series_uid, key = series_keys(meta)
    assert study.startswith("file-") and series_uid == "" and key == study
    session = Session()
    saver = ClassificationAutosave(session, ClassificationStore(tmp_path / "store"))
    session.load_volume(Volume(np.zeros(GEOM.shape_zyx, np.int16), GEOM, dict(meta)))
    session.add_classification(_classified(series=""))
    saver.close()
    loaded = ClassificationStore(tmp_path / "store").load(study, series_uid, key)
    assert [c.classification.probabilities for c in loaded.items] == [(0.812345, 0.123456)] and not loaded.problems
