"""A killed training resumes from its last checkpoint: ``radview-cli ai train`` in a real child process, killed
with SIGKILL mid-run, then started again with the same data and options: the step count goes on from the
checkpoint, the loss history has no gap and no repeat, and the run keeps its id.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from training_cases import write_dataset  # noqa: E402

from ai.training.checkpoint import checkpoint_path, load_checkpoint  # noqa: E402
from ai.training.settings import TrainSettings  # noqa: E402
from ai.training.trainer import TrainingError, train  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
OPTIONS = ["--labels", "lung_left,lung_right", "--features", "4,8", "--patch", "16,24,24", "--spacing", "14,10,10",
           "--steps-per-epoch", "10", "--checkpoint-every", "3", "--threads", "1"]
SAME = dict(labels=("lung_left", "lung_right"), features=(4, 8), patch_size=(16, 24, 24),
            spacing_mm=(14.0, 10.0, 10.0), steps_per_epoch=10, checkpoint_every=3, threads=1)


def _checkpoint_step(out: Path) -> int:
    try:
        state = load_checkpoint(out)
    except ValueError:
        return -1
    return -1 if state is None else int(state["step"])


def test_a_killed_training_resumes_from_its_last_checkpoint(tmp_path):
    data = write_dataset(tmp_path / "data", [21, 22, 23])
    out = tmp_path / "model"
    log = tmp_path / "train.log"
    with open(log, "wb") as err:
        child = subprocess.Popen([sys.executable, "-m", "viewer.cli.main", "ai", "train", "--data", str(data),
                                  "--out", str(out), "--epochs", "1000", *OPTIONS], cwd=ROOT,
                                 stdout=subprocess.DEVNULL, stderr=err, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 45
        while _checkpoint_step(out) < 12 and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.05)
        assert child.poll() is None, log.read_text()
        assert _checkpoint_step(out) >= 12, "no checkpoint past step 12 in time"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL
    assert not (out / "model.toml").exists()  # killed before the end: no model folder yet
    state = load_checkpoint(out)
    killed_at, run_id = int(state["step"]), state["run_id"]
    assert killed_at >= 12 and (killed_at % 3 == 0 or killed_at % 10 == 0)

    with pytest.raises(TrainingError, match="holds a checkpoint of another training"):
        train(TrainSettings(data=str(data), out=str(out), epochs=3, **{**SAME, "seed": 1}))
    (checkpoint_path(out).parent / ".radview-tmp-0123456789ab-checkpoint.pt").write_bytes(b"half a checkpoint")
    end = (killed_at // 10 + 2) * 10
    outcome = train(TrainSettings(data=str(data), out=str(out), epochs=end // 10, resume="always", **SAME))
    assert outcome.resumed_from_step == killed_at and outcome.run_id == run_id
    assert outcome.steps == end
    assert [s for s, _ in outcome.history["loss"]] == list(range(1, end + 1))  # no gap, no repeat
    assert outcome.history["validation"][0]["step"] == 0  # the untrained figure from before the kill
    assert (out / "model.toml").is_file()
    assert [p.name for p in checkpoint_path(out).parent.iterdir()] == ["checkpoint.pt"]  # a killed write's temp


def test_resume_without_a_checkpoint_is_refused(tmp_path):
    data = write_dataset(tmp_path / "data", [21, 22])
    with pytest.raises(TrainingError, match="--resume: .* holds no training checkpoint"):
        train(TrainSettings(data=str(data), out=str(tmp_path / "none"), epochs=1, resume="always", **SAME))
