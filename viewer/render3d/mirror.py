"""A scene that draws :class:`~viewer.render3d.frame_spec.FrameSpec` snapshots: the frame thread's side of the 3D view.

:class:`MirrorScene` keeps its own :class:`~viewer.render3d.scene.Scene3D` (volume props, cursor, orientation cube),
one actor per label surface and the outline of a crop box being edited, and brings them up to date with each spec
before drawing it: the volume and the surfaces are uploaded once (in the frame thread's OpenGL context), later
specs change only what differs. Every VTK object here is made and used on one thread; what comes from the spec is
read only (each surface is drawn through a shallow copy of its own, the volume's arrays through a
``vtkImageData`` of its own).

At interactive quality the volume's rays get sparser when frames are slow, aiming at
:data:`~viewer.render3d.level_of_detail.INTERACTIVE_TARGET_MS` (as the view does when it draws itself).
"""
from __future__ import annotations

import time

from vtkmodules.vtkCommonDataModel import vtkPolyData

from viewer.render3d.crop_box import CropOutline
from viewer.render3d.frame_spec import FrameResult, FrameSpec
from viewer.render3d.level_of_detail import adapted_image_sample_distance
from viewer.render3d.offscreen import read_pixels
from viewer.render3d.scene import Scene3D, surface_actor


class MirrorScene:
    """Draws frame specs into ``window`` (an offscreen render window made on this thread), the orientation cube
    and the crop box being edited included."""

    def __init__(self, window, mapper: str = "gpu"):
        self.window = window
        self.scene = Scene3D(mapper=mapper)
        self.scene.attach(window)
        self.crop_outline = CropOutline(self.scene.renderer)
        self.mapper_kind = self.scene.fall_back_if_unsupported(window)
        self._volume = None
        self._preset = None
        self._actors: dict[tuple, object] = {}  # surface key → actor
        self._copies: dict[int, tuple[object, vtkPolyData]] = {}  # id(source poly) → (source, our shallow copy)

    # --- bringing the scene up to date ----------------------------------------------------------
    def apply(self, spec: FrameSpec) -> None:
        scene = self.scene
        if spec.volume is not self._volume:
            self._volume, self._preset = spec.volume, None
            scene.set_volume(spec.volume, spec.preset)
        if spec.volume is not None and spec.preset is not None and spec.preset != self._preset:
            scene.set_preset(spec.preset)
            self._preset = spec.preset
        scene.set_quality(spec.quality)
        scene.set_volume_visible(spec.volume_visible)
        if spec.crop_box != scene.crop_box_lps:
            scene.set_crop_box(spec.crop_box)
        if scene.cursor.geometry is not spec.cursor_geometry:
            scene.cursor.set_geometry(spec.cursor_geometry)
        if spec.cursor is None:
            if scene.cursor.point_lps is not None:
                scene.set_cursor(None)
        elif scene.cursor.point_lps is None or tuple(scene.cursor.point_lps) != spec.cursor:
            scene.set_cursor(spec.cursor)
        self._apply_surfaces(spec.surfaces)
        self.crop_outline.show(spec.crop_outline)
        scene.set_orientation_marker_visible(spec.marker)
        scene.renderer.SetBackground(*spec.background)
        spec.camera.apply(scene.renderer.GetActiveCamera())
        w, h = spec.size
        if tuple(self.window.GetSize()) != (w, h):
            self.window.SetSize(max(1, w), max(1, h))

    def _copy_of(self, poly) -> vtkPolyData:
        entry = self._copies.get(id(poly))
        if entry is None or entry[0] is not poly:
            copy = vtkPolyData()
            copy.ShallowCopy(poly)
            entry = self._copies[id(poly)] = (poly, copy)
        return entry[1]

    def _apply_surfaces(self, surfaces) -> None:
        renderer = self.scene.renderer
        wanted = {s.key for s in surfaces}
        for key in [k for k in self._actors if k not in wanted]:
            renderer.RemoveActor(self._actors.pop(key))
        used = set()
        for look in surfaces:
            used.add(id(look.poly))
            copy = self._copy_of(look.poly)
            actor = self._actors.get(look.key)
            if actor is None:
                actor = self._actors[look.key] = surface_actor(copy)
                renderer.AddActor(actor)
            elif actor.GetMapper().GetInput() is not copy:
                actor.GetMapper().SetInputData(copy)
            prop = actor.GetProperty()
            prop.SetColor(*look.rgb)
            prop.SetOpacity(look.opacity)
            actor.SetVisibility(look.visible)
        for key in [k for k in self._copies if k not in used]:
            del self._copies[key]

    # --- drawing ------------------------------------------------------------------------------
    def render(self, spec: FrameSpec) -> FrameResult:
        """Bring the scene up to ``spec``, draw it and read it back."""
        self.apply(spec)
        t0 = time.perf_counter()
        self.window.Render()
        ms = (time.perf_counter() - t0) * 1e3
        rgb = read_pixels(self.window)
        prop = self.scene.volume_prop
        if spec.quality == "interactive" and prop is not None and prop.GetVisibility():
            mapper = prop.GetMapper()
            mapper.SetImageSampleDistance(adapted_image_sample_distance(mapper.GetImageSampleDistance(), ms))
        return FrameResult(spec.job, spec.quality, rgb, ms, spec.signature())

    def close(self) -> None:
        for actor in self._actors.values():
            self.scene.renderer.RemoveActor(actor)
        self._actors.clear()
        self._copies.clear()
        self.crop_outline.close()
        self.scene.close()
        self.scene.detach(self.window)
