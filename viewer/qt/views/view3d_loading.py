"""Loading the 3D view's VTK part without the GUI thread waiting: the compiled modules imported in a worker, the
offscreen OpenGL probed by a child process, and both started once the GUI is idle.

VTK's compiled modules take about 250 ms to import; imported in a worker thread they hold the GIL in pieces of at
most ~35-50 ms (one module's initialisation each) instead of one 250 ms block on the GUI thread. Whether frames can
be drawn on a frame thread (an EGL context of its own) is asked of a child process, once per process: a broken
driver can crash the process that tries, and VTK holds the GIL while it tries (``SupportsOpenGL``: 40-150 ms).
"""
from __future__ import annotations

import os
import sys
import threading
import time

from PySide6.QtCore import QObject, QTimer

#: the modules the view's VTK part needs, imported in a worker the first time (see the module text)
VTK_MODULES = ("vtkmodules.vtkCommonCore", "vtkmodules.vtkCommonDataModel", "vtkmodules.vtkRenderingCore",
               "vtkmodules.vtkRenderingOpenGL2", "vtkmodules.vtkRenderingVolumeOpenGL2",
               "vtkmodules.vtkInteractionStyle", "vtkmodules.vtkInteractionWidgets", "vtkmodules.vtkFiltersCore",
               "vtkmodules.qt.QVTKRenderWindowInteractor", "viewer.render3d.scene", "viewer.render3d.input_window",
               "viewer.render3d.crop_box", "viewer.render3d.frame_thread", "viewer.render3d.mirror",
               "viewer.render3d.volume_prep", "viewer.render3d.label_surfaces", "viewer.render3d.level_of_detail",
               "viewer.qt.views.vtk_widget", "viewer.qt.views.frame_widget", "viewer.qt.views.view3d_frames",
               "viewer.qt.views.view3d_surfaces")
FRAMES_ENV = "RADVIEW_3D_FRAMES"  # "gui": draw on the GUI thread (see viewer/qt/views/view3d_frames.py)
_vtk_import_done = threading.Event()
#: whether frames can be drawn on a frame thread here: {"ok": "yes"} or {"error": why}, once probed
_offscreen: dict[str, str] = {}


def vtk_modules_loaded() -> bool:
    """Whether everything the view's VTK part needs is imported already (and the offscreen OpenGL probed)."""
    if _vtk_import_done.is_set():
        return True
    probed = bool(_offscreen) or os.environ.get(FRAMES_ENV, "") == "gui"
    return probed and all(name in sys.modules for name in VTK_MODULES)


def import_vtk_modules(*_args) -> None:
    """Import :data:`VTK_MODULES` and see whether an offscreen OpenGL context can be made (in a worker thread: the
    GUI keeps serving events meanwhile)."""
    import importlib

    import viewer.render3d.frame_thread  # noqa: F401  (no VTK at its top: the probe's thread imports nothing)

    probe = None
    try:
        if os.environ.get(FRAMES_ENV, "") != "gui" and not _offscreen:
            probe = threading.Thread(target=probe_offscreen, name="radview-3d-probe", daemon=True)
            probe.start()  # a child process answers while the modules load
        for name in VTK_MODULES:
            importlib.import_module(name)
    finally:
        if probe is not None:
            probe.join()
        _vtk_import_done.set()


def probe_offscreen() -> dict[str, str]:
    """Whether frames can be drawn on a frame thread here: {"ok": ...} or {"error": why} (probed once per process,
    by a child process: see :func:`viewer.render3d.frame_thread.probe_offscreen`)."""
    if not _offscreen:
        from viewer.render3d.frame_thread import probe_offscreen as probe

        try:
            probe()
            _offscreen["ok"] = "yes"
        except Exception as exc:  # noqa: BLE001 - no offscreen OpenGL: the views draw on the GUI thread
            _offscreen["error"] = f"{type(exc).__name__}: {exc}"
    return _offscreen


def frames_mode(asked: str = "auto") -> str:
    """ "thread" where frames can be drawn on a frame thread (unless ``RADVIEW_3D_FRAMES=gui`` or ``asked`` is
    "gui"), else "gui"."""
    asked = os.environ.get(FRAMES_ENV, asked)
    if asked == "gui":
        return "gui"
    return "gui" if "error" in probe_offscreen() else "thread"


def wait_for_import(timeout: float = 120.0) -> bool:
    """Wait for a worker's :func:`import_vtk_modules` to finish (for a caller that needs the VTK part now)."""
    return _vtk_import_done.wait(timeout)


class IdleStart(QObject):
    """Calls ``fn`` once, when the event loop has been idle for a moment (its timer's ticks come on time).

    Work started in a worker holds the GIL in pieces (an import: up to ~50 ms per compiled module); while the GUI
    is busy with a burst of its own (a layout change repaints every view), every hand-back of the GIL waits for such
    a piece, which stretches the burst. Started after it, the same work costs the GUI only its pieces.
    """

    def __init__(self, fn, parent: QObject | None = None, *, tick_ms: int = 20, quiet_ticks: int = 3,
                 min_ms: int = 100, max_ms: int = 2000):
        super().__init__(parent)
        self.fn = fn
        self.tick_ms, self.quiet_ticks, self.min_ms, self.max_ms = tick_ms, quiet_ticks, min_ms, max_ms
        self._t0 = self._last = time.perf_counter()
        self._quiet = 0
        self._timer = QTimer(self)
        self._timer.setInterval(tick_ms)
        self._timer.timeout.connect(self._tick)
        self._timer.start()

    def _tick(self) -> None:
        now = time.perf_counter()
        on_time = (now - self._last) * 1e3 < self.tick_ms * 1.5
        self._last = now
        self._quiet = self._quiet + 1 if on_time else 0
        waited = (now - self._t0) * 1e3
        if (waited >= self.min_ms and self._quiet >= self.quiet_ticks) or waited >= self.max_ms:
            self.cancel()
            self.fn()

    def cancel(self) -> None:
        self._timer.stop()
