"""CT window presets pinned to the table in shared/CONVENTIONS.md (viewer/core/window_presets.py).

A swapped pair (bone and brain swapped is a known bug in one viewer) is a
clinical error, so every name is pinned to its exact width, level and key.
"""
from __future__ import annotations

import numpy as np
import pytest

from viewer.core.window_presets import (
    CT_PRESETS,
    FROM_FILE,
    WindowPreset,
    file_window,
    find_preset,
    preset_for_key,
    preset_names,
    robust_window,
)

# name: (width, level, key) -- copied from shared/CONVENTIONS.md, not from the code
TABLE = {
    "soft tissue": (400, 40, "1"),
    "lung": (1500, -600, "2"),
    "bone": (2500, 480, "3"),
    "brain": (80, 40, "4"),
    "liver": (150, 90, "5"),
    "mediastinum": (500, 50, "6"),
    "stroke": (30, 30, "7"),
    "CT angiography": (600, 170, "8"),
}


@pytest.mark.parametrize("name", list(TABLE))
def test_each_preset_is_pinned_to_its_values(name):
    width, level, key = TABLE[name]
    p = find_preset(name)
    assert isinstance(p, WindowPreset)
    assert p.name == name
    assert (p.width, p.level, p.key) == (width, level, key)
    assert p.levels == (level - width / 2, level + width / 2)
    assert preset_for_key(key) is p


def test_the_preset_list_is_exactly_the_table():
    assert {p.name: (p.width, p.level, p.key) for p in CT_PRESETS} == TABLE
    assert len(CT_PRESETS) == len(TABLE)  # no duplicates
    keys = [p.key for p in CT_PRESETS]
    assert sorted(keys) == [str(i) for i in range(1, 9)]
    assert preset_names() == [FROM_FILE, *TABLE]


def test_bone_and_brain_are_not_swapped():
    bone, brain = find_preset("bone"), find_preset("brain")
    assert (bone.width, bone.level) == (2500, 480)
    assert (brain.width, brain.level) == (80, 40)
    assert bone.width > 10 * brain.width
    assert preset_for_key("3").name == "bone"
    assert preset_for_key("4").name == "brain"


def test_lung_levels():
    assert find_preset("lung").levels == (-1350.0, 150.0)


def test_key_zero_is_from_file_and_unbound_keys_are_none():
    assert preset_for_key("0") == FROM_FILE
    assert preset_for_key("9") is None
    assert preset_for_key("x") is None
    assert preset_for_key("") is None


@pytest.mark.parametrize(
    "alias, name",
    [
        ("LUNG", "lung"), (" Bone ", "bone"), ("abdomen", "soft tissue"), ("soft", "soft tissue"),
        ("soft-tissue", "soft tissue"), ("soft_tissue", "soft tissue"), ("Soft Tissue", "soft tissue"),
        ("cta", "CT angiography"), ("CTA", "CT angiography"), ("angio", "CT angiography"),
        ("ct-angiography", "CT angiography"), ("ct_angiography", "CT angiography"),
        ("ct angiography", "CT angiography"), ("mediastinal", "mediastinum"),
    ],
)
def test_find_preset_aliases(alias, name):
    assert find_preset(alias).name == name


@pytest.mark.parametrize("name", ["from file", "From File", "file", "default", "auto", "from_file"])
def test_find_preset_from_file_is_none(name):
    assert find_preset(name) is None


@pytest.mark.parametrize("name", ["", "lungs", "bones", "abdo", "head", "window 3", "3"])
def test_find_preset_unknown_raises_keyerror(name):
    with pytest.raises(KeyError):
        find_preset(name)


# ------------------------------------------------------------------ from file
def test_file_window_uses_the_series_window():
    arr = np.zeros((2, 3, 3), np.int16)
    assert file_window({"window": (40.0, 400.0)}, arr) == (400.0, 40.0)  # meta holds (center, width)
    assert file_window({"window": (-600, 1500)}, arr) == (1500.0, -600.0)


@pytest.mark.parametrize("meta", [{}, {"window": None}, {"window": (40.0, 0.0)}, {"window": (40.0, -5.0)},
                                  {"window": (40.0, None)}])
def test_file_window_falls_back_to_a_robust_range(meta):
    rng = np.random.default_rng(0)
    arr = rng.uniform(-100, 300, size=(10, 40, 40))
    arr.reshape(-1)[:20] = 30000  # a few outliers (0.1 %) must not stretch the window
    arr.reshape(-1)[20:40] = -30000
    width, level = file_window(meta, arr)
    lo, hi = level - width / 2, level + width / 2
    assert lo == pytest.approx(-98, abs=3)
    assert hi == pytest.approx(298, abs=3)
    assert (width, level) == robust_window(arr)


def test_robust_window_of_a_constant_image_is_not_degenerate():
    width, level = robust_window(np.full((2, 4, 4), 7.0))
    assert width > 0
    assert level - width / 2 <= 7.0 <= level + width / 2


def test_robust_window_ignores_non_finite_voxels():
    rng = np.random.default_rng(1)
    arr = rng.uniform(0, 100, size=(4, 20, 20))
    arr[0] = np.nan  # e.g. masked-out background of a processed float volume
    width, level = file_window({}, arr)
    assert np.isfinite(width) and np.isfinite(level)
    assert level - width / 2 == pytest.approx(0, abs=2)
    assert level + width / 2 == pytest.approx(100, abs=2)
