"""Overlay layers (viewer/core/layers.py): colours, lookup table, outlines, rendering, volumes."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from radview_base.geometry import Geometry
from viewer.core.layers import NAMED_COLORS, PALETTE, LabelLayer, Marker, default_color, outline_mask, render_labels
from viewer.io.volume import LabelMap


def _layer(array, labels=None, spacing=(1.0, 1.0, 1.0), **kw) -> LabelLayer:
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[None]
    g = Geometry(array.shape, spacing, (0.0, 0.0, 0.0))
    return LabelLayer(LabelMap(array, g, labels or {}), **kw)


# ------------------------------------------------------------------ colours
def test_named_colours():
    assert default_color(1, "lung_left") == NAMED_COLORS["lung_left"]
    assert default_color(2, "lung_right") == NAMED_COLORS["lung_right"]
    assert default_color(1, "lung_left") != default_color(2, "lung_right")
    # spelling variants of the same name
    assert default_color(7, "Lung Left") == NAMED_COLORS["lung_left"]
    assert default_color(7, " heart ") == NAMED_COLORS["heart"]


def test_unnamed_labels_get_distinct_palette_colours():
    colours = [default_color(i) for i in range(1, len(PALETTE) + 1)]
    assert len(set(colours)) == len(PALETTE)
    assert default_color(1) == PALETTE[0]
    assert default_color(len(PALETTE) + 1) == PALETTE[0]  # wraps around
    assert default_color(3, "some unknown organ") == PALETTE[2]


def test_layer_colours_follow_names():
    arr = np.zeros((4, 4), np.uint8)
    arr[0, 0], arr[1, 1], arr[2, 2] = 1, 2, 3
    layer = _layer(arr, {1: "lung_left", 2: "lung_right", 5: "heart"})
    assert layer.colors[1] == NAMED_COLORS["lung_left"]
    assert layer.colors[2] == NAMED_COLORS["lung_right"]
    assert layer.colors[3] == PALETTE[2]  # present but unnamed
    assert layer.colors[5] == NAMED_COLORS["heart"]  # named but absent: still in the legend
    assert 0 not in layer.colors
    assert layer.label_name(1) == "lung_left" and layer.label_name(3) == "label 3"


def test_explicit_colours_are_kept():
    arr = np.array([[0, 1]], np.uint8)
    layer = _layer(arr, {1: "heart"}, colors={1: (1, 2, 3)})
    assert layer.colors[1] == (1, 2, 3)


# ------------------------------------------------------------------ lookup table
def test_lut_transparency_and_opacity():
    arr = np.array([[0, 1, 2, 3]], np.uint8)
    layer = _layer(arr, {1: "liver", 2: "spleen", 3: "kidney"}, opacity=0.4, hidden_labels={2})
    lut = layer.lut()
    assert lut.dtype == np.uint8 and lut.shape[1] == 4
    assert lut.shape[0] >= 256  # any uint8 value indexes the table
    assert tuple(lut[0]) == (0, 0, 0, 0)  # background
    assert tuple(lut[1]) == (*NAMED_COLORS["liver"], 102)  # round(0.4 * 255)
    assert lut[2, 3] == 0  # hidden
    assert tuple(lut[3]) == (*NAMED_COLORS["kidney"], 102)
    assert np.all(lut[4:] == 0)  # labels that do not exist


@pytest.mark.parametrize("opacity, alpha", [(0.0, 0), (0.4, 102), (0.5, 128), (1.0, 255), (1.7, 255), (-1, 0)])
def test_opacity_to_alpha(opacity, alpha):
    layer = _layer(np.array([[0, 1]], np.uint8), opacity=opacity)
    assert layer.lut()[1, 3] == alpha


def test_outline_mode_is_opaque():
    layer = _layer(np.array([[0, 1]], np.uint8), opacity=0.2, outline=True)
    assert layer.lut()[1, 3] == 255


def test_lut_covers_large_labels():
    arr = np.zeros((3, 3), np.uint16)
    arr[1, 1] = 300
    layer = _layer(arr)
    lut = layer.lut()
    assert lut.shape[0] >= 301
    assert lut[300, 3] > 0


# ------------------------------------------------------------------ outlines
def test_outline_of_a_square_is_its_one_pixel_border():
    a = np.zeros((9, 9), np.uint8)
    a[2:7, 2:7] = 4
    m = outline_mask(a)
    expected = np.zeros_like(m)
    expected[2:7, 2:7] = True
    expected[3:6, 3:6] = False
    np.testing.assert_array_equal(m, expected)
    assert m.sum() == 16


def test_outline_between_touching_regions():
    a = np.zeros((5, 6), np.uint8)
    a[1:4, 0:3] = 1
    a[1:4, 3:6] = 2
    m = outline_mask(a)
    # the shared border: both columns 2 (label 1) and 3 (label 2) are edges
    assert m[2, 2] and m[2, 3]
    assert not m[0].any() and not m[4].any()  # background is never outlined
    assert m[1, 1] and m[3, 4]  # top/bottom rows of each region


def test_single_pixel_and_empty():
    a = np.zeros((3, 3), np.uint8)
    assert not outline_mask(a).any()
    a[1, 1] = 1
    np.testing.assert_array_equal(outline_mask(a), a.astype(bool))


# ------------------------------------------------------------------ rendering
def test_render_labels_colours_exactly_the_labelled_pixels():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 4, size=(12, 15)).astype(np.uint8)
    layer = _layer(a, {1: "liver", 2: "spleen", 3: "kidney"}, opacity=0.4)
    rgba = render_labels(layer, a)
    assert rgba.shape == (12, 15, 4) and rgba.dtype == np.uint8
    np.testing.assert_array_equal(rgba[..., 3] > 0, a > 0)
    for label, name in ((1, "liver"), (2, "spleen"), (3, "kidney")):
        sel = a == label
        assert sel.any()
        assert np.all(rgba[sel] == (*NAMED_COLORS[name], 102))
    assert np.all(rgba[a == 0] == 0)


def test_render_labels_hidden_and_outline():
    a = np.zeros((9, 9), np.uint8)
    a[2:7, 2:7] = 1
    a[0, 8] = 2
    layer = _layer(a, {1: "liver", 2: "heart"}, hidden_labels={2}, outline=True)
    rgba = render_labels(layer, a)
    assert rgba[0, 8, 3] == 0  # hidden
    np.testing.assert_array_equal(rgba[..., 3] > 0, outline_mask(a) & (a == 1))
    assert tuple(rgba[2, 2]) == (*NAMED_COLORS["liver"], 255)
    assert tuple(rgba[4, 4]) == (0, 0, 0, 0)  # interior not filled


def test_render_labels_uint16_and_int32():
    for dtype in (np.uint16, np.int32):
        a = np.zeros((4, 4), dtype)
        a[1, 1], a[2, 2] = 1, 700
        layer = _layer(a)
        rgba = render_labels(layer, a)
        np.testing.assert_array_equal(rgba[..., 3] > 0, a > 0)
        assert tuple(rgba[2, 2, :3]) == layer.colors[700]


# ------------------------------------------------------------------ volumes
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.int64])
def test_volumes_ml(dtype):
    a = np.zeros((4, 10, 10), dtype)
    a[0:2, 0:5, 0:5] = 1  # 50 voxels
    a[3, 9, 9] = 7  # 1 voxel
    spacing = (2.5, 0.8, 0.6)
    layer = _layer(a, spacing=spacing)
    voxel_mm3 = 2.5 * 0.8 * 0.6
    assert set(layer.volumes_ml) == {1, 7}
    assert layer.volumes_ml[1] == pytest.approx(50 * voxel_mm3 / 1000)
    assert layer.volumes_ml[7] == pytest.approx(1 * voxel_mm3 / 1000)


def test_volumes_ml_of_a_known_cube():
    # 1 mm voxels: a 10 mm cube is exactly 1 mL
    a = np.zeros((12, 12, 12), np.uint8)
    a[1:11, 1:11, 1:11] = 3
    assert _layer(a).volumes_ml == {3: pytest.approx(1.0)}


def test_marker_defaults():
    m = Marker((1.0, 2.0, 3.0), score=0.75, text="nodule")
    assert m.kind == "point" and m.size_mm == (10.0, 10.0, 10.0) and m.score == 0.75
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.text = "changed"  # frozen
