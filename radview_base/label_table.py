"""Find the names of a label map's labels: a JSON sidecar or Slicer's segmentation NRRD header.

Looked up, in order: ``<file stem>.json`` and ``labels.json`` beside the file
(``{"1": "body", ...}``, as radview writes them), then the ``SegmentN_Name`` /
``SegmentN_LabelValue`` fields of a 3D Slicer ``.seg.nrrd``. Missing names
are left to the caller ("label N").
"""
from __future__ import annotations

import json
import os


def _stem(path: str) -> str:
    name = os.path.basename(path)
    for ext in (".nii.gz", ".seg.nrrd", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return os.path.splitext(name)[0]


def read_label_names(path: str) -> dict[int, str]:
    folder = os.path.dirname(os.path.abspath(path))
    for candidate in (os.path.join(folder, _stem(path) + ".json"), os.path.join(folder, "labels.json")):
        if os.path.isfile(candidate):
            try:
                with open(candidate, encoding="utf-8") as fh:
                    data = json.load(fh)
            except (OSError, ValueError):
                continue
            if isinstance(data, dict) and "labels" in data and isinstance(data["labels"], dict):
                data = data["labels"]
            if isinstance(data, dict):
                try:
                    return {int(k): str(v) for k, v in data.items() if int(k) > 0}
                except (TypeError, ValueError):
                    continue
    if path.lower().endswith((".nrrd", ".nhdr")):
        return _slicer_segment_names(path)
    return {}


def _slicer_segment_names(path: str) -> dict[int, str]:
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(path)
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return {}
    keys = set(reader.GetMetaDataKeys())
    names = {}
    i = 0
    while f"Segment{i}_Name" in keys:
        value = reader.GetMetaData(f"Segment{i}_LabelValue") if f"Segment{i}_LabelValue" in keys else str(i + 1)
        try:
            names[int(value)] = reader.GetMetaData(f"Segment{i}_Name")
        except ValueError:
            pass
        i += 1
    return names
