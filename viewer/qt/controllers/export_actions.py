"""File → Export: segmentation as DICOM SEG / NIfTI, measurements and findings as DICOM SR / JSON, and a
de-identified copy of the study.

:class:`ExportActions` adds five actions to the window's Export menu and runs every export on a worker
thread (the window's :class:`~viewer.qt.jobs.BackgroundTasks`, results delivered to the GUI thread
tagged with their job id); the GUI thread only gathers what is exported (a copy of the label map, the
measurements as dicts, the AI findings as plain dicts) and validates the file name:

* **Segmentation as DICOM SEG…** — a label layer (the only one, or chosen, the active one first) as a
  SEG referencing the open DICOM series (``viewer.export.seg.write_seg``): an AI result with its
  provenance (AUTOMATIC, SEMIAUTOMATIC once a user edited it), reviewed by whoever reviewed it
  (``viewer.core.review``); refused, with a message, when the open image is not a DICOM series.
* **Segmentation as NIfTI…** — ``.nii.gz`` (``.nii``, ``.nrrd``, ``.mha`` by extension) with
  ``labels.json`` beside it (``{"1": "body", ...}``) and, for an AI result, ``findings.json`` (its
  provenance, detections, structures, review note, whether it was edited: the shape ``radview-cli ai
  run`` writes, which ``radview-cli export seg|sr|report --labels`` read back). All files are written to
  temporary names first and renamed together at the end, so a failure leaves none of them.
* **Measurements and findings as DICOM SR… / as JSON…** — the study's measurements, the review
  table and one AI result's detections and structures (chosen when there are several) through
  ``viewer.export.sr``; measurements on other series of the study reference those series.
* **De-identified copy of the study…** — ``viewer.export.deid.deidentify_study`` into a chosen folder,
  with progress and a Cancel button in the status bar (a ``threading.Event``); the files written and
  skipped (with the reasons) are reported at the end in a non-modal box. When the opened folder holds
  other studies too, only the open study's files are copied (one pseudonym and UID map for the run).

Actions are disabled, with a tooltip saying why, when they cannot apply (no series, no label layer,
nothing measured). A failure is reported in a non-modal message and leaves no file; success puts the
path in the status bar (and the window's ``exported`` signal).
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import secrets
from collections import Counter
from contextlib import ExitStack
from typing import Any, Callable

import numpy as np
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QFileDialog, QInputDialog, QMessageBox, QProgressBar, QPushButton

from viewer.export.json_file import json_safe

#: label map formats written in one file (and so atomically); ``.nhdr`` / ``.mhd`` keep their data apart
NIFTI_EXTENSIONS = (".nii.gz", ".nii", ".nrrd", ".mha")
DEID_STEPS = 1000  # progress bar resolution of the de-identified copy

NO_SERIES = "Open a series first"
NO_LABELS = "No label map is shown: load a segmentation or run an AI model first"
NOTHING_MEASURED = "Nothing to export yet: no measurements and no AI findings on this series"
NOT_DICOM = "the open image was not read from a DICOM series"


class ExportRefused(ValueError):
    """An export that cannot start as asked; the message is for the user."""


@dataclasses.dataclass
class _Job:
    kind: str  # "seg", "nifti", "sr", "json", "deid"
    what: str  # for messages: "DICOM SEG", ...
    path: str
    on_done: Callable[[Any], None]


def _safe_name(text: str) -> str:
    return re.sub(r"[^\w.-]+", "_", str(text)).strip("._") or "export"


def _plain(obj) -> dict:
    if obj is None:
        return {}
    if hasattr(obj, "as_dict"):
        return dict(obj.as_dict())
    if isinstance(obj, dict):
        return dict(obj)
    return dict(vars(obj))


def _within(path: str, root: str) -> bool:
    path, root = os.path.realpath(path), os.path.realpath(root)
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def deid_summary(report) -> str:
    """``12 files: 11 written, 1 skipped`` (or ``Cancelled after 3 of 12 files: ...``)."""
    head = (f"Cancelled after {report.n_processed} of {report.n_files} files" if report.cancelled
            else f"{report.n_files} files")
    return f"{head}: {report.n_written} written, {len(report.skipped)} skipped"


def deidentify_files(files: list[str], out_dir: str, progress=None, cancel=None, options=None):
    """``deidentify_study`` over a list of files as one run: one secret, so the same original UID or patient
    gives the same new one in every file; returns one :class:`~viewer.export.deid.DeidReport`."""
    from viewer.export.deid import DeidOptions, DeidReport, SkippedFile, deidentify_study

    options = options or DeidOptions()
    if options.secret is None:
        options = dataclasses.replace(options, secret=secrets.token_hex(32))
    common = os.path.commonpath([os.path.dirname(os.path.abspath(f)) for f in files]) if files else ""
    report = DeidReport(src=common, out_dir=os.path.realpath(out_dir), n_files=len(files))
    written: dict[str, str] = {}
    for i, path in enumerate(files):
        if cancel is not None and cancel.is_set():
            report.cancelled = True
            break
        one = deidentify_study(path, out_dir, None, None, options)
        report.skipped.extend(one.skipped)
        for w in one.written:
            if w.path in written:
                report.skipped.append(SkippedFile(path, f"same SOP Instance UID as {written[w.path]}: written once"))
            else:
                written[w.path] = path
                report.written.append(w)
        report.n_processed = i + 1
        if progress is not None:
            progress((i + 1) / max(len(files), 1), f"de-identifying {i + 1}/{len(files)}")
    report.n_patients = len({os.path.relpath(w.path, report.out_dir).split(os.sep)[0] for w in report.written})
    return report


class ExportActions(QObject):
    """The SEG / NIfTI / SR / JSON / de-identified copy entries of File → Export, for a ``MainWindow``."""

    finished = Signal(str, object)  # kind, outcome (the path; a DeidReport for "deid")
    failed = Signal(str, str)  # kind, the message shown

    def __init__(self, window, menu):
        super().__init__(window)
        self.window = window
        self.menu = menu
        self._jobs: dict[int, _Job] = {}
        self.deid_job: int | None = None
        self.message_box: QMessageBox | None = None
        self.last_dir = ""
        self.seg_action = menu.addAction("Segmentation as DICOM &SEG…", self.choose_seg)
        self.nifti_action = menu.addAction("Segmentation as &NIfTI…", self.choose_nifti)
        self.sr_action = menu.addAction("&Measurements and findings as DICOM SR…", self.choose_sr)
        self.json_action = menu.addAction("Measurements and findings as &JSON…", self.choose_json)
        self.deid_action = menu.addAction("&De-identified copy of the study…", self.choose_deid)
        menu.setToolTipsVisible(True)
        menu.aboutToShow.connect(self.update_actions)

        self.progress = QProgressBar()
        self.progress.setMaximumWidth(200)
        self.progress.setMinimumWidth(120)
        self.progress.setRange(0, DEID_STEPS)
        self.progress.setToolTip("De-identified copy of the study")
        self.progress.hide()
        self.cancel_button = QPushButton("Cancel copy")
        self.cancel_button.setToolTip("Stop the de-identified copy (the files already written are complete)")
        self.cancel_button.clicked.connect(self.cancel_deid)
        self.cancel_button.hide()
        window.statusBar().addPermanentWidget(self.progress)
        window.statusBar().addPermanentWidget(self.cancel_button)

        tasks = window.tasks
        tasks.finished.connect(self._on_finished)
        tasks.failed.connect(self._on_failed)
        tasks.progressed.connect(self._on_progress)
        session = window.session
        for signal in (session.volume_loaded, session.volume_cleared, session.layer_added, session.layer_removed,
                       session.annotations.annotation_added, session.annotations.annotation_removed,
                       session.annotations.annotations_reset):
            signal.connect(self.update_actions)
        self.update_actions()

    # --- what applies --------------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """An export of this module is running."""
        return bool(self._jobs)

    def label_layers(self) -> list:
        return self.window.session.label_layers()

    def ai_results(self) -> list:
        from viewer.core.review import ai_results

        return ai_results(self.window.session)

    def _measurements(self) -> list:
        return list(self.window.session.annotations)

    def _has_findings(self) -> bool:
        return any(r.detections or self._structures(r) for r in self.ai_results())

    def update_actions(self, *_args) -> None:
        """Enable what applies; a disabled action's tooltip says why."""
        session = self.window.session
        volume = session.volume
        dicom_reason = self.dicom_refusal()
        states = {}
        if volume is None:
            states = {a: NO_SERIES for a in (self.seg_action, self.nifti_action, self.sr_action, self.json_action,
                                              self.deid_action)}
        else:
            has_labels = bool(self.label_layers())
            states[self.seg_action] = "" if has_labels else NO_LABELS
            states[self.nifti_action] = "" if has_labels else NO_LABELS
            something = bool(self._measurements()) or self._has_findings()
            states[self.sr_action] = "" if something else NOTHING_MEASURED
            states[self.json_action] = "" if something else NOTHING_MEASURED
            states[self.deid_action] = (f"Not available: {dicom_reason}" if dicom_reason else
                                        "A de-identified copy is being written" if self.deid_job is not None else "")
        tips = {self.seg_action: "A DICOM Segmentation referencing the open series",
                self.nifti_action: "The label map as NIfTI (.nii.gz) or NRRD, with labels.json (and findings.json "
                                   "for an AI result) beside it",
                self.sr_action: "A DICOM SR (TID 1500): measurements, AI findings and their review state",
                self.json_action: "The same content as the DICOM SR, as JSON",
                self.deid_action: "A copy of the study's DICOM files with patient data removed (PS3.15 Basic "
                                  "Profile)"}
        if volume is not None and dicom_reason:
            tips[self.seg_action] += f" (not available: {dicom_reason})"
            tips[self.sr_action] += f" (not available: {dicom_reason}; use JSON)"
        for action, why in states.items():
            action.setEnabled(not why)
            action.setToolTip(why or tips[action])

    # --- the open series ---------------------------------------------------------------------------------
    def dicom_refusal(self) -> str:
        """Why the open volume has no DICOM series to reference ("" when it has one)."""
        try:
            self.dicom_entry()
        except ExportRefused as exc:
            return str(exc)
        return ""

    def dicom_entry(self):
        """``(index, series entry)`` of the open volume; :class:`ExportRefused` when it is not a DICOM series."""
        volume = self.window.session.volume
        if volume is None:
            raise ExportRefused(NO_SERIES)
        meta = volume.meta or {}
        index = self.window.index
        key = str(meta.get("series_key") or "")
        if meta.get("source_file") or not key or index is None:
            name = os.path.basename(str(meta.get("source_file") or "")) or "the open image"
            raise ExportRefused(f"{name} was not read from a DICOM series" if name != "the open image" else NOT_DICOM)
        try:
            entry = index.find(key)
        except KeyError:
            raise ExportRefused(f"{NOT_DICOM} of the open study folder") from None
        if entry.series_uid != meta.get("series_uid"):
            raise ExportRefused(f"{NOT_DICOM} of the open study folder")
        return index, entry

    def study_source(self) -> str | list[str]:
        """What the de-identified copy reads: the opened folder when it holds only the open study, else the
        open study's files."""
        index, entry = self.dicom_entry()
        if all(e.study_uid == entry.study_uid for e in index.series):
            return index.root
        return sorted({f for e in index.series if e.study_uid == entry.study_uid for f in e.files})

    # --- choosing (menu) -----------------------------------------------------------------------------------
    def _report(self, message: str) -> None:
        self.window._report(message)  # non-modal, also in the status bar

    def _default_path(self, name: str) -> str:
        return os.path.join(self.last_dir or os.getcwd(), name)

    def _save_name(self, title: str, default: str, filters: str, suffix: str) -> str:
        path, _ = QFileDialog.getSaveFileName(self.window, title, self._default_path(default), filters)
        if path and not os.path.splitext(os.path.basename(path))[1]:
            path += suffix
        return path

    def _choose_layer(self, title: str):
        layers = self.label_layers()
        if not layers:
            self._report(NO_LABELS + ".")
            return None
        if len(layers) == 1:
            return layers[0]
        active = self.window.session.active_label
        current = layers.index(active[0]) if active is not None and active[0] in layers else len(layers) - 1
        names = [f"{i + 1}. {layer.name}" for i, layer in enumerate(layers)]
        choice, ok = QInputDialog.getItem(self.window, title, "Label layer to export:", names, current, False)
        return layers[names.index(choice)] if ok and choice in names else None

    def _choose_result(self, title: str):
        """The AI result to include (None: measurements only); False when the user cancelled."""
        results = [r for r in self.ai_results() if r.detections or self._structures(r)]
        if len(results) <= 1:
            return results[0] if results else None
        names = [f"{i + 1}. {r.name}" for i, r in enumerate(results)]
        if self._measurements():
            names.append("none (measurements only)")
        choice, ok = QInputDialog.getItem(self.window, title, "AI result to include:", names, len(results) - 1,
                                          False)
        if not ok:
            return False
        return results[names.index(choice)] if choice in names[:len(results)] else None

    def choose_seg(self) -> int | None:
        try:
            self.dicom_entry()
        except ExportRefused as exc:
            self._report(f"DICOM SEG not written: {exc}; a DICOM SEG references the DICOM images it was made on. "
                         "Export the segmentation as NIfTI instead, or open the DICOM folder.")
            return None
        layer = self._choose_layer("Export segmentation as DICOM SEG")
        if layer is None:
            return None
        path = self._save_name("Export segmentation as DICOM SEG", f"{_safe_name(layer.name)}-seg.dcm",
                               "DICOM (*.dcm);;All files (*)", ".dcm")
        return self.export_seg(path, layer) if path else None

    def choose_nifti(self) -> int | None:
        layer = self._choose_layer("Export segmentation as NIfTI")
        if layer is None:
            return None
        path = self._save_name("Export segmentation as NIfTI", f"{_safe_name(layer.name)}.nii.gz",
                               "NIfTI (*.nii.gz *.nii);;NRRD (*.nrrd);;MetaImage (*.mha)", ".nii.gz")
        return self.export_nifti(path, layer) if path else None

    def choose_sr(self) -> int | None:
        try:
            self.dicom_entry()
        except ExportRefused as exc:
            self._report(f"DICOM SR not written: {exc}; a DICOM SR references the DICOM images it was made on. "
                         "Export the measurements and findings as JSON instead.")
            return None
        result = self._choose_result("Export measurements and findings as DICOM SR")
        if result is False:
            return None
        path = self._save_name("Export measurements and findings as DICOM SR", "radview-sr.dcm",
                               "DICOM (*.dcm);;All files (*)", ".dcm")
        return self.export_sr(path, result) if path else None

    def choose_json(self) -> int | None:
        result = self._choose_result("Export measurements and findings as JSON")
        if result is False:
            return None
        path = self._save_name("Export measurements and findings as JSON", "radview-findings.json", "JSON (*.json)",
                               ".json")
        return self.export_findings_json(path, result) if path else None

    def choose_deid(self) -> int | None:
        try:
            self.study_source()
        except ExportRefused as exc:
            self._report(f"No de-identified copy: {exc}.")
            return None
        folder = QFileDialog.getExistingDirectory(self.window, "Folder for the de-identified copy",
                                                  self.last_dir or os.getcwd())
        return self.export_deid(folder) if folder else None

    # --- exporting (explicit paths; the work runs on a worker thread) --------------------------------------
    def _layer(self, layer):
        if layer is None:
            layers = self.label_layers()
            if not layers:
                raise ExportRefused(NO_LABELS)
            active = self.window.session.active_label
            layer = active[0] if active is not None and active[0] in layers else layers[-1]
        if layer not in self.window.session.layers or not hasattr(layer, "label_map"):
            raise ExportRefused("that label layer is no longer shown")
        return layer

    @staticmethod
    def _snapshot(layer):
        """A copy of the layer's label map: the worker writes what was shown, whatever is painted meanwhile."""
        from viewer.io.volume import LabelMap

        lm = layer.label_map
        return LabelMap(np.array(lm.array, copy=True), lm.geometry, dict(lm.labels), meta=dict(lm.meta or {}))

    def _review_of(self, layer) -> tuple[Any, str | None, bool]:
        """(provenance dict or None, reviewed by, edited) of a label layer."""
        from viewer.core.review import result_of_layer, result_status
        from viewer.export.seg import provenance_dict

        prov = provenance_dict(layer.meta.get("provenance"))
        edited = bool(layer.meta.get("edited_by") or layer.meta.get("edited"))
        reviewed_by = None
        result = result_of_layer(self.window.session, layer) if prov is not None else None
        if result is not None:
            status = result_status(self.window.session.annotations.review, result)
            if status.state == "reviewed":
                reviewed_by = status.user or "unknown user"
        return prov, reviewed_by, edited

    def export_seg(self, path: str, layer=None) -> int | None:
        """Write ``layer`` (default: the active label layer) as a DICOM SEG of the open series at ``path``.
        Returns the job id, or None when refused (reported)."""
        from viewer.export.seg import SourceSeries, write_seg

        try:
            _index, entry = self.dicom_entry()
            layer = self._layer(layer)
            path = self._check_file(path)
            labels = self._snapshot(layer)
            prov, reviewed_by, edited = self._review_of(layer)
            colors = {int(k): tuple(int(c) for c in v) for k, v in layer.colors.items()}
        except ExportRefused as exc:
            return self._refuse("seg", "DICOM SEG", exc)

        def work(progress, cancel):
            source = SourceSeries.from_entry(entry)  # the series' headers (SegError when it cannot be referenced)
            info = write_seg(path, labels, source, provenance=prov, edited=edited, reviewed_by=reviewed_by,
                             colors=colors)
            return info.path

        return self._submit("seg", "DICOM SEG", path, work, self._saved)

    def export_nifti(self, path: str, layer=None) -> int | None:
        """Write ``layer``'s label map as NIfTI/NRRD/MHA (by extension) with ``labels.json`` and, for an AI
        result, ``findings.json`` beside it; all or nothing."""
        from viewer.io.image_io import write_image
        from radview_base.atomic_file import atomic_path

        try:
            layer = self._layer(layer)
            path = self._check_file(path)
            if not path.lower().endswith(NIFTI_EXTENSIONS):
                raise ExportRefused(f"give a file name ending in {', '.join(NIFTI_EXTENSIONS)} "
                                    f"(not {os.path.basename(path)})")
            labels = self._snapshot(layer)
            names = {str(k): v for k, v in sorted(labels.labels.items()) if int(k) > 0}
            sidecars = {os.path.join(os.path.dirname(path), "labels.json"):
                        json.dumps(names, indent=2, ensure_ascii=False) + "\n"}
            prov, reviewed_by, edited = self._review_of(layer)
            if prov is not None:
                doc = self._layer_findings(layer, prov, reviewed_by, edited)
                sidecars[os.path.join(os.path.dirname(path), "findings.json")] = \
                    json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False, default=str) + "\n"
        except (ExportRefused, ValueError) as exc:
            return self._refuse("nifti", "NIfTI", exc)

        def work(progress, cancel):
            with ExitStack() as stack:  # every file to a temporary name; all renamed at the end, or none
                image_tmp = stack.enter_context(atomic_path(path))
                text_tmps = {stack.enter_context(atomic_path(p)): text for p, text in sidecars.items()}
                write_image(labels, image_tmp)
                for tmp, text in text_tmps.items():
                    with open(tmp, "w", encoding="utf-8") as fh:
                        fh.write(text)
            return path

        def done(out: str) -> None:
            extra = " + " + ", ".join(os.path.basename(p) for p in sidecars)
            self._saved(out, extra)

        return self._submit("nifti", "NIfTI", path, work, done)

    def _layer_findings(self, layer, prov: dict, reviewed_by: str | None, edited: bool) -> dict:
        """findings.json of an AI label layer (the shape ``radview-cli ai run`` writes), plus its review state."""
        from viewer.core.review import result_of_layer
        from viewer.export.seg import seg_note

        volume = self.window.session.volume
        g = volume.geometry
        result = result_of_layer(self.window.session, layer)
        doc = self._findings(result) if result is not None else {"provenance": prov, "detections": [],
                                                                  "structures": []}
        doc["input"] = {"series_uid": str(volume.meta.get("series_uid", "")), "shape_zyx": list(g.shape_zyx),
                        "spacing_zyx": [float(v) for v in g.spacing_zyx]}
        doc["note"] = seg_note(prov, reviewed_by, edited)
        doc["edited"] = edited
        for key in ("edited_by", "edited_at", "revision", "review_state", "reviewed_by", "reviewed_at"):
            if layer.meta.get(key) not in (None, ""):
                doc[key] = str(layer.meta[key])
        return json_safe(doc)

    @staticmethod
    def _structures(result) -> list:
        metas = [layer.meta for layer in result.layers]
        return [s for m in metas for s in m.get("structures", ())]

    def _findings(self, result) -> dict | None:
        """One AI result as findings.json content (plain dicts), or None."""
        from viewer.export.seg import provenance_dict

        if result is None:
            return None
        volume = self.window.session.volume
        messages = next((list(layer.meta.get("messages") or ()) for layer in result.layers), [])
        return {"provenance": provenance_dict(result.provenance),
                "input": {"series_uid": str(volume.meta.get("series_uid", "")) if volume is not None else ""},
                "detections": [_plain(d) for d in result.detections],
                "structures": [_plain(s) for s in self._structures(result)],
                "messages": [str(m) for m in messages]}

    def _default_result(self, result):
        if result is not None:
            return result
        results = [r for r in self.ai_results() if r.detections or self._structures(r)]
        active = self.window.session.active_label
        if active is not None:
            mine = next((r for r in results if active[0] in r.layers), None)
            if mine is not None:
                return mine
        return results[-1] if results else None

    def _measurement_doc(self) -> dict:
        annotations = self.window.session.annotations
        return {"measurements": [a.as_dict() for a in annotations],
                "review": {str(k): dict(v) for k, v in annotations.review.items()}}

    def export_sr(self, path: str, result=None) -> int | None:
        """The study's measurements, the review table and one AI result (default: the active layer's, or the
        last one) as a DICOM SR (TID 1500) of the open series."""
        from viewer.export.seg import SegError, SourceSeries
        from viewer.export.sr import write_sr

        try:
            index, entry = self.dicom_entry()
            path = self._check_file(path)
            findings = self._findings(self._default_result(result))
            doc = self._measurement_doc()
            if not doc["measurements"] and not (findings and (findings["detections"] or findings["structures"])):
                raise ExportRefused(NOTHING_MEASURED)
        except ExportRefused as exc:
            return self._refuse("sr", "DICOM SR", exc)

        def work(progress, cancel):
            source = SourceSeries.from_entry(entry)
            others, left_out = {}, Counter()
            for uid in sorted({str(m.get("series_uid") or "") for m in doc["measurements"]} - {"", source.series_uid}):
                try:
                    others[uid] = SourceSeries.from_entry(index.find(uid))
                except (KeyError, SegError):
                    left_out[uid] = sum(str(m.get("series_uid") or "") == uid for m in doc["measurements"])
            kept = dict(doc, measurements=[m for m in doc["measurements"]
                                           if str(m.get("series_uid") or "") not in left_out])
            if not kept["measurements"] and not (findings and (findings["detections"] or findings["structures"])):
                raise ExportRefused("the measurements lie on series that cannot be referenced")
            info = write_sr(path, source, findings=findings, measurements=kept, other_sources=others)
            left[0] = sum(left_out.values())
            return info.path

        left = [0]  # measurements on series that are not in the study folder (not referenced, left out)

        def done(out: str) -> None:
            self._saved(out, f" ({left[0]} measurement(s) on series not in the study folder left out)" if left[0]
                        else "")

        return self._submit("sr", "DICOM SR", path, work, done)

    def export_findings_json(self, path: str, result=None) -> int | None:
        """The same content as :meth:`export_sr`, as JSON (also for an open image that is not DICOM)."""
        from viewer.export.seg import SourceSeries
        from viewer.export.sr import write_findings_json

        try:
            path = self._check_file(path)
            if not path.lower().endswith(".json"):
                raise ExportRefused(f"give a file name ending in .json (not {os.path.basename(path)})")
            findings = self._findings(self._default_result(result))
            doc = self._measurement_doc()
            if not doc["measurements"] and not (findings and (findings["detections"] or findings["structures"])):
                raise ExportRefused(NOTHING_MEASURED)
            try:
                _index, entry = self.dicom_entry()
            except ExportRefused:
                entry = None  # not DICOM: the JSON names the series by what the volume knows
        except ExportRefused as exc:
            return self._refuse("json", "JSON", exc)

        def work(progress, cancel):
            source = SourceSeries.from_entry(entry) if entry is not None else None
            return write_findings_json(path, findings, doc, source=source)

        return self._submit("json", "JSON", path, work, self._saved)

    def export_deid(self, out_dir: str, source: str | list[str] | None = None, options=None) -> int | None:
        """A de-identified copy of the open study (or of ``source``: a folder, a file or a list of files) in
        ``out_dir``, with progress and Cancel in the status bar; the outcome is reported when it ends."""
        from viewer.export.deid import deidentify_study

        try:
            if self.deid_job is not None:
                raise ExportRefused("a de-identified copy is already being written")
            if source is None:
                source = self.study_source()
            out_dir = os.path.abspath(str(out_dir))
            if os.path.exists(out_dir) and not os.path.isdir(out_dir):
                raise ExportRefused(f"{out_dir} is not a folder")
            roots = [source] if isinstance(source, str) else sorted({os.path.dirname(f) for f in source})
            if not roots:
                raise ExportRefused("no files to copy")
            index = self.window.index
            if index is not None and os.path.isdir(index.root) and not isinstance(source, str):
                roots.append(index.root)
            for root in roots:
                if os.path.isdir(root) and _within(out_dir, root):
                    raise ExportRefused(f"the output folder must not be inside the study folder {root}")
        except ExportRefused as exc:
            return self._refuse("deid", "De-identified copy", exc)

        def work(progress, cancel):
            def step(fraction: float, message: str = "") -> None:
                progress(int(round(fraction * DEID_STEPS)), DEID_STEPS, message)

            if isinstance(source, str):
                return deidentify_study(source, out_dir, step, cancel, options)
            return deidentify_files(list(source), out_dir, step, cancel, options)

        job = self._submit("deid", "De-identified copy", out_dir, work, self._deid_done)
        self.deid_job = job
        self.progress.setValue(0)
        self.progress.show()
        self.cancel_button.show()
        self.cancel_button.setEnabled(True)
        self.window.status_label.setText(f"De-identifying into {out_dir}…")
        self.update_actions()
        return job

    def cancel_deid(self) -> None:
        if self.deid_job is not None:
            self.window.tasks.cancel(self.deid_job)
            self.cancel_button.setEnabled(False)
            self.window.status_label.setText("Cancelling the de-identified copy…")

    # --- plumbing ----------------------------------------------------------------------------------------
    @staticmethod
    def _check_file(path: str) -> str:
        path = os.path.abspath(str(path))
        if os.path.isdir(path):
            raise ExportRefused(f"{path} is a folder: give a file name")
        return path

    def _refuse(self, kind: str, what: str, exc: Exception) -> None:
        message = f"{what} not written: {exc}"
        self._report(message)
        self.failed.emit(kind, message)
        return None

    def _submit(self, kind: str, what: str, path: str, fn, on_done) -> int:
        from viewer.io.image_io import ImageFileError
        from viewer.export import ExportError

        def work(progress, cancel):
            try:
                return True, fn(progress, cancel)
            except (ExportError, ExportRefused, ImageFileError, OSError, ValueError) as exc:  # one line for the user
                return False, str(exc) or type(exc).__name__

        job = self.window.tasks.submit(work)
        self._jobs[job] = _Job(kind, what, path, on_done)
        self.last_dir = path if kind == "deid" else os.path.dirname(path)
        if kind != "deid":
            self.window.status_label.setText(f"Writing {os.path.basename(path)}…")
        return job

    def _saved(self, path: str, extra: str = "") -> None:
        self.window.status_label.setText(f"Saved {path}{extra}")
        self.window.exported.emit(path)

    def _end(self, job: int) -> _Job | None:
        entry = self._jobs.pop(job, None)
        if entry is not None and job == self.deid_job:
            self.deid_job = None
            self.progress.hide()
            self.cancel_button.hide()
            self.update_actions()
        return entry

    def _on_finished(self, job: int, outcome) -> None:
        entry = self._end(job)
        if entry is None:
            return None
        ok, value = outcome
        if not ok:
            self._fail(entry, value)
            return None
        entry.on_done(value)
        self.finished.emit(entry.kind, value)

    def _on_failed(self, job: int, message: str) -> None:  # an unexpected error (the worker printed it)
        entry = self._end(job)
        if entry is not None:
            self._fail(entry, message)

    def _fail(self, entry: _Job, message: str) -> None:
        text = f"{entry.what} not written: {message}"
        if entry.kind == "deid":
            text = f"No de-identified copy: {message}"
        self._report(text)
        self.failed.emit(entry.kind, text)

    def _on_progress(self, job: int, done: int, total: int, message: str) -> None:
        if job == self.deid_job and job in self._jobs:
            self.progress.setRange(0, max(total, 1))
            self.progress.setValue(done)
            if message:
                self.window.status_label.setText(message[:1].upper() + message[1:] + "…")

    def _deid_done(self, report) -> None:
        summary = deid_summary(report)
        self.window.status_label.setText(f"De-identified copy in {report.out_dir}: {summary}")
        if not self.window.isVisible():  # the window was closed while the copy ran (and stopped it)
            return None
        reasons = Counter(s.reason for s in report.skipped)
        lines = [f"{summary}.", f"Folder: {report.out_dir}"]
        if report.cancelled:
            lines.append("The files written before the copy was cancelled are complete.")
        if reasons:
            lines.append("Skipped:")
            lines += [f"• {n} × {reason}" for reason, n in reasons.most_common(8)]
            if len(reasons) > 8:
                lines.append(f"• … {len(reasons) - 8} other reasons (see the details)")
        box = QMessageBox(QMessageBox.Information, "De-identified copy", "\n".join(lines), QMessageBox.Ok, self.window)
        if report.skipped:
            box.setDetailedText("\n".join(f"{s.path}: {s.reason}" for s in report.skipped))
        box.setAttribute(Qt.WA_DeleteOnClose)
        box.setModal(False)
        box.show()
        self.message_box = box
