"""Dependency rules: the import graph (imports inside functions included) has no cycle; the viewer starts without
torch and without VTK until the 3D view opens; the rooms below ``viewer.qt`` load no GUI library; ``ai`` never
imports ``viewer``; torch is imported only by the AI runners and the engine. The room-by-room arrows themselves
are import-linter contracts in ``pyproject.toml`` (``lint-imports``, run by ``scripts/test.sh``)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import import_graph

ROOT = Path(__file__).resolve().parents[2]
GUI_LIBRARIES = ("PySide6", "pyqtgraph", "vtk", "vtkmodules")


def _modules_after(code: str, **env_extra: str) -> set[str]:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT), **env_extra)
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=180)
    assert out.returncode == 0, out.stderr
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def _loaded(mods: set[str], *prefixes: str) -> list[str]:
    return sorted(m for m in mods if m in prefixes or m.startswith(tuple(p + "." for p in prefixes)))


def test_the_import_graph_has_no_cycle_counting_imports_inside_functions():
    edges = import_graph.graph()
    assert len(edges) > 100, "the graph reader found too few modules to be reading the project"
    assert sum(len(deps) for deps in edges.values()) > 300
    assert import_graph.cycles(edges) == []


def test_the_cycle_finder_finds_a_cycle_through_a_function_level_import(tmp_path):
    """The check above can fail: a module importing another inside a function closes a circle it reports."""
    for package in import_graph.PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "viewer" / "a.py").write_text("from viewer import b\n")
    (tmp_path / "viewer" / "b.py").write_text("def f():\n    from viewer.a import x\n")
    (tmp_path / "viewer" / "c.py").write_text("import viewer.a\n")
    assert import_graph.cycles(import_graph.graph(tmp_path)) == [["viewer.a", "viewer.b"]]


def test_starting_the_viewer_imports_no_torch_no_ai_runner_and_no_vtk_until_the_3d_view_opens():
    mods = _modules_after(
        "from viewer.qt.application import create_app\n"
        "app = create_app()\n"
        "from viewer.qt.main_window import MainWindow\n"
        "from viewer.demo import ensure_demo\n"
        "import sys, time\n"
        "w = MainWindow(); w.show(); w.open_demo()\n"
        "t0 = time.time()\n"
        "while w.session.volume is None and time.time() - t0 < 90: app.processEvents()\n"
        "w.load_segmentation(str(ensure_demo().labels_nii))\n"
        "while not w.session.layers and time.time() - t0 < 90: app.processEvents()\n"
        "assert w.session.volume is not None and w.session.layers, 'the demo did not open'\n"
        "leaked = sorted(m for m in sys.modules if m.split('.')[0] in ('vtk', 'vtkmodules', 'torch'))\n"
        "assert not leaked, f'imported before the 3D view opened: {leaked[:5]}'\n"
        "w.set_layout('2x2')\n"
        "app.processEvents()\n"
        "w.close()\n",
        VTK_DEFAULT_OPENGL_WINDOW="vtkOSOpenGLRenderWindow")
    assert "PySide6.QtWidgets" in mods and "viewer.qt.views.slice_view" in mods  # the reading window really ran
    assert "torch" not in mods
    assert not any(m.startswith("ai.runners") for m in mods)
    assert "vtkmodules" in mods, "opening the 2x2 layout should have loaded VTK for the 3D view"


def test_the_rooms_below_qt_load_neither_gui_libraries_nor_torch():
    """Every module of radview_base, io, core, store, logic, export, demo, the CLI and ai (its runners and the
    training loop aside: the training's dataset and settings stay in), imported in one fresh interpreter: no Qt,
    pyqtgraph, VTK or torch comes with them."""
    low = ("radview_base", "viewer.io", "viewer.core", "viewer.store", "viewer.logic", "viewer.export",
           "viewer.demo", "viewer.cli", "ai")
    names = sorted(m for m in import_graph.modules()
                   if m.startswith(tuple(p + "." for p in low)) or m in low)
    torch_free_training = ("ai.training", "ai.training.dataset", "ai.training.settings", "ai.training.split")
    names = [m for m in names if not m.startswith("ai.runners")
             and not (m.startswith("ai.training") and m not in torch_free_training)]
    assert len(names) > 60
    mods = _modules_after("import importlib\nfor m in %r: importlib.import_module(m)" % names)
    assert set(names) <= mods
    assert _loaded(mods, *GUI_LIBRARIES, "torch") == []


def test_ai_imports_no_viewer_module():
    ai_modules = sorted(m for m in import_graph.modules() if m == "ai" or m.startswith("ai."))
    mods = _modules_after("import importlib\nfor m in %r: importlib.import_module(m)" % ai_modules)
    assert set(ai_modules) <= mods, "every ai module, runners included, was imported"
    assert _loaded(mods, "viewer") == []
    for name, path in import_graph.modules().items():  # imports inside functions too
        if name.split(".")[0] == "ai":
            bad = [(t, line) for t, line in import_graph.imported_names(path, name) if t.split(".")[0] == "viewer"]
            assert bad == [], f"{name} imports viewer: {bad}"


def test_torch_is_imported_only_by_the_ai_runners_and_the_engine():
    allowed = ("ai.runners", "ai.engine", "ai.engine_process", "ai.training")
    importers = set()
    for name, path in import_graph.modules().items():
        if any(t.split(".")[0] == "torch" for t, _line in import_graph.imported_names(path, name)):
            importers.add(name)
    assert importers, "no module imports torch: the check reads nothing"
    assert sorted(m for m in importers if not (m in allowed or m.startswith(("ai.runners.", "ai.training.")))) == []
