"""Label and marker layers on disk, per study, next to the annotations: saved after every stroke, atomically.

What is kept: every AI result (its label layer and its marker layer of detections) and every label layer edited
by hand (brush, eraser: :mod:`.label_edit`), so a crash or a kill loses at most the stroke in progress and a
restart brings back the layers, their names, label tables, colours, provenance, edit marks and label revision
(the review decisions of :mod:`.review` apply to a revision, so an edited-then-accepted result comes back
accepted). Layout, next to the annotation store's ``<StudyInstanceUID>.json`` (:mod:`.annotation_store`)::

    <store>/<StudyInstanceUID>/layers/<layer id>.json            the layer's manifest (JSON, below)
    <store>/<StudyInstanceUID>/layers/<layer id>.<token>.nrrd    its label map (gzip NRRD, LPS geometry)

The manifest (:mod:`viewer.store.layer_json`) holds the layer's series UID (and key, for a split series), name,
display settings (opacity, outline, visibility, colours, hidden labels, 3D opacity), label table, ``meta``
(provenance, detections and structure features as tagged dicts, edit marks, revision), the exact geometry (JSON
floats round-trip exactly), and the name, dtype and CRC-32 of its data file (:mod:`viewer.store.nrrd_file`, which
says why gzip NRRD and why written there); a marker layer's manifest holds its markers and no data file. A write
(:mod:`viewer.store.layer_files`) puts the data under a new name (temp file, fsync, ``os.replace``, folder fsync),
then replaces the manifest the same way, then removes the layer's older data files: a crash at any moment leaves a
manifest naming a complete file (the new or the previous version). A layer that cannot be read — anything wrong
in its manifest or data, or a grid that is not its series' — is set aside (``.corrupt-<time>``) and reported as a
``(file, reason)`` problem; the others still load.

:class:`LayerAutosave` follows a :class:`~viewer.core.session.Session`: a finished stroke (and its undo or redo,
``labels_edited``), an AI result arriving (``layer_added``) or a display change (``layer_changed``) is snapshotted on
the calling (GUI) thread and written by one background thread, in order (:mod:`.autosave_writer`); when several
snapshots of a layer wait, only the newest is written (the older copy is reused at once). The snapshot of a stroke
copies the label array into a spare buffer of the same size kept for the purpose (~3 ms for the demo's 40 MB; a fresh
allocation, the first time, takes 4-28 ms as the kernel maps and zeroes its pages); an arriving AI result's array,
when it owns its memory, is made read-only instead (copy-on-write: the brush copies it on its first stroke), and the
result is written half a second later, once the GUI has drawn it. A layer the user removes (``layer_removed``
outside a series change) is removed from the store. A label layer's manifest also records the source of its image
series (:func:`series_source`: the image file the volume was read from, or the folder of its DICOM series in the
open study's index — ``index``, a callable the window gives — with its SeriesInstanceUID), so the reviewed results
can find their images later (:mod:`viewer.logic.reviewed_data`); not known (no index given, a series not in it),
nothing is recorded. Qt-free.
"""
from __future__ import annotations

import os
import threading
import time
import uuid
import weakref
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np
from psygnal import Signal

from viewer.core.layers import LabelLayer
from viewer.store.autosave_writer import AutosaveBase, AutosaveWriter
from viewer.store.layer_files import (
    DATA_SUFFIX,
    GEOMETRY_TOLERANCE_MM,
    LAYERS_DIR,
    LayerStore,
    LoadedLayers,
    StoredLayer,
    study_folder_name,
)
from viewer.store.layer_json import (
    DERIVED_META_KEYS,
    FORMAT,
    FORMAT_VERSION,
    decode_value,
    display_settings,
    encode_meta,
    encode_value,
    geometry_dict,
    geometry_from_dict,
    label_manifest,
    marker_manifest,
    source_of,
)
from viewer.store.nrrd_file import CHUNK, GZIP_LEVEL, LayerFormatError, nrrd_header, read_nrrd, write_nrrd_atomic
from viewer.store.set_aside import Problem

#: a layer just added (an AI result arriving) is written this long after, when the GUI has drawn it: the writer's
#: CPU and memory traffic then does not compete with the busiest moment of the GUI thread (strokes: at once)
SETTLE_ADDED_S = 0.5


def series_of(meta: Mapping) -> str:
    return str((meta or {}).get("series_uid") or "")


def series_key_of(meta: Mapping) -> str:
    """The series' key: its UID, or ``<uid>#<n>`` for one part of a split series."""
    return str((meta or {}).get("series_key") or series_of(meta))


def series_source(meta: Mapping, index=None) -> dict | None:
    """Where the volume with ``meta`` was read from, as a manifest records it (:func:`~.layer_json.source_of`): its
    image file (``meta["source_file"]``), else the folder of its DICOM series in ``index`` (a
    :class:`~viewer.io.dicom_index.StudyIndex`: the series with the volume's key and SeriesInstanceUID); None when
    neither is known."""
    meta = meta or {}
    if meta.get("source_file"):
        return {"path": os.path.abspath(str(meta["source_file"])), "series_uid": ""}
    uid = series_of(meta)
    if index is None or not uid:
        return None
    try:
        entry = index.find(series_key_of(meta))
    except KeyError:
        return None
    files = entry.files
    if entry.series_uid != uid or not files:
        return None
    folder = os.path.abspath(os.path.commonpath(files) if len(files) > 1 else os.path.dirname(files[0]))
    if os.path.dirname(folder) == folder:  # the files share only the file system's root: no folder worth scanning
        return None
    return {"path": folder, "series_uid": uid}


# --- the autosave ---------------------------------------------------------------------------------------------
@dataclass
class _Job:
    study: str
    layer_id: str
    kind: str  # "labels" | "markers" | "display" | "delete"
    manifest: dict | None
    array: np.ndarray | None = None
    pooled: bool = False  # ``array`` is the autosave's own copy: it goes back to the spare buffers once written


@dataclass
class _Tracked:
    layer_id: str
    study: str
    series: str
    result_id: str | None
    created: float
    display: dict | None = None  # the display settings last scheduled for writing
    series_key: str = ""  # the series' key: its UID, or "<uid>#<n>" for one part of a split series
    source: dict | None = None  # where the series was read from (:func:`series_source`), when known


def _immutable(array: np.ndarray) -> bool:
    """True when neither ``array`` nor anything it views can be written through numpy."""
    a = array
    while isinstance(a, np.ndarray):
        if a.flags.writeable:
            return False
        a = a.base
    return a is None or isinstance(a, bytes)


def should_keep(layer) -> bool:
    """AI results (label and marker layers) and label layers edited by hand are kept on disk."""
    meta = getattr(layer, "meta", {}) or {}
    if meta.get("provenance") is not None or meta.get("ai"):
        return True
    return isinstance(layer, LabelLayer) and bool(meta.get("edited"))


class LayerAutosave(AutosaveBase):
    """Keeps a session's AI and edited layers on disk (see the module docstring).

    ``saved`` (generation) and ``save_failed`` (message) are emitted on the writer thread. ``generation`` counts
    the changes scheduled, ``saved_generation`` the changes on disk (every change up to it is written, or
    superseded by a newer write of its layer, or failed and reported).
    """

    saved = Signal(int)
    save_failed = Signal(str)

    def __init__(self, session, store: LayerStore | None = None, index: Callable[[], object] | None = None) -> None:
        self.session = session
        self.store = store or LayerStore()
        #: the open DICOM study's index (or None), asked where a series was read from when its layer is first saved
        self.index = index
        self.schedule_ms: list[float] = []  # time the caller (GUI) thread spent per change (snapshot included)
        self.write_ms: list[float] = []  # time the writer spent per layer written
        self.last_error: str | None = None
        self._tracked: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._results: dict[int, tuple[object, str]] = {}  # id(provenance) -> (provenance, result id)
        self._last_created = 0.0
        #: one spare snapshot buffer per (shape, dtype): copying into memory already mapped takes ~3 ms for 40 MB,
        #: a fresh allocation 4-28 ms (the kernel maps and zeroes it page by page)
        self._spare: dict[tuple, np.ndarray] = {}
        self._spare_lock = threading.Lock()
        #: jobs keyed (study, layer id): the newest of a layer wins (:meth:`_supersede`)
        self._writer = AutosaveWriter(self._write, self._failed, "layer-autosave", on_saved=self.saved.emit,
                                      supersede=self._supersede)
        self._connections = ((session.layer_added, self._on_added), (session.layer_removed, self._on_removed),
                             (session.labels_edited, self._on_edited), (session.layer_changed, self._on_changed))
        for signal, slot in self._connections:
            signal.connect(slot)

    # --- which layer is which ---------------------------------------------------------------------------------
    def layer_id(self, layer) -> str | None:
        tracked = self._tracked.get(layer)
        return tracked.layer_id if tracked is not None else None

    def _track(self, layer) -> _Tracked | None:
        tracked = self._tracked.get(layer)
        if tracked is not None:
            return tracked
        volume = self.session.volume
        if volume is None:
            return None
        from viewer.core.annotations import study_key

        study = study_key(volume.meta)
        if not study:
            return None
        self._last_created = max(time.time(), self._last_created + 1e-3)  # restored in the order they were added
        tracked = _Tracked(uuid.uuid4().hex[:16], study, series_of(volume.meta), self._result_id(layer),
                           self._last_created, series_key=series_key_of(volume.meta), source=self._source(volume))
        self._tracked[layer] = tracked
        return tracked

    def _source(self, volume) -> dict | None:
        return series_source(volume.meta, self.index() if self.index is not None else None) \
            if volume is not None else None

    def _result_id(self, layer) -> str | None:
        prov = layer.meta.get("provenance")
        if prov is None:
            return None
        entry = self._results.get(id(prov))
        if entry is None or entry[0] is not prov:
            entry = (prov, uuid.uuid4().hex[:16])
            self._results[id(prov)] = entry
        return entry[1]

    def adopt(self, stored: list[StoredLayer], study_uid: str) -> None:
        """Layers read from the store (before they are added to the session): known, and already on disk."""
        source = self._source(self.session.volume)  # the series they are restored onto: where it is now
        for s in stored:
            key = s.manifest.get("series_key")
            self._tracked[s.layer] = _Tracked(s.layer_id, study_uid, s.series_uid, s.result_id, s.created,
                                              display_settings(s.layer),
                                              key if isinstance(key, str) and key else s.series_uid,
                                              source or source_of(s.manifest))
            self._last_created = max(self._last_created, s.created)
            prov = s.layer.meta.get("provenance")
            if prov is not None and s.result_id:
                self._results[id(prov)] = (prov, s.result_id)

    # --- session events (GUI thread) --------------------------------------------------------------------------
    def _on_added(self, layer) -> None:
        if layer in self._tracked or not should_keep(layer):
            return
        self.schedule_write(layer, freeze=True, settle=SETTLE_ADDED_S)

    def _on_edited(self, layer, finished: bool = True) -> None:
        if not finished:
            return
        if should_keep(layer):
            self.schedule_write(layer)
        elif layer in self._tracked:  # every edit undone on a layer that is kept for its edits only
            self.schedule_delete(layer)

    def _on_changed(self, layer) -> None:
        tracked = self._tracked.get(layer)
        if tracked is None or not should_keep(layer):
            return
        settings = display_settings(layer)
        if settings == tracked.display:  # e.g. the legend being built: nothing new to write
            return
        tracked.display = settings
        self._put(_Job(tracked.study, tracked.layer_id, "display", settings))

    def _on_removed(self, layer) -> None:
        if getattr(self.session, "dropping_layers", False):  # another series opened: the layer stays on disk
            self.drop_spares()
            return
        if layer in self._tracked:
            self.schedule_delete(layer)

    # --- scheduling -------------------------------------------------------------------------------------------
    def schedule_write(self, layer, freeze: bool = False, settle: float = 0.0) -> bool:
        """Snapshot ``layer`` now and queue its write; False if it has no study.

        The label array is copied (into the spare buffer of its size: ~3 ms for 40 MB), unless it cannot
        change: a read-only array is written as it is, and with ``freeze`` (a layer just added, e.g. an AI result
        arriving while the GUI is busiest) an array that owns its memory is made read-only instead of copied —
        copy-on-write: the brush copies it on its first stroke (:class:`~viewer.core.label_edit.BrushStroke`).
        The writer leaves the job ``settle`` seconds (a newer change or :meth:`flush` ends the wait).
        """
        t0 = time.perf_counter()
        tracked = self._track(layer)
        if tracked is None:
            return False
        args = (layer, tracked.layer_id, tracked.study, tracked.series, tracked.result_id, tracked.created,
                tracked.series_key)
        tracked.display = display_settings(layer)
        if isinstance(layer, LabelLayer):
            job = _Job(tracked.study, tracked.layer_id, "labels", label_manifest(*args, source=tracked.source))
            job.array, job.pooled = self._snapshot(layer.label_map.array, freeze)
        else:
            job = _Job(tracked.study, tracked.layer_id, "markers", marker_manifest(*args))
        self._put(job, time.monotonic() + settle if settle > 0 else 0.0)
        self.schedule_ms.append((time.perf_counter() - t0) * 1000)
        return True

    def _snapshot(self, array: np.ndarray, freeze: bool) -> tuple[np.ndarray, bool]:
        """``(an array that will not change, True if it is the autosave's own copy)``."""
        if freeze and array.base is None and array.flags.writeable and array.flags.c_contiguous:
            array.flags.writeable = False
        if _immutable(array) and array.flags.c_contiguous:
            return array, False
        with self._spare_lock:
            spare = self._spare.pop((array.shape, array.dtype.str), None)
        if spare is None:
            return np.array(array, copy=True, order="C"), True
        np.copyto(spare, array)
        return spare, True

    def _give_back(self, job: _Job) -> None:
        """The job's copy is no longer needed: keep it as the spare buffer of its size."""
        with self._spare_lock:
            array, job.array = job.array, None
            if job.pooled and array is not None:
                self._spare.setdefault((array.shape, array.dtype.str), array)

    def drop_spares(self) -> None:
        """Free the spare snapshot buffers (another series is open, or the window closes)."""
        with self._spare_lock:
            self._spare.clear()

    def schedule_delete(self, layer) -> None:
        tracked = self._tracked.pop(layer, None)
        if tracked is not None:
            self._put(_Job(tracked.study, tracked.layer_id, "delete", None))

    def _put(self, job: _Job, not_before: float = 0.0) -> None:
        """Queue ``job``; the writer leaves it until ``not_before`` (``time.monotonic()``; a newer change of the layer
        or :meth:`flush` ends the wait)."""
        self._writer.put((job.study, job.layer_id), job, not_before)

    def _supersede(self, waiting: _Job, job: _Job) -> _Job:
        """``job`` is queued while ``waiting`` (same layer) waits: what to write (writer's lock held)."""
        if job.kind == "display" and waiting.kind != "delete":  # newer display settings on what waits
            waiting.manifest.update(job.manifest)
            return waiting
        self._give_back(waiting)  # latest wins: the older snapshot is dropped, its copy reused
        return job

    # --- the writer thread ------------------------------------------------------------------------------------
    def _write(self, _key, job: _Job) -> None:
        t0 = time.perf_counter()
        try:
            if job.kind == "labels":
                self.store.write_labels(job.study, job.manifest, job.array)
            elif job.kind == "markers":
                self.store.write_markers(job.study, job.manifest)
            elif job.kind == "display":
                self.store.write_display(job.study, job.layer_id, job.manifest)
            elif job.kind == "delete":
                self.store.delete(job.study, job.layer_id)
        finally:
            self._give_back(job)
        if job.kind == "labels":
            self.write_ms.append((time.perf_counter() - t0) * 1000)

    def _failed(self, _key, job: _Job, exc: Exception) -> None:
        what = job.manifest.get("name", job.layer_id) if job.manifest else job.layer_id
        self._report_failure(f"Layer {what!r} not saved to {self.store.folder(job.study)}: {exc}")

    # --- reading, flushing, closing ---------------------------------------------------------------------------
    def has_saved(self, study_uid: str) -> bool:
        """True when the study has stored layers, or writes of it are still waiting (cheap: one folder listing)."""
        return self._writer.busy(lambda key: key[0] == study_uid) or self.store.has_layers(study_uid)

    def load_series(self, study_uid: str, series_uid: str, timeout: float = 30.0, geometry=None,
                    series_key: str | None = None) -> LoadedLayers:
        """The stored layers of a series, after every write scheduled so far (callable from any thread); with
        ``geometry`` (the series' grid) a label layer that should lie on it and does not is set aside."""
        self.flush(timeout)
        return self.store.load(study_uid, series_uid, geometry, series_key)

    def close(self) -> None:
        """Write what is pending, stop the writer thread and free the spare buffers."""
        super().close()
        self.drop_spares()


__all__ = ["LayerStore", "LayerAutosave", "LoadedLayers", "StoredLayer", "LayerFormatError", "Problem", "should_keep",
           "encode_value", "decode_value", "encode_meta", "label_manifest", "marker_manifest", "series_of",
           "series_key_of", "series_source", "display_settings", "geometry_dict", "geometry_from_dict",
           "study_folder_name", "nrrd_header", "read_nrrd", "write_nrrd_atomic", "CHUNK", "GZIP_LEVEL", "DATA_SUFFIX",
           "LAYERS_DIR", "FORMAT", "FORMAT_VERSION", "DERIVED_META_KEYS", "GEOMETRY_TOLERANCE_MM", "SETTLE_ADDED_S"]
