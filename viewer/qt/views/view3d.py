"""The 3D view: :class:`~viewer.render3d.scene.Scene3D` in a Qt widget, linked to the session.

The GUI thread never waits on 3D. The parts, one job each:

* ``viewer/qt/views/view3d_loading.py``: VTK's modules imported in a worker and the offscreen OpenGL probed by a
  child process, once the GUI is idle.
* ``viewer/qt/views/view3d_toolbar.py``: the toolbar row (preset, shading, volume on/off, camera views A P L R S I
  and Reset, crop box, transfer-function editor, status); ``viewer/qt/views/view3d_controls.py``: what they do.
* ``viewer/qt/views/view3d_frames.py``: quality and frames. Frames are drawn on a frame thread with an offscreen
  OpenGL context of its own (:mod:`viewer.render3d.frame_thread`) and painted by
  ``viewer/qt/views/frame_widget.py``, which feeds the mouse to VTK's interactor (the GUI thread makes no OpenGL
  context at all); where no offscreen context can be made, VTK draws in ``viewer/qt/views/vtk_widget.py`` on the
  GUI thread as before. The first frame is at interactive quality; full quality follows when the user is idle.
* ``viewer/qt/views/view3d_volume.py``: the volume prepared in a worker, then shown; the cursor.
* ``viewer/qt/views/view3d_surfaces.py``: label surfaces built in worker threads (the newest build of a layer
  wins), attached on the GUI thread, their looks applied at once.
* ``viewer/render3d/``: the scene, the volume's preparation, the frame thread and what it draws, the never-drawn
  input window, the crop box (no Qt).

The view follows the session like the 2D views do:

* ``volume_loaded`` → the pane says "Preparing 3D…" while the volume's arrays are prepared in a worker
  (:func:`~viewer.render3d.volume_prep.prepare_volume`: its range, its interactive copy; tiny volumes at once) and
  until the first frame is drawn; then the volume (CT: "CT bone", MR: "MR default") seen from the front.
  ``volume_cleared`` → empty scene.
* ``layer_added`` / ``layer_removed`` / ``labels_edited`` → label layers become smoothed surfaces, one per label,
  in the layer's colours, built off the GUI thread and attached on it; ``layer_changed`` / ``display_changed``
  (visibility, hidden labels, colours, G) change the existing actors at once: the 2D views redraw in the same
  event, the 3D picture follows with the next frame.
* ``timepoint_changed`` (a 4D series) → the session's time point is prepared in a worker and drawn when ready (the
  newest time point asked for wins; the picture keeps the transfer function, crop box and camera).
* ``cursor_moved`` → the 3D cursor (three plane outlines and a sphere) moves there.
* A left click without a drag (Shift+click too) on a surface or on the rendered volume moves the
  session's cursor to the picked point, so the 2D views go there.

Mouse: left-drag rotates, Shift+left-drag or middle-drag pans, right-drag or the wheel zooms
(``vtkInteractorStyleTrackballCamera``). The corner cube shows the patient directions. Keys:
R or Space reset the camera; other keys go to the parent (the main window's shortcuts).

The VTK part of the view (scene, render widget, presenter) is built once VTK's modules are in (imported by a worker
the first time a view is made); ``scene``, ``vtk_widget``, ``render_window`` and ``interactor`` build it at once
when asked for earlier (waiting for that import).

``capture()`` returns the picture, waiting for a full-quality frame unless it is on screen (the frame thread's
pixels, read back there with ``vtkWindowToImageFilter``; drawing on the GUI thread, the render window's, read back
the same way: ``QWidget.grab()`` of a VTK widget returns garbage); :func:`grab_widget` grabs any widget tree with
its 3D views composed in; :func:`viewer.render3d.session_render.render_session_offscreen`
renders what a 3D view of a session shows with no widget at all (for exports under Qt's offscreen platform).
Call :meth:`View3D.shutdown` (``close()`` does) before the window goes: it cancels the preparation and the surface
builds and joins their threads, joins the frame thread, removes the VTK observers and releases the windows.
"""
from __future__ import annotations

import numpy as np
import vtkmodules  # noqa: F401  (the package only: its compiled modules load in a worker, see the module text)
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QImage, QPainter
from PySide6.QtWidgets import QApplication, QLabel, QStackedLayout, QVBoxLayout, QWidget

from viewer.core.layers import LabelLayer
from viewer.core.session import Session
from viewer.qt.jobs import BackgroundTasks
from viewer.qt.views.view3d_controls import CAMERA_ZOOM, ViewControls, preset_choices  # noqa: F401 (re-exported)
from viewer.qt.views.view3d_loading import (
    IdleStart,
    frames_mode,
    import_vtk_modules,
    vtk_modules_loaded,
    wait_for_import,
)
from viewer.qt.views.view3d_surfaces import SurfaceLayers
from viewer.qt.views.view3d_toolbar import CAMERA_BUTTONS, CUSTOM_PRESET, Toolbar3D  # noqa: F401 (re-exported)
from viewer.qt.views.view3d_volume import PREPARING_TEXT, VolumeSteps


def __getattr__(name: str):
    if name == "adapted_image_sample_distance":  # kept importable from here; it lives with the level of detail
        from viewer.render3d.level_of_detail import adapted_image_sample_distance

        return adapted_image_sample_distance
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def vtk_widget_supported() -> bool:
    """Whether a VTK widget can draw under this QApplication's platform.

    Not under Qt's ``offscreen`` or ``minimal`` platforms (no native window: VTK falls back to EGL and
    its frames are garbage, shader errors, sometimes an abort). Use :func:`render_session_offscreen`
    there instead.
    """
    app = QApplication.instance()
    return app is not None and app.platformName() not in ("offscreen", "minimal")


class View3D(VolumeSteps, SurfaceLayers, ViewControls, QWidget):
    """A 3D view of the session: volume rendering, label surfaces, linked cursor, picking."""

    activated = Signal(object)  # this view, on any mouse press
    maximise_requested = Signal(object)  # this view, on a double-click
    picked = Signal(object)  # LPS point a click picked (the session's cursor also moves there)
    surfaces_ready = Signal(object)  # the LabelLayer whose surfaces were just attached
    rendered = Signal(str, float)  # quality, milliseconds of the frame just shown
    ready = Signal()  # the VTK part is built (the render widget exists)

    def __init__(self, session: Session, parent: QWidget | None = None, *, mapper: str = "gpu",
                 slow_frame_ms: float = 50.0, settle_ms: int = 250, frames: str = "auto"):
        super().__init__(parent)
        self.session = session
        self.mapper_kind = mapper
        self.frames_mode = frames
        self._settle_ms = int(settle_ms)
        self._slow_frame_ms = float(slow_frame_ms)
        self.lod_min_cells = None  # surfaces with more triangles get a coarse copy for interaction (None: default)
        self._closed = False
        self._built = False
        self._initialized = False
        self._import_job: int | None = None
        self._resync_pending = False
        self._prep_job: int | None = None
        self._prep_start: IdleStart | None = None
        self._prep_volume = None  # the volume being prepared (its job waits for an idle moment, then runs)
        self._time_job: int | None = None  # the time point of a 4D series being prepared
        self._crop = None
        self._editor = None
        self._shown_layers: list[LabelLayer] = []  # layers whose surfaces are in the scene
        self._lod: dict[LabelLayer, dict] = {}  # layer → label → (full poly, coarse poly)
        self._vtk_observers: list[tuple[object, int]] = []

        self.setMinimumSize(160, 160)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(0)
        self.toolbar = Toolbar3D(self)
        for name in ("preset_combo", "shading_button", "volume_button", "camera_buttons", "reset_button",
                     "crop_button", "edit_button", "status"):
            setattr(self, name, getattr(self.toolbar, name))
        self.preset_combo.currentIndexChanged.connect(self._on_preset_chosen)
        self.shading_button.toggled.connect(self.set_shading)
        self.volume_button.toggled.connect(self.set_volume_visible)
        for view, button in self.camera_buttons.items():
            button.clicked.connect(lambda _=False, v=view: self.set_camera(v))
        self.reset_button.clicked.connect(self.reset_camera)
        self.crop_button.toggled.connect(self.set_crop_enabled)
        self.edit_button.clicked.connect(self.open_transfer_editor)
        outer.addWidget(self.toolbar)
        self.screen_host = QWidget(self)
        self.screen_host.setStyleSheet("background: black;")
        self.pages = QStackedLayout(self.screen_host)
        self.placeholder = QLabel(PREPARING_TEXT)
        self.placeholder.setAlignment(Qt.AlignCenter)
        self.placeholder.setStyleSheet("background: black; color: #8a8a8a; font-size: 13px;")
        self.pages.addWidget(self.placeholder)
        outer.addWidget(self.screen_host, 1)

        self.tasks = BackgroundTasks(self)
        self.tasks.finished.connect(self._on_task_finished)
        self.tasks.failed.connect(self._on_task_failed)
        self._connections = [(session.volume_loaded, self._on_volume_loaded),
                             (session.volume_cleared, self._on_volume_cleared),
                             (session.cursor_moved, self._on_cursor_moved),
                             (session.timepoint_changed, self._on_timepoint_changed),
                             (session.layer_added, self._on_layer_added),
                             (session.layer_removed, self._on_layer_removed),
                             (session.layer_changed, self._on_layer_changed),
                             (session.labels_edited, self._on_labels_edited),
                             (session.display_changed, self._on_display_changed)]
        for signal, slot in self._connections:
            signal.connect(slot)
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)
        self._update_controls()
        self._idle_start: IdleStart | None = None
        if vtk_modules_loaded():
            self._build(resync_now=False)
        else:
            self.status.setText("loading 3D…")
            self._idle_start = IdleStart(self._start_import, self)

    def _start_import(self) -> None:
        self._idle_start = None
        if not self._closed and not self._built:
            self._import_job = self.tasks.submit(import_vtk_modules)

    # --- the VTK part ------------------------------------------------------------------------------
    def ensure_built(self) -> None:
        """Build the VTK part now if it is not yet (waiting for the worker's import if it runs), showing the session."""
        if self._closed:
            return
        if self._built:
            self._resync()
            return
        if self._idle_start is not None:  # not started yet: import here, now
            self._idle_start.cancel()
            self._idle_start = None
            import_vtk_modules()
        elif self._import_job is not None:
            wait_for_import()
        self._build(resync_now=True)

    def _build(self, resync_now: bool = True) -> None:
        """Make the scene, the render widget and the frame presenter; then (now, or in the next event-loop pass)
        show what the session holds."""
        if self._built or self._closed:
            return
        from vtkmodules.vtkInteractionStyle import vtkInteractorStyleTrackballCamera

        from viewer.qt.views.view3d_frames import FramePresenter
        from viewer.qt.views.view3d_surfaces import SurfaceBuilds
        from viewer.render3d.crop_box import OVERLAY_LAYER, overlay_renderer
        from viewer.render3d.level_of_detail import LOD_MIN_CELLS
        from viewer.render3d.scene import Scene3D

        self._built = True
        self._import_job = None
        mode = frames_mode(self.frames_mode)
        if self.lod_min_cells is None:
            self.lod_min_cells = LOD_MIN_CELLS
        self._scene = Scene3D(mapper=self.mapper_kind)
        if mode == "thread":  # frames drawn on the frame thread; this window only holds the scene and the mouse
            from viewer.qt.views.frame_widget import FrameWidget
            from viewer.render3d.input_window import InputWindow

            self.input_window = InputWindow()
            self._vtk_widget = FrameWidget(self.input_window, self.screen_host, message=PREPARING_TEXT)
            self._render_window = self.input_window.window
            self._interactor = self.input_window.interactor
        else:  # frames drawn here, by VTK in the widget
            from viewer.qt.views.vtk_widget import VtkWidget

            self.input_window = None
            self._vtk_widget = VtkWidget(self.screen_host)
            self._render_window = self._vtk_widget.GetRenderWindow()
            self._render_window.SetMultiSamples(0)
            self._interactor = self._render_window.GetInteractor()
        self._vtk_widget.setMinimumSize(64, 64)
        self.pages.addWidget(self._vtk_widget)
        self._render_window.SetNumberOfLayers(OVERLAY_LAYER + 1)
        self._scene.attach(self._render_window)
        self.overlay = overlay_renderer(self._scene.renderer)
        self._render_window.AddRenderer(self.overlay)
        self.style = vtkInteractorStyleTrackballCamera()
        self._interactor.SetInteractorStyle(self.style)
        self._presenter = FramePresenter(self._scene, self._vtk_widget, self._render_window, self._interactor,
                                        mode=mode, apply_lod=self._apply_lod, visible=self.isVisible,
                                        crop_outline=self._crop_outline, mapper=self.mapper_kind,
                                        slow_frame_ms=self._slow_frame_ms, settle_ms=self._settle_ms, parent=self)
        self._presenter.rendered.connect(self.rendered)
        self._presenter.frame_failed.connect(lambda message: self.status.setText(f"3D frame failed: {message}"))
        self._observe(self.style, "StartInteractionEvent", self._presenter.start_interaction)
        self._observe(self.style, "EndInteractionEvent", self._presenter.end_interaction)
        self._vtk_widget.clicked.connect(self.pick_at)
        self._vtk_widget.pressed.connect(lambda: self.activated.emit(self))
        self._vtk_widget.double_clicked.connect(lambda: self.maximise_requested.emit(self))
        self._vtk_widget.key_reset.connect(self.reset_camera)
        self._vtk_widget.resized.connect(self._presenter.changed)
        self.surfaces = SurfaceBuilds(self.tasks, self)
        self.surfaces.built.connect(self._on_surfaces_built)
        self.surfaces.failed.connect(lambda _layer, message: self.status.setText(f"surfaces failed: {message}"))
        self.surfaces.progressed.connect(self.status.setText)
        self.surfaces.idle.connect(self._on_surfaces_idle)
        self.status.setText("")
        self.pages.setCurrentWidget(self._vtk_widget)
        if self.isVisible():
            self._ensure_initialized()
        if self.session.volume is not None:
            self._set_message(PREPARING_TEXT)  # until the resync below has it prepared and drawn
        self._resync_pending = True
        if resync_now:
            self._resync()
        else:
            QTimer.singleShot(0, self._resync)  # the event loop breathes between the two halves
        self.ready.emit()

    def _resync(self) -> None:
        """Show what the session holds (the volume, its layers); the session's events keep it so afterwards."""
        if self._closed or not self._resync_pending:
            return
        self._resync_pending = False
        volume = self.session.volume
        if volume is None:
            self._set_message("")
            self.request_render()
        elif self._scene.volume is not volume and self._prep_volume is not volume:  # not shown since by an event
            self._on_volume_loaded(volume)
        for layer in self.session.label_layers():
            if layer not in self._shown_layers and not self.surfaces.building(layer):
                self._on_layer_added(layer)

    @property
    def scene(self):
        self.ensure_built()
        return self._scene

    @property
    def vtk_widget(self):
        self.ensure_built()
        return self._vtk_widget

    @property
    def render_window(self):
        self.ensure_built()
        return self._render_window

    @property
    def interactor(self):
        self.ensure_built()
        return self._interactor

    @property
    def presenter(self):
        """The view's :class:`~viewer.qt.views.view3d_frames.FramePresenter` (quality, frames, their timings)."""
        self.ensure_built()
        return self._presenter

    def _observe(self, obj, event: str, fn) -> None:
        self._vtk_observers.append((obj, obj.AddObserver(event, lambda *_: fn())))

    def _on_task_finished(self, job: int, result) -> None:
        if job == self._import_job:
            self._build(resync_now=False)
        elif job == self._prep_job:
            self._prep_job = None
            self._prep_volume = None
            if not self._closed and result.volume is self.session.volume:
                self._show_volume(result)
                self._follow_timepoint()  # (the time point moved while the volume was prepared)
        elif job == self._time_job:
            self._time_job = None
            self._on_timepoint_prepared(result)

    def _on_task_failed(self, job: int, message: str) -> None:
        if job == self._import_job:
            self._import_job = None
            self.status.setText(f"3D unavailable: {message}")
        elif job == self._prep_job:
            self._prep_job = None
            self._prep_volume = None
            self.status.setText(f"3D preparation failed: {message}")
            self._set_message("")
        elif job == self._time_job:
            self._time_job = None
            self._on_timepoint_failed(message)

    # --- rendering -----------------------------------------------------------------------------
    def _ensure_initialized(self) -> None:
        if self._initialized or self._closed or not self._built:
            return
        self._initialized = True
        self._interactor.Initialize()  # enables the interactor (and, drawing here, renders once)
        if not self._presenter.threaded:
            self._scene.fall_back_if_unsupported(self._render_window)

    def _set_message(self, text: str) -> None:
        """What the pane says while it has no picture ("Preparing 3D…", or nothing): the frame widget paints it until
        its first frame; drawing on the GUI thread, the placeholder page stands in for the render widget."""
        if not self._built:
            return
        if self._presenter.threaded:
            self._vtk_widget.set_message(text)
        elif text:
            self.pages.setCurrentWidget(self.placeholder)
        else:
            self.pages.setCurrentWidget(self._vtk_widget)
            if self.isVisible():
                self._ensure_initialized()

    def showEvent(self, ev):  # noqa: N802
        super().showEvent(ev)
        if self._built:
            self._ensure_initialized()
            self._presenter.redraw()
            self._follow_timepoint()  # (a hidden view does not follow the time point: it catches up here)

    def request_render(self) -> None:
        """Draw again soon (changes made in one event-loop pass give one frame); nothing while hidden or closed."""
        if self._built and not self._closed:
            self._presenter.redraw()

    def render_now(self) -> None:
        """Draw at once (on the GUI thread), or ask the frame thread at once."""
        if self._closed:
            return
        self.ensure_built()
        self._ensure_initialized()
        if self._presenter.threaded:
            self._presenter.redraw()
        else:
            self._render_window.Render()

    @property
    def quality(self) -> str:
        """``"full"`` or ``"interactive"`` (downsampled volume, sparser rays, coarse surfaces)."""
        return self._presenter.quality if self._built else "full"

    def set_quality(self, quality: str) -> None:
        if self._built and not self._closed:
            self._presenter.set_quality(quality)

    @property
    def frame_ms(self) -> dict[str, float]:
        """quality → time of the last frame drawn at it (ms)."""
        return self._presenter.frame_ms if self._built else {}

    @property
    def last_frame_ms(self) -> float | None:
        return self._presenter.last_frame_ms if self._built else None

    @property
    def slow_frame_ms(self) -> float:
        return self._presenter.slow_frame_ms if self._built else self._slow_frame_ms

    @slow_frame_ms.setter
    def slow_frame_ms(self, ms: float) -> None:
        self._slow_frame_ms = float(ms)
        if self._built:
            self._presenter.slow_frame_ms = float(ms)

    @property
    def settle_ms(self) -> int:
        """Full quality follows this long after the last change (while full-quality frames are slow)."""
        return self._settle_ms

    @settle_ms.setter
    def settle_ms(self, ms: int) -> None:
        self._settle_ms = int(ms)
        if self._built:
            self._presenter.set_settle_ms(int(ms))

    def full_quality_is_slow(self) -> bool:
        return self._built and self._presenter.full_quality_is_slow()

    def _transient_change(self) -> None:
        if self._built and not self._closed:
            self._presenter.changed()

    @property
    def preparing(self) -> bool:
        """The pane says "Preparing 3D…" (VTK, the volume's arrays or the first frame are on their way)."""
        if self._closed:
            return False
        if not self._built or self._resync_pending or self._prep_volume is not None:
            return True
        return self._presenter.threaded and self._vtk_widget.rgb is None and bool(self._vtk_widget.message)

    def idle(self) -> bool:
        """Nothing left to do: no preparation, no surface build, and the frame on screen is the settled one."""
        return (self._built and not self._closed and not self.preparing and self._time_job is None
                and not self.surfaces.pending() and self._presenter.settled())

    def capture(self, full_quality: bool = True) -> np.ndarray:
        """Draw (at full quality unless asked otherwise) and read the pixels back.

        Waits for what is still being prepared (VTK, the volume's arrays) and for the frame. Returns ``(h, w, 3)``
        uint8, top row first, the size of the render widget in device pixels.
        """
        if self._closed:
            raise RuntimeError("the 3D view is closed")
        self.ensure_built()
        self._finish_preparation()
        self._ensure_initialized()
        return self._presenter.capture(full_quality)

    def capture_image(self, full_quality: bool = True) -> QImage:
        """:meth:`capture` as a ``QImage`` (RGB888), sized like the render widget."""
        rgb = self.capture(full_quality)
        h, w, _ = rgb.shape
        return QImage(rgb.data, w, h, 3 * w, QImage.Format_RGB888).copy()

    # --- picking ------------------------------------------------------------------------------
    def pick_at(self, display_x: float, display_y: float) -> np.ndarray | None:
        """Pick at VTK display coordinates (bottom-left origin); a hit moves the session's cursor there."""
        if self._closed or self.session.volume is None or not self._built:
            return None
        self._ensure_initialized()
        point = self._scene.pick(display_x, display_y)
        if point is None:
            return None
        self.session.move_cursor(point)
        self.picked.emit(np.asarray(point, dtype=float))
        return point

    # --- closing ---------------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        """``shutdown`` has run: the view draws nothing any more."""
        return self._closed

    def shutdown(self) -> None:
        """Cancel the preparation and surface builds (joining their threads), join the frame thread, drop
        observers, finalize the render window. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._idle_start is not None:
            self._idle_start.cancel()
            self._idle_start = None
        if self._prep_start is not None:
            self._prep_start.cancel()
            self._prep_start = None
        for signal, slot in self._connections:
            try:
                signal.disconnect(slot)
            except Exception:  # noqa: BLE001 (already gone)
                pass
        self._connections = []
        app = QApplication.instance()
        if app is not None:
            try:
                app.aboutToQuit.disconnect(self.shutdown)
            except (RuntimeError, TypeError):
                pass
        self.tasks.shutdown()
        if not self._built:
            return
        self.surfaces.forget()
        self._lod.clear()
        if self._editor is not None:
            self._editor.close()
            self._editor = None
        if self._crop is not None:
            crop, self._crop = self._crop, None
            crop.close()
        self._presenter.close()
        for obj, tag in self._vtk_observers:
            obj.RemoveObserver(tag)
        self._vtk_observers = []
        self._vtk_widget.closed = True
        self._interactor.Disable()
        self._scene.close()
        self._scene.detach(self._render_window)
        self._render_window.RemoveRenderer(self.overlay)
        self._interactor.SetInteractorStyle(None)
        if self.input_window is not None:
            self.input_window.close()
        else:
            self._render_window.Finalize()
            self._interactor.TerminateApp()

    def closeEvent(self, ev):  # noqa: N802
        self.shutdown()
        super().closeEvent(ev)


def grab_widget(widget: QWidget) -> QImage:
    """``widget.grab()`` with every visible :class:`View3D` inside it painted from its own ``capture()``."""
    image = widget.grab().toImage()
    views = [widget] if isinstance(widget, View3D) else widget.findChildren(View3D)
    views = [v for v in views if v.isVisible() and not v.closed]
    if views:
        painter = QPainter(image)
        for view in views:
            picture = view.capture_image()
            top_left = view.vtk_widget.mapTo(widget, view.vtk_widget.rect().topLeft())
            picture.setDevicePixelRatio(picture.width() / max(1, view.vtk_widget.width()))
            painter.drawImage(top_left, picture)
        painter.end()
    return image
