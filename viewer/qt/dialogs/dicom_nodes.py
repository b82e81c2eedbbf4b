"""Settings → DICOM nodes… and File → Export → Send to PACS…: the nodes radview talks to, and sending files to one.

:class:`DicomNodesDialog` edits a :class:`~viewer.net.nodes.NodeBook` (each node's name, AE title, host and port
for DIMSE, DICOMweb URL, authentication, TLS, timeout; radview's own AE title, receiver address and port, and
"Receive studies": radview's receiver kept running while the app runs) and writes it with
:func:`~viewer.net.nodes.save_nodes`; the receiver's state (listening, or why not) shows under its settings.
"Test" checks the node as the form stands (saved or not): a C-ECHO, or a one-result QIDO-RS search for a DICOMweb
node, run as a job of the window's jobs service; the answer, or why there was none (refused, timed out, rejected),
shows under the form.

:class:`SendDialog` chooses what to send (the files the exports wrote — screenshots as DICOM Secondary Capture —
the open series' files, any file or folder)
and to which node; the PACS controller (:mod:`viewer.qt.controllers.pacs_actions`) sends them in a job.

:func:`submit_net` is how these dialogs and the controller run a network call: off the GUI thread, an expected
failure (:class:`~viewer.net.errors.NetError`, :class:`~viewer.net.errors.SettingsError`, an ``OSError``) handed to
``on_error`` as its plain message.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Any, Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from viewer.net.errors import NetError, SettingsError
from viewer.net.nodes import AUTH_KINDS, DEFAULT_TIMEOUT_S, LocalAE, Node, NodeBook

OK_COLOR, FAIL_COLOR, BUSY_COLOR = "#2e7d32", "#c62828", "#666666"
AUTH_TEXT = {"none": "None", "basic": "Basic (user name and password)", "bearer": "Bearer token"}


# ------------------------------------------------------------------------------------------------ jobs
def submit_net(jobs, work: Callable[[Any, Any], Any], on_done: Callable[[Any], None],
               on_error: Callable[[str], None], message: str | None = None, *, label: str = "",
               cancellable: bool = True, cancel_text: str = "Cancel", on_preview=None,
               on_cancelled: Callable[[], None] | None = None) -> int:
    """Run ``work(progress, cancel)`` in the jobs service; a NetError / SettingsError / OSError reaches ``on_error``
    as its message (anything else too, with the exception's name); Cancel reaches ``on_cancelled``."""

    def guarded(progress, cancel):
        try:
            return True, work(progress, cancel)
        except (NetError, SettingsError, OSError) as exc:
            return False, str(exc) or type(exc).__name__

    def done(outcome) -> None:
        ok, value = outcome
        (on_done if ok else on_error)(value)

    return jobs.submit(guarded, done, message, cancellable, label=label, cancel_text=cancel_text,
                       on_preview=on_preview, on_failed=on_error,
                       on_cancelled=on_cancelled if on_cancelled is not None else (lambda: on_error("Cancelled")))


def show_outcome(label: QLabel, ok: bool | None, text: str) -> None:
    """``text`` in ``label``: green (ok), red (failed) or grey (None: in progress)."""
    color = BUSY_COLOR if ok is None else OK_COLOR if ok else FAIL_COLOR
    mark = "" if ok is None else "✓ " if ok else "✗ "
    label.setStyleSheet(f"color: {color};")
    label.setText(mark + text)
    label.setToolTip(text)


def fill_node_combo(combo: QComboBox, book: NodeBook, keep: str = "") -> None:
    """The book's nodes in ``combo`` (data: the node's name), ``keep`` (or the first) selected."""
    keep = keep or combo.currentData() or ""
    combo.blockSignals(True)
    combo.clear()
    for node in book.nodes:
        combo.addItem(node.label, node.name)
        combo.setItemData(combo.count() - 1, node.label, Qt.ToolTipRole)
    i = combo.findData(keep)
    combo.setCurrentIndex(i if i >= 0 else 0 if combo.count() else -1)
    combo.blockSignals(False)
    combo.currentIndexChanged.emit(combo.currentIndex())


# ------------------------------------------------------------------------------------------------ nodes
_FIELDS = [f.name for f in fields(Node)]


def _draft(node: Node | None = None, name: str = "") -> dict:
    """An editable copy of a node (every field, defaults included)."""
    if node is None:
        return {"name": name, "ae_title": "", "host": "", "port": 0, "dicomweb_url": "", "auth": "none",
                "username": "", "secret": "", "secret_env": "", "verify_tls": True, "ca_bundle": "",
                "timeout_s": DEFAULT_TIMEOUT_S}
    return {k: getattr(node, k) for k in _FIELDS}


class DicomNodesDialog(QDialog):
    """The node list at the left, the chosen node's settings at the right, radview's own AE below.

    ``saved(book)`` is emitted once Save has written the file. ``jobs``: the window's jobs service (Test runs in
    it). ``last_test``: (ok, message) of the last Test that ended.
    """

    saved = Signal(object)

    def __init__(self, book: NodeBook, path, jobs, parent=None, problem: str = "",
                 receiver_state: tuple[bool | None, str] = (False, "")):
        super().__init__(parent)
        self.setWindowTitle("DICOM nodes")
        self.setObjectName("dicom_nodes_dialog")
        self.resize(860, 620)
        self.jobs, self.path = jobs, path
        self.drafts: list[dict] = [_draft(n) for n in book.nodes]
        self.current = -1
        self.test_job: int | None = None
        self.last_test: tuple[bool, str] | None = None
        self._loading = False

        box = QVBoxLayout(self)
        intro = QLabel("The PACS and DICOMweb servers radview queries, retrieves from and sends to. A DIMSE node needs "
                       "its AE title, host and port (and must know radview's AE title); a DICOMweb node its URL.")
        intro.setWordWrap(True)
        box.addWidget(intro)
        if problem:
            warn = QLabel(problem)
            warn.setWordWrap(True)
            warn.setStyleSheet(f"color: {FAIL_COLOR};")
            box.addWidget(warn)
        body = QHBoxLayout()
        box.addLayout(body, 1)

        left = QVBoxLayout()
        self.node_list = QListWidget()
        self.node_list.currentRowChanged.connect(self._select)
        left.addWidget(self.node_list, 1)
        row = QHBoxLayout()
        self.add_button = QPushButton("Add")
        self.add_button.clicked.connect(self.add_node)
        self.remove_button = QPushButton("Remove")
        self.remove_button.clicked.connect(self.remove_node)
        row.addWidget(self.add_button)
        row.addWidget(self.remove_button)
        left.addLayout(row)
        body.addLayout(left, 1)

        self.form = QWidget()
        right = QVBoxLayout(self.form)
        right.setContentsMargins(0, 0, 0, 0)
        top = QFormLayout()
        self.name_edit = QLineEdit()
        top.addRow("Name", self.name_edit)
        right.addLayout(top)
        dimse = QGroupBox("DICOM (DIMSE): C-ECHO, C-FIND, C-GET / C-MOVE, C-STORE")
        dform = QFormLayout(dimse)
        self.ae_edit = QLineEdit()
        self.ae_edit.setMaxLength(16)
        self.ae_edit.setPlaceholderText("e.g. ORTHANC")
        self.host_edit = QLineEdit()
        self.host_edit.setPlaceholderText("e.g. pacs.example.org")
        self.port_spin = QSpinBox()
        self.port_spin.setRange(0, 65535)
        self.port_spin.setSpecialValueText("—")
        dform.addRow("AE title", self.ae_edit)
        dform.addRow("Host", self.host_edit)
        dform.addRow("Port", self.port_spin)
        right.addWidget(dimse)
        web = QGroupBox("DICOMweb: QIDO-RS, WADO-RS, STOW-RS")
        wform = QFormLayout(web)
        self.url_edit = QLineEdit()
        self.url_edit.setPlaceholderText("https://pacs.example.org/dicom-web")
        self.auth_box = QComboBox()
        for kind in AUTH_KINDS:
            self.auth_box.addItem(AUTH_TEXT[kind], kind)
        self.user_edit = QLineEdit()
        self.secret_edit = QLineEdit()
        self.secret_edit.setEchoMode(QLineEdit.Password)
        self.secret_edit.setPlaceholderText("stored in the settings file, readable by you only")
        self.env_edit = QLineEdit()
        self.env_edit.setPlaceholderText("or: the environment variable holding it")
        self.verify_check = QCheckBox("Verify the server's TLS certificate")
        self.ca_edit = QLineEdit()
        self.ca_edit.setPlaceholderText("extra trusted certificates (PEM file), optional")
        wform.addRow("URL", self.url_edit)
        wform.addRow("Authentication", self.auth_box)
        wform.addRow("User name", self.user_edit)
        wform.addRow("Password / token", self.secret_edit)
        wform.addRow("From variable", self.env_edit)
        wform.addRow("", self.verify_check)
        wform.addRow("CA bundle", self.ca_edit)
        right.addWidget(web)
        bottom = QFormLayout()
        self.timeout_spin = QDoubleSpinBox()
        self.timeout_spin.setRange(1, 600)
        self.timeout_spin.setDecimals(0)
        self.timeout_spin.setSuffix(" s")
        bottom.addRow("Timeout", self.timeout_spin)
        right.addLayout(bottom)
        test_row = QHBoxLayout()
        self.test_button = QPushButton("Test")
        self.test_button.setToolTip("C-ECHO the node (a one-result QIDO-RS search for a DICOMweb-only node), "
                                    "with the settings as they are in the form")
        self.test_button.clicked.connect(self.test_node)
        self.test_result = QLabel("")
        self.test_result.setWordWrap(True)
        self.test_result.setTextInteractionFlags(Qt.TextSelectableByMouse)
        test_row.addWidget(self.test_button)
        test_row.addWidget(self.test_result, 1)
        right.addLayout(test_row)
        right.addStretch(1)
        body.addWidget(self.form, 2)

        local = QGroupBox("radview (this computer)")
        lform = QFormLayout(local)
        self.local_ae_edit = QLineEdit(book.local.ae_title)
        self.local_ae_edit.setMaxLength(16)
        self.local_host_edit = QLineEdit(book.local.host)
        self.local_port_spin = QSpinBox()
        self.local_port_spin.setRange(1, 65535)
        self.local_port_spin.setValue(book.local.port)
        self.receive_check = QCheckBox("Receive studies: keep radview's receiver running while radview is open")
        self.receive_check.setToolTip("The DIMSE nodes above can then send studies to radview at any time (C-STORE); "
                                      "they arrive in the local study database. Off: radview listens only while "
                                      "one of its own C-MOVE retrieves runs.")
        self.receive_check.setChecked(book.local.receive)
        self.local_note = QLabel("")
        self.local_note.setWordWrap(True)
        self.receiver_label = QLabel("")
        self.receiver_label.setWordWrap(True)
        self.receiver_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        lform.addRow("AE title", self.local_ae_edit)
        lform.addRow("Receive on address", self.local_host_edit)
        lform.addRow("Receive on port", self.local_port_spin)
        lform.addRow("", self.receive_check)
        lform.addRow("", self.local_note)
        lform.addRow("Receiver", self.receiver_label)
        self.local_host_edit.textChanged.connect(self._local_note)
        self.receive_check.toggled.connect(self._local_note)
        box.addWidget(local)
        self.show_receiver_state(*receiver_state)

        self.save_result = QLabel("")
        self.save_result.setWordWrap(True)
        box.addWidget(self.save_result)
        self.buttons = QDialogButtonBox(QDialogButtonBox.Save | QDialogButtonBox.Cancel)
        self.buttons.accepted.connect(self.save)
        self.buttons.rejected.connect(self.reject)
        box.addWidget(self.buttons)

        for edit in (self.name_edit, self.ae_edit, self.host_edit, self.url_edit, self.user_edit, self.secret_edit,
                     self.env_edit, self.ca_edit):
            edit.textChanged.connect(self._edited)
        self.port_spin.valueChanged.connect(self._edited)
        self.timeout_spin.valueChanged.connect(self._edited)
        self.verify_check.toggled.connect(self._edited)
        self.auth_box.currentIndexChanged.connect(self._edited)
        for draft in self.drafts:
            self.node_list.addItem(draft["name"])
        self._local_note()
        if self.drafts:
            self.node_list.setCurrentRow(0)
        else:
            self._show(None)

    # --- the list --------------------------------------------------------------------------------------------
    def add_node(self) -> None:
        names = {d["name"] for d in self.drafts}
        name = next(f"node {i}" for i in range(1, len(names) + 2) if f"node {i}" not in names)
        self.drafts.append(_draft(name=name))
        self.node_list.addItem(name)
        self.node_list.setCurrentRow(len(self.drafts) - 1)
        self.name_edit.setFocus()
        self.name_edit.selectAll()

    def remove_node(self) -> None:
        row = self.current
        if row < 0:
            return
        self.current = -1
        del self.drafts[row]
        self.node_list.takeItem(row)
        self._select(self.node_list.currentRow())

    def _select(self, row: int) -> None:
        self.current = row
        self._show(self.drafts[row] if 0 <= row < len(self.drafts) else None)
        self.test_result.setText("")

    def _show(self, draft: dict | None) -> None:
        self._loading = True
        self.form.setEnabled(draft is not None)
        self.remove_button.setEnabled(draft is not None)
        d = draft or _draft()
        self.name_edit.setText(d["name"])
        self.ae_edit.setText(d["ae_title"])
        self.host_edit.setText(d["host"])
        self.port_spin.setValue(int(d["port"] or 0))
        self.url_edit.setText(d["dicomweb_url"])
        self.auth_box.setCurrentIndex(max(0, self.auth_box.findData(d["auth"])))
        self.user_edit.setText(d["username"])
        self.secret_edit.setText(d["secret"])
        self.env_edit.setText(d["secret_env"])
        self.verify_check.setChecked(bool(d["verify_tls"]))
        self.ca_edit.setText(d["ca_bundle"])
        self.timeout_spin.setValue(float(d["timeout_s"]))
        self._loading = False
        self._auth_fields()

    def _edited(self, *_args) -> None:
        self._auth_fields()
        if self._loading or not 0 <= self.current < len(self.drafts):
            return
        d = self.drafts[self.current]
        d.update(name=self.name_edit.text().strip(), ae_title=self.ae_edit.text().strip(),
                 host=self.host_edit.text().strip(), port=self.port_spin.value(),
                 dicomweb_url=self.url_edit.text().strip(), auth=self.auth_box.currentData(),
                 username=self.user_edit.text().strip(), secret=self.secret_edit.text(),
                 secret_env=self.env_edit.text().strip(), verify_tls=self.verify_check.isChecked(),
                 ca_bundle=self.ca_edit.text().strip(), timeout_s=self.timeout_spin.value())
        self.node_list.item(self.current).setText(d["name"] or "(no name)")

    def _auth_fields(self) -> None:
        kind = self.auth_box.currentData()
        self.user_edit.setEnabled(kind == "basic")
        self.secret_edit.setEnabled(kind in ("basic", "bearer"))
        self.env_edit.setEnabled(kind in ("basic", "bearer"))

    def _local_note(self) -> None:
        host = self.local_host_edit.text().strip()
        try:
            loopback = LocalAE(host=host or "127.0.0.1").is_loopback_only
        except SettingsError:
            loopback = True
        when = ("The DIMSE nodes above can send studies here at any time; they arrive in the local database."
                if self.receive_check.isChecked() else "C-MOVE sends studies to radview here while it retrieves.")
        if loopback:
            self.local_note.setText(f"{when} Only this computer can reach it.")
            self.local_note.setStyleSheet(f"color: {BUSY_COLOR};")
        else:
            self.local_note.setText(f"{when} radview's receiver will listen on {host}: other computers can reach it "
                                    f"(it accepts only the DIMSE nodes above).")
            self.local_note.setStyleSheet("color: #b36b00;")

    def show_receiver_state(self, listening: bool | None, text: str) -> None:
        """The running receiver's state (the window's receiver tells): listening, starting, or why it is off."""
        if listening is None:
            show_outcome(self.receiver_label, None, text)
        elif listening:
            show_outcome(self.receiver_label, True, text)
        elif text:
            show_outcome(self.receiver_label, False, text)
        else:
            show_outcome(self.receiver_label, None, "not running" + ("" if self.receive_check.isChecked() else
                                                                     " (Receive studies is off)"))

    # --- values ----------------------------------------------------------------------------------------------
    def node(self, row: int | None = None) -> Node:
        """The node at ``row`` (default: the one shown) as the form has it; SettingsError when it is not valid."""
        row = self.current if row is None else row
        if not 0 <= row < len(self.drafts):
            raise SettingsError("no node chosen: add one first")
        return Node(**self.drafts[row])

    def book(self) -> NodeBook:
        """Every node and the local AE as the form has them; SettingsError (selecting the culprit) if not valid."""
        nodes = []
        for row in range(len(self.drafts)):
            try:
                nodes.append(self.node(row))
            except SettingsError:
                self.node_list.setCurrentRow(row)
                raise
        local = LocalAE(self.local_ae_edit.text().strip(), self.local_host_edit.text().strip(),
                        self.local_port_spin.value(), self.receive_check.isChecked())
        return NodeBook(tuple(nodes), local)

    def local_ae_title(self) -> str:
        return self.local_ae_edit.text().strip() or "RADVIEW"

    # --- Test ------------------------------------------------------------------------------------------------
    def test_node(self) -> int | None:
        """C-ECHO (or QIDO-RS) the node shown, in a job; the result shows under the form."""
        from viewer.logic import pacs

        try:
            node = self.node()
            request = pacs.EchoRequest(node, calling_aet=self.local_ae_title())
        except SettingsError as exc:
            self._tested(False, str(exc))
            return None
        if self.test_job is not None:
            self.jobs.cancel(self.test_job, drop=True)
        show_outcome(self.test_result, None, f"Testing {node.label}…")
        self.last_test = None

        def ended(ok: bool, text: str) -> None:
            if self.test_job == job:
                self.test_job = None
                self._tested(ok, text)

        job = self.test_job = submit_net(
            self.jobs, lambda progress, cancel: pacs.echo(request), lambda result: ended(True, result.text()),
            lambda text: ended(False, text), f"Testing {node.label}…", label=f"Testing {node.name}")
        return job

    def _tested(self, ok: bool, text: str) -> None:
        self.last_test = (ok, text)
        show_outcome(self.test_result, ok, text)

    # --- Save ------------------------------------------------------------------------------------------------
    def save(self) -> bool:
        """Write the settings file and close; a setting that is not valid is named and nothing is written."""
        from viewer.net.nodes import save_nodes

        try:
            book = self.book()
            written = save_nodes(book, self.path)
        except (SettingsError, OSError) as exc:
            show_outcome(self.save_result, False, f"Not saved: {exc}")
            return False
        show_outcome(self.save_result, True, f"Saved in {written}")
        self.saved.emit(book)
        self.accept()
        return True

    def done(self, result: int) -> None:
        if self.test_job is not None:
            self.jobs.cancel(self.test_job, drop=True)
            self.test_job = None
        super().done(result)


# ------------------------------------------------------------------------------------------------ send
@dataclass(frozen=True)
class SendChoice:
    """One thing the send dialog offers: ``label`` for the list, ``paths`` (files or folders) sent when ticked."""

    label: str
    paths: tuple[str, ...]
    checked: bool = True


class SendDialog(QDialog):
    """What to send (ticked rows) and where; ``send_requested(node, paths)`` when Send is pressed. The controller
    reports back through :meth:`show_result`."""

    send_requested = Signal(object, object)  # Node, tuple of paths

    def __init__(self, book: NodeBook, choices: list[SendChoice], parent=None, node_name: str = ""):
        super().__init__(parent)
        self.setWindowTitle("Send to PACS")
        self.setObjectName("send_dialog")
        self.resize(720, 420)
        self.book = book
        box = QVBoxLayout(self)
        intro = QLabel("Send DICOM files to a node: C-STORE for a DIMSE node, STOW-RS for a DICOMweb one. Exported "
                       "screenshots go as DICOM Secondary Capture images in the study they show. Files that are not "
                       "DICOM, or that the node refuses, are listed with the reason.")
        intro.setWordWrap(True)
        box.addWidget(intro)
        self.choice_list = QListWidget()
        box.addWidget(self.choice_list, 1)
        if not choices:
            self.empty_note = QLabel("Nothing exported yet in this session and no DICOM series open: add files or a "
                                     "folder.")
            self.empty_note.setStyleSheet(f"color: {BUSY_COLOR};")
            box.addWidget(self.empty_note)
        row = QHBoxLayout()
        add_files = QPushButton("Add files…")
        add_files.clicked.connect(self._add_files)
        add_folder = QPushButton("Add folder…")
        add_folder.clicked.connect(self._add_folder)
        row.addWidget(add_files)
        row.addWidget(add_folder)
        row.addStretch(1)
        box.addLayout(row)
        form = QFormLayout()
        self.node_box = QComboBox()
        form.addRow("Send to", self.node_box)
        box.addLayout(form)
        self.result_label = QLabel("")
        self.result_label.setWordWrap(True)
        self.result_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        box.addWidget(self.result_label)
        self.buttons = QDialogButtonBox(QDialogButtonBox.Close)
        self.send_button = self.buttons.addButton("Send", QDialogButtonBox.AcceptRole)
        self.buttons.accepted.connect(self.send)
        self.buttons.rejected.connect(self.reject)
        box.addWidget(self.buttons)
        self.node_box.currentIndexChanged.connect(lambda _i: self._sync())
        self.choice_list.itemChanged.connect(lambda _item: self._sync())
        for choice in choices:
            self.add_choice(choice)
        fill_node_combo(self.node_box, book, node_name)
        if not book.nodes:
            show_outcome(self.result_label, False, "No DICOM node is configured: add one in Settings → DICOM nodes…")
        self._sync()

    def add_choice(self, choice: SendChoice) -> QListWidgetItem:
        item = QListWidgetItem(choice.label)
        item.setFlags(item.flags() | Qt.ItemIsUserCheckable)
        item.setCheckState(Qt.Checked if choice.checked else Qt.Unchecked)
        item.setData(Qt.UserRole, choice.paths)
        item.setToolTip("\n".join(choice.paths[:20]) + (f"\n… {len(choice.paths) - 20} more"
                                                         if len(choice.paths) > 20 else ""))
        self.choice_list.addItem(item)
        self._sync()
        return item

    def _add_files(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Files to send", "", "DICOM (*.dcm);;All files (*)")
        if paths:
            label = os.path.basename(paths[0]) + (f" and {len(paths) - 1} more" if len(paths) > 1 else "")
            self.add_choice(SendChoice(label, tuple(paths)))

    def _add_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder to send")
        if folder:
            self.add_choice(SendChoice(f"Folder {folder}", (folder,)))

    def set_book(self, book: NodeBook) -> None:
        self.book = book
        fill_node_combo(self.node_box, book)

    def paths(self) -> tuple[str, ...]:
        out: list[str] = []
        for i in range(self.choice_list.count()):
            item = self.choice_list.item(i)
            if item.checkState() == Qt.Checked:
                out += [p for p in item.data(Qt.UserRole) if p not in out]
        return tuple(out)

    def node(self) -> Node | None:
        name = self.node_box.currentData()
        return next((n for n in self.book.nodes if n.name == name), None)

    def _sync(self) -> None:
        self.send_button.setEnabled(self.node() is not None and bool(self.paths()))

    def send(self) -> None:
        node, paths = self.node(), self.paths()
        if node is None or not paths:
            return
        self.send_button.setEnabled(False)
        show_outcome(self.result_label, None, f"Sending {len(paths)} item(s) to {node.label}…")
        self.send_requested.emit(node, paths)

    def show_result(self, ok: bool, text: str) -> None:
        show_outcome(self.result_label, ok, text)
        self._sync()
