"""The local study database: studies retrieved, received or imported, their files in a managed store, indexed in SQLite.

Layout (``platformdirs.user_data_dir("radview")/studies``, or ``$RADVIEW_STUDY_DB``, or the folder given)::

    index.sqlite                                   studies, series, instances
    store/<StudyUID>/<SeriesUID>/<SOPUID>.dcm      one file per instance, written atomically

:class:`StudyDatabase` is an instance sink (``put`` / ``present`` / ``location``, like
``viewer.net.sinks.FolderSink``): the C-STORE SCP, C-GET and WADO-RS write into it, an instance already there is
not written again (a retry never duplicates). ``import_paths`` copies files from a folder into the store.
``search`` lists studies by patient name (``*``/``?`` wildcards; text without a wildcard matches anywhere in the
name, case-insensitive), patient ID, date range, modality, accession number and description; ``location`` is the
study's (or series') folder, which opens without scanning anything else; ``forget`` drops a study from the index and
leaves its files, ``delete`` removes both.

Thread-safe (one connection behind a lock; WAL, so the GUI and a CLI can share the file). Standard library only,
pydicom for imports.
"""
from __future__ import annotations

import os
import shutil
import sqlite3
import threading
import time
from pathlib import Path
from typing import Callable, Iterable

from viewer.net.instance_header import HeaderError, InstanceHeader, header_of_file, safe_name
from viewer.net.records import InstanceRef, QueryCriteria, SeriesRecord, StudyRecord, date_bounds
from viewer.net.results import StoredInstance
from viewer.net.sinks import relative_path, sync_folders, write_atomic

ENV_DIR = "RADVIEW_STUDY_DB"
SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS studies (
    study_uid TEXT PRIMARY KEY, patient_name TEXT, patient_id TEXT, birth_date TEXT, study_date TEXT,
    study_time TEXT, accession TEXT, description TEXT, added REAL);
CREATE TABLE IF NOT EXISTS series (
    series_uid TEXT PRIMARY KEY, study_uid TEXT NOT NULL, modality TEXT, description TEXT, number INTEGER);
CREATE TABLE IF NOT EXISTS instances (
    sop_uid TEXT PRIMARY KEY, series_uid TEXT NOT NULL, study_uid TEXT NOT NULL, sop_class_uid TEXT,
    instance_number INTEGER, path TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS series_by_study ON series(study_uid);
CREATE INDEX IF NOT EXISTS instances_by_series ON instances(series_uid);
CREATE INDEX IF NOT EXISTS instances_by_study ON instances(study_uid);
CREATE INDEX IF NOT EXISTS studies_by_patient ON studies(patient_id);
CREATE INDEX IF NOT EXISTS studies_by_date ON studies(study_date);
"""


def default_root() -> Path:
    env = os.environ.get(ENV_DIR)
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_data_dir("radview")) / "studies"


def like_pattern(text: str) -> str:
    """A DICOM-style pattern (``*``, ``?``) as a SQL LIKE pattern (escape ``\\``); no wildcard: contains."""
    out = []
    for ch in text:
        if ch in "%_\\":
            out.append("\\" + ch)
        elif ch == "*":
            out.append("%")
        elif ch == "?":
            out.append("_")
        else:
            out.append(ch)
    pattern = "".join(out)
    return pattern if ("*" in text or "?" in text) else f"%{pattern}%"


class StudyDatabase:
    """The index and the managed store under ``root``."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else default_root()
        self.store = self.root / "store"
        self.store.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._in_flight: set[str] = set()
        self._dirty: set[str] = set()
        self._db = sqlite3.connect(str(self.root / "index.sqlite"), timeout=30, check_same_thread=False,
                                   isolation_level=None)
        self._db.row_factory = sqlite3.Row
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> StudyDatabase:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ the sink
    def location(self, study_uid: str, series_uid: str = "") -> str:
        parts = [safe_name(study_uid)] + ([safe_name(series_uid)] if series_uid else [])
        return str(self.store.joinpath(*parts))

    def holds(self, study_uid: str, series_uid: str = "") -> bool:
        """Whether any instance of the study (or series) is indexed."""
        sql = "SELECT 1 FROM instances WHERE study_uid = ?" + (" AND series_uid = ?" if series_uid else "") + " LIMIT 1"
        with self._lock:
            return self._db.execute(sql, (study_uid, series_uid) if series_uid else (study_uid,)).fetchone() is not None

    def present(self, refs: Iterable[InstanceRef]) -> set[str]:
        """The SOP Instance UIDs of ``refs`` that are indexed and whose file is still there."""
        refs = list(refs)
        found: set[str] = set()
        with self._lock:
            for i in range(0, len(refs), 500):
                chunk = [r.sop_uid for r in refs[i:i + 500]]
                rows = self._db.execute(f"SELECT sop_uid, path FROM instances WHERE sop_uid IN "
                                        f"({','.join('?' * len(chunk))})", chunk).fetchall()
                found |= {r["sop_uid"] for r in rows if os.path.isfile(self.store / r["path"])}
        return found

    def put(self, header: InstanceHeader, write: Callable[[str], None]) -> StoredInstance:
        """Write the instance (``write(tmp_path)`` writes the file) unless it is there; index it either way."""
        rel = relative_path(header.study_uid, header.series_uid, header.sop_uid)
        path = self.store / rel
        with self._lock:
            if path.is_file() or rel in self._in_flight:
                self._index(header, rel)
                return StoredInstance(header, str(path), new=False)
            self._in_flight.add(rel)
        try:
            folder = write_atomic(str(path), write)
            with self._lock:
                self._dirty.add(folder)
                self._index(header, rel)
        finally:
            with self._lock:
                self._in_flight.discard(rel)
        return StoredInstance(header, str(path), new=True)

    def _index(self, h: InstanceHeader, rel: str) -> None:
        db = self._db
        db.execute("BEGIN")
        try:
            db.execute("INSERT INTO studies (study_uid, patient_name, patient_id, birth_date, study_date, study_time, "
                       "accession, description, added) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(study_uid) DO NOTHING",
                       (h.study_uid, h.patient_name, h.patient_id, h.birth_date, h.study_date, h.study_time,
                        h.accession, h.study_description, time.time()))
            db.execute("INSERT INTO series (series_uid, study_uid, modality, description, number) VALUES (?,?,?,?,?) "
                       "ON CONFLICT(series_uid) DO NOTHING",
                       (h.series_uid, h.study_uid, h.modality, h.series_description, h.series_number))
            db.execute("INSERT INTO instances (sop_uid, series_uid, study_uid, sop_class_uid, instance_number, path) "
                       "VALUES (?,?,?,?,?,?) ON CONFLICT(sop_uid) DO UPDATE SET path=excluded.path",
                       (h.sop_uid, h.series_uid, h.study_uid, h.sop_class_uid, h.instance_number, rel))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def flush(self) -> None:
        """Make the new files' names durable (their data already is)."""
        with self._lock:
            folders, self._dirty = self._dirty, set()
        sync_folders(folders)

    # ------------------------------------------------------------------ import
    def import_paths(self, paths: Iterable[str], progress: Callable | None = None,
                     cancel: threading.Event | None = None) -> tuple[list[StoredInstance], list[tuple[str, str]]]:
        """Copy the DICOM files at ``paths`` (files or folders) into the store: (stored, [(path, why skipped)])."""
        from radview_base.cancel import Cancelled

        files: list[str] = []
        for p in paths:
            if os.path.isdir(p):
                for folder, dirs, names in os.walk(p):
                    dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                    files += [os.path.join(folder, n) for n in sorted(names) if not n.startswith(".")]
            else:
                files.append(str(p))
        stored, skipped = [], []
        for i, f in enumerate(files):
            if cancel is not None and cancel.is_set():
                raise Cancelled()
            try:
                header = header_of_file(f)
            except (HeaderError, OSError) as exc:
                skipped.append((f, str(exc)))
                continue
            stored.append(self.put(header, lambda tmp, src=f: shutil.copyfile(src, tmp)))
            if progress is not None:
                progress(i + 1, len(files), "")
        self.flush()
        return stored, skipped

    # ------------------------------------------------------------------ search
    def search(self, criteria: QueryCriteria | None = None) -> list[StudyRecord]:
        """Studies matching ``criteria`` (None: all; newest study date first), with their modalities and counts."""
        where, args = [], []
        c = criteria or QueryCriteria()
        if c.patient_name:
            where.append("s.patient_name LIKE ? ESCAPE '\\'")
            args.append(like_pattern(c.patient_name))
        if c.patient_id:
            where.append("s.patient_id LIKE ? ESCAPE '\\'")
            args.append(like_pattern(c.patient_id) if ("*" in c.patient_id or "?" in c.patient_id)
                        else c.patient_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_"))
        lo, hi = date_bounds(c.study_date)
        if lo:
            where.append("s.study_date >= ?")
            args.append(lo)
        if hi:
            where.append("s.study_date <> '' AND s.study_date <= ?")
            args.append(hi)
        if c.accession:
            where.append("s.accession = ?")
            args.append(c.accession)
        if c.description:
            where.append("s.description LIKE ? ESCAPE '\\'")
            args.append(like_pattern(c.description))
        if c.study_uid:
            where.append("s.study_uid = ?")
            args.append(c.study_uid)
        if c.modality:
            where.append("EXISTS (SELECT 1 FROM series m WHERE m.study_uid = s.study_uid AND m.modality = ?)")
            args.append(c.modality.upper())
        sql = ("SELECT s.*, (SELECT COUNT(*) FROM series x WHERE x.study_uid = s.study_uid) AS n_series, "
               "(SELECT COUNT(*) FROM instances i WHERE i.study_uid = s.study_uid) AS n_instances, "
               "(SELECT GROUP_CONCAT(DISTINCT modality) FROM series y WHERE y.study_uid = s.study_uid) AS modalities "
               "FROM studies s" + (" WHERE " + " AND ".join(where) if where else "") +
               " ORDER BY s.study_date DESC, s.study_time DESC" + (f" LIMIT {int(c.limit)}" if c.limit else ""))
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [StudyRecord(study_uid=r["study_uid"], patient_name=r["patient_name"] or "",
                            patient_id=r["patient_id"] or "", birth_date=r["birth_date"] or "",
                            study_date=r["study_date"] or "", study_time=r["study_time"] or "",
                            accession=r["accession"] or "", description=r["description"] or "",
                            modalities=tuple(sorted(m for m in (r["modalities"] or "").split(",") if m)),
                            n_series=r["n_series"], n_instances=r["n_instances"]) for r in rows]

    def series_of(self, study_uid: str) -> list[SeriesRecord]:
        with self._lock:
            study = self._db.execute("SELECT * FROM studies WHERE study_uid = ?", (study_uid,)).fetchone()
            rows = self._db.execute(
                "SELECT x.*, (SELECT COUNT(*) FROM instances i WHERE i.series_uid = x.series_uid) AS n "
                "FROM series x WHERE x.study_uid = ? ORDER BY x.number, x.series_uid", (study_uid,)).fetchall()
        return [SeriesRecord(study_uid=study_uid, series_uid=r["series_uid"], modality=r["modality"] or "",
                             description=r["description"] or "", number=r["number"], n_instances=r["n"],
                             patient_id=study["patient_id"] if study else "",
                             patient_name=study["patient_name"] if study else "",
                             study_date=study["study_date"] if study else "") for r in rows]

    def files_of(self, study_uid: str, series_uid: str = "") -> list[str]:
        """The instance files of a study (or one of its series), in instance-number order."""
        sql = "SELECT path FROM instances WHERE study_uid = ?" + (" AND series_uid = ?" if series_uid else "")
        args = (study_uid, series_uid) if series_uid else (study_uid,)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY series_uid, instance_number, sop_uid", args).fetchall()
        return [str(self.store / r["path"]) for r in rows]

    # ------------------------------------------------------------------ forget / delete
    def forget(self, study_uid: str) -> int:
        """Drop the study from the index; its files stay in the store. Returns how many instances were indexed."""
        with self._lock:
            db = self._db
            db.execute("BEGIN")
            try:
                n = db.execute("DELETE FROM instances WHERE study_uid = ?", (study_uid,)).rowcount
                db.execute("DELETE FROM series WHERE study_uid = ?", (study_uid,))
                db.execute("DELETE FROM studies WHERE study_uid = ?", (study_uid,))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return n

    def delete(self, study_uid: str) -> int:
        """Drop the study from the index and remove its files from the store."""
        n = self.forget(study_uid)
        folder = Path(self.location(study_uid))
        if folder.is_dir() and folder.resolve().is_relative_to(self.store.resolve()):
            shutil.rmtree(folder)
        return n
