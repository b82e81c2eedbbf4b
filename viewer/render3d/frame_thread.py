"""The frame thread: draws a 3D view's frames in an offscreen OpenGL context of its own, off the GUI thread.

On a software OpenGL (Mesa llvmpipe) a full-quality volume frame of the demo CT takes 1-3 s, an interactive one
a few hundred ms, and 4 million surface triangles most of a second: too long for the GUI thread, where every such
frame froze the window. Here the GUI thread only takes a :class:`~viewer.render3d.frame_spec.FrameSpec` snapshot
and :meth:`FrameThread.submit` s it; this thread draws it (VTK releases the GIL while it draws, so the GUI keeps
serving events) and hands the pixels back through ``on_frame`` (called on this thread: the Qt side forwards it
to the GUI thread), and the view shows them as its background (:mod:`viewer.render3d.backdrop`).

* The newest spec wins: specs submitted while a frame is drawn replace each other; the next frame draws the
  last one. A frame already being drawn is finished (OpenGL can't stop a draw half-way); the GUI thread drops its
  pixels when they are stale (each spec carries a job id).
* :meth:`FrameThread.render_sync` draws one spec before any queued one and waits for it (for an explicit
  capture: an export, a test).
* :meth:`FrameThread.close` sets a ``threading.Event`` and joins: the thread finishes the frame it draws (if
  any), releases its OpenGL objects and context, and ends. Threads are never killed.

The window is ``vtkEGLRenderWindow`` (headless, a context of its own next to the GUI's GLX or EGL one; both go
through libglvnd, so VTK's OpenGL entry points are valid in both threads). Where it cannot be made (no EGL: macOS,
Windows, some drivers) ``on_failed`` says so and the view draws on the GUI thread as before.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from typing import Callable

from viewer.render3d.frame_spec import FrameResult, FrameSpec


def egl_window():
    """A headless offscreen render window (EGL). Its context is made by its first ``Render()``, which VTK runs
    without the GIL (``Initialize()`` and ``SupportsOpenGL()`` hold it for 40-150 ms): call
    :func:`probe_offscreen` once first, since a ``Render()`` without a usable EGL crashes the process."""
    from vtkmodules.vtkRenderingOpenGL2 import vtkEGLRenderWindow

    window = vtkEGLRenderWindow()
    window.SetOffScreenRendering(1)
    window.SetMultiSamples(0)
    window.SetSize(64, 64)
    return window


#: run in a child process: whether VTK can make an EGL context here (a broken driver may abort that process)
PROBE_CODE = ("from vtkmodules.vtkRenderingOpenGL2 import vtkEGLRenderWindow\n"
              "w = vtkEGLRenderWindow()\nw.SetOffScreenRendering(1)\nw.SetSize(16, 16)\n"
              "print('RADVIEW-EGL', int(w.SupportsOpenGL()), flush=True)\n")


def probe_offscreen(timeout: float = 60.0) -> None:
    """Raise RuntimeError (saying why) unless an offscreen EGL context can be made here.

    Asked of a child Python process (about 0.5 s, no GIL held here meanwhile; a crash there is only an answer); in a
    frozen application, where there is no Python to start, in this process (``SupportsOpenGL``: safe, but it holds
    the GIL for 40-150 ms).
    """
    if getattr(sys, "frozen", False):
        from vtkmodules.vtkRenderingOpenGL2 import vtkEGLRenderWindow

        window = vtkEGLRenderWindow()
        window.SetOffScreenRendering(1)
        window.SetSize(16, 16)
        if not window.SupportsOpenGL():
            raise RuntimeError("no usable OpenGL through EGL")
        return
    try:
        out = subprocess.run([sys.executable, "-c", PROBE_CODE], capture_output=True, text=True, timeout=timeout,
                             env=dict(os.environ))
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"the OpenGL probe did not answer: {exc}") from exc
    if "RADVIEW-EGL 1" not in out.stdout:
        tail = " | ".join((out.stderr or out.stdout).strip().splitlines()[-2:])
        raise RuntimeError(f"no usable OpenGL through EGL (probe exit {out.returncode}: {tail})")


def renderer_name(window) -> str:
    """The OpenGL renderer string of ``window``'s context ("llvmpipe (LLVM 15.0.6, 256 bits)", a GPU's name)."""
    for line in (window.ReportCapabilities() or "").splitlines():
        if "renderer string" in line.lower():
            return line.split(":", 1)[1].strip()
    return ""


def is_software_renderer(name: str) -> bool:
    return any(word in name.lower() for word in ("llvmpipe", "softpipe", "swrast", "software", "swr"))


class _SyncRequest:
    def __init__(self, spec: FrameSpec):
        self.spec = spec
        self.done = threading.Event()
        self.result: FrameResult | None = None


class FrameThread:
    """One thread, one offscreen window, one :class:`~viewer.render3d.mirror.MirrorScene`; frames on request.

    ``on_frame(result)``, ``on_ready(renderer_name)`` and ``on_failed(message)`` are called on this thread.
    """

    def __init__(self, on_frame: Callable[[FrameResult], None], *, on_ready: Callable[[str], None] | None = None,
                 on_failed: Callable[[str], None] | None = None, mapper: str = "gpu",
                 window_factory: Callable[[], object] = egl_window, name: str = "radview-3d-frames"):
        self.on_frame = on_frame
        self.on_ready = on_ready
        self.on_failed = on_failed
        self.mapper = mapper
        self.window_factory = window_factory
        self.renderer = ""  # the OpenGL renderer's name, once ready
        self.failure = ""  # why no frames can be drawn here, once known
        self.ready = threading.Event()  # set once the window is made (or has failed: see ``failure``)
        self._stop = threading.Event()
        self._wake = threading.Condition()
        self._pending: FrameSpec | None = None
        self._sync: list[_SyncRequest] = []
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> FrameThread:
        self._thread.start()
        return self

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def submit(self, spec: FrameSpec) -> None:
        """Draw ``spec`` next (replacing a spec still waiting); the result comes through ``on_frame``."""
        with self._wake:
            self._pending = spec
            self._wake.notify()

    def render_sync(self, spec: FrameSpec, timeout: float = 120.0) -> FrameResult | None:
        """Draw ``spec`` before any waiting spec and wait for it (None: the thread is gone or it timed out)."""
        if not self._thread.is_alive() or self._stop.is_set():
            return None
        request = _SyncRequest(spec)
        with self._wake:
            self._sync.append(request)
            self._wake.notify()
        request.done.wait(timeout)
        return request.result

    def close(self, timeout: float = 30.0) -> None:
        """Stop after the frame being drawn (if any) and join the thread."""
        self._stop.set()
        with self._wake:
            self._wake.notify()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    # --- the thread ------------------------------------------------------------------------------
    def _next(self):
        with self._wake:
            while not self._stop.is_set() and self._pending is None and not self._sync:
                self._wake.wait()
            if self._stop.is_set():
                return None
            if self._sync:
                return self._sync.pop(0)
            spec, self._pending = self._pending, None
            return spec

    def _run(self) -> None:
        from viewer.render3d.mirror import MirrorScene

        try:
            window = self.window_factory()
            window.Render()  # makes the context (without the GIL, unlike Initialize): its capabilities can be read
            mirror = MirrorScene(window, self.mapper)
            self.renderer = renderer_name(window)
        except Exception as exc:  # noqa: BLE001 - no offscreen OpenGL here: the view draws on the GUI thread
            self.failure = f"{type(exc).__name__}: {exc}"
            self.ready.set()
            self._release_waiters()
            if self.on_failed is not None:
                self.on_failed(self.failure)
            return
        self.ready.set()
        if self.on_ready is not None:
            self.on_ready(self.renderer)
        try:
            while True:
                item = self._next()
                if item is None:
                    break
                spec = item.spec if isinstance(item, _SyncRequest) else item
                try:
                    result = mirror.render(spec)
                except Exception as exc:  # noqa: BLE001 - reported with the frame; the thread goes on
                    result = FrameResult(spec.job, spec.quality, error=f"{type(exc).__name__}: {exc}")
                if isinstance(item, _SyncRequest):
                    item.result = result
                    item.done.set()
                if not self._stop.is_set():
                    self.on_frame(result)
        finally:
            self._release_waiters()
            mirror.close()
            window.Finalize()

    def _release_waiters(self) -> None:
        with self._wake:
            waiting, self._sync = self._sync, []
        for request in waiting:
            request.done.set()
