"""The study's measurements, its AI and edited label layers and its AI classifications, saved as they change and
brought back when the study (its series) opens again: :mod:`viewer.store.annotation_store`,
:mod:`viewer.store.layer_store` and :mod:`viewer.store.classification_store`, wired to the session, the jobs
service and the notifier. A 2D series (a radiograph) opens its study's measurements and review table like a volume
does, so a classification restored onto it comes back with its review state.

A restore survives anything on disk: a stored file that cannot be read is set aside by the store (renamed
``<name>.corrupt-<time>``) and comes back as a ``(file, reason)`` problem; ``problems`` gathers them for the
study shown, and the notifier says so in a non-modal box while the rest of the study's measurements and layers
are restored.
"""
from __future__ import annotations

from PySide6.QtCore import QTimer

from viewer.logic.open_study import add_saved_layers


class StudyAutosave:
    """``autosave`` (measurements), ``layer_autosave`` (label layers) and ``classification_autosave`` (AI
    classifications) of the session's study."""

    def __init__(self, session, tasks, notices, annotation_dir: str | None = None, index=None):
        """``index``: a callable giving the open DICOM study's index (or None): a label layer saved records the
        folder its series was read from (:func:`viewer.store.layer_store.series_source`)."""
        from viewer.store.annotation_store import AnnotationStore, Autosave
        from viewer.store.classification_store import ClassificationAutosave, ClassificationStore
        from viewer.store.layer_store import LayerAutosave, LayerStore

        self.session, self.tasks, self.notices = session, tasks, notices
        self.autosave = Autosave(session.annotations, AnnotationStore(annotation_dir))
        self.layer_autosave = LayerAutosave(session, LayerStore(self.autosave.store.directory), index=index)
        self.classification_autosave = ClassificationAutosave(
            session, ClassificationStore(self.autosave.store.directory), later=lambda fn: QTimer.singleShot(0, fn))
        #: the stored files of the shown study that could not be restored: ``(file, reason)``, each set aside
        self.problems: list = []
        for saver in (self.autosave, self.layer_autosave, self.classification_autosave):  # (posted to the GUI thread)
            saver.save_failed.connect(lambda message: notices.post(message, dialog=False))
        session.volume_loaded.connect(self.open_study)
        session.images_loaded.connect(self.open_study)

    def open_study(self, opened) -> None:
        """The saved measurements of the study of the opened volume or 2D series (once per study; a damaged file
        is set aside and reported), then the layers (a volume) and classifications saved for this series."""
        from viewer.core.annotations import study_key

        key = study_key(opened.meta)
        if key and key != self.autosave.study_uid:
            message = self.autosave.open_study(key)
            self.problems = list(self.autosave.problems)
            if message:
                self.notices.error(message)
        if key:
            if opened is self.session.volume:
                self.restore_layers(opened, key)
            self.restore_classifications(opened)

    def restore_classifications(self, opened) -> None:
        """The classifications saved for this series, read in a job and added when the series is still the one
        shown; a file that could not be read is set aside by the store and reported, the rest restores."""
        from viewer.store.classification_store import opened_series, series_keys

        study, series_uid, series_key = series_keys(opened.meta)
        saver = self.classification_autosave
        if not study or not series_key or not saver.has_saved(study, series_key):
            return

        def done(loaded) -> None:
            if opened_series(self.session) is not opened:
                return
            self.problems.extend(p for p in loaded.problems if p not in self.problems)
            saver.restore(loaded)
            if loaded.messages:
                self.notices.error(" ".join(loaded.messages))

        def failed(message: str) -> None:
            self.notices.error(f"The saved AI classifications of this series could not be restored: {message}")

        self.tasks.submit(lambda progress, cancel: saver.load_series(study, series_uid, series_key), done,
                          cancellable=False, on_failed=failed)

    def restore_layers(self, volume, study: str) -> None:
        """The layers saved for this series (AI results, edited label maps), read in a job and added when the
        series is still the one shown; a layer that could not be read (or does not lie on the series' grid) is
        set aside by the store and reported."""
        from viewer.store.layer_store import series_key_of, series_of

        if not self.layer_autosave.has_saved(study):
            return
        series, series_key, geometry = series_of(volume.meta), series_key_of(volume.meta), volume.geometry

        def done(loaded) -> None:
            if self.session.volume is not volume:
                return
            self.problems.extend(p for p in loaded.problems if p not in self.problems)
            self.layer_autosave.adopt(loaded.layers, study)
            messages = add_saved_layers(self.session, loaded)
            if messages:
                self.notices.error(" ".join(messages))

        def failed(message: str) -> None:
            self.notices.error(f"The saved layers of this series could not be restored: {message}")

        self.tasks.submit(lambda progress, cancel: self.layer_autosave.load_series(
            study, series, geometry=geometry, series_key=series_key), done, cancellable=False, on_failed=failed)

    def close(self) -> None:
        self.autosave.close()
        self.layer_autosave.close()
        self.classification_autosave.close()
