"""Test series for the batch tests, made from the real CT in ../shared/data (never copied into the project):
small copies of it with new UIDs, a series the index refuses, and one whose pixels cannot be read."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
PANCREAS = ROOT.parent / "shared" / "data" / "ct-pancreas-tcia"


def pancreas_files() -> list[Path]:
    return sorted(PANCREAS.glob("*.dcm"))


def small_ct_copies(dst: Path, n: int, step: int = 2, every: int = 2, seed: int = 0) -> list[str]:
    """``n`` copies of the pancreas CT (every ``every``-th slice, pixels averaged over ``step``×``step``), each its
    own study and series; a little noise makes each copy's content (and results) its own. Returns the series UIDs."""
    import pydicom
    from pydicom.uid import generate_uid

    rng = np.random.default_rng(seed)
    files = pancreas_files()[::every]
    uids = []
    for c in range(n):
        study, series, frame = generate_uid(), generate_uid(), generate_uid()
        folder = dst / f"copy{c}"
        folder.mkdir(parents=True)
        for i, path in enumerate(files):
            ds = pydicom.dcmread(path)
            px = ds.pixel_array.astype(np.float32)
            h, w = (px.shape[0] // step) * step, (px.shape[1] // step) * step
            px = px[:h, :w].reshape(h // step, step, w // step, step).mean(axis=(1, 3))
            px += rng.normal(0, 3, px.shape)
            info = np.iinfo(ds.pixel_array.dtype)
            ds.PixelData = np.clip(np.rint(px), info.min, info.max).astype(ds.pixel_array.dtype).tobytes()
            ds.Rows, ds.Columns = px.shape
            ds.PixelSpacing = [float(v) * step for v in ds.PixelSpacing]
            ds.SliceThickness = float(ds.SliceThickness) * every
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
            ds.SOPInstanceUID = generate_uid()
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.SeriesDescription = f"small copy {c}"
            ds.InstanceNumber = i + 1
            ds.save_as(folder / f"IM{i:04d}.dcm", enforce_file_format=True)
        uids.append(series)
    return uids


def refused_series(dst: Path, n: int = 4) -> str:
    """``n`` slices of the CT, all at one position: the index refuses them (a repeated slice, not a volume)."""
    import pydicom
    from pydicom.uid import generate_uid

    series = generate_uid()
    dst.mkdir(parents=True)
    first = None
    for i, path in enumerate(pancreas_files()[:n]):
        ds = pydicom.dcmread(path)
        first = first or list(ds.ImagePositionPatient)
        ds.ImagePositionPatient = first
        ds.SeriesInstanceUID = series
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.SeriesDescription = "broken: one position"
        ds.save_as(dst / f"B{i:03d}.dcm", enforce_file_format=True)
    return series


def unreadable_series(dst: Path, n: int = 6) -> str:
    """``n`` slices whose pixel data is cut short after the index has seen the headers (call it, then truncate
    with :func:`truncate_pixels`); the headers alone are a fine volume."""
    import pydicom
    from pydicom.uid import generate_uid

    series = generate_uid()
    dst.mkdir(parents=True)
    for i, path in enumerate(pancreas_files()[:n]):
        ds = pydicom.dcmread(path)
        ds.SeriesInstanceUID = series
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.SeriesDescription = "pixels cut short"
        ds.save_as(dst / f"U{i:03d}.dcm", enforce_file_format=True)
    return series


def truncate_pixels(folder: Path, keep: int = 4096) -> None:
    for path in sorted(folder.glob("*.dcm")):
        with open(path, "r+b") as fh:
            fh.truncate(max(0, os.path.getsize(path) - (512 * 512 * 2 - keep)))
