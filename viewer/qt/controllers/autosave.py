"""The study's measurements and its AI and edited label layers, saved as they change and brought back when the
study (its series) opens again: :mod:`viewer.store.annotation_store` and :mod:`viewer.store.layer_store`,
wired to the session, the jobs service and the notifier."""
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
        for saver in (self.autosave, self.layer_autosave):  # (on their writer threads: posted to the GUI thread)
            saver.save_failed.connect(lambda message: notices.post(message, dialog=False))
        session.volume_loaded.connect(self.open_study)

    def open_study(self, volume) -> None:
        """The saved measurements of the volume's study (once per study; a damaged file is reported), then the
        layers saved for this series."""
        from viewer.core.annotations import study_key

        key = study_key(volume.meta)
        if key and key != self.autosave.study_uid:
            message = self.autosave.open_study(key)
            if message:
                self.notices.error(message)
        if key:
            self.restore_layers(volume, key)

    def restore_layers(self, volume, study: str) -> None:
        """The layers saved for this series (AI results, edited label maps), read in a job and added when the
        series is still the one shown; a layer that could not be read is reported."""
        from viewer.store.layer_store import series_of

        if not self.layer_autosave.has_saved(study):
            return
        series = series_of(volume.meta)

        def done(loaded) -> None:
            if self.session.volume is not volume:
                return
            self.layer_autosave.adopt(loaded.layers, study)
            messages = add_saved_layers(self.session, loaded)
            if messages:
                self.notices.error(" ".join(messages))

        self.tasks.submit(lambda progress, cancel: self.layer_autosave.load_series(study, series), done,
                          cancellable=False)

    def close(self) -> None:
        self.autosave.close()
        self.layer_autosave.close()
