"""The main window: study browser, the reading layout, the overlay panel, menus and toolbar.

Scanning, loading, segmentation reading and thumbnails run off the GUI thread
(``BackgroundTasks``) with progress and cancel; results come back tagged with
their job id, and a superseded load's result is dropped. The first slice of a
series shows while the rest is still loading.
"""
from __future__ import annotations

import json
import os

import numpy as np
from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtGui import QActionGroup, QKeySequence
from PySide6.QtWidgets import (QComboBox, QDockWidget, QFileDialog, QLabel, QMainWindow, QMessageBox, QProgressBar,
                               QPushButton, QToolBar)

from viewer import ABOUT_TEXT
from viewer.core.session import Session
from viewer.core.window_presets import CT_PRESETS, FROM_FILE
from viewer.qt.jobs import BackgroundTasks
from viewer.qt.panels.layer_panel import LayerPanel
from viewer.qt.recent import RecentStudies
from viewer.qt.panels.study_browser import StudyBrowser
from viewer.qt.views.view_layout import LAYOUTS, ViewLayout

KEYS_HELP = """<b>Mouse</b>: wheel scroll · left-drag window/level · middle-drag pan · right-drag or Ctrl+wheel zoom ·
Shift+move or Shift+click move the linked cursor · double-click maximise.<br>
<b>Keys</b>: Up/Down (Shift ×10), Home/End slices · PgUp/PgDn previous/next series · 0 window from file,
1 soft tissue, 2 lung, 3 bone, 4 brain, 5 liver, 6 mediastinum, 7 stroke, 8 CT angiography · Space reset ·
I invert · C cine · F12 corner text · Shift+F12 hide patient data · G overlays.<br>
<b>Measure</b>: L length · A angle · E ellipse ROI · R rectangle ROI · T text arrow · Esc back to navigation ·
drag or click-click to draw · click to select, drag to move, drag an end point to reshape · Delete removes ·
Ctrl+Z / Ctrl+Y undo / redo. Measurements are saved after every change.<br>
<b>Label maps</b>: B brush · X (or Shift+B) eraser · [ / ] brush radius · the label painted: toolbar Label box or a
click in the Overlays legend · Ctrl+Z undoes a stroke.<br>
<b>AI review</b> (Findings panel): Y accept · N reject · U not reviewed · Shift+Y / Shift+N accept / reject the
result as a whole · right-click for more. Decisions are saved with the study and undone with Ctrl+Z."""


class MainWindow(QMainWindow):
    annotation_save_failed = Signal(str)  # from the autosave thread, delivered on the GUI thread
    exported = Signal(str)  # a screenshot or report was written (its path)

    def __init__(self, settings: QSettings | None = None, annotation_dir: str | None = None):
        super().__init__()
        self.setWindowTitle("radview — research viewer, not for clinical use")
        self.resize(1500, 900)
        self.setAcceptDrops(True)
        self.session = Session()
        self.tasks = BackgroundTasks(self)
        self.tasks.progressed.connect(self._on_progress)
        self.tasks.finished.connect(self._on_finished)
        self.tasks.failed.connect(self._on_failed)
        self.tasks.cancelled.connect(self._on_cancelled)
        self._handlers: dict[int, callable] = {}
        self._current_job: int | None = None
        self._load_job: int | None = None
        self._after_load = None
        self._preview: tuple[int, np.ndarray] | None = None
        self.index = None
        self.recent = RecentStudies(settings)
        self.include_patient_data_in_exports = False
        self.last_message = ""
        self.view3d = None
        self.message_box: QMessageBox | None = None

        self.layout_widget = ViewLayout(self.session)
        self.setCentralWidget(self.layout_widget)
        self.browser = StudyBrowser()
        self.browser.series_activated.connect(self.load_series)
        study_dock = self._add_dock("Study", self.browser, Qt.LeftDockWidgetArea)
        self.layer_panel = LayerPanel(self.session)
        overlay_dock = self._add_dock("Overlays", self.layer_panel, Qt.RightDockWidgetArea)
        self.resizeDocks([study_dock, overlay_dock], [320, 280], Qt.Horizontal)
        for view in self.layout_widget.views.values():
            view.series_step_requested.connect(self.step_series)

        self._build_status_bar()
        self._build_menus()
        self._build_toolbar()
        from viewer.store.annotation_store import AnnotationStore, Autosave
        from viewer.qt.overlays.annotation_tools import build_measure_ui

        self.autosave = Autosave(self.session.annotations, AnnotationStore(annotation_dir))
        self.autosave.save_failed.connect(lambda message: self.annotation_save_failed.emit(message))
        self.annotation_save_failed.connect(lambda message: self._report(message, dialog=False))
        from viewer.store.layer_store import LayerAutosave, LayerStore  # AI and edited label layers, per study

        self.layer_autosave = LayerAutosave(self.session, LayerStore(self.autosave.store.directory))
        self.layer_autosave.save_failed.connect(lambda message: self.annotation_save_failed.emit(message))
        self.session.volume_loaded.connect(self._open_annotations)
        self.measure_menu = build_measure_ui(self, self.layout_widget.tools, self.session.annotations)
        self.session.window_changed.connect(self._sync_preset_box)
        from viewer.qt.controllers.ai_controller import AiController  # AI menu, findings dock; the AI thread starts on use

        self.ai = AiController(self)
        from viewer.qt.panels.metrics_panel import ReferenceComparison  # AI → Compare with reference segmentation…

        self.comparison = ReferenceComparison(self)

    # --- construction -------------------------------------------------------------------
    def _add_dock(self, title, widget, area) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(title)
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetFloatable)
        self.addDockWidget(area, dock)
        return dock

    def _build_status_bar(self) -> None:
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(240)
        self.progress.hide()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.hide()
        self.cancel_button.clicked.connect(self.cancel_current)
        self.status_label = QLabel("Open a study folder (File → Open folder…, or drop it here)")
        self.skipped_label = QLabel("")
        self.skipped_label.setStyleSheet("color: #b36b00;")
        self.statusBar().addWidget(self.status_label, 1)
        self.statusBar().addPermanentWidget(self.skipped_label)
        self.statusBar().addPermanentWidget(self.progress)
        self.statusBar().addPermanentWidget(self.cancel_button)

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        file_menu.addAction("&Open folder…", QKeySequence("Ctrl+O"), self.choose_folder)
        file_menu.addAction("Open &file…", QKeySequence("Ctrl+Shift+O"), self.choose_file)
        self.recent_menu = file_menu.addMenu("&Recent studies")
        self.recent_menu.aboutToShow.connect(lambda: self.recent.populate_menu(self.recent_menu, self.open_path))
        file_menu.addAction("Open &demo study", self.open_demo)
        file_menu.addSeparator()
        file_menu.addAction("Load &segmentation…", self.choose_segmentation)
        export = self.export_menu = file_menu.addMenu("&Export")
        export.addAction("Screenshot of &active view…", lambda: self.choose_screenshot("view"))
        export.addAction("Screenshot of &layout…", lambda: self.choose_screenshot("layout"))
        export.addAction("Screenshot of &3D view…", lambda: self.choose_screenshot("3d"))
        export.addAction("&Report (PDF)…", self.choose_report)
        export.addSeparator()
        from viewer.qt.controllers.export_actions import ExportActions  # SEG, NIfTI, SR, JSON, de-identified copy

        self.exports = ExportActions(self, export)
        export.addSeparator()
        include = export.addAction("Include patient data (default for exports)")
        include.setCheckable(True)
        include.toggled.connect(lambda on: setattr(self, "include_patient_data_in_exports", on))
        file_menu.addSeparator()
        file_menu.addAction("&Quit", QKeySequence("Ctrl+Q"), self.close)

        view_menu = self.menuBar().addMenu("&View")
        group = QActionGroup(self)
        for name in LAYOUTS:
            action = view_menu.addAction(f"Layout {name.replace('x', '×')}")
            action.setCheckable(True)
            action.setChecked(name == self.layout_widget.layout_name)
            action.triggered.connect(lambda _=False, n=name: self.set_layout(n))
            group.addAction(action)
        view_menu.addSeparator()
        self._toggle(view_menu, "Corner text\tF12", "show_corner_text")
        self._toggle(view_menu, "Patient data\tShift+F12", "show_patient_data")
        self._toggle(view_menu, "Overlays\tG", "overlays_visible")
        self._toggle(view_menu, "Invert\tI", "invert")
        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction("&Mouse and keys", lambda: QMessageBox.information(self, "Mouse and keys", KEYS_HELP))
        help_menu.addAction("&About radview", self.show_about)

    def _toggle(self, menu, text: str, option: str) -> None:
        action = menu.addAction(text)
        action.setCheckable(True)
        action.setChecked(getattr(self.session, option))
        action.toggled.connect(lambda on: getattr(self.session, option) != on and self.session.set_display(
            **{option: on}))
        self.session.display_changed.connect(lambda: action.setChecked(getattr(self.session, option)))

    def _build_toolbar(self) -> None:
        bar = QToolBar("Reading")
        bar.setObjectName("reading")
        self.addToolBar(bar)
        for name in LAYOUTS:
            bar.addAction(name.replace("x", "×"), lambda n=name: self.set_layout(n))
        bar.addSeparator()
        self.preset_box = QComboBox()
        self.preset_box.addItem(f"0  {FROM_FILE}", FROM_FILE)
        for preset in CT_PRESETS:
            self.preset_box.addItem(f"{preset.key}  {preset.name} ({preset.width:g}/{preset.level:g})", preset.name)
        self.preset_box.addItem("custom", "")
        self.preset_box.activated.connect(lambda i: self.preset_box.itemData(i) and self.session.apply_preset(
            self.preset_box.itemData(i)))
        bar.addWidget(QLabel(" Window "))
        bar.addWidget(self.preset_box)
        bar.addSeparator()
        bar.addAction("Invert", lambda: self.session.set_display(invert=not self.session.invert))
        bar.addAction("Reset", lambda: self.layout_widget.active.reset_view())
        bar.addAction("Cine", lambda: self.layout_widget.active.toggle_cine())

    def set_layout(self, name: str) -> None:
        """1×1, 1×3 or 2×2; the 3D view (VTK) is created the first time the 2×2 layout needs it."""
        if name == "2x2":
            self.ensure_3d_view()
        self.layout_widget.set_layout(name)

    def ensure_3d_view(self):
        """The 3D pane, built on first use (VTK is not imported at start-up); None where VTK cannot draw."""
        if self.view3d is None:
            from viewer.qt.views.view3d import View3D, vtk_widget_supported

            if not vtk_widget_supported():
                return None
            self.view3d = View3D(self.session)
            self.view3d.maximise_requested.connect(self.layout_widget.toggle_maximise)
            self.layout_widget.set_3d_pane(self.view3d)
        return self.view3d

    def _sync_preset_box(self, _w, _l, name: str) -> None:
        i = self.preset_box.findData(name)
        self.preset_box.setCurrentIndex(i if i >= 0 else self.preset_box.count() - 1)

    # --- opening --------------------------------------------------------------------------
    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open study folder")
        if folder:
            self.open_path(folder)

    def choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open image", "", "Images (*.dcm *.nii *.nii.gz *.nrrd *.nhdr "
                                              "*.mha *.mhd);;All files (*)")
        if path:
            self.open_path(path)

    def show_about(self) -> None:
        QMessageBox.about(self, "About radview", ABOUT_TEXT)

    def open_demo(self) -> None:
        """The demo study, ready to read: lung window, axial view at a nodule."""
        from viewer.demo import ensure_demo

        def work(progress, cancel):
            return ensure_demo(progress=lambda f, msg: progress(int(f * 100), 100, msg))

        def opened(paths) -> None:
            with open(paths.nodules_json, encoding="utf-8") as fh:
                nodules = json.load(fh)
            solid = [n for n in nodules if n.get("type") == "solid"] or nodules
            target = sorted(solid, key=lambda n: abs(n["diameter_mm"] - 12))[0] if solid else None

            def ready(volume) -> None:
                if volume.meta.get("series_uid") != paths.ct_series_uid:
                    return
                self.session.apply_preset("lung")
                if target is not None:
                    self.session.move_cursor(target["center_lps_mm"])
                self.layout_widget.set_active(self.layout_widget.views["axial"])

            self._after_load = ready
            self.open_path(str(paths.dicom_dir), series=paths.ct_series_uid)

        self._start(work, opened, "Preparing the demo study…")

    def open_path(self, path: str, series: str | None = None) -> None:
        from viewer.io.dicom_index import scan
        from viewer.io.image_io import is_image_file, read_image

        path = str(path)
        if not os.path.exists(path):
            self._report(f"{path} does not exist")
            return
        if is_image_file(path):
            self._start(lambda progress, cancel: read_image(path), self._show_volume, f"Reading {path}…")
            self.recent.add(path)
            return

        def work(progress, cancel):
            return scan(path, progress=lambda d, t, p: progress(d, t, os.path.basename(p)), cancel=cancel)

        self._start(work, lambda index: self._show_index(index, path, series), f"Indexing {path}…")

    def load_series(self, key: str) -> None:
        from viewer.io.series_loader import load_series

        if self.index is None:
            return
        entry = self.index.find(key)
        if not entry.loadable:
            self._report(f"{entry.description or key}: {entry.refusal}", dialog=False)
            return
        if self._load_job is not None:  # superseded: cancel it and drop its result if it still arrives
            self.tasks.cancel(self._load_job)
            self._handlers.pop(self._load_job, None)
        self._preview = None
        self.browser.select_series(key)

        def work(progress, cancel):
            def on_slice(z, img):
                if self._preview is None:
                    self._preview = (z, np.array(img))
                    progress(0, 1, "first slice")
            return load_series(entry, progress=lambda d, t: progress(d, t, ""), cancel=cancel, on_slice=on_slice)

        self._load_job = self._start(work, self._show_volume, f"Loading {entry.description or key}…")

    def step_series(self, step: int) -> None:
        """PgUp / PgDn: the previous / next loadable volume series of the study."""
        if self.index is None or self.session.volume is None:
            return
        keys = [e.key for e in self.index.volumes() if e.loadable]
        current = self.session.volume.meta.get("series_key")
        if current in keys:
            i = keys.index(current) + step
            if 0 <= i < len(keys):
                self.load_series(keys[i])

    def choose_segmentation(self) -> None:
        if self.session.volume is None:
            self._report("Load a series first: a segmentation is shown over the current series.")
            return
        path, _ = QFileDialog.getOpenFileName(self, "Load segmentation", "", "Label maps (*.nii *.nii.gz *.nrrd "
                                              "*.seg.nrrd *.nhdr *.mha *.mhd);;All files (*)")
        if path:
            self.load_segmentation(path)

    def load_segmentation(self, path: str) -> None:
        from viewer.io.image_io import read_label_map
        from viewer.core.layers import LabelLayer

        def work(progress, cancel):  # reading and the per-label volumes (a pass over every voxel) stay off the GUI
            return LabelLayer(read_label_map(path), name=os.path.basename(path))

        self._start(work, lambda layer: self._add_label_layer(layer, path), f"Reading {os.path.basename(path)}…")

    def _add_label_layer(self, layer, path: str) -> None:
        from radview_base.geometry import GeometryMismatchError

        try:
            self.session.add_layer(layer)
        except GeometryMismatchError as exc:
            self._report(f"{os.path.basename(path)} was not loaded: it does not lie on this series' voxel grid "
                         f"({exc}). Load it over the series it was made for.")
            return
        except RuntimeError as exc:
            self._report(f"{os.path.basename(path)} was not loaded: {exc}")
            return
        self.status_label.setText(f"{os.path.basename(path)}: {len(layer.volumes_ml)} labels")

    def choose_screenshot(self, what: str) -> None:
        """File → Export → Screenshot…: file, size, JPEG quality and patient data, then written in the background."""
        from viewer.qt.capture.screenshot import ScreenshotDialog

        dialog = ScreenshotDialog(self, os.path.abspath(f"radview-{what}.png"), self.include_patient_data_in_exports,
                                  title={"view": "Screenshot of the active view", "layout": "Screenshot of the layout",
                                         "3d": "Screenshot of the 3D view"}.get(what, "Export screenshot"))
        if dialog.exec() and dialog.path:
            self.export_screenshot(dialog.path, what, dialog.options(), wait=False)

    def export_screenshot(self, path: str, what: str = "view", options=None, wait: bool = True) -> str | None:
        """Save the active view (``what="view"``), the whole layout or the 3D view as seen.

        The picture is drawn on the GUI thread without changing anything on screen; encoding and the atomic write
        run on a worker unless ``wait``. Returns the path (``wait=False``: the path it is being written to; the
        ``exported`` signal follows), or None when it could not be made (reported).
        """
        from viewer.qt.capture.screenshot import ScreenshotOptions, image_format, render, save_image

        if options is None:
            options = ScreenshotOptions(include_patient_data=self.include_patient_data_in_exports)
        try:
            image_format(path)
            if what == "3d":
                if self.view3d is None or not self.view3d.isVisible():
                    raise ValueError("the 3D view is not open (choose the 2×2 layout)")
                widget = self.view3d
            else:
                widget = self.layout_widget.active if what == "view" else self.layout_widget
            image = render(widget, options)
        except (OSError, ValueError, RuntimeError) as exc:
            self._report(f"Screenshot not saved: {exc}")
            return None
        return self._write_export(lambda: save_image(image, path, options.quality), "Screenshot", path, wait)

    def _write_export(self, write, what: str, path: str, wait: bool) -> str | None:
        """Run ``write()`` (which returns the written path) now or on a worker; report the outcome."""
        def done(result) -> None:
            ok, value = result
            if ok:
                self.status_label.setText(f"Saved {value}")
                self.exported.emit(value)
            else:
                self._report(f"{what} not saved: {value}")

        def attempt(*_args):
            try:
                return True, write()
            except (OSError, ValueError, RuntimeError) as exc:
                return False, str(exc)

        if wait:
            result = attempt()
            done(result)
            return result[1] if result[0] else None
        job = self.tasks.submit(attempt)
        self._handlers[job] = done
        self.status_label.setText(f"Writing {os.path.basename(path)}…")
        return os.path.abspath(path)

    def choose_report(self) -> None:
        """File → Export → Report (PDF)…: a one-page report of the open series, its AI results and measurements."""
        from viewer.qt.capture.report import ReportDialog

        if self.session.volume is None:
            self._report("Open a series first: the report is about the series on screen.")
            return
        dialog = ReportDialog(self, os.path.abspath("radview-report.pdf"), self.include_patient_data_in_exports)
        if dialog.exec() and dialog.path:
            self.export_report(dialog.path, dialog.include_patient_data, wait=False)

    def export_report(self, path: str, include_patient_data: bool | None = None, wait: bool = True) -> str | None:
        """Write the one-page PDF report: the data and key images are gathered here, the PDF is painted and
        written on a worker unless ``wait``. Returns the path (see :meth:`export_screenshot`) or None."""
        from viewer.qt.capture.report import report_from_window, write_report

        include = self.include_patient_data_in_exports if include_patient_data is None else include_patient_data
        try:
            if not str(path).lower().endswith(".pdf"):
                raise ValueError("the report is a PDF file: give a name ending in .pdf")
            data = report_from_window(self, include)
        except (OSError, ValueError, RuntimeError) as exc:
            self._report(f"Report not saved: {exc}")
            return None
        return self._write_export(lambda: write_report(data, path), "Report", path, wait)

    def cancel_current(self) -> None:
        if self._current_job is not None:
            self.tasks.cancel(self._current_job)

    # --- task plumbing -------------------------------------------------------------------
    def _start(self, work, on_done, message: str) -> int:
        job = self.tasks.submit(work)
        self._handlers[job] = on_done
        self._current_job = job
        self.status_label.setText(message)
        self.progress.setRange(0, 0)
        self.progress.show()
        self.cancel_button.show()
        return job

    def _finish_ui(self, job: int) -> None:
        self._handlers.pop(job, None)
        if job == self._load_job:
            self._load_job = None
            if self.session.volume is None:  # failed or cancelled: no "Loading…" preview left behind
                self.layout_widget.clear_preview()
        if job == self._current_job:
            self.progress.hide()
            self.cancel_button.hide()
            self._current_job = None

    def _on_progress(self, job: int, done: int, total: int, message: str) -> None:
        if message == "first slice" and job == self._load_job and self._preview is not None:
            self.layout_widget.show_preview(*self._preview)
            return
        if job != self._current_job:
            return
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)

    def _on_finished(self, job: int, result) -> None:
        handler = self._handlers.get(job)
        self._finish_ui(job)
        if handler is not None:
            handler(result)

    def _on_failed(self, job: int, message: str) -> None:
        known = job in self._handlers
        self._finish_ui(job)
        if known:
            self._report(message)

    def _on_cancelled(self, job: int) -> None:
        self._finish_ui(job)
        self.status_label.setText("Cancelled")

    def _report(self, message: str, dialog: bool = True) -> None:
        """Tell the user; the dialog is not modal, so nothing waits on it (and background results still land)."""
        self.last_message = message
        self.status_label.setText(message)
        if dialog:
            box = QMessageBox(QMessageBox.Warning, "radview", message, QMessageBox.Ok, self)
            box.setAttribute(Qt.WA_DeleteOnClose)
            box.setModal(False)
            box.show()
            self.message_box = box

    # --- results ------------------------------------------------------------------------------
    def _show_index(self, index, path: str, series: str | None) -> None:
        self.index = index
        self.browser.set_index(index)
        self.recent.add(path)
        n_skipped = len(index.skipped)
        text = f"{len(index.series)} series"
        if n_skipped:
            text += f", {n_skipped} files skipped (see the list under the study)"
        self.status_label.setText(text)
        self.skipped_label.setText(f"{n_skipped} files skipped" if n_skipped else "")
        self.skipped_label.setToolTip("\n".join(f"{s.path}: {s.reason}" for s in index.skipped[:50]))
        if not index.series:
            self._report(f"No images found in {path}" + (f" ({n_skipped} files skipped)" if n_skipped else ""))
            return
        target = None
        if series is not None:
            try:
                target = index.find(series)
            except KeyError:
                target = None
        target = target or index.largest_volume()
        if target is not None:
            self.load_series(target.key)

    def _open_annotations(self, volume) -> None:
        """The saved measurements of the volume's study (once per study; a damaged file is reported)."""
        from viewer.core.annotations import study_key

        key = study_key(volume.meta)
        if key and key != self.autosave.study_uid:
            message = self.autosave.open_study(key)
            if message:
                self._report(message)
        if key:
            self._restore_layers(volume, key)

    def _restore_layers(self, volume, study: str) -> None:
        """The layers saved for this series (AI results, edited label maps), read off the GUI thread and added
        when the series is still the one shown; a layer that could not be read is reported."""
        from radview_base.geometry import GeometryMismatchError
        from viewer.store.layer_store import series_of

        if not self.layer_autosave.has_saved(study):
            return
        series = series_of(volume.meta)

        def done(loaded) -> None:
            if self.session.volume is not volume:
                return
            self.layer_autosave.adopt(loaded.layers, study)
            for stored in loaded.layers:
                try:
                    self.session.add_layer(stored.layer)
                except GeometryMismatchError as exc:
                    loaded.messages.append(f"The saved layer {stored.layer.name} does not lie on this series' grid "
                                           f"({exc}); it was not shown.")
            if loaded.messages:
                self._report(" ".join(loaded.messages))

        job = self.tasks.submit(lambda progress, cancel: self.layer_autosave.load_series(study, series))
        self._handlers[job] = done

    def _show_volume(self, volume) -> None:
        self.session.load_volume(volume)
        text = f"{volume.meta.get('description', '') or 'Volume'}: " + "×".join(map(str, volume.shape_zyx))
        if volume.warnings:
            text += " — " + "; ".join(volume.warnings)
        self.status_label.setText(text)
        after, self._after_load = self._after_load, None
        if after is not None:
            after(volume)

    # --- drag and drop, closing -------------------------------------------------------------------
    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            self.open_path(paths[0])
            event.acceptProposedAction()

    def closeEvent(self, event) -> None:  # noqa: N802
        for view in self.layout_widget.views.values():
            if view.cine_running:
                view.toggle_cine()
        self.browser.shutdown()
        if self.view3d is not None:
            self.view3d.shutdown()
        self.tasks.shutdown()
        self.comparison.shutdown()
        self.ai.shutdown()
        self.autosave.close()
        self.layer_autosave.close()
        super().closeEvent(event)
