"""AI → Add model folder…: a user's learned model is checked, remembered, listed and run from the real window."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

AI_TESTS = Path(__file__).resolve().parents[1] / "ai"
if str(AI_TESTS) not in sys.path:
    sys.path.insert(0, str(AI_TESTS))

from learned_models import threshold_net, write_model  # noqa: E402

from viewer.qt.model_folders import FOLDERS_KEY  # noqa: E402


@pytest.fixture
def window(new_window, demo_volume):
    w = new_window(size=(1400, 900))
    w.session.load_volume(demo_volume, preset="lung")
    yield w
    w.close()
    assert not w.ai.has_service or not w.ai.service.thread.isRunning()


def test_a_model_folder_is_added_remembered_and_run_from_the_window(qtbot, window, tmp_path, demo_volume):
    folder = write_model(tmp_path / "models", "user-thr", threshold_net(-300.0), "torchscript",
                         spacing=(6.0, 6.0, 6.0), patch=(16, 32, 32), labels={1: "dense"})
    broken = tmp_path / "not-a-model"
    broken.mkdir()
    assert window.ai.add_model_folder(str(broken)) is None
    assert "Not added" in window.notices.last_message and "not a model folder" in window.notices.last_message

    manifest = window.ai.add_model_folder(str(folder))
    assert manifest is not None and manifest.id == "user-thr"
    assert window.ai.settings.value(FOLDERS_KEY) in ([str(folder)], str(folder))
    dialog = window.ai.dialog
    assert dialog is not None and dialog.selected_model_id() == "user-thr"
    dialog.close()
    assert "user-thr" in window.ai.registry().ids()

    before = len(window.session.layers)
    assert manifest.contains_code  # TorchScript: the user is asked (here the question's seam answers Yes)
    asked = []
    window.ai.ask_code_permission = lambda m: asked.append(m.folder) or True
    submitted, submit = [], window.ai.service.submit
    window.ai.service.submit = lambda request, after=None: (submitted.append(request), submit(request, after))[1]
    job = window.ai.run_model("user-thr", "cpu")
    assert job is not None
    assert asked == [str(folder)] and submitted[0].allow_code_in == frozenset({str(folder)})
    qtbot.waitUntil(lambda: window.ai.current_job is None, timeout=120000)
    layers = window.session.layers[before:]
    assert layers, window.notices.last_message
    label_map = layers[0].label_map
    assert label_map.array.shape == demo_volume.array.shape and label_map.geometry == demo_volume.geometry
    dense = next(k for k, v in label_map.labels.items() if v == "dense")
    pred, truth = label_map.array == dense, demo_volume.array > -300
    dice = 2 * np.logical_and(pred, truth).sum() / (pred.sum() + truth.sum())
    assert dice > 0.9, dice
    assert "learned network (TorchScript)" in layers[0].meta["provenance"].method
