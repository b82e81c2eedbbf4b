"""The viewer's one mutable state: the loaded volume, the cursor, window/level, overlay layers, annotations.

Views and panels subscribe to its events (past tense) and call its methods
(imperative); it renders nothing and knows nothing of Qt. Events fire on the
thread that calls the method: the GUI calls it from the GUI thread only.
"""
from __future__ import annotations

import numpy as np
from psygnal import Signal

from radview_base.geometry import require_same_grid
from viewer.core.annotations import AnnotationSet, study_key
from viewer.core.layers import LabelLayer, MarkerLayer
from viewer.core.reformat import PlaneRotations, Slab
from viewer.core.window_presets import FROM_FILE, WindowPreset, file_window, find_preset
from viewer.io.volume import Volume


class Session:
    volume_loaded = Signal(object)  # Volume
    volume_cleared = Signal()
    images_loaded = Signal(object)  # viewer.io.planar.PlanarSeries: a 2D series (radiographs, US, cine …)
    images_cleared = Signal()
    cursor_moved = Signal(object)  # np.ndarray LPS (3,)
    window_changed = Signal(float, float, str)  # width, level, preset name ("" when custom)
    display_changed = Signal()  # invert, corner text, patient data, overlays, crosshair
    scaling_chosen = Signal(str)  # how the open series' stored values should map to values ("display", "philips-float")
    layer_added = Signal(object)
    layer_removed = Signal(object)
    layer_changed = Signal(object)
    labels_edited = Signal(object, bool)  # label layer whose voxels changed; True once a stroke (or its undo) is done
    active_label_changed = Signal()  # the label that the brush paints (``active_label``)
    reformat_changed = Signal()  # the slab (MIP, MinIP, average and its thickness) or the planes' rotation
    timepoint_changed = Signal(int)  # the time point of a 4D series shown (``volume.array`` is it)
    classification_added = Signal(object)  # viewer.core.ai_bridge.ClassifiedSeries: a classifier's answer
    classification_removed = Signal(object)

    def __init__(self) -> None:
        self.volume: Volume | None = None
        self.images = None  # the open 2D series (viewer.io.planar.PlanarSeries), when a 2D series is open
        self.cursor_lps = np.zeros(3)
        self.width, self.level, self.preset_name = 1.0, 0.0, FROM_FILE
        self.invert = False
        self.show_corner_text = True
        self.show_patient_data = True
        self.overlays_visible = True
        self.show_crosshair = True  # the linked cursor's lines in the 2D views
        self.layers: list[LabelLayer | MarkerLayer] = []
        #: classification models' answers for the open series (``ai_bridge.ClassifiedSeries``); no layers
        self.classifications: list = []
        self.annotations = AnnotationSet()  # the study's measurements (kept on disk by annotation_store.Autosave)
        #: True while load_volume / clear drop the previous series' layers: a ``layer_removed`` then is no deletion
        #: (the layer autosave keeps such layers on disk; see layer_store)
        self.dropping_layers = False
        self._active_label: tuple[LabelLayer, int] | None = None
        self.slab = Slab()  # thick-slab projection of the reading views ("" mode: the plain slice)
        self.rotations = PlaneRotations()  # how far the crosshair's planes are rotated (oblique reformats)

    # --- volume -----------------------------------------------------------------
    def load_volume(self, volume: Volume, preset: str | None = None) -> None:
        """Show ``volume`` (dropping the layers of the previous one), cursor at its centre.

        The annotations stay while the volume is of the same study; another study starts an empty set.
        """
        self._drop_layers()
        self._drop_images()
        self.volume = volume
        self.annotations.volume = volume
        self.rotations = PlaneRotations()
        key = study_key(volume.meta)
        if key != self.annotations.study_uid or not key:
            self.annotations.open_study(key)
        centre = (np.asarray(volume.shape_zyx) - 1) / 2.0
        self.cursor_lps = volume.geometry.index_to_world(np.floor(centre))
        self.width, self.level = file_window(volume.meta, volume.array)
        self.preset_name = FROM_FILE
        self.volume_loaded.emit(volume)
        if preset is not None:
            self.apply_preset(preset)
        else:
            self.window_changed.emit(self.width, self.level, self.preset_name)

    def clear(self) -> None:
        self._drop_layers()
        self._drop_images()
        self.volume = None
        self.annotations.volume = None
        self.volume_cleared.emit()

    # --- 2D images ------------------------------------------------------------------
    def load_images(self, series) -> None:
        """Show a 2D series (radiographs, mammograms, ultrasound, cine) instead of a volume."""
        if self.volume is not None:
            self._drop_layers()
            self.volume = None
            self.annotations.volume = None
            self.volume_cleared.emit()
        self._drop_classifications()
        key = study_key(series.meta)
        if key != self.annotations.study_uid or not key:
            self.annotations.open_study(key)
        self.images = series
        self.annotations.images = series
        self.images_loaded.emit(series)

    def _drop_images(self) -> None:
        if self.images is not None:
            self.images = None
            self.annotations.images = None
            self.images_cleared.emit()

    def _drop_layers(self) -> None:
        self.dropping_layers = True
        try:
            for layer in list(self.layers):
                self.remove_layer(layer)
        finally:
            self.dropping_layers = False
        self._drop_classifications()

    def _drop_classifications(self) -> None:
        for item in list(self.classifications):
            self.remove_classification(item)

    # --- classifications ---------------------------------------------------------------
    def add_classification(self, classified) -> None:
        """Add a classification model's answer (``ai_bridge.ClassifiedSeries``) for the open series; a newer
        answer of the same model replaces the older one."""
        if self.volume is None and self.images is None:
            raise RuntimeError("open a series before adding an AI classification")
        for old in [c for c in self.classifications if c.provenance.model_id == classified.provenance.model_id
                    and c.sop_instance_uid == classified.sop_instance_uid]:
            self.remove_classification(old)
        self.classifications.append(classified)
        self.classification_added.emit(classified)

    def remove_classification(self, classified) -> None:
        if classified in self.classifications:
            self.classifications.remove(classified)
            self.classification_removed.emit(classified)

    @property
    def is_ct(self) -> bool:
        return self.volume is not None and self.volume.modality == "CT"

    # --- cursor ------------------------------------------------------------------
    def move_cursor(self, point_lps) -> None:
        """Move the linked cursor (clamped into the volume)."""
        p = np.asarray(point_lps, dtype=float)
        if self.volume is not None:
            g = self.volume.geometry
            idx = np.clip(g.world_to_index(p), 0, np.asarray(g.shape_zyx) - 1)
            p = g.index_to_world(idx)
        if np.allclose(p, self.cursor_lps, atol=1e-6):
            return
        self.cursor_lps = p
        self.cursor_moved.emit(p.copy())

    def cursor_index(self) -> np.ndarray:
        """The cursor as an array index ``(z, y, x)`` (floats)."""
        return self.volume.geometry.world_to_index(self.cursor_lps)

    # --- window / level ------------------------------------------------------------
    def set_window(self, width: float, level: float, preset_name: str = "") -> None:
        self.width, self.level, self.preset_name = max(float(width), 1e-3), float(level), preset_name
        self.window_changed.emit(self.width, self.level, self.preset_name)

    def apply_preset(self, name_or_preset: str | WindowPreset) -> None:
        """A CT preset by name (see window_presets), or "from file"."""
        preset = name_or_preset if isinstance(name_or_preset, WindowPreset) else find_preset(name_or_preset)
        if preset is None:
            if self.volume is not None:
                w, lvl = file_window(self.volume.meta, self.volume.array)
                self.set_window(w, lvl, FROM_FILE)
            return
        self.set_window(preset.width, preset.level, preset.name)

    @property
    def levels(self) -> tuple[float, float]:
        return self.level - self.width / 2, self.level + self.width / 2

    # --- display options -------------------------------------------------------------
    def set_display(self, **options) -> None:
        """invert, show_corner_text, show_patient_data, overlays_visible, show_crosshair."""
        unknown = set(options) - {"invert", "show_corner_text", "show_patient_data", "overlays_visible",
                                  "show_crosshair"}
        if unknown:
            raise AttributeError(f"unknown display option(s): {', '.join(sorted(unknown))}")
        for name, value in options.items():
            setattr(self, name, bool(value))
        self.display_changed.emit()

    def choose_scaling(self, scaling: str) -> None:
        """The user chose how the open series' stored values become values (Philips: "display" values or
        "philips-float" floating-point values, ``viewer.io.series_loader.SCALINGS``); whoever loads series (the
        study opener) loads it again that way."""
        from viewer.io.series_loader import SCALINGS

        if scaling not in SCALINGS:
            raise ValueError(f"scaling must be one of {SCALINGS}, got {scaling!r}")
        self.scaling_chosen.emit(scaling)

    # --- reformats and time ----------------------------------------------------------------
    def set_slab(self, mode: str, thickness_mm: float | None = None) -> None:
        """Thick slabs in every reading view: ``mode`` "MIP", "MinIP", "Average" or "" (the plain slice)."""
        slab = Slab(mode, self.slab.thickness_mm if thickness_mm is None else float(thickness_mm))
        if slab != self.slab:
            self.slab = slab
            self.reformat_changed.emit()

    def rotate_planes(self, view: str, angle: float) -> None:
        """Turn ``view``'s crosshair by ``angle`` (radians): the other two planes rotate about its normal through
        the cursor (:meth:`viewer.core.reformat.PlaneRotations.rotate`)."""
        if self.volume is None or not angle:
            return
        self.rotations = self.rotations.rotate(view, angle, self.volume.geometry, self.cursor_lps)
        self.reformat_changed.emit()

    def reset_rotations(self) -> None:
        """The reading views back to the volume's own planes."""
        if self.rotations != PlaneRotations():
            self.rotations = PlaneRotations()
            self.reformat_changed.emit()

    @property
    def timepoint(self) -> int:
        return self.volume.timepoint if self.volume is not None else 0

    @property
    def n_timepoints(self) -> int:
        return self.volume.n_timepoints if self.volume is not None else 0

    def set_timepoint(self, t: int) -> None:
        """Show time point ``t`` of a 4D series (clamped): ``volume.array`` becomes it."""
        if self.volume is None:
            return
        t = int(np.clip(int(t), 0, self.volume.n_timepoints - 1))
        if t != self.volume.timepoint:
            self.volume.show_timepoint(t)
            self.timepoint_changed.emit(t)

    # --- layers -----------------------------------------------------------------------
    def add_layer(self, layer: LabelLayer | MarkerLayer) -> None:
        """Add an overlay; a label map must lie on the volume's grid (GeometryMismatchError otherwise)."""
        if self.volume is None:
            raise RuntimeError("load a series before adding overlays")
        if isinstance(layer, LabelLayer):
            require_same_grid(self.volume.geometry, layer.geometry, what=f"label map {layer.name!r}")
        self.layers.append(layer)
        self.layer_added.emit(layer)

    def remove_layer(self, layer) -> None:
        if layer in self.layers:
            self.layers.remove(layer)
            self.layer_removed.emit(layer)
            if self._active_label is not None and self._active_label[0] is layer:
                self._active_label = None
                self.active_label_changed.emit()

    def notify_labels_edited(self, layer: LabelLayer, finished: bool = True) -> None:
        """A label layer's voxels changed (a brush stroke, live while ``finished`` is False; its undo or redo)."""
        self.labels_edited.emit(layer, bool(finished))

    @property
    def active_label(self) -> tuple[LabelLayer, int] | None:
        """``(label layer, label)`` the brush paints: the one chosen (legend, toolbar), else the first label of
        the last label layer added; None without label layers."""
        if self._active_label is not None and self._active_label[0] in self.layers:
            return self._active_label
        layers = self.label_layers()
        if not layers:
            return None
        layer = layers[-1]
        labels = sorted(label for label in (set(layer.colors) | set(layer.label_map.labels)) if label > 0)
        return (layer, labels[0]) if labels else None

    def set_active_label(self, layer: LabelLayer, label: int) -> None:
        if layer not in self.layers or not isinstance(layer, LabelLayer):
            raise ValueError("the active label must be of a label layer shown in the session")
        choice = (layer, int(label))
        if self._active_label != choice:
            self._active_label = choice
            self.active_label_changed.emit()

    def update_layer(self, layer, **changes) -> None:
        """Change a layer's display settings (opacity, outline, visible, hidden_labels, colors)."""
        unknown = [name for name in changes if not hasattr(layer, name)]
        if unknown:
            raise AttributeError(f"unknown layer setting(s): {', '.join(unknown)}")
        for name, value in changes.items():
            setattr(layer, name, value)
        self.layer_changed.emit(layer)

    def label_layers(self) -> list[LabelLayer]:
        return [layer for layer in self.layers if isinstance(layer, LabelLayer)]

    def marker_layers(self) -> list[MarkerLayer]:
        return [layer for layer in self.layers if isinstance(layer, MarkerLayer)]
