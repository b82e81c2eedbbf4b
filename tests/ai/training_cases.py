"""Small labelled phantom cases written as a training dataset (NIfTI image, truth label map, labels.json)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from viewer.demo.phantom import LABELS, make_phantom

SMALL_SHAPE = (24, 40, 40)
SMALL_SPACING = (14.0, 10.0, 10.0)


def write_image(array: np.ndarray, path: Path, spacing_zyx, origin_lps, direction=None) -> None:
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(array)
    img.SetSpacing(tuple(float(v) for v in spacing_zyx[::-1]))
    img.SetOrigin(tuple(float(v) for v in origin_lps))
    if direction is not None:
        img.SetDirection(tuple(float(v) for v in np.asarray(direction).reshape(-1)))
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(img, str(path), True)


def write_case(folder: Path, seed: int, shape=SMALL_SHAPE, spacing=SMALL_SPACING, labels=None) -> Path:
    """``folder/image.nii.gz`` + ``folder/truth/labels.nii.gz`` + ``folder/truth/labels.json`` of a phantom."""
    p = make_phantom(seed, shape_zyx=shape, spacing_zyx=spacing)
    write_image(p.hu_zyx, folder / "image.nii.gz", p.grid.spacing_zyx, p.grid.origin_lps)
    write_image(p.labels_zyx, folder / "truth" / "labels.nii.gz", p.grid.spacing_zyx, p.grid.origin_lps)
    table = LABELS if labels is None else labels
    (folder / "truth" / "labels.json").write_text(json.dumps({str(k): v for k, v in table.items()}))
    return folder


def write_dataset(root: Path, seeds, **kw) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for s in seeds:
        write_case(root / f"case-{s:03d}", s, **kw)
    return root


#: ``radview-cli ai train`` options for a tiny U-Net on the small grid: a run takes seconds
TINY_TRAIN_ARGS = ("--features", "4,8", "--patch", "16,24,24", "--spacing",
                   ",".join(f"{v:g}" for v in SMALL_SPACING), "--threads", "1")


def process_gone(pid: int) -> bool:
    """The process has exited (a zombie counts: Popen.wait reaps it in the normal case)."""
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(") ")[1].startswith("Z")
