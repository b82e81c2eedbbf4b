"""Label and marker layers on disk, per study, next to the annotations: saved after every stroke, atomically.

What is kept: every AI result (its label layer and its marker layer of detections) and every label layer edited
by hand (brush, eraser: :mod:`.label_edit`), so a crash or a kill loses at most the stroke in progress and a
restart brings back the layers, their names, label tables, colours, provenance, edit marks and label revision
(the review decisions of :mod:`.review` apply to a revision, so an edited-then-accepted result comes back
accepted). Layout, next to the annotation store's ``<StudyInstanceUID>.json`` (:mod:`.annotation_store`)::

    <store>/<StudyInstanceUID>/layers/<layer id>.json            the layer's manifest (JSON, below)
    <store>/<StudyInstanceUID>/layers/<layer id>.<token>.nrrd    its label map (gzip NRRD, LPS geometry)

The manifest holds the layer's series UID, name, display settings (opacity, outline, visibility, colours,
hidden labels, 3D opacity), label table, ``meta`` (provenance, detections and structure features as tagged
dicts, edit marks, revision), the exact geometry (JSON floats round-trip exactly), and the name, dtype and
CRC-32 of its data file; a marker layer's manifest holds its markers and no data file. A write puts the data
under a new name (temp file, fsync, ``os.replace``, folder fsync), then replaces the manifest the same way,
then removes the layer's older data files: a crash at any moment leaves a manifest naming a complete file
(the new or the previous version). A layer that cannot be read (damaged JSON, missing or altered data) is
renamed aside (``.corrupt-<time>``) and reported; the others still load.

Why gzip NRRD, and why written here (streamed in 4 MB chunks, gzip level 1) rather than through SimpleITK (which
radview depends on) or pynrrd: measured by ``bench/layer_store.py`` on a 300×512×512 uint8 label map with 4 labels
(75 MiB; 2-core machine, load average 0.5-1.3; peak memory above the resident size before the call, a read's
including the 75 MiB array it returns; "GIL" is the longest a thread ticking every 5 ms waited meanwhile)::

                            write     read     write peak   read peak   GIL write/read   file
    this module             150 ms    66 ms    +0 MiB       84 MiB      6 / 9 ms         0.9 MiB
    SimpleITK (level 1/ITK) 133-138   97-99    +78 MiB      152 MiB     13-19 / 5 ms     1.4 / 0.6 MiB
    pynrrd (level 1/9)      206/1257  227-237  +75 MiB      151 MiB     44-47 / 97-99    0.9 / 0.3 MiB

SimpleITK writes ~10% faster, but only after ``GetImageFromArray`` has copied the whole snapshot (+78 MiB, and the
GIL held 2-3× as long while it does: with it the GUI stalled up to ~140 ms while an AI result arrived on a busy
2-core machine, ~40-70 ms without), and it reads 1.5× slower (a writable array that outlives the image is a second
copy); pynrrd is 1.4-8× slower to write and 3.5× slower to read, copies the volume too and holds the GIL ~100 ms
per read. So the library does not serve here: this writer keeps memory bounded (no second copy of the volume,
the CRC-32 of the manifest computed on the way) and the reader inflates 4 MB at a time straight into the returned
array, after a header check that refuses a size other than the manifest's before allocating anything (before
this, it inflated in one call: 158 ms and a second 75 MiB copy). For 160×512×512 (the demo's grid) it writes in
~85 ms and reads in ~45 ms. The files are plain NRRD (LPS, every float to 17 significant digits; the manifest holds
the geometry too): 3D Slicer, ITK, SimpleITK and pynrrd open them as they are, and the benchmark checks that
SimpleITK and pynrrd read this module's file voxel for voxel. NIfTI (``.nii.gz``) was ~5× slower to write and keeps
the geometry in float32; ``np.savez_compressed`` took ~130 ms for the demo's label map.

:class:`LayerAutosave` follows a :class:`~viewer.core.session.Session`: a finished stroke (and its undo or redo,
``labels_edited``), an AI result arriving (``layer_added``) or a display change (``layer_changed``) is snapshotted on
the calling (GUI) thread and written by one background thread, in order; when several snapshots of a layer wait, only
the newest is written (the older copy is reused at once). The snapshot of a stroke copies the label array into a spare
buffer of the same size kept for the purpose (~3 ms for the demo's 40 MB; a fresh allocation, the first time, takes
4-28 ms as the kernel maps and zeroes its pages); an arriving AI result's array, when it owns its memory, is made
read-only instead (copy-on-write: the brush copies it on its first stroke), and the result is written half a second
later, once the GUI has drawn it. A layer the user removes (``layer_removed`` outside a series change) is removed from
the store. Qt-free.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
import queue
import threading
import time
import uuid
import weakref
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from psygnal import Signal

from radview_base.atomic_file import TEMP_PREFIX, atomic_path, fsync_folder
from radview_base.geometry import Geometry
from viewer.core.layers import LabelLayer, Marker, MarkerLayer
from viewer.io.volume import LabelMap
from viewer.store.annotation_store import STALE_TEMP_SECONDS, file_name, write_atomic

FORMAT = "radview-layer"
FORMAT_VERSION = 1
LAYERS_DIR = "layers"
DATA_SUFFIX = ".nrrd"
#: review state written into layer meta by review.sync_layer_meta: derived from the review table, never stored
DERIVED_META_KEYS = frozenset({"reviewed", "review_state", "reviewed_by", "reviewed_at", "decided_by", "decided_at",
                               "detection_review"})
GEOMETRY_TOLERANCE_MM = 1e-4
#: a layer just added (an AI result arriving) is written this long after, when the GUI has drawn it: the writer's
#: CPU and memory traffic then does not compete with the busiest moment of the GUI thread (strokes: at once)
SETTLE_ADDED_S = 0.5


class LayerFormatError(ValueError):
    """A stored layer that does not follow the format (or whose data file does not match its manifest)."""


# --- meta as JSON: tagged values for tuples, non-string keys and the ai.api dataclasses -----------------------
@functools.lru_cache(maxsize=None)
def _ai_types() -> dict[str, type]:
    from ai.api import Detection, Provenance, StructureFeatures

    return {"Provenance": Provenance, "Detection": Detection, "StructureFeatures": StructureFeatures}


class _Unencodable(TypeError):
    pass


def encode_value(value: Any) -> Any:
    """A JSON-ready form of ``value`` that :func:`decode_value` turns back into an equal value."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        name = type(value).__name__
        if name in _ai_types() and type(value) is _ai_types()[name]:
            return {"$type": name, **{f.name: encode_value(getattr(value, f.name))
                                      for f in dataclasses.fields(value)}}
        raise _Unencodable(f"a {name}")
    if isinstance(value, Mapping):
        keys = list(value)
        if all(isinstance(k, str) and not k.startswith("$") for k in keys):
            return {k: encode_value(v) for k, v in value.items()}
        return {"$items": [[encode_value(k), encode_value(v)] for k, v in value.items()]}
    if isinstance(value, tuple):
        return {"$tuple": [encode_value(v) for v in value]}
    if isinstance(value, list):
        return [encode_value(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return {"$set": [encode_value(v) for v in sorted(value, key=repr)]}
    if isinstance(value, Path):
        return str(value)
    raise _Unencodable(f"a {type(value).__name__}")


def _hashable(value):
    return tuple(_hashable(v) for v in value) if isinstance(value, list) else value


def decode_value(value: Any) -> Any:
    if isinstance(value, list):
        return [decode_value(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "$tuple" in value:
        return tuple(decode_value(v) for v in value["$tuple"])
    if "$set" in value:
        return {_hashable(decode_value(v)) for v in value["$set"]}
    if "$items" in value:
        return {_hashable(decode_value(k)): decode_value(v) for k, v in value["$items"]}
    if "$type" in value:
        cls = _ai_types().get(value["$type"])
        if cls is None:
            raise LayerFormatError(f"unknown stored type {value['$type']!r}")
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: decode_value(v) for k, v in value.items() if k in names})
    return {k: decode_value(v) for k, v in value.items()}


def encode_meta(meta: Mapping) -> tuple[dict, list[str]]:
    """``(JSON-ready meta, keys left out)``: derived review keys and values that cannot be stored are left out."""
    out, dropped = {}, []
    for key, value in meta.items():
        if key in DERIVED_META_KEYS:
            continue
        try:
            out[str(key)] = encode_value(value)
        except _Unencodable:
            dropped.append(str(key))
    return out, dropped


def geometry_dict(geometry: Geometry) -> dict:
    return {"shape_zyx": list(geometry.shape_zyx), "spacing_zyx": list(geometry.spacing_zyx),
            "origin_lps": list(geometry.origin_lps), "direction": [list(row) for row in geometry.direction]}


def geometry_from_dict(d: Mapping) -> Geometry:
    return Geometry(tuple(d["shape_zyx"]), tuple(d["spacing_zyx"]), tuple(d["origin_lps"]),
                    tuple(tuple(row) for row in d["direction"]))


def series_of(meta: Mapping) -> str:
    return str((meta or {}).get("series_uid") or "")


def study_folder_name(study_uid: str) -> str:
    return file_name(study_uid)[:-len(".json")]


def _int_keys(d: Mapping, what: str) -> dict:
    if not isinstance(d, Mapping):
        raise LayerFormatError(f"{what} is not a table")
    return {int(k): v for k, v in d.items()}


# --- manifests ------------------------------------------------------------------------------------------------
def label_manifest(layer: LabelLayer, layer_id: str, study_uid: str, series_uid: str, result_id: str | None,
                   created: float) -> dict:
    """Everything about a label layer but its voxels (JSON-ready; the caller adds ``data``)."""
    meta, dropped = encode_meta(layer.meta)
    map_meta, dropped_map = encode_meta({k: v for k, v in layer.label_map.meta.items() if k != "provenance"})
    return {"format": FORMAT, "version": FORMAT_VERSION, "kind": "labels", "layer_id": layer_id,
            "study_uid": study_uid, "series_uid": series_uid, "result_id": result_id, "created": created,
            "saved_at": time.time(), "revision": str(layer.meta.get("revision", "0")),
            **display_settings(layer),
            "labels": {str(k): v for k, v in layer.label_map.labels.items()},
            "label_map_meta": map_meta, "label_map_provenance": "provenance" in layer.label_map.meta,
            "meta": meta, "dropped_meta": dropped + [f"label_map.{k}" for k in dropped_map],
            "geometry": geometry_dict(layer.geometry), "dtype": layer.label_map.array.dtype.str}


def marker_manifest(layer: MarkerLayer, layer_id: str, study_uid: str, series_uid: str, result_id: str | None,
                    created: float) -> dict:
    meta, dropped = encode_meta(layer.meta)
    markers = [{"center_lps": list(m.center_lps), "size_mm": list(m.size_mm), "kind": m.kind, "text": m.text,
                "score": m.score, "color": list(m.color)} for m in layer.markers]
    return {"format": FORMAT, "version": FORMAT_VERSION, "kind": "markers", "layer_id": layer_id,
            "study_uid": study_uid, "series_uid": series_uid, "result_id": result_id, "created": created,
            "saved_at": time.time(), "name": layer.name, "visible": bool(layer.visible), "markers": markers,
            "meta": meta, "dropped_meta": dropped}


def display_settings(layer) -> dict:
    if isinstance(layer, MarkerLayer):
        return {"name": layer.name, "visible": bool(layer.visible)}
    return {"name": layer.name, "opacity": float(layer.opacity), "outline": bool(layer.outline),
            "visible": bool(layer.visible),
            "colors": {str(k): [int(c) for c in v] for k, v in layer.colors.items()},
            "hidden_labels": sorted(int(v) for v in layer.hidden_labels),
            "surface_opacity": {str(k): float(v) for k, v in layer.surface_opacity.items()}}


def _manifest_bytes(manifest: Mapping) -> bytes:
    return (json.dumps(manifest, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


@dataclass
class StoredLayer:
    layer_id: str
    layer: LabelLayer | MarkerLayer
    series_uid: str
    result_id: str | None
    created: float
    manifest: dict = field(repr=False, default_factory=dict)


@dataclass
class LoadedLayers:
    """What :meth:`LayerStore.load` found: the layers (in the order they were first saved) and messages for the
    user about the ones that could not be read."""

    layers: list[StoredLayer] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    kept_as: list[Path] = field(default_factory=list)


# --- the store ------------------------------------------------------------------------------------------------
class LayerStore:
    """The files. ``directory`` is the annotation store's folder (``AnnotationStore.directory``)."""

    def __init__(self, directory: str | os.PathLike | None = None) -> None:
        if directory is None:
            from viewer.store.annotation_store import default_directory

            directory = default_directory()
        self.directory = Path(directory)

    def folder(self, study_uid: str) -> Path:
        return self.directory / study_folder_name(study_uid) / LAYERS_DIR

    def manifest_path(self, study_uid: str, layer_id: str) -> Path:
        return self.folder(study_uid) / f"{layer_id}.json"

    def has_layers(self, study_uid: str) -> bool:
        folder = self.folder(study_uid)
        try:
            return any(p.suffix == ".json" and not p.name.startswith(".") for p in folder.iterdir())
        except OSError:
            return False

    # --- writing (the writer thread) ---------------------------------------------------------------------------
    def write_labels(self, study_uid: str, manifest: dict, array: np.ndarray) -> None:
        """Write a label layer: its data under a new name, then the manifest naming it, then drop older data."""
        layer_id = manifest["layer_id"]
        folder = self.folder(study_uid)
        folder.mkdir(parents=True, exist_ok=True)
        geometry = geometry_from_dict(manifest["geometry"])
        if tuple(array.shape) != geometry.shape_zyx:
            raise LayerFormatError(f"array {array.shape} is not on the layer's grid {geometry.shape_zyx}")
        name = f"{layer_id}.{uuid.uuid4().hex[:12]}{DATA_SUFFIX}"
        crc = write_nrrd_atomic(folder / name, array, geometry)
        manifest = dict(manifest, data={"file": name, "dtype": _little(array.dtype).str, "crc32": crc,
                                        "bytes": (folder / name).stat().st_size})
        write_atomic(self.manifest_path(study_uid, layer_id), _manifest_bytes(manifest))
        for old in folder.glob(f"{layer_id}.*{DATA_SUFFIX}"):
            if old.name != name:
                _unlink(old)

    def write_markers(self, study_uid: str, manifest: dict) -> None:
        write_atomic(self.manifest_path(study_uid, manifest["layer_id"]), _manifest_bytes(manifest))

    def write_display(self, study_uid: str, layer_id: str, settings: Mapping) -> bool:
        """Update the display settings in a stored manifest (False when the layer is not stored)."""
        path = self.manifest_path(study_uid, layer_id)
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        if not isinstance(manifest, dict):
            return False
        manifest.update(settings)
        manifest["saved_at"] = time.time()
        write_atomic(path, _manifest_bytes(manifest))
        return True

    def delete(self, study_uid: str, layer_id: str) -> None:
        """Remove a layer: the manifest first (the layer is gone from then on), then its data files."""
        folder = self.folder(study_uid)
        path = self.manifest_path(study_uid, layer_id)
        if path.exists():
            _unlink(path)
            fsync_folder(folder)
        if folder.exists():
            for data in folder.glob(f"{layer_id}.*{DATA_SUFFIX}"):
                _unlink(data)

    # --- reading (any thread) -----------------------------------------------------------------------------
    def load(self, study_uid: str, series_uid: str | None = None) -> LoadedLayers:
        """The stored layers of a study (of one series when ``series_uid`` is given), built and ready to add.

        Layers of one AI result share one ``Provenance`` object (as they did when the model made them). A layer
        that cannot be read is renamed aside and named in ``messages``.
        """
        out = LoadedLayers()
        folder = self.folder(study_uid)
        if not folder.is_dir():
            return out
        self._tidy(folder)
        provenances: dict[str, object] = {}
        found = []
        for path in sorted(folder.glob("*.json")):
            if path.name.startswith("."):
                continue
            try:
                manifest = json.loads(path.read_text(encoding="utf-8"))
                if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
                    raise LayerFormatError("not a radview layer manifest")
                if int(manifest.get("version", 0)) > FORMAT_VERSION:
                    out.messages.append(f"{path.name} was saved by a newer radview (layer format "
                                        f"{manifest.get('version')}); it was left as it is and not shown.")
                    continue
                if series_uid is not None and str(manifest.get("series_uid", "")) != series_uid:
                    continue
                stored = self._build(folder, path, manifest, provenances)
            except (OSError, ValueError, KeyError, TypeError, RuntimeError, zlib.error) as exc:
                kept = self._keep_aside(folder, path)
                out.kept_as.extend(kept)
                name = _manifest_name(path)
                out.messages.append(f"The saved layer {name} of this study could not be read ({type(exc).__name__}: "
                                    f"{exc}); it was kept as {kept[0] if kept else path} and is not shown.")
                continue
            found.append(stored)
        out.layers = sorted(found, key=lambda s: (s.created, s.layer_id))
        return out

    def _build(self, folder: Path, path: Path, manifest: dict, provenances: dict) -> StoredLayer:
        layer_id = str(manifest["layer_id"])
        if path.stem != layer_id:
            raise LayerFormatError(f"the manifest names layer {layer_id!r}")
        result_id = manifest.get("result_id")
        meta = decode_value(manifest.get("meta") or {})
        if not isinstance(meta, dict):
            raise LayerFormatError("meta is not a table")
        prov = meta.get("provenance")
        if prov is not None and result_id:  # the layers of one AI run share one provenance object
            meta["provenance"] = prov = provenances.setdefault(str(result_id), prov)
        if prov is not None:
            meta.setdefault("reviewed", False)
        kind = manifest.get("kind")
        if kind == "markers":
            markers = [Marker(tuple(float(v) for v in m["center_lps"]), tuple(float(v) for v in m["size_mm"]),
                              str(m.get("kind", "point")), str(m.get("text", "")),
                              None if m.get("score") is None else float(m["score"]),
                              tuple(int(v) for v in m.get("color", (255, 230, 0)))) for m in manifest["markers"]]
            layer = MarkerLayer(markers, name=str(manifest.get("name", "markers")),
                                visible=bool(manifest.get("visible", True)), meta=meta)
        elif kind == "labels":
            layer = self._build_labels(folder, manifest, meta, prov)
        else:
            raise LayerFormatError(f"unknown layer kind {kind!r}")
        return StoredLayer(layer_id, layer, str(manifest.get("series_uid", "")),
                           None if result_id is None else str(result_id), float(manifest.get("created", 0.0)),
                           manifest)

    def _build_labels(self, folder: Path, manifest: dict, meta: dict, prov) -> LabelLayer:
        data = manifest["data"]
        name = str(data["file"])
        if "/" in name or "\\" in name or name.startswith("."):
            raise LayerFormatError(f"bad data file name {name!r}")
        geometry = geometry_from_dict(manifest["geometry"])
        array, file_geometry = read_nrrd(folder / name, geometry.shape_zyx)
        if tuple(array.shape) != geometry.shape_zyx:
            raise LayerFormatError(f"{name} holds {array.shape}, the manifest says {geometry.shape_zyx}")
        if array.dtype.str != data.get("dtype", array.dtype.str):
            raise LayerFormatError(f"{name} holds {array.dtype}, the manifest says {data.get('dtype')}")
        if zlib.crc32(array) != int(data["crc32"]):
            raise LayerFormatError(f"{name} does not hold the voxels that were saved (checksum)")
        if file_geometry.max_corner_distance(geometry) > GEOMETRY_TOLERANCE_MM:
            raise LayerFormatError(f"{name} is not on the grid its manifest names")
        map_meta = decode_value(manifest.get("label_map_meta") or {})
        if prov is not None and manifest.get("label_map_provenance"):
            map_meta["provenance"] = prov
        labels = {k: str(v) for k, v in _int_keys(manifest.get("labels") or {}, "labels").items()}
        label_map = LabelMap(array, geometry, labels, meta=map_meta)
        colors = {k: tuple(int(c) for c in v) for k, v in _int_keys(manifest.get("colors") or {}, "colors").items()}
        surface = {k: float(v) for k, v in _int_keys(manifest.get("surface_opacity") or {}, "surface").items()}
        return LabelLayer(label_map, name=str(manifest.get("name", "labels")),
                          opacity=float(manifest.get("opacity", 0.4)), outline=bool(manifest.get("outline", False)),
                          visible=bool(manifest.get("visible", True)), colors=colors,
                          hidden_labels={int(v) for v in manifest.get("hidden_labels", ())},
                          surface_opacity=surface, meta=meta)

    def _keep_aside(self, folder: Path, manifest_path: Path) -> list[Path]:
        """Rename a layer's manifest and data files to ``<name>.corrupt-<time>``; the new paths."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        kept = []
        for path in [manifest_path, *sorted(folder.glob(f"{manifest_path.stem}.*{DATA_SUFFIX}"))]:
            target = path.with_name(f"{path.name}.corrupt-{stamp}")
            n = 1
            while target.exists():
                n += 1
                target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
            try:
                os.replace(path, target)
                kept.append(target)
            except OSError:
                pass
        return kept

    def _tidy(self, folder: Path) -> None:
        """Temporary files of interrupted writes, and data files no manifest names (both older than a minute)."""
        now = time.time()
        named = set()
        for path in folder.glob("*.json"):
            try:
                named.add(str(json.loads(path.read_text(encoding="utf-8"))["data"]["file"]))
            except (OSError, ValueError, KeyError, TypeError):
                named.update(p.name for p in folder.glob(f"{path.stem}.*{DATA_SUFFIX}"))  # left for _keep_aside
        for path in folder.iterdir():
            stale = path.name.startswith(TEMP_PREFIX)
            orphan = path.name.endswith(DATA_SUFFIX) and not path.name.startswith(".") and path.name not in named
            if stale or orphan:
                try:
                    if now - path.stat().st_mtime > STALE_TEMP_SECONDS:
                        path.unlink()
                except OSError:
                    pass


def _manifest_name(path: Path) -> str:
    try:
        return repr(str(json.loads(path.read_text(encoding="utf-8")).get("name")))
    except Exception:  # noqa: BLE001 - a damaged manifest: its file name will do
        return path.name


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


# --- NRRD (gzip), streamed: no second copy of the array, the GIL released while each chunk compresses ------------
_NRRD_TYPES = {"u1": "uint8", "i1": "int8", "u2": "uint16", "i2": "int16", "u4": "uint32", "i4": "int32",
               "u8": "uint64", "i8": "int64"}
_NRRD_DTYPES = {v: k for k, v in _NRRD_TYPES.items()}
_NRRD_DTYPES.update({"uchar": "u1", "unsigned char": "u1", "ushort": "u2", "unsigned short": "u2", "short": "i2",
                     "signed char": "i1", "int": "i4", "uint": "u4", "unsigned int": "u4"})
CHUNK = 1 << 22
GZIP_LEVEL = 1  # ~40 ms for the demo's 40 MB label map; level 6 is 3× slower for ~half the (already small) file


def _little(dtype: np.dtype) -> np.dtype:
    return np.dtype(dtype).newbyteorder("<")


def _vector(v) -> str:
    return "(" + ",".join(repr(float(c)) for c in v) + ")"


def nrrd_header(shape_zyx, dtype, geometry: Geometry) -> bytes:
    """A detached-free NRRD 4 header for a ``(z, y, x)`` array on ``geometry`` (LPS; every float to 17 digits)."""
    kind = _little(dtype).str[1:]
    if kind not in _NRRD_TYPES:
        raise LayerFormatError(f"a label map of {np.dtype(dtype)} cannot be stored")
    z, y, x = (int(v) for v in shape_zyx)
    lines = ["NRRD0004", "# radview label layer (viewer/store/layer_store.py)", f"type: {_NRRD_TYPES[kind]}",
             "dimension: 3", "space: left-posterior-superior", f"sizes: {x} {y} {z}",
             "space directions: " + " ".join(_vector(v) for v in geometry.axes_lps),
             "kinds: domain domain domain", "endian: little", "encoding: gzip",
             f"space origin: {_vector(geometry.origin_lps)}"]
    return ("\n".join(lines) + "\n\n").encode("ascii")


def write_nrrd_atomic(path: Path, array: np.ndarray, geometry: Geometry) -> int:
    """Write ``array`` as a gzip NRRD at ``path`` (temporary file, fsync, rename, folder fsync); its CRC-32."""
    array = np.ascontiguousarray(array, dtype=_little(array.dtype))
    header = nrrd_header(array.shape, array.dtype, geometry)
    flat = memoryview(array.reshape(-1)).cast("B")
    crc = 0
    with atomic_path(path, mode=0o600) as tmp, open(tmp, "wb") as fh:
        fh.write(header)
        gz = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
        for start in range(0, flat.nbytes, CHUNK):
            part = flat[start:start + CHUNK]
            crc = zlib.crc32(part, crc)
            fh.write(gz.compress(part))
        fh.write(gz.flush())
    return crc


def _floats(text: str, n: int) -> list[float]:
    values = [float(v) for v in text.replace("(", " ").replace(")", " ").replace(",", " ").split()]
    if len(values) != n:
        raise LayerFormatError(f"expected {n} numbers, got {text!r}")
    return values


def read_nrrd(path: Path, expected_shape_zyx: tuple[int, int, int] | None = None) -> tuple[np.ndarray, Geometry]:
    """A gzip (or raw) NRRD as written by :func:`write_nrrd_atomic`: a writable ``(z, y, x)`` array and its grid.

    The voxels are inflated 4 MB at a time straight into the returned array (no second copy of the volume; the GIL
    is held only to copy each piece). With ``expected_shape_zyx`` (the manifest's grid) a header declaring another
    size is refused before anything is allocated.
    """
    with open(path, "rb") as fh:
        head = b""
        while b"\n\n" not in head:
            more = fh.read(4096)
            if not more:
                raise LayerFormatError(f"{path.name} ends inside its header")
            head += more
            if len(head) > 1 << 16:
                raise LayerFormatError(f"{path.name} has no NRRD header")
        head, _, body = head.partition(b"\n\n")
        lines = head.decode("ascii", "replace").splitlines()
        if not lines or not lines[0].startswith("NRRD000"):
            raise LayerFormatError(f"{path.name} is not an NRRD file")
        fields = {}
        for line in lines[1:]:
            if line.startswith("#") or ":" not in line:
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.lstrip("=").strip()
        kind = _NRRD_DTYPES.get(fields.get("type", ""))
        if kind is None or fields.get("dimension") != "3":
            raise LayerFormatError(f"{path.name}: not a 3D integer NRRD ({fields.get('type')!r})")
        endian = fields.get("endian", "little")
        dtype = np.dtype(("<" if endian == "little" else ">") + kind)
        try:
            x, y, z = (int(v) for v in fields.get("sizes", "").split())
        except ValueError:
            raise LayerFormatError(f"{path.name}: sizes {fields.get('sizes')!r} are not three numbers") from None
        if min(x, y, z) < 1:
            raise LayerFormatError(f"{path.name}: sizes {fields.get('sizes')!r}")
        if expected_shape_zyx is not None and (z, y, x) != tuple(expected_shape_zyx):
            raise LayerFormatError(f"{path.name} holds {(z, y, x)}, the manifest says {tuple(expected_shape_zyx)}")
        geometry = Geometry.from_affine_lps(_affine(fields), (z, y, x))
        out = np.empty(x * y * z, dtype)
        buffer = memoryview(out).cast("B")
        encoding = fields.get("encoding", "")
        if encoding not in ("gzip", "gz", "raw"):
            raise LayerFormatError(f"{path.name}: encoding {encoding!r} is not read here")
        inflate = zlib.decompressobj(31) if encoding != "raw" else None
        pos, ended = 0, False
        while True:
            if not body and not ended:
                body = fh.read(CHUNK)
                ended = not body
            if inflate is None:
                piece, body = body, b""
            else:  # at most one chunk out per call (one more byte than fits tells a file that holds too much)
                piece = inflate.decompress(body, min(CHUNK, buffer.nbytes - pos + 1))
                body = inflate.unconsumed_tail
            if pos + len(piece) > buffer.nbytes:
                raise LayerFormatError(f"{path.name} holds more voxels than its header says")
            buffer[pos:pos + len(piece)] = piece
            pos += len(piece)
            if (inflate is not None and inflate.eof) or (ended and not body and not piece):
                break
        if pos != buffer.nbytes or (inflate is not None and not inflate.eof):
            raise LayerFormatError(f"{path.name} holds {pos} of {buffer.nbytes} bytes of voxels (truncated)")
    return out.astype(dtype.newbyteorder("="), copy=False).reshape(z, y, x), geometry


def _affine(fields: Mapping) -> np.ndarray:
    if fields.get("space", "left-posterior-superior") not in ("left-posterior-superior", "LPS"):
        raise LayerFormatError(f"space {fields.get('space')!r} is not LPS")
    directions = _floats(fields.get("space directions", ""), 9)
    affine = np.eye(4)
    affine[:3, :3] = np.asarray(directions).reshape(3, 3).T  # columns: the steps of x, y, z
    affine[:3, 3] = _floats(fields.get("space origin", ""), 3)
    return affine


# --- the autosave ---------------------------------------------------------------------------------------------
@dataclass
class _Job:
    study: str
    layer_id: str
    kind: str  # "labels" | "markers" | "display" | "delete"
    manifest: dict | None
    array: np.ndarray | None
    first_generation: int
    generation: int
    not_before: float = 0.0  # time.monotonic() before which the writer leaves it waiting (unless flushed)
    pooled: bool = False  # ``array`` is the autosave's own copy: it goes back to the spare buffers once written


@dataclass
class _Tracked:
    layer_id: str
    study: str
    series: str
    result_id: str | None
    created: float
    display: dict | None = None  # the display settings last scheduled for writing


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


class LayerAutosave:
    """Keeps a session's AI and edited layers on disk (see the module docstring).

    ``saved`` (generation) and ``save_failed`` (message) are emitted on the writer thread. ``generation`` counts
    the changes scheduled, ``saved_generation`` the changes on disk (every change up to it is written, or
    superseded by a newer write of its layer, or failed and reported).
    """

    saved = Signal(int)
    save_failed = Signal(str)

    def __init__(self, session, store: LayerStore | None = None) -> None:
        self.session = session
        self.store = store or LayerStore()
        self.generation = 0
        self.saved_generation = 0
        self.schedule_ms: list[float] = []  # time the caller (GUI) thread spent per change (snapshot included)
        self.write_ms: list[float] = []  # time the writer spent per layer written
        self.last_error: str | None = None
        self._tracked: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._results: dict[int, tuple[object, str]] = {}  # id(provenance) -> (provenance, result id)
        self._cond = threading.Condition()
        self._pending: dict[tuple[str, str], _Job] = {}
        self._in_flight: _Job | None = None
        self._hurry = 0  # flushes waiting
        self._last_created = 0.0
        #: one spare snapshot buffer per (shape, dtype): copying into memory already mapped takes ~3 ms for 40 MB,
        #: a fresh allocation 4-28 ms (the kernel maps and zeroes it page by page)
        self._spare: dict[tuple, np.ndarray] = {}
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="layer-autosave", daemon=True)
        self._thread.start()
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
                           self._last_created)
        self._tracked[layer] = tracked
        return tracked

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
        for s in stored:
            self._tracked[s.layer] = _Tracked(s.layer_id, study_uid, s.series_uid, s.result_id, s.created,
                                              display_settings(s.layer))
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
        self._put(_Job(tracked.study, tracked.layer_id, "display", settings, None, 0, 0))

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
        args = (layer, tracked.layer_id, tracked.study, tracked.series, tracked.result_id, tracked.created)
        tracked.display = display_settings(layer)
        if isinstance(layer, LabelLayer):
            job = _Job(tracked.study, tracked.layer_id, "labels", label_manifest(*args), None, 0, 0)
            job.array, job.pooled = self._snapshot(layer.label_map.array, freeze)
        else:
            job = _Job(tracked.study, tracked.layer_id, "markers", marker_manifest(*args), None, 0, 0)
        job.not_before = time.monotonic() + settle if settle > 0 else 0.0
        self._put(job)
        self.schedule_ms.append((time.perf_counter() - t0) * 1000)
        return True

    def _snapshot(self, array: np.ndarray, freeze: bool) -> tuple[np.ndarray, bool]:
        """``(an array that will not change, True if it is the autosave's own copy)``."""
        if freeze and array.base is None and array.flags.writeable and array.flags.c_contiguous:
            array.flags.writeable = False
        if _immutable(array) and array.flags.c_contiguous:
            return array, False
        with self._cond:
            spare = self._spare.pop((array.shape, array.dtype.str), None)
        if spare is None:
            return np.array(array, copy=True, order="C"), True
        np.copyto(spare, array)
        return spare, True

    def _give_back(self, job: _Job) -> None:
        """The job's copy is no longer needed: keep it as the spare buffer of its size (caller holds the lock)."""
        array, job.array = job.array, None
        if job.pooled and array is not None:
            self._spare.setdefault((array.shape, array.dtype.str), array)

    def drop_spares(self) -> None:
        """Free the spare snapshot buffers (another series is open, or the window closes)."""
        with self._cond:
            self._spare.clear()

    def schedule_delete(self, layer) -> None:
        tracked = self._tracked.pop(layer, None)
        if tracked is not None:
            self._put(_Job(tracked.study, tracked.layer_id, "delete", None, None, 0, 0))

    def _put(self, job: _Job) -> None:
        key = (job.study, job.layer_id)
        with self._cond:
            self.generation += 1
            job.first_generation = job.generation = self.generation
            self._cond.notify_all()  # a writer letting a job settle looks again
            waiting = self._pending.get(key)
            if waiting is None:
                self._pending[key] = job
                self._queue.put(key)
                return
            job.first_generation = waiting.first_generation
            if job.kind == "display" and waiting.kind != "delete":  # newer display settings on what waits
                waiting.manifest.update(job.manifest)
                waiting.generation = job.generation
                return
            self._give_back(waiting)  # latest wins: the older snapshot is dropped, its copy reused
            self._pending[key] = job

    # --- the writer thread ------------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            key = self._queue.get()
            if key is None:
                return
            with self._cond:
                job = self._pending.get(key)
                while job is not None and not self._hurry and job.not_before > time.monotonic():
                    self._cond.wait(job.not_before - time.monotonic())
                    job = self._pending.get(key)
                job = self._pending.pop(key, None)
                self._in_flight = job
            if job is not None:
                self._write(job)
            with self._cond:
                if job is not None:
                    self._give_back(job)
                self._in_flight = None
                waiting = [j.first_generation for j in self._pending.values()]
                before = self.saved_generation
                self.saved_generation = max(before, (min(waiting) - 1) if waiting else self.generation)
                saved = self.saved_generation
                self._cond.notify_all()
            if saved != before:
                self.saved.emit(saved)

    def _write(self, job: _Job) -> None:
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
        except Exception as exc:  # noqa: BLE001 - reported; the writer thread must live on (MemoryError included)
            what = job.manifest.get("name", job.layer_id) if job.manifest else job.layer_id
            self.last_error = f"Layer {what!r} not saved to {self.store.folder(job.study)}: {exc}"
            self.save_failed.emit(self.last_error)
            return
        if job.kind == "labels":
            self.write_ms.append((time.perf_counter() - t0) * 1000)

    # --- reading, flushing, closing ---------------------------------------------------------------------------
    def has_saved(self, study_uid: str) -> bool:
        """True when the study has stored layers, or writes of it are still waiting (cheap: one folder listing)."""
        with self._cond:
            busy = any(key[0] == study_uid for key in self._pending) or (
                self._in_flight is not None and self._in_flight.study == study_uid)
        return busy or self.store.has_layers(study_uid)

    def load_series(self, study_uid: str, series_uid: str, timeout: float = 30.0) -> LoadedLayers:
        """The stored layers of a series, after every write scheduled so far (callable from any thread)."""
        self.flush(timeout)
        return self.store.load(study_uid, series_uid)

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every scheduled change is on disk (or failed); False on timeout."""
        with self._cond:
            target = self.generation
            self._hurry += 1  # nothing settles any more: write it all now
            self._cond.notify_all()
            try:
                return self._cond.wait_for(lambda: self.saved_generation >= target, timeout)
            finally:
                self._hurry -= 1

    def close(self) -> None:
        """Write what is pending and stop the writer thread."""
        if not self._thread.is_alive():
            return
        for signal, slot in self._connections:
            try:
                signal.disconnect(slot)
            except (ValueError, RuntimeError):
                pass
        self.flush()
        self._queue.put(None)
        self._thread.join(timeout=30)
        self.drop_spares()


__all__ = ["LayerStore", "LayerAutosave", "LoadedLayers", "StoredLayer", "LayerFormatError", "should_keep",
           "encode_value", "decode_value", "encode_meta", "label_manifest", "marker_manifest", "series_of"]
