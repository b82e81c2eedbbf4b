"""The study browser: patients → studies → series with thumbnails, warnings, and the files the scan skipped.

A study's DICOM SEG files (``index.segmentations``, :class:`~viewer.io.seg_file.SegmentedStudyIndex`) are rows
under the series they were made on, with their segments' names and recommended colours; activating one asks for
the series and the SEG over it (``segmentation_activated``).

The widget only shows a :class:`~viewer.io.dicom_index.StudyIndex`; thumbnails
come from :func:`viewer.io.thumbnail.series_thumbnail`, computed by one
background job per index and installed on the GUI thread as they arrive.
"""
from __future__ import annotations

import os
import threading
import time

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QIcon, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QLabel, QSplitter, QStyle, QToolButton, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

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
    text = f"{nx}×{ny}×{nz} · {sx:.3g}×{sy:.3g}×{sz:.3g} mm"
    if entry.n_timepoints > 1:
        text += f" · {entry.n_timepoints} time points"
    return text


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
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.summary)
        layout.addWidget(self.splitter)
        self._pending_icon = _plain_icon(thumbnail_pixmap(None, thumbnail_size))
        self._failed_icon = _plain_icon(thumbnail_pixmap("failed", thumbnail_size))

    # --- public API ------------------------------------------------------------
    def set_index(self, index) -> None:
        """Show ``index`` (replacing what was shown) and start computing its thumbnails."""
        self.clear()
        self.index = index
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
        """Stop the thumbnail job and wait for its thread (call from the main window's closeEvent)."""
        self._job = None
        self._tasks.shutdown()

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
        lines = [title, series_counts(entry), series_details(entry)]
        item = QTreeWidgetItem(parent, ["\n".join(line for line in lines if line), ""])
        item.setData(COL_SERIES, KEY_ROLE, entry.key)
        item.setIcon(COL_SERIES, self._pending_icon)
        notes = ([f"Not loadable: {entry.refusal}"] if entry.refusal else []) + list(entry.warnings)
        tip = f"{title}\n{entry.key}" + ("\n\n" + "\n".join(f"• {n}" for n in notes) if notes else "")
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
