"""How the 3D view's frames are drawn and shown: on the frame thread where it can, on the GUI thread where it can't.

**Frame thread** (mode ``"thread"``, wherever an offscreen OpenGL context can be made; :mod:`viewer.render3d.
frame_thread`): the view's :class:`~viewer.render3d.scene.Scene3D` holds the state (camera, quality, volume,
transfer function, surfaces, cursor) in a window that is never drawn (:mod:`viewer.render3d.input_window`): the GUI
thread makes no OpenGL context. Whenever that state differs from what was last asked for, a
:class:`~viewer.render3d.frame_spec.FrameSpec` snapshot goes to the frame thread (the newest replaces one still
waiting); the pixels come back on the GUI thread, tagged with the spec's job id, and the
:class:`~viewer.qt.views.frame_widget.FrameWidget` paints them. The GUI thread's part of a frame is the snapshot and
a ``drawImage``: a few milliseconds, however slow the frame. Pixels older than those shown are dropped; a
full-quality frame is dropped if a newer frame was asked for meanwhile (it would jump back to an old camera).

**GUI thread** (mode ``"gui"``: no offscreen OpenGL here, or ``RADVIEW_3D_FRAMES=gui``): the scene draws itself in
the :class:`~viewer.qt.views.vtk_widget.VtkWidget`, as before.

Either way, level of detail: while full-quality frames are slow (over ``slow_frame_ms``, or not yet measured),
anything that changes the picture (drags, wheel, camera buttons, cursor moves, overlay toggles, new surfaces)
draws at "interactive" quality (the downsampled volume, sparser rays, coarse surfaces) and the full-quality frame
follows ``settle_ms`` after the last change, when the user is idle. On the frame thread a full-quality frame can't
be stopped once begun, and the next frame waits for it: the slower full-quality frames are, the longer the view
waits before starting one (a quarter of the last one's time, up to :data:`MAX_SETTLE_MS`), so that a reader who
pauses briefly and turns on is not kept waiting for it.
"""
from __future__ import annotations

import time

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

#: ``RADVIEW_3D_FRAMES``: "thread" (the default where an offscreen OpenGL context can be made) or "gui"
FRAMES_ENV = "RADVIEW_3D_FRAMES"
#: the longest wait, after the last change, before a full-quality frame is begun on the frame thread
MAX_SETTLE_MS = 1500


class _Bridge(QObject):
    """The frame thread's callbacks, re-emitted on the GUI thread (queued: the receiver lives there)."""

    frame = Signal(object)
    failed = Signal(str)


class FramePresenter(QObject):
    """Quality, level of detail and the frames of one 3D view.

    ``widget``: a :class:`~viewer.qt.views.frame_widget.FrameWidget` (mode "thread") or a
    :class:`~viewer.qt.views.vtk_widget.VtkWidget` (mode "gui"); ``render_window`` and ``interactor`` are the
    window holding the scene's renderers and its interactor. ``crop_outline()`` gives the LPS bounds of the crop box
    being edited (None: none).
    """

    rendered = Signal(str, float)  # quality, milliseconds of the frame just shown
    frame_failed = Signal(str)  # a frame could not be drawn (the message)

    def __init__(self, scene, widget, render_window, interactor, *, mode: str, apply_lod, visible, crop_outline,
                 mapper: str = "gpu", slow_frame_ms: float = 50.0, settle_ms: int = 250,
                 parent: QObject | None = None):
        super().__init__(parent)
        self.scene = scene
        self.widget = widget
        self.render_window = render_window
        self.interactor = interactor
        self.mode = mode
        self.apply_lod = apply_lod
        self.visible = visible
        self.crop_outline = crop_outline
        self.slow_frame_ms = float(slow_frame_ms)
        self.frame_ms: dict[str, float] = {}  # quality → time of the last frame drawn at it
        self.last_frame_ms: float | None = None
        self.renderer_name = ""
        self.closed = False
        self._quality = "full"
        self._render_started = 0.0
        self._render_quality = "full"
        self._job = 0  # the last job id given to a spec
        self._since = 1  # frames of jobs before this one are from before :meth:`invalidate`: dropped
        self._submitted: tuple[int, tuple] = (0, ())  # job and signature of the last spec sent
        self._shown: tuple[int, tuple] = (0, ())  # job and signature of the frame on screen
        self._settle = QTimer(self)
        self._settle.setSingleShot(True)
        self._settle_ms = int(settle_ms)
        self._settle.setInterval(self._settle_ms)
        self._settle.timeout.connect(self._settle_full_quality)
        self._kick = QTimer(self)  # coalesces the changes of one event-loop pass into one request
        self._kick.setSingleShot(True)
        self._kick.setInterval(0)
        self._kick.timeout.connect(self._request)
        self.frames = None
        if self.threaded:
            from viewer.render3d.frame_thread import FrameThread

            self._bridge = _Bridge(self)
            self._bridge.frame.connect(self._on_frame)
            self._bridge.failed.connect(self._on_thread_failed)
            self.frames = FrameThread(self._bridge.frame.emit, on_ready=self._on_thread_ready,
                                      on_failed=self._bridge.failed.emit, mapper=mapper).start()
            # the interactor never draws: where it would, it fires RenderEvent, and a frame is asked for
            self._observers = [(interactor, interactor.AddObserver("RenderEvent", self._on_interactor_render))]
        else:
            self._observers = [(render_window, render_window.AddObserver("StartEvent", self._on_render_start)),
                               (render_window, render_window.AddObserver("EndEvent", self._on_render_end))]

    @property
    def threaded(self) -> bool:
        """Frames are drawn on the frame thread (else on the GUI thread, in the widget)."""
        return self.mode == "thread"

    # --- the frame thread ----------------------------------------------------------------------
    def _on_thread_ready(self, name: str) -> None:  # on the frame thread: a plain attribute write
        self.renderer_name = name

    def _on_thread_failed(self, message: str) -> None:
        if not self.closed:
            self.frame_failed.emit(message)

    def _spec(self):
        self._job += 1
        return self.scene.frame_spec(self._job, self.widget.device_size(), self.crop_outline())

    def _submit_if_changed(self) -> None:
        if self.closed or not self.threaded or not self.visible():
            return
        spec = self._spec()
        signature = spec.signature()
        if signature == self._submitted[1] or signature == self._shown[1] and self._submitted[0] <= self._shown[0]:
            return
        self._submitted = (spec.job, signature)
        self.frames.submit(spec)

    def _on_interactor_render(self, *_args) -> None:
        self._submit_if_changed()

    def _on_frame(self, result) -> None:
        if self.closed or result.job < self._since or result.job <= self._shown[0]:
            return
        if result.error:
            self.frame_failed.emit(result.error)
            return
        if result.quality == "full" and result.job < self._submitted[0]:
            return  # the user moved on meanwhile: a newer frame is coming
        self._show(result)

    def _show(self, result) -> None:
        self.widget.set_frame(result.rgb)
        self._shown = (result.job, result.signature)
        self.frame_ms[result.quality] = result.ms
        self.last_frame_ms = result.ms
        self.rendered.emit(result.quality, result.ms)

    # --- asking for frames ----------------------------------------------------------------------
    def redraw(self) -> None:
        """Draw again at the current quality, soon (changes made in one event-loop pass give one frame)."""
        if not self.closed:
            self._kick.start()

    def _request(self) -> None:
        if self.closed:
            return
        if self.threaded:
            self._submit_if_changed()
        else:
            self.widget.update()

    def invalidate(self) -> None:
        """What is on screen no longer applies (another volume): drop it and the frames still in flight."""
        self._since = self._job + 1
        self._shown = (0, ())
        self._submitted = (0, ())
        self.frame_ms.clear()
        if self.threaded:
            self.widget.set_frame(None)

    def settled(self) -> bool:
        """Nothing left to draw: full quality (or no wait for it), and the frame on screen shows the scene as it is."""
        if self.closed or self._kick.isActive() or self._settle.isActive():
            return False
        if not self.threaded:
            return True
        return self._shown[1] == self.scene.frame_spec(0, self.widget.device_size(), self.crop_outline()).signature()

    # --- quality ----------------------------------------------------------------------------------
    @property
    def quality(self) -> str:
        """``"full"`` or ``"interactive"`` (downsampled volume, sparser rays, coarse surfaces)."""
        return self._quality

    def set_quality(self, quality: str) -> None:
        """Switch the volume's quality and the surfaces' level of detail together."""
        if quality == self._quality or self.closed:
            return
        self._quality = quality
        self.scene.set_quality(quality)
        self.apply_lod()

    def has_content(self) -> bool:
        return (self.scene.volume is not None and self.scene.volume_visible) or bool(self.scene.label_layers())

    def full_quality_is_slow(self) -> bool:
        """Whether a full-quality frame took longer than ``slow_frame_ms`` (unknown counts as slow)."""
        if not self.has_content():
            return False
        ms = self.frame_ms.get("full")
        return ms is None or ms > self.slow_frame_ms

    def changed(self) -> None:
        """The picture changes (drag, wheel, cursor move, toggle...): cheap frames now, full quality when it settles."""
        if self.full_quality_is_slow():
            self.set_quality("interactive")
            self._start_settling()
        else:
            self.set_quality("full")
        self.redraw()

    def set_settle_ms(self, ms: int) -> None:
        self._settle_ms = int(ms)

    def _start_settling(self) -> None:
        wait = self._settle_ms
        full_ms = self.frame_ms.get("full")
        if self.threaded and full_ms is not None:
            wait = int(min(max(wait, 0.25 * full_ms), max(wait, MAX_SETTLE_MS)))
        self._settle.start(wait)

    def start_interaction(self) -> None:
        self._settle.stop()
        if self.full_quality_is_slow():
            self.set_quality("interactive")

    def end_interaction(self) -> None:
        if self._quality != "full":
            self._start_settling()

    def _settle_full_quality(self) -> None:
        if self.closed or self._quality == "full":
            return
        self.set_quality("full")
        self.redraw()

    # --- frames drawn on the GUI thread (mode "gui") -----------------------------------------------
    def _on_render_start(self, *_args) -> None:
        self._render_started = time.perf_counter()
        self._render_quality = self._quality

    def _on_render_end(self, *_args) -> None:
        if self.closed:
            return
        ms = (time.perf_counter() - self._render_started) * 1e3
        self.last_frame_ms = ms
        if self.has_content():
            self.frame_ms[self._render_quality] = ms
            prop = self.scene.volume_prop
            if self._render_quality == "interactive" and prop is not None and prop.GetVisibility():
                from viewer.render3d.level_of_detail import adapted_image_sample_distance

                mapper = prop.GetMapper()
                mapper.SetImageSampleDistance(adapted_image_sample_distance(mapper.GetImageSampleDistance(), ms))
        self.rendered.emit(self._render_quality, ms)

    # --- reading back --------------------------------------------------------------------------------
    def capture(self, full_quality: bool = True, timeout: float = 300.0) -> np.ndarray:
        """Draw what the scene shows now (at full quality unless asked otherwise) and read it back.

        With the frame thread this waits for the frame unless the one on screen is it (an explicit capture: an
        export, a test). Returns ``(h, w, 3)`` uint8, top row first, the widget's size in device pixels.
        """
        if full_quality and self._quality != "full":
            self._settle.stop()
            self.set_quality("full")
        if not self.threaded:
            from viewer.render3d.offscreen import read_pixels

            self.render_window.Render()
            return read_pixels(self.render_window)
        spec = self._spec()
        signature = spec.signature()
        if signature != self._shown[1] or self.widget.rgb is None:
            result = self.frames.render_sync(spec, timeout)
            if result is None:
                why = f": {self.frames.failure}" if self.frames.failure else ""
                raise RuntimeError(f"the 3D frame was not drawn{why}")
            if result.error:
                raise RuntimeError(f"the 3D frame could not be drawn: {result.error}")
            self._submitted = (spec.job, signature)
            self._show(result)
        return np.array(self.widget.rgb, copy=True)

    # --- closing ---------------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the timers, join the frame thread (after the frame it draws), drop the observers. Idempotent."""
        if self.closed:
            return
        self.closed = True
        self._settle.stop()
        self._kick.stop()
        if self.frames is not None:
            self.frames.close()
        for obj, tag in self._observers:
            obj.RemoveObserver(tag)
        self._observers = []
