"""The main window's AI: the AI menu (Run AI…, Ctrl+R; :data:`AI_ACTIONS`), its toolbar button, progress and
Cancel in the status bar (through the jobs service), the findings dock, and the path of a result into the session.

A run is built from the session's current volume — or, for a 2D series, its first image as a one-slice volume
(``ai_bridge.volume_from_image``; classification models only) — and handed to the one AI
thread (``AiService``). Its label map and markers are built on that thread
(counting per-label volumes passes over every voxel); the GUI thread only adds
them to the session, so the overlays, the legend (with mL) and the 3D surfaces
follow through their session subscriptions. A classification model's answer
(``result.classification``) becomes ``Session.add_classification``: the findings panel shows its table.
A result whose job is no longer current (a newer run started, another series was opened, the user cancelled) is
dropped, and the status bar says so.

A model whose weights are TorchScript (``manifest.contains_code``) is a program: before its first run from a folder
the user is asked (:meth:`AiController.ask_code_permission`, Yes/No); the answer is remembered per folder for the
session, and an allowed run's request lists the folder in ``allow_code_in`` (the engine refuses it otherwise).
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

from PySide6.QtCore import QObject, QSettings, Qt, QTimer
from PySide6.QtWidgets import QDockWidget, QMessageBox

from ai.api import CONTAINS_CODE_NOTE
from ai.registry import ManifestError  # manifests only: no torch, no runner is imported
from viewer.core.ai_bridge import (
    classified_from_result,
    layers_from_result,
    modality_mismatch,
    request_from_volume,
    volume_from_image,
)
from viewer.qt.actions import ActionSpec
from viewer.qt.dialogs.ai_dialog import RunAiDialog
from viewer.qt.model_folders import ModelFolders
from viewer.qt.panels.findings_panel import FindingsPanel

PROGRESS_STEPS = 1000  # the status bar's progress resolution of a run

#: the AI menu's entries (and Run AI… on the reading toolbar)
AI_ACTIONS = [
    ActionSpec("ai.run", "&Run AI…", "open_dialog", menu="AI#run", toolbar="reading#ai", shortcut="Ctrl+R",
               status_tip="Run a segmentation, detection or classification model on the open series",
               tip="Run AI on the open series (Ctrl+R)"),
    ActionSpec("ai.cancel", "&Cancel AI run", "cancel_current", menu="AI#run"),
    ActionSpec("ai.add_model_folder", "Add &model folder…", "add_model_folder", menu="AI#models",
               status_tip="Add your own model: a folder with model.toml and TorchScript, safetensors or ONNX "
                          "weights, or an nnU-Net v2 results folder"),
    ActionSpec("ai.train", "&Train model…", "open_train_dialog", menu="AI#models",
               status_tip="Train radview's 3D U-Net on a folder of labelled cases (in a child process)"),
]


@dataclass
class _Job:
    model_id: str
    name: str
    volume: object  # what the run was made on: the session's volume, or its 2D series
    manifest: object
    submitted: float
    dropped: str = ""  # why its result no longer counts ("" while it is current)


class AiController(QObject):
    """The AI of a window: ``session``, ``tasks`` (the jobs service: progress and Cancel), ``notices``,
    ``actions`` (the action registry), ``dock_host`` (the main window: the findings dock, dialogs). The AI thread
    starts on first use; ``jobs``: its runs by job id."""

    def __init__(self, session, tasks, notices, actions, dock_host, settings: QSettings | None = None,
                 registry_factory=None, service_factory=None):
        super().__init__(dock_host)
        self.session, self.tasks, self.notices = session, tasks, notices
        self.dock_host = dock_host
        self.settings = settings
        self._registry_factory = registry_factory
        self.model_folders = ModelFolders(self.settings)
        self._service_factory = service_factory
        self._service = None
        self.jobs: dict[int, _Job] = {}
        self.current_job: int | None = None
        self.dialog = None
        self.train_dialog = None  # AI → Train model…
        self.last_status = ""
        self._docks_widened = False
        self.code_allowed: dict[str, bool] = {}  # model folder -> the user's answer (this session)

        made = actions.add(AI_ACTIONS, target=self)
        self.run_action, self.cancel_action = made["ai.run"], made["ai.cancel"]
        self.add_folder_action = made["ai.add_model_folder"]
        self.menu = actions.menu("AI")
        self.findings = FindingsPanel(self.session)
        self.findings_dock = QDockWidget("Findings", dock_host)
        self.findings_dock.setObjectName("Findings")
        self.findings_dock.setWidget(self.findings)
        self.findings_dock.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetFloatable)
        dock_host.addDockWidget(Qt.RightDockWidgetArea, self.findings_dock)
        self.session.volume_loaded.connect(self._on_volume_changed)
        self.session.volume_cleared.connect(self._on_volume_changed)
        self.session.images_loaded.connect(self._on_volume_changed)
        self.session.images_cleared.connect(self._on_volume_changed)
        self._sync_actions()

    # --- the service (AI thread), created on first use -----------------------------------------------
    @property
    def service(self):
        if self._service is None:
            if self._service_factory is not None:
                self.service = self._service_factory()
            else:
                from viewer.qt.controllers.ai_service import AiService

                self.service = AiService(self)
        return self._service

    @service.setter
    def service(self, service) -> None:
        if self._service is service:
            return
        if self._service is not None:
            self._service.shutdown()
        self._service = service
        service.started.connect(self._on_started)
        service.progressed.connect(self._on_progressed)
        service.finished.connect(self._on_finished)
        service.failed.connect(self._on_failed)
        service.cancelled.connect(self._on_cancelled)

    @property
    def has_service(self) -> bool:
        return self._service is not None

    def registry(self):
        if self._registry_factory is not None:
            return self._registry_factory()
        return self.model_folders.registry()

    def add_model_folder(self, path: str | None = None):
        """Check and remember a model folder (asks for one when ``path`` is None); return its manifest or None."""
        path = path or self.model_folders.ask_folder(self.dock_host)
        if not path:
            return None
        try:
            manifest = self.model_folders.add_folder(path)
        except ManifestError as exc:
            self._report(f"Not added: {exc}")
            return None
        self._set_status(f"Added model '{manifest.name}' ({manifest.method}); AI → Run AI… runs it")
        if self._opened() is not None and self._registry_factory is None:
            dialog = self.open_dialog()
            if dialog is not None:
                dialog.select_model(manifest.id)
        return manifest

    def open_train_dialog(self):
        """AI → Train model… (non-modal; "Add to models" adds the result to the model folders Run AI lists)."""
        from viewer.qt.dialogs.train_model import TrainModelDialog

        if self.train_dialog is None:  # one per window: it keeps its run (and its curve) while hidden
            self.train_dialog = TrainModelDialog(self.model_folders, self.dock_host,
                                                 on_added=lambda m: self._set_status(f"Added model '{m.name}'"))
        self.train_dialog.show()
        self.train_dialog.raise_()
        return self.train_dialog

    def warm_up(self) -> None:
        """Start the engine's child process in the background, so the first run starts quickly."""
        self.service.warm_up()

    def shutdown(self) -> None:
        """Cancel any run, stop the AI thread and close the engine (the window is closing)."""
        if self.dialog is not None:
            self.dialog.close()
        if self.train_dialog is not None:
            self.train_dialog.shutdown()  # a training still running is cancelled (its child interrupted)
        if self.current_job is not None:
            self.tasks.end(self.current_job)
        self.current_job = None
        if self._service is not None:
            self._service.shutdown()

    # --- running ---------------------------------------------------------------------------------------
    def _sync_actions(self) -> None:
        has_series = self.session.volume is not None or self.session.images is not None
        self.run_action.setEnabled(has_series)
        self.cancel_action.setEnabled(self.current_job is not None)

    def _opened(self):
        """What a run is made on: the session's volume, else its 2D series (None when nothing is open)."""
        return self.session.volume if self.session.volume is not None else self.session.images

    def _subject(self):
        """The volume a run takes: the session's, else the 2D series' first image as a one-slice volume."""
        if self.session.volume is not None:
            return self.session.volume
        if self.session.images is not None and self.session.images.images:
            return volume_from_image(self.session.images, 0)
        return None

    def open_dialog(self):
        """The Run AI dialog (window-modal, not blocking); accepting it runs the chosen model."""
        subject = self._subject()
        if subject is None:
            self._report("Open a series first: AI runs on the open series.")
            return None
        registry = self.registry()
        if self.dialog is not None:
            self.dialog.close()
        dialog = RunAiDialog(registry.models(), subject, self.settings, self.dock_host,
                             problems=list(getattr(registry, "problems", [])))
        dialog.setAttribute(Qt.WA_DeleteOnClose)
        dialog.accepted.connect(lambda d=dialog: self.run_model(d.model_id, d.device, d.options or None))
        dialog.destroyed.connect(lambda *_: setattr(self, "dialog", None) if self.dialog is dialog else None)
        self.dialog = dialog
        dialog.open()
        QTimer.singleShot(0, self.warm_up)  # the engine starts while the user chooses (after the dialog shows)
        return dialog

    def run_model(self, model_id: str, device: str = "auto", options=None) -> int | None:
        """Run ``model_id`` on the current volume (or 2D image); return the job id (None if it could not start)."""
        opened, volume = self._opened(), self._subject()
        if volume is None:
            self._report("Open a series first: AI runs on the open series.")
            return None
        try:
            manifest = self.registry().get(model_id)
        except Exception as exc:  # noqa: BLE001 - an unknown model: the message names the known ones
            self._report(f"AI: {exc}")
            return None
        reason = modality_mismatch(manifest, volume)
        if reason:
            self._report(f"{manifest.name} cannot run on this series: {reason}.")
            return None
        if manifest.contains_code:  # TorchScript is a program: the user decides, once per folder and session
            if not self._code_permitted(manifest):
                self._set_status(f"{manifest.name} was not run: it {CONTAINS_CODE_NOTE}, and you did not allow "
                                 f"it for its folder {manifest.folder} (asked once per session)")
                return None
            if self._opened() is not opened:  # the series changed while the question was open
                self._report(f"{manifest.name} was not run: the open series changed; run it again.")
                return None
        if ModelFolders.is_user_model(manifest) and manifest.path:  # the engine process learns the folder
            options = {**(options or {}), "model_folder": manifest.path}
        try:
            request = request_from_volume(volume, model_id, device, options)
        except ValueError as exc:
            self._report(f"{manifest.name} cannot run on this series: {exc}")
            return None
        if manifest.contains_code:  # its folder is known to be allowed (asked above)
            request = dataclasses.replace(request, allow_code_in=frozenset({manifest.folder}))
        if self.current_job is not None:  # a newer run supersedes the running one
            self._drop(self.current_job, "a newer AI run was started")
        geometry = volume.geometry

        meta = dict(volume.meta or {})

        def build_layers(result, geometry=geometry, manifest=manifest, meta=meta):  # on the AI thread
            classified = classified_from_result(result, meta)
            if classified is not None:  # a classification: no layers
                return result, None, None, classified
            return (result, *layers_from_result(result, geometry, manifest), None)

        job = self.service.submit(request, build_layers)
        self.jobs[job] = _Job(model_id, manifest.name, opened, manifest, time.monotonic())
        self.current_job = job
        self.tasks.track(job, f"{manifest.name}: starting…", self.cancel_current, "Cancel AI",
                        "Stop the AI run (nothing is added)")
        self._show_progress(job, f"{manifest.name}: starting…", 0.0)
        self._sync_actions()
        return job

    def _code_permitted(self, manifest) -> bool:
        """Whether the user allows ``manifest``'s code to run (asked once per folder and session)."""
        folder = manifest.folder
        if folder not in self.code_allowed:
            self.code_allowed[folder] = bool(self.ask_code_permission(manifest))
        return self.code_allowed[folder]

    def ask_code_permission(self, manifest) -> bool:
        """Ask the user (modal Yes/No) whether ``manifest``'s TorchScript may run; tests replace this seam."""
        answer = QMessageBox.question(
            self.dock_host, "Run a model that contains code?",
            f"{manifest.name} {CONTAINS_CODE_NOTE}.\n\nFolder: {manifest.folder}\n\nRun it only if you trust "
            "where it came from. Allow TorchScript from this folder for this session?",
            QMessageBox.Yes | QMessageBox.No, QMessageBox.No)
        return answer == QMessageBox.Yes

    def cancel_current(self) -> None:
        """The Cancel button: stop the current run; control returns at once (nothing will be added)."""
        job = self.current_job
        if job is None:
            return
        self._drop(job, "cancelled")
        self._set_status(f"{self.jobs[job].name}: cancelling…" if job in self.jobs else "Cancelling…")

    def _drop(self, job: int, why: str) -> None:
        info = self.jobs.get(job)
        if info is not None and not info.dropped:
            info.dropped = why
        if job == self.current_job:
            self.current_job = None
            self.tasks.end(job)
            self._sync_actions()
        if self._service is not None:
            self._service.cancel(job)

    def _on_volume_changed(self, *_args) -> None:
        job = self.current_job
        if job is not None and self.jobs.get(job) is not None and self.jobs[job].volume is not self._opened():
            name = self.jobs[job].name
            self._drop(job, "another series was opened")
            self._set_status(f"{name}: AI run stopped and its result dropped (another series was opened)")
        self._sync_actions()

    # --- results (GUI thread) -----------------------------------------------------------------------------
    def _on_started(self, job: int) -> None:
        if job == self.current_job:
            self._show_progress(job, f"{self.jobs[job].name}: running…", 0.0)

    def _on_progressed(self, job: int, fraction: float, message: str) -> None:
        if job != self.current_job:
            return
        name = self.jobs[job].name
        self._show_progress(job, f"{name}: {message}" if message else f"{name}: running…", fraction)

    def _finish(self, job: int) -> _Job | None:
        info = self.jobs.pop(job, None)
        if job == self.current_job:
            self.current_job = None
            self.tasks.end(job)
            self._sync_actions()
        return info

    def _on_finished(self, job: int, payload) -> None:
        current = job == self.current_job
        info = self._finish(job)
        if info is None:
            return
        why = info.dropped or ("" if current else "a newer AI run was started")
        if not why and self._opened() is not info.volume:
            why = "another series was opened"
        if why:
            self._set_status(f"{info.name}: result dropped ({why})")
            return
        result, label_layer, marker_layer, classified = payload
        if classified is not None:
            self._show_classification(info, result, classified)
            return
        added = []
        try:
            for layer in (label_layer, marker_layer):
                if layer is not None:
                    self.session.add_layer(layer)
                    added.append(layer)
        except Exception as exc:  # noqa: BLE001 - e.g. a label map on another grid: refused, never misaligned
            for layer in added:
                self.session.remove_layer(layer)
            self._report(f"{info.name}: the result was not shown: {exc}")
            return
        prov = result.provenance
        parts = [f"{info.name}: done in {prov.run_time_s:.1f} s on {prov.device}"]
        if label_layer is not None:
            parts.append(f"{len(label_layer.volumes_ml)} structure(s)")
        n = len(result.detections)
        if marker_layer is not None or "detections" in getattr(info.manifest, "outputs", ()):
            parts.append(f"{n} finding(s)")
        text = ", ".join(parts)
        if result.messages:
            text += " — " + "; ".join(result.messages)
        self._set_status(text)
        if not self._docks_widened:  # room for the findings' columns and the legend (once; the user may resize)
            self._docks_widened = True
            if self.findings_dock.width() < 430:
                self.dock_host.resizeDocks([self.findings_dock], [430], Qt.Horizontal)
        if n or result.structures:
            self.findings_dock.show()
            self.findings_dock.raise_()

    def _show_classification(self, info: _Job, result, classified) -> None:
        """A classifier's answer: into the session (the findings panel shows its table), words in the status bar."""
        try:
            self.session.add_classification(classified)
        except RuntimeError as exc:
            self._report(f"{info.name}: the result was not shown: {exc}")
            return
        prov = result.provenance
        text = (f"{info.name}: done in {prov.run_time_s:.1f} s on {prov.device}, "
                f"{classified.classification.summary()} — AI result, not reviewed, not a diagnosis")
        extra = [m for m in result.messages if not m.startswith("class probabilities")]
        if extra:
            text += " — " + "; ".join(extra)
        self._set_status(text)
        if not self._docks_widened:
            self._docks_widened = True
            if self.findings_dock.width() < 430:
                self.dock_host.resizeDocks([self.findings_dock], [430], Qt.Horizontal)
        self.findings_dock.show()
        self.findings_dock.raise_()

    def _on_failed(self, job: int, message: str) -> None:
        current = job == self.current_job
        info = self._finish(job)
        name = info.name if info is not None else "AI"
        if current and info is not None and not info.dropped:
            self._report(f"{name} failed: {message}")
        else:
            self._set_status(f"{name}: stopped ({info.dropped if info and info.dropped else message})")

    def _on_cancelled(self, job: int) -> None:
        info = self._finish(job)
        if info is None:
            return
        if info.dropped in ("", "cancelled"):
            self._set_status(f"{info.name}: AI run cancelled")
        else:
            self._set_status(f"{info.name}: AI run stopped, result dropped ({info.dropped})")

    # --- status bar -------------------------------------------------------------------------------------
    def _show_progress(self, job: int, text: str, fraction: float) -> None:
        self.tasks.set_progress(job, round(PROGRESS_STEPS * min(max(fraction, 0.0), 1.0)), PROGRESS_STEPS, text)

    @property
    def running(self) -> bool:
        return self.current_job is not None

    def _set_status(self, text: str) -> None:
        self.last_status = text
        self.notices.info(text)

    def _report(self, text: str) -> None:
        self.last_status = text
        self.notices.error(text)
