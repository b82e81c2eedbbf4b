"""Reviewed AI results as training data, the export: the chosen cases of :mod:`viewer.logic.reviewed_data` written
as a dataset folder that ``radview-cli ai train`` reads (:mod:`ai.training.dataset`). Qt-free.

Per case ``image.nii.gz`` (the series as radview loads it, in its own geometry), ``truth/labels.nii.gz`` (the stored
label map, read through :class:`viewer.store.layer_files.LayerStore`, on that grid), ``truth/labels.json`` and a
``source.json`` saying where it came from; ``dataset.toml`` names each case's patient (splits go by patient) and
``export.json`` what was left out and why. Only accepted and edited results go in by default; a label map on another
grid than its image is refused with the reason (never resampled). Everything is written into a temporary folder
beside the target, checked with :func:`ai.training.dataset.open_dataset` (a dataset it refuses is not kept; its
reason is raised) and renamed into place.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from radview_base.cancel import Cancelled
from radview_base.geometry import GeometryMismatchError, require_same_grid
from viewer.logic.reviewed_data import EXPORTED_STATES, GRID_TOLERANCE_MM, ProgressFn, ReviewedCase

EXPORT_FILE = "export.json"
EXPORT_FORMAT = "radview-reviewed-dataset"


class ReviewedDataError(ValueError):
    """No dataset can be made; the message says why."""


@dataclass(frozen=True)
class ExportResult:
    root: str
    cases: tuple[tuple[str, ReviewedCase], ...]  # (case id, case) written
    left_out: tuple[tuple[ReviewedCase, str], ...]  # (case, reason)
    description: str  # what open_dataset says of it ("3 cases of 3 patients (2 training, 1 validation); …")


def _safe(text: str, n: int = 24) -> str:
    return re.sub(r"[^0-9A-Za-z._-]+", "_", text).strip("._")[-n:] or "x"


def case_id(case: ReviewedCase) -> str:
    """A folder name: the patient, the series and the layer (unique per layer)."""
    return f"{_safe(case.patient_id or 'study-' + case.study_uid, 20)}-{_safe(case.series_uid, 10)}-" \
           f"{_safe(case.layer_id, 8)}"


def _toml_string(text: str) -> str:
    return json.dumps(str(text), ensure_ascii=False)


def _label_map(store, case: ReviewedCase):
    loaded = store.load(case.study_uid, case.series_uid)
    stored = next((s for s in loaded.layers if s.layer_id == case.layer_id), None)
    if stored is None:
        why = "; ".join(p.reason for p in loaded.problems if Path(p.file).name.startswith(case.layer_id))
        raise ReviewedDataError(f"its stored layer could not be read{f' ({why})' if why else ''}")
    return stored.layer.label_map


def _image(case: ReviewedCase, cancel):
    if case.source is not None:
        from viewer.io.series_loader import load_series

        return load_series(case.source, cancel=cancel)
    from viewer.io.image_io import read_image

    return read_image(case.image)


def _write_case(folder: Path, case: ReviewedCase, store, cancel) -> None:
    from viewer.io.image_io import write_image

    label_map = _label_map(store, case)
    volume = _image(case, cancel)
    try:
        require_same_grid(volume.geometry, label_map.geometry, tol_mm=GRID_TOLERANCE_MM, what="the label map")
    except GeometryMismatchError as exc:
        raise ReviewedDataError(f"the label map is on another grid than its image ({exc}); it is not resampled") \
            from None
    (folder / "truth").mkdir(parents=True)
    write_image(volume, str(folder / "image.nii.gz"))
    write_image(label_map, str(folder / "truth" / "labels.nii.gz"))
    (folder / "truth" / "labels.json").write_text(
        json.dumps({str(k): v for k, v in sorted(label_map.labels.items())}, ensure_ascii=False, indent=1) + "\n",
        encoding="utf-8")
    (folder / "source.json").write_text(json.dumps(_describe(case), ensure_ascii=False, indent=1) + "\n",
                                        encoding="utf-8")


def _describe(case: ReviewedCase) -> dict:
    return {"study_uid": case.study_uid, "series_uid": case.series_uid, "series_key": case.series_key,
            "layer_id": case.layer_id, "layer": case.name, "model_id": case.model_id,
            "model_version": case.model_version, "review_state": case.state, "review": case.review_text,
            "decided_by": case.decided_by, "decided_at": case.decided_at, "patient_id": case.patient_id,
            "image": case.image, "found_in": case.found_in}


def _dataset_toml(written: Sequence[tuple[str, ReviewedCase]]) -> str:
    lines = ["# made by radview from reviewed AI results (export.json says which, and what was left out)",
             'patient_key = "PatientID"', "", "[patients]"]
    lines += [f"{_toml_string(cid)} = {_toml_string(case.patient)}" for cid, case in written]
    return "\n".join(lines) + "\n"


def _put_in_place(tmp: Path, out: Path, replace: bool) -> None:
    if out.exists():
        if not out.is_dir():
            raise ReviewedDataError(f"{out} exists and is not a folder")
        if any(out.iterdir()):
            if not (replace and (out / EXPORT_FILE).is_file()):
                raise ReviewedDataError(f"{out} is not empty: choose a new folder" + (
                    "" if not replace else " (only a dataset radview exported is replaced)"))
            old = out.with_name(f".{out.name}.old-{os.getpid()}-{int(time.time())}")
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
            return
        out.rmdir()
    os.replace(tmp, out)


def export_reviewed(cases: Iterable[ReviewedCase], out_dir: str | os.PathLike,
                    store_dir: str | os.PathLike | None = None, states: Sequence[str] = EXPORTED_STATES,
                    labels: Sequence[str] = (), replace: bool = False, progress: ProgressFn | None = None,
                    cancel: threading.Event | None = None, chosen: Iterable[str] | None = None) -> ExportResult:
    """Write the cases of ``states`` as a dataset folder at ``out_dir`` (see the module docstring).

    ``labels``: the labels to train (checked like ``ai train --labels``). ``chosen``: the layer ids the user ticked
    (None: all); the others are left out, and say so. ``replace``: an earlier export at
    ``out_dir`` (it holds ``export.json``) is replaced; any other non-empty folder is refused. Raises
    :class:`ReviewedDataError` (no case left, or the dataset refused, with the reasons) or ``Cancelled``.
    """
    from ai.training.dataset import DatasetError, open_dataset
    from viewer.store.layer_files import LayerStore

    cases = list(cases)
    chosen = None if chosen is None else set(chosen)
    out = Path(out_dir).absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    store = LayerStore(store_dir)
    written: list[tuple[str, ReviewedCase]] = []
    left_out: list[tuple[ReviewedCase, str]] = []
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        for i, case in enumerate(cases):
            if cancel is not None and cancel.is_set():
                raise Cancelled("export cancelled")
            if progress is not None:
                progress(i, len(cases), f"{case.name} ({case.patient})")
            reason = case.left_out_because(states)
            if not reason and chosen is not None and case.layer_id not in chosen:
                reason = "not chosen"
            if not reason:
                cid = case_id(case)
                try:
                    _write_case(tmp / cid, case, store, cancel)
                    written.append((cid, case))
                except (ReviewedDataError, GeometryMismatchError, OSError, ValueError) as exc:
                    shutil.rmtree(tmp / cid, ignore_errors=True)
                    reason = str(exc)
            if reason:
                left_out.append((case, reason))
        if progress is not None:
            progress(len(cases), len(cases), "checking the dataset")
        why = "; ".join(f"{c.name} ({c.patient}): {r}" for c, r in left_out[:6])
        if not written:
            raise ReviewedDataError("no case to export" + (f" — left out: {why}" if why else ""))
        (tmp / "dataset.toml").write_text(_dataset_toml(written), encoding="utf-8")
        try:
            dataset = open_dataset(tmp, labels or None)
        except DatasetError as exc:
            raise ReviewedDataError(f"the dataset would be refused: {str(exc).replace(str(tmp), str(out))}"
                                    + (f" (left out: {why})" if why else "")) from None
        record = {"format": EXPORT_FORMAT, "version": 1, "made_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                  "store": str(store.directory), "states": list(states), "dataset": dataset.describe(),
                  "cases": [dict(_describe(c), case=cid) for cid, c in written],
                  "left_out": [dict(_describe(c), reason=r) for c, r in left_out]}
        (tmp / EXPORT_FILE).write_text(json.dumps(record, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        _put_in_place(tmp, out, replace)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ExportResult(str(out), tuple(written), tuple(left_out), dataset.describe())
