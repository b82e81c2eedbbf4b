"""Opening a study, without Qt: what File → Open, the study browser, PgUp / PgDn and the demo do.

The GUI runs the slow functions here (:func:`open_path`, :func:`load_series` — a 4D series with all its time
points, :func:`load_all_timepoints` —, :func:`read_segmentation`, :func:`prepare_demo`) in its background jobs
and shows the texts made here; what a path opens as is decided once, by :mod:`viewer.io.loaders`.
"""
from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

#: the demo opens at the solid nodule closest to this diameter
DEMO_NODULE_MM = 12.0


# --- a path ------------------------------------------------------------------------------------------------
def missing_path_text(path: str) -> str | None:
    """What to say when ``path`` does not exist (None when it does)."""
    return None if os.path.exists(path) else f"{path} does not exist"


def opening_text(path: str) -> str:
    return f"Indexing {path}…" if os.path.isdir(path) else f"Reading {path}…"


def open_path(path: str, progress: Callable | None = None, cancel: threading.Event | None = None):
    """The best way to open ``path`` (:func:`viewer.io.loaders.examine`), loaded: a ``Volume``, or a ``StudyIndex``
    for DICOM files. ``progress(done, total)``. Slow: off the GUI thread."""
    from viewer.io import loaders

    best = loaders.examine(path)[0]
    scan_progress = None if progress is None else (lambda done, total, _path: progress(done, total))
    return loaders.load(best, progress=scan_progress if best.kind == loaders.DICOM_FILES else None, cancel=cancel)


def is_study_index(result: Any) -> bool:
    """:func:`open_path` gave a study index (its series are then chosen and loaded one by one)."""
    from viewer.io.dicom_index import StudyIndex

    return isinstance(result, StudyIndex)


# --- the series of a study -------------------------------------------------------------------------------------
def index_text(index) -> str:
    """``12 series, 2 files skipped (see the list under the study)``."""
    n_skipped = len(index.skipped)
    text = f"{len(index.series)} series"
    if n_skipped:
        text += f", {n_skipped} files skipped (see the list under the study)"
    return text


def skipped_details(index, limit: int = 50) -> str:
    return "\n".join(f"{s.path}: {s.reason}" for s in index.skipped[:limit])


def no_images_text(path: str, index) -> str:
    n_skipped = len(index.skipped)
    return f"No images found in {path}" + (f" ({n_skipped} files skipped)" if n_skipped else "")


def choose_series(index, series: str | None = None):
    """The series to show first: ``series`` (a key or SeriesInstanceUID) when the study has it, else the largest
    loadable volume; None when there is none."""
    if series is not None:
        try:
            return index.find(series)
        except KeyError:
            pass
    return index.largest_volume()


def neighbour_series(index, current_key: str | None, step: int) -> str | None:
    """PgUp / PgDn: the key of the loadable volume series ``step`` away from ``current_key`` (None at the ends)."""
    keys = [e.key for e in index.volumes() if e.loadable]
    if current_key not in keys:
        return None
    i = keys.index(current_key) + step
    return keys[i] if 0 <= i < len(keys) else None


def series_name(entry, key: str) -> str:
    return entry.description or key


def refusal_text(entry, key: str) -> str:
    return f"{series_name(entry, key)}: {entry.refusal}"


@dataclass(frozen=True)
class FirstSlice:
    """The first slice read of a series still loading (shown as a preview)."""

    z: int
    image: np.ndarray


def load_series(entry, progress: Callable | None = None, cancel: threading.Event | None = None,
                on_first_slice: Callable[[FirstSlice], None] | None = None, scaling: str = "display"):
    """The series as a ``Volume`` (a 4D series with all its time points); ``on_first_slice`` is called once, with a
    copy of the first slice read; ``scaling``: how stored values map (``viewer.io.series_loader.SCALINGS``)."""
    from viewer.io.series_loader import load_series as load

    lock, sent = threading.Lock(), []

    def on_slice(z, image) -> None:  # (called from the loader's threads)
        if on_first_slice is None:
            return
        with lock:
            if sent:
                return
            sent.append(z)
        on_first_slice(FirstSlice(int(z), np.array(image)))

    if getattr(entry, "n_timepoints", 1) > 1:
        return load_all_timepoints(entry, progress=progress, cancel=cancel, on_slice=on_slice, scaling=scaling)
    return load(entry, progress=progress, cancel=cancel, on_slice=on_slice, scaling=scaling)


#: a 4D series is loaded with all its time points unless they would take more memory than this (and than a
#: quarter of the machine's memory)
MAX_4D_BYTES = 6 * 2**30


def _memory_limit() -> int:
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX
        physical = 0
    return min(MAX_4D_BYTES, physical // 4) if physical > 0 else MAX_4D_BYTES


def load_all_timepoints(entry, progress: Callable | None = None, cancel: threading.Event | None = None,
                        on_slice: Callable | None = None, scaling: str = "display"):
    """A 4D series (repeated positions: perfusion, DCE, cardiac phases, pCASL, diffusion) as a ``Volume`` holding
    every time point (``meta["timepoints"]``, ``(t, z, y, x)``; the volume shows time point 0), with its time axis
    (``meta["time_axis"]``: how many, what varies) and each time point's InstanceNumbers. A series larger than
    :data:`MAX_4D_BYTES` (or a quarter of the memory) loads its first time point only, and says so."""
    from viewer.core.timepoints import time_axis
    from viewer.io.series_loader import image_numbers, output_dtype
    from viewer.io.series_loader import load_series as load

    plan = entry.plan
    n = entry.n_timepoints
    size = int(np.prod(plan.geometry.shape_zyx)) * n * output_dtype(entry.frames).itemsize
    axis = time_axis(plan.frames)
    if size > _memory_limit():
        volume = load(entry, progress=progress, cancel=cancel, on_slice=on_slice, scaling=scaling)
        volume.warnings.append(f"{axis.describe()}: only the first is shown ({size / 2**30:.1f} GB for all of them)")
    else:
        volume = load(entry, timepoint=None, progress=progress, cancel=cancel, on_slice=on_slice, scaling=scaling)
        volume.meta["instance_numbers_by_timepoint"] = (
            [volume.meta.get("instance_numbers")] + [image_numbers(plan, t) for t in range(1, n)])
    volume.meta["time_axis"] = axis
    return volume


def load_images(entry, progress: Callable | None = None, cancel: threading.Event | None = None):
    """A 2D series (radiographs, ultrasound, cine …) as a ``PlanarSeries``; undecodable images are skipped."""
    from viewer.io.planar import load_planar

    return load_planar(entry, progress=progress, cancel=cancel)


def is_planar_series(entry) -> bool:
    """The series opens as 2D images (no common 3D grid), not as a volume."""
    return bool(getattr(entry, "planar", False))


def images_text(series) -> str:
    """``CR projection: 1 image (1955×1841) — warnings``."""
    n = len(series.images)
    first = series.images[0]
    frames = f", {first.n_frames} frames" if n == 1 and first.n_frames > 1 else ""
    text = (f"{series.meta.get('description') or series.modality or 'Images'} ({series.kind}): {n} image"
            f"{'s' if n != 1 else ''} ({first.shape[0]}×{first.shape[1]}{frames})")
    if series.warnings:
        text += " — " + "; ".join(series.warnings)
    return text


def volume_text(volume) -> str:
    """``CT thin: 160×512×512 — warnings``."""
    text = f"{volume.meta.get('description', '') or 'Volume'}: " + "×".join(map(str, volume.shape_zyx))
    if volume.warnings:
        text += " — " + "; ".join(volume.warnings)
    return text


# --- a segmentation over the series -----------------------------------------------------------------------------
@dataclass(frozen=True)
class SeriesFirst:
    """A DICOM SEG made on another series of the open study: open ``series_key``, then the SEG over it."""

    series_key: str
    path: str


def series_entry(index, volume):
    """The open study's entry of the series ``volume`` was loaded from (None when unknown)."""
    key = (getattr(volume, "meta", None) or {}).get("series_key")
    if index is None or not key:
        return None
    try:
        return index.find(key)
    except KeyError:
        return None


def segmentation_series_key(index, path: str, current_series_uid: str | None = None) -> str | None:
    """For a DICOM SEG: the key of the series of ``index`` it was made on, when that is not the series shown now
    (``current_series_uid``); None for any other file, or when the SEG's series is not in the study."""
    from viewer.io.seg_file import SegError, is_seg_file, read_seg_reference

    if index is None or not is_seg_file(path):
        return None
    try:
        refs = read_seg_reference(path).referenced_series_uids
    except SegError:
        return None
    if current_series_uid and current_series_uid in refs:
        return None
    for entry in index.series:
        if entry.series_uid in refs and entry.loadable and not is_planar_series(entry):
            return entry.key
    return None


def seg_layer_name(labels, path: str) -> str:
    """A SEG layer's name: its series description or content label, else the file's name."""
    meta = labels.meta or {}
    return str(meta.get("description") or meta.get("content_label") or os.path.basename(path))


def read_segmentation(path: str, volume=None, entry=None, index=None):
    """A segmentation file as a ``LabelLayer`` to show over ``volume`` (reading and counting the labels pass over
    every voxel: off the GUI).

    A label map file (NIfTI, NRRD …) is read as it is. A DICOM SEG is placed on ``volume``'s grid
    (:func:`viewer.io.seg_file.read_seg`: by its frames' positions, or by their source images, which ``entry`` —
    the volume's series in the study index — locates; slices it does not cover are zeros) and keeps its segment
    numbers, names and recommended colours; when it was made on another series of ``index``, the answer is
    :class:`SeriesFirst` (open that series, then the SEG). Raises ``SegError`` / ``LoadError`` with the reason.
    """
    from viewer.core.layers import LabelLayer
    from viewer.io.seg_file import is_seg_file, read_seg, segment_colors, source_slices_of

    if not is_seg_file(path):
        from viewer.io.image_io import read_label_map

        return LabelLayer(read_label_map(path), name=os.path.basename(path))
    if volume is None:
        raise RuntimeError("load a series first: a DICOM SEG is shown over the series it was made on")
    other = segmentation_series_key(index, path, (volume.meta or {}).get("series_uid"))
    if other is not None:
        return SeriesFirst(other, path)
    if entry is None:
        entry = series_entry(index, volume)
    labels = read_seg(path, volume, source_slices=source_slices_of(entry, volume.geometry) if entry else None)
    meta = {"source_file": str(path), "source_kind": "DICOM SEG",
            "seg_sop_instance_uid": str(labels.meta.get("sop_instance_uid", ""))}
    return LabelLayer(labels, name=seg_layer_name(labels, path), colors=segment_colors(labels), meta=meta)


def shown_segmentation(session, path: str):
    """The layer already showing the segmentation file ``path`` over the session's series (None when none)."""
    path = os.path.abspath(path)
    for layer in getattr(session, "label_layers", lambda: [])():
        source = (layer.meta or {}).get("source_file")
        if source and os.path.abspath(source) == path:
            return layer
    return None


def add_segmentation(session, layer, path: str) -> tuple[bool, str]:
    """Show ``layer`` over the session's series: ``(True, status text)``, or ``(False, why it was refused)``."""
    from radview_base.geometry import GeometryMismatchError

    name = os.path.basename(path)
    try:
        session.add_layer(layer)
    except GeometryMismatchError as exc:
        return False, (f"{name} was not loaded: it does not lie on this series' voxel grid ({exc}). Load it over "
                       "the series it was made for.")
    except RuntimeError as exc:
        return False, f"{name} was not loaded: {exc}"
    warnings = list((layer.label_map.meta or {}).get("warnings", []))
    if (layer.meta or {}).get("source_kind") == "DICOM SEG":
        names = ", ".join(layer.label_map.labels.values())
        text = f"{layer.name} ({name}): {len(layer.label_map.labels)} segment(s): {names}"
    else:
        text = f"{name}: {len(layer.volumes_ml)} labels"
    if warnings:
        text += " — " + "; ".join(warnings)
    return True, text


def add_saved_layers(session, loaded) -> list[str]:
    """Show the layers saved for the series (``LoadedLayers``); the messages to give the user."""
    from radview_base.geometry import GeometryMismatchError

    messages = list(loaded.messages)
    for stored in loaded.layers:
        try:
            session.add_layer(stored.layer)
        except GeometryMismatchError as exc:
            messages.append(f"The saved layer {stored.layer.name} does not lie on this series' grid ({exc}); it "
                            "was not shown.")
    return messages


# --- the demo ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DemoStudy:
    paths: Any  # viewer.demo.DemoPaths
    target: dict | None  # the nodule it opens at


def demo_target(nodules: list[dict]) -> dict | None:
    """The solid nodule closest to :data:`DEMO_NODULE_MM` (any nodule when none is solid)."""
    solid = [n for n in nodules if n.get("type") == "solid"] or nodules
    return sorted(solid, key=lambda n: abs(n["diameter_mm"] - DEMO_NODULE_MM))[0] if solid else None


def prepare_demo(progress: Callable | None = None) -> DemoStudy:
    """The demo study (made once, then cached) and the nodule to open at. ``progress(fraction, message)``."""
    from viewer.demo import ensure_demo

    paths = ensure_demo(progress=progress)
    with open(paths.nodules_json, encoding="utf-8") as fh:
        nodules = json.load(fh)
    return DemoStudy(paths, demo_target(nodules))
