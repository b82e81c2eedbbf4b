"""File → Export: segmentation as DICOM SEG / NIfTI, measurements and findings as DICOM SR / JSON, and a
de-identified copy of the study.

:class:`ExportActions` adds the five entries of :data:`EXPORT_ACTIONS` to File → Export and runs every export
as a job of the window's jobs service (:class:`~viewer.qt.jobs.Jobs`: results delivered to the GUI thread, tagged
with their job id); the GUI thread only gathers what is exported (a copy of the label map, the measurements as
dicts, the AI findings as plain dicts) and validates the file name:

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
  table and one AI result's detections and structures, or a classification model's class probabilities
  (chosen when there are several) through ``viewer.export.sr``; measurements on other series of the study
  reference those series. On a 2D series the SR holds the measurements drawn on its images
  (``viewer.export.sr_image``) or, when a classification is chosen, the class probabilities of the image
  it was made on (``viewer.logic.exports.classified_image_source``); a radiograph whose only AI result is
  a classification has something to export.
* **De-identified copy of the study…** — ``viewer.export.deid.deidentify_study`` into a chosen folder,
  with progress and a Cancel button in the status bar (a ``threading.Event``); the files written and
  skipped (with the reasons) are reported at the end in a non-modal box. When the opened folder holds
  other studies too, only the open study's files are copied (one pseudonym and UID map for the run).

Actions are disabled, with a tooltip saying why, when they cannot apply (no series, no label layer,
nothing measured). A failure is reported in a non-modal message and leaves no file; success puts the
path in the status bar (and the notifier's ``exported`` signal).
"""
from __future__ import annotations

import dataclasses
import json
import os
from collections import Counter
from contextlib import ExitStack
from typing import Any, Callable

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog, QInputDialog, QMessageBox

from viewer.logic.exports import (
    NIFTI_EXTENSIONS,
    NO_LABELS,
    NO_SERIES,
    NOTHING_MEASURED,
    ExportRefused,
    classification_of,
    classified_image_source,
    default_result,
    deid_summary,
    deidentify_files,
    dicom_entry,
    findings_doc,
    has_findings,
    image_measurement_sr,
    layer_findings,
    measurement_doc,
    reportable,
    review_of,
    safe_name,
    snapshot,
    study_source,
    within,
)
from viewer.qt.actions import ActionSpec

DEID_STEPS = 1000  # progress bar resolution of the de-identified copy
#: the chooser's "none (measurements only)": no AI result in the SR / JSON, whatever the session holds
MEASUREMENTS_ONLY = "measurements only"


#: File → Export: the segmentation, the measurements and findings, a de-identified copy
EXPORT_ACTIONS = [
    ActionSpec("export.seg", "Segmentation as DICOM &SEG…", "choose_seg", menu="File/Export#formats"),
    ActionSpec("export.nifti", "Segmentation as &NIfTI…", "choose_nifti", menu="File/Export#formats"),
    ActionSpec("export.sr", "&Measurements and findings as DICOM SR…", "choose_sr", menu="File/Export#formats"),
    ActionSpec("export.json", "Measurements and findings as &JSON…", "choose_json", menu="File/Export#formats"),
    ActionSpec("export.deid", "&De-identified copy of the study…", "choose_deid", menu="File/Export#formats"),
]


@dataclasses.dataclass
class _Job:
    kind: str  # "seg", "nifti", "sr", "json", "deid"
    what: str  # for messages: "DICOM SEG", ...
    path: str
    on_done: Callable[[Any], None]
    job: int | None = None


class ExportActions(QObject):
    """The SEG / NIfTI / SR / JSON / de-identified copy entries of File → Export.

    ``session``, ``jobs`` (the jobs service), ``notices`` (the notifier), ``registry`` (the actions),
    ``study_index()``: the open study's index (None when the open image is not from a DICOM folder), ``parent``:
    the window (dialogs open over it).
    """

    finished = Signal(str, object)  # kind, outcome (the path; a DeidReport for "deid")
    failed = Signal(str, str)  # kind, the message shown

    def __init__(self, session, jobs, notices, registry, study_index: Callable[[], Any], parent):
        super().__init__(parent)
        self.session, self.jobs, self.notices = session, jobs, notices
        self.study_index = study_index
        self.parent_widget = parent
        self._jobs: dict[int, _Job] = {}
        self.deid_job: int | None = None
        self.message_box: QMessageBox | None = None
        self.last_dir = ""
        actions = registry.add(EXPORT_ACTIONS, target=self)
        self.seg_action, self.nifti_action = actions["export.seg"], actions["export.nifti"]
        self.sr_action, self.json_action = actions["export.sr"], actions["export.json"]
        self.deid_action = actions["export.deid"]
        self.menu = registry.menu("File/Export")
        self.menu.aboutToShow.connect(self.update_actions)
        for signal in (session.images_loaded, session.images_cleared, session.volume_loaded, session.volume_cleared,
                       session.layer_added, session.layer_removed,
                       session.annotations.annotation_added, session.annotations.annotation_removed,
                       session.annotations.annotations_reset, session.classification_added,
                       session.classification_removed):
            signal.connect(self.update_actions)
        self.update_actions()

    # --- what applies --------------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """An export of this module is running."""
        return bool(self._jobs)

    def label_layers(self) -> list:
        return self.session.label_layers()

    def ai_results(self) -> list:
        from viewer.core.review import ai_results

        return ai_results(self.session)

    def _measurements(self) -> list:
        return list(self.session.annotations)

    def _has_findings(self) -> bool:
        """An AI result with detections, structures or class probabilities (a classification) is shown."""
        return any(reportable(r) for r in self.ai_results())

    def update_actions(self, *_args) -> None:
        """Enable what applies; a disabled action's tooltip says why."""
        volume = self.session.volume
        images = self.session.images
        dicom_reason = self.dicom_refusal()
        states = {}
        if images is not None:  # a 2D series: measurements, classifications as SR / JSON, a de-identified copy
            something = bool(self._measurements()) or self._has_findings()
            states = {self.seg_action: NO_LABELS, self.nifti_action: NO_LABELS,
                      self.sr_action: "" if something else NOTHING_MEASURED,
                      self.json_action: "" if something else NOTHING_MEASURED,
                      self.deid_action: (f"Not available: {dicom_reason}" if dicom_reason else
                                         "A de-identified copy is being written" if self.deid_job is not None
                                         else "")}
        elif volume is None:
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
        return dicom_entry(self.session, self.study_index())

    def study_source(self) -> str | list[str]:
        """What the de-identified copy reads: the opened folder when it holds only the open study, else the
        open study's files."""
        return study_source(self.session, self.study_index())

    # --- choosing (menu) -----------------------------------------------------------------------------------
    def _report(self, message: str) -> None:
        self.notices.error(message)  # non-modal, also in the status bar

    def _default_path(self, name: str) -> str:
        return os.path.join(self.last_dir or os.getcwd(), name)

    def _save_name(self, title: str, default: str, filters: str, suffix: str) -> str:
        path, _ = QFileDialog.getSaveFileName(self.parent_widget, title, self._default_path(default), filters)
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
        active = self.session.active_label
        current = layers.index(active[0]) if active is not None and active[0] in layers else len(layers) - 1
        names = [f"{i + 1}. {layer.name}" for i, layer in enumerate(layers)]
        choice, ok = QInputDialog.getItem(self.parent_widget, title, "Label layer to export:", names, current, False)
        return layers[names.index(choice)] if ok and choice in names else None

    def _choose_result(self, title: str):
        """The AI result to include (:data:`MEASUREMENTS_ONLY`: none); None when there is none to choose from,
        False when the user cancelled."""
        results = [r for r in self.ai_results() if reportable(r)]
        if len(results) <= 1:
            return results[0] if results else None
        names = [f"{i + 1}. {r.name}" for i, r in enumerate(results)]
        if self._measurements():
            names.append("none (measurements only)")
        choice, ok = QInputDialog.getItem(self.parent_widget, title, "AI result to include:", names, len(results) - 1,
                                          False)
        if not ok:
            return False
        return results[names.index(choice)] if choice in names[:len(results)] else MEASUREMENTS_ONLY

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
        path = self._save_name("Export segmentation as DICOM SEG", f"{safe_name(layer.name)}-seg.dcm",
                               "DICOM (*.dcm);;All files (*)", ".dcm")
        return self.export_seg(path, layer) if path else None

    def choose_nifti(self) -> int | None:
        layer = self._choose_layer("Export segmentation as NIfTI")
        if layer is None:
            return None
        path = self._save_name("Export segmentation as NIfTI", f"{safe_name(layer.name)}.nii.gz",
                               "NIfTI (*.nii.gz *.nii);;NRRD (*.nrrd);;MetaImage (*.mha)", ".nii.gz")
        return self.export_nifti(path, layer) if path else None

    def choose_sr(self) -> int | None:
        try:
            self.dicom_entry()
        except ExportRefused as exc:
            self._report(f"DICOM SR not written: {exc}; a DICOM SR references the DICOM images it was made on. "
                         "Export the measurements and findings as JSON instead.")
            return None
        if self.session.images is not None and not self._has_findings():  # measurements on 2D images only
            path = self._save_name("Export measurements as DICOM SR", "radview-sr.dcm", "DICOM (*.dcm);;All files (*)",
                                   ".dcm")
            return self.export_sr(path) if path else None
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
        folder = QFileDialog.getExistingDirectory(self.parent_widget, "Folder for the de-identified copy",
                                                  self.last_dir or os.getcwd())
        return self.export_deid(folder) if folder else None

    # --- exporting (explicit paths; the work runs on a worker thread) --------------------------------------
    def _layer(self, layer):
        if layer is None:
            layers = self.label_layers()
            if not layers:
                raise ExportRefused(NO_LABELS)
            active = self.session.active_label
            layer = active[0] if active is not None and active[0] in layers else layers[-1]
        if layer not in self.session.layers or not hasattr(layer, "label_map"):
            raise ExportRefused("that label layer is no longer shown")
        return layer

    def export_seg(self, path: str, layer=None) -> int | None:
        """Write ``layer`` (default: the active label layer) as a DICOM SEG of the open series at ``path``.
        Returns the job id, or None when refused (reported)."""
        from viewer.export.seg import SourceSeries, write_seg

        try:
            _index, entry = self.dicom_entry()
            layer = self._layer(layer)
            path = self._check_file(path)
            labels = snapshot(layer)
            prov, reviewed_by, edited = review_of(self.session, layer)
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
        from radview_base.atomic_file import atomic_path
        from viewer.io.image_io import write_image

        try:
            layer = self._layer(layer)
            path = self._check_file(path)
            if not path.lower().endswith(NIFTI_EXTENSIONS):
                raise ExportRefused(f"give a file name ending in {', '.join(NIFTI_EXTENSIONS)} "
                                    f"(not {os.path.basename(path)})")
            labels = snapshot(layer)
            names = {str(k): v for k, v in sorted(labels.labels.items()) if int(k) > 0}
            sidecars = {os.path.join(os.path.dirname(path), "labels.json"):
                        json.dumps(names, indent=2, ensure_ascii=False) + "\n"}
            prov, reviewed_by, edited = review_of(self.session, layer)
            if prov is not None:
                doc = layer_findings(self.session, layer, prov, reviewed_by, edited)
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

    def export_sr(self, path: str, result=None) -> int | None:
        """The study's measurements, the review table and one AI result (default: the active layer's, or the
        last one; :data:`MEASUREMENTS_ONLY`: none) as a DICOM SR (TID 1500) of the open series. On a 2D series:
        the measurements on its images, or a classification's class probabilities on the image it was made on."""
        from viewer.export.seg import SegError, SourceSeries
        from viewer.export.sr import write_sr

        if self.session.images is not None:
            chosen = self._result(result)
            if classification_of(chosen) is not None:
                return self._export_classification_sr(path, chosen)
            return self._export_image_sr(path)
        try:
            index, entry = self.dicom_entry()
            path = self._check_file(path)
            findings = findings_doc(self.session, self._result(result))
            doc = measurement_doc(self.session.annotations)
            if not doc["measurements"] and not has_findings(findings):
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
            if not kept["measurements"] and not has_findings(findings):
                raise ExportRefused("the measurements lie on series that cannot be referenced")
            info = write_sr(path, source, findings=findings, measurements=kept, other_sources=others)
            left[0] = sum(left_out.values())
            return info.path

        left = [0]  # measurements on series that are not in the study folder (not referenced, left out)

        def done(out: str) -> None:
            self._saved(out, f" ({left[0]} measurement(s) on series not in the study folder left out)" if left[0]
                        else "")

        return self._submit("sr", "DICOM SR", path, work, done)

    def _result(self, result):
        """The AI result an SR / JSON export includes: ``result``, none for :data:`MEASUREMENTS_ONLY`, else the
        default (the active label layer's, or the last one with findings)."""
        return None if result is MEASUREMENTS_ONLY else default_result(self.session, result)

    def _export_classification_sr(self, path: str, result) -> int | None:
        """A classification of a 2D image as a DICOM SR referencing that image: one group per class with its
        probability and the review state (measurements on the images go in their own SR)."""
        from viewer.export.sr import write_sr

        try:
            self.dicom_entry()
            path = self._check_file(path)
            findings = findings_doc(self.session, result)
            doc = measurement_doc(self.session.annotations)
            source = classified_image_source(self.session.images, findings["input"].get("sop_instance_uid", ""))
        except ExportRefused as exc:
            return self._refuse("sr", "DICOM SR", exc)
        drawn = sum(1 for m in doc["measurements"] if m.get("image"))

        def work(progress, cancel):
            return write_sr(path, source, findings=findings, review=doc["review"]).path

        def done(out: str) -> None:
            self._saved(out, f" (the {drawn} measurement(s) on the images go in their own SR: choose "
                             "'none (measurements only)')" if drawn else "")

        return self._submit("sr", "DICOM SR", path, work, done)

    def _export_image_sr(self, path: str) -> int | None:
        """The measurements on the open 2D series' images as a DICOM SR (each on its image and frame)."""
        try:
            path = self._check_file(path)
            doc = measurement_doc(self.session.annotations)
            images = self.session.images
            if not any(m.get("image") for m in doc["measurements"]):
                raise ExportRefused(NOTHING_MEASURED)
        except ExportRefused as exc:
            return self._refuse("sr", "DICOM SR", exc)
        return self._submit("sr", "DICOM SR", path, lambda progress, cancel: image_measurement_sr(path, images, doc),
                            self._saved)

    def export_findings_json(self, path: str, result=None) -> int | None:
        """The same content as :meth:`export_sr`, as JSON (also for an open image that is not DICOM)."""
        from viewer.export.seg import SourceSeries
        from viewer.export.sr import write_findings_json

        try:
            path = self._check_file(path)
            if not path.lower().endswith(".json"):
                raise ExportRefused(f"give a file name ending in .json (not {os.path.basename(path)})")
            findings = findings_doc(self.session, self._result(result))
            doc = measurement_doc(self.session.annotations)
            if not doc["measurements"] and not has_findings(findings):
                raise ExportRefused(NOTHING_MEASURED)
            try:
                _index, entry = self.dicom_entry()
            except ExportRefused:
                entry = None  # not DICOM: the JSON names the series by what the volume knows
        except ExportRefused as exc:
            return self._refuse("json", "JSON", exc)

        def work(progress, cancel):
            planar = entry is not None and entry.planar
            source = SourceSeries.from_entry(entry) if entry is not None and not planar else None
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
            index = self.study_index()
            if index is not None and os.path.isdir(index.root) and not isinstance(source, str):
                roots.append(index.root)
            for root in roots:
                if os.path.isdir(root) and within(out_dir, root):
                    raise ExportRefused(f"the output folder must not be inside the study folder {root}")
        except ExportRefused as exc:
            return self._refuse("deid", "De-identified copy", exc)

        def work(progress, cancel):
            def step(fraction: float, message: str = "") -> None:
                progress(int(round(fraction * DEID_STEPS)), DEID_STEPS, message[:1].upper() + message[1:] + "…"
                         if message else "")

            if isinstance(source, str):
                return deidentify_study(source, out_dir, step, cancel, options)
            return deidentify_files(list(source), out_dir, step, cancel, options)

        job = self._submit("deid", "De-identified copy", out_dir, work, self._deid_done)
        self.deid_job = job
        self.update_actions()
        return job

    def cancel_deid(self) -> None:
        if self.deid_job is not None:
            self.jobs.cancel(self.deid_job)

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
        from viewer.export import ExportError
        from viewer.io.image_io import ImageFileError

        def work(progress, cancel):
            try:
                return True, fn(progress, cancel)
            except (ExportError, ExportRefused, ImageFileError, OSError, ValueError) as exc:  # one line for the user
                return False, str(exc) or type(exc).__name__

        entry = _Job(kind, what, path, on_done)
        deid = kind == "deid"
        message = f"De-identifying into {path}…" if deid else f"Writing {os.path.basename(path)}…"
        job = self.jobs.submit(work, lambda outcome: self._on_finished(entry, outcome), message, cancellable=deid,
                               label="De-identified copy" if deid else "", cancel_text="Cancel copy",
                               cancel_tip="Stop the de-identified copy (the files already written are complete)",
                               on_failed=lambda text: self._on_failed(entry, text),
                               on_cancelled=lambda: self._end(entry))
        entry.job = job
        self._jobs[job] = entry
        self.last_dir = path if deid else os.path.dirname(path)
        return job

    def _saved(self, path: str, extra: str = "") -> None:
        self.notices.saved(path, extra)

    def _end(self, entry: _Job) -> None:
        self._jobs.pop(entry.job, None)
        if entry.job == self.deid_job:
            self.deid_job = None
            self.update_actions()

    def _on_finished(self, entry: _Job, outcome) -> None:
        self._end(entry)
        ok, value = outcome
        if not ok:
            self._fail(entry, value)
            return None
        entry.on_done(value)
        self.finished.emit(entry.kind, value)

    def _on_failed(self, entry: _Job, message: str) -> None:  # an unexpected error (the worker printed it)
        self._end(entry)
        self._fail(entry, message)

    def _fail(self, entry: _Job, message: str) -> None:
        text = f"{entry.what} not written: {message}"
        if entry.kind == "deid":
            text = f"No de-identified copy: {message}"
        self._report(text)
        self.failed.emit(entry.kind, text)

    def _deid_done(self, report) -> None:
        summary = deid_summary(report)
        self.notices.info(f"De-identified copy in {report.out_dir}: {summary}")
        if not self.parent_widget.isVisible():  # the window was closed while the copy ran (and stopped it)
            return None
        reasons = Counter(s.reason for s in report.skipped)
        lines = [f"{summary}.", f"Folder: {report.out_dir}"]
        if report.cancelled:
            lines.append("The files written before the copy was cancelled are complete.")
        if report.skipped and len(report.skipped) <= 10:  # a few: each file with its reason
            lines.append("Skipped:")
            lines += [f"• {s.path}: {s.reason}" for s in report.skipped]
        elif reasons:
            lines.append("Skipped:")
            lines += [f"• {n} × {reason}" for reason, n in reasons.most_common(8)]
            if len(reasons) > 8:
                lines.append(f"• … {len(reasons) - 8} other reasons (see the details)")
        details = "\n".join(f"{s.path}: {s.reason}" for s in report.skipped)
        self.message_box = self.notices.show_box("De-identified copy", "\n".join(lines), QMessageBox.Information,
                                                 details)
