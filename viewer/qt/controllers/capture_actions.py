"""File → Export → Screenshot of the active view / the layout / the 3D view, the active view as a DICOM Secondary
Capture in the study on screen, and the one-page PDF report.

The picture (or the report's key images) is drawn on the GUI thread without changing anything on screen;
encoding, painting the PDF and the atomic write run as a job unless ``wait``. Success puts the path in the
status bar (and the notifier's ``exported`` signal); a failure is reported in a non-modal message.
"""
from __future__ import annotations

import os
from typing import Callable

from PySide6.QtCore import QObject

from viewer.qt.actions import ActionSpec

SCREENSHOT_TITLES = {"view": "Screenshot of the active view", "layout": "Screenshot of the layout",
                     "3d": "Screenshot of the 3D view"}
SC_TITLE = "Screenshot as DICOM Secondary Capture"
SC_NOT_DICOM = "a Secondary Capture is filed in the study of the DICOM series on screen; this series is not DICOM"

#: File → Export: the screenshots and the report, and whether exports include patient data by default
CAPTURE_ACTIONS = [
    ActionSpec("export.screenshot.view", "Screenshot of &active view…", "choose_screenshot", args=("view",),
               menu="File/Export#screenshots"),
    ActionSpec("export.screenshot.layout", "Screenshot of &layout…", "choose_screenshot", args=("layout",),
               menu="File/Export#screenshots"),
    ActionSpec("export.screenshot.3d", "Screenshot of &3D view…", "choose_screenshot", args=("3d",),
               menu="File/Export#screenshots"),
    ActionSpec("export.screenshot.dicom", "Screenshot as DICOM &Secondary Capture…", "choose_screenshot_dicom",
               menu="File/Export#screenshots"),
    ActionSpec("export.report", "&Report (PDF)…", "choose_report", menu="File/Export#screenshots"),
    ActionSpec("export.include_patient_data", "Include patient data (default for exports)",
               "set_include_patient_data", menu="File/Export#options", checkable=True),
]


class CaptureActions(QObject):
    """Screenshots and the PDF report of what is on screen. ``view3d()``: the 3D view, or None before it opens;
    ``index()``: the open study folder's index (the study opener's), where a Secondary Capture finds its series."""

    def __init__(self, session, layout, jobs, notices, registry, view3d: Callable[[], object], parent, planar=None,
                 index: Callable[[], object] = lambda: None):
        super().__init__(parent)
        self.session, self.layout, self.jobs, self.notices = session, layout, jobs, notices
        self.index = index
        self.planar = planar  # the 2D images' reading area (viewer.qt.views.planar_area.PlanarArea)
        self.parent_widget = parent
        self.view3d = view3d
        self.include_patient_data = False
        self.actions = registry.add(CAPTURE_ACTIONS, target=self)

    def set_include_patient_data(self, on: bool) -> None:
        self.include_patient_data = bool(on)

    def choose_screenshot(self, what: str) -> None:
        """File, size, JPEG quality and patient data, then written in the background."""
        from viewer.qt.capture.screenshot import ScreenshotDialog

        dialog = ScreenshotDialog(self.parent_widget, os.path.abspath(f"radview-{what}.png"),
                                  self.include_patient_data, title=SCREENSHOT_TITLES.get(what, "Export screenshot"))
        if dialog.exec() and dialog.path:
            self.export_screenshot(dialog.path, what, dialog.options(), wait=False)

    def export_screenshot(self, path: str, what: str = "view", options=None, wait: bool = True) -> str | None:
        """Save the active view (``what="view"``), the whole layout or the 3D view as seen.

        Returns the path (``wait=False``: the path it is being written to; ``exported`` follows), or None when it
        could not be made (reported).
        """
        from viewer.qt.capture.screenshot import ScreenshotOptions, image_format, render, save_image

        if str(path).lower().endswith(".dcm"):
            return self.export_screenshot_dicom(path, what, options, wait)
        if options is None:
            options = ScreenshotOptions(include_patient_data=self.include_patient_data)
        try:
            image_format(path)
            image = render(self.capture_widget(what), options)
        except (OSError, ValueError, RuntimeError) as exc:
            self.notices.error(f"Screenshot not saved: {exc}")
            return None
        return self.write(lambda: save_image(image, path, options.quality), "Screenshot", path, wait)

    def choose_screenshot_dicom(self) -> None:
        """The active view as a Secondary Capture: refused before the dialog when the series is not DICOM."""
        from viewer.qt.capture.screenshot import ScreenshotDialog

        try:
            self.reference_file()
        except ValueError as exc:
            self.notices.error(f"Secondary Capture not saved: {exc}")
            return
        dialog = ScreenshotDialog(self.parent_widget, os.path.abspath("radview-view.dcm"), self.include_patient_data,
                                  title=SC_TITLE, dicom=True)
        if dialog.exec() and dialog.path:
            self.export_screenshot_dicom(dialog.path, "view", dialog.options(), wait=False)

    def export_screenshot_dicom(self, path: str, what: str = "view", options=None, wait: bool = True) -> str | None:
        """Save the active view (or ``what``, as :meth:`export_screenshot`) as a DICOM Secondary Capture filed in
        the study of the DICOM series on screen. Drawn here; encoded as PNG and written (atomically) in a job
        unless ``wait``. The pixels and SOP Instance UID are those of a PNG export of the same picture. Returns the
        path (see :meth:`export_screenshot`) or None when refused (reported, nothing written)."""
        from viewer.logic.pacs_capture import check_sc_path, save_screenshot_sc
        from viewer.qt.capture.screenshot import ScreenshotOptions, encode_image, render

        if options is None:
            options = ScreenshotOptions(include_patient_data=self.include_patient_data)
        try:
            path = check_sc_path(path)
            reference, description = self.reference_file()
            image = render(self.capture_widget(what), options)
        except (OSError, ValueError, RuntimeError) as exc:
            self.notices.error(f"Secondary Capture not saved: {exc}")
            return None
        return self.write(lambda: save_screenshot_sc(encode_image(image, "PNG"), reference, path, description),
                          "Secondary Capture", path, wait)

    def reference_file(self) -> tuple[str, str]:
        """(one DICOM file of the series on screen, its description); ValueError (readable) when there is none."""
        from viewer.logic.exports import NO_SERIES, ExportRefused, dicom_entry

        if self.session.volume is None and getattr(self.session, "images", None) is None:
            raise ValueError(f"{NO_SERIES}: a Secondary Capture is a picture of the series on screen")
        try:
            _index, entry = dicom_entry(self.session, self.index())
        except ExportRefused as exc:
            raise ValueError(f"{SC_NOT_DICOM} ({exc})") from None
        if not entry.files:
            raise ValueError(SC_NOT_DICOM)
        return str(entry.files[0]), entry.description or ""

    def capture_widget(self, what: str):
        """The widget a screenshot of ``what`` draws: the 3D view (ValueError when it is not open) or
        :meth:`reading_widget`."""
        if what != "3d":
            return self.reading_widget(what)
        view3d = self.view3d()
        if view3d is None or not view3d.isVisible():
            raise ValueError("the 3D view is not open (choose the 2×2 layout)")
        return view3d

    def reading_widget(self, what: str):
        """The active view (``what="view"``) or the whole reading area: the 2D images' when a 2D series is open."""
        planar = self.planar
        if self.session.images is not None and planar is not None:
            return planar.active if what == "view" and planar.active is not None else planar
        return self.layout.active if what == "view" else self.layout

    def choose_report(self) -> None:
        """A one-page report of the open series, its AI results and measurements."""
        from viewer.qt.capture.report import ReportDialog

        if self.session.volume is None:
            self.notices.error("Open a series first: the report is about the series on screen.")
            return
        dialog = ReportDialog(self.parent_widget, os.path.abspath("radview-report.pdf"), self.include_patient_data)
        if dialog.exec() and dialog.path:
            self.export_report(dialog.path, dialog.include_patient_data, wait=False)

    def export_report(self, path: str, include_patient_data: bool | None = None, wait: bool = True) -> str | None:
        """Write the one-page PDF report: the data and key images are gathered here, the PDF is painted and
        written in a job unless ``wait``. Returns the path (see :meth:`export_screenshot`) or None."""
        from viewer.qt.capture.report import report_from_images, report_from_views, write_report

        include = self.include_patient_data if include_patient_data is None else include_patient_data
        try:
            if not str(path).lower().endswith(".pdf"):
                raise ValueError("the report is a PDF file: give a name ending in .pdf")
            if self.session.images is not None and self.planar is not None:  # a 2D series: its hanging
                data = report_from_images(self.session, self.planar.views, include)
            else:
                data = report_from_views(self.session, self.layout.views, include)
        except (OSError, ValueError, RuntimeError) as exc:
            self.notices.error(f"Report not saved: {exc}")
            return None
        return self.write(lambda: write_report(data, path), "Report", path, wait)

    def write(self, write: Callable[[], str], what: str, path: str, wait: bool) -> str | None:
        """Run ``write()`` (which returns the written path) now or as a job; report the outcome."""
        def done(result) -> None:
            ok, value = result
            if ok:
                self.notices.saved(value)
            else:
                self.notices.error(f"{what} not saved: {value}")

        def attempt(*_args):
            try:
                return True, write()
            except (OSError, ValueError, RuntimeError) as exc:
                return False, str(exc)

        if wait:
            result = attempt()
            done(result)
            return result[1] if result[0] else None
        self.jobs.submit(attempt, done, f"Writing {os.path.basename(path)}…", cancellable=False)
        return os.path.abspath(path)
