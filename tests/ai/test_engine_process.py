"""The engine in a child process: results come back, cancel is prompt, a killed engine restarts, temp files go."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import fake_models
import numpy as np
import pytest

from ai.api import Cancelled, InferenceRequest, ModelError
from ai.engine_process import SHM, EngineClient, EngineCrashed
from radview_base.geometry import Geometry

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    folder = fake_models.write_manifests(tmp_path_factory.mktemp("models"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RADVIEW_MODELS_DIR", str(folder))
        yield folder


@pytest.fixture(scope="module")
def client(models_dir):
    c = EngineClient()
    yield c
    c.close()
    assert not c.alive


def job_dirs() -> list[str]:
    prefix = f"radview-ai-{os.getpid()}-"
    found = []
    for root in (SHM, tempfile.gettempdir()):
        if os.path.isdir(root):
            found += [os.path.join(root, n) for n in os.listdir(root) if n.startswith(prefix)]
    return found


@pytest.fixture(autouse=True)
def no_temp_files_left():
    yield
    assert job_dirs() == []


def request(model_id="test-threshold", shape=(9, 10, 11), **options) -> InferenceRequest:
    array = (np.arange(np.prod(shape)) % 301).astype(np.int16).reshape(shape)
    grid = Geometry(shape, (1.5, 0.7, 0.7), (1.0, 2.0, 3.0))
    return InferenceRequest(array=array, grid=grid, model_id=model_id, device="cpu", options=options,
                            series_uid="1.2.3")


def run_in_thread(client, req, progress=None):
    box = {}

    def work():
        t = time.monotonic()
        try:
            box["result"] = client.run(req, progress)
        except BaseException as exc:  # noqa: BLE001 -- handed to the test
            box["error"] = exc
        box["elapsed_after_start"] = time.monotonic() - t

    th = threading.Thread(target=work)
    th.start()
    return th, box


def wait_for(flag: threading.Event, timeout=30.0):
    assert flag.wait(timeout), "the job never reported progress"


def test_a_run_happens_in_another_process_and_returns_everything(client):
    calls = []
    assert client.warm_up().startswith("cpu (")
    req = request(threshold=150)
    result = client.run(req, progress=lambda f, m: calls.append((f, m)))
    p = result.provenance.parameters
    assert p["pid"] == client.pid and p["pid"] != os.getpid()
    assert p["viewer_imported"] is False and p["qt_imported"] is False
    assert np.array_equal(result.labels, (req.array > 150).astype(np.uint8)) and result.labels.dtype == np.uint8
    assert result.grid == req.grid and result.label_names == {1: "bright", 3: "other"}
    assert len(result.detections) == 1 and result.detections[0].mean_hu == float(req.array.max())
    assert result.provenance.model_id == "test-threshold" and "torch" in result.provenance.software
    assert calls[0] == (0.0, "loading model") and calls[-1] == (1.0, "done") and ("part 3/4" in dict(calls).values())
    assert client.run(req).provenance.parameters["loads"] == 1  # the model stayed loaded in the child


def test_model_errors_come_back_with_their_message_and_the_engine_stays(client):
    pid = client.run(request()).provenance.parameters["pid"]
    with pytest.raises(ModelError, match=r"^Test FailingModel failed: ValueError: boom$"):
        client.run(request("test-failing"))
    with pytest.raises(ModelError, match="unknown model 'nope'"):
        client.run(request("nope"))
    with pytest.raises(ModelError, match="works on MR images"):
        client.run(request("test-mr"))
    assert client.pid == pid


def test_a_cooperative_cancel_is_prompt_and_keeps_the_engine(client):
    pid = client.run(request()).provenance.parameters["pid"]
    started = threading.Event()
    th, box = run_in_thread(client, request("test-slow", seconds=20),
                            lambda f, m: started.set() if m.startswith("sleeping") else None)
    wait_for(started)
    t0 = time.monotonic()
    client.cancel()
    th.join(5)
    assert time.monotonic() - t0 < 1.0 and isinstance(box.get("error"), Cancelled)
    assert client.alive and client.pid == pid
    assert client.run(request()).provenance.parameters["pid"] == pid  # the cancel event was cleared


def test_a_job_that_ignores_cancel_is_killed_within_a_second_and_the_engine_restarts(client):
    old = client.run(request()).provenance.parameters["pid"]
    started = threading.Event()
    th, box = run_in_thread(client, request("test-stubborn", seconds=30),
                            lambda f, m: started.set() if m == "not listening" else None)
    wait_for(started)
    t0 = time.monotonic()
    client.cancel()
    th.join(5)
    assert time.monotonic() - t0 < 1.0 and isinstance(box.get("error"), Cancelled)
    assert not client.alive
    new = client.run(request()).provenance.parameters["pid"]
    assert new != old


def test_an_engine_killed_mid_job_gives_engine_crashed_and_the_next_run_works(client):
    old = client.run(request()).provenance.parameters["pid"]
    started = threading.Event()
    th, box = run_in_thread(client, request("test-slow", seconds=20), lambda f, m: started.set())
    wait_for(started)
    os.kill(old, signal.SIGKILL)
    th.join(5)
    err = box.get("error")
    assert isinstance(err, EngineCrashed) and isinstance(err, ModelError)
    assert "stopped unexpectedly (exit code -9)" in str(err) and "restart on the next run" in str(err)
    result = client.run(request(threshold=10))
    assert result.provenance.parameters["pid"] not in (old, os.getpid())


def test_close_stops_the_engine_and_a_later_run_restarts_it(client):
    client.start()
    pid = client.pid
    client.close()
    assert not client.alive and client.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert client.run(request()).provenance.parameters["pid"] != pid


class _Exits(EngineClient):
    child_main = staticmethod(fake_models.exit_at_start)


class _Fatal(EngineClient):
    child_main = staticmethod(fake_models.fatal_at_start)


class _Silent(EngineClient):
    child_main = staticmethod(fake_models.silent_at_start)


@pytest.mark.parametrize("cls, kwargs, message", [
    (_Exits, {}, r"the AI engine could not start \(exit code 3\)"),
    (_Fatal, {}, "the AI engine could not start: ImportError: no module named 'torch'"),
    (_Silent, {"start_timeout_s": 0.5}, "the AI engine did not start within 0 s"),
])
def test_an_engine_that_cannot_start_is_a_readable_model_error(models_dir, cls, kwargs, message):
    c = cls(**kwargs)
    with pytest.raises(ModelError, match=message):
        c.run(request())
    assert not c.alive
    c.close()


def test_a_gui_main_script_is_not_re_imported_in_the_engine_and_torch_stays_out(models_dir, tmp_path):
    script = tmp_path / "gui_main.py"
    script.write_text(textwrap.dedent("""
        import json, sys
        import numpy as np
        import viewer  # the GUI's entry module imports the viewer at the top
        from ai.api import InferenceRequest
        from radview_base.geometry import Geometry
        from ai.engine_process import EngineClient

        if __name__ == "__main__":
            req = InferenceRequest(array=np.zeros((4, 5, 6), np.int16), grid=Geometry((4, 5, 6), (1, 1, 1)),
                                   model_id="test-threshold", device="cpu")
            with EngineClient() as client:
                p = client.run(req).provenance.parameters
            print(json.dumps({"child_viewer": p["viewer_imported"], "child_qt": p["qt_imported"],
                              "parent_torch": "torch" in sys.modules}))
    """))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=tmp_path,
                         env=fake_models.subprocess_env(models_dir))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"child_viewer": False, "child_qt": False,
                                                                "parent_torch": False}
