"""Review of AI results (viewer/core/review.py): keys, states, header text, undo, and the study file, Qt-free."""
from __future__ import annotations

import numpy as np
import pytest

from ai.api import Detection, InferenceResult, Provenance
from radview_base.geometry import Geometry
from viewer.core import review
from viewer.core.ai_bridge import NOT_REVIEWED, layers_from_result
from viewer.core.session import Session
from viewer.io.volume import Volume
from viewer.store.annotation_store import AnnotationStore, Autosave

GEOM = Geometry((20, 30, 40), (2.0, 0.8, 0.8), (-16.0, -12.0, -30.0))
SERIES, STUDY = "1.2.3.4.5", "1.2.3.4"
CENTRES = ((-4.04, 1.96, -12.0), (6.0, -0.04, -4.0), (10.25, 5.0, 2.0))


def _provenance(version="1.0"):
    return Provenance("test-nodules", "Test nodules", version, "classical image analysis", "cpu", "float32", 0.2,
                      "2026-01-01T00:00:00Z")


def _result(version="1.0", with_labels=True):
    labels = np.zeros(GEOM.shape_zyx, np.uint8)
    labels[5:10, 10:20, 10:30] = 1
    dets = tuple(Detection(c, 8.0 + i, 0.3, 20.0, "solid", 0.9 - 0.1 * i, "nodule", "lung_left")
                 for i, c in enumerate(CENTRES))
    return InferenceResult(GEOM, _provenance(version), labels if with_labels else None,
                           {1: "nodule"}, dets)


def _session(result=None):
    session = Session()
    session.load_volume(Volume(np.zeros(GEOM.shape_zyx, np.int16), GEOM,
                               meta={"modality": "CT", "series_uid": SERIES, "study_uid": STUDY}))
    for layer in layers_from_result(result or _result(), GEOM):
        if layer is not None:
            session.add_layer(layer)
    return session


def test_keys_are_model_series_and_the_centre_rounded_to_a_tenth_of_a_millimetre():
    assert review.detection_key("m", "1.2", (-4.04, 1.96, -0.04)) == "detection|m|1.2|-4.0,2.0,0.0"
    assert review.detection_key("m", "1.2", (10.25, 5.0, 2.0)).endswith("|10.2,5.0,2.0")  # round half to even
    assert review.result_key("m", "1.2") == "result|m|1.2"
    session = _session()
    (result,) = review.ai_results(session)
    assert result.label_layer is not None and result.marker_layer is not None and result.series_uid == SERIES
    assert result.detection_keys() == [f"detection|test-nodules|{SERIES}|-4.0,2.0,-12.0",
                                       f"detection|test-nodules|{SERIES}|6.0,0.0,-4.0",
                                       f"detection|test-nodules|{SERIES}|10.2,5.0,2.0"]


def test_not_reviewed_until_the_result_is_accepted_and_every_finding_decided():
    session = _session()
    (result,) = review.ai_results(session)
    s = session.annotations
    status = review.result_status(s.review, result)
    assert status.state == "not reviewed" and status.header == NOT_REVIEWED and status.total == 3
    review.decide_findings(s, result, [0], review.ACCEPTED, user="dr_a", time="2026-02-01T10:00:00+01:00")
    review.decide_findings(s, result, [1], review.REJECTED, user="dr_a", time="2026-02-01T10:01:00+01:00")
    status = review.result_status(s.review, result)
    assert status.state == "in review" and status.decided == 2
    assert status.header == ("AI result, not reviewed (2 of 3 findings decided, result not yet accepted) — "
                             "not a diagnosis")
    review.decide_result(s, result, review.ACCEPTED, user="dr_b", time="2026-02-01T10:02:00+01:00")
    assert review.result_status(s.review, result).state == "in review"  # one finding still open
    review.decide_findings(s, result, [2], review.ACCEPTED, user="dr_a", time="2026-02-01T10:03:00+01:00")
    status = review.result_status(s.review, result)
    assert status.state == "reviewed"
    assert status.header == "reviewed by dr_a at 2026-02-01T10:03:00+01:00 — not a diagnosis"
    assert review.finding_states(s.review, result) == ["accepted", "rejected", "accepted"]
    entry = s.review[result.detection_key(1)]
    assert entry["state"] == "rejected" and entry["user"] == "dr_a" and entry["kind"] == "detection"
    assert entry["index"] == 1 and entry["center_lps"] == list(CENTRES[1]) and entry["text"].startswith("N2 ")
    assert entry["model_id"] == "test-nodules" and entry["model_version"] == "1.0" and entry["series_uid"] == SERIES
    whole = s.review[result.key]
    assert whole["kind"] == "result" and whole["revision"] == review.ORIGINAL_REVISION
    # the layers carry it for the exporters
    review.sync_layer_meta(s.review, [result])
    assert result.label_layer.meta["reviewed"] and result.label_layer.meta["reviewed_by"] == "dr_a"
    assert result.marker_layer.meta["detection_review"] == ("accepted", "rejected", "accepted")
    # rejecting the whole result: every undecided finding shows as rejected
    review.decide_result(s, result, review.REJECTED, user="dr_c", time="2026-02-01T11:00:00+01:00")
    assert review.result_status(s.review, result).header == \
        "AI result rejected by dr_c at 2026-02-01T11:00:00+01:00 — not a diagnosis"
    review.sync_layer_meta(s.review, [result])
    assert result.label_layer.meta["reviewed"] is False and "reviewed_by" not in result.label_layer.meta
    assert result.label_layer.meta["review_state"] == "rejected" and result.label_layer.meta["decided_by"] == "dr_c"


def test_decisions_are_undone_and_redone_on_the_annotation_undo_stack():
    session = _session()
    (result,) = review.ai_results(session)
    s = session.annotations
    changed = []
    s.review_changed.connect(changed.append)
    review.decide_findings(s, result, [0], review.ACCEPTED, user="u", time="2026-01-01T00:00:00+00:00")
    review.decide_findings(s, result, [0], review.REJECTED, user="u", time="2026-01-01T00:01:00+00:00")
    key = result.detection_key(0)
    assert s.review[key]["state"] == "rejected" and s.undo_stack.undo_text == "reject finding"
    assert s.undo() and s.review[key]["state"] == "accepted"
    assert s.undo() and key not in s.review
    assert not s.undo_stack.can_undo
    assert s.redo() and s.review[key]["state"] == "accepted"
    assert s.redo() and s.review[key]["state"] == "rejected"
    assert changed == [key] * 6
    # several findings at once: one step, and one reviews_changed for the views to redraw once
    batches = []
    s.reviews_changed.connect(batches.append)
    review.decide_findings(s, result, [1, 2], review.ACCEPTED)
    assert s.undo_stack.undo_text == "accept 2 findings"
    assert batches == [(result.detection_key(1), result.detection_key(2))]
    s.undo()
    assert result.detection_key(1) not in s.review and result.detection_key(2) not in s.review
    # the same decision again is no new step
    n = len(s.undo_stack._done)
    s.decide({key: dict(s.review[key])})
    assert len(s.undo_stack._done) == n


def test_a_decision_of_another_model_version_or_label_map_revision_does_not_apply():
    session = _session()
    (result,) = review.ai_results(session)
    s = session.annotations
    review.decide_result(s, result, review.ACCEPTED, user="u")
    review.decide_findings(s, result, [0, 1, 2], review.ACCEPTED, user="u")
    assert review.result_status(s.review, result).state == "reviewed"
    result.label_layer.meta["revision"] = "abc"  # the label map was edited since
    status = review.result_status(s.review, result)
    assert status.state == "in review" and status.result_state is None
    review.decide_result(s, result, review.ACCEPTED, user="u")  # accepting again, after the edit
    assert s.review[result.key]["revision"] == "abc" and review.result_status(s.review, result).state == "reviewed"
    newer = _session(_result(version="2.0"))
    (other,) = review.ai_results(newer)
    assert other.detection_key(0) == result.detection_key(0)  # same key ...
    assert review.finding_entry(s.review, other, 0) is None  # ... but decided on version 1.0


def test_a_result_without_label_map_is_reviewed_with_its_findings():
    session = _session(_result(with_labels=False))
    (result,) = review.ai_results(session)
    assert result.label_layer is None
    review.decide_findings(session.annotations, result, [0, 1, 2], review.ACCEPTED, user="u", time="t1")
    review.decide_result(session.annotations, result, review.ACCEPTED, user="u", time="t2")
    assert review.result_status(session.annotations.review, result).state == "reviewed"


def test_decisions_survive_a_store_reload_and_apply_to_a_new_run(tmp_path):
    session = _session()
    (result,) = review.ai_results(session)
    autosave = Autosave(session.annotations, AnnotationStore(tmp_path))
    autosave.open_study(STUDY)
    review.decide_findings(session.annotations, result, [1], review.REJECTED, user="dr_x")
    review.decide_result(session.annotations, result, review.ACCEPTED, user="dr_x")
    assert autosave.flush()
    autosave.close()
    saved = AnnotationStore(tmp_path).load(STUDY)
    assert saved.review[result.detection_key(1)]["state"] == "rejected"
    # the study reopened, the model run again (new layers, new provenance object)
    again = _session()
    autosave2 = Autosave(again.annotations, AnnotationStore(tmp_path))
    autosave2.open_study(STUDY)
    (rerun,) = review.ai_results(again)
    assert rerun is not result and rerun.provenance is not result.provenance
    assert review.finding_states(again.annotations.review, rerun) == [None, "rejected", None]
    assert review.result_status(again.annotations.review, rerun).state == "in review"
    autosave2.close()


def test_local_time_has_an_offset():
    from datetime import datetime

    t = datetime.fromisoformat(review.local_now_iso())
    assert t.tzinfo is not None


@pytest.mark.parametrize("state", ["maybe", ""])
def test_unknown_states_are_refused(state):
    session = _session()
    (result,) = review.ai_results(session)
    with pytest.raises(ValueError):
        review.decide_findings(session.annotations, result, [0], state)
