"""Classification models' answers on disk, one small JSON per series beside the layer store, and back.

A classification (:class:`viewer.core.ai_bridge.ClassifiedSeries`: class probabilities, provenance, the image it
was made on) is no layer, so the layer autosave (:mod:`.layer_store`) does not keep it; this does, in the same
study folder::

    <store>/<StudyInstanceUID>/classifications/<series key>.json

holding ``{"format": "radview-classifications", "version": 1, "study_uid", "series_uid", "series_key",
"saved_at", "classifications": [entry, ...]}``, an entry being ``{"provenance": {"$type": "Provenance", ...},
"classification": ClassificationResult.as_dict(), "series_uid", "sop_instance_uid", "messages"}``. The review
state is not stored here: a classification is reviewed as a whole under ``result|<model id>|<series UID>`` in the
study's review table, which the annotation autosave keeps (:mod:`.annotation_store`); a restored classification
finds its decision there again.

Reading trusts nothing (:mod:`.set_aside`): size, depth and UTF-8 are checked before parsing, every field's JSON type
after (a string where a number belongs is refused here, not in the findings panel later), the values by
``ai.api`` (probabilities in [0, 1], one per class). A file that cannot be read at all, or of another series, is set
aside (``<name>.corrupt-<time>``) and reported as a ``(file, reason)`` problem; a file with some bad entries is set
aside too, its good entries restored and written back at once. A file of a newer format is left as it is.

:class:`ClassificationAutosave` follows a session: a classification arriving (``classification_added``) rewrites its
series' file from the session's classifications, on one writer thread (:mod:`.autosave_writer`: the newest
snapshot of a file wins); a classification removed while its series stays open is removed from the file (``later``
runs that check once the event's caller has finished: a series being replaced drops its classifications first, and
they stay on disk). Qt-free.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from psygnal import Signal

from viewer.store.annotation_store import file_name, write_atomic
from viewer.store.autosave_writer import AutosaveBase, AutosaveWriter
from viewer.store.layer_files import study_folder_name
from viewer.store.layer_json import decode_value, encode_value
from viewer.store.set_aside import Problem, StoredFileError, describe, kept_text, read_json, set_aside

CLASSIFICATIONS_DIR = "classifications"
FORMAT = "radview-classifications"
FORMAT_VERSION = 1
MAX_BYTES = 8 << 20  # an entry is ~1 kB (a thousand classes: ~40 kB)


class ClassificationFormatError(StoredFileError):
    """A stored classification file (or entry) that does not hold what it should."""


def opened_series(session):
    """The session's open series: its volume, else its 2D series (None when nothing is open)."""
    return session.volume if session.volume is not None else getattr(session, "images", None)


def series_keys(meta: Mapping) -> tuple[str, str, str]:
    """``(study key, series UID, series key)`` of an open series' meta ("" where it has none); an image file without
    a series UID (NIfTI, NRRD) is its own study, and its series key is the study's."""
    from viewer.core.annotations import study_key
    from viewer.store.layer_store import series_key_of, series_of

    meta = meta or {}
    study = study_key(meta)
    return study, series_of(meta), series_key_of(meta) or study


# --- one entry, both ways -------------------------------------------------------------------------------------
def encode(classified) -> dict:
    """A ``ClassifiedSeries`` as a JSON-ready entry."""
    return {"provenance": encode_value(classified.provenance),
            "classification": classified.classification.as_dict(),
            "series_uid": str(classified.series_uid), "sop_instance_uid": str(classified.sop_instance_uid),
            "messages": [str(m) for m in classified.messages]}


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _field(d: Mapping, key: str, check: Callable[[Any], bool], what: str, default=None, required=True):
    if key not in d:
        if required:
            raise ClassificationFormatError(f"{what}: missing {key!r}")
        return default
    value = d[key]
    if not check(value):
        raise ClassificationFormatError(f"{what}: {key!r} is not {check.__doc__} ({str(value)[:40]!r})")
    return value


def _str(v) -> bool:
    """a string"""
    return isinstance(v, str)


def _strings(v) -> bool:
    """a list of strings"""
    return isinstance(v, list) and all(isinstance(s, str) for s in v)


def _numbers(v) -> bool:
    """a list of finite numbers"""
    return isinstance(v, list) and all(_number(x) for x in v)


def _whole_numbers(v) -> bool:
    """a list of whole numbers"""
    return isinstance(v, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in v)


def _table(v) -> bool:
    """a table"""
    return isinstance(v, dict)


def decode_classification(d) -> Any:
    """An ``ai.api.ClassificationResult`` from its stored dict, each field of its JSON type, its values checked."""
    from ai.api import ClassificationResult

    what = "classification"
    if not isinstance(d, dict):
        raise ClassificationFormatError(f"{what} is not a table")
    checked = {"classes": _field(d, "classes", _strings, what),
               "probabilities": _field(d, "probabilities", _numbers, what),
               "activation": _field(d, "activation", _str, what),
               "thresholds": _field(d, "thresholds", _numbers, what, [], required=False),
               "preprocessing": _field(d, "preprocessing", _str, what, "", required=False),
               "input_size": _field(d, "input_size", _whole_numbers, what, [], required=False),
               "image": _field(d, "image", _str, what, "", required=False),
               "note": _field(d, "note", _str, what, "", required=False)}
    try:
        return ClassificationResult.from_dict(checked)
    except ValueError as exc:
        raise ClassificationFormatError(f"{what}: {exc}") from None


def decode(entry) -> Any:
    """A ``ClassifiedSeries`` from a stored entry (:class:`ClassificationFormatError` when anything is off)."""
    from ai.api import Provenance
    from viewer.core.ai_bridge import ClassifiedSeries

    if not isinstance(entry, dict):
        raise ClassificationFormatError("an entry is not a table")
    stored = _field(entry, "provenance", _table, "entry")
    try:
        prov = decode_value(stored)
    except (ValueError, TypeError) as exc:  # LayerFormatError (a ValueError), or a field missing
        raise ClassificationFormatError(f"provenance: {exc}") from None
    if not isinstance(prov, Provenance):
        raise ClassificationFormatError("provenance is not a model's provenance")
    return ClassifiedSeries(prov, decode_classification(entry.get("classification")),
                            _field(entry, "series_uid", _str, "entry"),
                            _field(entry, "sop_instance_uid", _str, "entry", "", required=False),
                            tuple(_field(entry, "messages", _strings, "entry", [], required=False)))


# --- the files ------------------------------------------------------------------------------------------------
@dataclass
class LoadedClassifications:
    """What :meth:`ClassificationStore.load` found for a series: the classifications (in their saved order);
    ``problems``, the files that could not be (wholly) restored ``(file, reason)``; ``messages``, what to tell the
    user; ``recovered``, True when some entries of a damaged file were restored (they are to be written back)."""

    items: list = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    recovered: bool = False


class ClassificationStore:
    """The files. ``directory`` is the annotation store's folder (``AnnotationStore.directory``)."""

    def __init__(self, directory: str | os.PathLike | None = None) -> None:
        if directory is None:
            from viewer.store.annotation_store import default_directory

            directory = default_directory()
        self.directory = Path(directory)

    def folder(self, study_uid: str) -> Path:
        return self.directory / study_folder_name(study_uid) / CLASSIFICATIONS_DIR

    def path(self, study_uid: str, series_key: str) -> Path:
        return self.folder(study_uid) / file_name(series_key)

    def has(self, study_uid: str, series_key: str) -> bool:
        return self.path(study_uid, series_key).is_file()

    def write(self, study_uid: str, doc: Mapping) -> None:
        """Write a series' file (atomically), or remove it when it holds no classification."""
        path = self.path(study_uid, str(doc["series_key"]))
        if not doc.get("classifications"):
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps(doc, ensure_ascii=False, allow_nan=False, indent=1).encode("utf-8")
        write_atomic(path, data)

    def load(self, study_uid: str, series_uid: str, series_key: str = "") -> LoadedClassifications:
        """The stored classifications of a series; nothing read from disk raises here (see the module)."""
        out = LoadedClassifications()
        path = self.path(study_uid, series_key or series_uid)
        if not path.is_file():
            return out
        try:
            doc = read_json(path, max_bytes=MAX_BYTES)
            if not isinstance(doc, dict) or doc.get("format") != FORMAT:
                raise ClassificationFormatError("it is not a radview classification file")
            version = doc.get("version")
            if not isinstance(version, int) or isinstance(version, bool):
                raise ClassificationFormatError("its version is not a whole number")
            if version > FORMAT_VERSION:
                out.messages.append(f"{path.name} was saved by a newer radview (classification format {version}); "
                                    "it was left as it is and not shown.")
                return out
            if doc.get("series_uid") != series_uid:
                raise ClassificationFormatError(f"it holds series {str(doc.get('series_uid'))[:64]!r}, not "
                                                f"{series_uid}")
            entries = doc.get("classifications")
            if not isinstance(entries, list):
                raise ClassificationFormatError("'classifications' is not a list")
        except Exception as exc:  # noqa: BLE001 - whatever the file holds: it is set aside, the rest restores
            self._set_aside(out, path, describe(exc))
            return out
        bad = []
        for n, entry in enumerate(entries, start=1):
            try:
                item = decode(entry)
                if item.series_uid != series_uid:
                    raise ClassificationFormatError(f"it is of series {item.series_uid[:64]!r}")
            except Exception as exc:  # noqa: BLE001 - one entry: the others still restore
                bad.append(f"entry {n}: {describe(exc)}")
                continue
            out.items.append(item)
        if bad:
            out.recovered = bool(out.items)
            self._set_aside(out, path, "; ".join(bad[:3]) + (f"; and {len(bad) - 3} more" if len(bad) > 3 else ""),
                            restored=len(out.items))
        return out

    @staticmethod
    def _set_aside(out: LoadedClassifications, path: Path, reason: str, restored: int | None = None) -> None:
        kept = set_aside(path)
        out.problems.append(Problem(path, f"{reason}; {kept_text(path, kept)}"))
        rest = (f" {restored} classification(s) of it were restored." if restored else "") if restored is not None \
            else ""
        out.messages.append(f"The saved AI classifications of this series could not be read ({path.name}: {reason});"
                            f" {kept_text(path, kept)}.{rest}")


# --- the autosave ---------------------------------------------------------------------------------------------
class ClassificationAutosave(AutosaveBase):
    """Keeps a session's classifications on disk and brings them back (see the module docstring).

    ``later(fn)`` runs ``fn`` once the current event is over (the GUI: a zero-delay timer); without it, call
    :meth:`settle` yourself. ``saved`` (generation) and ``save_failed`` (message) are emitted on the writer thread.
    """

    saved = Signal(int)
    save_failed = Signal(str)

    def __init__(self, session, store: ClassificationStore | None = None,
                 later: Callable[[Callable[[], None]], None] | None = None) -> None:
        self.session = session
        self.store = store or ClassificationStore()
        self.later = later
        self.last_error: str | None = None
        self._restoring = False
        self._removed: list[tuple[object, object]] = []  # (classification, the series open when it was removed)
        #: jobs keyed (study, series key): the newest snapshot of a file wins
        self._writer = AutosaveWriter(self._write, self._failed, "classification-autosave", on_saved=self.saved.emit)
        self._connections = ((session.classification_added, self._on_added),
                             (session.classification_removed, self._on_removed))
        for signal, slot in self._connections:
            signal.connect(slot)

    # --- session events (GUI thread) ----------------------------------------------------------------------
    def _on_added(self, classified) -> None:
        if not self._restoring:
            self.schedule_series()

    def _on_removed(self, classified) -> None:
        if self._restoring:
            return
        self._removed.append((classified, opened_series(self.session)))
        if self.later is not None:
            self.later(self.settle)

    def settle(self) -> None:
        """Removals seen since the last call: those of a series still open were the user's (its file is
        rewritten); those of a series since replaced or closed were the series going (its file stays)."""
        removed, self._removed = self._removed, []
        opened = opened_series(self.session)
        if opened is not None and any(series is opened for _c, series in removed):
            self.schedule_series()

    def schedule_series(self) -> bool:
        """Snapshot the open series' classifications and queue its file's write; False without a study."""
        opened = opened_series(self.session)
        if opened is None:
            return False
        study, series_uid, series_key = series_keys(opened.meta)
        if not study or not series_key:
            return False
        doc = {"format": FORMAT, "version": FORMAT_VERSION, "study_uid": study, "series_uid": series_uid,
               "series_key": series_key, "saved_at": time.time(),
               "classifications": [encode(c) for c in self.session.classifications]}
        self._writer.put((study, series_key), doc)  # the newest snapshot of a file wins
        return True

    # --- restoring ----------------------------------------------------------------------------------------
    def has_saved(self, study_uid: str, series_key: str) -> bool:
        """The series has a stored file, or a write of it waits (one stat)."""
        key = (study_uid, series_key)
        return self._writer.busy(lambda k: k == key) or self.store.has(study_uid, series_key)

    def load_series(self, study_uid: str, series_uid: str, series_key: str = "",
                    timeout: float = 30.0) -> LoadedClassifications:
        """The stored classifications of a series, after every write scheduled so far (any thread)."""
        self.flush(timeout)
        return self.store.load(study_uid, series_uid, series_key)

    def restore(self, loaded: LoadedClassifications) -> list:
        """Add what was loaded to the session (the open series must be theirs; the caller checks) without writing it
        again — except what a damaged file gave back, which goes back to disk at once. An answer of the same model
        for the same image that arrived meanwhile is newer: the stored one is left out. Returns those added."""
        have = {(c.provenance.model_id, c.sop_instance_uid) for c in self.session.classifications}
        added = []
        self._restoring = True
        try:
            for item in loaded.items:
                if (item.provenance.model_id, item.sop_instance_uid) in have:
                    continue
                self.session.add_classification(item)
                have.add((item.provenance.model_id, item.sop_instance_uid))
                added.append(item)
        finally:
            self._restoring = False
        if loaded.recovered:
            self.schedule_series()
        return added

    # --- the writer thread --------------------------------------------------------------------------------
    def _write(self, key: tuple[str, str], doc: dict) -> None:
        self.store.write(key[0], doc)

    def _failed(self, key: tuple[str, str], _doc, exc: Exception) -> None:
        self._report_failure(f"AI classifications not saved to {self.store.path(*key)}: {type(exc).__name__}: {exc}")


__all__ = ["ClassificationStore", "ClassificationAutosave", "LoadedClassifications", "ClassificationFormatError",
           "encode", "decode", "decode_classification", "opened_series", "series_keys", "CLASSIFICATIONS_DIR",
           "FORMAT", "FORMAT_VERSION"]
