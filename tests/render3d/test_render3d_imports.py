"""viewer.render3d builds VTK scenes without Qt (ARCHITECTURE.md: render3d never imports Qt or torch)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_render3d_imports_neither_qt_nor_torch():
    code = ("import viewer.render3d.scene, viewer.render3d.offscreen, viewer.render3d.label_surfaces\n"
            "import viewer.render3d.transfer_presets, viewer.render3d.image_data, viewer.render3d.orientation_marker\n"
            "import sys, json; print(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.returncode == 0, out.stderr
    mods = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert "vtkmodules.vtkRenderingVolume" in mods
    assert not any(m.startswith(("PySide6", "pyqtgraph", "torch", "vtkmodules.qt")) for m in mods)
