"""Render tests need a working OpenGL: probed once in a subprocess (a broken driver may abort the process).

Works under ``xvfb-run`` and with no X at all (VTK falls back to EGL). Tests that render take the
``can_render`` fixture and are skipped, with the probe's reason, where nothing can be drawn.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

_PROBE = r"""
import numpy as np
from vtkmodules.vtkFiltersSources import vtkSphereSource
from vtkmodules.vtkRenderingCore import (vtkActor, vtkPolyDataMapper, vtkRenderer, vtkRenderWindow,
                                         vtkWindowToImageFilter)
import vtkmodules.vtkRenderingOpenGL2
from vtkmodules.util import numpy_support
s = vtkSphereSource(); m = vtkPolyDataMapper(); m.SetInputConnection(s.GetOutputPort())
a = vtkActor(); a.SetMapper(m); r = vtkRenderer(); r.AddActor(a)
w = vtkRenderWindow(); w.SetOffScreenRendering(1); w.SetSize(32, 32); w.AddRenderer(r); w.Render()
f = vtkWindowToImageFilter(); f.SetInput(w); f.ReadFrontBufferOff(); f.Update()
px = numpy_support.vtk_to_numpy(f.GetOutput().GetPointData().GetScalars())
print("PROBE", int(px.max()), type(w).__name__)
"""


@pytest.fixture(scope="session")
def can_render() -> str:
    """The render window class VTK uses here; skips the test when offscreen rendering does not work."""
    try:
        out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120,
                             cwd=ROOT, env=dict(os.environ))
    except subprocess.TimeoutExpired:
        pytest.skip("VTK offscreen rendering probe timed out (no usable OpenGL: EGL or X)")
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("PROBE")]
    if out.returncode != 0 or not lines:
        tail = (out.stderr or out.stdout).strip().splitlines()[-3:]
        pytest.skip(f"VTK cannot render offscreen here (rc {out.returncode}): {' | '.join(tail)}")
    _, peak, window = lines[-1].split()
    if int(peak) == 0:
        pytest.skip(f"VTK offscreen rendering ({window}) draws only black: no usable OpenGL")
    return window
