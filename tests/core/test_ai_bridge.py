"""Volume → InferenceRequest and InferenceResult → layers, without Qt or torch."""
from __future__ import annotations

import numpy as np
import pytest

from ai.api import CLASSICAL_NOTE, Detection, InferenceResult, Provenance, StructureFeatures
from radview_base.geometry import Geometry, GeometryMismatchError
from viewer.core.ai_bridge import (
    layers_from_result,
    method_in_plain_words,
    modality_mismatch,
    provenance_text,
    request_from_volume,
)
from viewer.io.volume import Volume

GEOM = Geometry((6, 8, 10), (2.0, 0.8, 0.7), (-10.0, 20.0, 30.0), ((0, 0, 1), (1, 0, 0), (0, -1, 0)))


def _volume(meta=None):
    return Volume(np.arange(6 * 8 * 10, dtype=np.int16).reshape(6, 8, 10) - 500, GEOM,
                  meta={"modality": "CT", "series_uid": "1.2.3", "description": "chest"} if meta is None else meta)


def _prov(**kw):
    base = {"model_id": "ct-lungs", "model_name": "CT lungs", "model_version": "1.0", "method": CLASSICAL_NOTE,
            "device": "cpu", "precision": "float32", "run_time_s": 2.25, "started_at": "2024-01-01T00:00:00+00:00",
            "parameters": {"lung_threshold_hu": -400}}
    return Provenance(**{**base, **kw})


def test_request_from_volume_shares_the_pixels_and_the_grid():
    v = _volume()
    r = request_from_volume(v, "ct-lungs", "cpu", {"batch_size": 2})
    assert r.array is v.array and r.model_id == "ct-lungs" and r.device == "cpu" and r.options["batch_size"] == 2
    assert (r.modality, r.series_uid, r.series_description) == ("CT", "1.2.3", "chest")
    idx = np.array([[1, 2, 3], [5, 7, 9]])
    assert np.allclose(r.grid.index_to_world(idx), GEOM.index_to_world(idx))
    assert r.grid is v.geometry  # one Geometry class: the request carries the volume's own
    bare = request_from_volume(_volume(meta={}), "m")
    assert bare.modality == "CT" and bare.series_uid == ""  # the request's defaults where the volume says nothing


def test_a_colour_volume_is_refused():
    rgb = Volume(np.zeros((6, 8, 10, 3), np.uint8), GEOM)
    with pytest.raises(ValueError, match="colour"):
        request_from_volume(rgb, "m")


def test_layers_from_result_carry_labels_markers_and_provenance():
    labels = np.zeros(GEOM.shape_zyx, np.int32)
    labels[1:3, 2:4, 2:6] = 2
    labels[4, 5, 5] = 3
    det = Detection((1.0, 2.0, 3.0), 12.4, 0.9, 35.0, "solid", 0.934, location="lung_left")
    result = InferenceResult(GEOM, _prov(), labels, {2: "lung_left", 3: "lung_right"}, (det,),
                             ("GPU out of memory: ran on the CPU instead",))
    lab, mk = layers_from_result(result, GEOM)
    assert lab.name == "AI: CT lungs" and lab.label_map.array.dtype == np.uint8
    assert lab.label_map.geometry == GEOM and lab.label_name(2) == "lung_left"
    assert lab.volumes_ml[2] == pytest.approx(16 * 2.0 * 0.8 * 0.7 / 1000)
    assert lab.meta["provenance"] is result.provenance and lab.meta["messages"] == result.messages
    assert mk.name == "AI: CT lungs findings" and mk.meta["detections"] == (det,)
    (m,) = mk.markers
    assert m.center_lps == (1.0, 2.0, 3.0) and m.size_mm == (12.4,) * 3 and m.text == "N1 12 mm solid"
    assert m.score == pytest.approx(0.934)
    # a segmentation-only result has no marker layer, a detection-only one no label layer
    assert layers_from_result(InferenceResult(GEOM, _prov(), labels), GEOM)[1] is None
    assert layers_from_result(InferenceResult(GEOM, _prov(), None, {}, (det,)), GEOM)[0] is None


def test_the_structures_of_a_result_go_with_its_label_layer():
    labels = np.zeros(GEOM.shape_zyx, np.uint8)
    labels[1:3, 2:4, 2:6] = 2
    lung = StructureFeatures(2, "lung_left", 16, 0.0179, (1.0, 2.0, 3.0), 3.0, 4.5, 0.7, -800.0, 40.0)
    det = Detection((1.0, 2.0, 3.0), 12.4, 0.9, 35.0, "solid", 0.934)
    lab, mk = layers_from_result(InferenceResult(GEOM, _prov(), labels, {2: "lung_left"}, (det,),
                                                 structures=(lung,)), GEOM)
    assert lab.meta["structures"] == (lung,) and "structures" not in mk.meta  # listed once
    _, mk = layers_from_result(InferenceResult(GEOM, _prov(), None, {}, (det,),
                                               structures=(lung,)), GEOM)
    assert mk.meta["structures"] == (lung,)  # no label map: the markers carry them


def test_a_result_on_another_grid_is_an_error_not_a_misalignment():
    labels = np.zeros(GEOM.shape_zyx, np.uint8)
    shifted = Geometry(GEOM.shape_zyx, GEOM.spacing_zyx, (GEOM.origin_lps[0] + 1.5, *GEOM.origin_lps[1:]),
                        GEOM.direction)
    with pytest.raises(GeometryMismatchError):
        layers_from_result(InferenceResult(shifted, _prov(), labels), GEOM)
    other_shape = Geometry((6, 8, 11), GEOM.spacing_zyx, GEOM.origin_lps, GEOM.direction)
    with pytest.raises(GeometryMismatchError):
        layers_from_result(InferenceResult(other_shape, _prov(), np.zeros((6, 8, 11), np.uint8)),
                           GEOM)


def test_words_for_the_user():
    assert method_in_plain_words(CLASSICAL_NOTE) == CLASSICAL_NOTE
    assert method_in_plain_words("classical") == CLASSICAL_NOTE
    assert method_in_plain_words("learned network (TorchScript)") == "learned network (TorchScript)"
    text = provenance_text(_prov())
    for part in ("CT lungs (ct-lungs) version 1.0", CLASSICAL_NOTE, "Device: cpu, float32", "Run time: 2.2 s",
                 "lung_threshold_hu = -400", "not a diagnosis"):
        assert part in text

    class M:
        modality = "MR"

    assert modality_mismatch(M, _volume()) == "needs MR, this series is CT"
    assert modality_mismatch(M, _volume(meta={})) == ""  # a file that does not say: the user decides
    M.modality = "CT"
    assert modality_mismatch(M, _volume()) == "" and modality_mismatch(M, None) == "no series is open"
