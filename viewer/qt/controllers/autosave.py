"""The study's measurements and its AI and edited label layers, saved as they change and brought back when the
study (its series) opens again: :mod:`viewer.store.annotation_store` and :mod:`viewer.store.layer_store`,
wired to the session, the jobs service and the notifier.

A restore survives anything on disk: a stored file that cannot be read is set aside by the store (renamed
``<name>.corrupt-<time>``) and comes back as a ``(file, reason)`` problem; ``problems`` gathers them for the
study shown, and the notifier says so in a non-modal box while the rest of the study's measurements and layers
are restored.
"""
from __future__ import annotations

from viewer.logic.open_study import add_saved_layers


class StudyAutosave:
    """``autosave`` (measurements) and ``layer_autosave`` (label layers) of the session's study."""

    def __init__(self, session, tasks, notices, annotation_dir: str | None = None):
        from viewer.store.annotation_store import AnnotationStore, Autosave
        from viewer.store.layer_store import LayerAutosave, LayerStore

        self.session, self.tasks, self.notices = session, tasks, notices
        self.autosave = Autosave(session.annotations, AnnotationStore(annotation_dir))
        self.layer_autosave = LayerAutosave(session, LayerStore(self.autosave.store.directory))
        #: the stored files of the shown study that could not be restored: ``(file, reason)``, each set aside
        self.problems: list = []
        for saver in (self.autosave, self.layer_autosave):  # (on their writer threads: posted to the GUI thread)
            saver.save_failed.connect(lambda message: notices.post(message, dialog=False))
        session.volume_loaded.connect(self.open_study)

    def open_study(self, volume) -> None:
        """The saved measurements of the volume's study (once per study; a damaged file is set aside and
        reported), then the layers saved for this series."""
        from viewer.core.annotations import study_key

        key = study_key(volume.meta)
        if key and key != self.autosave.study_uid:
            message = self.autosave.open_study(key)
            self.problems = list(self.autosave.problems)
            if message:
                self.notices.error(message)
        if key:
            self.restore_layers(volume, key)

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
