"""The main window: composes the study browser, the reading layout, the overlay panel, the menus, the toolbars and
the status bar, and hands each controller the services it needs.

It holds no use case of its own: opening is :class:`~viewer.qt.controllers.study_opener.StudyOpener` (with
:mod:`viewer.logic.open_study`), screenshots and the report :class:`~viewer.qt.controllers.capture_actions.
CaptureActions`, the other exports :class:`~viewer.qt.controllers.export_actions.ExportActions`, the AI
:class:`~viewer.qt.controllers.ai_controller.AiController`, autosaving :class:`~viewer.qt.controllers.autosave.
StudyAutosave`. They share the window's services: ``session``, ``tasks`` (the jobs service: background work,
progress and Cancel in the status bar), ``notices`` (status bar and non-modal messages) and ``action_registry``
(every menu entry and toolbar button, declared as data, by id).
"""
from __future__ import annotations

from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QDockWidget, QMainWindow, QStackedWidget

from viewer.core.session import Session
from viewer.qt.actions import ActionRegistry
from viewer.qt.controllers.capture_actions import CaptureActions
from viewer.qt.controllers.study_opener import FILE_ACTIONS, StudyOpener
from viewer.qt.jobs import Jobs
from viewer.qt.notices import Notifier
from viewer.qt.panels.layer_panel import LayerPanel
from viewer.qt.panels.study_browser import StudyBrowser
from viewer.qt.reading_controls import ReadingControls
from viewer.qt.recent import RecentStudies
from viewer.qt.views.planar_area import PlanarArea
from viewer.qt.views.view_layout import ViewLayout
from viewer.qt.window_actions import MENUS, TOOLBARS, WINDOW_ACTIONS


class MainWindow(QMainWindow):
    def __init__(self, settings: QSettings | None = None, annotation_dir: str | None = None):
        super().__init__()
        self.setWindowTitle("radview — research viewer, not for clinical use")
        self.resize(1500, 900)
        self.setAcceptDrops(True)
        self.session = Session()
        self.notices = Notifier(self.statusBar(), self)
        self.tasks = Jobs(self.notices, self.statusBar(), self)
        self.recent = RecentStudies(settings)
        self.view3d = None

        self.layout_widget = ViewLayout(self.session)
        # 2D series (radiographs, mammograms, ultrasound, cine), with the measuring tools the MPR views share
        self.planar_area = PlanarArea(self.session, tools=self.layout_widget.tools)
        self.reading_area = QStackedWidget()
        self.reading_area.addWidget(self.layout_widget)
        self.reading_area.addWidget(self.planar_area)
        self.setCentralWidget(self.reading_area)
        self.session.images_loaded.connect(lambda _series: self.reading_area.setCurrentWidget(self.planar_area))
        self.session.volume_loaded.connect(lambda _volume: self.reading_area.setCurrentWidget(self.layout_widget))
        self.browser = StudyBrowser()
        study_dock = self.add_dock("Study", self.browser, Qt.LeftDockWidgetArea)
        self.layer_panel = LayerPanel(self.session)
        overlay_dock = self.add_dock("Overlays", self.layer_panel, Qt.RightDockWidgetArea)
        self.resizeDocks([study_dock, overlay_dock], [320, 280], Qt.Horizontal)

        actions = self.action_registry = ActionRegistry(self)
        actions.declare(MENUS, TOOLBARS)
        self.opener = StudyOpener(self.session, self.tasks, self.notices, self.browser, self.layout_widget,
                                  self.recent, self)
        actions.add(FILE_ACTIONS, target=self.opener)
        recent_menu = actions.menu("File/Recent")
        recent_menu.aboutToShow.connect(lambda: self.recent.populate_menu(recent_menu, self.open_path))
        self.captures = CaptureActions(self.session, self.layout_widget, self.tasks, self.notices, actions,
                                       lambda: self.view3d, self, planar=self.planar_area,
                                       index=lambda: self.opener.index)
        from viewer.qt.controllers.export_actions import ExportActions  # SEG, NIfTI, SR, JSON, de-identified copy

        self.exports = ExportActions(self.session, self.tasks, self.notices, actions, lambda: self.opener.index, self)
        actions.add(WINDOW_ACTIONS, target=self)
        actions.action(f"view.layout.{self.layout_widget.layout_name}").setChecked(True)
        self.reading = ReadingControls(self.session, self.layout_widget, actions, planar=self.planar_area)

        from viewer.qt.controllers.autosave import StudyAutosave
        from viewer.qt.overlays.annotation_tools import MeasureUi

        self.study_autosave = StudyAutosave(self.session, self.tasks, self.notices, annotation_dir,
                                            index=lambda: self.opener.index)
        self.autosave, self.layer_autosave = self.study_autosave.autosave, self.study_autosave.layer_autosave
        self.measure = MeasureUi(actions, self.layout_widget.tools, self.session.annotations, self.session,
                                 self.notices)
        from viewer.qt.controllers.ai_controller import AiController  # AI menu, findings dock (thread on first use)

        self.ai = AiController(self.session, self.tasks, self.notices, actions, self, settings=self.recent.settings)
        from viewer.qt.panels.metrics_panel import ReferenceComparison  # AI → Compare with reference segmentation…

        self.comparison = ReferenceComparison(self.session, self.tasks, self.notices, actions, self,
                                              tabify_with=self.ai.findings_dock)
        from viewer.qt.controllers.pacs_actions import PacsActions  # Query/Retrieve, Send to PACS, DICOM nodes

        self.pacs = PacsActions(self.session, self.tasks, self.notices, actions, self.opener, self.browser, self)

    def add_dock(self, title: str, widget, area) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(title)
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetFloatable)
        self.addDockWidget(area, dock)
        return dock

    # --- the layout --------------------------------------------------------------------------------------
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

    def show_keys_help(self) -> None:
        from viewer.qt.dialogs.help import show_keys_help

        show_keys_help(self)

    def show_about(self) -> None:
        from viewer.qt.dialogs.help import show_about

        show_about(self)

    # --- what the entry point, drops and scripts call --------------------------------------------------------
    def open_path(self, path: str, series: str | None = None) -> None:
        self.opener.open_path(path, series)

    def open_demo(self) -> None:
        self.opener.open_demo()

    def load_segmentation(self, path: str) -> None:
        self.opener.load_segmentation(path)

    def export_screenshot(self, path: str, what: str = "view", options=None, wait: bool = True) -> str | None:
        return self.captures.export_screenshot(path, what, options, wait)

    def export_report(self, path: str, include_patient_data: bool | None = None, wait: bool = True) -> str | None:
        return self.captures.export_report(path, include_patient_data, wait)

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
        self.planar_area.stop_cine()
        self.browser.shutdown()
        if self.view3d is not None:
            self.view3d.shutdown()
        self.tasks.shutdown()
        self.pacs.close()  # the DICOM receiver, then the local study database (its retrieves and sends ended above)
        self.comparison.shutdown()
        self.ai.shutdown()
        self.study_autosave.close()
        super().closeEvent(event)
