"""Built-in demo study: a procedural chest CT phantom written as DICOM plus truth files.

``generate_demo(outdir)`` builds everything into ``outdir``;
``ensure_demo()`` does that once into the user cache and reuses it afterwards.

Layout of a generated study::

    dicom/ct_thin/CT0001.dcm ...   thin axial series (InstanceNumber 1 = most superior)
    dicom/ct_slab5/SL0001.dcm ...  5 mm average slabs
    dicom/localizer/LOC0001.dcm    coronal scout
    truth/labels.nii.gz            label map on the thin-series grid
    truth/labels.json              {"1": "body", ...}
    truth/nodules.json             nodule centres (LPS mm), diameters, types
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

# SimpleITK, pydicom and scipy are imported where a demo is generated, not here: opening a cached
# demo (``ensure_demo`` finding its marker) must not pay ~0.35 s of imports on the GUI thread.

__all__ = ["DemoPaths", "LABELS", "DEFAULT_SEED", "DEMO_VERSION", "generate_demo", "ensure_demo",
           "default_demo_dir"]

DEMO_VERSION = 1
MARKER_NAME = "complete.json"
STALE_TEMP_SECONDS = 3600.0

ProgressFn = Callable[[float, str], None]


@dataclass(frozen=True)
class DemoPaths:
    root: Path
    dicom_dir: Path
    labels_nii: Path
    labels_json: Path
    nodules_json: Path
    ct_series_uid: str
    slab_series_uid: str
    localizer_series_uid: str


def _paths(root: Path, ct_uid: str, slab_uid: str, loc_uid: str) -> DemoPaths:
    root = Path(root)
    truth = root / "truth"
    return DemoPaths(root, root / "dicom", truth / "labels.nii.gz", truth / "labels.json",
                     truth / "nodules.json", ct_uid, slab_uid, loc_uid)


def _scaled(progress: Optional[ProgressFn], lo: float, hi: float) -> ProgressFn:
    if progress is None:
        return lambda f, m: None
    return lambda f, m: progress(lo + (hi - lo) * f, m)


# ---------------------------------------------------------------- truth files
def __getattr__(name: str):
    if name in ("LABELS", "DEFAULT_SEED"):
        from viewer.demo import phantom

        return getattr(phantom, name)
    raise AttributeError(name)


def _write_truth(phantom, paths: DemoPaths) -> None:
    import SimpleITK as sitk

    from viewer.demo.phantom import LABELS

    paths.labels_nii.parent.mkdir(parents=True, exist_ok=True)
    grid = phantom.grid
    img = sitk.GetImageFromArray(phantom.labels_zyx)  # (z, y, x), z toward superior
    img.SetSpacing(tuple(float(v) for v in grid.spacing_zyx[::-1]))
    img.SetOrigin(tuple(float(v) for v in grid.origin_lps))
    img.SetDirection((1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    sitk.WriteImage(img, str(paths.labels_nii), True)
    paths.labels_json.write_text(json.dumps({str(k): v for k, v in LABELS.items()}, indent=2) + "\n")
    nodules = []
    for n in phantom.nodules:
        d = asdict(n)
        d["center_lps_mm"] = list(d["center_lps_mm"])
        nodules.append(d)
    paths.nodules_json.write_text(json.dumps(nodules, indent=2) + "\n")


def generate_demo(outdir, seed: int | None = None, progress: Optional[ProgressFn] = None) -> DemoPaths:
    """Generate the demo study (DICOM + truth) into ``outdir`` (created if needed).

    ``progress(fraction, message)`` is called as work proceeds.
    """
    root = Path(outdir)
    root.mkdir(parents=True, exist_ok=True)
    from viewer.demo.dicom_writer import write_study
    from viewer.demo.phantom import DEFAULT_SEED, make_phantom

    seed = DEFAULT_SEED if seed is None else seed
    phantom = make_phantom(seed, progress=_scaled(progress, 0.0, 0.55))
    uids = write_study(root / "dicom", phantom.hu_zyx, phantom.grid, seed, _scaled(progress, 0.55, 0.95))
    paths = _paths(root, uids.ct_series, uids.slab_series, uids.localizer_series)
    if progress:
        progress(0.95, "truth: label map and nodules")
    _write_truth(phantom, paths)
    if progress:
        progress(1.0, "demo study ready")
    return paths


# ---------------------------------------------------------------------- cache
def default_demo_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("radview")) / f"demo-v{DEMO_VERSION}"


def _read_marker(root: Path) -> Optional[dict]:
    try:
        info = json.loads((root / MARKER_NAME).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or info.get("version") != DEMO_VERSION:
        return None
    if not all(isinstance(info.get(k), str) for k in ("ct_series_uid", "slab_series_uid", "localizer_series_uid")):
        return None
    return info


def _from_marker(root: Path, info: dict) -> DemoPaths:
    return _paths(root, info["ct_series_uid"], info["slab_series_uid"], info["localizer_series_uid"])


def _temp_prefix(target: Path) -> str:
    return f".{target.name}.tmp-"


def _remove_stale_temps(target: Path) -> None:
    """Delete temp directories of interrupted generations older than an hour."""
    now = time.time()
    for p in target.parent.glob(_temp_prefix(target) + "*"):
        try:
            if p.is_dir() and now - p.stat().st_mtime > STALE_TEMP_SECONDS:
                shutil.rmtree(p, ignore_errors=True)
        except OSError:
            pass


def _looks_like_demo(root: Path) -> bool:
    return all(p.name in {"dicom", "truth", MARKER_NAME} for p in root.iterdir())


def ensure_demo(cache_dir=None, progress: Optional[ProgressFn] = None) -> DemoPaths:
    """Return the cached demo study, generating it first if it is not complete.

    ``cache_dir`` is the directory that holds the study (default
    ``user_cache_dir("radview")/demo-v1``). The study is generated into a
    temporary sibling directory and renamed into place only when complete,
    with a ``complete.json`` marker; a directory without a valid marker is
    never reused.
    """
    target = Path(cache_dir) if cache_dir is not None else default_demo_dir()
    info = _read_marker(target)
    if info is not None:
        if progress:
            progress(1.0, "demo study ready (cached)")
        return _from_marker(target, info)

    if target.exists() and (not target.is_dir() or not _looks_like_demo(target)):
        raise FileExistsError(f"{target} exists and is not a radview demo study")
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(target)
    from viewer.demo.phantom import DEFAULT_SEED

    tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(target), dir=target.parent))
    try:
        paths = generate_demo(tmp, seed=DEFAULT_SEED, progress=progress)
        marker = {"version": DEMO_VERSION, "seed": DEFAULT_SEED, "ct_series_uid": paths.ct_series_uid,
                  "slab_series_uid": paths.slab_series_uid, "localizer_series_uid": paths.localizer_series_uid}
        (tmp / MARKER_NAME).write_text(json.dumps(marker, indent=2) + "\n")
        if target.exists():
            if _read_marker(target) is not None:  # another process finished first
                shutil.rmtree(tmp, ignore_errors=True)
                return _from_marker(target, _read_marker(target))
            if not target.is_dir() or not _looks_like_demo(target):
                raise FileExistsError(f"{target} exists and is not a radview demo study")
            shutil.rmtree(target)  # incomplete leftover of an older run
        try:
            os.replace(tmp, target)
        except OSError:
            info = _read_marker(target)
            if info is None:
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # lost a race to a complete study
            return _from_marker(target, info)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return _from_marker(target, marker)
