"""The PACS in the window: File → Query/Retrieve…, File → Export → Send to PACS…, Settings → DICOM nodes…, and the
study browser's local study database.

Every network call runs as a job of the window's jobs service (progress and Cancel in the status bar) through
:mod:`viewer.logic.pacs`; the GUI thread only shows what comes back. A failure is said in words (refused, timed
out, rejected, what arrived and what did not), in the dialog that asked and in the status bar, never silently.

**Retrieve.** The Query/Retrieve dialog (:mod:`viewer.qt.dialogs.query_retrieve`) hands over a
:class:`~viewer.qt.dialogs.query_retrieve.RetrieveOrder`; :meth:`PacsActions.retrieve` fetches it series by series
(a study's series are asked for first; images before SR/SEG, the largest first) by C-GET, C-MOVE (into a receiver
started for the job on radview's local AE) or WADO-RS, into the local study database. The arriving count moves the
progress bar; with "open as it arrives", the first image that arrives is shown at once
(:class:`FirstImage`, a preview of the job) and the first image series opens in the window as soon as it is
complete (:class:`SeriesArrived`), from its folder in the store, while the rest of the selection still arrives;
at the end the study browser lists every series of that study. Cancel keeps what arrived; a retry fetches the rest.

**Send.** :class:`~viewer.qt.dialogs.dicom_nodes.SendDialog` offers the DICOM files this window's exports wrote
(SEG, SR, the de-identified copy's folder), the screenshots it exported — sent as DICOM Secondary Capture images
in the study they show (:mod:`viewer.logic.pacs_capture`) — the open series' files, or any file or folder; C-STORE
or STOW-RS in a job, and the result names each file that failed, with the reason.

**Receive.** With "Receive studies" on, radview's receiver runs while the window is open
(:class:`~viewer.qt.controllers.pacs_receiver.PacsReceiver`, started in the background at start-up and again when
the settings change); what the configured nodes send arrives in the local study database, and the study browser
and the status bar show it as it comes. A C-MOVE of the window's goes into that receiver when it runs.
:meth:`PacsActions.close` (the window's closeEvent) stops it.

**Settings.** :class:`~viewer.qt.dialogs.dicom_nodes.DicomNodesDialog` edits ``pacs-nodes.json``
(:mod:`viewer.net.nodes`; ``$RADVIEW_PACS_NODES`` or the user config folder); its Test runs a C-ECHO or a QIDO-RS.
The local study database (:mod:`viewer.net.study_db`; ``$RADVIEW_STUDY_DB`` or the user data folder) is opened on
first use — at start-up only when the receiver is to run, and then off the GUI thread.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QMessageBox

from viewer.net.errors import NetError, SettingsError
from viewer.net.nodes import NodeBook
from viewer.qt.actions import ActionSpec
from viewer.qt.controllers.pacs_receiver import PacsReceiver
from viewer.qt.dialogs.dicom_nodes import DicomNodesDialog, SendChoice, SendDialog, submit_net
from viewer.qt.dialogs.query_retrieve import (
    NON_IMAGE,
    QueryRetrieveDialog,
    RetrieveOrder,
    RetrieveTarget,
    image_first,
    series_target,
)
from viewer.qt.jobs import CANCELLED_TEXT

#: File → Query/Retrieve…, File → Export → Send to PACS…, Settings → DICOM nodes…
PACS_ACTIONS = [
    ActionSpec("file.query_retrieve", "&Query/Retrieve…", "show_query_retrieve", menu="File#open",
               status_tip="Search a PACS or DICOMweb server and retrieve studies into the local study database"),
    ActionSpec("export.send_pacs", "Send to &PACS…", "show_send", menu="File/Export#formats",
               tip="Send the DICOM files the exports wrote (SEG, SR, de-identified copy), the screenshots (as DICOM "
                   "Secondary Capture), or the open series, to a PACS node"),
    ActionSpec("settings.dicom_nodes", "&DICOM nodes…", "show_nodes", menu="Settings#pacs",
               status_tip="The PACS and DICOMweb nodes radview talks to, and its own AE title"),
]
SHOWN_FAILURES = 20  # failed or missing instances listed in a message's details, at most
RECENT_EXPORTS = 10  # exports the send dialog offers, newest first


# ------------------------------------------------------------------------------------------------ previews
@dataclass(frozen=True)
class FirstImage:
    """The first image instance that arrived (a preview of the retrieve job)."""

    study_uid: str
    series_uid: str
    image: np.ndarray
    description: str = ""


@dataclass(frozen=True)
class SeriesArrived:
    """One target of the retrieve ended (a preview of the job): its result and its folder in the store."""

    target: RetrieveTarget
    result: Any  # viewer.net.results.RetrieveResult
    folder: str

    @property
    def has_images(self) -> bool:
        return (self.target.modality.upper() not in NON_IMAGE
                and bool(self.result.arrived or self.result.already_present))


@dataclass
class RetrieveRun:
    """What one retrieve job did: the results of the targets that ended, the error that stopped it, what opened."""

    order: RetrieveOrder
    method: str
    started: float = field(default_factory=time.monotonic)
    targets: list[RetrieveTarget] = field(default_factory=list)
    results: list = field(default_factory=list)
    error: str = ""
    auto_open: bool = True
    preview_shown: bool = False
    opened: tuple[str, str, str] | None = None  # (study UID, series UID, folder) opened in the window
    first_image_s: float | None = None
    cancelled: bool = False

    @property
    def study_uids(self) -> set[str]:
        return {t.study_uid for t in self.order.targets}


def first_image(path: str) -> np.ndarray | None:
    """The pixels of one instance (its first frame), or None when it has none that can be read."""
    try:
        import pydicom

        ds = pydicom.dcmread(path)
        if "PixelData" not in ds:
            return None
        image = ds.pixel_array
    except Exception:  # a preview only: the series still opens (or says why not) once it has arrived
        return None
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if image.ndim == (4 if samples > 1 else 3):
        image = image[0]
    return np.ascontiguousarray(image)


class _Arrivals:
    """Counts the instances as they arrive (network and writer threads) and moves the job's progress; hands the
    first image that arrives to the GUI as a preview."""

    def __init__(self, progress, run: RetrieveRun, node_name: str):
        self.progress, self.run, self.node_name = progress, run, node_name
        self.lock = threading.Lock()
        self.count = 0
        self.present = 0
        self.total = 0
        self.preview_sent = not run.order.open_first

    def text(self, n: int) -> str:
        if self.total:
            return f"Retrieving from {self.node_name}: {n} of {self.total} instances"
        return f"Retrieving from {self.node_name}: {n} instances"

    def tell(self) -> None:
        with self.lock:
            n = self.count + self.present
            if self.total:  # the counts the node announced may fall short (a count it did not give)
                self.total = max(self.total, n)
            total = self.total
        self.progress(n, total, self.text(n))

    def already(self, n: int) -> None:
        with self.lock:
            self.present += n
        self.tell()

    def stored(self, item) -> None:
        header = item.header
        with self.lock:
            self.count += 1
            preview = not self.preview_sent and header.modality.upper() not in NON_IMAGE
            if preview:
                self.preview_sent = True
        self.tell()
        if not preview:
            return
        image = first_image(item.path)
        if image is None:
            with self.lock:
                self.preview_sent = False  # the next image that arrives, then
            return
        if self.run.first_image_s is None:
            self.run.first_image_s = time.monotonic() - self.run.started
        self.progress.preview(FirstImage(header.study_uid, header.series_uid, image, header.series_description))


# ------------------------------------------------------------------------------------------------ controller
class PacsActions(QObject):
    """Query/Retrieve, Send to PACS and the DICOM node settings of one window.

    ``session``, ``jobs`` (the jobs service), ``notices`` (the notifier), ``registry`` (the actions), ``opener``
    (:class:`~viewer.qt.controllers.study_opener.StudyOpener`: what opens a retrieved series), ``browser`` (the study
    browser: its local database section), ``parent``: the window (dialogs open over it; its ``exports``, when it has
    them, tell which files were exported). ``nodes_path`` / ``database_root``: default the user's (or the
    environment's).
    """

    retrieve_started = Signal(str)
    retrieve_progressed = Signal(int, int, str)
    retrieve_ended = Signal(bool, str)  # ok, what happened
    series_opened = Signal(str, str)  # study UID, series UID opened in the window by a retrieve
    book_changed = Signal(object)

    def __init__(self, session, jobs, notices, registry, opener, browser, parent, nodes_path=None,
                 database_root=None):
        super().__init__(parent)
        self.session, self.jobs, self.notices = session, jobs, notices
        self.opener, self.browser, self.parent_widget = opener, browser, parent
        self.nodes_path, self.database_root = nodes_path, database_root
        self._book: NodeBook | None = None
        self.book_problem = ""
        self._db = None
        self._db_lock = threading.Lock()
        self.exported: list[SendChoice] = []  # newest first
        self.screenshots: dict = {}  # picture path → viewer.logic.pacs_capture.ScreenshotSource
        self.qr_dialog: QueryRetrieveDialog | None = None
        self.nodes_dialog: DicomNodesDialog | None = None
        self.send_dialog: SendDialog | None = None
        self.retrieve_job: int | None = None
        self.run: RetrieveRun | None = None  # the retrieve running, or the last one
        self.send_job: int | None = None
        self.last_send = None  # the last SendResult
        self._pending_index = None  # (whole-study index, the series folder it replaces) once that series is shown
        self.actions = registry.add(PACS_ACTIONS, target=self)
        notices.exported.connect(self._exported)
        exports = getattr(parent, "exports", None)
        if exports is not None:
            exports.finished.connect(self._export_finished)
        session.volume_loaded.connect(self._volume_loaded)
        jobs.progressed.connect(self._job_progressed)
        browser.set_local_database(self.database)
        browser.local_study_requested.connect(self.open_local)
        status_bar = parent.statusBar() if hasattr(parent, "statusBar") else notices.status_label.parentWidget()
        self.receiver = PacsReceiver(jobs, notices, status_bar, self.database, browser, self)
        self.receiver.state_changed.connect(self._receiver_state)
        self._start_receiver()

    def _start_receiver(self) -> None:
        """At start-up: when the node settings exist, read them off the GUI thread and start the receiver if they
        say "Receive studies"."""
        from viewer.net.nodes import default_path

        path = self.nodes_path if self.nodes_path is not None else default_path()
        if not os.path.exists(path):
            return

        def work(progress, cancel):
            from viewer.net.nodes import load_nodes

            try:
                return load_nodes(path), ""
            except SettingsError as exc:
                return None, str(exc)

        def loaded(outcome) -> None:
            book, problem = outcome
            if self._book is not None:  # read (or saved) meanwhile on the GUI thread
                book = self._book
            elif book is None:
                self._book = NodeBook()
                self.book_problem = (f"The DICOM node settings could not be read: {problem}. Saving the settings "
                                     f"replaces them.")
                self.notices.error(self.book_problem, dialog=False)
                return
            else:
                self._book = book
            self.receiver.apply(book)

        self.jobs.submit(work, loaded, None, cancellable=False)

    def _receiver_state(self, listening, text: str) -> None:
        if self.nodes_dialog is not None:
            self.nodes_dialog.show_receiver_state(listening, text)

    # --- services ---------------------------------------------------------------------------------------------
    def book(self) -> NodeBook:
        """The node settings (read on first use; unreadable settings are reported and an empty book is used)."""
        if self._book is None:
            from viewer.net.nodes import load_nodes

            try:
                self._book = load_nodes(self.nodes_path)
            except SettingsError as exc:
                self._book = NodeBook()
                self.book_problem = (f"The DICOM node settings could not be read: {exc}. Saving the settings "
                                     f"replaces them.")
                self.notices.error(self.book_problem)
        return self._book

    def set_book(self, book: NodeBook) -> None:
        self._book, self.book_problem = book, ""
        for dialog in (self.qr_dialog, self.send_dialog):
            if dialog is not None:
                dialog.set_book(book)
        self.receiver.apply(book)
        self.book_changed.emit(book)

    def database(self):
        """The local study database, opened on first use (from any thread)."""
        with self._db_lock:
            if self._db is None:
                from viewer.net.study_db import StudyDatabase

                self._db = StudyDatabase(self.database_root)
            return self._db

    # --- Settings → DICOM nodes… ----------------------------------------------------------------------------------
    def show_nodes(self) -> DicomNodesDialog:
        if self.nodes_dialog is not None and self.nodes_dialog.isVisible():
            self.nodes_dialog.raise_()
            self.nodes_dialog.activateWindow()
            return self.nodes_dialog
        book = self.book()
        receiver = self.receiver
        state = (None if receiver.busy else receiver.listening, receiver.state_text)
        dialog = self.nodes_dialog = DicomNodesDialog(book, self.nodes_path, self.jobs, self.parent_widget,
                                                      problem=self.book_problem, receiver_state=state)
        dialog.saved.connect(self._nodes_saved)
        dialog.show()
        return dialog

    def _nodes_saved(self, book: NodeBook) -> None:
        self.set_book(book)
        self.notices.info(f"DICOM nodes saved: {', '.join(n.name for n in book.nodes) or 'none'}")

    # --- File → Query/Retrieve… ----------------------------------------------------------------------------------
    def show_query_retrieve(self) -> QueryRetrieveDialog:
        dialog = self.qr_dialog
        if dialog is None:
            dialog = self.qr_dialog = QueryRetrieveDialog(self.book(), self.jobs, self.parent_widget)
            dialog.retrieve_requested.connect(self.retrieve)
            dialog.nodes_requested.connect(self.show_nodes)
            dialog.cancel_requested.connect(self.cancel_retrieve)
            self.retrieve_started.connect(dialog.retrieve_started)
            self.retrieve_progressed.connect(dialog.retrieve_progress)
            self.retrieve_ended.connect(dialog.retrieve_ended)
            if self.retrieve_job is not None:
                dialog.retrieve_started("Retrieving…")
        dialog.show()
        dialog.raise_()
        dialog.activateWindow()
        return dialog

    def retrieve(self, order: RetrieveOrder) -> int | None:
        """Fetch ``order`` into the local study database in a job (see the module's docstring)."""
        from viewer.logic import pacs
        from viewer.net.results import RetrieveCancelled

        if self.retrieve_job is not None:
            self.notices.error("A retrieve is still running: wait for it, or cancel it first.", dialog=False)
            return None
        book = self.book()
        node = order.node
        method = order.method or ("get" if node.is_dimse else "wado")
        run = self.run = RetrieveRun(order, method, auto_open=order.open_first)
        calling = book.local.ae_title

        def targets(cancel) -> list[RetrieveTarget]:
            out: list[RetrieveTarget] = []
            for t in order.targets:
                if t.series_uid:
                    out.append(t)
                else:  # a study: its series, images first, so that the one to show arrives first
                    out += [series_target(r) for r in image_first(pacs.series_of(node, t.study_uid, calling,
                                                                                 cancel))]
            return list(dict.fromkeys(out))

        running = self.receiver.serving(book, node) if method == "move" else None

        def work(progress, cancel):
            arrivals = _Arrivals(progress, run, node.name)
            scp = own = None
            try:
                db = self.database()
                run.targets = targets(cancel)
                arrivals.total = sum(t.n_instances or 0 for t in run.targets)
                arrivals.tell()
                if method == "move":  # radview's running receiver, or one for this job accepting this node only
                    scp = running if running is not None and running.running else None
                    if scp is None:
                        scp = own = pacs.start_receiver(NodeBook((node,), book.local), database=db)
                for target in run.targets:
                    if cancel.is_set():
                        run.cancelled = True
                        break
                    request = pacs.RetrieveRequest(node, target.study_uid, target.series_uid, method, calling,
                                                   local=book.local)
                    try:
                        result = pacs.retrieve(request, cancel=cancel, on_instance=arrivals.stored, database=db,
                                               scp=scp)
                    except RetrieveCancelled as exc:
                        run.results.append(exc.result)
                        run.cancelled = True
                        break
                    run.results.append(result)
                    arrivals.already(len(result.already_present))
                    progress.preview(SeriesArrived(target, result, db.location(target.study_uid,
                                                                               target.series_uid)))
            except (NetError, SettingsError, OSError) as exc:
                run.error = str(exc) or type(exc).__name__
            finally:
                if own is not None:
                    own.stop()
            return run

        what = "the selected study" if len(order.targets) == 1 and not order.targets[0].series_uid else (
            f"{len(order.targets)} item(s)")
        text = f"Retrieving {what} from {node.label} by {method.upper() if method != 'wado' else 'WADO-RS'}…"
        self.retrieve_job = self.jobs.submit(
            work, lambda value: self._retrieved(run, value), text, label=f"Retrieving from {node.name}",
            cancel_text="Cancel retrieve", cancel_tip="Stop the retrieve (what arrived is kept; retrieve again for "
                                                      "the rest)",
            on_preview=lambda value: self._previewed(run, value),
            on_failed=lambda message: self._retrieve_failed(run, message),
            on_cancelled=lambda: self._retrieve_cancelled(run))
        self.retrieve_started.emit(text)
        return self.retrieve_job

    def _job_progressed(self, job: int, done: int, total: int, text: str) -> None:
        if job == self.retrieve_job and job is not None:
            self.retrieve_progressed.emit(done, total, text)

    def cancel_retrieve(self) -> None:
        if self.retrieve_job is not None:
            self.jobs.cancel(self.retrieve_job)

    def _volume_loaded(self, volume) -> None:
        """Another study opened while a retrieve runs: the retrieve no longer opens anything by itself. The series a
        retrieve opened is shown: the browser lists its whole study."""
        if self._pending_index is not None:
            self._apply_study_index()
        run = self.run
        if run is not None and self.retrieve_job is not None and run.auto_open:
            if (volume.meta or {}).get("study_uid") not in run.study_uids:
                run.auto_open = False

    def _previewed(self, run: RetrieveRun, value) -> None:
        if run is not self.run:
            return
        if isinstance(value, FirstImage):
            if run.auto_open and run.opened is None and not run.preview_shown:
                run.preview_shown = True
                self.opener.drop_load()
                self.opener.layout.show_preview(0, value.image)
                self.notices.info(f"The first image of {value.description or 'the series'} arrived; the rest is "
                                  f"arriving…")
            return
        if not isinstance(value, SeriesArrived):
            return
        self.browser.refresh_local()
        if run.auto_open and run.opened is None and value.has_images:
            run.opened = (value.target.study_uid, value.target.series_uid, value.folder)
            self.opener.open_path(value.folder, series=value.target.series_uid)
            self.series_opened.emit(value.target.study_uid, value.target.series_uid)

    def _retrieve_failed(self, run: RetrieveRun, message: str) -> None:  # an unexpected error (the worker printed it)
        run.error = message
        self._retrieved(run, run)

    def _retrieve_cancelled(self, run: RetrieveRun) -> None:
        run.cancelled = True
        self._retrieved(run, run)

    def _retrieved(self, run: RetrieveRun, _value) -> None:
        if self.retrieve_job is not None and run is self.run:
            self.retrieve_job = None
        ok, text, details = retrieve_summary(run)
        self.retrieve_ended.emit(ok, text)
        self.browser.refresh_local()
        if ok:
            self.notices.info(text)
        else:
            self.notices.error(text, dialog=False)
            if self.qr_dialog is None or not self.qr_dialog.isVisible():
                self.notices.show_box("Retrieve", text, QMessageBox.Warning, details)
        if run.opened is not None:
            self._list_whole_study(run)
        elif run.auto_open and ok and any(r.arrived or r.already_present for r in run.results):
            self.notices.info(f"{text} Nothing in it is an image series to open: see the study browser's Local "
                              f"database.")

    def _list_whole_study(self, run: RetrieveRun) -> None:
        """The retrieve opened one series' folder: the study browser now lists every series of that study in the
        store (the open series stays as it is)."""
        from viewer.logic import open_study

        study_uid, series_uid, folder = run.opened
        study_folder = os.path.dirname(folder)
        if not any(r.study_uid == study_uid and r.series_uid != series_uid for r in run.results):
            return

        def listed(index) -> None:
            if open_study.is_study_index(index):
                self._pending_index = (index, folder)
                self._apply_study_index()

        self.jobs.submit(lambda progress, cancel: open_study.open_path(study_folder, None, cancel), listed,
                         cancellable=False)

    def _apply_study_index(self) -> None:
        """Put the pending whole-study index in the browser, once the retrieved series it was listed for is shown
        (dropped when something else was opened meanwhile)."""
        if self._pending_index is None:
            return
        index, folder = self._pending_index
        opener, volume = self.opener, self.session.volume
        if opener.index is None or os.path.abspath(opener.index.root) != os.path.abspath(folder):
            self._pending_index = None  # something else was opened meanwhile
            return
        if opener.load_job is not None or volume is None:
            return  # the series is still loading: when it is shown
        self._pending_index = None
        key = (volume.meta or {}).get("series_key")
        try:
            index.find(key)
        except KeyError:
            return
        opener.index = index
        self.browser.set_index(index)
        self.browser.select_series(key)

    # --- the local study database (the study browser's section) ----------------------------------------------
    def open_local(self, folder: str, series_uid: str) -> None:
        self.opener.open_path(folder, series=series_uid or None)

    # --- File → Export → Send to PACS… ----------------------------------------------------------------------------
    def _exported(self, path: str) -> None:
        from viewer.logic.pacs_capture import is_screenshot

        if os.path.isfile(path) and _is_dicom(path):
            self._remember(SendChoice(f"{os.path.basename(path)} (exported {time.strftime('%H:%M')}, in "
                                      f"{os.path.dirname(path)})", (path,)))
        elif os.path.isfile(path) and is_screenshot(path):
            self._remember_screenshot(path)

    def _remember_screenshot(self, path: str) -> None:
        """A screenshot of a DICOM series can be sent as a Secondary Capture in that series' study: remember which
        series it showed (one of its files). A screenshot of anything else (an image file, nothing open) cannot."""
        from viewer.logic.exports import ExportRefused, dicom_entry
        from viewer.logic.pacs_capture import ScreenshotSource

        try:
            _index, entry = dicom_entry(self.session, self.opener.index)
        except ExportRefused:
            return
        if not entry.files:
            return
        what = entry.description or entry.series_uid
        self.screenshots[path] = ScreenshotSource(path, str(entry.files[0]), entry.description or "")
        self._remember(SendChoice(f"Screenshot {os.path.basename(path)} as DICOM Secondary Capture (study of {what}; "
                                  f"exported {time.strftime('%H:%M')})", (path,)))

    def _export_finished(self, kind: str, outcome) -> None:
        folder = getattr(outcome, "out_dir", None)
        if kind == "deid" and folder and os.path.isdir(str(folder)):
            self._remember(SendChoice(f"De-identified copy in {folder} (written {time.strftime('%H:%M')})",
                                      (str(folder),)))

    def _remember(self, choice: SendChoice) -> None:
        self.exported = [choice] + [c for c in self.exported if c.paths != choice.paths][:RECENT_EXPORTS - 1]

    def send_choices(self) -> list[SendChoice]:
        """The last exports (the newest ticked) and the open series' files (ticked when nothing was exported)."""
        from viewer.logic.exports import ExportRefused, dicom_entry

        choices = [SendChoice(c.label, c.paths, i == 0) for i, c in enumerate(self.exported)]
        try:
            _index, entry = dicom_entry(self.session, self.opener.index)
        except ExportRefused:
            return choices
        files = tuple(entry.files)
        if files:
            name = entry.description or entry.series_uid
            choices.append(SendChoice(f"The open series: {name} ({len(files)} files)", files, not choices))
        return choices

    def show_send(self) -> SendDialog:
        if self.send_dialog is not None:
            self.send_dialog.close()
        dialog = self.send_dialog = SendDialog(self.book(), self.send_choices(), self.parent_widget)
        dialog.send_requested.connect(self.send)
        dialog.show()
        return dialog

    def send(self, node, paths) -> int | None:
        """Send ``paths`` (files or folders) to ``node`` in a job: C-STORE, or STOW-RS for a DICOMweb node; the
        screenshots this window exported go as DICOM Secondary Capture images in the study they show."""
        from viewer.logic.pacs_capture import send_with_screenshots
        from viewer.net.nodes import check_ae_title

        if self.send_job is not None:
            self._sent_text(False, "A send is still running: wait for it, or cancel it first.")
            return None
        shots = tuple(self.screenshots[p] for p in paths if p in self.screenshots)
        files = tuple(p for p in paths if p not in self.screenshots)
        try:
            calling = check_ae_title(self.book().local.ae_title, "calling AE title")
            if not files and not shots:
                raise SettingsError("nothing to send")
        except SettingsError as exc:
            self._sent_text(False, str(exc))
            return None

        def sent(result) -> None:
            self.send_job, self.last_send = None, result
            ok, text, details = send_summary(result)
            self._sent_text(ok, text, details)

        def failed(text: str) -> None:
            self.send_job = None
            self._sent_text(False, f"Nothing sent to {node.label}: {text}" if text != CANCELLED_TEXT
                            else f"Sending to {node.label} cancelled")

        def work(progress, cancel):
            return send_with_screenshots(node, files, shots, calling, progress, cancel)

        self.send_job = submit_net(self.jobs, work, sent,
                                   failed, f"Sending to {node.label}…", label=f"Sending to {node.name}",
                                   cancel_text="Cancel send")
        return self.send_job

    def _sent_text(self, ok: bool, text: str, details: str = "") -> None:
        dialog = self.send_dialog
        if dialog is not None:
            dialog.show_result(ok, text)
        if ok:
            self.notices.info(text)
        else:
            self.notices.error(text, dialog=False)
            if dialog is None or not dialog.isVisible():
                self.notices.show_box("Send to PACS", text, QMessageBox.Warning, details)

    def close(self) -> None:
        """Stop the receiver (what is being received is written first), then close the local database. The window
        calls it from its closeEvent, once its jobs (retrieves and sends: their associations) have stopped."""
        self.receiver.close()
        with self._db_lock:
            if self._db is not None:
                self._db.close()
                self._db = None


def _is_dicom(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return head[128:132] == b"DICM"


def retrieve_summary(run: RetrieveRun) -> tuple[bool, str, str]:
    """(complete, one paragraph for the user, details: every failed and missing instance, at most a few)."""
    results = run.results
    arrived = sum(len(r.arrived) for r in results)
    present = sum(len(r.already_present) for r in results)
    failed = [f for r in results for f in r.failed]
    missing = [m for r in results for m in r.missing]
    node = run.order.node.label
    series = len({(r.study_uid, r.series_uid) for r in results})
    seconds = time.monotonic() - run.started
    done = f"{arrived} instance(s) arrived" + (f", {present} were already here" if present else "")
    done += f" ({series} series, {seconds:.1f} s)"
    if run.error:
        text = f"Retrieve from {node} failed: {run.error}"
        if arrived or present:
            text += f". Before that, {done}; retrieve again to fetch the rest."
        ok = False
    elif run.cancelled:
        text = f"Retrieve from {node} cancelled: {done}; what arrived is kept — retrieve again to fetch the rest."
        ok = False
    elif failed or missing:
        parts = [f"{len(failed)} failed" if failed else "", f"{len(missing)} missing" if missing else ""]
        text = (f"Retrieve from {node} incomplete: {done}; {' and '.join(p for p in parts if p)} — retrieve again "
                f"to fetch the rest.")
        ok = False
    else:
        text = f"Retrieved from {node}: {done}."
        ok = True
    lines = [r.summary() for r in results]
    lines += [f"failed {uid or '(no UID)'}: {reason}" for uid, reason in failed[:SHOWN_FAILURES]]
    lines += [f"missing {uid}" for uid in missing[:SHOWN_FAILURES]]
    more = len(failed) + len(missing) - 2 * SHOWN_FAILURES
    if more > 0:
        lines.append(f"… and {more} more")
    return ok, text, "\n".join(lines)


def send_summary(result) -> tuple[bool, str, str]:
    """(complete, the message, each failed file with its reason)."""
    if result.complete:
        return True, f"Sent {len(result.sent)} file(s) to {result.node} ({result.seconds:.1f} s).", ""
    names = ", ".join(os.path.basename(p) for p, _ in result.failed[:3])
    more = f" and {len(result.failed) - 3} more" if len(result.failed) > 3 else ""
    first = result.failed[0][1]
    text = (f"Sent {len(result.sent)} file(s) to {result.node}; {len(result.failed)} failed: {names}{more} — "
            f"{first}")
    details = "\n".join(f"{p}: {reason}" for p, reason in result.failed)
    return False, text, details


__all__ = ["PACS_ACTIONS", "PacsActions", "FirstImage", "SeriesArrived", "RetrieveRun", "retrieve_summary",
           "send_summary"]
