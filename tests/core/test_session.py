"""The viewer session (viewer/core/session.py): state changes and the events they emit."""
from __future__ import annotations

import numpy as np
import pytest

from radview_base.geometry import Geometry, GeometryMismatchError
from viewer.core.layers import LabelLayer, Marker, MarkerLayer
from viewer.core.session import Session
from viewer.core.window_presets import FROM_FILE
from viewer.io.volume import LabelMap, Volume

SHAPE = (5, 6, 7)
GEOM = Geometry(SHAPE, (2.0, 0.8, 0.7), (-10.0, 20.0, 30.0))


def _volume(geometry=GEOM, window=(40.0, 400.0), seed=0) -> Volume:
    rng = np.random.default_rng(seed)
    arr = rng.integers(-1000, 1000, size=geometry.shape_zyx).astype(np.int16)
    return Volume(arr, geometry, meta={"modality": "CT", "window": window})


def _labels(geometry=GEOM, name="seg") -> LabelLayer:
    arr = np.zeros(geometry.shape_zyx, np.uint8)
    arr[1:3, 2:4, 2:5] = 1
    return LabelLayer(LabelMap(arr, geometry, {1: "liver"}), name=name)


class Recorder:
    """Connects to every session signal and records (signal name, args) in order."""

    NAMES = ("volume_loaded", "volume_cleared", "cursor_moved", "window_changed", "display_changed",
             "layer_added", "layer_removed", "layer_changed")

    def __init__(self, session: Session):
        self.events: list[tuple] = []
        for n in self.NAMES:
            getattr(session, n).connect(self._make(n))

    def _make(self, n):
        def cb(*args):
            self.events.append((n, *args))
        return cb

    def of(self, name):
        return [e[1:] for e in self.events if e[0] == name]

    def names(self):
        return [e[0] for e in self.events]

    def clear(self):
        self.events.clear()


@pytest.fixture
def session():
    return Session()


@pytest.fixture
def rec(session):
    return Recorder(session)


# ------------------------------------------------------------------ loading
def test_load_volume_sets_cursor_at_centre_and_emits(session, rec):
    vol = _volume()
    session.load_volume(vol)
    assert session.volume is vol
    assert rec.of("volume_loaded") == [(vol,)]
    assert rec.of("window_changed") == [(400.0, 40.0, FROM_FILE)]
    assert rec.names().index("volume_loaded") < rec.names().index("window_changed")
    assert (session.width, session.level, session.preset_name) == (400.0, 40.0, FROM_FILE)
    # centre voxel: index ((5-1)/2, (6-1)/2, (7-1)/2) = (2, 2.5, 3); within half a voxel, on a voxel centre
    idx = session.cursor_index()
    np.testing.assert_allclose(idx, np.round(idx), atol=1e-9)
    assert np.all(np.abs(idx - np.array([2.0, 2.5, 3.0])) <= 0.5)
    # and in mm: origin + index * spacing (identity direction)
    np.testing.assert_allclose(session.cursor_lps,
                               np.array([-10.0, 20.0, 30.0]) + idx[::-1] * np.array([0.7, 0.8, 2.0]))


def test_load_volume_without_file_window_uses_robust_range(session, rec):
    vol = _volume(window=None)
    session.load_volume(vol)
    (w, lvl, name), = rec.of("window_changed")
    assert name == FROM_FILE
    lo, hi = lvl - w / 2, lvl + w / 2
    assert -1000 <= lo < -950 and 950 < hi <= 1000


def test_load_volume_with_preset_emits_one_window_change(session, rec):
    session.load_volume(_volume(), preset="bone")
    assert rec.of("window_changed") == [(2500.0, 480.0, "bone")]


def test_apply_preset_lung(session, rec):
    session.load_volume(_volume())
    rec.clear()
    session.apply_preset("lung")
    assert rec.of("window_changed") == [(1500.0, -600.0, "lung")]
    assert session.levels == (-1350.0, 150.0)


def test_apply_preset_from_file_restores_the_series_window(session, rec):
    session.load_volume(_volume(window=(50.0, 350.0)))
    session.apply_preset("brain")
    rec.clear()
    session.apply_preset("from file")
    assert rec.of("window_changed") == [(350.0, 50.0, FROM_FILE)]


def test_apply_unknown_preset_raises_and_keeps_window(session, rec):
    session.load_volume(_volume())
    rec.clear()
    with pytest.raises(KeyError):
        session.apply_preset("no such preset")
    assert rec.events == []
    assert (session.width, session.level) == (400.0, 40.0)


def test_set_window_clamps_width_positive(session, rec):
    session.set_window(-5, 10)
    (w, lvl, name), = rec.of("window_changed")
    assert w > 0 and lvl == 10.0 and name == ""


# ------------------------------------------------------------------ cursor
def test_move_cursor_inside_moves_exactly_and_emits_once(session, rec):
    session.load_volume(_volume())
    rec.clear()
    p = GEOM.index_to_world((1.0, 4.0, 5.0))
    session.move_cursor(p)
    assert len(rec.of("cursor_moved")) == 1
    np.testing.assert_allclose(rec.of("cursor_moved")[0][0], p)
    np.testing.assert_allclose(session.cursor_lps, p)
    # the same point again: no event
    session.move_cursor(p.copy())
    assert len(rec.of("cursor_moved")) == 1


def test_move_cursor_clamps_to_the_volume(session, rec):
    session.load_volume(_volume())
    rec.clear()
    far = np.array([1000.0, -1000.0, 1e4])
    session.move_cursor(far)
    assert len(rec.of("cursor_moved")) == 1
    # x to the last column, y to the first row, z to the last slice
    expected = GEOM.index_to_world((SHAPE[0] - 1, 0, SHAPE[2] - 1))
    np.testing.assert_allclose(session.cursor_lps, expected)
    np.testing.assert_allclose(rec.of("cursor_moved")[0][0], expected)
    # another point outside that clamps to the same place: unchanged, no event
    session.move_cursor(far * 2)
    assert len(rec.of("cursor_moved")) == 1
    # clamped in every axis independently: only z out of range
    inside = GEOM.index_to_world((2.0, 3.0, 4.0))
    session.move_cursor(inside + np.array([0, 0, -500.0]))
    np.testing.assert_allclose(session.cursor_lps, GEOM.index_to_world((0.0, 3.0, 4.0)))
    assert len(rec.of("cursor_moved")) == 2


def test_emitted_cursor_is_a_copy(session, rec):
    session.load_volume(_volume())
    rec.clear()
    session.move_cursor(GEOM.index_to_world((1.0, 1.0, 1.0)))
    emitted = rec.of("cursor_moved")[0][0]
    emitted[:] = 0
    np.testing.assert_allclose(session.cursor_lps, GEOM.index_to_world((1.0, 1.0, 1.0)))


# ------------------------------------------------------------------ layers
def test_add_layer_on_the_same_grid(session, rec):
    session.load_volume(_volume())
    layer = _labels(Geometry(SHAPE, (2.0, 0.8, 0.7), (-10.0, 20.0, 30.0)))  # equal, not the same object
    session.add_layer(layer)
    assert session.layers == [layer]
    assert rec.of("layer_added") == [(layer,)]
    assert session.label_layers() == [layer] and session.marker_layers() == []


@pytest.mark.parametrize(
    "geometry",
    [
        Geometry(SHAPE, (2.0, 0.8, 0.7), (-9.0, 20.0, 30.0)),  # origin shifted 1 mm
        Geometry(SHAPE, (2.0, 0.8, 0.7), (-10.0, 20.0, 30.1)),  # 0.1 mm
        Geometry(SHAPE, (2.0, 0.8, 0.75), (-10.0, 20.0, 30.0)),  # different spacing
        Geometry((5, 6, 8), (2.0, 0.8, 0.7), (-10.0, 20.0, 30.0)),  # different shape
        Geometry(SHAPE, (2.0, 0.8, 0.7), (-10.0, 20.0, 30.0), np.diag([1.0, 1.0, -1.0])),  # slice order reversed
    ],
    ids=["origin+1mm", "origin+0.1mm", "spacing", "shape", "direction"],
)
def test_add_layer_refuses_another_grid(session, rec, geometry):
    session.load_volume(_volume())
    rec.clear()
    with pytest.raises(GeometryMismatchError):
        session.add_layer(_labels(geometry))
    assert session.layers == []
    assert rec.events == []


def test_add_layer_accepts_a_marker_layer_without_grid_check(session, rec):
    session.load_volume(_volume())
    layer = MarkerLayer([Marker((0.0, 0.0, 0.0), score=0.9)])
    session.add_layer(layer)
    assert session.marker_layers() == [layer]


def test_add_layer_without_volume_refused(session):
    with pytest.raises(RuntimeError):
        session.add_layer(_labels())


def test_loading_a_new_volume_removes_old_layers(session, rec):
    session.load_volume(_volume())
    a, b = _labels(name="a"), MarkerLayer([])
    session.add_layer(a)
    session.add_layer(b)
    rec.clear()
    vol2 = _volume(seed=1)
    session.load_volume(vol2)
    assert session.layers == []
    assert sorted(rec.of("layer_removed"), key=lambda e: id(e[0])) == sorted([(a,), (b,)], key=lambda e: id(e[0]))
    # the layers go before the new volume is announced
    names = rec.names()
    assert max(i for i, n in enumerate(names) if n == "layer_removed") < names.index("volume_loaded")


def test_remove_and_update_layer(session, rec):
    session.load_volume(_volume())
    layer = _labels()
    session.add_layer(layer)
    rec.clear()
    session.update_layer(layer, opacity=0.7, hidden_labels={1})
    assert layer.opacity == 0.7 and layer.hidden_labels == {1}
    assert rec.of("layer_changed") == [(layer,)]
    with pytest.raises(AttributeError):
        session.update_layer(layer, no_such_setting=1)
    session.remove_layer(layer)
    session.remove_layer(layer)  # twice: the second is a no-op
    assert rec.of("layer_removed") == [(layer,)]


def test_clear(session, rec):
    session.load_volume(_volume())
    layer = _labels()
    session.add_layer(layer)
    rec.clear()
    session.clear()
    assert session.volume is None and session.layers == []
    assert rec.names() == ["layer_removed", "volume_cleared"]


# ------------------------------------------------------------------ display
def test_set_display(session, rec):
    session.set_display(invert=1, show_patient_data=0)
    assert session.invert is True and session.show_patient_data is False
    assert session.show_corner_text is True and session.overlays_visible is True
    assert len(rec.of("display_changed")) == 1


def test_set_display_rejects_unknown_options(session, rec):
    with pytest.raises(AttributeError):
        session.set_display(inverted=True)
    assert rec.events == []
    assert not hasattr(session, "inverted")


def test_set_display_with_an_unknown_option_changes_nothing(session, rec):
    with pytest.raises(AttributeError):
        session.set_display(invert=True, bogus=1)
    assert session.invert is False
    assert rec.events == []


def test_is_ct(session):
    assert not session.is_ct
    session.load_volume(_volume())
    assert session.is_ct
    session.load_volume(Volume(np.zeros(SHAPE, np.int16), GEOM, meta={"modality": "MR"}))
    assert not session.is_ct


def test_the_crosshair_is_a_display_option(session, rec):
    assert session.show_crosshair is True
    session.set_display(show_crosshair=False)
    assert session.show_crosshair is False and len(rec.of("display_changed")) == 1


def test_choose_scaling_asks_for_the_series_again(session):
    chosen = []
    session.scaling_chosen.connect(chosen.append)
    session.choose_scaling("philips-float")
    assert chosen == ["philips-float"]
    with pytest.raises(ValueError):
        session.choose_scaling("philips")
    assert chosen == ["philips-float"]
