"""nnU-Net v2 results folders (placeholder written by the lead so the registry imports; the nnU-Net helper owns
this file and replaces it)."""
from __future__ import annotations

from pathlib import Path


def is_nnunet_folder(path) -> bool:
    p = Path(path)
    return ((p / "dataset.json").is_file() and (p / "plans.json").is_file()
            and any((f / "checkpoint_final.pth").is_file() or (f / "checkpoint_best.pth").is_file()
                    for f in p.glob("fold_*")))


def manifest_from_folder(path):
    from ai.registry import ManifestError

    raise ManifestError(f"{path}: nnU-Net folders are not supported yet")
