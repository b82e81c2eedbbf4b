"""Reformats (viewer.core.reformat): interpolated display on a ramp, computed by hand; thick slabs (a known sphere,
MIP, MinIP and average on known data); oblique planes (trilinear, exact on a ramp; labels nearest; the combined
letters of oblique planes; the crosshair's rotation)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from radview_base.geometry import Geometry
from viewer.core.reformat import (
    ObliquePlane,
    PlaneRotations,
    Slab,
    crosshair_angles,
    display_factors,
    plane_for,
    project,
    render,
    render_cost,
    smooth_labels,
    upsample_linear,
)
from viewer.core.slicing import VIEWS, SlicePlane

RAMP_SHAPE = (6, 8, 10)


def ramp(shape=RAMP_SHAPE):
    """v(z, y, x) = 100 z + 10 y + x: linear, so trilinear interpolation of it is exact."""
    z, y, x = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    return (100 * z + 10 * y + x).astype(np.int16)


def ramp_at(geometry: Geometry, points_lps) -> np.ndarray:
    z, y, x = np.moveaxis(geometry.world_to_index(points_lps), -1, 0)
    return 100 * z + 10 * y + x


# --- interpolated display --------------------------------------------------------------------------------------
def test_display_factors_make_near_isotropic_display_pixels():
    assert display_factors((1.0, 1.0)) == (1, 1)
    assert display_factors((3.0, 1.0)) == (3, 1)
    assert display_factors((2.0, 0.75)) == (3, 1)  # 2.67 → 3
    assert display_factors((0.7, 1.2)) == (1, 2)
    assert display_factors((1.2, 1.0)) == (1, 1)
    assert display_factors((40.0, 0.5)) == (8, 1)  # bounded


def test_trilinear_coronal_of_a_ramp_equals_the_hand_computation():
    """3 mm slices, 1 mm pixels: the coronal view shows 3 display rows per slice, each linearly interpolated
    along z between its two neighbouring slices at its own position (the ends clamp)."""
    g = Geometry(RAMP_SHAPE, (3.0, 1.0, 1.0))
    vol = ramp()
    plane = SlicePlane.for_view("coronal", g)
    y = 5
    shown = render(vol, plane, y)
    assert shown.factors == (3, 1) and shown.image.shape == (18, 10)
    nz = RAMP_SHAPE[0]
    for i in range(18):
        u = min(max((i + 0.5) / 3 - 0.5, 0), nz - 1)  # the display row's place among the plane's rows
        z = (nz - 1) - u  # screen-down is inferior: the plane's row 0 is the top slice
        expected = 100 * z + 10 * y + np.arange(10)  # screen-right is the patient's left, +x
        np.testing.assert_allclose(shown.image[i], expected, atol=1e-3)
    # by hand, one value: display row 4 lies at plane row 1.0 (z = 4), display row 5 a third of the way to z = 3
    assert shown.image[4, 7] == pytest.approx(100 * 4 + 50 + 7)
    assert shown.image[5, 7] == pytest.approx(100 * (4 - 1 / 3) + 50 + 7, abs=1e-3)
    # the plane's values (what the cursor reads) are the voxels themselves
    np.testing.assert_array_equal(shown.values, plane.extract(vol, y))


def test_upsampling_keeps_the_voxel_values_at_their_centres_and_colour_types():
    img = np.arange(12, dtype=np.int16).reshape(4, 3) * 7
    up = upsample_linear(img, (3, 1))
    np.testing.assert_allclose(up[1::3], img)  # odd factors put a display pixel on every voxel centre
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[1] = 200
    out = upsample_linear(rgb, (3, 1))
    assert out.dtype == np.uint8 and out.shape == (6, 2, 3) and out[0, 0, 0] == 0 and out[5, 0, 0] == 200


def test_smooth_labels_keep_every_voxel_label_and_blend_none():
    labels = np.zeros((5, 6), np.uint8)
    labels[1:4, 1:3] = 2
    labels[2:5, 3:6] = 7
    up = smooth_labels(labels, (3, 1))
    assert set(np.unique(up)) == {0, 2, 7}
    np.testing.assert_array_equal(up[1::3], labels)  # at the voxel centres: the voxel's label
    assert smooth_labels(labels, (1, 1)) is labels


# --- slabs ---------------------------------------------------------------------------------------------------------
def test_slab_counts_and_corner_text():
    g = Geometry((50, 8, 8), (2.0, 1.0, 1.0))
    axial = SlicePlane.for_view("axial", g)
    slab = Slab("MIP", 10.0)
    assert slab.count(2.0) == 5 and slab.slices(axial, 20) == (18, 23)
    assert slab.text(axial) == "MIP 10.0 mm"
    assert Slab("MinIP", 8.0).slices(axial, 20) == (19, 23)  # even: half a slice further on
    assert Slab("Average", 10.0).slices(axial, 1) == (0, 4)  # clipped at the end
    assert Slab("MIP", 0.5).count(2.0) == 1
    assert Slab().text(axial) == "" and not Slab().active
    with pytest.raises(ValueError):
        Slab("MAX", 10.0)


def layered():
    """Axial slice z holds the value 10 z (+ a pixel that varies within the slice)."""
    vol = np.repeat(np.arange(20, dtype=np.int16)[:, None, None] * 10, 6, axis=1).repeat(7, axis=2)
    vol[:, 2, 3] += np.arange(20, dtype=np.int16)[::-1]
    return vol, Geometry(vol.shape, (2.0, 1.0, 1.0))


@pytest.mark.parametrize("mode, expected", [("MIP", 120), ("MinIP", 80), ("Average", 100)])
def test_mip_minip_and_average_over_known_slices(mode, expected):
    vol, g = layered()
    axial = SlicePlane.for_view("axial", g)
    k = axial.slice_of(g.index_to_world((10, 0, 0)))
    shown = render(vol, axial, k, Slab(mode, 10.0))  # 5 slices: z = 8 … 12
    assert shown.values[0, 0] == pytest.approx(expected)
    # the varying pixel: 10 z + (19 - z) = 9 z + 19 over z = 8 … 12
    column = 9 * np.arange(8, 13) + 19
    assert shown.values[2, 3] == pytest.approx({"MIP": column.max(), "MinIP": column.min(),
                                                "Average": column.mean()}[mode])


def test_project_leaves_samples_outside_the_volume_out():
    stack = np.array([[1.0, np.nan], [3.0, np.nan], [np.nan, np.nan]], np.float32)
    assert project(stack, "MIP", 0)[0] == 3 and np.isnan(project(stack, "MIP", 0)[1])
    assert project(stack, "MinIP", 0)[0] == 1
    assert project(stack, "Average", 0)[0] == 2 and np.isnan(project(stack, "Average", 0)[1])


SPHERE_VALUE = 700.0


def sphere_volume(spacing=(1.0, 1.0, 1.0), shape=(60, 60, 60), radius=6.0):
    g = Geometry(shape, spacing, (-30.0, -30.0, -30.0))
    idx = np.stack(np.meshgrid(*(np.arange(n) for n in shape), indexing="ij"), -1)
    world = g.index_to_world(idx)
    centre = np.array([4.0, -3.0, 2.0])
    vol = np.where(np.linalg.norm(world - centre, axis=-1) <= radius, SPHERE_VALUE, 0.0).astype(np.float32)
    return vol, g, centre, radius


def disc_and_outside(plane, k, centre, radius):
    """Masks of the plane's pixels within the sphere's projected disc (well inside) and well outside it."""
    rows, cols = plane.shape
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    world = np.stack([plane.to_world(k, rr, cc) for rr, cc in zip(r.ravel(), c.ravel())])
    normal = np.cross(*plane.screen_vectors())
    rel = world - centre
    in_plane = np.linalg.norm(rel - np.outer(rel @ normal, normal), axis=1).reshape(rows, cols)
    return in_plane <= radius - 1.5, in_plane >= radius + 1.5


@pytest.mark.parametrize("view", VIEWS)
@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.0, 0.8, 0.8)], ids=["isotropic", "2 mm slices"])
def test_slab_mip_of_a_known_sphere(view, spacing):
    """A slab thick enough to cover the sphere, on a slice beside its centre: the disc's maximum is the sphere's
    value everywhere inside the disc, background outside; a slab beside the sphere shows background only."""
    vol, g, centre, radius = sphere_volume(spacing, shape=(40, 75, 75) if spacing[0] == 2.0 else (60, 60, 60))
    plane = SlicePlane.for_view(view, g)
    off_centre = centre + np.cross(*plane.screen_vectors()) * 5.0  # 5 mm along the normal: a thin slice misses
    k = plane.slice_of(off_centre)
    thin = render(vol, plane, k)
    disc, outside = disc_and_outside(plane, k, centre, radius)
    mip = render(vol, plane, k, Slab("MIP", 2 * radius + 10.0)).values
    assert np.all(mip[disc] == SPHERE_VALUE) and np.all(mip[outside] == 0)
    assert (thin.values == SPHERE_VALUE).sum() < 0.7 * (mip == SPHERE_VALUE).sum()  # a thin slice: a smaller disc
    beside = plane.slice_of(centre + np.cross(*plane.screen_vectors()) * (radius + 12.0))
    assert np.all(render(vol, plane, beside, Slab("MIP", 10.0)).values == 0)
    minip = render(vol, plane, plane.slice_of(centre), Slab("MinIP", 2 * radius + 10.0)).values
    assert np.all(minip == 0)  # the slab reaches background beyond the sphere everywhere


def test_slab_mip_of_a_known_sphere_on_an_oblique_plane():
    vol, g, centre, radius = sphere_volume()
    rotations = PlaneRotations().rotate("axial", math.radians(35), g, centre)
    plane = plane_for("coronal", g, rotations)
    assert plane.oblique
    k = plane.slice_of(centre + np.cross(*plane.screen_vectors()) * 5.0)
    mip = render(vol, plane, k, Slab("MIP", 2 * radius + 10.0)).values
    disc, outside = disc_and_outside(plane, k, centre, radius)
    assert np.all(mip[disc] == pytest.approx(SPHERE_VALUE)) and np.all(np.nan_to_num(mip[outside]) == 0)


# --- oblique planes ------------------------------------------------------------------------------------------------
def oblique_ramp_case():
    g = Geometry(RAMP_SHAPE, (3.0, 1.0, 1.2), (5.0, -7.0, 11.0))
    centre = g.index_to_world((2.5, 3.5, 4.5))
    rotations = PlaneRotations().rotate("axial", math.radians(30), g, centre)
    rotations = rotations.rotate("coronal", math.radians(-20), g, centre)
    return g, centre, rotations


@pytest.mark.parametrize("view", VIEWS)
def test_trilinear_oblique_plane_of_a_ramp_is_exact(view):
    g, centre, rotations = oblique_ramp_case()
    plane = plane_for(view, g, rotations)
    assert isinstance(plane, ObliquePlane) and plane.oblique
    vol = ramp()
    k = plane.slice_of(centre)
    shown = render(vol, plane, k)
    rows, cols = plane.shape
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    world = np.stack([plane.to_world(k, rr, cc) for rr, cc in zip(r.ravel(), c.ravel())]).reshape(rows, cols, 3)
    idx = g.world_to_index(world)
    inside = np.all((idx >= 0) & (idx <= np.array(RAMP_SHAPE) - 1), axis=-1)
    assert inside.sum() > 20
    np.testing.assert_allclose(shown.values[inside], ramp_at(g, world)[inside], atol=2e-3)
    assert np.isnan(shown.values[~inside]).all()  # outside the volume: nothing
    assert not np.allclose(shown.values[inside], np.rint(shown.values[inside]))  # interpolated, not nearest
    # the plane passes through the point it rotated about
    assert np.allclose(plane.to_world(*plane.from_world(centre)), centre)


def test_oblique_labels_stay_nearest_neighbour():
    g, centre, rotations = oblique_ramp_case()
    plane = plane_for("sagittal", g, rotations)
    labels = (ramp() % 7).astype(np.uint8)
    k = plane.slice_of(centre)
    got = plane.extract(labels, k)
    assert got.dtype == np.uint8 and set(np.unique(got)) <= set(np.unique(labels))
    rows, cols = plane.shape
    for row, col in [(rows // 2, cols // 2), (rows // 2 + 1, cols // 2 - 2)]:
        idx = np.rint(g.world_to_index(plane.to_world(k, row, col))).astype(int)
        assert got[row, col] == labels[tuple(idx)]


def test_the_turned_view_stays_and_the_others_rotate_about_its_normal():
    g = Geometry((40, 50, 60), (2.5, 0.8, 0.8))
    centre = g.index_to_world((20, 25, 30))
    rotations = PlaneRotations().rotate("axial", math.radians(30), g, centre)
    assert not rotations.rotated("axial") and rotations.rotated("coronal") and rotations.rotated("sagittal")
    assert plane_for("axial", g, rotations) == SlicePlane.for_view("axial", g)
    normals = [rotations.frame(view, g)[2] for view in VIEWS]
    assert np.allclose(np.abs(np.array(normals) @ np.array(normals).T), np.eye(3), atol=1e-9)  # still orthogonal
    assert crosshair_angles("axial", g, rotations) == pytest.approx((30.0, 120.0))
    assert crosshair_angles("coronal", g, rotations) == pytest.approx((0.0, 90.0))
    assert crosshair_angles("axial", g, PlaneRotations()) == pytest.approx((0.0, 90.0))
    back = rotations.rotate("axial", math.radians(-30), g, centre)
    assert not back.any and back.matrices == ()


def test_oblique_letters_combine_the_directions():
    g = Geometry((40, 50, 60), (2.5, 0.8, 0.8))
    centre = g.index_to_world((20, 25, 30))
    turned = PlaneRotations().rotate("axial", math.radians(30), g, centre)
    # the coronal plane turned 30° about S: screen-right runs toward L and P, screen-down stays I
    assert plane_for("coronal", g, turned).edge_letters() == {"right": "LP", "left": "RA", "top": "S",
                                                              "bottom": "I"}
    assert plane_for("sagittal", g, turned).edge_letters() == {"right": "PR", "left": "AL", "top": "S",
                                                               "bottom": "I"}
    tilted = PlaneRotations().rotate("sagittal", math.radians(-25), g, centre)
    axial = plane_for("axial", g, tilted).edge_letters()
    assert axial["top"] in ("AS", "AI") and axial["bottom"] in ("PI", "PS") and axial["right"] == "L"
    quarter = PlaneRotations().rotate("axial", math.radians(90), g, centre)
    assert plane_for("coronal", g, quarter).edge_letters() == {"right": "P", "left": "A", "top": "S",
                                                               "bottom": "I"}


def test_oblique_planes_are_numbered_as_reformats_and_cost_more():
    from viewer.core.slicing import image_numbers

    g, centre, rotations = oblique_ramp_case()
    plane = plane_for("axial", g, rotations)
    numbers = image_numbers(plane, list(range(1, plane.n_slices + 1)))
    assert not numbers.native
    native = SlicePlane.for_view("axial", g)
    assert render_cost(plane) > render_cost(native)
    assert render_cost(native, Slab("MIP", 9.0)) == 3 * render_cost(native)
