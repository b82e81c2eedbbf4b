"""Strict JSON for every export and sidecar: NaN and infinities become null, numpy values plain numbers."""
from __future__ import annotations

import json
import math
import os
from typing import Any, Mapping

import numpy as np

from radview_base.atomic_file import atomic_write_bytes


def json_safe(value: Any) -> Any:
    """Plain JSON values (NaN/inf → None; numpy scalars and arrays → numbers and lists; anything else → str)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, np.generic):
        return json_safe(value.item())
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)


def write_json(path: str | os.PathLike, data: Any) -> str:
    """Write ``data`` as indented strict JSON, atomically; return the absolute path."""
    return atomic_write_bytes(path, json.dumps(json_safe(data), indent=2, allow_nan=False) + "\n")
