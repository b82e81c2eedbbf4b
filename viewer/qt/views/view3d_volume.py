"""The volume and the cursor of the 3D view: a new volume prepared off the GUI thread (started once the GUI has
redrawn its 2D views), shown when ready, the first frame at interactive quality; the volume cleared; the cursor
moved. A mixin of :class:`~viewer.qt.views.view3d.View3D` (it uses the view's scene, tasks and frame presenter).
"""
from __future__ import annotations

from viewer.qt.views.view3d_loading import IdleStart

PREPARING_TEXT = "Preparing 3D…"


class VolumeSteps:
    """What the 3D view does with the session's volume and cursor (mixin)."""

    # --- the volume -------------------------------------------------------------------------------
    def _on_volume_loaded(self, volume) -> None:
        if not self._built or self._closed:
            return
        from viewer.render3d.volume_prep import prepare_volume, prepares_inline

        self.set_crop_enabled(False)
        self._cancel_preparation()
        self._presenter.invalidate()
        self._set_message(PREPARING_TEXT)
        if volume.is_color:
            self._show_volume(None, volume)
            return
        if prepares_inline(volume):
            self._show_volume(prepare_volume(volume))
            return
        self._prep_volume = volume

        def start() -> None:  # once the GUI has redrawn its 2D views for the new volume
            self._prep_start = None
            if self._prep_volume is volume and not self._closed:
                self._prep_job = self.tasks.submit(lambda _progress, cancel: prepare_volume(volume, cancel=cancel))

        self._prep_start = IdleStart(start, self, tick_ms=10, quiet_ticks=2, min_ms=0, max_ms=1000)

    def _cancel_preparation(self) -> None:
        if self._prep_start is not None:
            self._prep_start.cancel()
            self._prep_start = None
        if self._prep_job is not None:
            self.tasks.cancel(self._prep_job)
            self._prep_job = None
        self._prep_volume = None

    def _finish_preparation(self) -> None:
        """A preparation still waiting or running is done here, now (for an explicit capture)."""
        volume = self.session.volume
        if self._prep_volume is not None and volume is not None:
            from viewer.render3d.volume_prep import prepare_volume

            self._cancel_preparation()
            self._show_volume(prepare_volume(volume))

    def _show_volume(self, prepared, colour_volume=None) -> None:
        """Put the prepared volume (None: a colour volume, shown as surfaces and cursor only) in the scene."""
        scene = self._scene
        self._presenter.set_quality("interactive")  # the first frame is a quick one
        try:
            scene.set_volume(prepared if prepared is not None else colour_volume)
        except ValueError as exc:  # a colour volume
            scene.set_volume(None)
            scene.cursor.set_geometry(colour_volume.geometry)
            self.status.setText(str(exc))
        scene.set_cursor(self.session.cursor_lps)
        scene.set_camera("anterior")
        self._zoom_to_fit()
        self._update_controls()
        if not self._presenter.threaded:
            self._set_message("")  # drawn here: the render widget shows it at once
        self._transient_change()

    def _on_volume_cleared(self) -> None:
        if not self._built or self._closed:
            return
        self.set_crop_enabled(False)
        self._cancel_preparation()
        self.surfaces.cancel_all()
        self._presenter.invalidate()
        self._scene.set_volume(None)
        for layer in list(self._shown_layers):
            self._scene.remove_label_layer(layer)
        self._shown_layers.clear()
        self._lod.clear()
        self._scene.set_cursor(None)
        self.status.setText("")
        self._set_message("")
        self._update_controls()
        self.request_render()

    def _on_cursor_moved(self, point) -> None:
        if self._built and not self._closed:
            self._scene.set_cursor(point)
            self._transient_change()
