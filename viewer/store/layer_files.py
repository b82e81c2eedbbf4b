"""The layer store's files: a study's ``layers/`` folder of manifests (JSON) and label data (gzip NRRD).

Writes are atomic and ordered so a crash leaves a manifest naming a complete data file (see
:mod:`viewer.store.layer_store`). Reads trust nothing: every manifest and data file is checked (size, depth,
UTF-8, types — the recorded source of the image series too —, the data against its manifest's size, dtype, checksum
and grid, and — given the series' own grid — the grid against the volume it is restored onto). A layer that fails
is set aside (its manifest and data files renamed to ``<name>.corrupt-<time>``, never deleted) and reported as a
:class:`~viewer.store.set_aside.Problem` naming the file that failed and why; the study's other layers still load.
"""
from __future__ import annotations

import os
import time
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np

from radview_base.atomic_file import TEMP_PREFIX, fsync_folder
from radview_base.geometry import Geometry, GeometryMismatchError, require_same_grid
from viewer.core.layers import LabelLayer, MarkerLayer
from viewer.io.volume import LabelMap
from viewer.store.annotation_store import STALE_TEMP_SECONDS, file_name, write_atomic
from viewer.store.layer_json import (
    FORMAT,
    FORMAT_VERSION,
    decode_meta,
    geometry_from_dict,
    label_layer_fields,
    manifest_bytes,
    manifest_value,
    markers_from,
    source_of,
)
from viewer.store.nrrd_file import LayerFormatError, little, read_nrrd, write_nrrd_atomic
from viewer.store.set_aside import Problem, describe, kept_text, read_json, set_aside

LAYERS_DIR = "layers"
DATA_SUFFIX = ".nrrd"
GEOMETRY_TOLERANCE_MM = 1e-4


def study_folder_name(study_uid: str) -> str:
    return file_name(study_uid)[:-len(".json")]


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
    """What :meth:`LayerStore.load` found: the layers (in the order they were first saved); ``problems``, the files
    that could not be restored ``(file, reason)``; ``messages``, what to tell the user; ``kept_as``, where the
    files set aside now are."""

    layers: list[StoredLayer] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    kept_as: list[Path] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


class _Failed(Exception):
    """Reading ``file`` raised ``cause``."""

    def __init__(self, file: Path, cause: BaseException):
        super().__init__(str(cause))
        self.file, self.cause = file, cause


class _LeaveAsIs(Exception):
    """A layer that is not shown but is not damaged either (a message for the user, if any; nothing set aside)."""


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
        manifest = dict(manifest, data={"file": name, "dtype": little(array.dtype).str, "crc32": crc,
                                        "bytes": (folder / name).stat().st_size})
        write_atomic(self.manifest_path(study_uid, layer_id), manifest_bytes(manifest))
        for old in folder.glob(f"{layer_id}.*{DATA_SUFFIX}"):
            if old.name != name:
                _unlink(old)

    def write_markers(self, study_uid: str, manifest: dict) -> None:
        write_atomic(self.manifest_path(study_uid, manifest["layer_id"]), manifest_bytes(manifest))

    def write_display(self, study_uid: str, layer_id: str, settings: Mapping) -> bool:
        """Update the display settings in a stored manifest (False when the layer is not stored, or unreadable)."""
        path = self.manifest_path(study_uid, layer_id)
        try:
            manifest = read_json(path)
        except Exception:  # noqa: BLE001 - missing or damaged: the next full write replaces it
            return False
        if not isinstance(manifest, dict):
            return False
        manifest.update(settings)
        manifest["saved_at"] = time.time()
        write_atomic(path, manifest_bytes(manifest))
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
    def load(self, study_uid: str, series_uid: str | None = None, geometry: Geometry | None = None,
             series_key: str | None = None) -> LoadedLayers:
        """The stored layers of a study (of one series when ``series_uid`` is given), built and ready to add.

        Layers of one AI result share one ``Provenance`` object (as they did when the model made them). With
        ``geometry`` (the grid of the series they are restored onto; ``series_key`` tells the parts of a split
        series apart) a label layer on another grid is not returned. A layer that cannot be read is set aside and
        reported in ``problems`` and ``messages``; nothing read from disk raises here.
        """
        out = LoadedLayers()
        folder = self.folder(study_uid)
        if not folder.is_dir():
            return out
        self._tidy(folder)
        provenances: dict[str, object] = {}
        for path in sorted(folder.glob("*.json")):
            if path.name.startswith("."):
                continue
            manifest = None
            try:
                try:
                    manifest = self._manifest(path)
                    if series_uid is not None and manifest["series_uid"] != series_uid:
                        continue
                    stored = self._build(folder, path, manifest, provenances)
                    self._check_grid(path, stored, geometry, series_key)
                except (_Failed, _LeaveAsIs, MemoryError):
                    raise
                except Exception as exc:  # noqa: BLE001 - anything in the manifest: the manifest failed
                    raise _Failed(path, exc) from exc
            except _LeaveAsIs as exc:
                if str(exc):
                    out.messages.append(str(exc))
                continue
            except MemoryError:  # not damage: the layer may fit another time
                out.problems.append(Problem(path, "there is not enough memory to restore it now; it was left as "
                                                  "it is"))
                out.messages.append(f"The saved layer {_layer_name(manifest, path)} is too large to restore now "
                                    "(not enough memory); it was left as it is and is not shown.")
                continue
            except _Failed as failed:
                self._report(out, folder, path, manifest, failed)
                continue
            out.layers.append(stored)
        out.layers.sort(key=lambda s: (s.created, s.layer_id))
        return out

    def _manifest(self, path: Path) -> dict:
        """The manifest at ``path`` (a newer format: :class:`_LeaveAsIs`, with a message)."""
        manifest = read_json(path)
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise LayerFormatError("it is not a radview layer manifest")
        version = manifest_value(manifest, "version", int, 0)
        if version > FORMAT_VERSION:
            raise _LeaveAsIs(f"{path.name} was saved by a newer radview (layer format {version}); it was left as it "
                             "is and not shown.")
        manifest["series_uid"] = manifest_value(manifest, "series_uid", str, "")
        return manifest

    def _report(self, out: LoadedLayers, folder: Path, path: Path, manifest, failed: _Failed) -> None:
        kept = self._keep_aside(folder, path)
        out.kept_as.extend(kept.values())
        reason = describe(failed.cause)
        where = kept_text(failed.file, kept.get(failed.file))
        out.problems.append(Problem(failed.file, f"{reason}; {where}"))
        manifest_kept = kept.get(path)
        out.messages.append(f"The saved layer {_layer_name(manifest, path)} of this study could not be read "
                            f"({failed.file.name}: {reason}); it was "
                            f"{f'kept as {manifest_kept}' if manifest_kept else 'left where it is'} and is not shown.")

    def _build(self, folder: Path, path: Path, manifest: dict, provenances: dict) -> StoredLayer:
        layer_id = manifest_value(manifest, "layer_id", str, None)
        if path.stem != layer_id:
            raise LayerFormatError(f"the manifest names layer {layer_id!r}")
        result_id = manifest.get("result_id")
        if result_id is not None and not isinstance(result_id, (str, int)):
            raise LayerFormatError("result_id is not an id")
        source_of(manifest)  # the recorded source of the image series, when any: a malformed one fails the manifest
        meta = decode_meta(manifest.get("meta"))
        prov = meta.get("provenance")
        if prov is not None and result_id:  # the layers of one AI run share one provenance object
            meta["provenance"] = prov = provenances.setdefault(str(result_id), prov)
        if prov is not None:
            meta.setdefault("reviewed", False)
        kind = manifest.get("kind")
        if kind == "markers":
            layer = MarkerLayer(markers_from(manifest), name=manifest_value(manifest, "name", str, "markers"),
                                visible=manifest_value(manifest, "visible", bool, True), meta=meta)
        elif kind == "labels":
            layer = self._build_labels(folder, manifest, meta, prov)
        else:
            raise LayerFormatError(f"unknown layer kind {str(kind)[:40]!r}")
        return StoredLayer(layer_id, layer, manifest["series_uid"], None if result_id is None else str(result_id),
                           float(manifest_value(manifest, "created", float, 0.0)), manifest)

    def _build_labels(self, folder: Path, manifest: dict, meta: dict, prov) -> LabelLayer:
        data = manifest_value(manifest, "data", dict, None)
        if data is None:
            raise LayerFormatError("a label layer without its data file")
        name = manifest_value(data, "file", str, None, "data.file")
        if not name or not name.startswith(f"{manifest['layer_id']}.") or "/" in name or "\\" in name or \
                not name.endswith(DATA_SUFFIX):
            raise LayerFormatError(f"bad data file name {str(name)[:60]!r}")
        crc = manifest_value(data, "crc32", int, None, "data.crc32")
        dtype = manifest_value(data, "dtype", str, None, "data.dtype")
        geometry = geometry_from_dict(manifest.get("geometry"))
        fields = label_layer_fields(manifest)
        map_meta = decode_meta(manifest.get("label_map_meta"), "label_map_meta")
        path = folder / name
        try:
            array, file_geometry = read_nrrd(path, geometry.shape_zyx)
            if dtype is not None and array.dtype.str != dtype:
                raise LayerFormatError(f"{name} holds {array.dtype}, the manifest says {dtype}")
            if crc is None or zlib.crc32(array) != crc:
                raise LayerFormatError(f"{name} does not hold the voxels that were saved (checksum)")
            if file_geometry.max_corner_distance(geometry) > GEOMETRY_TOLERANCE_MM:
                raise LayerFormatError(f"{name} is not on the grid its manifest names")
        except MemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - anything in the data file: the data file failed
            raise _Failed(path, exc) from exc
        if prov is not None and manifest.get("label_map_provenance"):
            map_meta["provenance"] = prov
        label_map = LabelMap(array, geometry, fields.pop("labels"), meta=map_meta)
        return LabelLayer(label_map, meta=meta, **fields)

    def _check_grid(self, path: Path, stored: StoredLayer, geometry: Geometry | None, series_key: str | None) -> None:
        """A label layer restored onto a series must lie on its grid; one of another part of a split series is
        left alone, one that should be on this grid and is not is damaged."""
        if geometry is None or not isinstance(stored.layer, LabelLayer):
            return
        try:
            require_same_grid(geometry, stored.layer.geometry, what=f"the saved layer {stored.layer.name!r}")
        except GeometryMismatchError as exc:
            stored_key = stored.manifest.get("series_key")
            if series_key and isinstance(stored_key, str) and stored_key != series_key:
                raise _LeaveAsIs() from None  # like a layer of another series: not this volume's, nothing to say
            if not stored_key and series_key and series_key != stored.series_uid:
                raise _LeaveAsIs(f"{exc}: it may belong to another part of this series; it was left as it is "
                                 "and is not shown.") from None
            raise _Failed(path, LayerFormatError(f"it does not lie on this series' grid ({exc})")) from None

    def _keep_aside(self, folder: Path, manifest_path: Path) -> dict[Path, Path]:
        """Rename a layer's manifest and data files to ``<name>.corrupt-<time>``: ``{old path: new path}``."""
        kept = {}
        for path in [manifest_path, *sorted(folder.glob(f"{manifest_path.stem}.*{DATA_SUFFIX}"))]:
            target = set_aside(path)
            if target is not None:
                kept[path] = target
        return kept

    def _tidy(self, folder: Path) -> None:
        """Temporary files of interrupted writes, and data files no manifest names (both older than a minute)."""
        now = time.time()
        named = set()
        for path in folder.glob("*.json"):
            try:
                named.add(str(read_json(path)["data"]["file"]))
            except Exception:  # noqa: BLE001 - unreadable: its data files stay for load() to set aside
                named.update(p.name for p in folder.glob(f"{path.stem}.*{DATA_SUFFIX}"))
        for path in folder.iterdir():
            stale = path.name.startswith(TEMP_PREFIX)
            orphan = path.name.endswith(DATA_SUFFIX) and not path.name.startswith(".") and path.name not in named
            if stale or orphan:
                try:
                    if now - path.stat().st_mtime > STALE_TEMP_SECONDS:
                        path.unlink()
                except OSError:
                    pass


def _layer_name(manifest, path: Path) -> str:
    name = manifest.get("name") if isinstance(manifest, dict) else None
    return repr(name) if isinstance(name, str) else path.name


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
