"""A batch job's ``thumbnail.png``: one axial slice with the AI overlay and the AI stamp, drawn without Qt.

The slice is the one holding the most labelled voxels (else the one nearest the first detection, else the
middle). CT is shown in the lung window when the model's labels are lung structures, else soft tissue; other
modalities between the 1st and 99th percentiles. Labels are filled at 40 % in their usual colours
(``viewer.core.layers.default_color``), detections ringed in yellow. Below the image a band carries what every
exported picture with AI content carries (``shared/CONVENTIONS.md``, Exports): "AI result, not reviewed — not a
diagnosis", the model and its version, and a legend of the labels shown. No patient data is drawn.
Pillow draws it (it comes with matplotlib, which VTK requires); written atomically.
"""
from __future__ import annotations

import numpy as np

from viewer.core.ai_bridge import DETECTION_COLOR, NOT_REVIEWED
from viewer.core.layers import default_color
from viewer.io.thumbnail import area_resize, thumbnail_shape, to_uint8

SIZE = 384
LUNG_WORDS = ("lung", "airway", "nodule", "trachea")


def _slice_index(labels, detections, grid, slice_counts=None) -> int:
    nz = grid.shape_zyx[0]
    if labels is not None:
        counts = np.count_nonzero(labels.reshape(nz, -1), axis=1) if slice_counts is None else \
            np.asarray(slice_counts)
        if counts.max(initial=0) > 0:
            return int(np.argmax(counts))
    if detections:
        k = grid.world_to_index(np.asarray(detections[0].center_lps, float))
        return int(np.clip(np.rint(np.ravel(k)[0]), 0, nz - 1))
    return nz // 2


def _levels(image, modality: str, names) -> tuple[float, float]:
    if modality.upper() == "CT":
        lung = any(word in str(n).lower() for n in names for word in LUNG_WORDS)
        width, level = (1500.0, -600.0) if lung else (400.0, 40.0)
        return level - width / 2, level + width / 2
    lo, hi = np.percentile(image, (1, 99)) if image.size else (0.0, 1.0)
    return float(lo), float(hi if hi > lo else lo + 1)


def _font(size: int = 12):
    """DejaVu Sans (the system's, else matplotlib's copy); Pillow's own font, which lacks some signs, last."""
    import os

    from PIL import ImageFont

    try:
        return ImageFont.truetype("DejaVuSans.ttf", size), True
    except OSError:
        pass
    try:
        import matplotlib

        path = os.path.join(matplotlib.get_data_path(), "fonts", "ttf", "DejaVuSans.ttf")
        return ImageFont.truetype(path, size), True
    except (ImportError, OSError):
        return ImageFont.load_default(size=size), False


def render(volume, result, title: str, slice_counts=None) -> np.ndarray:
    """The thumbnail as an RGB uint8 array. ``slice_counts``: the labelled voxels of each slice, when the job has
    counted them already (``viewer.logic.batch_jobs.label_census``)."""
    from PIL import Image, ImageDraw

    grid = volume.geometry
    labels = result.labels
    names = dict(result.label_names)
    k = _slice_index(labels, result.detections, grid, slice_counts)
    image = np.asarray(volume.array[k], dtype=np.float32)
    dz, dy, dx = grid.spacing_zyx
    h, w = thumbnail_shape(image.shape[0], image.shape[1], (dy, dx), SIZE)
    grey = to_uint8(area_resize(image, (h, w)), *_levels(image, volume.modality, names.values()))
    rgb = np.repeat(grey[..., None], 3, axis=2).astype(np.float32)
    shown: list[int] = []
    if labels is not None:
        rows = (np.arange(h) * image.shape[0] // h).astype(np.intp)  # nearest neighbour: labels stay labels
        cols = (np.arange(w) * image.shape[1] // w).astype(np.intp)
        small = labels[k][np.ix_(rows, cols)]
        for label in sorted(int(v) for v in np.unique(small) if v):
            mask = small == label
            rgb[mask] = 0.6 * rgb[mask] + 0.4 * np.asarray(default_color(label, names.get(label, "")), np.float32)
            shown.append(label)
    canvas = Image.fromarray(rgb.astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for det in result.detections:
        z, y, x = np.ravel(grid.world_to_index(np.asarray(det.center_lps, float)))
        radius_mm = max(float(det.diameter_mm), 4.0) / 2 + 2
        if abs(z - k) * dz > radius_mm:
            continue
        cy, cx, r = y * h / image.shape[0], x * w / image.shape[1], radius_mm / dx * w / image.shape[1]
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=DETECTION_COLOR, width=2)
    font, full = _font()
    lines = [NOT_REVIEWED, title] if full else [NOT_REVIEWED.replace("—", "-"), title]
    band = 8 + 16 * len(lines) + (18 if shown else 0)
    out = Image.new("RGB", (w, h + band), (0, 0, 0))
    out.paste(canvas, (0, 0))
    draw = ImageDraw.Draw(out)
    y = h + 4
    for line in lines:
        draw.text((6, y), line, fill=(255, 230, 0) if line is lines[0] else (230, 230, 230), font=font)
        y += 16
    x = 6
    for label in shown:
        name = names.get(label, f"label {label}")
        draw.rectangle((x, y + 2, x + 10, y + 12), fill=default_color(label, name))
        draw.text((x + 14, y), name, fill=(230, 230, 230), font=font)
        x += 14 + int(draw.textlength(name, font=font)) + 12
    return np.asarray(out)


def write_thumbnail(path: str, volume, result, title: str, slice_counts=None) -> str:
    from PIL import Image

    from radview_base.atomic_file import atomic_path

    pixels = render(volume, result, title, slice_counts)
    with atomic_path(path) as tmp:
        Image.fromarray(pixels).save(tmp, format="PNG")
    return path
