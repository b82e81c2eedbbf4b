"""Run AI from the real main window, through the real engine child process.

Fake numpy models (``ai_fake_models.py``: manifests on ``RADVIEW_MODELS_DIR``, runners as entry points) test the
GUI machinery; the built-in classical CT models run when their code is installed. One engine
child serves the module (``engine``); the responsiveness test starts its own, cold.
"""
from __future__ import annotations

import importlib.util
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QSettings, Qt
from stall_probe import STALL_BOUND_S, StallProbe

from viewer.core.ai_bridge import NOT_REVIEWED
from viewer.qt.controllers.ai_service import AiService
from viewer.qt.main_window import MainWindow

HERE = Path(__file__).resolve().parent
RUN_TIMEOUT_MS = 120000


# --- fixtures ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fake_models_dir(tmp_path_factory):
    """The fake models' manifests on RADVIEW_MODELS_DIR (read by the GUI's and the engine's registries)."""
    from ai_fake_models import write_manifests

    from ai.registry import ENV_VAR, default_registry

    folder = write_manifests(tmp_path_factory.mktemp("models"))
    old = os.environ.get(ENV_VAR)
    os.environ[ENV_VAR] = str(folder)
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))  # the engine child (spawned) imports ai_fake_models from here
    default_registry.cache_clear()
    yield folder
    if old is None:
        os.environ.pop(ENV_VAR, None)
    else:
        os.environ[ENV_VAR] = old
    default_registry.cache_clear()


@pytest.fixture(scope="module")
def engine(fake_models_dir):
    """One warm engine child process for the module's tests (they share it one after another)."""
    from ai.engine_process import EngineClient

    client = EngineClient()
    client.start()
    client.warm_up()
    yield client
    client.close(timeout=3)


def _make_window(qtbot, tmp_path, volume):
    w = MainWindow(QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat))
    qtbot.addWidget(w)
    w.resize(1500, 900)
    w.show()
    if volume is not None:
        w.session.load_volume(volume, preset="lung")
    return w


@pytest.fixture
def window(qtbot, tmp_path, demo_volume, fake_models_dir):
    w = _make_window(qtbot, tmp_path, demo_volume)
    yield w
    w.close()  # shuts the AI service down (its thread must be gone: the autouse fixture checks)
    assert not w.ai.has_service or not w.ai.service.thread.isRunning()


@pytest.fixture
def warm(window, engine):
    """The window's AI service on the module's warm engine (not closed with the window)."""
    window.ai.service = AiService(window.ai, client=engine, own_client=False)
    return window


def ai_layers(window, kind=None):
    from viewer.core.layers import LabelLayer, MarkerLayer

    types = {"labels": LabelLayer, "markers": MarkerLayer}
    return [layer for layer in window.session.layers if layer.meta.get("ai")
            and (kind is None or isinstance(layer, types[kind]))]


def record_statuses(window) -> list[str]:
    seen: list[str] = []
    original = window.ai._set_status
    window.ai._set_status = lambda text: (seen.append(text), original(text))
    return seen


def wait_idle(qtbot, window, timeout=RUN_TIMEOUT_MS):
    qtbot.waitUntil(lambda: window.ai.current_job is None and not window.ai.service.is_busy(), timeout=timeout)


# --- tests -----------------------------------------------------------------------------------------------------
def test_run_ai_from_the_menu_cold_engine_gui_never_stalls(window, qtbot):
    """Ctrl+R → dialog → Run: the engine starts cold (child process, torch import), the model runs; the event loop
    never stalls (STALL_BOUND_S; the 50 ms target: bench/ai.py), and scrolling and window/level work while the job
    runs."""
    from PySide6.QtWidgets import QDialogButtonBox

    axial = window.layout_widget.views["axial"]
    qtbot.waitExposed(window)
    torch_before = "torch" in sys.modules  # (other test folders may have imported it into this process)
    probe = StallProbe().start()
    t0 = time.perf_counter()
    assert window.ai.run_action.isEnabled() and window.ai.run_action.shortcut().toString() == "Ctrl+R"
    window.ai.run_action.trigger()  # what Ctrl+R and the toolbar button do
    dialog = window.ai.dialog
    assert dialog is not None and dialog.isVisible()
    assert dialog.select_model("fake-lungs") and dialog.select_device("cpu")
    qtbot.mouseClick(dialog.buttons.button(QDialogButtonBox.Ok), Qt.LeftButton)
    job = window.ai.current_job
    assert job is not None and window.tasks.progress_bar.isVisible() and window.tasks.cancel_button.isVisible()

    # while the job runs (engine cold start included): scroll and change the window
    qtbot.waitUntil(lambda: "lungs: components" in window.tasks.progress_label.text(), timeout=RUN_TIMEOUT_MS)
    axial.setFocus()
    k0, width0 = axial.k, window.session.width
    qtbot.keyClick(axial, Qt.Key_Down)
    qtbot.keyClick(axial, Qt.Key_Down)
    qtbot.keyClick(axial, Qt.Key_1)  # soft tissue 400/40
    axial.drag_window(40, 0)  # the left-drag handler
    assert window.ai.current_job == job, "the run ended before the interaction could be checked"
    assert abs(axial.k - k0) == 2  # two images on (their direction: tests/qt/test_image_numbers.py)
    assert window.session.width != width0 and window.session.preset_name == ""

    qtbot.waitUntil(lambda: bool(ai_layers(window, "labels")), timeout=RUN_TIMEOUT_MS)
    elapsed = time.perf_counter() - t0
    qtbot.wait(300)  # the layer's overlays, legend and findings panel are drawn
    stall = probe.stop()
    worst = ", ".join(f"{g * 1000:.0f} ms at {(t - t0) * 1000:.0f} ms" for g, t in sorted(probe.gaps)[-3:][::-1])
    print(f"\ncold run from the menu: {elapsed:.1f} s, {probe.ticks} probe ticks, longest GUI stalls: {worst}")
    assert stall < STALL_BOUND_S, f"the GUI event loop stalled {stall * 1000:.0f} ms"

    assert torch_before or "torch" not in sys.modules, "the GUI process imported torch"
    layer = ai_layers(window, "labels")[0]
    assert layer.name == "AI: Fake lungs"
    assert {layer.label_name(2), layer.label_name(3)} == {"lung_left", "lung_right"}
    assert layer.volumes_ml[2] > 100 and layer.volumes_ml[3] > 100
    prov = layer.meta["provenance"]
    assert prov.model_id == "fake-lungs" and prov.model_version == "0.1" and prov.device.lower().startswith("cpu")
    # provenance in the GUI: the legend's tooltip
    block = window.layer_panel.blocks()[0]
    tip = block.legend.topLevelItem(0).toolTip(0)
    for text in ("fake-lungs", "0.1", "classical image analysis", "Run time", "duration_s", "Device"):
        assert text in tip and text in block.toolTip()
    # the engine's messages reach the status bar; the progress bar is gone
    assert "ran on the CPU" in window.notices.status_label.text()
    assert not window.tasks.progress_bar.isVisible() and not window.tasks.cancel_button.isVisible()
    # the overlay is drawn in the views
    assert axial._label_items and next(iter(axial._label_items.values())).isVisible()
    # the dialog remembered the choice
    window.ai.run_action.trigger()
    again = window.ai.dialog
    assert again.selected_model_id() == "fake-lungs" and again.selected_device() == "cpu"
    again.reject()


def test_dialog_disables_models_of_another_modality(window, warm, qtbot):
    from PySide6.QtWidgets import QApplication

    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=5000)
    window.layout_widget.views["axial"].setFocus()
    qtbot.keyClick(window.layout_widget.views["axial"], Qt.Key_R, Qt.ControlModifier)  # Ctrl+R opens the dialog
    qtbot.waitUntil(lambda: window.ai.dialog is not None and window.ai.dialog.isVisible(), timeout=2000)
    dialog = window.ai.dialog
    item = dialog.items["fake-mr"]
    assert not item.flags() & Qt.ItemIsEnabled
    assert "needs MR" in item.text(4) and "this series is CT" in item.toolTip(0)
    assert not dialog.select_model("fake-mr")
    lungs = dialog.items["fake-lungs"]
    assert lungs.flags() & Qt.ItemIsEnabled and lungs.text(3) == "classical image analysis, not a learned network"
    assert [dialog.device_box.itemData(i) for i in range(dialog.device_box.count())] == ["auto", "cpu", "cuda"]
    assert dialog.device_box.itemText(0) == "Automatic (GPU if available)"
    dialog.reject()
    # no volume: Run AI is disabled
    window.session.clear()
    assert not window.ai.run_action.isEnabled()


def test_findings_list_detections_and_a_click_moves_the_cursor(warm, qtbot):
    window = warm
    job = window.ai.run_model("fake-nodules", "cpu")
    assert job is not None
    qtbot.waitUntil(lambda: bool(ai_layers(window, "markers")), timeout=RUN_TIMEOUT_MS)
    markers = ai_layers(window, "markers")[0]
    labels = ai_layers(window, "labels")[0]
    dets = markers.meta["detections"]
    assert len(markers.markers) == len(dets) == 3
    assert markers.markers[0].text == "N1 12 mm solid" and markers.markers[0].score == pytest.approx(0.93)
    assert labels.label_name(8) == "nodule" and labels.volumes_ml[8] > 0
    panel = window.ai.findings
    assert panel.row_count() == 3 and panel.table.isVisible() and not panel.empty_label.isVisible()
    assert window.ai.findings_dock.isVisible()
    header = panel.provenance_label.text()
    assert "Fake nodules" in header and "0.1" in header and "classical image analysis" in header
    assert panel.review_label.text() == NOT_REVIEWED and panel.review_label.isVisible()
    assert "duration_s" in panel.provenance_label.toolTip() and "fake-nodules" in panel.provenance_label.toolTip()
    row_text = [panel.table.item(0, c).text() for c in range(panel.table.columnCount())]
    assert row_text[:3] == ["N1", "solid", "12.0"] and row_text[5] == "0.93" and row_text[6] == "right lung"

    # sort by diameter (header click), then click the first row: the smallest nodule
    header_view = panel.table.horizontalHeader()
    qtbot.mouseClick(header_view.viewport(), Qt.LeftButton,
                     pos=header_view.rect().topLeft() + _section_centre(header_view, 2))
    diameters = [float(panel.table.item(r, 2).text()) for r in range(3)]
    assert diameters == sorted(diameters)
    target = min(dets, key=lambda d: d.diameter_mm)
    rect = panel.table.visualItemRect(panel.table.item(0, 1))
    qtbot.mouseClick(panel.table.viewport(), Qt.LeftButton, pos=rect.center())
    assert np.allclose(window.session.cursor_lps, target.center_lps, atol=1e-6)
    for name, view in window.layout_widget.views.items():
        assert view.k == view.plane.slice_of(target.center_lps), name
    # the marker is drawn on the axial slice through it (a circle and its text)
    axial = window.layout_widget.views["axial"]
    texts = [i.textItem.toPlainText() for i in axial._marker_items if hasattr(i, "textItem")]
    assert "N2 7 mm subsolid 0.61" in texts


def _section_centre(header, section):
    from PySide6.QtCore import QPoint

    x = header.sectionViewportPosition(section) + header.sectionSize(section) // 2
    return QPoint(x, header.height() // 2)


def test_cancel_returns_control_within_a_second(warm, qtbot):
    window = warm
    job = window.ai.run_model("fake-slow", "cpu")
    qtbot.waitUntil(lambda: "slow: step" in window.tasks.progress_label.text(), timeout=RUN_TIMEOUT_MS)
    cancelled = []
    window.ai.service.cancelled.connect(lambda j: cancelled.append((j, time.perf_counter())))
    t0 = time.perf_counter()
    qtbot.mouseClick(window.tasks.cancel_button, Qt.LeftButton)
    assert not window.tasks.progress_bar.isVisible() and not window.tasks.cancel_button.isVisible()
    qtbot.waitUntil(lambda: bool(cancelled), timeout=5000)
    latency = cancelled[0][1] - t0
    print(f"\ncancel latency (click to cancelled signal): {latency * 1000:.0f} ms")
    assert cancelled[0][0] == job and latency < 1.0
    qtbot.waitUntil(lambda: "cancelled" in window.notices.status_label.text(), timeout=1000)
    assert not ai_layers(window) and window.ai.current_job is None
    assert not window.ai.service.is_busy()
    # the engine is still usable afterwards
    window.ai.run_model("fake-lungs", "cpu", {"duration_s": 0.1})
    qtbot.waitUntil(lambda: bool(ai_layers(window, "labels")), timeout=RUN_TIMEOUT_MS)


def test_a_failing_model_shows_a_readable_error_and_the_viewer_stays_usable(warm, qtbot):
    window = warm
    window.ai.run_model("fake-failing", "cpu")
    qtbot.waitUntil(lambda: "broke on purpose" in window.notices.last_message, timeout=RUN_TIMEOUT_MS)
    assert window.notices.last_message.startswith("Fake failing failed: ")
    assert "the fake model broke on purpose (phantom exploded)" in window.notices.last_message
    box = window.notices.message_box
    assert box is not None and box.isVisible() and not box.isModal()
    assert not window.tasks.progress_bar.isVisible() and not ai_layers(window)
    axial = window.layout_widget.views["axial"]
    k0 = axial.k
    axial.setFocus()
    qtbot.keyClick(axial, Qt.Key_Up)
    assert abs(axial.k - k0) == 1
    window.ai.run_model("fake-lungs", "cpu", {"duration_s": 0.1})  # a second, good run succeeds
    qtbot.waitUntil(lambda: bool(ai_layers(window, "labels")), timeout=RUN_TIMEOUT_MS)
    assert ai_layers(window, "labels")[0].name == "AI: Fake lungs"


SCRIPTED_TOML = """\
id = "fake-scripted"
name = "Fake scripted"
version = "0.1"
modality = "CT"
runner = "qtfake-FakeLungs"

[labels]
2 = "lung_left"
3 = "lung_right"

[input]
patch_size = [16, 32, 32]

[device]
supports = ["cpu"]

[network]
format = "torchscript"
file = "model.pt"
"""


def test_a_torchscript_model_runs_only_where_the_user_allowed_its_folder(warm, qtbot, tmp_path, monkeypatch):
    """A model that contains code (TorchScript) asks once per folder and session (a Yes/No question; here its seam
    ``ask_code_permission`` answers): No runs nothing; Yes runs it with the folder in the request's allow_code_in,
    which the real engine checks (the fake runner ignores the weights)."""
    window = warm
    folder = tmp_path / "scripted"
    folder.mkdir()
    (folder / "model.pt").write_bytes(b"never read by the fake runner")
    (folder / "model.toml").write_text(SCRIPTED_TOML, encoding="utf-8")
    manifest = window.ai.add_model_folder(str(folder))
    assert manifest is not None and manifest.contains_code and manifest.folder == str(folder)
    if window.ai.dialog is not None:
        window.ai.dialog.close()
    asked, answer = [], [False]
    monkeypatch.setattr(window.ai, "ask_code_permission", lambda m: (asked.append(m.folder), answer[0])[1])
    submitted, submit = [], window.ai.service.submit
    monkeypatch.setattr(window.ai.service, "submit", lambda request, after=None: (submitted.append(request),
                                                                                 submit(request, after))[1])

    assert window.ai.run_model("fake-scripted", "cpu", {"duration_s": 0.1}) is None  # the user said No
    assert window.ai.run_model("fake-scripted", "cpu", {"duration_s": 0.1}) is None  # remembered: not asked again
    assert asked == [str(folder)] and submitted == [] and window.ai.current_job is None
    assert "was not run" in window.ai.last_status and "contains code (TorchScript)" in window.ai.last_status

    window.ai.code_allowed.clear()  # a new session
    answer[0] = True
    assert window.ai.run_model("fake-scripted", "cpu", {"duration_s": 0.1}) is not None
    assert asked == [str(folder)] * 2 and submitted[-1].allow_code_in == frozenset({str(folder)})
    wait_idle(qtbot, window)
    assert ai_layers(window, "labels"), window.ai.last_status
    assert window.ai.run_model("fake-scripted", "cpu", {"duration_s": 0.1}) is not None  # allowed: not asked again
    assert len(asked) == 2 and submitted[-1].allow_code_in == frozenset({str(folder)})
    wait_idle(qtbot, window)

    # a model without code never asks and allows nothing
    assert window.ai.run_model("fake-lungs", "cpu", {"duration_s": 0.1}) is not None
    assert len(asked) == 2 and submitted[-1].allow_code_in == frozenset()
    wait_idle(qtbot, window)


def test_a_newer_run_supersedes_the_running_one(warm, qtbot):
    window = warm
    seen = record_statuses(window)
    a = window.ai.run_model("fake-lungs", "cpu", {"duration_s": 3.0})
    qtbot.waitUntil(lambda: "lungs: components" in window.tasks.progress_label.text(), timeout=RUN_TIMEOUT_MS)
    b = window.ai.run_model("fake-nodules", "cpu")
    assert window.ai.current_job == b != a
    wait_idle(qtbot, window)
    assert [layer.name for layer in ai_layers(window)] == ["AI: Fake nodules", "AI: Fake nodules findings"]
    assert any("Fake lungs" in s and "newer AI run" in s for s in seen)


def test_a_result_that_arrives_after_a_newer_run_started_is_dropped(warm, qtbot):
    """Run A finishes while the GUI is busy; run B starts before A's result is handled: A's result is dropped."""
    window = warm
    seen = record_statuses(window)
    service = window.ai.service
    a = window.ai.run_model("fake-lungs", "cpu", {"duration_s": 0.1})
    deadline = time.monotonic() + 60
    while not (a in service._cancelled or (not service.is_busy() and a not in service._pending)):
        time.sleep(0.01)  # the GUI thread is blocked: A's result waits in the event queue
        assert time.monotonic() < deadline
    time.sleep(0.2)
    b = window.ai.run_model("fake-nodules", "cpu")
    wait_idle(qtbot, window)
    assert window.ai.current_job is None and b not in window.ai.jobs
    assert [layer.name for layer in ai_layers(window)] == ["AI: Fake nodules", "AI: Fake nodules findings"]
    assert "Fake lungs: result dropped (a newer AI run was started)" in seen


def test_opening_another_series_drops_the_running_job(warm, qtbot, demo_volume):
    from radview_base.geometry import Geometry
    from viewer.io.volume import Volume

    window = warm
    seen = record_statuses(window)
    window.ai.run_model("fake-lungs", "cpu", {"duration_s": 3.0})
    qtbot.waitUntil(lambda: "lungs: components" in window.tasks.progress_label.text(), timeout=RUN_TIMEOUT_MS)
    other = Volume(np.full((20, 64, 64), -800, np.int16), Geometry((20, 64, 64), (2.0, 1.0, 1.0), (0, 0, 0)),
                   meta={"modality": "CT", "series_uid": "1.2.3", "description": "other"})
    window.session.load_volume(other)
    assert not window.tasks.progress_bar.isVisible()
    wait_idle(qtbot, window)
    qtbot.wait(100)
    assert window.session.volume is other and not ai_layers(window)
    assert any("another series was opened" in s for s in seen)


def test_shutdown_while_running_leaves_no_thread(window, engine, qtbot):
    window.ai.service = AiService(window.ai, client=engine, own_client=False)
    window.ai.run_model("fake-slow", "cpu")
    qtbot.waitUntil(lambda: "slow: step" in window.tasks.progress_label.text(), timeout=RUN_TIMEOUT_MS)
    t0 = time.perf_counter()
    window.close()
    assert time.perf_counter() - t0 < 3
    assert not window.ai.service.thread.isRunning()


def test_closing_while_the_engine_starts_neither_hangs_nor_leaves_a_thread(window, qtbot):
    window.ai.open_dialog().reject()  # the engine starts (cold) in the background
    qtbot.waitUntil(lambda: window.ai.has_service and window.ai.service.worker.client is not None, timeout=5000)
    t0 = time.perf_counter()
    window.close()
    print(f"\nclosing during the engine's cold start took {(time.perf_counter() - t0) * 1000:.0f} ms")
    assert time.perf_counter() - t0 < 5
    assert not window.ai.service.thread.isRunning() and window.ai.service.worker.client is None


# --- the built-in classical CT models -----------------------------------------------------------------------------
def _need_builtin_models():
    """Skip without the built-in CT models (found, not imported: they import torch, which this process never does)."""
    if importlib.util.find_spec("ai.runners.ct_models") is None:
        pytest.skip("the built-in CT models (ai.runners.ct_models) are not installed")


def test_builtin_ct_lungs_on_the_demo(warm, qtbot):
    _need_builtin_models()
    window = warm
    probe = StallProbe().start()
    t0 = time.perf_counter()
    assert window.ai.run_model("ct-lungs", "auto") is not None
    qtbot.waitUntil(lambda: bool(ai_layers(window, "labels")), timeout=300000)
    qtbot.wait(200)
    stall = probe.stop()
    print(f"\nct-lungs on the demo: {time.perf_counter() - t0:.1f} s, longest GUI stall {stall * 1000:.1f} ms")
    layer = ai_layers(window, "labels")[0]
    assert layer.name == "AI: CT lungs"
    names = {layer.label_name(k): v for k, v in layer.volumes_ml.items()}
    assert names.get("lung_left", 0) > 300 and names.get("lung_right", 0) > 300
    assert "ct-lungs" in window.layer_panel.blocks()[0].toolTip()
    assert stall < STALL_BOUND_S, f"the GUI event loop stalled {stall * 1000:.0f} ms"


def test_builtin_nodule_candidates_on_the_demo(warm, qtbot, demo_paths):
    _need_builtin_models()
    import json

    window = warm
    window.ai.run_model("ct-lung-nodules", "auto")
    qtbot.waitUntil(lambda: window.ai.current_job is None, timeout=300000)
    markers = ai_layers(window, "markers")
    assert markers, window.notices.status_label.text()
    panel = window.ai.findings
    assert panel.row_count() == len(markers[0].markers) >= 1
    truth = [n["center_lps_mm"] for n in json.loads(Path(demo_paths.nodules_json).read_text())]
    panel.jump_to_row(0)
    centre = panel.centre_of_row(0)
    assert np.allclose(window.session.cursor_lps, centre, atol=1.0)
    assert min(np.linalg.norm(np.subtract(centre, t)) for t in truth) < 10.0
