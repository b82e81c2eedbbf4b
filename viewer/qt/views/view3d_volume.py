"""The volume and the cursor of the 3D view: a new volume prepared off the GUI thread (started once the GUI has
redrawn its 2D views), shown when ready, the first frame at interactive quality; the time point of a 4D series
followed (while the view is shown); the volume cleared; the cursor moved. A mixin of
:class:`~viewer.qt.views.view3d.View3D` (it uses the view's scene, tasks and frame presenter).

Time points (``timepoint_changed``): the session's time point is prepared in a worker
(:func:`~viewer.render3d.volume_prep.prepare_timepoint`: the same range and interactive step as the first) while the
scene keeps drawing the one it has; one preparation runs at a time, and the time points asked for meanwhile replace
each other, so cine over time never queues work. A result is shown when it is the session's time point, or when
the scene still shows an older request's (cine runs ahead of the preparation: the 3D follows as fast as it can);
never over the session's own. Then the newest time point asked for is prepared, if the scene does not show it.
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
                array, t = volume.array, volume.timepoint  # (read here: the GUI thread moves the time point)
                self._prep_job = self.tasks.submit(
                    lambda _progress, cancel: prepare_volume(volume, cancel=cancel, array=array, timepoint=t))

        self._prep_start = IdleStart(start, self, tick_ms=10, quiet_ticks=2, min_ms=0, max_ms=1000)

    def _cancel_preparation(self) -> None:
        if self._time_job is not None:
            self.tasks.cancel(self._time_job)
            self._time_job = None
        if self._prep_start is not None:
            self._prep_start.cancel()
            self._prep_start = None
        if self._prep_job is not None:
            self.tasks.cancel(self._prep_job)
            self._prep_job = None
        self._prep_volume = None

    def _finish_preparation(self) -> None:
        """A preparation still waiting or running is done here, now (for an explicit capture): the volume, and the
        session's time point."""
        volume = self.session.volume
        if self._prep_volume is not None and volume is not None:
            from viewer.render3d.volume_prep import prepare_volume

            self._cancel_preparation()
            self._show_volume(prepare_volume(volume))
        prepared = self._scene.prepared
        if volume is not None and prepared is not None and prepared.volume is volume \
                and prepared.timepoint != volume.timepoint:
            from viewer.render3d.volume_prep import prepare_timepoint

            if self._time_job is not None:
                self.tasks.cancel(self._time_job)
                self._time_job = None
            self._show_timepoint(prepare_timepoint(prepared, volume.timepoint, volume.array))

    # --- the time point of a 4D series ----------------------------------------------------------------------
    def _on_timepoint_changed(self, _t: int) -> None:
        if self._built and not self._closed:
            self._follow_timepoint()

    def _follow_timepoint(self) -> None:
        """Prepare the session's time point in a worker unless the scene draws it, or a preparation runs (its result
        comes first; this is asked again then). A hidden view (1×1, 1×3) waits until it is shown."""
        volume = self.session.volume
        prepared = self._scene.prepared
        if self._closed or self._time_job is not None or volume is None or prepared is None or not self.isVisible():
            return
        if prepared.volume is not volume or prepared.timepoint == volume.timepoint:
            return  # (a new volume being prepared is prepared at the time point it shows then, and follows after)
        from viewer.render3d.volume_prep import prepare_timepoint

        array, t = volume.array, volume.timepoint  # (read here, on the GUI thread)
        self._time_job = self.tasks.submit(lambda _progress, cancel: prepare_timepoint(prepared, t, array, cancel))

    def _on_timepoint_prepared(self, prepared) -> None:
        """A worker's time point: shown unless the scene draws the session's time point already or it is of another
        volume; then the newest time point asked for."""
        volume = self.session.volume
        shown = self._scene.prepared
        if self._closed or volume is None or shown is None or prepared.volume is not volume \
                or shown.volume is not volume:
            return
        if prepared.timepoint == volume.timepoint or shown.timepoint != volume.timepoint:
            self._show_timepoint(prepared)
        self._follow_timepoint()

    def _on_timepoint_failed(self, message: str) -> None:
        self.status.setText(f"3D time point failed: {message}")

    def _show_timepoint(self, prepared) -> None:
        self._scene.show_timepoint(prepared)
        self._transient_change()

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
