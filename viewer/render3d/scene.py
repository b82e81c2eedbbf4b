"""``Scene3D``: the 3D view's content, owning a ``vtkRenderer`` and nothing Qt.

World coordinates are LPS millimetres, as in the 2D views. The volume is rendered by a GPU ray caster
(or VTK's CPU ray caster, ``Scene3D(mapper="cpu")``) from a ``vtkImageData`` that shares the
volume's array, placed in LPS by the prop's matrix (see :mod:`viewer.render3d.image_data`). Label
layers become one smoothed surface per label; build them off the GUI thread with
:func:`~viewer.render3d.label_surfaces.build_label_surfaces` and pass them to :meth:`Scene3D.set_label_layer`.

Display coordinates (``pick``, ``world_to_display``) are VTK's: pixels from the bottom-left corner of
the render window (a Qt widget's y must be flipped: ``y_vtk = height - 1 - y_qt``, times the device
pixel ratio).

Typical use (GUI thread)::

    scene = Scene3D()
    scene.attach(render_window)          # adds the scene and the orientation-cube renderers
    scene.set_volume(volume)             # CT: "ct_bone" preset; MR: "mr_default"
    scene.show_timepoint(prepared)       # another time point of a 4D volume (prepared in a worker)
    scene.set_camera("anterior")
    scene.set_label_layer(layer, surfaces)   # surfaces from a worker thread
    scene.set_cursor(session.cursor_lps)
    render_window.Render()
"""
from __future__ import annotations

import numpy as np
import vtkmodules.vtkRenderingFreeType  # noqa: F401  (text of the orientation cube)
import vtkmodules.vtkRenderingOpenGL2  # noqa: F401  (registers the OpenGL render window and mappers)
import vtkmodules.vtkRenderingVolumeOpenGL2  # noqa: F401  (the OpenGL GPU ray caster)
from vtkmodules.vtkRenderingCore import vtkActor, vtkCoordinate, vtkPolyDataMapper, vtkRenderer, vtkVolume
from vtkmodules.vtkRenderingVolume import vtkFixedPointVolumeRayCastMapper, vtkGPUVolumeRayCastMapper, vtkVolumePicker

from viewer.core.layers import LabelLayer
from viewer.io.volume import Volume
from viewer.render3d.camera_views import VIEWS, apply_camera_view
from viewer.render3d.cursor import SliceCursor
from viewer.render3d.frame_spec import CameraState, FrameSpec, SurfaceLook
from viewer.render3d.image_data import VtkImage, local_bounds, to_vtk_image
from viewer.render3d.label_surfaces import build_label_surfaces
from viewer.render3d.orientation_marker import CornerMarker
from viewer.render3d.transfer_presets import (
    TransferPreset,
    blend_mode_id,
    build_volume_property,
    default_preset_name,
    get_preset,
)
from viewer.render3d.volume_prep import INTERACTIVE_MAX_SIZE, PreparedVolume, prepare_volume

QUALITIES = ("full", "interactive")
#: Interactive quality casts one ray per this many pixels along each screen axis (GPU mapper).
INTERACTIVE_IMAGE_SAMPLE_DISTANCE = 2.0
#: Labels that wrap the others: their surfaces start see-through so the organs inside show.
CONTAINER_LABEL_NAMES = {"body", "skin", "body_surface"}
CONTAINER_OPACITY = 0.15
#: Ray samples per smallest voxel spacing in full quality (interactive: one per downsampled voxel).
#: 2 is smoother still but doubles the time: 512×512 of the demo CT, shaded, on llvmpipe 3.5 s vs 1.9 s.
FULL_SAMPLES_PER_VOXEL = 1.0


def surface_actor(poly) -> vtkActor:
    """An actor drawing a label surface as every scene does (Gouraud, a little specular; colour set by the caller)."""
    mapper = vtkPolyDataMapper()
    mapper.SetInputData(poly)
    mapper.ScalarVisibilityOff()
    actor = vtkActor()
    actor.SetMapper(mapper)
    prop = actor.GetProperty()
    prop.SetInterpolationToGouraud()
    prop.SetAmbient(0.1)
    prop.SetDiffuse(0.8)
    prop.SetSpecular(0.2)
    prop.SetSpecularPower(20.0)
    return actor


class Scene3D:
    """Volume rendering, label surfaces, cursor, crop box and camera presets of one 3D view."""

    def __init__(self, background=(0.0, 0.0, 0.0), mapper: str = "gpu",
                 interactive_max_size: int = INTERACTIVE_MAX_SIZE):
        if mapper not in ("gpu", "cpu"):
            raise ValueError(f"mapper is 'gpu' or 'cpu', got {mapper!r}")
        self.renderer = vtkRenderer()
        self.renderer.SetBackground(*background)
        self.marker = CornerMarker(self.renderer)
        self.cursor = SliceCursor()
        for actor in self.cursor.actors:
            self.renderer.AddActor(actor)
        self.mapper_kind = mapper
        self.interactive_max_size = int(interactive_max_size)
        self.volume: Volume | None = None
        self.prepared: PreparedVolume | None = None  # the volume's arrays as drawn
        self.preset: TransferPreset | None = None  # resolved: in the volume's intensities
        self.quality = "full"
        self.volume_visible = True
        self.crop_box_lps: tuple[float, ...] | None = None
        self.volume_property = build_volume_property(get_preset("ct_bone"))
        self._range = (0.0, 1.0)
        self._images: dict[str, VtkImage] = {}
        self._props: dict[str, vtkVolume] = {}
        self._labels: dict[LabelLayer, dict[int, vtkActor]] = {}
        self._picker = vtkVolumePicker()
        self._picker.SetTolerance(1e-6)
        self._picker.SetVolumeOpacityIsovalue(0.1)
        self._picker.PickFromListOn()

    # --- window -------------------------------------------------------------
    @property
    def renderers(self) -> list[vtkRenderer]:
        """The renderers to add to a window: the scene (layer 0) and the orientation cube (layer 1)."""
        return [self.renderer, self.marker.renderer]

    def attach(self, render_window) -> None:
        """Add this scene's renderers to ``render_window`` (two layers)."""
        render_window.SetNumberOfLayers(max(2, render_window.GetNumberOfLayers()))
        for r in self.renderers:
            if not render_window.HasRenderer(r):
                render_window.AddRenderer(r)

    def detach(self, render_window) -> None:
        for r in self.renderers:
            render_window.RemoveRenderer(r)

    def close(self) -> None:
        """Drop the volume, surfaces and observers (call before the window goes)."""
        self.set_volume(None)
        for layer in list(self._labels):
            self.remove_label_layer(layer)
        self.marker.close()

    def set_orientation_marker_visible(self, on: bool) -> None:
        """Show or hide the corner cube (hide it when the GUI uses :func:`add_orientation_widget` instead)."""
        self.marker.set_visible(on)

    def fall_back_if_unsupported(self, render_window) -> str:
        """Switch to the CPU ray caster if the window's OpenGL can't run the GPU one; return the mapper kind."""
        if self.mapper_kind == "gpu":
            probe = vtkGPUVolumeRayCastMapper()
            if not probe.IsRenderSupported(render_window, self.volume_property):
                self.mapper_kind = "cpu"
                self._rebuild_volume_props()
        return self.mapper_kind

    # --- volume -------------------------------------------------------------
    def set_volume(self, volume: Volume | PreparedVolume | None, preset: str | TransferPreset | None = None) -> None:
        """Render ``volume`` (``None`` removes it) with ``preset`` (default: the modality's default preset).

        A :class:`~viewer.render3d.volume_prep.PreparedVolume` (made off the GUI thread) is used as it is; a plain
        ``Volume`` is prepared here (its range and interactive copy: tens of ms for a big CT).
        """
        for prop in self._props.values():
            self.renderer.RemoveVolume(prop)
        self._props.clear()
        self._images.clear()
        first = self.volume is None
        if volume is not None and not isinstance(volume, PreparedVolume):
            if volume.is_color:
                self.volume, self.prepared = volume, None
                self.cursor.set_geometry(volume.geometry)
                raise ValueError("colour (RGB) volumes are not volume-rendered")
            volume = prepare_volume(volume, self.interactive_max_size)
        self.prepared = volume
        self.volume = None if volume is None else volume.volume
        self.cursor.set_geometry(None if volume is None else self.volume.geometry)
        if volume is None:
            return
        self._range = volume.value_range
        self._rebuild_volume_props()
        self.set_preset(preset if preset is not None else default_preset_name(self.volume.modality))
        if first:
            self.set_camera("anterior")

    def show_timepoint(self, prepared: PreparedVolume) -> None:
        """Draw another time point of the 4D volume shown (:func:`~viewer.render3d.volume_prep.prepare_timepoint`):
        new images and props for its arrays; the transfer function, crop box, visibility, quality and camera stay."""
        if self.volume is None or prepared.volume is not self.volume:
            raise ValueError("a time point of another volume than the one shown")
        for prop in self._props.values():
            self.renderer.RemoveVolume(prop)
        self._props.clear()
        self._images.clear()
        self.prepared = prepared
        self._rebuild_volume_props()

    @property
    def timepoint(self) -> int | None:
        """The time point of the volume drawn (0 for a 3D volume; None without a volume)."""
        return None if self.prepared is None else self.prepared.timepoint

    def image_data(self, quality: str | None = None):
        """The ``vtkImageData`` drawn at ``quality`` (default: the current one); None without a volume."""
        if self.prepared is None:
            return None
        return self._image(quality or self.quality).image

    def _image(self, quality: str) -> VtkImage:
        if quality not in self._images:
            array, geometry = self.prepared.array(quality)
            full = self._images.get("full")
            if full is not None and full.array is array:
                self._images[quality] = full
            else:
                self._images[quality] = to_vtk_image(array, geometry, frame="local")
        return self._images[quality]

    def _make_mapper(self, image: VtkImage, quality: str):
        spacing = float(min(image.geometry.spacing_zyx))
        if self.mapper_kind == "gpu":
            mapper = vtkGPUVolumeRayCastMapper()
            mapper.AutoAdjustSampleDistancesOff()
            mapper.LockSampleDistanceToInputSpacingOff()
            mapper.SetSampleDistance(spacing / FULL_SAMPLES_PER_VOXEL if quality == "full" else spacing)
            mapper.SetImageSampleDistance(1.0 if quality == "full" else INTERACTIVE_IMAGE_SAMPLE_DISTANCE)
            mapper.SetUseJittering(1)  # random ray offsets: fine noise instead of wood-grain rings
        else:
            mapper = vtkFixedPointVolumeRayCastMapper()
            mapper.AutoAdjustSampleDistancesOff()
            mapper.SetSampleDistance(spacing / FULL_SAMPLES_PER_VOXEL if quality == "full" else spacing)
            mapper.SetImageSampleDistance(1.0 if quality == "full" else 2.0)
        mapper.SetInputData(image.image)
        return mapper

    def _prop(self, quality: str) -> vtkVolume:
        if quality not in self._props:
            image = self._image(quality)
            prop = vtkVolume()
            prop.SetMapper(self._make_mapper(image, quality))
            prop.SetProperty(self.volume_property)
            prop.SetUserMatrix(image.lps_matrix())
            self._props[quality] = prop
            self.renderer.AddVolume(prop)
            self._apply_blend()
            self._apply_crop()
        return self._props[quality]

    def _rebuild_volume_props(self) -> None:
        for prop in self._props.values():
            self.renderer.RemoveVolume(prop)
        self._props.clear()
        if self.volume is not None:
            self._prop(self.quality)
            self._apply_visibility()

    def _apply_visibility(self) -> None:
        for quality, prop in self._props.items():
            prop.SetVisibility(self.volume_visible and quality == self.quality)

    @property
    def volume_prop(self) -> vtkVolume | None:
        """The ``vtkVolume`` drawn at the current quality (None without a volume)."""
        return self._props.get(self.quality)

    def set_volume_visible(self, on: bool) -> None:
        self.volume_visible = bool(on)
        self._apply_visibility()

    def set_quality(self, quality: str) -> None:
        """``"full"``: all voxels, two samples per voxel. ``"interactive"``: a downsampled copy of the volume
        (at most ``interactive_max_size`` voxels along each axis), one sample per voxel, fewer rays.

        Both stay loaded once used (switching back and forth costs no upload).
        """
        if quality not in QUALITIES:
            raise ValueError(f"quality is one of {QUALITIES}, got {quality!r}")
        self.quality = quality
        if self.volume is not None:
            self._prop(quality)
            self._apply_visibility()

    # --- transfer function ----------------------------------------------------
    def set_preset(self, preset: str | TransferPreset) -> None:
        """Show the volume with a named preset or an edited :class:`TransferPreset`.

        Relative (MR) presets are resolved against the volume's robust intensity range; ``self.preset``
        is the resolved one (what an editor should show).
        """
        p = get_preset(preset) if isinstance(preset, str) else preset.copy()
        self.preset = p.resolved(*self._range)
        build_volume_property(self.preset, self.volume_property)
        self._apply_blend()

    def set_shading(self, on: bool) -> None:
        if self.preset is not None:
            self.preset.shade = bool(on)
        self.volume_property.SetShade(1 if on else 0)

    def _apply_blend(self) -> None:
        blend = blend_mode_id(self.preset.blend if self.preset is not None else "composite")
        for prop in self._props.values():
            prop.GetMapper().SetBlendMode(blend)

    # --- crop box -------------------------------------------------------------
    def set_crop_box(self, bounds_lps=None) -> None:
        """Render only the volume inside the LPS box ``(xmin, xmax, ymin, ymax, zmin, zmax)``; ``None``: all.

        Exact for grids parallel to the LPS axes; for an oblique grid, the grid-aligned box around it.
        """
        self.crop_box_lps = None if bounds_lps is None else tuple(float(v) for v in bounds_lps)
        self._apply_crop()

    def _apply_crop(self) -> None:
        for quality, prop in self._props.items():
            mapper = prop.GetMapper()
            if self.crop_box_lps is None:
                mapper.CroppingOff()
                continue
            planes = local_bounds(self.crop_box_lps, self._images[quality].geometry)
            mapper.SetCroppingRegionPlanes(*planes)
            mapper.SetCroppingRegionFlagsToSubVolume()
            mapper.CroppingOn()

    def volume_bounds_lps(self) -> tuple[float, ...] | None:
        """The LPS box around the volume's voxel centres (None without a volume)."""
        if self.volume is None:
            return None
        c = self.volume.geometry.corners_lps()
        lo, hi = c.min(axis=0), c.max(axis=0)
        return (lo[0], hi[0], lo[1], hi[1], lo[2], hi[2])

    # --- label surfaces -------------------------------------------------------
    def set_label_layer(self, layer: LabelLayer, surfaces: dict | None = None) -> None:
        """Show ``layer`` as surfaces: ``surfaces`` from :func:`build_label_surfaces` (built here if None)."""
        if surfaces is None:
            surfaces = build_label_surfaces(layer.label_map)
        self.remove_label_layer(layer)
        actors: dict[int, vtkActor] = {}
        for label, poly in surfaces.items():
            actor = surface_actor(poly)
            name = layer.label_name(label).strip().lower().replace(" ", "_")
            layer.surface_opacity.setdefault(label, CONTAINER_OPACITY if name in CONTAINER_LABEL_NAMES else 1.0)
            actors[label] = actor
            self.renderer.AddActor(actor)
        self._labels[layer] = actors
        self.update_label_layer(layer)

    def update_label_layer(self, layer: LabelLayer) -> None:
        """Re-read ``layer``'s colours, visibility and hidden labels (after the user changed them)."""
        for label, actor in self._labels.get(layer, {}).items():
            rgb = layer.colors.get(label, (255, 255, 255))
            actor.GetProperty().SetColor(*(c / 255.0 for c in rgb))
            actor.GetProperty().SetOpacity(layer.surface_opacity.get(label, 1.0))
            actor.SetVisibility(bool(layer.visible and label not in layer.hidden_labels))

    def remove_label_layer(self, layer: LabelLayer) -> None:
        for actor in self._labels.pop(layer, {}).values():
            self.renderer.RemoveActor(actor)

    def set_label_visible(self, layer: LabelLayer, label: int, on: bool) -> None:
        """Show or hide one label's surface (kept in ``layer.hidden_labels``, shared with the 2D views)."""
        (layer.hidden_labels.discard if on else layer.hidden_labels.add)(int(label))
        self.update_label_layer(layer)

    def set_label_opacity(self, layer: LabelLayer, label: int, opacity: float) -> None:
        """The 3D opacity (0-1) of one label's surface (the 2D fill opacity is the layer's own)."""
        layer.surface_opacity[int(label)] = float(np.clip(opacity, 0.0, 1.0))
        self.update_label_layer(layer)

    def label_actors(self, layer: LabelLayer) -> dict[int, vtkActor]:
        return dict(self._labels.get(layer, {}))

    def label_layers(self) -> list[LabelLayer]:
        """The layers shown as surfaces."""
        return list(self._labels)

    # --- drawing elsewhere -------------------------------------------------------
    def set_drawn(self, on: bool) -> None:
        """Whether this scene's renderer draws in its window (off: another thread draws its :meth:`frame_spec`)."""
        self.renderer.SetDraw(bool(on))

    def frame_spec(self, job: int, size, crop_outline=None) -> FrameSpec:
        """What this scene shows now, as plain values another thread can draw (:mod:`viewer.render3d.mirror`).

        ``crop_outline``: the LPS bounds of a crop box being edited, drawn with its handles.
        """
        surfaces = []
        for layer, actors in self._labels.items():
            for label, actor in actors.items():
                prop = actor.GetProperty()
                surfaces.append(SurfaceLook((id(layer), int(label)), actor.GetMapper().GetInput(),
                                            tuple(prop.GetColor()), float(prop.GetOpacity()),
                                            bool(actor.GetVisibility())))
        point = self.cursor.point_lps
        return FrameSpec(int(job), (int(size[0]), int(size[1])), CameraState.of(self.renderer.GetActiveCamera()),
                         quality=self.quality, volume=self.prepared,
                         preset=None if self.preset is None else self.preset.copy(),
                         volume_visible=self.volume_visible, crop_box=self.crop_box_lps,
                         cursor=None if point is None else tuple(float(v) for v in point),
                         cursor_geometry=self.cursor.geometry, surfaces=tuple(surfaces),
                         background=tuple(self.renderer.GetBackground()), marker=bool(self.marker.renderer.GetDraw()),
                         crop_outline=None if crop_outline is None else tuple(float(v) for v in crop_outline))

    # --- cursor, picking --------------------------------------------------------
    def set_cursor(self, point_lps) -> None:
        """Show the linked cursor (plane outlines and a sphere) at an LPS point; ``None`` hides it."""
        self.cursor.set_point(point_lps)

    def pick(self, display_x: float, display_y: float) -> np.ndarray | None:
        """The LPS point under a display pixel (bottom-left origin), or None where nothing is hit.

        A visible label surface or, with a composite preset, the first voxel whose opacity passes 0.1
        (whichever is nearer). With a MIP/MinIP preset, where no surface is hit: the voxel that gave the
        pixel its value (the brightest/darkest along the ray, inside the crop box).
        """
        actors = [a for layer in self._labels.values() for a in layer.values() if a.GetVisibility()]
        prop = self.volume_prop
        volume = prop if prop is not None and prop.GetVisibility() else None
        projection = volume is not None and self.preset is not None and self.preset.blend != "composite"
        targets = actors + ([volume] if volume is not None and not projection else [])
        if targets:
            self._picker.InitializePickList()
            for t in targets:
                self._picker.AddPickList(t)
            if self._picker.Pick(display_x, display_y, 0.0, self.renderer) and self._picker.GetProp3D() is not None:
                return np.asarray(self._picker.GetPickPosition(), dtype=float)
        if projection:
            return self._pick_projection(display_x, display_y)
        return None

    def display_ray(self, display_x: float, display_y: float) -> tuple[np.ndarray, np.ndarray]:
        """The LPS points where the ray through a display pixel meets the near and far clipping planes."""
        ends = []
        for z in (0.0, 1.0):
            self.renderer.SetDisplayPoint(float(display_x), float(display_y), z)
            self.renderer.DisplayToWorld()
            w = np.asarray(self.renderer.GetWorldPoint(), dtype=float)
            ends.append(w[:3] / (w[3] if w[3] else 1.0))
        return ends[0], ends[1]

    def _pick_projection(self, display_x: float, display_y: float) -> np.ndarray | None:
        """The extreme (max for MIP, min for MinIP) voxel along the pixel's ray, as an LPS point."""
        geometry = self.volume.geometry
        near, far = self.display_ray(display_x, display_y)
        step = 0.5 * min(geometry.spacing_zyx)
        n = int(min(20000, max(2, np.ceil(np.linalg.norm(far - near) / step))))
        points = near + np.linspace(0.0, 1.0, n)[:, None] * (far - near)
        index = np.rint(geometry.world_to_index(points)).astype(int)
        inside = np.all((index >= 0) & (index < np.asarray(geometry.shape_zyx)), axis=1)
        if self.crop_box_lps is not None:
            b = local_bounds(self.crop_box_lps, geometry)
            local = (points - np.asarray(geometry.origin_lps)) @ np.linalg.inv(geometry.direction_matrix).T
            inside &= np.all((local >= np.array(b[0::2])) & (local <= np.array(b[1::2])), axis=1)
        if not inside.any():
            return None
        values = self.volume.array[tuple(index[inside].T)]
        best = int(np.argmax(values) if self.preset.blend == "mip" else np.argmin(values))
        return points[inside][best]

    def world_to_display(self, point_lps) -> tuple[float, float]:
        """Display position (pixels, bottom-left origin) of an LPS point with the current camera."""
        c = vtkCoordinate()
        c.SetCoordinateSystemToWorld()
        c.SetValue(*np.asarray(point_lps, dtype=float))
        x, y = c.GetComputedDoubleDisplayValue(self.renderer)
        return float(x), float(y)

    # --- camera ----------------------------------------------------------------
    def scene_bounds_lps(self) -> tuple[float, ...] | None:
        """The volume's box, else the box around the visible label surfaces (None if the scene is empty)."""
        b = self.volume_bounds_lps()
        if b is not None:
            return b
        boxes = [a.GetBounds() for actors in self._labels.values() for a in actors.values() if a.GetVisibility()]
        boxes = [bb for bb in boxes if bb[1] >= bb[0]]
        if not boxes:
            return None
        arr = np.asarray(boxes)
        return (arr[:, 0].min(), arr[:, 1].max(), arr[:, 2].min(), arr[:, 3].max(), arr[:, 4].min(), arr[:, 5].max())

    def set_camera(self, view: str) -> None:
        """Look at the scene from the patient's ``view`` side: anterior, posterior, left, right, superior, inferior."""
        if view not in VIEWS:
            raise KeyError(f"no camera view {view!r}; known: {', '.join(VIEWS)}")
        apply_camera_view(self.renderer, view, self.scene_bounds_lps())

    def reset_camera(self) -> None:
        """Fit the scene in the view, keeping the viewing direction."""
        bounds = self.scene_bounds_lps()
        if bounds is None:
            self.renderer.ResetCamera()
        else:
            self.renderer.ResetCamera(*bounds)
        self.renderer.ResetCameraClippingRange()
