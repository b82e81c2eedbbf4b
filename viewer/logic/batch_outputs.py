"""What one batch job writes, and how it appears all at once: ``DIR/<series key>/`` holds

``labels.nii.gz`` + ``labels.json`` (the label map on the series' grid, as ``radview-cli ai run`` writes them),
``seg.dcm`` (DICOM SEG referencing the series), ``findings.json`` (provenance, detections, structures, messages;
a classification model's ``classification``), ``sr.dcm`` (DICOM SR TID 1500 of the findings) and ``thumbnail.png``
(a slice with the overlay and the AI stamp).

Everything is written into a staging folder ``DIR/.partial/<key>.<pid>.<n>`` and then put in place with renames
(an earlier folder of the same key moved aside first, then removed): a reader — or a rerun after a kill — sees a
job's folder complete or not at all. A SEG, SR or thumbnail that cannot be made (a series resampled on loading
has no source images to reference; a result without labels has no segment) is left out with a note; the labels
and findings always come. Qt-free and torch-free.
"""
from __future__ import annotations

import itertools
import os
import shutil
from dataclasses import dataclass

from viewer.export.json_file import write_json
from viewer.io.volume import LabelMap

PARTIAL = ".partial"
_counter = itertools.count()


def staging_folder(out: str, key: str) -> str:
    from viewer.logic.exports import safe_name

    folder = os.path.join(out, PARTIAL, f"{safe_name(key)}.{os.getpid()}.{next(_counter)}")
    os.makedirs(folder)
    return folder


def put_in_place(staged: str, final: str) -> None:
    """Replace ``final`` by the folder ``staged`` (same file system) with renames."""
    from radview_base.atomic_file import fsync_folder

    old = None
    if os.path.exists(final):
        old = staged + ".old"
        os.replace(final, old)
    os.replace(staged, final)
    fsync_folder(os.path.dirname(final))
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def findings_document(volume, result, source_path: str, note: str) -> dict:
    """findings.json as ``radview-cli ai run`` writes it."""
    g = volume.geometry
    return {
        "provenance": result.provenance.as_dict(),
        "input": {"path": os.path.abspath(source_path), "series_uid": volume.meta.get("series_uid", ""),
                  "shape_zyx": list(g.shape_zyx), "spacing_zyx": list(g.spacing_zyx)},
        "detections": [d.as_dict() for d in result.detections],
        "structures": [s.as_dict() for s in result.structures],
        "messages": list(result.messages),
        "note": note,
    } | ({"classification": result.classification.as_dict()}
         if getattr(result, "classification", None) is not None else {})


@dataclass(eq=False)
class CountedLabelMap(LabelMap):
    """A label map whose present labels the job has already counted: the SEG writer asks for them without another
    pass over the voxels (``np.unique`` sorts the whole map: half a second for 512 x 512 x 300)."""

    present: tuple[int, ...] = ()

    def present_labels(self) -> list[int]:
        return list(self.present)


def write_job_outputs(folder: str, entry, volume, result, findings: dict, title: str, source=None,
                      source_error: str = "", present: tuple[int, ...] | None = None,
                      timings: dict | None = None, slice_counts=None) -> list[str]:
    """Write every output of one job into ``folder``; return the notes on what was left out.

    ``source``: the series' ``SourceSeries`` when already read (else read here), or ``source_error``: why there is
    none (a series resampled on loading). ``present``: the labels the result holds, when counted already;
    ``slice_counts``: the labelled voxels of each slice, when counted already (the thumbnail's slice).
    ``timings`` receives the seconds of each file (``write_<name>``).
    """
    import time

    timings = {} if timings is None else timings
    clock = [time.perf_counter()]

    def took(name: str) -> None:
        now = time.perf_counter()
        timings[f"write_{name}"] = round(now - clock[0], 4)
        clock[0] = now

    from viewer.export.seg import SegError, SourceSeries, write_seg
    from viewer.export.sr import SrError, write_sr
    from viewer.io.image_io import write_image
    from viewer.logic.batch_thumbnail import write_thumbnail

    notes: list[str] = []
    label_map = None
    if result.labels is not None:
        names = dict(result.label_names)
        label_map = LabelMap(result.labels, volume.geometry, names) if present is None else \
            CountedLabelMap(result.labels, volume.geometry, names, present=tuple(present))
        write_image(label_map, os.path.join(folder, "labels.nii.gz"))
        write_json(os.path.join(folder, "labels.json"), {str(k): v for k, v in sorted(names.items())})
        took("labels")
    write_json(os.path.join(folder, "findings.json"), findings)
    took("findings")
    seg = None
    if source is None and not source_error:
        try:
            source = SourceSeries.from_entry(entry)
        except SegError as exc:
            source_error = str(exc)
    if source is None:
        notes.append(f"no SEG or SR: {source_error}")
    if source is not None and label_map is not None:
        if label_map.present_labels():
            try:
                seg = write_seg(os.path.join(folder, "seg.dcm"), label_map, source, provenance=result.provenance,
                                skip_empty=True)
            except SegError as exc:
                notes.append(f"no SEG: {exc}")
        else:
            notes.append("no SEG: the model found none of its labels")
        took("seg")
    if source is not None and (findings["detections"] or findings["structures"] or findings.get("classification")):
        try:
            write_sr(os.path.join(folder, "sr.dcm"), source, findings=findings, seg=seg)
        except (SrError, SegError) as exc:
            notes.append(f"no SR: {exc}")
        took("sr")
    elif source is not None:
        notes.append("no SR: no detections, structures or classification to report")
    write_thumbnail(os.path.join(folder, "thumbnail.png"), volume, result, title, slice_counts=slice_counts)
    took("thumbnail")
    return notes
