"""Reading-plane slicing (viewer/core/slicing.py), tested from first principles.

For several acquisition geometries (identity, scanner-flipped axes, sagittal,
coronal, oblique, anisotropic, reversed slice order) a random volume is sliced
for every view, and for random display pixels we check that

* the displayed value is the value of the array voxel ``to_index`` names, and
  the value of the voxel whose centre is nearest (brute force over the whole
  grid) to the LPS position ``to_world`` names;
* ``to_world`` / ``from_world`` / ``from_index`` are consistent inverses;
* the screen follows the radiological convention of ``shared/CONVENTIONS.md``
  (axial/coronal: screen-right = patient left; axial: down = posterior;
  coronal/sagittal: down = inferior; sagittal: right = posterior);
* orientation letters, pixel spacing (display aspect) and slice clamping.
"""
from __future__ import annotations

import math
import zlib

import numpy as np
import pytest

from radview_base.geometry import Geometry
from viewer.core.slicing import (
    VIEWS,
    SlicePlane,
    image_numbers,
    orientation_letters,
    patient_axis_of_array_axes,
    reformat_step,
    slice_location,
)

L_, P_, S_ = np.eye(3)  # LPS unit vectors: +x patient left, +y posterior, +z superior


def _geom(x_col, y_col, z_col, shape=(6, 7, 8), spacing=(1.5, 0.8, 0.6), origin=(-12.0, 30.5, 101.0)):
    """A geometry whose array x, y, z axes point along the given LPS vectors (direction columns)."""
    d = np.column_stack([x_col, y_col, z_col]).astype(float)
    return Geometry(shape, spacing, origin, d)


def _rot_s(deg: float) -> np.ndarray:
    """Rotation by ``deg`` about the S (z) axis."""
    a = math.radians(deg)
    return np.array([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0], [0.0, 0.0, 1.0]])


_R20 = _rot_s(20.0)
_RM20 = _rot_s(-20.0)

# name -> (geometry, oblique?)
GEOMETRIES = {
    "identity": (_geom(L_, P_, S_), False),
    # some scanners: rows run toward the patient's right, columns toward anterior
    "flipped_xy": (_geom(-L_, -P_, S_), False),
    # slices stored head to feet (left-handed index frame)
    "reversed_slices": (_geom(L_, P_, -S_), False),
    # sagittal acquisition: IOP row (0,1,0), column (0,0,-1); normal = row x column = -L
    "sagittal_acq": (_geom(P_, -S_, -L_, shape=(5, 9, 7)), False),
    # coronal acquisition: IOP row (1,0,0), column (0,0,-1); normal = +P
    "coronal_acq": (_geom(L_, -S_, P_, shape=(4, 8, 9)), False),
    # anisotropic spacing, identity direction
    "anisotropic": (_geom(L_, P_, S_, shape=(5, 9, 11), spacing=(2.0, 0.75, 0.5)), False),
    # axial acquisition rotated 20 degrees about S, both ways
    "oblique_+20": (_geom(_R20[:, 0], _R20[:, 1], _R20[:, 2]), True),
    "oblique_-20": (_geom(_RM20[:, 0], _RM20[:, 1], _RM20[:, 2]), True),
    # a coronal acquisition rotated 20 degrees about S, anisotropic
    "oblique_coronal": (_geom(_R20 @ L_, _R20 @ -S_, _R20 @ P_, shape=(4, 8, 9), spacing=(3.0, 0.7, 0.9)), True),
}

CASES = [(name, view) for name in GEOMETRIES for view in VIEWS]

# what screen-right / screen-down must be in LPS for each view (radiological convention)
EXPECTED_SCREEN = {
    "axial": (L_, P_),
    "coronal": (L_, -S_),
    "sagittal": (P_, -S_),
}
EXPECTED_LETTERS = {
    "axial": {"left": "R", "right": "L", "top": "A", "bottom": "P"},
    "coronal": {"left": "R", "right": "L", "top": "S", "bottom": "I"},
    "sagittal": {"left": "A", "right": "P", "top": "S", "bottom": "I"},
}


def _array(geometry: Geometry, seed: int = 0) -> np.ndarray:
    """Distinct values in every voxel, so a wrong voxel cannot give the right value by chance."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(geometry.shape_zyx))
    return rng.permutation(n).astype(np.int32).reshape(geometry.shape_zyx)


def _all_centres(geometry: Geometry) -> tuple[np.ndarray, np.ndarray]:
    idx = np.stack(np.meshgrid(*[np.arange(s) for s in geometry.shape_zyx], indexing="ij"), -1).reshape(-1, 3)
    return idx, geometry.index_to_world(idx)


def _seed(*parts) -> int:
    """A reproducible seed (str hash() is randomised per process)."""
    return zlib.crc32(repr(parts).encode())


def _samples(plane: SlicePlane, n: int, seed: int):
    rng = np.random.default_rng(seed)
    rows, cols = plane.shape
    for _ in range(n):
        yield int(rng.integers(plane.n_slices)), int(rng.integers(rows)), int(rng.integers(cols))


@pytest.fixture(params=CASES, ids=[f"{g}-{v}" for g, v in CASES])
def case(request):
    name, view = request.param
    geometry, oblique = GEOMETRIES[name]
    return name, view, geometry, oblique, SlicePlane.for_view(view, geometry)


# --------------------------------------------------------------------------- geometry sanity of the fixtures
def test_fixture_geometries_are_what_they_claim():
    """Guard the test data itself: first-principles index_to_world on the named geometries."""
    g = GEOMETRIES["sagittal_acq"][0]
    assert g.describe_orientation() == "sagittal"
    step = g.index_to_world((1, 0, 0)) - g.index_to_world((0, 0, 0))  # one slice
    np.testing.assert_allclose(step, -L_ * g.spacing_zyx[0], atol=1e-12)
    assert GEOMETRIES["coronal_acq"][0].describe_orientation() == "coronal"
    g = GEOMETRIES["flipped_xy"][0]
    np.testing.assert_allclose(g.index_to_world((0, 0, 1)) - g.index_to_world((0, 0, 0)), -L_ * 0.6, atol=1e-12)
    np.testing.assert_allclose(g.index_to_world((0, 1, 0)) - g.index_to_world((0, 0, 0)), -P_ * 0.8, atol=1e-12)
    g = GEOMETRIES["oblique_+20"][0]
    assert g.describe_orientation() == "axial"
    np.testing.assert_allclose(g.index_to_world((0, 0, 1)) - g.index_to_world((0, 0, 0)),
                               0.6 * np.array([math.cos(math.radians(20)), math.sin(math.radians(20)), 0]),
                               atol=1e-12)


# --------------------------------------------------------------------------- pixels
def test_extract_shape_and_slice_count(case):
    _, view, geometry, _, plane = case
    arr = _array(geometry)
    for k in (0, plane.n_slices - 1):
        assert plane.extract(arr, k).shape == plane.shape
    # the slice axis is the array axis closest to the view's normal
    normal = {"axial": S_, "coronal": P_, "sagittal": L_}[view]
    cos = np.abs(geometry.direction_matrix.T @ normal)  # |cos| per array x, y, z
    assert plane.slice_axis == 2 - int(np.argmax(cos))
    assert sorted((plane.slice_axis, plane.row_axis, plane.col_axis)) == [0, 1, 2]


def test_extract_value_is_the_voxel_named_by_to_index(case):
    name, view, geometry, _, plane = case
    arr = _array(geometry, seed=1)
    for k, r, c in _samples(plane, 40, seed=_seed(name, view)):
        idx = plane.to_index(k, r, c)
        np.testing.assert_allclose(idx, np.round(idx), atol=1e-12)  # integer pixels map to voxel centres
        assert plane.extract(arr, k)[r, c] == arr[tuple(np.round(idx).astype(int))]


def test_extract_value_is_the_voxel_nearest_to_the_world_position(case):
    """Independent of world_to_index: brute-force nearest voxel centre to to_world(k, r, c)."""
    name, view, geometry, _, plane = case
    arr = _array(geometry, seed=2)
    idx_all, centres = _all_centres(geometry)
    for k, r, c in _samples(plane, 25, seed=_seed(name, view, 7)):
        p = plane.to_world(k, r, c)
        d = np.linalg.norm(centres - p, axis=1)
        nearest = int(np.argmin(d))
        assert d[nearest] < 1e-9  # a display pixel centre is a voxel centre
        assert plane.extract(arr, k)[r, c] == arr[tuple(idx_all[nearest])]


def test_to_world_is_index_to_world_of_to_index(case):
    name, view, geometry, _, plane = case
    for k, r, c in _samples(plane, 20, seed=3):
        np.testing.assert_allclose(plane.to_world(k, r, c), geometry.index_to_world(plane.to_index(k, r, c)),
                                   atol=1e-9)


def test_round_trips(case):
    name, view, geometry, _, plane = case
    rng = np.random.default_rng(4)
    rows, cols = plane.shape
    for _ in range(20):
        # continuous positions too, not only pixel centres
        k, r, c = rng.uniform(0, plane.n_slices - 1), rng.uniform(0, rows - 1), rng.uniform(0, cols - 1)
        np.testing.assert_allclose(plane.from_world(plane.to_world(k, r, c)), (k, r, c), atol=1e-9)
        np.testing.assert_allclose(plane.from_index(plane.to_index(k, r, c)), (k, r, c), atol=1e-12)
    # and world -> display -> world for arbitrary points
    for p in rng.uniform(-50, 150, size=(10, 3)):
        np.testing.assert_allclose(plane.to_world(*plane.from_world(p)), p, atol=1e-9)


def test_extract_of_colour_array_keeps_channels(case):
    _, _, geometry, _, plane = case
    grey = _array(geometry, seed=5)
    rgb = np.stack([grey, grey + 1, grey * 2], axis=-1)
    k = plane.n_slices // 2
    img = plane.extract(rgb, k)
    assert img.shape == (*plane.shape, 3)
    np.testing.assert_array_equal(img[..., 0], plane.extract(grey, k))
    np.testing.assert_array_equal(img[..., 2], 2 * plane.extract(grey, k))


def test_extract_is_a_view_not_a_copy(case):
    _, _, geometry, _, plane = case
    arr = _array(geometry, seed=6)
    k = plane.n_slices - 1
    img = plane.extract(arr, k)
    assert np.shares_memory(img, arr)
    # writing through the view reaches the voxel to_index names
    arr2 = arr.copy()
    v = plane.extract(arr2, k)
    v[0, -1] = -12345
    assert arr2[tuple(np.round(plane.to_index(k, 0, plane.shape[1] - 1)).astype(int))] == -12345


# --------------------------------------------------------------------------- radiological convention
def test_screen_directions_follow_radiological_convention(case):
    name, view, geometry, oblique, plane = case
    k = plane.n_slices // 2
    r, c = plane.shape[0] // 2, plane.shape[1] // 2
    p0 = plane.to_world(k, r, c)
    step_right = plane.to_world(k, r, c + 1) - p0
    step_down = plane.to_world(k, r + 1, c) - p0
    row_mm, col_mm = plane.pixel_spacing
    assert np.linalg.norm(step_right) == pytest.approx(col_mm)
    assert np.linalg.norm(step_down) == pytest.approx(row_mm)
    exp_right, exp_down = EXPECTED_SCREEN[view]
    right_u, down_u = step_right / col_mm, step_down / row_mm
    if not oblique:
        np.testing.assert_allclose(right_u, exp_right, atol=1e-12)
        np.testing.assert_allclose(down_u, exp_down, atol=1e-12)
    else:
        # dominant component along the expected axis, with the expected sign
        for u, e in ((right_u, exp_right), (down_u, exp_down)):
            axis = int(np.argmax(np.abs(e)))
            assert int(np.argmax(np.abs(u))) == axis
            assert np.sign(u[axis]) == np.sign(e[axis])
            assert u @ e > math.cos(math.radians(45))
    # screen_vectors agrees with the actual pixel steps
    sv_right, sv_down = plane.screen_vectors()
    np.testing.assert_allclose(sv_right, right_u, atol=1e-12)
    np.testing.assert_allclose(sv_down, down_u, atol=1e-12)


def test_slice_steps_along_the_view_normal(case):
    name, view, geometry, oblique, plane = case
    if plane.n_slices < 2:
        pytest.skip("one slice")
    step = plane.to_world(1, 0, 0) - plane.to_world(0, 0, 0)
    assert np.linalg.norm(step) == pytest.approx(plane.slice_spacing)
    normal = {"axial": S_, "coronal": P_, "sagittal": L_}[view]
    assert abs(step @ normal) / plane.slice_spacing > (0.999 if not oblique else 0.9)
    # a slice is planar and perpendicular (orthogonal grid) to its in-plane axes
    right, down = plane.screen_vectors()
    assert abs(step @ right) < 1e-9 and abs(step @ down) < 1e-9


@pytest.mark.parametrize("name", [n for n, (_, oblique) in GEOMETRIES.items() if not oblique])
@pytest.mark.parametrize("view", VIEWS)
def test_edge_letters_non_oblique_are_the_standard_ones(name, view):
    """Whatever the acquisition, the display is radiological: the same letters on the same edges."""
    plane = SlicePlane.for_view(view, GEOMETRIES[name][0])
    assert plane.edge_letters() == EXPECTED_LETTERS[view]


@pytest.mark.parametrize(
    "name, expected",
    [
        # +20 deg about S: array x -> (cos, sin, 0) = mostly L, some P
        ("oblique_+20", {
            "axial": {"left": "RA", "right": "LP", "top": "AL", "bottom": "PR"},
            "coronal": {"left": "RA", "right": "LP", "top": "S", "bottom": "I"},
            "sagittal": {"left": "AL", "right": "PR", "top": "S", "bottom": "I"},
        }),
        ("oblique_-20", {
            "axial": {"left": "RP", "right": "LA", "top": "AR", "bottom": "PL"},
            "coronal": {"left": "RP", "right": "LA", "top": "S", "bottom": "I"},
            "sagittal": {"left": "AR", "right": "PL", "top": "S", "bottom": "I"},
        }),
    ],
)
def test_edge_letters_oblique(name, expected):
    geometry = GEOMETRIES[name][0]
    for view in VIEWS:
        assert SlicePlane.for_view(view, geometry).edge_letters() == expected[view], view


def test_orientation_letters():
    assert orientation_letters((1, 0, 0)) == "L"
    assert orientation_letters((-1, 0, 0)) == "R"
    assert orientation_letters((0, 1, 0)) == "P"
    assert orientation_letters((0, -1, 0)) == "A"
    assert orientation_letters((0, 0, 1)) == "S"
    assert orientation_letters((0, 0, -1)) == "I"
    assert orientation_letters((0.3, -0.9, 0)) == "AL"  # strongest first
    assert orientation_letters((1, 0.1, 0)) == "L"  # below threshold: dropped
    assert orientation_letters((-1, 1, -1)) in ("RPI", "RIP", "PRI", "PIR", "IRP", "IPR")
    assert orientation_letters((2, 0, 0)) == "L"  # not necessarily unit length


# --------------------------------------------------------------------------- spacing / aspect
def test_pixel_spacing_gives_the_true_aspect_for_anisotropic_identity():
    g = GEOMETRIES["anisotropic"][0]  # spacing (z, y, x) = (2.0, 0.75, 0.5)
    ax = SlicePlane.for_view("axial", g)
    co = SlicePlane.for_view("coronal", g)
    sa = SlicePlane.for_view("sagittal", g)
    assert ax.pixel_spacing == (0.75, 0.5) and ax.slice_spacing == 2.0
    assert co.pixel_spacing == (2.0, 0.5) and co.slice_spacing == 0.75
    assert sa.pixel_spacing == (2.0, 0.75) and sa.slice_spacing == 0.5
    assert ax.shape == (9, 11) and co.shape == (5, 11) and sa.shape == (5, 9)
    assert (ax.n_slices, co.n_slices, sa.n_slices) == (5, 9, 11)


def test_pixel_spacing_of_sagittal_acquisition():
    g = GEOMETRIES["sagittal_acq"][0]  # array x = P (0.6 mm), y = -S (0.8 mm), z = -L (1.5 mm)
    ax = SlicePlane.for_view("axial", g)
    assert ax.pixel_spacing == (0.6, 1.5)  # rows along P (array x), columns along L (array z)
    assert ax.slice_spacing == 0.8
    sa = SlicePlane.for_view("sagittal", g)
    assert sa.pixel_spacing == (0.8, 0.6)
    assert sa.slice_spacing == 1.5


# --------------------------------------------------------------------------- slice_of
def test_slice_of_finds_and_clamps(case):
    name, view, geometry, _, plane = case
    for k, r, c in _samples(plane, 10, seed=8):
        assert plane.slice_of(plane.to_world(k, r, c)) == k
        # half a slice less than half way still rounds to k
        if plane.n_slices > 1:
            assert plane.slice_of(plane.to_world(k + 0.4, r, c)) == k
    step = plane.to_world(1, 0, 0) - plane.to_world(0, 0, 0)
    assert plane.slice_of(plane.to_world(0, 0, 0) - 1000 * step) == 0
    assert plane.slice_of(plane.to_world(plane.n_slices - 1, 0, 0) + 1000 * step) == plane.n_slices - 1
    # far outside in-plane does not matter: still the slice along the normal
    right, _ = plane.screen_vectors()
    assert plane.slice_of(plane.to_world(0, 0, 0) + 500 * right) == 0


def test_for_view_rejects_unknown_view():
    with pytest.raises(ValueError):
        SlicePlane.for_view("axail", GEOMETRIES["identity"][0])


def test_patient_axis_assignment_is_a_permutation_even_when_strongly_oblique():
    d = _rot_s(40.0) @ np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]], dtype=float)  # coronal-ish, rotated
    g = Geometry((3, 4, 5), (1, 1, 1), (0, 0, 0), d)
    perm = patient_axis_of_array_axes(g)
    assert sorted(perm) == [0, 1, 2]
    planes = [SlicePlane.for_view(v, g) for v in VIEWS]
    assert sorted(p.slice_axis for p in planes) == [0, 1, 2]


# --------------------------------------------------------------------------- image numbers and "next image"
#: where "next image" goes in a reformat (Horos, RadiAnt): toward I, P and L
NEXT_TOWARD = {"axial": -S_, "coronal": P_, "sagittal": L_}


def test_next_image_in_a_reformat_goes_toward_i_p_and_l(case):
    """Every geometry, every view: without InstanceNumbers, each "next image" moves toward I / P / L, image 1 is
    the slice farthest the other way, and the numbering runs 1..N in that order."""
    name, view, geometry, _oblique, plane = case
    numbers = image_numbers(plane)
    assert not numbers.native and numbers.step in (1, -1)
    n = plane.n_slices
    ks = [numbers.k_at(i) for i in range(1, n + 1)]
    assert sorted(ks) == list(range(n))  # a permutation: every slice has one place
    assert [numbers.number(k) for k in ks] == list(range(1, n + 1))
    toward = NEXT_TOWARD[view]
    for a, b in zip(ks, ks[1:]):
        moved = plane.to_world(b, 0, 0) - plane.to_world(a, 0, 0)
        assert moved @ toward > 0.5 * plane.slice_spacing, (name, view, moved)
        assert numbers.step_from(a, 1) == b and numbers.step_from(b, -1) == a
    assert numbers.step_from(ks[-1], 1) == ks[-1] and numbers.step_from(ks[0], -1) == ks[0]  # clamped
    assert numbers.step_from(ks[-1], 1, wrap=True) == ks[0]  # cine wraps
    assert numbers.text(ks[0]) == f"Im 1/{n} reformat"


@pytest.mark.parametrize("name", ["identity", "reversed_slices", "sagittal_acq", "coronal_acq", "oblique_+20"])
@pytest.mark.parametrize("against", [False, True])
def test_the_native_view_follows_the_instance_numbers(name, against):
    """The view that steps through array z is the acquired plane: it shows the InstanceNumbers and "next image" is
    the next one, whichever way they run in space; the other views stay reformats."""
    geometry, _oblique = GEOMETRIES[name]
    nz = geometry.shape_zyx[0]
    per_z = [101 + k for k in range(nz)][::-1 if against else 1]  # e.g. 106, 105, … when they run against z
    for view in VIEWS:
        plane = SlicePlane.for_view(view, geometry)
        numbers = image_numbers(plane, per_z)
        if plane.slice_axis != 0:
            assert not numbers.native and numbers.step == reformat_step(plane)
            continue
        assert numbers.native and numbers.step == (-1 if against else 1)
        k = numbers.k_at(1)
        assert numbers.number(k) == 101 and numbers.text(k) == f"Im 101/{nz}"
        seen = [numbers.number(k)]
        for _ in range(nz - 1):
            k = numbers.step_from(k, 1)
            seen.append(numbers.number(k))
        assert seen == list(range(101, 101 + nz))


def test_gaps_and_unknown_numbers():
    plane = SlicePlane.for_view("axial", GEOMETRIES["identity"][0])
    numbers = image_numbers(plane, [1, 2, None, 4, 5, 6])
    assert numbers.native and numbers.step == 1 and numbers.text(2) == "Im –/6"
    assert not image_numbers(plane, [None] * 6).native  # no number at all: a reformat's numbering
    assert not image_numbers(plane, [1, 2, 3]).native  # numbers for another grid are not used
    same = image_numbers(plane, [7] * 6)  # no order to follow: the reformat direction, the numbers still shown
    assert same.native and same.step == reformat_step(plane) and same.number(0) == 7


def test_slice_location():
    g = GEOMETRIES["identity"][0]  # origin z 101, 1.5 mm slices along +S
    assert slice_location(SlicePlane.for_view("axial", g), 2) == ("Z", pytest.approx(101.0 + 2 * 1.5))
    coronal = SlicePlane.for_view("coronal", g)
    label, mm = slice_location(coronal, 3)
    assert label == "Y" and mm == pytest.approx(coronal.to_world(3, 0, 0)[1])
    sagittal = SlicePlane.for_view("sagittal", GEOMETRIES["sagittal_acq"][0])
    label, mm = slice_location(sagittal, 1)
    assert label == "X" and mm == pytest.approx(sagittal.to_world(1, 0, 0)[0])
    oblique = SlicePlane.for_view("axial", GEOMETRIES["oblique_+20"][0])  # rotated about S: still along Z
    assert slice_location(oblique, 0)[0] == "Z"
    tilted = SlicePlane.for_view("coronal", GEOMETRIES["oblique_coronal"][0])
    label, mm = slice_location(tilted, 1)
    normal = tilted.geometry.direction_matrix[:, 2 - tilted.slice_axis]
    normal = normal * np.sign(normal[np.argmax(np.abs(normal))])
    assert label == "Loc" and mm == pytest.approx(tilted.to_world(1, 3.5, 4) @ normal)
