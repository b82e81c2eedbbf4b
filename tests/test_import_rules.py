"""Dependency rules, proven in fresh interpreters: the viewer starts without torch; core has no Qt; ai has no viewer."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _modules_after(code: str) -> set[str]:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_starting_the_viewer_imports_no_torch_and_no_ai_runner():
    mods = _modules_after(
        "from viewer.qt.application import create_app\n"
        "app = create_app()\n"
        "from viewer.qt.main_window import MainWindow\n"
        "from viewer.demo import ensure_demo\n"
        "import time\n"
        "w = MainWindow(); w.show(); w.open_demo()\n"
        "t0 = time.time()\n"
        "while (w.session.volume is None or w.tasks._running) and time.time() - t0 < 60: app.processEvents()\n"
        "w.load_segmentation(str(ensure_demo().labels_nii))\n"
        "while not w.session.layers and time.time() - t0 < 60: app.processEvents()\n"
        "assert w.session.volume is not None and w.session.layers, 'the demo did not open'\n"
        "w.close()\n")
    assert "PySide6.QtWidgets" in mods and "viewer.qt.views.slice_view" in mods  # the reading window really ran
    assert "torch" not in mods
    assert not any(m.startswith("ai.runners") for m in mods)


def test_core_imports_neither_qt_nor_torch():
    mods = _modules_after(
        "import viewer.io.dicom_index, viewer.io.series_loader, viewer.io.image_io, viewer.demo, viewer.cli.main\n"
        "import viewer.core.session, viewer.core.slicing, viewer.core.layers, viewer.core.window_presets\n"
        "import viewer.io.thumbnail, radview_base.label_table")
    assert not any(m.startswith(("PySide6", "pyqtgraph", "torch", "vtk")) for m in mods)


def test_ai_does_not_import_viewer():
    mods = _modules_after("import ai")
    assert not any(m == "viewer" or m.startswith("viewer.") for m in mods)
