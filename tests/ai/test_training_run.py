"""``viewer/logic/training_run.py``: AI → Train model…'s use case runs ``radview-cli ai train`` in a child process,
streams its epochs as points, and cancels by interrupting the child (whose checkpoint resumes the run).

Tiny phantoms and a tiny U-Net (as ``test_train_loop.py``), so a run takes seconds; no torch in this process.
"""
from __future__ import annotations

import threading

import pytest

pytest.importorskip("torch")  # the child trains

from training_cases import TINY_TRAIN_ARGS, process_gone, write_dataset  # noqa: E402

from ai.registry import Registry  # noqa: E402
from viewer.logic.training_run import TrainingRequest, parse_dice, start_training  # noqa: E402

TINY = TINY_TRAIN_ARGS
_gone = process_gone


def test_a_training_run_streams_epochs_and_writes_a_model_folder(tmp_path):
    data = write_dataset(tmp_path / "data", [11, 12, 13])
    out = tmp_path / "models" / "tiny-lungs"
    points, finished = [], []
    request = TrainingRequest(str(data), str(out), labels=("lung_left", "lung_right"), epochs=2, device="cpu",
                              extra=TINY + ("--steps-per-epoch", "5"))
    run = start_training(request, on_update=points.append, on_finished=finished.append)
    assert run.wait(120), "the training child did not finish"
    snap = run.snapshot()
    assert snap.state == "done", snap.log
    assert finished and finished[0].state == "done"
    assert [(p.step, p.epoch) for p in points] == [(0, 0), (5, 1), (10, 2)]
    assert points[0].loss is None and all(p.loss > 0 for p in points[1:])
    assert all(0.0 <= p.dice <= 1.0 and set(p.dice_by_label) == {"lung_left", "lung_right"} for p in points)
    assert snap.model_id == "tiny-lungs" and (out / "model.toml").exists()
    registry = Registry(extra_dirs=[str(out.parent)], builtin=False)
    assert "tiny-lungs" in registry.ids()


def test_cancel_interrupts_the_child_and_says_cancelled(tmp_path):
    data = write_dataset(tmp_path / "data", [11, 12, 13])
    out = tmp_path / "models" / "long"
    first = threading.Event()
    cancel = threading.Event()
    long_run = TINY + ("--steps-per-epoch", "3", "--patience", "100000")  # never stops early: cancel ends it
    request = TrainingRequest(str(data), str(out), minutes=10, device="cpu", extra=long_run)
    run = start_training(request, on_update=lambda p: p.step > 0 and first.set(), cancel_event=cancel)
    assert first.wait(90), run.snapshot().log
    cancel.set()
    assert run.wait(30)
    snap = run.snapshot()
    assert snap.state == "cancelled" and "cancelled" in snap.message
    assert _gone(run.pid)
    assert (out / "training").is_dir()  # the checkpoint a later run resumes from
    assert not (out / "model.toml").exists()
    again = start_training(TrainingRequest(str(data), str(out), minutes=0.05, device="cpu", extra=long_run))
    assert again.wait(90)
    snap = again.snapshot()
    assert snap.state == "done" and any(line.startswith("resuming run ") for line in snap.log), snap.log
    assert (out / "model.toml").exists()


def test_bad_requests_and_a_failed_child():
    with pytest.raises(ValueError):
        TrainingRequest("", "out")
    with pytest.raises(ValueError):
        TrainingRequest("d", "o", minutes=1, epochs=1)
    with pytest.raises(ValueError):
        TrainingRequest("d", "o", device="tpu")
    argv = TrainingRequest("d", "o", labels=("a", "b"), minutes=2.5, device="cpu", restart=True).argv()
    assert argv[1:] == ["-m", "viewer.cli.main", "ai", "train", "--data", "d", "--out", "o", "--device", "cpu",
                        "--labels", "a,b", "--minutes", "2.5", "--restart"]
    assert parse_dice("lung_left 0.912, lung_right 0.871, mean 0.891") == {
        "lung_left": 0.912, "lung_right": 0.871, "mean": 0.891}


def test_a_dataset_the_trainer_refuses_fails_with_its_reason(tmp_path):
    (tmp_path / "empty").mkdir()
    run = start_training(TrainingRequest(str(tmp_path / "empty"), str(tmp_path / "out"), epochs=1, device="cpu"))
    assert run.wait(60)
    snap = run.snapshot()
    assert snap.state == "failed" and snap.message.startswith("failed: ") and len(snap.message) > 10
