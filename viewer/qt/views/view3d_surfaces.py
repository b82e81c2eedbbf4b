"""Label surfaces of the 3D view, built off the GUI thread: one build per layer, the newest wins.

:class:`SurfaceBuilds` runs :func:`~viewer.render3d.label_surfaces.build_label_surfaces` and the coarse copies drawn
while the view moves (:func:`~viewer.render3d.level_of_detail.coarse_surfaces`) as jobs of a
:class:`~viewer.qt.jobs.BackgroundTasks`; the worker also computes each mesh's bounds, so that nothing on the GUI
thread (picking, camera fitting) or the frame thread ever computes them again on shared data. A newer build of a
layer (an edit, a re-add) cancels the older one through its ``threading.Event`` and its result is dropped by job id;
results arrive on the GUI thread as ``built(layer, surfaces, coarse)``.

:class:`SurfaceLayers` (a mixin of the view) starts the builds on the session's events, attaches the results (the
cheap hand-over: actors made, inputs set) and applies a layer's look to its existing actors at once: toggling an
overlay or a label never builds anything.
"""
from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from viewer.core.layers import LabelLayer
from viewer.qt.jobs import BackgroundTasks
from viewer.qt.views.view3d_loading import IdleStart


def build_layer_surfaces(label_map, min_cells: int, progress, cancel):
    """The worker's part: smoothed surfaces, their coarse copies, bounds computed (runs on any thread)."""
    from viewer.render3d.label_surfaces import build_label_surfaces
    from viewer.render3d.level_of_detail import coarse_surfaces

    surfaces = build_label_surfaces(label_map, progress=progress, cancel=cancel)
    coarse = coarse_surfaces(surfaces, min_cells=min_cells, cancel=cancel)
    for poly in (*surfaces.values(), *coarse.values()):
        poly.GetBounds()  # cached in the mesh: later readers only read
        if poly.GetPoints() is not None:
            poly.GetPoints().GetBounds()
    return surfaces, coarse


class SurfaceBuilds(QObject):
    """The running surface builds, one per layer at most."""

    built = Signal(object, object, object)  # layer, {label: vtkPolyData}, {label: coarse vtkPolyData}
    failed = Signal(object, str)  # layer, message
    progressed = Signal(str)  # a status text
    idle = Signal()  # no build left running

    def __init__(self, tasks: BackgroundTasks, parent: QObject | None = None, *, when_idle: bool = True):
        super().__init__(parent)
        self.tasks = tasks
        self.when_idle = when_idle  # start each build once the GUI's own burst of work (redraws) is over
        self._layer_of: dict[int, LabelLayer] = {}  # running builds: job id → layer
        self._job_of: dict[LabelLayer, int | None] = {}  # the current build of each layer (None: not started yet)
        self._starters: dict[LabelLayer, IdleStart] = {}
        tasks.finished.connect(self._on_finished)
        tasks.failed.connect(self._on_failed)
        tasks.cancelled.connect(self._on_cancelled)
        tasks.progressed.connect(self._on_progress)

    def build(self, layer: LabelLayer, min_cells: int) -> None:
        """(Re)build ``layer``'s surfaces; a build still running for it is cancelled and its result dropped.

        The worker starts when the event loop is next idle (a new layer makes every view redraw first: the worker's
        GIL-holding pieces would stretch those redraws), at once with ``when_idle`` off.
        """
        self.cancel(layer)
        self._job_of[layer] = None
        self.progressed.emit("building surfaces…")
        if self.when_idle:
            self._starters[layer] = IdleStart(lambda: self._start(layer, min_cells), self, tick_ms=10, quiet_ticks=2,
                                              min_ms=0, max_ms=1000)
        else:
            self._start(layer, min_cells)

    def _start(self, layer: LabelLayer, min_cells: int) -> None:
        self._starters.pop(layer, None)
        if layer not in self._job_of or self._job_of[layer] is not None:
            return  # cancelled meanwhile
        label_map = layer.label_map
        job = self.tasks.submit(lambda progress, cancel: build_layer_surfaces(label_map, min_cells, progress, cancel))
        self._layer_of[job] = layer
        self._job_of[layer] = job

    def cancel(self, layer) -> None:
        starter = self._starters.pop(layer, None)
        if starter is not None:
            starter.cancel()
        job = self._job_of.pop(layer, None)
        if job is not None:
            self.tasks.cancel(job)
        if starter is not None and not self._job_of:
            self.idle.emit()

    def cancel_all(self) -> None:
        for layer in list(self._job_of):
            self.cancel(layer)

    def building(self, layer) -> bool:
        """Whether a build of ``layer`` is running (or about to start)."""
        return layer in self._job_of

    def pending(self) -> bool:
        """Whether a build is still running (or about to start) for some layer."""
        return bool(self._job_of)

    def forget(self) -> None:
        for starter in self._starters.values():
            starter.cancel()
        self._starters.clear()
        self._layer_of.clear()
        self._job_of.clear()

    def _current(self, job: int) -> LabelLayer | None:
        layer = self._layer_of.pop(job, None)
        if layer is None or self._job_of.get(layer) != job:
            return None
        del self._job_of[layer]
        return layer

    def _on_finished(self, job: int, result) -> None:
        layer = self._current(job)
        if layer is not None:
            surfaces, coarse = result
            self.built.emit(layer, surfaces, coarse)
            if not self._job_of:
                self.idle.emit()

    def _on_failed(self, job: int, message: str) -> None:
        layer = self._current(job)
        if layer is not None:
            self.failed.emit(layer, message)

    def _on_cancelled(self, job: int) -> None:
        ours = job in self._layer_of
        self._current(job)
        if ours and not self._job_of:
            self.idle.emit()

    def _on_progress(self, job: int, done: int, total: int, _message: str) -> None:
        layer = self._layer_of.get(job)
        if layer is not None and self._job_of.get(layer) == job and total:
            self.progressed.emit(f"surfaces {done}/{total}")


class SurfaceLayers:
    """The label layers of a 3D view as surfaces: built on the session's events, attached when built, their looks
    (colour, visibility, hidden labels, G) applied at once to the existing actors (mixin of
    :class:`~viewer.qt.views.view3d.View3D`: it uses the view's scene, surface builds and frame presenter)."""

    # --- label surfaces ---------------------------------------------------------------------
    def _on_layer_added(self, layer) -> None:
        if isinstance(layer, LabelLayer) and self._built and not self._closed:
            self.build_surfaces(layer)

    def build_surfaces(self, layer: LabelLayer) -> None:
        """(Re)build ``layer``'s surfaces off the GUI thread; a build still running for it is cancelled."""
        self.ensure_built()
        self.surfaces.build(layer, self.lod_min_cells)

    def surfaces_pending(self) -> bool:
        """Whether a surface build is still running for a layer."""
        return self._built and self.surfaces.pending()

    def _on_surfaces_idle(self) -> None:
        if not self._closed and self.status.text().startswith(("building", "surfaces ")):
            self.status.setText("")

    def _on_surfaces_built(self, layer, surfaces, coarse) -> None:
        if self._closed or layer not in self.session.layers:
            return  # removed meanwhile: dropped
        self._scene.set_label_layer(layer, surfaces)
        self._lod[layer] = {label: (surfaces[label], poly) for label, poly in coarse.items()}
        self._apply_lod(layer)
        self._apply_layer_display(layer)
        if layer not in self._shown_layers:
            self._shown_layers.append(layer)
            if self._scene.volume is None and len(self._shown_layers) == 1:
                self._scene.set_camera("anterior")
                self._zoom_to_fit()
        self._transient_change()
        self.surfaces_ready.emit(layer)

    def _apply_lod(self, only: LabelLayer | None = None) -> None:
        """Coarse surfaces at interactive quality, the full ones at full quality."""
        coarse = self.quality == "interactive"
        for layer, lods in self._lod.items():
            if only is not None and layer is not only:
                continue
            actors = self._scene.label_actors(layer)
            for label, (full_poly, coarse_poly) in lods.items():
                if label in actors:
                    actors[label].GetMapper().SetInputData(coarse_poly if coarse else full_poly)

    def _on_layer_removed(self, layer) -> None:
        if not self._built or self._closed:
            return
        self.surfaces.cancel(layer)
        self._lod.pop(layer, None)
        if layer in self._shown_layers:
            self._shown_layers.remove(layer)
        self._scene.remove_label_layer(layer)
        self._transient_change()

    def _on_labels_edited(self, layer, finished: bool = True) -> None:
        """A brush stroke (or its undo) changed the voxels: rebuild the layer's surfaces once it is done."""
        if (finished and isinstance(layer, LabelLayer) and layer in self.session.layers and self._built
                and not self._closed):
            self.build_surfaces(layer)

    def _on_layer_changed(self, layer) -> None:
        if isinstance(layer, LabelLayer) and self._built and not self._closed:
            self._apply_layer_display(layer)
            self._transient_change()

    def _apply_layer_display(self, layer: LabelLayer) -> None:
        """Colours, visibility, hidden labels; all surfaces hidden while the session hides overlays."""
        self._scene.update_label_layer(layer)
        if not self.session.overlays_visible:
            for actor in self._scene.label_actors(layer).values():
                actor.VisibilityOff()

    def _on_display_changed(self) -> None:
        if self._built and not self._closed:
            for layer in self.session.label_layers():
                self._apply_layer_display(layer)
            self._transient_change()
