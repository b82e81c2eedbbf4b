"""The in-process engine: caching, modality check, GPU out-of-memory fallbacks, error wrapping, output checks."""
from __future__ import annotations

import threading

import fake_models
import numpy as np
import pytest
import torch

from ai.api import Cancelled, InferenceRequest, ModelError
from ai.engine import OOM_CPU, OOM_SMALLER, Engine
from ai.registry import Registry
from radview_base.geometry import Geometry


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    return Registry(extra_dirs=[fake_models.write_manifests(tmp_path_factory.mktemp("models"))])


@pytest.fixture
def engine(registry):
    return Engine(registry)


def request(model_id="test-threshold", shape=(6, 7, 8), **kw) -> InferenceRequest:
    array = np.arange(np.prod(shape), dtype=np.int16).reshape(shape)
    grid = Geometry(shape, (2.0, 0.8, 0.7), (-10.0, 20.0, 30.0))
    return InferenceRequest(array=array, grid=grid, model_id=model_id, device=kw.pop("device", "cpu"), **kw)


def pretend_gpu(monkeypatch):
    """Make the engine believe a CUDA GPU exists (the fake runners never touch it)."""
    import ai.runners.device as dev

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    monkeypatch.setattr(dev, "describe_device",
                        lambda d: "cuda:0 (Pretend GPU, 8 GiB)" if torch.device(d).type == "cuda" else "cpu")


def test_a_run_gives_labels_detections_and_provenance(engine):
    calls = []
    req = request(options={"threshold": 200})
    result = engine.run(req, progress=lambda f, m: calls.append((f, m)))
    assert result.labels.dtype == np.uint8 and result.labels.shape == req.grid.shape_zyx
    assert np.array_equal(result.labels, (req.array > 200).astype(np.uint8))
    assert result.label_names == {1: "bright", 3: "other"}
    assert len(result.detections) == 1 and result.detections[0].score == 0.9
    p = result.provenance
    assert (p.model_id, p.model_name, p.model_version, p.method) == ("test-threshold", "Test ThresholdModel", "0.1",
                                                                     "test model")
    assert p.device.startswith("cpu (") and p.precision == "float32" and p.run_time_s > 0
    assert p.started_at.endswith("+00:00") and p.software.startswith("radview ") and "torch " in p.software
    assert p.parameters["threshold"] == 200 and p.parameters["device_seen"] == "cpu"
    assert calls[0] == (0.0, "loading model") and calls[-1] == (1.0, "done")
    fractions = [f for f, _ in calls]
    assert fractions == sorted(fractions) and any(m == "part 2/4" for _, m in calls)
    assert result.messages == ()


def test_a_loaded_model_stays_cached(engine):
    before = fake_models.ThresholdModel.loads
    engine.run(request())
    engine.run(request())
    assert fake_models.ThresholdModel.loads == before + 1
    assert ("test-threshold", "cpu") in engine.cached_models()
    engine.clear_cache()
    assert engine.cached_models() == []
    engine.run(request())
    assert fake_models.ThresholdModel.loads == before + 2


def test_unknown_model_and_wrong_modality_are_refused(engine):
    with pytest.raises(ModelError, match="unknown model 'nope'"):
        engine.run(request("nope"))
    with pytest.raises(ModelError, match="Test MR model works on MR images; this series is CT"):
        engine.run(request("test-mr"))
    with pytest.raises(ModelError, match="works on CT images; this series is MR"):
        engine.run(request(modality="MR"))
    result = engine.run(request(modality=""))
    assert result.messages == ("the series' modality is unknown: assumed CT",)


def test_an_unavailable_device_is_a_readable_error(engine):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ModelError, match="CUDA GPU was requested"):
        engine.run(request(device="cuda"))


def test_runner_exceptions_become_model_errors(engine):
    with pytest.raises(ModelError, match=r"^Test FailingModel failed: ValueError: boom$") as info:
        engine.run(request("test-failing"))
    assert isinstance(info.value.__cause__, ValueError)


def test_cancel_passes_through(engine):
    cancel = threading.Event()
    timer = threading.Timer(0.1, cancel.set)
    timer.start()
    with pytest.raises(Cancelled):
        engine.run(request("test-slow", options={"seconds": 5}), cancel=cancel)
    cancel.set()
    with pytest.raises(Cancelled):  # cancelled before it started
        engine.run(request(), cancel=cancel)


@pytest.mark.parametrize("bad, message", [("shape", "shape"), ("float", "float32 labels, not integers"),
                                          ("label", "label 9, which its manifest does not list")])
def test_bad_output_is_refused(engine, bad, message):
    with pytest.raises(ModelError, match=message):
        engine.run(request("test-bad", options={"bad": bad}))


def test_gpu_out_of_memory_retries_with_stitching_on_the_cpu(engine, monkeypatch):
    pretend_gpu(monkeypatch)
    result = engine.run(request("test-oom", device="auto", options={"batch_size": 4}))
    assert result.messages == (OOM_SMALLER,)
    p = result.provenance.parameters
    assert p["device_seen"] == "cuda:0" and p["stitch_on_cpu"] is True and p["batch_size"] == 1
    assert result.provenance.device == "cuda:0 (Pretend GPU, 8 GiB)"
    assert result.provenance.precision == "float16 (autocast)"  # the manifest allows mixed precision


def test_gpu_out_of_memory_twice_runs_on_the_cpu(engine, monkeypatch):
    pretend_gpu(monkeypatch)
    result = engine.run(request("test-oom", device="cuda", options={"oom_until_cpu": True, "batch_size": 2}))
    assert result.messages == (OOM_SMALLER, OOM_CPU)
    assert OOM_CPU == "GPU out of memory: ran on the CPU instead"
    p = result.provenance.parameters
    assert p["device_seen"] == "cpu" and p["stitch_on_cpu"] is False and p["batch_size"] == 2
    assert result.provenance.device == "cpu" and result.provenance.precision == "float32"
    assert ("test-oom", "cuda:0") in engine.cached_models() and ("test-oom", "cpu") in engine.cached_models()


def test_out_of_memory_on_the_cpu_is_not_retried_and_fallbacks_end(engine, monkeypatch):
    with pytest.raises(ModelError, match="Test OomModel failed: RuntimeError: CUDA out of memory"):
        engine.run(request("test-oom", options={"oom_always": True}))
    pretend_gpu(monkeypatch)
    with pytest.raises(ModelError, match="Test OomModel ran out of memory, also with the fallbacks"):
        engine.run(request("test-oom", device="cuda", options={"oom_always": True}))


def test_mixed_precision_can_be_turned_off(engine, monkeypatch):
    pretend_gpu(monkeypatch)
    result = engine.run(request("test-oom", device="cuda", options={"mixed_precision": False}))
    assert result.provenance.precision == "float32"


def test_a_model_may_take_several_modalities(registry):
    """``modality = "DX,CR"``: a chest radiograph model takes digital and computed radiographs, nothing else."""
    import dataclasses

    from ai.engine import Engine
    from viewer.core.ai_bridge import modality_mismatch

    xr = dataclasses.replace(registry.get("test-mr"), name="Chest XR", modality="DX, CR")
    assert xr.modalities == ("DX", "CR")
    assert dataclasses.replace(xr, modality="any").modalities == () == dataclasses.replace(xr, modality="").modalities
    for have in ("DX", "CR", "cr"):
        assert Engine._check_modality(xr, request(modality=have)) == []
    assert "assumed DX or CR" in Engine._check_modality(xr, request(modality=""))[0]
    with pytest.raises(ModelError, match="Chest XR works on DX or CR images; this series is MG"):
        Engine._check_modality(xr, request(modality="MG"))

    from viewer.io.volume import Volume

    def series(modality):
        return Volume(np.zeros((1, 4, 4), np.int16), Geometry((1, 4, 4), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0)),
                      meta={"modality": modality})

    assert modality_mismatch(xr, series("DX")) == "" == modality_mismatch(xr, series("CR"))
    assert modality_mismatch(xr, series("MG")) == "needs CR/DX, this series is MG"
