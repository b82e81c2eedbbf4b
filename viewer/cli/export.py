"""``radview-cli export``: DICOM SEG, DICOM SR / JSON and de-identified copies from the command line.

* ``export seg PATH [--series UID] --labels FILE.nii.gz --out FILE.dcm`` — a label map (names from
  labels.json beside it; AI provenance from findings.json beside it, when there) as a DICOM SEG of the
  series; the label map must lie on the series' grid.
* ``export sr PATH [--series UID] [--findings FILE.json] [--measurements FILE.json] [--seg FILE.dcm]
  --out FILE.dcm|FILE.json`` — AI findings and user measurements as a DICOM SR (TID 1500), or as JSON
  when ``--out`` ends in ``.json``. On a 2D series (a radiograph) the SR holds the measurements drawn on its
  images, or the class probabilities of a classification in ``--findings`` (its ``classification``),
  referencing the image that was classified (``input.sop_instance_uid``, else the series' first image).
* ``export deid PATH --out DIR`` — a de-identified copy of a study (``viewer.export.deid``).

User errors exit with status 2 and one line, no traceback. Every file is written atomically.
"""
from __future__ import annotations

import json
import os

from viewer.cli.common import UserError, check_preset, require_exists


def add_parser(sub) -> None:
    """Register ``export seg``, ``export sr`` and ``export deid`` on the top-level subparsers."""
    pe = sub.add_parser("export", help="export a segmentation (DICOM SEG), findings and measurements (DICOM SR, "
                                       "JSON) or a de-identified copy")
    esub = pe.add_subparsers(dest="export_command", required=True)
    ps = esub.add_parser("seg", help="write a label map as a DICOM SEG referencing its series")
    ps.add_argument("path", help="the DICOM folder of the series the labels were made on")
    ps.add_argument("--series", help="series key or SeriesInstanceUID (default: the largest volume)")
    ps.add_argument("--labels", required=True, help="label map (NIfTI/NRRD) on the series' grid; names from "
                                                    "labels.json beside it, AI provenance from findings.json")
    ps.add_argument("--out", required=True, help="output DICOM file (.dcm)")
    ps.set_defaults(func=cmd_seg)
    pr = esub.add_parser("sr", help="write AI findings and measurements as a DICOM SR (TID 1500) or JSON")
    pr.add_argument("path", help="the DICOM folder of the series")
    pr.add_argument("--series", help="series key or SeriesInstanceUID (default: the largest volume)")
    pr.add_argument("--findings", help="findings.json of an AI run ('radview-cli ai run')")
    pr.add_argument("--measurements", help="measurements JSON ({\"measurements\": [...], \"review\": {...}})")
    pr.add_argument("--seg", help="the DICOM SEG of the same AI labels, for the structures to reference")
    pr.add_argument("--out", required=True, help="output: .dcm for DICOM SR, .json for JSON")
    pr.set_defaults(func=cmd_sr)
    pd = esub.add_parser("deid", help="write a de-identified copy of a DICOM study")
    pd.add_argument("path", help="a DICOM folder (or file)")
    pd.add_argument("--out", required=True, help="output folder")
    pd.set_defaults(func=cmd_deid)
    _add_report_parser(esub)  # export report: one-page PDF (viewer.logic.report_content, viewer.qt.capture.report)


# ------------------------------------------------------------------------------------------- helpers
def _need_path(path: str) -> None:
    require_exists(path)
    from viewer.io.image_io import is_image_file

    if is_image_file(path):
        raise UserError(f"{path} is an image file: DICOM exports need the DICOM series they refer to")


def _need_out_file(out: str) -> None:
    if os.path.isdir(out):
        raise UserError(f"--out {out}: is a folder, give a file name")


def _read_json(path: str, what: str):
    if not os.path.isfile(path):
        raise UserError(f"{what} {path}: no such file")
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError) as exc:
        raise UserError(f"{what} {path}: not readable JSON ({exc})") from exc


def _index_and_entry(path: str, series: str | None):
    from viewer.io.dicom_index import scan

    index = scan(path)
    if series:
        try:
            return index, index.find(series)
        except KeyError as exc:
            raise UserError(exc.args[0]) from exc
    entry = index.largest_volume()
    if entry is None:
        raise UserError(f"no loadable DICOM image series in {path}")
    return index, entry


def _source(entry):
    from viewer.export.seg import SegError, SourceSeries

    try:
        return SourceSeries.from_entry(entry)
    except SegError as exc:
        raise UserError(str(exc)) from exc


def grid_difference(series, labels) -> str:
    """How the label map's grid differs from the series' (first difference found), or ""."""
    import numpy as np

    def fmt(v):
        return "(" + ", ".join(f"{float(x):g}" for x in np.ravel(v)) + ")"

    if series.shape_zyx != labels.shape_zyx:
        return f"its shape (z, y, x) is {labels.shape_zyx}, the series' {series.shape_zyx}"
    if not np.allclose(series.spacing_zyx, labels.spacing_zyx, atol=1e-3):
        return f"its spacing (z, y, x) is {fmt(labels.spacing_zyx)} mm, the series' {fmt(series.spacing_zyx)} mm"
    if not np.allclose(series.direction_matrix, labels.direction_matrix, atol=1e-4):
        return f"its axes (direction) are {fmt(labels.direction_matrix)}, the series' {fmt(series.direction_matrix)}"
    if not series.is_close(labels):
        return (f"its origin is {fmt(labels.origin_lps)} mm (LPS), the series' {fmt(series.origin_lps)} mm "
                f"({series.max_corner_distance(labels):.3f} mm apart)")
    return ""


def _check_findings_series(findings: dict, source, what: str) -> None:
    made_on = str((findings.get("input") or {}).get("series_uid") or "")
    if made_on and made_on != source.series_uid:
        raise UserError(f"{what} was made on series {made_on}, not on the exported series {source.series_uid}")


# ------------------------------------------------------------------------------------------- commands
def cmd_seg(args) -> int:
    from viewer.export.seg import SegError, write_seg
    from viewer.io.image_io import ImageFileError, read_label_map

    _need_path(args.path)
    _need_out_file(args.out)
    if not os.path.isfile(args.labels):
        raise UserError(f"--labels {args.labels}: no such file")
    try:
        labels = read_label_map(args.labels)
    except ImageFileError as exc:
        raise UserError(str(exc)) from exc
    _, entry = _index_and_entry(args.path, args.series)
    source = _source(entry)
    difference = grid_difference(source.geometry, labels.geometry)
    if difference:
        raise UserError(f"--labels {os.path.basename(args.labels)} is not on the grid of series {entry.key}: "
                        f"{difference}")
    provenance = None
    findings_path = os.path.join(os.path.dirname(os.path.abspath(args.labels)), "findings.json")
    if os.path.isfile(findings_path):
        findings = _read_json(findings_path, "findings")
        _check_findings_series(findings, source, findings_path)
        provenance = findings.get("provenance")
    try:
        info = write_seg(args.out, labels, source, provenance=provenance)
    except SegError as exc:
        raise UserError(str(exc)) from exc
    except OSError as exc:
        raise UserError(f"cannot write {args.out}: {exc}") from exc
    print(f"wrote {args.out}: {len(info.segment_of_label)} segment(s), {info.n_frames} frame(s) on series "
          f"{entry.key}; {info.note}")
    return 0


def cmd_sr(args) -> int:
    from viewer.export.seg import SegError
    from viewer.export.sr import SrError, load_measurements, write_findings_json, write_sr

    if not args.findings and not args.measurements:
        raise UserError("give --findings and/or --measurements: there is nothing to export")
    _need_path(args.path)
    _need_out_file(args.out)
    findings = _read_json(args.findings, "--findings") if args.findings else None
    if findings is not None and not isinstance(findings, dict):
        raise UserError(f"--findings {args.findings}: not a findings object")
    measurements = _read_json(args.measurements, "--measurements") if args.measurements else None
    try:
        items, _ = load_measurements(measurements)
    except SrError as exc:
        raise UserError(f"--measurements {args.measurements}: {exc}") from exc
    seg = None
    if args.seg:
        seg = _read_seg_header(args.seg)
    index, entry = _index_and_entry(args.path, args.series)
    if entry.planar:  # 2D images (radiographs, ultrasound, cine): measurements on the images they were drawn on,
        return _image_sr(args, entry, findings, measurements)  # or a classification of one image
    source = _source(entry)
    if findings is not None:
        _check_findings_series(findings, source, f"--findings {args.findings}")
    others = {}
    for uid in sorted({str(m.get("series_uid") or "") for m in items} - {"", source.series_uid}):
        try:
            others[uid] = _source(index.find(uid))
        except KeyError:
            raise UserError(f"--measurements: series {uid} is not in {args.path}") from None
    try:
        if args.out.lower().endswith(".json"):
            write_findings_json(args.out, findings, measurements, source=source)
            print(f"wrote {args.out}")
            return 0
        info = write_sr(args.out, source, findings=findings, measurements=measurements, seg=seg,
                        other_sources=others)
    except (SrError, SegError) as exc:
        raise UserError(str(exc)) from exc
    except OSError as exc:
        raise UserError(f"cannot write {args.out}: {exc}") from exc
    unreviewed = sum("not reviewed" in n for n in info.notes)
    print(f"wrote {args.out}: {info.n_detections} detection(s), {info.n_structures} structure(s), "
          f"{info.n_measurements} measurement(s)" + (f", {info.n_classes} class(es)" if info.n_classes else "")
          + (f"; {unreviewed} AI result(s) not reviewed" if unreviewed else ""))
    return 0


def _image_sr(args, entry, findings, measurements) -> int:
    """``export sr`` on a 2D series: the measurements on its images (``viewer.export.sr_image``), or a
    classification in ``findings`` as an SR of the image it was made on (``viewer.export.sr.write_sr``); JSON holds
    both."""
    import pydicom

    from viewer.export.sr import SrError, classification_of, load_measurements, write_findings_json
    from viewer.export.sr_image import write_image_sr

    try:
        classification = classification_of(findings) if findings is not None else None
    except SrError as exc:
        raise UserError(f"--findings {args.findings}: {exc}") from exc
    if findings is not None:
        made_on = str((findings.get("input") or {}).get("series_uid") or "")
        if made_on and made_on != entry.series_uid:
            raise UserError(f"--findings {args.findings} was made on series {made_on}, not on the exported series "
                            f"{entry.series_uid}")
        if classification is None and (findings.get("detections") or findings.get("structures")):
            raise UserError(f"--findings {args.findings}: detections and structures need a volume; series "
                            f"{entry.key} is 2D images (its SR holds measurements on them, or a classification)")
    try:
        if args.out.lower().endswith(".json"):
            write_findings_json(args.out, findings, measurements)
            print(f"wrote {args.out}")
            return 0
        headers = [pydicom.dcmread(d.path, stop_before_pixels=True) for d in entry.images]
        on_images = load_measurements(measurements, on_images=True)[0]
        if classification is not None:
            if on_images:
                raise UserError(f"series {entry.key} is 2D images: its DICOM SR holds either the classification or "
                                f"the {len(on_images)} measurement(s) on its images; export them one at a time "
                                "(or both as .json)")
            return _classification_sr(args, headers, findings, measurements)
        info = write_image_sr(args.out, headers, measurements)
    except SrError as exc:
        raise UserError(str(exc)) from exc
    except OSError as exc:
        raise UserError(f"cannot write {args.out}: {exc}") from exc
    print(f"wrote {args.out}: {info.n_measurements} measurement(s) on 2D images")
    return 0


def _classification_sr(args, headers, findings: dict, measurements) -> int:
    """A classification of a 2D image as a DICOM SR referencing that image (the review from ``--measurements``)."""
    from viewer.export.sr import load_measurements, write_sr
    from viewer.logic.exports import ExportRefused, classified_image_source

    sop = str((findings.get("input") or {}).get("sop_instance_uid") or "")
    if sop and not any(str(h.get("SOPInstanceUID", "")) == sop for h in headers):
        raise UserError(f"--findings {args.findings} classified image {sop}, which is not in this series")
    try:
        source = classified_image_source(headers, sop)
    except ExportRefused as exc:
        raise UserError(str(exc)) from exc
    review = load_measurements(measurements)[1] if measurements is not None else {}
    info = write_sr(args.out, source, findings=findings, review=review)
    unreviewed = sum("not reviewed" in n for n in info.notes) > 0
    print(f"wrote {args.out}: a classification of {info.n_classes} class(es) on image "
          f"{source.first.get('SOPInstanceUID', '')}" + ("; AI result not reviewed" if unreviewed else ""))
    return 0


def _read_seg_header(path: str):
    import pydicom

    from viewer.io.seg_file import SEG_SOP_CLASSES

    if not os.path.isfile(path):
        raise UserError(f"--seg {path}: no such file")
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception as exc:  # noqa: BLE001 - pydicom raises many kinds
        raise UserError(f"--seg {path}: not a DICOM file ({exc})") from exc
    if str(ds.get("SOPClassUID", "")) not in SEG_SOP_CLASSES:
        raise UserError(f"--seg {path}: not a DICOM SEG")
    return ds


def cmd_deid(args) -> int:
    require_exists(args.path)
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UserError(f"--out {args.out}: not a folder")
    try:
        from viewer.export.deid import deidentify_study
    except ImportError as exc:
        raise UserError(f"de-identification is not available in this installation ({exc})") from exc
    from viewer.export import ExportError

    try:
        result = deidentify_study(args.path, args.out, progress=None, cancel=None)
    except (ExportError, ValueError, OSError) as exc:
        raise UserError(str(exc)) from exc
    summary = getattr(result, "summary", None)
    print(f"wrote a de-identified copy of {args.path} to {args.out}" + (f": {summary()}" if callable(summary) else
                                                                       f": {summary}" if summary else ""))
    for skipped in getattr(result, "skipped", ()):  # every file not copied, with the reason
        print(f"  skipped {skipped.path}: {skipped.reason}")
    return 0


# ------------------------------------------------------------------------------------------- report (PDF)
def _add_report_parser(esub) -> None:
    pp = esub.add_parser("report", help="write a one-page PDF report: key images, AI findings with their provenance "
                                        "and review state, measurements (de-identified unless asked)")
    pp.add_argument("path", help="the DICOM folder (or image file) of the series")
    pp.add_argument("--series", help="series key or SeriesInstanceUID (default: the largest volume)")
    pp.add_argument("--labels", help="label map (NIfTI/NRRD, or a DICOM SEG) on the series' grid, drawn over the key "
                                     "images; names from labels.json beside it; its AI provenance from the "
                                     "findings.json beside it (or the SEG's algorithm), which are also the findings "
                                     "unless --findings is given: labels and findings of two runs are reported as "
                                     "two results, each with its own model and version")
    pp.add_argument("--findings", help="findings.json of an AI run ('radview-cli ai run')")
    pp.add_argument("--measurements", help="measurements JSON ({\"measurements\": [...], \"review\": {...}})")
    pp.add_argument("--preset", help="window preset of the key images (default: the series' own window)")
    pp.add_argument("--show-patient-data", action="store_true",
                    help="include patient name, ID, birth date, sex, institution and dates (default: left out)")
    pp.add_argument("--out", required=True, help="output PDF file")
    pp.set_defaults(func=cmd_report)


def cmd_report(args) -> int:
    """``export report``: the report is drawn with Qt on its offscreen platform (no window, no display needed).

    The only export command that loads Qt, after the arguments are checked."""
    if not args.out.lower().endswith(".pdf"):
        raise UserError(f"--out {args.out}: the report is a PDF file, give a name ending in .pdf")
    _need_out_file(args.out)
    require_exists(args.path)
    if args.preset:
        check_preset(args.preset)
    if args.labels and not os.path.isfile(args.labels):
        raise UserError(f"--labels {args.labels}: no such file")
    findings_path = args.findings
    if not findings_path and args.labels:
        beside = os.path.join(os.path.dirname(os.path.abspath(args.labels)), "findings.json")
        findings_path = beside if os.path.isfile(beside) else None
    findings = _read_json(findings_path, "--findings") if findings_path else None
    if findings is not None and not isinstance(findings, dict):
        raise UserError(f"--findings {findings_path}: not a findings object")
    measurements = _read_json(args.measurements, "--measurements") if args.measurements else None
    if measurements is not None and not isinstance(measurements, (dict, list)):
        raise UserError(f"--measurements {args.measurements}: not a measurements object")

    from viewer.qt.capture.offscreen import painting_app

    painting_app()  # the report is painted with Qt (fonts, QPdfWriter), on the offscreen platform
    from viewer.export import AI_NOT_REVIEWED
    from viewer.io.image_io import ImageFileError
    from viewer.io.series_loader import LoadError
    from viewer.qt.capture.report import report_from_files, write_report

    try:
        data = report_from_files(args.path, args.series, args.labels, findings, measurements, args.preset,
                                 args.show_patient_data, findings_path=findings_path).with_tables()
        out = write_report(data, args.out)
    except (KeyError, ValueError, LoadError, ImageFileError) as exc:
        raise UserError(str(exc.args[0]) if exc.args else str(exc)) from exc
    except OSError as exc:
        raise UserError(f"cannot write {args.out}: {exc}") from exc
    rows = {t.title: len(t.rows) for t in data.tables}
    unreviewed = sum(AI_NOT_REVIEWED in row[t.status_column] for t in data.tables if t.status_column is not None
                     for row in t.rows)
    print(f"wrote {out}: " + ", ".join(f"{n} {title.split(' (')[0].lower()}" for title, n in rows.items())
          + (f"; {unreviewed} AI item(s) not reviewed" if unreviewed else "")
          + ("" if args.show_patient_data else "; de-identified"))
    return 0
