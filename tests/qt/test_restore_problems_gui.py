"""A restore that meets a damaged file tells the user (viewer/qt/controllers/autosave.py): the window opens a study
whose store has three measurements and two label layers with ONE file damaged; the rest comes back, the file is set
aside, and the notifier shows which file and why in a non-modal box."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PySide6.QtCore import QSettings

from radview_base.geometry import Geometry
from viewer.core.annotations import Plane, new_annotation
from viewer.core.layers import LabelLayer
from viewer.io.volume import LabelMap, Volume
from viewer.qt.main_window import MainWindow
from viewer.store.annotation_store import AnnotationStore, serialise
from viewer.store.layer_store import LayerStore, label_manifest

GEOM = Geometry((20, 40, 48), (2.0, 0.8, 0.8), (-20.0, -16.0, -30.0))
STUDY, SERIES = "1.2.826.0.1.9.8", "1.2.826.0.1.9.8.2"


def _volume():
    rng = np.random.default_rng(3)
    return Volume(rng.normal(-800, 20, GEOM.shape_zyx).astype(np.int16), GEOM,
                  meta={"modality": "CT", "study_uid": STUDY, "series_uid": SERIES, "description": "restore"})


def _good_store(root):
    """Three measurements and two edited label layers, as an earlier session left them."""
    plane = Plane((0, 0, 1), (0, 0, 4.0))
    measurements = [new_annotation("length", [(x, 1, 4), (x + 10, 1, 4)], plane, SERIES) for x in (0, 5, 9)]
    AnnotationStore(root).write(STUDY, serialise(STUDY, measurements, {}))
    layers = LayerStore(root)
    for i, name in enumerate(("first", "second")):
        array = np.zeros(GEOM.shape_zyx, np.uint8)
        array[4 + i:10, 5:20, 5:30] = i + 1
        layer = LabelLayer(LabelMap(array, GEOM, {i + 1: name}), name=name, meta={"edited": True})
        layers.write_labels(STUDY, label_manifest(layer, name, STUDY, SERIES, None, float(i)), array)
    return AnnotationStore(root).path_for(STUDY), layers


@pytest.mark.parametrize("damage", ["layer data", "annotations"])
def test_the_user_is_told_which_file_was_set_aside_and_the_rest_is_restored(qtbot, tmp_path, damage):
    root = tmp_path / "annotations"
    annotation_file, layers = _good_store(root)
    folder = layers.folder(STUDY)
    if damage == "layer data":
        bad = folder / json.loads((folder / "first.json").read_text())["data"]["file"]
        head, _, _body = bad.read_bytes().partition(b"\n\n")
        bad.write_bytes(head + b"\n\n" + b"not gzip at all" * 40)
    else:
        bad = annotation_file
        bad.write_bytes(b"[" * 100_000 + b"]" * 100_000)
    w = MainWindow(QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat), annotation_dir=str(root))
    qtbot.addWidget(w)
    w.show()
    try:
        w.session.load_volume(_volume())
        qtbot.waitUntil(lambda: bad.name in w.notices.last_message, timeout=20000)
        if damage == "annotations":  # the layers arrive after the measurements' message
            qtbot.waitUntil(lambda: len(w.session.layers) == 2 and not w.tasks._running, timeout=20000)
        else:
            qtbot.waitUntil(lambda: not w.tasks._running, timeout=20000)
        message, box = w.notices.last_message, w.notices.message_box
        assert box is not None and box.isVisible() and not box.isModal() and bad.name in box.text()
        assert "kept as" in message and ".corrupt-" in message
        assert not bad.exists() and len(list(bad.parent.glob(f"{bad.name}.corrupt-*"))) == 1
        (problem,) = w.study_autosave.problems
        assert problem.file == bad and problem.reason
        if damage == "layer data":
            assert [layer.name for layer in w.session.layers] == ["second"]
            assert len(w.session.annotations) == 3
        else:
            assert sorted(layer.name for layer in w.session.layers) == ["first", "second"]
            assert len(w.session.annotations) == 0
    finally:
        w.close()
