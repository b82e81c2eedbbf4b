"""Annotations on disk: one JSON file per study, written after every change, atomically.

Files live in ``platformdirs.user_data_dir("radview")/annotations/<StudyInstanceUID>.json``
(or ``$RADVIEW_ANNOTATIONS_DIR``, or the ``directory`` given). A write goes
to a temporary file in the same folder, is flushed and fsync'ed, then
renamed over the old file (``os.replace``) and the folder is fsync'ed, so a
crash at any moment leaves either the previous or the new file, never a
torn one.

:class:`Autosave` keeps an :class:`~viewer.core.annotations.AnnotationSet`
on disk. Writes run on one background thread in the order of the changes
(a newer snapshot of the same file supersedes an older one still waiting:
:mod:`viewer.store.autosave_writer`), so the GUI thread only takes an
immutable snapshot. A file that cannot be read — whatever it holds
(:mod:`viewer.store.set_aside`) — is never dropped: it is renamed to
``<name>.corrupt-<time>``, and the caller gets a ``(file, reason)`` problem
and a message saying so (and which entries, if any, were recovered).
"""
from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from psygnal import Signal

from radview_base.atomic_file import TEMP_PREFIX, atomic_path
from viewer.core.annotations import Annotation, AnnotationFormatError, AnnotationSet
from viewer.store.autosave_writer import AutosaveBase, AutosaveWriter
from viewer.store.set_aside import Problem, StoredFileError, describe, kept_text, read_json, set_aside

ENV_DIR = "RADVIEW_ANNOTATIONS_DIR"
STALE_TEMP_SECONDS = 60.0


def default_directory() -> Path:
    env = os.environ.get(ENV_DIR)
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_data_dir("radview")) / "annotations"


def file_name(study_uid: str) -> str:
    """``<StudyInstanceUID>.json``; characters a UID never holds are replaced, so any key is a safe name."""
    safe = re.sub(r"[^0-9A-Za-z._-]", "_", study_uid).lstrip(".") or "unknown"
    return f"{safe}.json"


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves the old or the new content, never a mix."""
    with atomic_path(path, mode=0o600) as tmp, open(tmp, "wb") as fh:  # private: the user's reading
        fh.write(data)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_numbers(entry) -> None:
    """Points and plane of a stored measurement must be JSON numbers (``"1.5"`` or ``"123"`` is not a point)."""
    if not isinstance(entry, dict):
        return  # Annotation.from_dict says what it is
    points = entry.get("points_lps")
    if not isinstance(points, list) or not all(
            isinstance(p, list) and len(p) == 3 and all(_is_number(v) for v in p) for p in points):
        raise AnnotationFormatError(f"measurement {str(entry.get('id', '?'))[:40]!r}: points_lps are not lists of "
                                    "three numbers")
    plane = entry.get("plane")
    if not isinstance(plane, dict) or not all(
            isinstance(plane.get(k), list) and len(plane[k]) == 3 and all(_is_number(v) for v in plane[k])
            for k in ("normal", "point")):
        raise AnnotationFormatError(f"measurement {str(entry.get('id', '?'))[:40]!r}: plane is not a normal and a "
                                    "point of three numbers each")


def serialise(study_uid: str, annotations, review: dict, extra: dict | None = None) -> bytes:
    doc = dict(extra or {})
    doc.update({"study_uid": study_uid, "measurements": [a.as_dict() for a in annotations], "review": review})
    return (json.dumps(doc, indent=1, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


@dataclass
class StoredStudy:
    """What a study's file held. ``message`` is set when the file could not be read in full."""

    study_uid: str
    annotations: list[Annotation] = field(default_factory=list)
    review: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)
    message: str | None = None
    kept_as: Path | None = None
    #: the files that could not be restored, ``(file, reason)``: this study's file, when it was damaged
    problems: list[Problem] = field(default_factory=list)


class AnnotationStore:
    def __init__(self, directory: str | os.PathLike | None = None) -> None:
        self.directory = Path(directory) if directory is not None else default_directory()

    def path_for(self, study_uid: str) -> Path:
        return self.directory / file_name(study_uid)

    def write(self, study_uid: str, data: bytes) -> None:
        write_atomic(self.path_for(study_uid), data)

    def load(self, study_uid: str) -> StoredStudy:
        """The study's annotations; a damaged file is set aside and reported, with what could be recovered.

        Nothing in the file raises here: too large, nested too deep, not UTF-8, not JSON, or a value of the wrong
        type anywhere is a ``(file, reason)`` in ``problems`` and the file is renamed ``<name>.corrupt-<time>``.
        """
        path = self.path_for(study_uid)
        self._remove_stale_temps(path)
        if not path.exists():
            return StoredStudy(study_uid)
        problems: list[str] = []
        out = StoredStudy(study_uid)
        try:
            self._read(path, out, problems)
        except OSError as exc:
            reason = f"it could not be read ({exc})"
            out.problems.append(Problem(path, f"{reason}; it was left as it is"))
            out.message = (f"The annotations of this study could not be read ({exc}); "
                           f"{path} was left untouched, and changes will not be saved over it.")
            return out
        except Exception as exc:  # noqa: BLE001 - whatever the file holds, the study opens
            out.annotations, out.review, out.extra = [], {}, {}
            problems.append(describe(exc))
        if problems:
            kept = set_aside(path)
            recovered = f"{len(out.annotations)} measurement(s) were recovered" if out.annotations else \
                "no measurements could be recovered"
            more = f" and {len(problems) - 1} more problem(s)" if len(problems) > 1 else ""
            out.problems.append(Problem(path, f"{problems[0]}{more}; {kept_text(path, kept)}"))
            out.message = (f"The saved annotations of this study were damaged ({problems[0]}{more}). "
                           + (f"The file was kept as {kept}; {recovered}." if kept else
                              f"It could not be moved aside and was left as {path}; {recovered}, and changes will "
                              "not be saved over it."))
            out.kept_as = kept
        return out

    @staticmethod
    def _read(path: Path, out: StoredStudy, problems: list[str]) -> None:
        """Fill ``out`` from the file; what is wrong with single entries goes to ``problems``."""
        doc = read_json(path)
        if not isinstance(doc, dict):
            raise StoredFileError(f"the file holds a JSON {type(doc).__name__}, not an object")
        entries = doc.get("measurements", [])
        if not isinstance(entries, list):
            raise StoredFileError("'measurements' is not a list")
        review = doc.get("review", {})
        if isinstance(review, dict) and all(isinstance(v, dict) for v in review.values()):
            out.review = review
        else:
            problems.append("the review section is not a table of findings")
        for i, entry in enumerate(entries):
            try:
                annotation = Annotation.from_dict(entry)  # (kind, id, …; then the stricter types below)
                _check_numbers(entry)
                out.annotations.append(annotation)
            except (AnnotationFormatError, ValueError, TypeError, KeyError, AttributeError) as exc:
                problems.append(f"measurement {i + 1}: {exc}")
        out.extra = {k: v for k, v in doc.items() if k not in ("study_uid", "measurements", "review")}

    def _remove_stale_temps(self, path: Path) -> None:
        """Temporary files of a write that a crash interrupted (older than a minute)."""
        now = time.time()
        for p in path.parent.glob(f"{TEMP_PREFIX}*-{path.name}"):
            try:
                if now - p.stat().st_mtime > STALE_TEMP_SECONDS:
                    p.unlink()
            except OSError:
                pass


class Autosave(AutosaveBase):
    """Writes an AnnotationSet to its study's file after every change (background thread, in order).

    ``saved`` (generation) and ``save_failed`` (message) are emitted on the
    writer thread: a Qt receiver must hop to its own thread (a queued signal).
    """

    saved = Signal(int)
    save_failed = Signal(str)
    CLOSE_TIMEOUT_S = 10.0

    def __init__(self, annotations: AnnotationSet, store: AnnotationStore | None = None) -> None:
        self.annotations = annotations
        self.store = store or AnnotationStore()
        self.write_ms: list[float] = []  # duration of each write on the writer thread (serialise + fsync + rename)
        self.schedule_ms: list[float] = []  # time the caller (GUI) thread spent per change
        self.last_error: str | None = None
        self.study_uid = ""  # the study whose file was last opened
        self.problems: list[Problem] = []  # what could not be restored when it was opened: (file, reason)
        self._blocked: set[str] = set()  # studies whose unreadable file must not be overwritten
        #: jobs keyed by study: only the newest snapshot of a study's file is written
        self._writer = AutosaveWriter(self._write, self._failed, "annotation-autosave", on_saved=self.saved.emit)
        self._connections = tuple((sig, self._schedule) for sig in (
            annotations.annotation_added, annotations.annotation_changed, annotations.annotation_removed,
            annotations.review_changed))
        for signal, slot in self._connections:
            signal.connect(slot)

    def open_study(self, study_uid: str) -> str | None:
        """Load a study's saved annotations into the set (replacing what it held); a message if the file was damaged."""
        self.flush()
        self.study_uid = study_uid
        self.problems = []
        if not study_uid:
            self.annotations.open_study("")
            return None
        stored = self.store.load(study_uid)
        self.problems = list(stored.problems)
        if stored.message is not None and stored.kept_as is None:
            self._blocked.add(study_uid)
        else:
            self._blocked.discard(study_uid)
        self.annotations.open_study(study_uid, stored.annotations, stored.review, stored.extra)
        if stored.kept_as is not None and (stored.annotations or stored.review):
            self._schedule()  # what was recovered goes back into the study's file at once
        return stored.message

    def _schedule(self, *_args) -> None:
        t0 = time.perf_counter()
        study, annotations, review, extra = self.annotations.snapshot()
        if not study or study in self._blocked:
            return
        self._writer.put(study, (annotations, review, extra))
        self.schedule_ms.append((time.perf_counter() - t0) * 1000)

    def _write(self, study: str, snapshot: tuple) -> None:
        """The writer thread: one study's newest snapshot to its file."""
        items, review, extra = snapshot
        t0 = time.perf_counter()
        self.store.write(study, serialise(study, items, review, extra))
        self.write_ms.append((time.perf_counter() - t0) * 1000)

    def _failed(self, study: str, _snapshot, exc: Exception) -> None:
        self._report_failure(f"Annotations not saved to {self.store.path_for(study)}: {exc}")

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every scheduled change is on disk (or failed); False on timeout."""
        return super().flush(timeout)
