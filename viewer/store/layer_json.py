"""A stored layer's manifest as JSON, both ways: meta values (tagged tuples, sets, non-string keys, the ``ai.api``
dataclasses), geometry, display settings, markers — and, reading, a type check of every field, so a manifest with
a string where a number belongs fails here (and is set aside) instead of in a view drawing the layer later.

A label layer's manifest may also record the **source** of its image series (:func:`source_of`): where the series
was read from when the layer was saved — ``{"path": <absolute folder of the DICOM series, or the image file>,
"series_uid": <its SeriesInstanceUID, "" for an image file>}``. Manifests saved before it was recorded have none."""
from __future__ import annotations

import dataclasses
import functools
import json
import math
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from radview_base.geometry import Geometry
from viewer.core.layers import LabelLayer, Marker, MarkerLayer
from viewer.store.nrrd_file import LayerFormatError

FORMAT = "radview-layer"
FORMAT_VERSION = 1
#: review state written into layer meta by review.sync_layer_meta: derived from the review table, never stored
DERIVED_META_KEYS = frozenset({"reviewed", "review_state", "reviewed_by", "reviewed_at", "decided_by", "decided_at",
                               "detection_review"})


@functools.lru_cache(maxsize=None)
def _ai_types() -> dict[str, type]:
    from ai.api import Detection, Provenance, StructureFeatures

    return {"Provenance": Provenance, "Detection": Detection, "StructureFeatures": StructureFeatures}


class _Unencodable(TypeError):
    pass


# --- meta values ----------------------------------------------------------------------------------------------
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


def _tagged_list(value: dict, tag: str) -> list:
    items = value[tag]
    if not isinstance(items, list):
        raise LayerFormatError(f"{tag} holds a {type(items).__name__}, not a list")
    return items


def decode_value(value: Any) -> Any:
    if isinstance(value, list):
        return [decode_value(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "$tuple" in value:
        return tuple(decode_value(v) for v in _tagged_list(value, "$tuple"))
    if "$set" in value:
        return {_hashable(decode_value(v)) for v in _tagged_list(value, "$set")}
    if "$items" in value:
        pairs = _tagged_list(value, "$items")
        if not all(isinstance(p, list) and len(p) == 2 for p in pairs):
            raise LayerFormatError("$items holds something other than [key, value] pairs")
        return {_hashable(decode_value(k)): decode_value(v) for k, v in pairs}
    if "$type" in value:
        cls = _ai_types().get(value["$type"]) if isinstance(value["$type"], str) else None
        if cls is None:
            raise LayerFormatError(f"unknown stored type {value['$type']!r}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        args = {k: decode_value(v) for k, v in value.items() if k in fields}
        for name, arg in args.items():
            _check_field(cls.__name__, name, str(fields[name].type), arg)
        return cls(**args)
    return {k: decode_value(v) for k, v in value.items()}


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_field(cls_name: str, name: str, type_text: str, value) -> None:
    """Refuse a stored ``ai.api`` field of the wrong JSON type (the annotation, e.g. ``float``, says which)."""
    if type_text == "str":
        ok = isinstance(value, str)
    elif type_text == "float":
        ok = is_number(value)
    elif type_text == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif type_text.startswith("tuple[float"):
        ok = isinstance(value, (tuple, list)) and len(value) == type_text.count("float") and all(
            is_number(v) for v in value)
    elif type_text.startswith("Mapping"):
        ok = isinstance(value, dict) and (not type_text.endswith("float]") or all(
            is_number(v) for v in value.values()))
    else:
        ok = True
    if not ok:
        raise LayerFormatError(f"{cls_name}.{name} should be {type_text}, not {type(value).__name__} "
                               f"{str(value)[:40]!r}")


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


def _sequence_of(type_name: str):
    def check(value) -> bool:
        cls = _ai_types()[type_name]
        return isinstance(value, (tuple, list)) and all(isinstance(v, cls) for v in value)

    return check


#: what the viewer reads from a layer's meta, and the type it must have
_META_CHECKS = {
    "provenance": lambda v: isinstance(v, _ai_types()["Provenance"]),
    "detections": _sequence_of("Detection"),
    "structures": _sequence_of("StructureFeatures"),
    "messages": lambda v: isinstance(v, (tuple, list)) and all(isinstance(s, str) for s in v),
    **{k: lambda v: isinstance(v, bool) for k in ("ai", "edited")},
    **{k: lambda v: isinstance(v, str) for k in ("edited_by", "edited_at", "model_id")},
    "revision": lambda v: isinstance(v, (str, int)) and not isinstance(v, bool),
}


def decode_meta(stored, what: str = "meta") -> dict:
    """A layer's meta from its manifest, each key the viewer reads of the type it expects."""
    meta = decode_value(stored if stored is not None else {})
    if not isinstance(meta, dict):
        raise LayerFormatError(f"{what} is not a table")
    for key, check in _META_CHECKS.items():
        if key in meta and not check(meta[key]):
            raise LayerFormatError(f"{what}.{key} is a {type(meta[key]).__name__} of the wrong kind")
    return meta


# --- geometry -------------------------------------------------------------------------------------------------
def geometry_dict(geometry: Geometry) -> dict:
    return {"shape_zyx": list(geometry.shape_zyx), "spacing_zyx": list(geometry.spacing_zyx),
            "origin_lps": list(geometry.origin_lps), "direction": [list(row) for row in geometry.direction]}


def _numbers(value, n: int, what: str, finite: bool = True) -> list:
    if not isinstance(value, list) or len(value) != n or not all(is_number(v) for v in value) or (
            finite and not all(math.isfinite(v) for v in value)):
        raise LayerFormatError(f"{what} is not {n} {'finite ' if finite else ''}numbers ({str(value)[:60]})")
    return value


def geometry_from_dict(d) -> Geometry:
    """A stored grid: three positive whole sizes, finite spacing, origin and a 3×3 direction, or LayerFormatError."""
    if not isinstance(d, Mapping):
        raise LayerFormatError("geometry is not a table")
    shape = _numbers(d.get("shape_zyx"), 3, "geometry.shape_zyx")
    if not all(isinstance(v, int) and v >= 1 for v in shape):
        raise LayerFormatError(f"geometry.shape_zyx {shape} are not positive whole numbers")
    direction = d.get("direction")
    if not isinstance(direction, list) or len(direction) != 3:
        raise LayerFormatError("geometry.direction is not 3 rows")
    rows = [_numbers(row, 3, "a geometry.direction row") for row in direction]
    try:
        return Geometry(tuple(shape), tuple(_numbers(d.get("spacing_zyx"), 3, "geometry.spacing_zyx")),
                        tuple(_numbers(d.get("origin_lps"), 3, "geometry.origin_lps")),
                        tuple(tuple(row) for row in rows))
    except ValueError as exc:
        raise LayerFormatError(f"geometry: {exc}") from None


# --- manifests ------------------------------------------------------------------------------------------------
def display_settings(layer) -> dict:
    if isinstance(layer, MarkerLayer):
        return {"name": layer.name, "visible": bool(layer.visible)}
    return {"name": layer.name, "opacity": float(layer.opacity), "outline": bool(layer.outline),
            "visible": bool(layer.visible),
            "colors": {str(k): [int(c) for c in v] for k, v in layer.colors.items()},
            "hidden_labels": sorted(int(v) for v in layer.hidden_labels),
            "surface_opacity": {str(k): float(v) for k, v in layer.surface_opacity.items()}}


def label_manifest(layer: LabelLayer, layer_id: str, study_uid: str, series_uid: str, result_id: str | None,
                   created: float, series_key: str = "", source: Mapping | None = None) -> dict:
    """Everything about a label layer but its voxels (JSON-ready; the store adds ``data``); ``source``: where its
    image series was read from (:func:`source_of`), when known."""
    meta, dropped = encode_meta(layer.meta)
    map_meta, dropped_map = encode_meta({k: v for k, v in layer.label_map.meta.items() if k != "provenance"})
    recorded = {"source": {"path": str(source["path"]), "series_uid": str(source.get("series_uid") or "")}} \
        if source and source.get("path") else {}
    return {"format": FORMAT, "version": FORMAT_VERSION, "kind": "labels", "layer_id": layer_id,
            "study_uid": study_uid, "series_uid": series_uid, "series_key": series_key or series_uid,
            "result_id": result_id, "created": created, "saved_at": time.time(),
            "revision": str(layer.meta.get("revision", "0")), **display_settings(layer),
            "labels": {str(k): v for k, v in layer.label_map.labels.items()},
            "label_map_meta": map_meta, "label_map_provenance": "provenance" in layer.label_map.meta,
            "meta": meta, "dropped_meta": dropped + [f"label_map.{k}" for k in dropped_map],
            "geometry": geometry_dict(layer.geometry), "dtype": layer.label_map.array.dtype.str, **recorded}


def marker_manifest(layer: MarkerLayer, layer_id: str, study_uid: str, series_uid: str, result_id: str | None,
                    created: float, series_key: str = "") -> dict:
    meta, dropped = encode_meta(layer.meta)
    markers = [{"center_lps": list(m.center_lps), "size_mm": list(m.size_mm), "kind": m.kind, "text": m.text,
                "score": m.score, "color": list(m.color)} for m in layer.markers]
    return {"format": FORMAT, "version": FORMAT_VERSION, "kind": "markers", "layer_id": layer_id,
            "study_uid": study_uid, "series_uid": series_uid, "series_key": series_key or series_uid,
            "result_id": result_id, "created": created, "saved_at": time.time(), "name": layer.name,
            "visible": bool(layer.visible), "markers": markers, "meta": meta, "dropped_meta": dropped}


def manifest_bytes(manifest: Mapping) -> bytes:
    return (json.dumps(manifest, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


# --- reading a manifest's fields ------------------------------------------------------------------------------
def _get(manifest: Mapping, key: str, kind, default, what: str | None = None):
    value = manifest.get(key, default)
    if value is None and default is None:
        return None
    ok = is_number(value) if kind is float else isinstance(value, kind) and not (
        kind is int and isinstance(value, bool))
    if not ok:
        raise LayerFormatError(f"{what or key} is a {type(value).__name__}, not a {getattr(kind, '__name__', kind)}")
    return value


def _int_table(d, what: str) -> dict[int, Any]:
    if not isinstance(d, Mapping):
        raise LayerFormatError(f"{what} is not a table")
    try:
        return {int(k): v for k, v in d.items()}
    except ValueError:
        raise LayerFormatError(f"{what} has a key that is not a label number") from None


def _color(value, what: str) -> tuple[int, ...]:
    if not isinstance(value, list) or len(value) not in (3, 4) or not all(
            isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in value):
        raise LayerFormatError(f"{what} is not an RGB colour ({str(value)[:40]})")
    return tuple(value)


def label_layer_fields(manifest: Mapping) -> dict:
    """The :class:`LabelLayer` keyword arguments a manifest stores (not the label map, not meta), type-checked."""
    labels = _int_table(manifest.get("labels") or {}, "labels")
    if not all(isinstance(v, str) for v in labels.values()):
        raise LayerFormatError("a label name is not text")
    colors = {k: _color(v, f"colour of label {k}")
              for k, v in _int_table(manifest.get("colors") or {}, "colors").items()}
    surface = _int_table(manifest.get("surface_opacity") or {}, "surface_opacity")
    if not all(is_number(v) for v in surface.values()):
        raise LayerFormatError("a 3D opacity is not a number")
    hidden = _get(manifest, "hidden_labels", list, [])
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in hidden):
        raise LayerFormatError("hidden_labels are not label numbers")
    return {"name": _get(manifest, "name", str, "labels"), "opacity": float(_get(manifest, "opacity", float, 0.4)),
            "outline": _get(manifest, "outline", bool, False), "visible": _get(manifest, "visible", bool, True),
            "colors": colors, "hidden_labels": set(hidden), "labels": labels,
            "surface_opacity": {k: float(v) for k, v in surface.items()}}


def markers_from(manifest: Mapping) -> list[Marker]:
    stored = _get(manifest, "markers", list, None)
    if stored is None:
        raise LayerFormatError("a marker layer without markers")
    out = []
    for i, m in enumerate(stored):
        what = f"marker {i + 1}"
        if not isinstance(m, Mapping):
            raise LayerFormatError(f"{what} is a {type(m).__name__}, not a table")
        score = _get(m, "score", float, None, f"{what} score")
        out.append(Marker(tuple(float(v) for v in _numbers(m.get("center_lps"), 3, f"{what} centre")),
                          tuple(float(v) for v in _numbers(m.get("size_mm"), 3, f"{what} size")),
                          _get(m, "kind", str, "point", f"{what} kind"), _get(m, "text", str, "", f"{what} text"),
                          None if score is None else float(score),
                          _color(m.get("color", [255, 230, 0]), f"{what} colour")))
    return out


def source_of(manifest: Mapping) -> dict | None:
    """The source of the image series the manifest records, ``{"path": str, "series_uid": str}``; None when it
    records none (saved before radview recorded it, or not known then); LayerFormatError when it is malformed.
    Only data: the path is to be checked for existence and scanned or read, never run."""
    source = manifest.get("source")
    if source is None:
        return None
    if not isinstance(source, Mapping):
        raise LayerFormatError(f"source is a {type(source).__name__}, not a table")
    path = _get(source, "path", str, None, "source.path")
    if not path or "\0" in path:
        raise LayerFormatError(f"source.path is not a path ({str(path)[:60]!r})")
    return {"path": path, "series_uid": _get(source, "series_uid", str, "", "source.series_uid")}


def manifest_value(manifest: Mapping, key: str, kind, default, what: str | None = None):
    """``manifest[key]`` when it is a ``kind`` (``float``: any number), ``default`` when absent, else an error."""
    return _get(manifest, key, kind, default, what)
