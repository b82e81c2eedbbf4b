"""radview's always-on DICOM receiver in the window ("Receive studies" in Settings → DICOM nodes…).

When the node settings say ``receive`` (:class:`~viewer.net.nodes.LocalAE`), :class:`PacsReceiver` runs radview's
C-STORE SCP (:func:`viewer.logic.pacs.start_receiver`) for as long as the window is open: on the local AE's address
(127.0.0.1 unless the user configured another) and port, accepting only the configured DIMSE nodes, writing each
instance atomically into the local study database, which indexes it. Starting and stopping (importing pynetdicom,
binding the port, joining the server thread) run as jobs of the window's jobs service, never on the GUI thread; a
port in use is said in words in the status bar and the settings dialog, and the window keeps working.

Arrivals are heard on the network's writer threads and counted under a lock; the GUI thread is told through a
queued signal and looks at most every ``throttle_ms``: the status bar's receiver note says "Receiving from AE: N
instances", the study browser's Local database tab searches again, and :attr:`series_arrived` is emitted once per
new series. Once nothing has arrived for ``quiet_ms`` the note says what came. A refused association (a calling AE
title or address that is not a configured node) is said too.

:meth:`close` (the window's closeEvent, through ``PacsActions.close``) stops the receiver: the instances being
received are finished and written, then the port is closed.
"""
from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QLabel

from viewer.net.errors import NetError, SettingsError

OK_COLOR, FAIL_COLOR, BUSY_COLOR = "#2e7d32", "#c62828", "#666666"


@dataclass
class Burst:
    """What arrived since the receiver last went quiet (GUI thread)."""

    by_ae: Counter = field(default_factory=Counter)  # calling AE title → instances
    series: dict = field(default_factory=dict)  # (study UID, series UID) → (calling AE, series description)

    @property
    def count(self) -> int:
        return sum(self.by_ae.values())


def _config(book) -> tuple:
    """What the receiver depends on: the local AE and the DIMSE nodes it accepts."""
    return (book.local, tuple(sorted((n.ae_title, n.host) for n in book.nodes if n.is_dimse)))


class PacsReceiver(QObject):
    """The receiver of one window. ``jobs``: the jobs service; ``notices``: the notifier; ``status_bar``: where its
    note goes; ``database()``: the local study database (from any thread); ``browser``: the study browser (its
    Local database tab is refreshed as series arrive)."""

    state_changed = Signal(object, str)  # listening (True), off (False) or starting (None); the text said
    series_arrived = Signal(str, str, str)  # study UID, series UID, calling AE title: a new series began arriving
    arrivals_shown = Signal(int)  # instances received so far, shown (throttled, GUI thread)
    _poked = Signal()  # an instance arrived (emitted on a network thread, delivered on the GUI thread)
    _refused = Signal(str, str)  # calling AE title, address

    def __init__(self, jobs, notices, status_bar, database, browser, parent=None, throttle_ms: int = 300,
                 quiet_ms: int = 2500):
        super().__init__(parent)
        self.jobs, self.notices, self.database, self.browser = jobs, notices, database, browser
        self.scp = None  # the running StoreSCP (set and taken under _lock, from job threads too)
        self.listening = False
        self.state_text = ""
        self.error = ""
        self.total = 0  # instances received since the window opened
        self.refused: list[tuple[str, str]] = []
        self.burst = Burst()
        self.last_note = ""
        self._lock = threading.Lock()
        self._closed = False
        self._incoming: Counter = Counter()  # calling AE → instances not yet shown
        self._incoming_series: dict = {}
        self._seen_series: set = set()
        self._job: int | None = None
        self._wanted = None  # the book to apply once the running start/stop job ends
        self._applied = None  # _config of the book the receiver runs with (None: not running)
        self.label = QLabel("")
        self.label.setObjectName("receiver_note")
        self.label.hide()
        status_bar.addPermanentWidget(self.label)
        self._throttle = QTimer(self)
        self._throttle.setSingleShot(True)
        self._throttle.setInterval(throttle_ms)
        self._throttle.timeout.connect(self._show_arrivals)
        self._quiet = QTimer(self)
        self._quiet.setSingleShot(True)
        self._quiet.setInterval(quiet_ms)
        self._quiet.timeout.connect(self._went_quiet)
        self._poked.connect(self._arrived)
        self._refused.connect(self._show_refused)

    # --- life -----------------------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """A start or stop is running."""
        return self._job is not None

    def running_scp(self):
        """The StoreSCP when it is listening (a C-MOVE of the window's sends into it), else None."""
        with self._lock:
            scp = self.scp
        return scp if scp is not None and scp.running else None

    def serving(self, book, node):
        """The running StoreSCP when it runs with ``book``'s local AE and accepts ``node`` (a C-MOVE from ``node``
        can go into it), else None."""
        config = self._applied
        scp = self.running_scp()
        if scp is None or config is None or config != _config(book):
            return None
        return scp if (node.ae_title, node.host) in config[1] else None

    def apply(self, book) -> None:
        """Run the receiver as ``book`` says: started (or restarted on a new address, title or set of nodes) when
        ``book.local.receive``, else stopped. In a job; a second call while one runs is applied after it."""
        if self._closed:
            return
        if self._job is not None:
            self._wanted = book
            return
        wanted = _config(book) if book.local.receive else None
        if wanted == self._applied and (wanted is None or self.running_scp() is not None):
            return
        if wanted is not None:
            self._set_state(None, f"Starting the receiver on {book.local.label}…")

        def work(progress, cancel):
            return self._restart(book)

        self._job = self.jobs.submit(work, lambda outcome: self._applied_outcome(book, outcome), None,
                                     cancellable=False, on_failed=lambda text: self._applied_outcome(
                                         book, (False, f"the receiver failed: {text}")))

    def _restart(self, book) -> tuple[bool, str]:
        """(listening, what to say) — on the job's thread."""
        from viewer.logic import pacs

        with self._lock:
            old, self.scp = self.scp, None
        if old is not None:
            old.stop()
        if not book.local.receive or self._closed:
            return False, ""
        try:
            scp = pacs.start_receiver(book, self.database(), on_refused=self._refused.emit,
                                      on_received=self._received)
        except (NetError, SettingsError, OSError) as exc:
            return False, str(exc) or type(exc).__name__
        with self._lock:
            if not self._closed:
                self.scp, scp = scp, None
        if scp is not None:  # closed meanwhile
            scp.stop()
            return False, ""
        accepted = pacs.receiver_allowed(book)
        who = ", ".join(accepted) if accepted else "no node yet (add one above)"
        return True, f"Receiving on {book.local.label} from {who}"

    def _applied_outcome(self, book, outcome) -> None:
        self._job = None
        listening, text = outcome
        self._applied = _config(book) if listening else None
        if listening:
            self.error = ""
            self._set_state(True, text, short=f"Receiver on {book.local.label}")
        elif text:
            self.error = text
            self._set_state(False, text)
            self.notices.error(f"Receive studies is on, but {text}", dialog=False)
        else:
            self._set_state(False, "")
        wanted, self._wanted = self._wanted, None
        if wanted is not None:
            self.apply(wanted)

    def _set_state(self, listening, text: str, short: str = "") -> None:
        self.listening = bool(listening)
        self.state_text = text
        if listening is None:
            self._note(text, BUSY_COLOR)
        elif listening:
            self._note(short or text, BUSY_COLOR, tip=text)
        elif text:
            self._note(f"Receiver off: {text}", FAIL_COLOR)
        else:
            self._note("", BUSY_COLOR)
        self.state_changed.emit(listening, text)

    def close(self) -> None:
        """Stop listening; instances being received are written first. Call once the window's jobs have ended."""
        self._throttle.stop()
        self._quiet.stop()
        with self._lock:
            self._closed = True
            scp, self.scp = self.scp, None
        if scp is not None:
            scp.stop()
        self.listening = False
        self._applied = None

    # --- arrivals (network and writer threads) ----------------------------------------------------------------
    def _received(self, item, calling: str) -> None:
        header = item.header
        key = (header.study_uid, header.series_uid)
        with self._lock:
            self._incoming[calling or "?"] += 1
            if key not in self._seen_series:
                self._seen_series.add(key)
                self._incoming_series[key] = (calling or "?", header.series_description)
        self._poked.emit()

    # --- what the GUI shows (GUI thread) ---------------------------------------------------------------------
    def _arrived(self) -> None:
        if not self._throttle.isActive():
            self._throttle.start()

    def _show_arrivals(self) -> None:
        with self._lock:
            incoming, self._incoming = self._incoming, Counter()
            new_series, self._incoming_series = self._incoming_series, {}
        if not incoming and not new_series:
            return
        self.burst.by_ae.update(incoming)
        self.burst.series.update(new_series)
        self.total += sum(incoming.values())
        ae = self._burst_ae()
        self._note(f"Receiving from {ae}: {self.burst.count} instances", OK_COLOR,
                   tip=f"{len(self.burst.series)} series so far; they are in the study browser's Local database")
        self.browser.refresh_local()
        for (study_uid, series_uid), (calling, _desc) in new_series.items():
            self.series_arrived.emit(study_uid, series_uid, calling)
        self.arrivals_shown.emit(self.total)
        self._quiet.start()

    def _burst_ae(self) -> str:
        names = [name for name, _n in self.burst.by_ae.most_common()]
        return names[0] if len(names) == 1 else f"{names[0]} and {len(names) - 1} more"

    def _went_quiet(self) -> None:
        if self._throttle.isActive() or self._incoming_pending():
            self._quiet.start()
            return
        burst, self.burst = self.burst, Burst()
        if not burst.count:
            return
        n_series = len(burst.series)
        text = (f"Received {burst.count} instances from {self._names(burst)} ({n_series} series) at "
                f"{time.strftime('%H:%M')}")
        self._note(text, OK_COLOR, tip=f"{text}; they are in the study browser's Local database")
        self.browser.refresh_local()

    def _incoming_pending(self) -> bool:
        with self._lock:
            return bool(self._incoming)

    @staticmethod
    def _names(burst: Burst) -> str:
        return ", ".join(name for name, _n in burst.by_ae.most_common())

    def _show_refused(self, calling: str, address: str) -> None:
        self.refused.append((calling, address))
        text = (f"Refused a DICOM association from {calling or '(no AE title)'} at {address}: not a configured node "
                f"(Settings → DICOM nodes…)")
        self.notices.error(text, dialog=False)

    def _note(self, text: str, color: str, tip: str = "") -> None:
        self.last_note = text
        self.label.setText(text)
        self.label.setToolTip(tip or text)
        self.label.setStyleSheet(f"color: {color};")
        self.label.setVisible(bool(text))


__all__ = ["PacsReceiver", "Burst"]
