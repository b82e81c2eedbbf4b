"""The study browser: patients → studies → series with thumbnails, warnings, and the files the scan skipped; and,
in a second tab, the local study database.

A study's DICOM SEG files (``index.segmentations``, :class:`~viewer.io.seg_file.SegmentedStudyIndex`) are rows
under the series they were made on, with their segments' names and recommended colours; activating one asks for
the series and the SEG over it (``segmentation_activated``).

The widget only shows a :class:`~viewer.io.dicom_index.StudyIndex`; thumbnails
come from :func:`viewer.io.thumbnail.series_thumbnail`, computed by one
background job per index and installed on the GUI thread as they arrive.

The "Local database" tab (:class:`LocalStudies`) lists the studies retrieved, received or imported into the local
study database (:mod:`viewer.net.study_db`), searched by patient name (``*``/``?`` wildcards), patient ID, date
range, modality, accession number and description; activating a study or one of its series asks for its folder in
the store to be opened (``local_study_requested``: nothing else is scanned); Forget drops a study from the index
(its files stay), Delete removes its files too. The database is opened, and searched, in background jobs, the first
time the tab is shown: never at start-up.
"""
from __future__ import annotations

import os
import threading
import time

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QIcon, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QStyle,
    QTabWidget,
    QToolButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from viewer.core.timepoints import time_axis
from viewer.qt.jobs import BackgroundTasks

KEY_ROLE = Qt.UserRole
#: a SEG row's file (its parent series row holds the series key in ``KEY_ROLE``)
SEG_ROLE = Qt.UserRole + 1
_SWATCH = 14  # px, one segment's colour in a SEG row's icon
_MAX_SWATCHES = 6
COL_SERIES, COL_WARN = range(2)
_DUPLICATE_CLICK_S = 0.6  # a double-click also clicks: one activation, not two


def series_title(entry) -> str:
    """Description, split label and kind, as the first line of a series row."""
    text = entry.description or "(no description)"
    if entry.series_number is not None:
        text = f"{entry.series_number}: {text}"
    if entry.split_label:
        text += f" [{entry.split_label}]"
    if entry.kind != "volume":
        text += f" ({entry.kind})"
    return text


def series_counts(entry) -> str:
    """Modality and image count, as the second line of a series row."""
    n = entry.n_images
    return " · ".join(v for v in (entry.modality, f"{n} image" + ("" if n == 1 else "s")) if v)


def series_details(entry) -> str:
    """Shape and spacing (x × y × z, as radiologists read them), or the refusal."""
    if entry.refusal:
        return f"not loadable: {entry.refusal}"
    if entry.shape_zyx is None:
        return ""
    nz, ny, nx = entry.shape_zyx
    sz, sy, sx = entry.spacing_zyx
    return f"{nx}×{ny}×{nz} · {sx:.3g}×{sy:.3g}×{sz:.3g} mm"


def series_time(entry) -> str:
    """A 4D series' time points and what varies between them ("4D: 12 time points (b-value 0–1000 s/mm²)"), from
    the headers the index read (never the pixels); "" for any other series."""
    axis = _time_axis(entry)
    return axis.summary() if axis is not None else ""


def series_time_lines(entry) -> list[str]:
    """:func:`series_time` as the last lines of a series row (the panel is narrow): ``["4D: 12 time points",
    "b-value 0–1000 s/mm²"]``; ``[]`` for any other series."""
    axis = _time_axis(entry)
    if axis is None:
        return []
    return [line for line in (f"4D: {axis.n} time points", axis.varies_text()) if line]


def _time_axis(entry):
    if entry.refusal or entry.plan is None or entry.n_timepoints < 2:
        return None
    return time_axis(entry.plan.frames)


def segmentation_title(ref) -> str:
    """The first line of a SEG row: ``SEG: Liver Segmentation``."""
    return f"SEG: {ref.title}"


def segmentation_details(ref) -> str:
    """The second line of a SEG row: its segment names (numbers when they are not 1, 2, 3 …)."""
    segments = list(ref.segments)
    if not segments:
        return "no segments"
    plain = [s.number for s in segments] == list(range(1, len(segments) + 1))
    names = [s.label if plain else f"{s.number}: {s.label}" for s in segments]
    text = ", ".join(names[:6]) + (f" … ({len(names)} segments)" if len(names) > 6 else "")
    return text


def swatch_pixmap(colors) -> QPixmap:
    """Small squares in the segments' recommended colours (grey where a segment has none)."""
    colors = list(colors)[:_MAX_SWATCHES] or [None]
    pixmap = QPixmap(len(colors) * (_SWATCH + 2), _SWATCH + 2)
    pixmap.fill(Qt.transparent)
    painter = QPainter(pixmap)
    painter.setPen(QPen(QColor(30, 30, 30), 1))
    for i, rgb in enumerate(colors):
        painter.setBrush(QColor(*rgb) if rgb else QColor(128, 128, 128))
        painter.drawRect(i * (_SWATCH + 2) + 1, 1, _SWATCH - 1, _SWATCH - 1)
    painter.end()
    return pixmap


def _person_name(name: str) -> str:
    parts = [p.strip() for p in (name or "").split("^")]
    return ", ".join(p for p in parts[:2] if p) or ""


def _date(value: str) -> str:
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if len(value) == 8 and value.isdigit() else value


def _relative(path: str, root: str) -> str:
    if os.path.isfile(root):
        return os.path.basename(path)
    try:
        return os.path.relpath(path, root)
    except ValueError:  # another drive
        return path


def thumbnail_pixmap(image: np.ndarray | None, size: int) -> QPixmap:
    """A square ``size`` pixmap: the thumbnail centred on black, or a placeholder (None = pending, failed = cross)."""
    pixmap = QPixmap(size, size)
    pixmap.fill(QColor(0, 0, 0) if isinstance(image, np.ndarray) else QColor(60, 60, 60))
    painter = QPainter(pixmap)
    if isinstance(image, np.ndarray):
        image = np.ascontiguousarray(image)
        h, w = image.shape[:2]
        fmt = QImage.Format_RGB888 if image.ndim == 3 else QImage.Format_Grayscale8
        qimage = QImage(image.data, w, h, image.strides[0], fmt)
        painter.drawImage((size - w) // 2, (size - h) // 2, qimage)
    else:
        painter.setPen(QPen(QColor(120, 120, 120), 2, Qt.DashLine if image is None else Qt.SolidLine))
        painter.drawRect(4, 4, size - 9, size - 9)
        if image is not None:  # failed: a cross
            painter.drawLine(size // 3, size // 3, 2 * size // 3, 2 * size // 3)
            painter.drawLine(2 * size // 3, size // 3, size // 3, 2 * size // 3)
    painter.end()
    return pixmap


def _plain_icon(pixmap: QPixmap) -> QIcon:
    """An icon that is not tinted when its row is selected (a radiograph must keep its grey values)."""
    icon = QIcon(pixmap)
    icon.addPixmap(pixmap, QIcon.Selected)
    return icon


class _ThumbnailStore:
    """Thumbnails (arrays) or failure reasons (strings) by series key, written by the worker, taken by the GUI."""

    def __init__(self):
        self._lock = threading.Lock()
        self._ready: dict[str, np.ndarray | str] = {}

    def put(self, key: str, value) -> None:
        with self._lock:
            self._ready[key] = value

    def take_all(self) -> dict:
        with self._lock:
            ready, self._ready = self._ready, {}
        return ready


class StudyBrowser(QWidget):
    """Left-side panel: the index as a tree with thumbnails, and a collapsible list of skipped files."""

    series_activated = Signal(str)  # series key; emitted on click, double-click or Enter
    segmentation_activated = Signal(str, str)  # (series key, SEG file) of a SEG row; click, double-click or Enter
    local_study_requested = Signal(str, str)  # (folder in the local store, series UID or ""): open it

    def __init__(self, parent: QWidget | None = None, thumbnail_size: int = 96):
        super().__init__(parent)
        self.thumbnail_size = thumbnail_size
        self.index = None
        self._items: dict[str, QTreeWidgetItem] = {}
        self._seg_items: dict[tuple[str, str], QTreeWidgetItem] = {}  # (series key, SEG file) -> row
        self._store: _ThumbnailStore | None = None
        self._job: int | None = None
        self._last_emit: tuple[str, float] = ("", 0.0)
        self._tasks = BackgroundTasks(self)
        self._tasks.progressed.connect(lambda job, *_: self._install_ready(job))
        self._tasks.finished.connect(self._on_job_done)
        self._tasks.failed.connect(self._on_job_done)
        self._tasks.cancelled.connect(self._on_job_done)

        self.summary = QLabel("No study open")
        self.summary.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.summary.setContentsMargins(4, 2, 4, 2)
        # a long folder name (a study in the local store is named by its UID) is cut, not widening the dock
        self.summary.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        self.tree = QTreeWidget()
        self.tree.setColumnCount(2)
        self.tree.setHeaderHidden(True)
        self.tree.setIndentation(14)
        self.tree.setIconSize(QSize(thumbnail_size, thumbnail_size))
        self.tree.setUniformRowHeights(False)
        self.tree.itemClicked.connect(self._on_item)
        self.tree.itemActivated.connect(self._on_item)
        header = self.tree.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(COL_SERIES, header.ResizeMode.Stretch)
        header.setSectionResizeMode(COL_WARN, header.ResizeMode.ResizeToContents)

        self.skipped_toggle = QToolButton()
        self.skipped_toggle.setCheckable(True)
        self.skipped_toggle.setChecked(True)
        self.skipped_toggle.setArrowType(Qt.DownArrow)
        self.skipped_toggle.setToolButtonStyle(Qt.ToolButtonTextBesideIcon)
        self.skipped_toggle.setAutoRaise(True)
        self.skipped_toggle.toggled.connect(self._toggle_skipped)
        self.skipped_list = QTreeWidget()
        self.skipped_list.setHeaderLabels(["File", "Reason"])
        self.skipped_list.setRootIsDecorated(False)
        self.skipped_list.setWordWrap(True)
        self.skipped_panel = QWidget()
        panel_layout = QVBoxLayout(self.skipped_panel)
        panel_layout.setContentsMargins(0, 0, 0, 0)
        panel_layout.setSpacing(0)
        panel_layout.addWidget(self.skipped_toggle)
        panel_layout.addWidget(self.skipped_list)
        self.skipped_panel.hide()

        self.splitter = QSplitter(Qt.Vertical)
        self.splitter.addWidget(self.tree)
        self.splitter.addWidget(self.skipped_panel)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 1)
        self.study_page = QWidget()
        layout = QVBoxLayout(self.study_page)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.summary)
        layout.addWidget(self.splitter)
        self.local = LocalStudies()
        self.local.open_requested.connect(self.local_study_requested)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self.study_page, "Open study")
        self.tabs.addTab(self.local, "Local database")
        self.tabs.currentChanged.connect(lambda i: self.tabs.widget(i) is self.local and self.local.shown())
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.tabs)
        self._pending_icon = _plain_icon(thumbnail_pixmap(None, thumbnail_size))
        self._failed_icon = _plain_icon(thumbnail_pixmap("failed", thumbnail_size))

    # --- public API ------------------------------------------------------------
    def set_index(self, index) -> None:
        """Show ``index`` (replacing what was shown, on the "Open study" tab) and start computing its thumbnails."""
        self.clear()
        self.index = index
        self.tabs.setCurrentWidget(self.study_page)
        for patient in index.patients:
            p_text = " · ".join(v for v in (_person_name(patient.name) or patient.id,
                                            patient.id if patient.name else "", patient.sex,
                                            _date(patient.birth_date)) if v)
            p_item = self._group_item(self.tree.invisibleRootItem(), p_text, bold=True)
            for study in patient.studies:
                s_text = " · ".join(v for v in (study.description or "Study", _date(study.date),
                                                f"{len(study.series)} series") if v)
                s_item = self._group_item(p_item, s_text)
                for entry in study.series:
                    item = self._items[entry.key] = self._series_item(s_item, entry)
                    for ref in self._segmentations_of(index, entry):
                        self._seg_items[(entry.key, ref.path)] = self._segmentation_item(item, entry, ref)
        self.tree.expandAll()
        self._show_skipped(index)
        n_series = len(index.series)
        n_segs = len(getattr(index, "segmentations", ()) or ())
        segs = f", {n_segs} segmentation" + ("" if n_segs == 1 else "s") if n_segs else ""
        self.summary.setText(f"{os.path.basename(index.root.rstrip(os.sep)) or index.root}: "
                             f"{n_series} series{segs}, {index.n_files} files")
        self.summary.setToolTip(index.root)
        self._start_thumbnails([e for e in index.series if e.frames])

    def clear(self) -> None:
        """Forget the shown index and cancel its thumbnail job."""
        if self._job is not None:
            self._tasks.cancel(self._job)
        self._job, self._store, self.index = None, None, None
        self._items.clear()
        self._seg_items.clear()
        self.tree.clear()
        self.skipped_list.clear()
        self.skipped_panel.hide()
        self.summary.setText("No study open")
        self.summary.setToolTip("")

    def shutdown(self) -> None:
        """Stop the thumbnail job and the local database's jobs and wait for their threads (call from the main
        window's closeEvent)."""
        self._job = None
        self._tasks.shutdown()
        self.local.shutdown()

    def set_local_database(self, database) -> None:
        """``database()``: the local study database (a ``viewer.net.study_db.StudyDatabase``), opened on first use."""
        self.local.set_database(database)

    def refresh_local(self) -> None:
        """Search the local database again (something arrived), if its tab has been shown."""
        self.local.refresh(only_if_shown=True)

    def show_local(self) -> None:
        self.tabs.setCurrentWidget(self.local)

    def select_series(self, key: str) -> None:
        """Highlight the series row ``key`` (emits nothing)."""
        item = self._items.get(key)
        if item is not None:
            self.tree.setCurrentItem(item)
            self.tree.scrollToItem(item)

    def current_key(self) -> str | None:
        item = self.tree.currentItem()
        return item.data(COL_SERIES, KEY_ROLE) if item is not None else None

    def series_item(self, key: str) -> QTreeWidgetItem | None:
        return self._items.get(key)

    def segmentation_item(self, key: str, path: str) -> QTreeWidgetItem | None:
        """The row of the SEG file ``path`` under series ``key``."""
        return self._seg_items.get((key, path))

    def segmentation_items(self) -> dict[tuple[str, str], QTreeWidgetItem]:
        """Every SEG row, by (series key, SEG file)."""
        return dict(self._seg_items)

    def thumbnails_pending(self) -> bool:
        return self._job is not None

    # --- building rows ---------------------------------------------------------------
    def _group_item(self, parent: QTreeWidgetItem, text: str, bold: bool = False) -> QTreeWidgetItem:
        item = QTreeWidgetItem(parent, [text])
        item.setFirstColumnSpanned(True)
        item.setFlags(item.flags() & ~Qt.ItemIsSelectable)
        if bold:
            font = item.font(0)
            font.setBold(True)
            item.setFont(0, font)
        item.setToolTip(0, text)
        return item

    def _series_item(self, parent: QTreeWidgetItem, entry) -> QTreeWidgetItem:
        title = series_title(entry)
        time = series_time(entry)
        lines = [title, series_counts(entry), series_details(entry), *series_time_lines(entry)]
        item = QTreeWidgetItem(parent, ["\n".join(line for line in lines if line), ""])
        item.setData(COL_SERIES, KEY_ROLE, entry.key)
        item.setIcon(COL_SERIES, self._pending_icon)
        notes = ([f"Not loadable: {entry.refusal}"] if entry.refusal else []) + list(entry.warnings)
        tip = f"{title}\n{entry.key}" + (f"\n{time}" if time else "")
        tip += ("\n\n" + "\n".join(f"• {n}" for n in notes)) if notes else ""
        item.setToolTip(COL_SERIES, tip)
        if notes:
            kind = QStyle.SP_MessageBoxCritical if entry.refusal else QStyle.SP_MessageBoxWarning
            # from a small pixmap, so the tree's 96 px icon size does not blow it up
            item.setIcon(COL_WARN, QIcon(self.style().standardIcon(kind).pixmap(20, 20)))
            item.setToolTip(COL_WARN, "\n".join(notes))
        if entry.refusal:  # disabled-looking, but still clickable so the reason can be reported
            grey = QBrush(self.palette().color(self.palette().ColorGroup.Disabled, self.palette().ColorRole.Text))
            font = QFont(item.font(COL_SERIES))
            font.setItalic(True)
            item.setForeground(COL_SERIES, grey)
            item.setFont(COL_SERIES, font)
        return item

    @staticmethod
    def _segmentations_of(index, entry) -> list:
        refs = getattr(index, "segmentations", None) or []
        return [r for r in refs if entry.series_uid in r.referenced_series_uids]

    def _segmentation_item(self, parent: QTreeWidgetItem, entry, ref) -> QTreeWidgetItem:
        title, details = segmentation_title(ref), segmentation_details(ref)
        item = QTreeWidgetItem(parent, [f"{title}\n{details}", ""])
        item.setData(COL_SERIES, SEG_ROLE, ref.path)
        item.setIcon(COL_SERIES, _plain_icon(swatch_pixmap(s.color_rgb for s in ref.segments)))
        segments = "\n".join(f"• {s.number}: {s.label}" for s in ref.segments)
        item.setToolTip(COL_SERIES, f"{title}\n{ref.path}\n\n{segments}\n\nClick to open it over "
                                    f"{series_title(entry)}")
        return item

    def _show_skipped(self, index) -> None:
        for skipped in index.skipped:
            rel = _relative(skipped.path, index.root)
            row = QTreeWidgetItem(self.skipped_list, [rel, skipped.reason])
            row.setToolTip(0, skipped.path)
            row.setToolTip(1, skipped.reason)
        n = len(index.skipped)
        self.skipped_toggle.setText(f"Skipped files ({n})")
        self.skipped_list.resizeColumnToContents(0)
        self.skipped_panel.setVisible(n > 0)

    def _toggle_skipped(self, expanded: bool) -> None:
        self.skipped_toggle.setArrowType(Qt.DownArrow if expanded else Qt.RightArrow)
        self.skipped_list.setVisible(expanded)

    # --- activation ----------------------------------------------------------------
    def _on_item(self, item: QTreeWidgetItem, _column: int = 0) -> None:
        seg_path = item.data(COL_SERIES, SEG_ROLE)
        parent = item.parent()
        key = parent.data(COL_SERIES, KEY_ROLE) if seg_path and parent is not None else item.data(COL_SERIES, KEY_ROLE)
        if not key:
            return
        token = f"{key}\n{seg_path}" if seg_path else key
        now = time.monotonic()
        last_key, last_time = self._last_emit
        if token == last_key and now - last_time < _DUPLICATE_CLICK_S:
            return
        self._last_emit = (token, now)
        if seg_path:
            self.segmentation_activated.emit(key, seg_path)
        else:
            self.series_activated.emit(key)

    # --- thumbnails ----------------------------------------------------------------
    def _start_thumbnails(self, entries: list) -> None:
        if not entries:
            return
        from viewer.io.dicom_index import Cancelled
        from viewer.io.thumbnail import series_thumbnail

        store = self._store = _ThumbnailStore()
        size = self.thumbnail_size

        def work(progress, cancel):
            for n, entry in enumerate(entries, start=1):
                if cancel.is_set():
                    raise Cancelled("thumbnails cancelled")
                try:
                    store.put(entry.key, series_thumbnail(entry, size))
                except Exception as exc:  # shown as a placeholder with the reason
                    store.put(entry.key, f"{type(exc).__name__}: {exc}")
                progress(n, len(entries), entry.key)
            return None

        self._job = self._tasks.submit(work)

    def _install_ready(self, job: int) -> None:
        if job != self._job or self._store is None:
            return
        for key, value in self._store.take_all().items():
            item = self._items.get(key)
            if item is None:
                continue
            if isinstance(value, np.ndarray):
                item.setIcon(COL_SERIES, _plain_icon(thumbnail_pixmap(value, self.thumbnail_size)))
            else:
                item.setIcon(COL_SERIES, self._failed_icon)
                item.setToolTip(COL_SERIES, f"{item.toolTip(COL_SERIES)}\n\nNo preview: {value}")

    def _on_job_done(self, job: int, *_result) -> None:
        self._install_ready(job)
        if job == self._job:
            self._job = None


# --- the local study database -----------------------------------------------------------------------------------
STUDY_ROLE = Qt.UserRole + 2  # a local study row: its StudyRecord
LOCAL_SERIES_ROLE = Qt.UserRole + 3  # a local series row: its SeriesRecord
LOCAL_MODALITIES = ("", "CT", "MR", "PT", "NM", "US", "CR", "DX", "MG", "XA", "SEG", "SR")


def local_study_text(record) -> str:
    """Two lines: who, then when, what and how much."""
    who = " · ".join(v for v in (_person_name(record.patient_name) or record.patient_name, record.patient_id) if v)
    what = " · ".join(v for v in (_date(record.study_date), record.description, "/".join(record.modalities),
                                  f"{record.n_series or 0} series, {record.n_instances or 0} images") if v)
    return f"{who or '(no patient)'}\n{what}"


def local_series_text(record) -> str:
    number = f"{record.number}: " if record.number is not None else ""
    n = record.n_instances or 0
    return f"{number}{record.description or '(no description)'} · {record.modality} · {n} image{'s' if n != 1 else ''}"


class LocalStudies(QWidget):
    """The local study database: search, the matching studies with their series, Open / Forget / Delete.

    ``set_database(provider)``: ``provider()`` returns the database (called in the background jobs). ``studies``:
    the records shown; ``last_error``: the last failure said.
    """

    open_requested = Signal(str, str)  # folder, series UID ("" for the whole study)
    searched = Signal()  # a search's results are shown

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.provider = None
        self.studies: list = []
        self.last_error = ""
        self._shown = False
        self._search_job: int | None = None
        self._callbacks: dict[int, tuple] = {}
        self._tasks = BackgroundTasks(self)
        self._tasks.finished.connect(lambda job, value: self._ended(job, 0, value))
        self._tasks.failed.connect(lambda job, text: self._ended(job, 1, text))
        self._tasks.cancelled.connect(lambda job: self._callbacks.pop(job, None))

        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("patient name (* and ? wildcards)")
        self.id_edit = QLineEdit()
        self.id_edit.setPlaceholderText("patient ID")
        self.date_from = QLineEdit()
        self.date_from.setPlaceholderText("from YYYYMMDD")
        self.date_to = QLineEdit()
        self.date_to.setPlaceholderText("to YYYYMMDD")
        self.modality_box = QComboBox()
        self.modality_box.setEditable(True)
        self.modality_box.addItems(LOCAL_MODALITIES)
        self.accession_edit = QLineEdit()
        self.accession_edit.setPlaceholderText("accession number")
        self.description_edit = QLineEdit()
        self.description_edit.setPlaceholderText("study description")
        self.form = QFormLayout()
        self.form.setContentsMargins(4, 4, 4, 0)
        self.form.addRow("Name", self.name_edit)
        self.form.addRow("ID", self.id_edit)
        dates = QHBoxLayout()
        dates.addWidget(self.date_from)
        dates.addWidget(self.date_to)
        self.form.addRow("Date", dates)
        self.form.addRow("Modality", self.modality_box)
        self.form.addRow("Accession", self.accession_edit)
        self.form.addRow("Description", self.description_edit)
        self.more_toggle = QToolButton()
        self.more_toggle.setText("More criteria")
        self.more_toggle.setCheckable(True)
        self.more_toggle.setArrowType(Qt.RightArrow)
        self.more_toggle.setToolButtonStyle(Qt.ToolButtonTextBesideIcon)
        self.more_toggle.setAutoRaise(True)
        self.more_toggle.toggled.connect(self._toggle_more)
        self._toggle_more(False)
        self.search_button = QPushButton("Search")
        self.search_button.clicked.connect(self.refresh)
        for edit in (self.name_edit, self.id_edit, self.date_from, self.date_to, self.accession_edit,
                     self.description_edit):
            edit.returnPressed.connect(self.refresh)
        search_row = QHBoxLayout()
        search_row.setContentsMargins(4, 0, 4, 0)
        search_row.addWidget(self.more_toggle)
        search_row.addStretch(1)
        search_row.addWidget(self.search_button)

        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        self.summary.setContentsMargins(4, 2, 4, 2)
        self.summary.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.tree = QTreeWidget()
        self.tree.setHeaderHidden(True)
        self.tree.setIndentation(14)
        self.tree.setSelectionMode(QAbstractItemView.SingleSelection)
        self.tree.setWordWrap(True)
        self.tree.itemActivated.connect(lambda item, _c: self.open_item(item))
        self.tree.itemSelectionChanged.connect(self._sync)
        self.open_button = QPushButton("Open")
        self.open_button.setToolTip("Open the study (or the series) from its folder in the local store")
        self.open_button.clicked.connect(lambda: self.open_item(self.tree.currentItem()))
        self.forget_button = QPushButton("Forget")
        self.forget_button.setToolTip("Drop the study from the local database; its files stay in the store")
        self.forget_button.clicked.connect(lambda: self.forget_selected())
        self.delete_button = QPushButton("Delete…")
        self.delete_button.setToolTip("Drop the study from the local database and delete its files")
        self.delete_button.clicked.connect(lambda: self.delete_selected(confirm=True))
        buttons = QHBoxLayout()
        buttons.setContentsMargins(4, 0, 4, 4)
        for b in (self.open_button, self.forget_button, self.delete_button):
            buttons.addWidget(b)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(self.form)
        layout.addLayout(search_row)
        layout.addWidget(self.summary)
        layout.addWidget(self.tree, 1)
        layout.addLayout(buttons)
        self.confirm_box: QMessageBox | None = None
        self._sync()

    # --- the database ------------------------------------------------------------------------------------------
    def set_database(self, provider) -> None:
        self.provider = provider
        self.summary.setText("")

    def shown(self) -> None:
        """The tab was shown: the first time, the database is searched."""
        if not self._shown:
            self._shown = True
            self.refresh()

    def shutdown(self) -> None:
        self._callbacks.clear()
        self._tasks.shutdown()

    def _submit(self, work, on_done, on_failed=None) -> int:
        job = self._tasks.submit(lambda progress, cancel: work(self.provider()))
        self._callbacks[job] = (on_done, on_failed or self._failed)
        return job

    def _ended(self, job: int, which: int, value) -> None:
        callbacks = self._callbacks.pop(job, None)
        if callbacks is not None:
            callbacks[which](value)

    def _failed(self, text: str) -> None:
        self.last_error = text
        self.summary.setStyleSheet("color: #c62828;")
        self.summary.setText(f"Local database: {text}")

    # --- search ------------------------------------------------------------------------------------------------
    def criteria(self):
        from viewer.net.records import QueryCriteria

        lo, hi = self.date_from.text().strip(), self.date_to.text().strip()
        dates = "" if not (lo or hi) else lo if lo == hi else f"{lo}-{hi}"
        return QueryCriteria(patient_name=self.name_edit.text().strip(), patient_id=self.id_edit.text().strip(),
                             study_date=dates, modality=self.modality_box.currentText().strip().upper(),
                             accession=self.accession_edit.text().strip(),
                             description=self.description_edit.text().strip(), limit=500)

    def refresh(self, only_if_shown: bool = False) -> int | None:
        """Search the database with the criteria (in a job); the results replace the list."""
        if self.provider is None or (only_if_shown and not self._shown):
            return None
        self._shown = True
        try:
            criteria = self.criteria()
        except ValueError as exc:  # SettingsError: a date that is not one
            self._failed(str(exc))
            return None

        def work(db):
            studies = db.search(criteria)
            return studies, {s.study_uid: db.series_of(s.study_uid) for s in studies}, str(db.root)

        def done(value) -> None:
            if job == self._search_job:
                self._search_job = None
                self.show_studies(*value)

        if self._search_job is not None:
            self._callbacks.pop(self._search_job, None)
            self._tasks.cancel(self._search_job)
        job = self._search_job = self._submit(work, done)
        return job

    def show_studies(self, studies: list, series: dict, root: str = "") -> None:
        current = self.selected_study()
        self.studies = list(studies)
        self.tree.clear()
        for record in self.studies:
            item = QTreeWidgetItem(self.tree, [local_study_text(record)])
            item.setData(0, STUDY_ROLE, record)
            item.setToolTip(0, f"{record.patient_name}\nStudy {record.study_uid}\nDouble-click or Enter to open")
            for s in series.get(record.study_uid, []):
                child = QTreeWidgetItem(item, [local_series_text(s)])
                child.setData(0, LOCAL_SERIES_ROLE, s)
                child.setToolTip(0, f"Series {s.series_uid}\nDouble-click or Enter to open")
            if current is not None and record.study_uid == current.study_uid:
                self.tree.setCurrentItem(item)
        n = len(self.studies)
        self.summary.setStyleSheet("")
        self.summary.setText(f"{n} stud{'y' if n == 1 else 'ies'} in the local database"
                             + ("" if n < 500 else " (the first 500)"))
        self.summary.setToolTip(root)
        self._sync()
        self.searched.emit()

    def _toggle_more(self, on: bool) -> None:
        """Date, modality, accession number and description: shown on demand (name and ID always)."""
        for row in range(2, self.form.rowCount()):
            self.form.setRowVisible(row, on)
        self.more_toggle.setArrowType(Qt.DownArrow if on else Qt.RightArrow)

    # --- the selection -----------------------------------------------------------------------------------------
    def selected_study(self):
        item = self.tree.currentItem()
        if item is None:
            return None
        if item.parent() is not None:
            item = item.parent()
        return item.data(0, STUDY_ROLE)

    def study_item(self, study_uid: str) -> QTreeWidgetItem | None:
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            if item.data(0, STUDY_ROLE).study_uid == study_uid:
                return item
        return None

    def _sync(self) -> None:
        chosen = self.selected_study() is not None
        for b in (self.open_button, self.forget_button, self.delete_button):
            b.setEnabled(chosen)

    def open_item(self, item: QTreeWidgetItem | None) -> None:
        """Ask for the study (a study row) or the series (a series row) to be opened from its folder."""
        if item is None or self.provider is None:
            return
        series = item.data(0, LOCAL_SERIES_ROLE)
        study = item.parent().data(0, STUDY_ROLE) if series is not None else item.data(0, STUDY_ROLE)
        if study is None:
            return
        self._submit(lambda db: db.location(study.study_uid),
                     lambda folder: self.open_requested.emit(folder, series.series_uid if series is not None else ""))

    def forget_selected(self) -> int | None:
        """Drop the selected study from the index (its files stay in the store)."""
        study = self.selected_study()
        if study is None:
            return None
        return self._submit(lambda db: db.forget(study.study_uid), lambda n: self._changed(
            f"Forgot {_person_name(study.patient_name) or study.study_uid} ({n} images; the files stay in the store)"))

    def delete_selected(self, confirm: bool = True) -> int | None:
        """Drop the selected study and delete its files (``confirm``: ask first, in a non-modal box)."""
        study = self.selected_study()
        if study is None:
            return None
        if not confirm:
            return self._delete(study)
        who = _person_name(study.patient_name) or study.patient_id or study.study_uid
        box = self.confirm_box = QMessageBox(QMessageBox.Warning, "Delete study",
                                             f"Delete the study of {who} ({_date(study.study_date)}) and its "
                                             f"{study.n_instances or 0} files from the local store?",
                                             QMessageBox.Yes | QMessageBox.Cancel, self)
        box.setAttribute(Qt.WA_DeleteOnClose)
        box.buttonClicked.connect(lambda button: box.standardButton(button) == QMessageBox.Yes and self._delete(study))
        box.open()
        return None

    def _delete(self, study) -> int:
        return self._submit(lambda db: db.delete(study.study_uid), lambda n: self._changed(
            f"Deleted {_person_name(study.patient_name) or study.study_uid} ({n} images)"))

    def _changed(self, text: str) -> None:
        """A study was forgotten or deleted: search again, and say what was done."""
        def then(value) -> None:
            self._search_job = None
            self.show_studies(*value)
            self.summary.setText(f"{text}. {self.summary.text()}")

        job = self.refresh()
        if job is not None:
            self._callbacks[job] = (then, self._failed)
