"""The 3D view: :class:`~viewer.render3d.scene.Scene3D` in a Qt widget, linked to the session.

(The render widget is `viewer/qt/views/vtk_widget.py`; level of detail `viewer/render3d/level_of_detail.py`;
widget-free rendering `viewer/render3d/session_render.py`.)

A small toolbar row (rendering preset, shading, volume on/off, camera views A P L R S I and Reset,
crop box, transfer-function editor) above a ``QVTKRenderWindowInteractor``. The view follows the
session like the 2D views do:

* ``volume_loaded`` → the volume is rendered (CT: "CT bone", MR: "MR default"), seen from the front;
  ``volume_cleared`` → empty scene.
* ``layer_added`` / ``layer_removed`` / ``layer_changed`` → label layers become smoothed surfaces,
  one per label, in the layer's colours. Surfaces are built off the GUI thread
  (:func:`~viewer.render3d.label_surfaces.build_label_surfaces` through :class:`BackgroundTasks`) and
  attached on the GUI thread; a build superseded by a newer one (or by the layer's removal) is
  cancelled and its result dropped. ``labels_edited`` (a finished brush stroke, its undo or redo)
  rebuilds the edited layer's surfaces the same way.
* ``cursor_moved`` → the 3D cursor (three plane outlines and a sphere) moves there.
* A left click without a drag (Shift+click too) on a surface or on the rendered volume moves the
  session's cursor to the picked point, so the 2D views go there.

Mouse: left-drag rotates, Shift+left-drag or middle-drag pans, right-drag or the wheel zooms
(``vtkInteractorStyleTrackballCamera``). The corner cube shows the patient directions. Keys:
R or Space reset the camera; other keys go to the parent (the main window's shortcuts).

Responsiveness: render times are measured (render window Start/End events). When a full-quality
frame takes longer than ``slow_frame_ms`` (50 ms: below 20 frames/s), interactions (drags, wheel,
crop-box drags, cursor moves from the 2D views, camera buttons, transfer-function edits) render at
"interactive" quality: the scene's downsampled volume, with rays spaced (2 to 4 pixels) to aim at
80 ms a frame, and coarse copies of big surfaces (built with them, off the GUI thread). The
full-quality frame follows ``settle_ms`` after the last change. On a fast GPU every frame stays at
full quality.

``capture()`` reads the pixels back with ``vtkWindowToImageFilter`` (``QWidget.grab()`` of a VTK
widget returns garbage); :func:`grab_widget` grabs any widget tree with its 3D views composed in;
:func:`viewer.render3d.session_render.render_session_offscreen` renders what a 3D view of a session shows with no
widget at all (for exports under Qt's offscreen platform, where a VTK widget cannot draw).
Call :meth:`View3D.shutdown` (``close()`` does) before the window goes: it cancels surface builds,
joins their threads, removes the VTK observers and finalizes the render window.
"""
from __future__ import annotations

import time

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QImage, QPainter
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)
from vtkmodules.vtkCommonDataModel import vtkPolyData
from vtkmodules.vtkInteractionStyle import vtkInteractorStyleTrackballCamera
from vtkmodules.vtkInteractionWidgets import vtkBoxRepresentation, vtkBoxWidget2

from viewer.core.layers import LabelLayer
from viewer.core.session import Session
from viewer.qt.jobs import BackgroundTasks
from viewer.qt.views.vtk_widget import VtkWidget as _VtkWidget
from viewer.render3d.label_surfaces import build_label_surfaces
from viewer.render3d.level_of_detail import LOD_MIN_CELLS, adapted_image_sample_distance, coarse_surfaces
from viewer.render3d.offscreen import read_pixels
from viewer.render3d.scene import Scene3D
from viewer.render3d.transfer_presets import PRESETS, TransferPreset, preset_names

#: camera button → Scene3D view name
CAMERA_BUTTONS = (("A", "anterior"), ("P", "posterior"), ("L", "left"), ("R", "right"),
                  ("S", "superior"), ("I", "inferior"))
CUSTOM_PRESET = "__custom__"
#: after a camera preset or reset, zoom in by this much: VTK fits the box's bounding sphere (so that
#: turning never clips it), which leaves the box itself small in the pane
CAMERA_ZOOM = 1.4



def vtk_widget_supported() -> bool:
    """Whether a VTK widget can draw under this QApplication's platform.

    Not under Qt's ``offscreen`` or ``minimal`` platforms (no native window: VTK falls back to EGL and
    its frames are garbage, shader errors, sometimes an abort). Use :func:`render_session_offscreen`
    there instead.
    """
    app = QApplication.instance()
    return app is not None and app.platformName() not in ("offscreen", "minimal")


def preset_choices(modality: str) -> list[str]:
    """Preset names offered for a modality: its own; for other modalities the relative (any-scale) ones."""
    if modality.upper() in ("CT", "MR"):
        return preset_names(modality.upper())
    return [n for n, p in PRESETS.items() if p.units == "relative"]


class View3D(QWidget):
    """A 3D view of the session: volume rendering, label surfaces, linked cursor, picking."""

    activated = Signal(object)  # this view, on any mouse press
    maximise_requested = Signal(object)  # this view, on a double-click
    picked = Signal(object)  # LPS point a click picked (the session's cursor also moves there)
    surfaces_ready = Signal(object)  # the LabelLayer whose surfaces were just attached
    rendered = Signal(str, float)  # quality, milliseconds of the frame just rendered

    def __init__(self, session: Session, parent: QWidget | None = None, *, mapper: str = "gpu",
                 slow_frame_ms: float = 50.0, settle_ms: int = 250):
        super().__init__(parent)
        self.session = session
        self.slow_frame_ms = float(slow_frame_ms)
        self.lod_min_cells = LOD_MIN_CELLS  # surfaces with more triangles get a coarse copy for interaction
        self.scene = Scene3D(mapper=mapper)
        self.frame_ms: dict[str, float] = {}  # quality → time of the last frame rendered at it
        self.last_frame_ms: float | None = None
        self._closed = False
        self._initialized = False
        self._render_started = 0.0
        self._observers: list[tuple[object, int]] = []
        self._jobs: dict[int, LabelLayer] = {}  # running surface builds: job id → layer
        self._job_of: dict[LabelLayer, int] = {}  # the current build of each layer
        self._crop_widget: vtkBoxWidget2 | None = None
        self._editor = None
        self._quality = "full"
        self._shown_layers: list[LabelLayer] = []  # layers whose surfaces are in the scene
        self._lod: dict[LabelLayer, dict[int, tuple[vtkPolyData, vtkPolyData]]] = {}  # label → (full, coarse)

        self.setMinimumSize(160, 160)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(0)
        self.toolbar = QWidget(self)
        self.toolbar.setStyleSheet("QWidget { background: #202020; color: #ddd; } "
                                   "QToolButton { padding: 1px 3px; } QToolButton:checked { background: #3a5f8a; } "
                                   "QToolButton:disabled { color: #666; }")
        bar = QHBoxLayout(self.toolbar)
        bar.setContentsMargins(2, 1, 2, 1)
        bar.setSpacing(2)
        self.preset_combo = QComboBox()
        self.preset_combo.setToolTip("Volume-rendering preset")
        self.preset_combo.setSizeAdjustPolicy(QComboBox.AdjustToContents)
        self.preset_combo.setMinimumContentsLength(10)
        self.preset_combo.setFocusPolicy(Qt.NoFocus)
        self.preset_combo.currentIndexChanged.connect(self._on_preset_chosen)
        bar.addWidget(self.preset_combo)
        self.shading_button = self._tool_button("Shade", "Shade the volume (lighting)")
        self.shading_button.setCheckable(True)
        self.shading_button.toggled.connect(self.set_shading)
        bar.addWidget(self.shading_button)
        self.volume_button = self._tool_button("Vol", "Show the volume rendering (off: label surfaces only)")
        self.volume_button.setCheckable(True)
        self.volume_button.setChecked(True)
        self.volume_button.toggled.connect(self.set_volume_visible)
        bar.addWidget(self.volume_button)
        bar.addSpacing(4)
        self.camera_buttons: dict[str, QToolButton] = {}
        for letter, view in CAMERA_BUTTONS:
            button = self._tool_button(letter, f"View from the patient's {view} side")
            button.clicked.connect(lambda _=False, v=view: self.set_camera(v))
            self.camera_buttons[view] = button
            bar.addWidget(button)
        self.reset_button = self._tool_button("Reset", "Fit the scene in the view (R)")
        self.reset_button.clicked.connect(self.reset_camera)
        bar.addWidget(self.reset_button)
        bar.addSpacing(4)
        self.crop_button = self._tool_button("Crop", "Crop box: drag its faces to cut the volume")
        self.crop_button.setCheckable(True)
        self.crop_button.toggled.connect(self.set_crop_enabled)
        bar.addWidget(self.crop_button)
        self.edit_button = self._tool_button("TF…", "Edit transfer function…")
        self.edit_button.clicked.connect(self.open_transfer_editor)
        bar.addWidget(self.edit_button)
        self.status = QLabel("")
        self.status.setStyleSheet("color: #999;")
        self.status.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        bar.addWidget(self.status, 1)
        outer.addWidget(self.toolbar)

        self.vtk_widget = _VtkWidget(self)
        self.vtk_widget.setMinimumSize(64, 64)
        outer.addWidget(self.vtk_widget, 1)
        self.render_window = self.vtk_widget.GetRenderWindow()
        self.render_window.SetMultiSamples(0)
        self.interactor = self.vtk_widget.GetRenderWindow().GetInteractor()
        self.scene.attach(self.render_window)
        self.style = vtkInteractorStyleTrackballCamera()
        self.interactor.SetInteractorStyle(self.style)
        self._observe(self.style, "StartInteractionEvent", self._on_start_interaction)
        self._observe(self.style, "EndInteractionEvent", self._on_end_interaction)
        self._observe(self.render_window, "StartEvent", self._on_render_start)
        self._observe(self.render_window, "EndEvent", self._on_render_end)
        self.vtk_widget.clicked.connect(self.pick_at)
        self.vtk_widget.pressed.connect(lambda: self.activated.emit(self))
        self.vtk_widget.double_clicked.connect(lambda: self.maximise_requested.emit(self))
        self.vtk_widget.key_reset.connect(self.reset_camera)

        self._settle = QTimer(self)
        self._settle.setSingleShot(True)
        self._settle.setInterval(int(settle_ms))
        self._settle.timeout.connect(self._settle_full_quality)

        self.tasks = BackgroundTasks(self)
        self.tasks.finished.connect(self._on_job_finished)
        self.tasks.failed.connect(self._on_job_failed)
        self.tasks.cancelled.connect(self._on_job_cancelled)
        self.tasks.progressed.connect(self._on_job_progress)

        self._connections = [(session.volume_loaded, self._on_volume_loaded),
                             (session.volume_cleared, self._on_volume_cleared),
                             (session.cursor_moved, self._on_cursor_moved),
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
        if session.volume is not None:
            self._on_volume_loaded(session.volume)
            for layer in session.label_layers():
                self._on_layer_added(layer)

    def _tool_button(self, text: str, tip: str) -> QToolButton:
        b = QToolButton()
        b.setText(text)
        b.setToolTip(tip)
        b.setAutoRaise(True)
        b.setFocusPolicy(Qt.NoFocus)
        if len(text) == 1:
            b.setFixedWidth(20)
        return b

    def _observe(self, obj, event: str, fn) -> None:
        self._observers.append((obj, obj.AddObserver(event, lambda *_: fn())))

    # --- rendering -----------------------------------------------------------------------------
    def _ensure_initialized(self) -> None:
        if self._initialized or self._closed:
            return
        self._initialized = True
        self.interactor.Initialize()  # enables the interactor (and renders once)
        self.scene.fall_back_if_unsupported(self.render_window)

    def showEvent(self, ev):  # noqa: N802
        super().showEvent(ev)
        self._ensure_initialized()

    def request_render(self) -> None:
        """Render soon (Qt coalesces requests into one paint); nothing while hidden or closed."""
        if not self._closed:
            self.vtk_widget.update()

    def render_now(self) -> None:
        """Render at once (at the current quality)."""
        if self._closed:
            return
        self._ensure_initialized()
        self.render_window.Render()

    @property
    def quality(self) -> str:
        """``"full"`` or ``"interactive"`` (downsampled volume, sparser rays, coarse surfaces)."""
        return self._quality

    def set_quality(self, quality: str) -> None:
        """Switch the volume's quality and the surfaces' level of detail together."""
        if quality == self._quality or self._closed:
            return
        self._quality = quality
        self.scene.set_quality(quality)
        self._apply_lod()

    def _has_content(self) -> bool:
        return (self.scene.volume is not None and self.scene.volume_visible) or bool(self._lod)

    def full_quality_is_slow(self) -> bool:
        """Whether a full-quality frame took longer than ``slow_frame_ms`` (unknown counts as slow)."""
        if not self._has_content():
            return False
        ms = self.frame_ms.get("full")
        return ms is None or ms > self.slow_frame_ms

    def _transient_change(self) -> None:
        """The view is changing (drag, wheel, cursor move...): cheap frames now, full quality when it settles."""
        if self.full_quality_is_slow():
            self.set_quality("interactive")
            self._settle.start()
        else:
            self.set_quality("full")
        self.request_render()

    def _on_start_interaction(self) -> None:
        self._settle.stop()
        if self.full_quality_is_slow():
            self.set_quality("interactive")

    def _on_end_interaction(self) -> None:
        if self._quality != "full":
            self._settle.start()

    def _settle_full_quality(self) -> None:
        if self._closed or self._quality == "full":
            return
        self.set_quality("full")
        self.request_render()

    def _on_render_start(self) -> None:
        self._render_started = time.perf_counter()
        self._render_quality = self._quality

    def _on_render_end(self) -> None:
        ms = (time.perf_counter() - self._render_started) * 1e3
        self.last_frame_ms = ms
        if self._has_content():
            self.frame_ms[self._render_quality] = ms
            prop = self.scene.volume_prop
            if self._render_quality == "interactive" and prop is not None and prop.GetVisibility():
                mapper = prop.GetMapper()
                mapper.SetImageSampleDistance(adapted_image_sample_distance(mapper.GetImageSampleDistance(), ms))
        self.rendered.emit(self._render_quality, ms)

    def capture(self, full_quality: bool = True) -> np.ndarray:
        """Render (at full quality unless asked otherwise) and read the pixels back.

        Returns ``(h, w, 3)`` uint8, top row first, the size of the render widget in device pixels.
        """
        if self._closed:
            raise RuntimeError("the 3D view is closed")
        self._ensure_initialized()
        if full_quality and self._quality != "full":
            self._settle.stop()
            self.set_quality("full")
        self.render_window.Render()
        return read_pixels(self.render_window)

    def capture_image(self, full_quality: bool = True) -> QImage:
        """:meth:`capture` as a ``QImage`` (RGB888), sized like the render widget."""
        rgb = self.capture(full_quality)
        h, w, _ = rgb.shape
        return QImage(rgb.data, w, h, 3 * w, QImage.Format_RGB888).copy()

    # --- session events -----------------------------------------------------------------------
    def _on_volume_loaded(self, volume) -> None:
        self.set_crop_enabled(False)
        self.frame_ms.clear()
        self.set_quality("full")
        try:
            self.scene.set_volume(volume)
        except ValueError as exc:  # a colour volume: surfaces and cursor only
            self.scene.set_volume(None)
            self.status.setText(str(exc))
        self.scene.set_cursor(self.session.cursor_lps)
        self.scene.set_camera("anterior")
        self._zoom_to_fit()
        self._update_controls()
        self.request_render()

    def _on_volume_cleared(self) -> None:
        self.set_crop_enabled(False)
        for layer in list(self._job_of):
            self._cancel_build(layer)
        self.scene.set_volume(None)
        for layer in list(self._shown_layers):
            self.scene.remove_label_layer(layer)
        self._shown_layers.clear()
        self._lod.clear()
        self.scene.set_cursor(None)
        self.frame_ms.clear()
        self.status.setText("")
        self._update_controls()
        self.request_render()

    def _on_cursor_moved(self, point) -> None:
        self.scene.set_cursor(point)
        self._transient_change()

    def _on_display_changed(self) -> None:
        for layer in self.session.label_layers():
            self._apply_layer_display(layer)
        self.request_render()

    # --- label surfaces ---------------------------------------------------------------------
    def _on_layer_added(self, layer) -> None:
        if isinstance(layer, LabelLayer):
            self.build_surfaces(layer)

    def build_surfaces(self, layer: LabelLayer) -> int:
        """(Re)build ``layer``'s surfaces off the GUI thread; a build still running for it is cancelled."""
        self._cancel_build(layer)
        label_map = layer.label_map

        min_cells = self.lod_min_cells

        def work(progress, cancel):
            surfaces = build_label_surfaces(label_map, progress=progress, cancel=cancel)
            return surfaces, coarse_surfaces(surfaces, min_cells=min_cells, cancel=cancel)

        job = self.tasks.submit(work)
        self._jobs[job] = layer
        self._job_of[layer] = job
        self.status.setText("building surfaces…")
        return job

    def _cancel_build(self, layer) -> None:
        job = self._job_of.pop(layer, None)
        if job is not None:
            self.tasks.cancel(job)

    def surfaces_pending(self) -> bool:
        """Whether a surface build is still running for a layer."""
        return bool(self._job_of)

    def _on_job_finished(self, job: int, result) -> None:
        layer = self._jobs.pop(job, None)
        if layer is None or self._closed or self._job_of.get(layer) != job or layer not in self.session.layers:
            return  # superseded, removed or closed: dropped
        del self._job_of[layer]
        surfaces, coarse = result
        self.scene.set_label_layer(layer, surfaces)
        self._lod[layer] = {label: (surfaces[label], poly) for label, poly in coarse.items()}
        self._apply_lod(layer)
        self._apply_layer_display(layer)
        if not self._job_of:
            self.status.setText("")
        if layer in self._shown_layers:  # rebuilt after an edit: the camera stays where the user left it
            self.request_render()
            self.surfaces_ready.emit(layer)
            return
        self._shown_layers.append(layer)
        if self.scene.volume is None and len(self._shown_layers) == 1:
            self.scene.set_camera("anterior")
            self._zoom_to_fit()
        self.request_render()
        self.surfaces_ready.emit(layer)

    def _on_job_failed(self, job: int, message: str) -> None:
        layer = self._jobs.pop(job, None)
        if layer is not None and self._job_of.get(layer) == job:
            del self._job_of[layer]
            if not self._closed:
                self.status.setText(f"surfaces failed: {message}")

    def _on_job_cancelled(self, job: int) -> None:
        layer = self._jobs.pop(job, None)
        if layer is not None and self._job_of.get(layer) == job:
            del self._job_of[layer]
        if not self._closed and not self._job_of and self.status.text().startswith(("building", "surfaces ")):
            self.status.setText("")

    def _on_job_progress(self, job: int, done: int, total: int, _message: str) -> None:
        layer = self._jobs.get(job)
        if layer is not None and self._job_of.get(layer) == job and not self._closed and total:
            self.status.setText(f"surfaces {done}/{total}")

    def _apply_lod(self, only: LabelLayer | None = None) -> None:
        """Coarse surfaces at interactive quality, the full ones at full quality."""
        coarse = self._quality == "interactive"
        for layer, lods in self._lod.items():
            if only is not None and layer is not only:
                continue
            actors = self.scene.label_actors(layer)
            for label, (full_poly, coarse_poly) in lods.items():
                if label in actors:
                    actors[label].GetMapper().SetInputData(coarse_poly if coarse else full_poly)

    def _on_layer_removed(self, layer) -> None:
        self._cancel_build(layer)
        self._lod.pop(layer, None)
        if layer in self._shown_layers:
            self._shown_layers.remove(layer)
        self.scene.remove_label_layer(layer)
        self.request_render()

    def _on_labels_edited(self, layer, finished: bool = True) -> None:
        """A brush stroke (or its undo) changed the voxels: rebuild the layer's surfaces once it is done."""
        if finished and isinstance(layer, LabelLayer) and layer in self.session.layers and not self._closed:
            self.build_surfaces(layer)

    def _on_layer_changed(self, layer) -> None:
        if isinstance(layer, LabelLayer):
            self._apply_layer_display(layer)
            self.request_render()

    def _apply_layer_display(self, layer: LabelLayer) -> None:
        """Colours, visibility, hidden labels; all surfaces hidden while the session hides overlays."""
        self.scene.update_label_layer(layer)
        if not self.session.overlays_visible:
            for actor in self.scene.label_actors(layer).values():
                actor.VisibilityOff()

    # --- picking ------------------------------------------------------------------------------
    def pick_at(self, display_x: float, display_y: float) -> np.ndarray | None:
        """Pick at VTK display coordinates (bottom-left origin); a hit moves the session's cursor there."""
        if self._closed or self.session.volume is None:
            return None
        self._ensure_initialized()
        point = self.scene.pick(display_x, display_y)
        if point is None:
            return None
        self.session.move_cursor(point)
        self.picked.emit(np.asarray(point, dtype=float))
        return point

    # --- controls -----------------------------------------------------------------------------
    def _update_controls(self) -> None:
        volume = self.scene.volume
        self.preset_combo.blockSignals(True)
        self.preset_combo.clear()
        if volume is not None:
            for name in preset_choices(volume.modality):
                self.preset_combo.addItem(PRESETS[name].title, name)
            i = self.preset_combo.findData(self.scene.preset.name if self.scene.preset else None)
            if i >= 0:
                self.preset_combo.setCurrentIndex(i)
        self.preset_combo.blockSignals(False)
        self._sync_shading_button()
        has_volume = volume is not None
        for w in (self.preset_combo, self.shading_button, self.volume_button, self.crop_button, self.edit_button):
            w.setEnabled(has_volume)

    def _sync_shading_button(self) -> None:
        self.shading_button.blockSignals(True)
        self.shading_button.setChecked(bool(self.scene.preset is not None and self.scene.preset.shade))
        self.shading_button.blockSignals(False)

    def _on_preset_chosen(self, index: int) -> None:
        name = self.preset_combo.itemData(index)
        if name and name != CUSTOM_PRESET:
            self.set_preset(name)

    def set_preset(self, preset: str | TransferPreset) -> None:
        """Show the volume with a named preset or an edited :class:`TransferPreset` (no volume: ignored)."""
        if self.scene.volume is None:
            return
        self.scene.set_preset(preset)
        self.frame_ms.pop("full", None)  # another transfer function renders at another speed
        name = preset if isinstance(preset, str) else CUSTOM_PRESET
        i = self.preset_combo.findData(name)
        if i < 0 and name == CUSTOM_PRESET:
            self.preset_combo.addItem("Custom", CUSTOM_PRESET)
            i = self.preset_combo.count() - 1
        if i >= 0 and i != self.preset_combo.currentIndex():
            self.preset_combo.blockSignals(True)
            self.preset_combo.setCurrentIndex(i)
            self.preset_combo.blockSignals(False)
        self._sync_shading_button()
        if self._editor is not None and isinstance(preset, str):
            self._editor.set_preset(self.scene.preset)
        self._transient_change()

    def set_shading(self, on: bool) -> None:
        self.scene.set_shading(bool(on))
        self._sync_shading_button()
        self._transient_change()

    def set_volume_visible(self, on: bool) -> None:
        self.scene.set_volume_visible(bool(on))
        if self.volume_button.isChecked() != bool(on):
            self.volume_button.setChecked(bool(on))
        self.request_render()

    def set_camera(self, view: str) -> None:
        """Look from the patient's ``view`` side: anterior, posterior, left, right, superior, inferior."""
        self.scene.set_camera(view)
        self._zoom_to_fit()
        self._transient_change()

    def reset_camera(self) -> None:
        """Fit the scene in the view, keeping the viewing direction."""
        self.scene.reset_camera()
        self._zoom_to_fit()
        self._transient_change()

    def _zoom_to_fit(self) -> None:
        if self.scene.scene_bounds_lps() is not None:
            self.scene.renderer.GetActiveCamera().Zoom(CAMERA_ZOOM)
            self.scene.renderer.ResetCameraClippingRange()

    # --- crop box -------------------------------------------------------------------------------
    def set_crop_enabled(self, on: bool) -> None:
        """Show a box widget around the volume whose faces crop the rendering; off: no cropping."""
        on = bool(on) and self.scene.volume is not None and not self._closed
        if self.crop_button.isChecked() != on:
            self.crop_button.blockSignals(True)
            self.crop_button.setChecked(on)
            self.crop_button.blockSignals(False)
        if on and self._crop_widget is None:
            rep = vtkBoxRepresentation()
            rep.SetPlaceFactor(1.0)
            rep.PlaceWidget(self.scene.crop_box_lps or self.scene.volume_bounds_lps())
            rep.GetOutlineProperty().SetColor(0.3, 0.8, 1.0)
            rep.SetHandleSize(rep.GetHandleSize() * 0.6)
            widget = vtkBoxWidget2()
            widget.SetRepresentation(rep)
            widget.SetInteractor(self.interactor)
            widget.SetDefaultRenderer(self.scene.renderer)
            widget.SetCurrentRenderer(self.scene.renderer)
            widget.RotationEnabledOff()
            widget.TranslationEnabledOn()
            widget.ScalingEnabledOn()
            self._crop_observers = [
                widget.AddObserver("InteractionEvent", lambda *_: self._on_crop_moved()),
                widget.AddObserver("StartInteractionEvent", lambda *_: self._on_start_interaction()),
                widget.AddObserver("EndInteractionEvent", lambda *_: self._on_end_interaction())]
            self._crop_widget = widget
            self._ensure_initialized()
            widget.On()
            self._on_crop_moved()
        elif not on and self._crop_widget is not None:
            widget, self._crop_widget = self._crop_widget, None
            for tag in self._crop_observers:
                widget.RemoveObserver(tag)
            widget.Off()
            widget.SetInteractor(None)
            self.scene.set_crop_box(None)
        self.request_render()

    def _on_crop_moved(self) -> None:
        if self._crop_widget is not None:
            bounds = self._crop_widget.GetRepresentation().GetBounds()
            self.scene.set_crop_box(bounds)

    @property
    def crop_enabled(self) -> bool:
        return self._crop_widget is not None

    # --- transfer-function editor ---------------------------------------------------------------
    def open_transfer_editor(self):
        """Open (or raise) the transfer-function editor of the current volume's preset."""
        if self.scene.volume is None or self._closed:
            return None
        from viewer.qt.panels.transfer_editor import TransferEditor

        if self._editor is None:
            self._editor = TransferEditor(self.scene.volume.array, self.scene.preset, parent=self)
            self._editor.preset_edited.connect(self.set_preset)
            self._editor.destroyed.connect(lambda *_: setattr(self, "_editor", None))
        else:
            self._editor.set_histogram(self.scene.volume.array)
            self._editor.set_preset(self.scene.preset)
        self._editor.show()
        self._editor.raise_()
        return self._editor

    # --- closing ---------------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        """``shutdown`` has run: the view draws nothing any more."""
        return self._closed

    def shutdown(self) -> None:
        """Cancel surface builds (joining their threads), drop observers, finalize the render window. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._settle.stop()
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
        self._jobs.clear()
        self._job_of.clear()
        self._lod.clear()
        if self._editor is not None:
            self._editor.close()
            self._editor = None
        if self._crop_widget is not None:
            widget, self._crop_widget = self._crop_widget, None
            for tag in self._crop_observers:
                widget.RemoveObserver(tag)
            widget.Off()
            widget.SetInteractor(None)
        for obj, tag in self._observers:
            obj.RemoveObserver(tag)
        self._observers = []
        self.vtk_widget.closed = True
        self.interactor.Disable()
        self.scene.close()
        self.scene.detach(self.render_window)
        self.interactor.SetInteractorStyle(None)
        self.render_window.Finalize()
        self.interactor.TerminateApp()

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
            top_left = view.vtk_widget.mapTo(widget, view.vtk_widget.rect().topLeft())
            picture = view.capture_image()
            picture.setDevicePixelRatio(picture.width() / max(1, view.vtk_widget.width()))
            painter.drawImage(top_left, picture)
        painter.end()
    return image
