"""Annotations on disk (viewer/store/annotation_store.py): after every change, atomic, nothing lost."""
from __future__ import annotations

import json
import os
import statistics

import numpy as np
import pytest

from radview_base.geometry import Geometry
from viewer.core.annotations import AnnotationSet, Plane, new_annotation
from viewer.io.volume import Volume
from viewer.store.annotation_store import ENV_DIR, AnnotationStore, Autosave, default_directory, write_atomic

GEOM = Geometry((10, 40, 50), (2.0, 0.7, 0.7), (0.0, 0.0, 0.0))
AXIAL = Plane((0, 0, 1), (0, 0, 8.0))
STUDY = "1.2.826.0.1.3680043.8.498.1"


def _length(x=0.0):
    return new_annotation("length", [(x, 1, 8), (x + 10, 1, 8)], AXIAL, "1.2.3")


def _ellipse():
    return new_annotation("ellipse", [(5, 10, 8), (15, 10, 8), (10, 7, 8), (10, 13, 8)], AXIAL, "1.2.3")


@pytest.fixture
def autosave(tmp_path):
    s = AnnotationSet()
    s.volume = Volume(np.arange(np.prod(GEOM.shape_zyx)).reshape(GEOM.shape_zyx).astype(np.int16), GEOM,
                      meta={"series_uid": "1.2.3", "study_uid": STUDY, "modality": "CT"})
    saver = Autosave(s, AnnotationStore(tmp_path))
    saver.open_study(STUDY)
    yield saver
    saver.close()


def _on_disk(saver) -> dict:
    assert saver.flush()
    return json.loads(saver.store.path_for(STUDY).read_text())


def test_every_change_is_on_disk_and_reloads_in_full(autosave, tmp_path):
    s = autosave.annotations
    a = s.add(_length())
    assert [m["id"] for m in _on_disk(autosave)["measurements"]] == [a.id]
    b = s.add(_ellipse())
    s.move(a.id, (1, 2, 0))
    s.edit(b.id, label="cyst")
    s.set_review("ai:nodule:1", "rejected", "dr_y", "2024-05-01T10:00:00+00:00")
    doc = _on_disk(autosave)
    assert list(doc) == ["study_uid", "measurements", "review"] and doc == s.document()
    assert doc["measurements"][1]["stats"]["mean"] is not None
    s.delete(a.id)
    assert [m["id"] for m in _on_disk(autosave)["measurements"]] == [b.id]
    s.undo()  # an undo is a change too
    assert len(_on_disk(autosave)["measurements"]) == 2
    # a fresh set restores everything, annotation for annotation
    again = AnnotationSet()
    saver2 = Autosave(again, AnnotationStore(tmp_path))
    try:
        assert saver2.open_study(STUDY) is None
        assert list(again) == list(s) and again.review == s.review
    finally:
        saver2.close()
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]  # no temporary files left


def test_rapid_changes_are_written_in_order(autosave):
    s = autosave.annotations
    ids = [s.add(_length(x)).id for x in range(60)]
    for ident in ids[::2]:
        s.delete(ident)
    doc = _on_disk(autosave)
    assert [m["id"] for m in doc["measurements"]] == ids[1::2]
    assert autosave.saved_generation == autosave.generation == 90


def test_the_write_keeps_the_gui_thread_free(autosave):
    """The GUI thread only takes a snapshot; the write (fsync included) runs on the writer thread."""
    s = autosave.annotations
    for x in range(100):
        s.add(_length(x))
    assert autosave.flush()
    size = autosave.store.path_for(STUDY).stat().st_size
    gui = statistics.median(autosave.schedule_ms)
    write = statistics.median(autosave.write_ms)
    print(f"\nautosave with 100 annotations ({size} bytes): GUI thread {gui:.3f} ms per change (median), "
          f"writer {write:.2f} ms per file (median, max {max(autosave.write_ms):.2f})")
    assert gui < 5.0


def test_a_corrupt_file_is_kept_aside_with_a_message(tmp_path):
    store = AnnotationStore(tmp_path)
    path = store.path_for(STUDY)
    path.write_bytes(b'{"study_uid": "x", "measurements": [{"id": "a", "kind": "len')  # torn by hand
    s = AnnotationSet()
    saver = Autosave(s, store)
    try:
        message = saver.open_study(STUDY)
        kept = [p for p in tmp_path.iterdir() if p.name.startswith(path.name + ".corrupt-")]
        assert len(kept) == 1 and kept[0].read_bytes().startswith(b'{"study_uid": "x"')
        assert "damaged" in message and str(kept[0]) in message and "no measurements could be recovered" in message
        assert len(s) == 0 and not path.exists()
        s.add(_length())  # the study carries on with a fresh file
        assert saver.flush() and len(json.loads(path.read_text())["measurements"]) == 1
    finally:
        saver.close()


def test_good_entries_of_a_damaged_file_are_recovered(tmp_path):
    store = AnnotationStore(tmp_path)
    good = _length()
    doc = {"study_uid": STUDY, "measurements": [good.as_dict(), {"id": "b", "kind": "spiral"}], "review": {}}
    store.path_for(STUDY).write_text(json.dumps(doc))
    s = AnnotationSet()
    saver = Autosave(s, store)
    try:
        message = saver.open_study(STUDY)
        assert "1 measurement(s) were recovered" in message and "spiral" in message
        assert [a.id for a in s] == [good.id]
        assert saver.flush()  # the recovered entries are written back at once
        assert [m["id"] for m in json.loads(store.path_for(STUDY).read_text())["measurements"]] == [good.id]
        kept = next(p for p in tmp_path.iterdir() if ".corrupt-" in p.name)
        assert json.loads(kept.read_text()) == doc  # the original, untouched
    finally:
        saver.close()


def test_write_atomic_leaves_the_old_file_when_the_write_fails(tmp_path):
    path = tmp_path / "a.json"
    write_atomic(path, b"old")


    with pytest.raises(TypeError):
        write_atomic(path, "not bytes")  # fails inside the write
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["a.json"]


def test_a_failed_write_is_reported(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    s = AnnotationSet()
    saver = Autosave(s, AnnotationStore(blocker / "sub"))  # a folder under a file: cannot be created
    failures = []
    saver.save_failed.connect(failures.append)
    try:
        saver.open_study(STUDY)
        s.add(_length())
        assert saver.flush()
        assert failures and "not saved" in failures[0]
    finally:
        saver.close()


def test_directory_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_DIR, str(tmp_path / "ann"))
    assert default_directory() == tmp_path / "ann"
    assert AnnotationStore().path_for("1.2.3").name == "1.2.3.json"
    monkeypatch.delenv(ENV_DIR)
    assert default_directory().parts[-2:] == ("radview", "annotations")
    assert AnnotationStore(tmp_path).path_for("../evil/x").parent == tmp_path


def test_the_annotation_model_imports_no_qt():
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    code = ("import sys, viewer.core.annotations, viewer.store.annotation_store, viewer.core.measurements, "
            "viewer.core.undo, viewer.core.session\n"
            "print(sorted(m for m in sys.modules if m.startswith(('PySide6', 'pyqtgraph', 'vtk', 'torch'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_autosave_file_is_private_to_the_user(tmp_path):
    import stat

    path = tmp_path / "study.json"
    write_atomic(path, b"{}")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and path.read_bytes() == b"{}"
