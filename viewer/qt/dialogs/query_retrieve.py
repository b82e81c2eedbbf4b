"""File → Query/Retrieve…: search a node for studies, see their series, retrieve the selection.

The dialog is non-modal: the window stays usable while it is open and while a retrieve runs. Searches (C-FIND or
QIDO-RS, :func:`viewer.logic.pacs.query`) and the series of a study (:func:`viewer.logic.pacs.series_of`, asked when
a study is expanded or selected) run as jobs of the window's jobs service; a failure shows in the dialog in words
(refused, timed out, rejected). Retrieve hands the selection (:class:`RetrieveOrder`) to the PACS controller
(:mod:`viewer.qt.controllers.pacs_actions`), which fetches it into the local study database and opens the first
series as it arrives; the dialog shows the arriving count, and Cancel stops it.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
)

from viewer.net.errors import SettingsError
from viewer.net.nodes import Node, NodeBook
from viewer.net.records import QueryCriteria, SeriesRecord, StudyRecord
from viewer.qt.dialogs.dicom_nodes import fill_node_combo, show_outcome, submit_net

COLUMNS = ["Patient", "Patient ID", "Date", "Modality", "Description", "Accession", "Series", "Images"]
COL_PATIENT, COL_ID, COL_DATE, COL_MODALITY, COL_DESCRIPTION, COL_ACCESSION, COL_SERIES, COL_IMAGES = range(8)
RECORD_ROLE = Qt.UserRole
MODALITIES = ("", "CT", "MR", "PT", "NM", "US", "CR", "DX", "MG", "XA", "RF", "OT", "SEG", "SR")
#: series that hold no image to show first (they are still retrieved)
NON_IMAGE = frozenset({"SR", "SEG", "PR", "KO", "RTSTRUCT", "RTPLAN", "REG", "DOC", "RWV", "FID"})
DATE_PRESETS = ("Any date", "Today", "Yesterday", "Last 7 days", "Last 30 days", "Last 365 days")
METHOD_TEXT = {"get": "C-GET", "move": "C-MOVE to radview's receiver", "wado": "WADO-RS"}


@dataclass(frozen=True)
class RetrieveTarget:
    """A study (``series_uid`` empty: its series are asked for first) or one series to retrieve."""

    study_uid: str
    series_uid: str = ""
    modality: str = ""
    n_instances: int | None = None
    label: str = ""


@dataclass(frozen=True)
class RetrieveOrder:
    node: Node
    targets: tuple[RetrieveTarget, ...]
    method: str = ""  # "get", "move", "wado"; "" lets the node decide
    open_first: bool = True  # open the first image series in the window as it arrives


def person_name(name: str) -> str:
    parts = [p.strip() for p in (name or "").split("^")]
    return ", ".join(p for p in parts[:2] if p)


def date_text(value: str) -> str:
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if len(value) == 8 and value.isdigit() else value


def _count(value) -> str:
    return "" if value is None else str(value)


def series_target(record: SeriesRecord) -> RetrieveTarget:
    what = " ".join(v for v in (f"#{record.number}" if record.number is not None else "", record.modality,
                                record.description) if v)
    return RetrieveTarget(record.study_uid, record.series_uid, record.modality, record.n_instances,
                          what or record.series_uid)


def image_first(records: list[SeriesRecord]) -> list[SeriesRecord]:
    """The series of a study in the order they are fetched: images before SR/SEG/…, the largest first (the series
    the viewer opens arrives first)."""
    return sorted(records, key=lambda r: (r.modality.upper() in NON_IMAGE, -(r.n_instances or 0)))


def normalise_date(text: str) -> str:
    """``2012-07-06`` / ``2012.07.06`` / ``20120706`` → ``20120706`` (anything else is left for the check)."""
    text = text.strip()
    digits = text.replace("-", "").replace(".", "").replace("/", "")
    return digits if len(digits) == 8 and digits.isdigit() else text


class QueryRetrieveDialog(QDialog):
    """``retrieve_requested(order)``: Retrieve pressed with a selection; ``nodes_requested()``: the "Nodes…" button.

    ``jobs``: the window's jobs service; ``studies``: the last search's study records; ``series``: the series known
    per study UID. The controller reports a retrieve through :meth:`retrieve_started`, :meth:`retrieve_progress` and
    :meth:`retrieve_ended`; ``cancel_requested`` is the dialog's Cancel.
    """

    retrieve_requested = Signal(object)
    nodes_requested = Signal()
    cancel_requested = Signal()

    def __init__(self, book: NodeBook, jobs, parent=None, node_name: str = ""):
        super().__init__(parent)
        self.setWindowTitle("Query/Retrieve")
        self.setObjectName("query_retrieve_dialog")
        self.resize(1100, 640)
        self.book, self.jobs = book, jobs
        self.search_job: int | None = None
        self.series_jobs: dict[str, int] = {}  # study UID → job asking for its series
        self.studies: list[StudyRecord] = []
        self.series: dict[str, list[SeriesRecord]] = {}
        self.study_items: dict[str, QTreeWidgetItem] = {}
        self.last_error = ""
        self.retrieving = False

        box = QVBoxLayout(self)
        top = QHBoxLayout()
        top.addWidget(QLabel("Node"))
        self.node_box = QComboBox()
        self.node_box.setMinimumWidth(320)
        top.addWidget(self.node_box, 1)
        self.nodes_button = QPushButton("Nodes…")
        self.nodes_button.setToolTip("Settings → DICOM nodes…: add or change the nodes")
        self.nodes_button.clicked.connect(self.nodes_requested)
        top.addWidget(self.nodes_button)
        top.addSpacing(16)
        top.addWidget(QLabel("Retrieve by"))
        self.method_box = QComboBox()
        top.addWidget(self.method_box)
        box.addLayout(top)

        grid = QGridLayout()
        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("e.g. DOE^J* (* and ? wildcards)")
        self.id_edit = QLineEdit()
        self.accession_edit = QLineEdit()
        self.description_edit = QLineEdit()
        self.description_edit.setPlaceholderText("e.g. *CHEST*")
        self.modality_box = QComboBox()
        self.modality_box.setEditable(True)
        self.modality_box.addItems(MODALITIES)
        self.date_box = QComboBox()
        self.date_box.addItems(DATE_PRESETS)
        self.date_from = QLineEdit()
        self.date_from.setPlaceholderText("from YYYYMMDD")
        self.date_to = QLineEdit()
        self.date_to.setPlaceholderText("to YYYYMMDD")
        for edit in (self.date_from, self.date_to):
            edit.setMinimumWidth(110)
        dates = QHBoxLayout()
        dates.addWidget(self.date_box)
        dates.addWidget(self.date_from)
        dates.addWidget(self.date_to)
        grid.addWidget(QLabel("Patient name"), 0, 0)
        grid.addWidget(self.name_edit, 0, 1)
        grid.addWidget(QLabel("Patient ID"), 0, 2)
        grid.addWidget(self.id_edit, 0, 3)
        grid.addWidget(QLabel("Accession"), 0, 4)
        grid.addWidget(self.accession_edit, 0, 5)
        grid.addWidget(QLabel("Study date"), 1, 0)
        grid.addLayout(dates, 1, 1)
        grid.addWidget(QLabel("Modality"), 1, 2)
        grid.addWidget(self.modality_box, 1, 3)
        grid.addWidget(QLabel("Description"), 1, 4)
        grid.addWidget(self.description_edit, 1, 5)
        for col in (1, 3, 5):
            grid.setColumnStretch(col, 1)
        box.addLayout(grid)
        row = QHBoxLayout()
        self.search_button = QPushButton("Search")
        self.search_button.setDefault(True)
        self.search_button.clicked.connect(self.search)
        self.clear_button = QPushButton("Clear")
        self.clear_button.clicked.connect(self.clear_criteria)
        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        row.addWidget(self.search_button)
        row.addWidget(self.clear_button)
        row.addWidget(self.status_label, 1)
        box.addLayout(row)

        self.results = QTreeWidget()
        self.results.setHeaderLabels(COLUMNS)
        self.results.setSelectionMode(QAbstractItemView.ExtendedSelection)
        self.results.setAlternatingRowColors(True)
        self.results.setUniformRowHeights(True)
        header = self.results.header()
        header.setSectionResizeMode(QHeaderView.Interactive)
        header.setStretchLastSection(False)
        header.setSectionResizeMode(COL_DESCRIPTION, QHeaderView.Stretch)
        for col, width in ((COL_PATIENT, 190), (COL_ID, 150), (COL_DATE, 90), (COL_MODALITY, 70),
                           (COL_ACCESSION, 100), (COL_SERIES, 50), (COL_IMAGES, 60)):
            self.results.setColumnWidth(col, width)
        self.results.itemExpanded.connect(self._expanded)
        self.results.itemSelectionChanged.connect(self._selection_changed)
        self.results.itemDoubleClicked.connect(self._double_clicked)
        box.addWidget(self.results, 1)

        bottom = QHBoxLayout()
        self.open_check = QCheckBox("Open the first series as it arrives")
        self.open_check.setChecked(True)
        self.progress_label = QLabel("")
        self.progress_bar = QProgressBar()
        self.progress_bar.setMaximumWidth(260)
        self.progress_bar.hide()
        self.retrieve_button = QPushButton("Retrieve")
        self.retrieve_button.setToolTip("Fetch the selected studies or series into the local study database")
        self.retrieve_button.clicked.connect(self.retrieve)
        self.cancel_button = QPushButton("Cancel retrieve")
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.cancel_button.hide()
        self.close_button = QPushButton("Close")
        self.close_button.clicked.connect(self.close)
        bottom.addWidget(self.open_check)
        bottom.addWidget(self.progress_label, 1)
        bottom.addWidget(self.progress_bar)
        bottom.addWidget(self.retrieve_button)
        bottom.addWidget(self.cancel_button)
        bottom.addWidget(self.close_button)
        box.addLayout(bottom)

        self.node_box.currentIndexChanged.connect(lambda _i: self._node_changed())
        self.date_box.currentIndexChanged.connect(self._date_preset)
        for edit in (self.name_edit, self.id_edit, self.accession_edit, self.description_edit, self.date_from,
                     self.date_to):
            edit.returnPressed.connect(self.search)
        self.set_book(book, node_name)
        self._sync()

    # --- nodes -----------------------------------------------------------------------------------------------
    def set_book(self, book: NodeBook, keep: str = "") -> None:
        self.book = book
        fill_node_combo(self.node_box, book, keep)
        if not book.nodes:
            show_outcome(self.status_label, False, "No DICOM node is configured: press Nodes… to add one.")
        elif not self.studies:
            self.status_label.setText("")

    def node(self) -> Node | None:
        name = self.node_box.currentData()
        return next((n for n in self.book.nodes if n.name == name), None)

    def set_node(self, name: str) -> None:
        i = self.node_box.findData(name)
        if i >= 0:
            self.node_box.setCurrentIndex(i)

    def _node_changed(self) -> None:
        node = self.node()
        keep = self.method_box.currentData()
        self.method_box.clear()
        methods = []
        if node is not None and node.is_dimse:
            methods += ["get", "move"]
        if node is not None and node.is_dicomweb:
            methods.append("wado")
        for m in methods:
            self.method_box.addItem(METHOD_TEXT[m], m)
        local = self.book.local
        i = self.method_box.findData("move")
        if i >= 0:
            self.method_box.setItemData(i, f"The node sends the instances to {local.ae_title} at "
                                           f"{local.host}:{local.port} (it must know that destination)",
                                        Qt.ToolTipRole)
        j = self.method_box.findData(keep)
        self.method_box.setCurrentIndex(j if j >= 0 else 0)
        self.results.clear()
        self.studies, self.series, self.study_items = [], {}, {}
        self._sync()

    # --- criteria --------------------------------------------------------------------------------------------
    def _date_preset(self, index: int) -> None:
        today = _dt.date.today()
        span = {1: (0, 0), 2: (1, 1), 3: (6, 0), 4: (29, 0), 5: (364, 0)}.get(index)
        if span is None:
            self.date_from.clear()
            self.date_to.clear()
            return
        start, end = today - _dt.timedelta(days=span[0]), today - _dt.timedelta(days=span[1])
        self.date_from.setText(start.strftime("%Y%m%d"))
        self.date_to.setText(end.strftime("%Y%m%d"))

    def clear_criteria(self) -> None:
        for edit in (self.name_edit, self.id_edit, self.accession_edit, self.description_edit, self.date_from,
                     self.date_to):
            edit.clear()
        self.modality_box.setCurrentIndex(0)
        self.date_box.setCurrentIndex(0)

    def criteria(self) -> QueryCriteria:
        """The study-level criteria as entered; SettingsError (a date that is not one) otherwise."""
        lo, hi = normalise_date(self.date_from.text()), normalise_date(self.date_to.text())
        dates = "" if not (lo or hi) else lo if lo == hi else f"{lo}-{hi}"
        return QueryCriteria(level="study", patient_name=self.name_edit.text().strip(),
                             patient_id=self.id_edit.text().strip(), study_date=dates,
                             modality=self.modality_box.currentText().strip().upper(),
                             accession=self.accession_edit.text().strip(),
                             description=self.description_edit.text().strip())

    # --- search ----------------------------------------------------------------------------------------------
    def search(self) -> int | None:
        """Ask the node for the studies matching the criteria (in a job); the results replace the table's."""
        from viewer.logic import pacs

        node = self.node()
        if node is None:
            self._error("No node chosen: press Nodes… to add one.")
            return None
        try:
            request = pacs.QueryRequest(node, self.criteria(), self.book.local.ae_title)
        except SettingsError as exc:
            self._error(str(exc))
            return None
        self._drop_queries()
        self.results.clear()
        self.studies, self.series, self.study_items = [], {}, {}
        show_outcome(self.status_label, None, f"Searching {node.label}…")

        def found(records) -> None:
            if self.search_job != job:
                return
            self.search_job = None
            self.show_studies(records)
            self._sync()

        def failed(text: str) -> None:
            if self.search_job == job:
                self.search_job = None
                self._error(text)
                self._sync()

        job = self.search_job = submit_net(self.jobs, lambda progress, cancel: pacs.query(request, cancel), found,
                                           failed, None, label=f"Searching {node.name}")
        self._sync()
        return job

    def show_studies(self, records: list[StudyRecord]) -> None:
        self.studies = sorted(records, key=lambda r: (r.study_date, r.study_time), reverse=True)
        for record in self.studies:
            item = QTreeWidgetItem(self.results, [
                person_name(record.patient_name) or record.patient_name, record.patient_id,
                date_text(record.study_date), "/".join(record.modalities), record.description, record.accession,
                _count(record.n_series), _count(record.n_instances)])
            item.setData(0, RECORD_ROLE, record)
            item.setChildIndicatorPolicy(QTreeWidgetItem.ShowIndicator)
            item.setToolTip(0, f"{record.patient_name}\nStudy {record.study_uid}")
            self.study_items[record.study_uid] = item
        n = len(records)
        show_outcome(self.status_label, True, f"{n} stud{'y' if n == 1 else 'ies'} found"
                     + (" — expand or select one to see its series" if n else ""))

    def _drop_queries(self) -> None:
        """Stop the searches still running (nothing of them is delivered any more)."""
        if self.search_job is not None:
            self.jobs.cancel(self.search_job, drop=True)
            self.search_job = None
            self.status_label.setText("")
        for study_uid, job in self.series_jobs.items():
            self.jobs.cancel(job, drop=True)
            item = self.study_items.get(study_uid)
            if item is not None:
                item.takeChildren()
        self.series_jobs.clear()

    # --- series ----------------------------------------------------------------------------------------------
    def _expanded(self, item: QTreeWidgetItem) -> None:
        record = item.data(0, RECORD_ROLE)
        if isinstance(record, StudyRecord):
            self.load_series(record.study_uid)

    def _selection_changed(self) -> None:
        for item in self.results.selectedItems():
            record = item.data(0, RECORD_ROLE)
            if isinstance(record, StudyRecord) and record.study_uid not in self.series:
                self.load_series(record.study_uid)
        self._sync()

    def load_series(self, study_uid: str) -> int | None:
        """Ask the node for the study's series (once; in a job); they become the study row's children."""
        from viewer.logic import pacs

        node, item = self.node(), self.study_items.get(study_uid)
        if node is None or item is None or study_uid in self.series or study_uid in self.series_jobs:
            return None
        placeholder = QTreeWidgetItem(item, ["Asking for the series…"])
        placeholder.setFlags(Qt.NoItemFlags)
        placeholder.setFirstColumnSpanned(True)
        study = item.data(0, RECORD_ROLE)
        calling = self.book.local.ae_title

        def found(records) -> None:
            if self.series_jobs.get(study_uid) != job:
                return
            del self.series_jobs[study_uid]
            self.show_series(study, records)
            self._sync()

        def failed(text: str) -> None:
            if self.series_jobs.get(study_uid) == job:
                del self.series_jobs[study_uid]
                item.takeChildren()
                self._error(f"Series of {person_name(study.patient_name) or study.study_uid}: {text}")
                self._sync()

        job = submit_net(self.jobs, lambda progress, cancel: pacs.series_of(node, study_uid, calling, cancel), found,
                         failed, None, label="Asking for the series")
        self.series_jobs[study_uid] = job
        return job

    def show_series(self, study: StudyRecord, records: list[SeriesRecord]) -> None:
        item = self.study_items.get(study.study_uid)
        if item is None:
            return
        records = sorted(records, key=lambda r: (r.number is None, r.number or 0, r.series_uid))
        self.series[study.study_uid] = records
        item.takeChildren()
        for record in records:
            child = QTreeWidgetItem(item, [
                f"#{record.number}" if record.number is not None else "", "", "", record.modality,
                record.description, "", "", _count(record.n_instances)])
            child.setData(0, RECORD_ROLE, record)
            child.setToolTip(COL_DESCRIPTION, f"{record.description}\nSeries {record.series_uid}")
        if not records:
            none = QTreeWidgetItem(item, ["The node lists no series for this study"])
            none.setFlags(Qt.NoItemFlags)
            none.setFirstColumnSpanned(True)
        if item.text(COL_SERIES) == "":
            item.setText(COL_SERIES, str(len(records)))
        item.setExpanded(True)

    def _double_clicked(self, item: QTreeWidgetItem, _column: int) -> None:
        if isinstance(item.data(0, RECORD_ROLE), SeriesRecord) and not self.retrieving:
            self.results.clearSelection()
            item.setSelected(True)
            self.retrieve()

    # --- retrieve --------------------------------------------------------------------------------------------
    def selected_targets(self) -> list[RetrieveTarget]:
        """What Retrieve fetches: each selected study (its series, images first, when they are known) and each
        selected series of a study not itself selected."""
        chosen = self.results.selectedItems()
        studies = [i.data(0, RECORD_ROLE) for i in chosen if isinstance(i.data(0, RECORD_ROLE), StudyRecord)]
        study_uids = {s.study_uid for s in studies}
        targets: list[RetrieveTarget] = []
        for study in studies:
            known = self.series.get(study.study_uid)
            if known:
                targets += [series_target(r) for r in image_first(known)]
            else:
                targets.append(RetrieveTarget(study.study_uid, "", "/".join(study.modalities), study.n_instances,
                                              person_name(study.patient_name) or study.study_uid))
        for item in chosen:
            record = item.data(0, RECORD_ROLE)
            if isinstance(record, SeriesRecord) and record.study_uid not in study_uids:
                targets.append(series_target(record))
        return targets

    def retrieve(self) -> RetrieveOrder | None:
        node, targets = self.node(), self.selected_targets()
        if node is None or not targets:
            self._error("Select a study or a series to retrieve.")
            return None
        order = RetrieveOrder(node, tuple(targets), self.method_box.currentData() or "", self.open_check.isChecked())
        self.retrieve_requested.emit(order)
        return order

    def retrieve_started(self, text: str) -> None:
        self.retrieving = True
        self.progress_bar.setRange(0, 0)
        self.progress_bar.show()
        self.cancel_button.show()
        self.cancel_button.setEnabled(True)
        show_outcome(self.progress_label, None, text)
        self._sync()

    def retrieve_progress(self, done: int, total: int, text: str) -> None:
        self.progress_bar.setRange(0, max(total, 0))
        self.progress_bar.setValue(done)
        if text:
            show_outcome(self.progress_label, None, text)

    def retrieve_ended(self, ok: bool, text: str) -> None:
        self.retrieving = False
        self.progress_bar.hide()
        self.cancel_button.hide()
        show_outcome(self.progress_label, ok, text)
        self._sync()

    # --- state -----------------------------------------------------------------------------------------------
    def _error(self, text: str) -> None:
        self.last_error = text
        show_outcome(self.status_label, False, text)

    def _sync(self) -> None:
        node = self.node()
        self.search_button.setEnabled(node is not None)
        self.retrieve_button.setEnabled(node is not None and not self.retrieving
                                        and bool(self.results.selectedItems()))

    def done(self, result: int) -> None:
        self._drop_queries()
        super().done(result)
