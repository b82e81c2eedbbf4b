"""Opening: File → Open folder / Open file / Open demo study / Load segmentation, drops, the study browser's
series, PgUp / PgDn.

What a path opens as is decided in the job, by :mod:`viewer.io.loaders` (through
:func:`viewer.logic.open_study.open_path`): an image file opens as one volume, DICOM files (a folder, or a
DICOMDIR through its records) as a study whose series the browser lists, with the study's DICOM SEG files under
the series they were made on; the largest volume series (or the one asked for) is then loaded. A DICOM SEG opens
over its series: from the browser, from Load segmentation, or from Open file when the open study has its series
(else on its own grid). The first slice read shows (``progress.preview``) while the rest still loads. A newer open or
load supersedes the one still running: its result, failure and preview are dropped.
"""
from __future__ import annotations

import os

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QFileDialog

from viewer.logic import open_study
from viewer.qt.actions import ActionSpec, MenuSpec
from viewer.qt.jobs import CANCELLED_TEXT

IMAGE_FILTER = "Images (*.dcm *.nii *.nii.gz *.nrrd *.nhdr *.mha *.mhd);;All files (*)"
LABEL_FILTER = ("Segmentations (*.dcm *.nii *.nii.gz *.nrrd *.seg.nrrd *.nhdr *.mha *.mhd);;DICOM SEG (*.dcm);;"
                "Label maps (*.nii *.nii.gz *.nrrd *.seg.nrrd *.nhdr *.mha *.mhd);;All files (*)")

#: the File menu's opening entries, with its Recent studies and Export submenus in their places
FILE_ACTIONS = [
    ActionSpec("file.open_folder", "&Open folder…", "choose_folder", menu="File#open", shortcut="Ctrl+O"),
    ActionSpec("file.open_file", "Open &file…", "choose_file", menu="File#open", shortcut="Ctrl+Shift+O"),
    MenuSpec("File/Recent", "&Recent studies", menu="File#open"),
    ActionSpec("file.open_demo", "Open &demo study", "open_demo", menu="File#open"),
    ActionSpec("file.load_segmentation", "Load &segmentation…", "choose_segmentation", menu="File#load"),
    MenuSpec("File/Export", "&Export", ("screenshots", "formats", "options"), menu="File#load", tooltips=True),
]


class StudyOpener(QObject):
    """``index``: the open study's ``StudyIndex`` (None before one is open, or for an image file); ``load_job``: the
    series load running; ``after_load(volume)``: called once after the next volume is shown (the demo's set-up)."""

    def __init__(self, session, jobs, notices, browser, layout, recent, parent):
        super().__init__(parent)
        self.session, self.jobs, self.notices = session, jobs, notices
        self.browser, self.layout, self.recent = browser, layout, recent
        self.parent_widget = parent
        self.index = None
        self.open_job: int | None = None
        self.load_job: int | None = None
        self.after_load = None
        browser.series_activated.connect(self.load_series)
        browser.segmentation_activated.connect(self.open_segmentation_over)
        for view in layout.views.values():
            view.series_step_requested.connect(self.step_series)
        session.scaling_chosen.connect(self.reload_with_scaling)

    # --- the menu -----------------------------------------------------------------------------------------
    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.parent_widget, "Open study folder")
        if folder:
            self.open_path(folder)

    def choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.parent_widget, "Open image", "", IMAGE_FILTER)
        if path:
            self.open_path(path)

    def choose_segmentation(self) -> None:
        if self.session.volume is None:
            self.notices.error("Load a series first: a segmentation is shown over the current series.")
            return
        path, _ = QFileDialog.getOpenFileName(self.parent_widget, "Load segmentation", "", LABEL_FILTER)
        if path:
            self.load_segmentation(path)

    # --- opening ---------------------------------------------------------------------------------------------
    def open_demo(self) -> None:
        """The demo study, ready to read: lung window, axial view at a nodule."""
        def work(progress, cancel):
            return open_study.prepare_demo(progress=lambda fraction, _message: progress(int(fraction * 100), 100))

        def opened(demo) -> None:
            def ready(volume) -> None:
                if volume.meta.get("series_uid") != demo.paths.ct_series_uid:
                    return
                self.session.apply_preset("lung")
                if demo.target is not None:
                    self.session.move_cursor(demo.target["center_lps_mm"])
                self.layout.set_active(self.layout.views["axial"])

            self.after_load = ready
            self.open_path(str(demo.paths.dicom_dir), series=demo.paths.ct_series_uid)

        self.jobs.submit(work, opened, "Preparing the demo study…")

    def open_path(self, path: str, series: str | None = None) -> None:
        """A folder, a DICOM file (a SEG too) or an image file; ``series``: the series of a study to show first."""
        path = str(path)
        missing = open_study.missing_path_text(path)
        if missing:
            self.notices.error(missing)
            return
        if self.open_job is not None:
            self.jobs.cancel(self.open_job, drop=True)
        self.drop_load()

        index = self.index

        def work(progress, cancel):
            over = open_study.segmentation_series_key(index, path) if os.path.isfile(path) else None
            if over is not None:  # a SEG made on a series of the open study: shown over that series
                return open_study.SeriesFirst(over, path)
            return open_study.open_path(path, progress, cancel)

        def opened(result) -> None:
            self.open_job = None
            if isinstance(result, open_study.SeriesFirst):
                self.open_segmentation_over(result.series_key, result.path)
            elif open_study.is_study_index(result):
                self.show_index(result, path, series)
            else:
                self.recent.add(path)
                self.show_volume(result)

        self.open_job = self.jobs.submit(work, opened, open_study.opening_text(path))

    def show_index(self, index, path: str, series: str | None = None) -> None:
        self.index = index
        self.browser.set_index(index)
        self.recent.add(path)
        self.notices.info(open_study.index_text(index))
        self.notices.show_skipped(len(index.skipped), open_study.skipped_details(index))
        if not index.series:
            self.notices.error(open_study.no_images_text(path, index))
            return
        target = open_study.choose_series(index, series)
        if target is not None:
            self.load_series(target.key)

    def load_series(self, key: str) -> None:
        if self.index is None:
            return
        entry = self.index.find(key)
        if not entry.loadable:
            self.notices.error(open_study.refusal_text(entry, key), dialog=False)
            return
        self.browser.select_series(key)
        if open_study.is_planar_series(entry):
            self.start_load(lambda progress, cancel: open_study.load_images(
                entry, progress=lambda done, total: progress(done, total), cancel=cancel),
                f"Loading {open_study.series_name(entry, key)}…")
            return

        def work(progress, cancel):
            return open_study.load_series(entry, progress=lambda done, total: progress(done, total), cancel=cancel,
                                          on_first_slice=progress.preview)

        self.start_load(work, f"Loading {open_study.series_name(entry, key)}…")

    def drop_load(self) -> None:
        """The series load still running is superseded: stopped, its result and preview dropped."""
        if self.load_job is not None:
            self.jobs.cancel(self.load_job, drop=True)
            self.load_job = None
            if self.session.volume is None:
                self.layout.clear_preview()

    def start_load(self, work, message: str) -> int:
        """Run ``work(progress, cancel)`` (a volume; ``progress.preview(FirstSlice)`` shows the first slice) as the
        series load, superseding the one still running."""
        self.drop_load()

        def ended(job_id: int) -> bool:
            if job_id != self.load_job:
                return False
            self.load_job = None
            if self.session.volume is None:  # failed or cancelled: no "Loading…" preview left behind
                self.layout.clear_preview()
            return True

        def done(result) -> None:
            ended(job)
            if hasattr(result, "images"):  # a 2D series (viewer.io.planar.PlanarSeries)
                self.show_images(result)
            else:
                self.show_volume(result)

        def failed(message: str) -> None:
            ended(job)
            self.notices.error(message)

        def cancelled() -> None:
            ended(job)
            self.notices.info(CANCELLED_TEXT)

        def preview(first) -> None:
            if job == self.load_job:
                self.layout.show_preview(first.z, first.image)

        job = self.load_job = self.jobs.submit(work, done, message, on_preview=preview, on_failed=failed,
                                               on_cancelled=cancelled)
        return job

    def show_volume(self, volume) -> None:
        self.session.load_volume(volume)
        self.notices.info(open_study.volume_text(volume))
        after, self.after_load = self.after_load, None
        if after is not None:
            after(volume)

    def show_images(self, series) -> None:
        self.layout.clear_preview()
        self.session.load_images(series)
        self.notices.info(open_study.images_text(series))
        if series.skipped:
            self.notices.show_skipped(len(series.skipped), "\n".join(f"{p}: {r}" for p, r in series.skipped))

    def step_series(self, step: int) -> None:
        """PgUp / PgDn: the previous / next loadable volume series of the study."""
        if self.index is None or self.session.volume is None:
            return
        key = open_study.neighbour_series(self.index, self.session.volume.meta.get("series_key"), step)
        if key is not None:
            self.load_series(key)

    def reload_with_scaling(self, scaling: str) -> None:
        """Load the open series again with its stored values mapped as ``scaling`` says (View → Philips: display /
        floating-point values; ``viewer.io.series_loader.SCALINGS``); the cursor stays where it was."""
        volume = self.session.volume
        if volume is None or self.index is None or volume.meta.get("scaling") == scaling:
            return
        key = volume.meta.get("series_key")
        try:
            entry = self.index.find(key)
        except KeyError:
            return
        cursor = self.session.cursor_lps.copy()

        def work(progress, cancel):  # (a 4D series keeps all its time points)
            return open_study.load_series(entry, progress=lambda done, total: progress(done, total), cancel=cancel,
                                          scaling=scaling)

        self.after_load = lambda loaded: self.session.move_cursor(cursor)
        what = "floating-point values" if scaling == "philips-float" else "display values"
        self.start_load(work, f"Loading {open_study.series_name(entry, key)} with {what}…")

    # --- a segmentation over the series ------------------------------------------------------------------------
    def open_segmentation_over(self, key: str, path: str) -> None:
        """The study browser's SEG row (or a SEG of the open study): load series ``key``, then the SEG over it."""
        if self.index is None:
            return
        volume = self.session.volume
        if volume is not None and volume.meta.get("series_key") == key and self.load_job is None:
            self.browser.select_series(key)
            self.load_segmentation(path)
            return
        try:
            entry = self.index.find(key)
        except KeyError as exc:
            self.notices.error(str(exc).strip("'\""), dialog=False)
            return
        self.load_series(key)
        if not entry.loadable or open_study.is_planar_series(entry):
            return

        def then(volume) -> None:
            if volume.meta.get("series_key") == key:
                self.load_segmentation(path)

        self.after_load = then

    def load_segmentation(self, path: str) -> None:
        """Read a segmentation in a job and show it over the series (refused when it lies on another grid); a DICOM
        SEG made on another series of the open study opens that series first."""
        volume, index = self.session.volume, self.index
        shown = open_study.shown_segmentation(self.session, path)
        if shown is not None:
            self.notices.info(f"{shown.name} is already shown over this series")
            return
        entry = open_study.series_entry(index, volume)

        def added(result) -> None:
            if isinstance(result, open_study.SeriesFirst):
                self.open_segmentation_over(result.series_key, result.path)
                return
            if self.session.volume is not volume:
                self.notices.error(f"{os.path.basename(path)} was not loaded: the series changed while it was read",
                                   dialog=False)
                return
            ok, text = open_study.add_segmentation(self.session, result, path)
            if ok:
                self.notices.info(text)
            else:
                self.notices.error(text)

        self.jobs.submit(lambda progress, cancel: open_study.read_segmentation(path, volume, entry, index), added,
                         f"Reading {os.path.basename(path)}…")
