"""The 3D view's controls: rendering preset, shading, volume on/off, camera views and Reset, the crop box, the
transfer-function editor. A mixin of :class:`~viewer.qt.views.view3d.View3D` (it uses the view's scene, toolbar and
frame presenter); each change asks for a frame (interactive first while full-quality frames are slow).
"""
from __future__ import annotations

from viewer.qt.views.view3d_toolbar import CUSTOM_PRESET

#: after a camera preset or reset, zoom in by this much: VTK fits the box's bounding sphere (so that
#: turning never clips it), which leaves the box itself small in the pane
CAMERA_ZOOM = 1.4


def preset_choices(modality: str) -> list[str]:
    """Preset names offered for a modality: its own; for other modalities the relative (any-scale) ones."""
    from viewer.render3d.transfer_presets import PRESETS, preset_names

    if modality.upper() in ("CT", "MR"):
        return preset_names(modality.upper())
    return [n for n, p in PRESETS.items() if p.units == "relative"]


class ViewControls:
    """Preset, shading, volume, camera, crop box and transfer-function editor of a 3D view (mixin)."""

    # --- controls -----------------------------------------------------------------------------
    def _update_controls(self) -> None:
        from viewer.render3d.transfer_presets import PRESETS

        volume = self._scene.volume if self._built else None
        if volume is None:
            self.toolbar.show_presets([], None)
        else:
            self.toolbar.show_presets([(name, PRESETS[name].title) for name in preset_choices(volume.modality)],
                                      self._scene.preset.name if self._scene.preset else None)
        self._sync_shading_button()
        self.toolbar.set_volume_controls_enabled(volume is not None)

    def _sync_shading_button(self) -> None:
        preset = self._scene.preset if self._built else None
        self.toolbar.set_checked_quietly(self.shading_button, bool(preset is not None and preset.shade))

    def _on_preset_chosen(self, index: int) -> None:
        name = self.preset_combo.itemData(index)
        if name and name != CUSTOM_PRESET:
            self.set_preset(name)

    def set_preset(self, preset) -> None:
        """Show the volume with a named preset or an edited :class:`TransferPreset` (no volume: ignored)."""
        if not self._built or self._scene.volume is None:
            return
        self._scene.set_preset(preset)
        self._presenter.frame_ms.pop("full", None)  # another transfer function renders at another speed
        self.toolbar.select_preset(preset if isinstance(preset, str) else CUSTOM_PRESET)
        self._sync_shading_button()
        if self._editor is not None and isinstance(preset, str):
            self._editor.set_preset(self._scene.preset)
        self._transient_change()

    def set_shading(self, on: bool) -> None:
        if not self._built:
            return
        self._scene.set_shading(bool(on))
        self._sync_shading_button()
        self._transient_change()

    def set_volume_visible(self, on: bool) -> None:
        if not self._built:
            return
        self._scene.set_volume_visible(bool(on))
        self.toolbar.set_checked_quietly(self.volume_button, bool(on))
        self._transient_change()

    def set_camera(self, view: str) -> None:
        """Look from the patient's ``view`` side: anterior, posterior, left, right, superior, inferior."""
        if not self._built:
            return
        self._scene.set_camera(view)
        self._zoom_to_fit()
        self._transient_change()

    def reset_camera(self) -> None:
        """Fit the scene in the view, keeping the viewing direction."""
        if not self._built:
            return
        self._scene.reset_camera()
        self._zoom_to_fit()
        self._transient_change()

    def _zoom_to_fit(self) -> None:
        if self._scene.scene_bounds_lps() is not None:
            self._scene.renderer.GetActiveCamera().Zoom(CAMERA_ZOOM)
            self._scene.renderer.ResetCameraClippingRange()

    # --- crop box -------------------------------------------------------------------------------
    def set_crop_enabled(self, on: bool) -> None:
        """Show a box widget around the volume whose faces crop the rendering; off: no cropping."""
        on = bool(on) and self._built and self._scene.volume is not None and not self._closed
        self.toolbar.set_checked_quietly(self.crop_button, on)
        if on and self._crop is None:
            from viewer.render3d.crop_box import CropBox

            self._ensure_initialized()
            self._crop = CropBox(self._interactor, self.overlay,
                                 self._scene.crop_box_lps or self._scene.volume_bounds_lps(),
                                 on_moved=self._on_crop_moved, on_start=self._presenter.start_interaction,
                                 on_end=self._presenter.end_interaction)
            self._on_crop_moved(self._crop.bounds())
        elif not on and self._crop is not None:
            crop, self._crop = self._crop, None
            crop.close()
            self._scene.set_crop_box(None)
        self.request_render()

    def _on_crop_moved(self, bounds) -> None:
        self._scene.set_crop_box(bounds)
        self.request_render()

    def _crop_outline(self):
        return self._crop.bounds() if self._crop is not None else None

    @property
    def crop_box(self):
        """The crop box (:class:`~viewer.render3d.crop_box.CropBox`) while it is on, else None."""
        return self._crop

    @property
    def crop_enabled(self) -> bool:
        return self._crop is not None

    # --- transfer-function editor ---------------------------------------------------------------
    def open_transfer_editor(self):
        """Open (or raise) the transfer-function editor of the current volume's preset."""
        if not self._built or self._scene.volume is None or self._closed:
            return None
        from viewer.qt.panels.transfer_editor import TransferEditor

        if self._editor is None:
            self._editor = TransferEditor(self._scene.volume.array, self._scene.preset, parent=self)
            self._editor.preset_edited.connect(self.set_preset)
            self._editor.destroyed.connect(lambda *_: setattr(self, "_editor", None))
        else:
            self._editor.set_histogram(self._scene.volume.array)
            self._editor.set_preset(self._scene.preset)
        self._editor.show()
        self._editor.raise_()
        return self._editor
