"""Volume-rendering presets: the values each name stands for, editing, and the vtkVolumeProperty built."""
from __future__ import annotations

import json

import numpy as np
import pytest

from viewer.render3d.transfer_presets import (
    PRESETS,
    TransferPreset,
    blend_mode_id,
    build_volume_property,
    default_preset_name,
    get_preset,
    preset_names,
    robust_range,
)


def opacity_at(preset, value):
    v, a = zip(*preset.opacity_points)
    return float(np.interp(value, v, a))


def test_the_required_presets_exist_with_their_blend_modes():
    expected = {"ct_bone": "composite", "ct_soft_tissue": "composite", "ct_lung": "composite",
                "ct_angio": "composite", "ct_mip": "mip", "ct_minip": "minip", "mr_default": "composite",
                "mr_mip": "mip"}
    assert {n: PRESETS[n].blend for n in expected} == expected
    assert set(preset_names("CT")) == {n for n in expected if n.startswith("ct_")}
    assert set(preset_names("MR")) == {"mr_default", "mr_mip"}
    assert default_preset_name("CT") == "ct_bone" and default_preset_name("MR") == "mr_default"


def test_ct_presets_pin_what_they_show_in_hu():
    bone, soft, lung, angio = (PRESETS[n] for n in ("ct_bone", "ct_soft_tissue", "ct_lung", "ct_angio"))
    # bone: cortical bone opaque, fat/muscle/blood transparent (a swap with soft tissue would show the skin)
    assert opacity_at(bone, 1000) > 0.6 and opacity_at(bone, 40) == 0 and opacity_at(bone, 150) == 0
    assert opacity_at(soft, 40) > 0.1 and opacity_at(soft, -500) == 0
    # lung: the -600..-400 HU boundary shell, not air and not soft tissue
    assert opacity_at(lung, -500) > 0.1 and opacity_at(lung, -1000) == 0 and opacity_at(lung, 40) == 0
    # angiography: contrast-filled vessels (~300 HU) opaque, unenhanced soft tissue not
    assert opacity_at(angio, 300) > 0.5 and opacity_at(angio, 40) == 0
    assert all(p.units == "HU" for p in PRESETS.values() if p.modality == "CT")


def test_get_preset_returns_an_editable_copy():
    p = get_preset("ct_bone")
    p.opacity_points.append((2000.0, 0.1))
    assert (2000.0, 0.1) not in PRESETS["ct_bone"].opacity_points
    with pytest.raises(KeyError, match="known"):
        get_preset("nope")


def test_points_are_sorted_and_validated():
    p = TransferPreset("x", "X", "CT", [(100, 1.0), (0, 0.0)], [(100, 1, 1, 1), (0, 0, 0, 0)])
    assert p.opacity_points == [(0.0, 0.0), (100.0, 1.0)]
    with pytest.raises(ValueError):
        TransferPreset("x", "X", "CT", [(0, 0)], [(0, 0, 0, 0)], blend="sum")
    with pytest.raises(ValueError):
        TransferPreset("x", "X", "CT", [], [(0, 0, 0, 0)])


def test_shift_and_json_round_trip():
    p = get_preset("ct_angio")
    s = p.shifted(50.0)
    assert [v for v, _ in s.opacity_points] == [v + 50.0 for v, _ in p.opacity_points]
    assert [c[1:] for c in s.color_points] == [c[1:] for c in p.color_points]
    again = TransferPreset.from_dict(json.loads(json.dumps(p.to_dict())))
    assert again == p


def test_relative_mr_presets_resolve_to_the_volumes_range():
    p = get_preset("mr_default")
    r = p.resolved(100.0, 1100.0)
    assert r.units == "value" and p.units == "relative"
    assert r.opacity_points[0][0] == 100.0 and r.opacity_points[-1][0] == 1100.0
    assert get_preset("ct_bone").resolved(0, 1) == get_preset("ct_bone")  # HU presets unchanged


def test_robust_range_ignores_outliers():
    a = np.zeros((50, 50, 50), np.int16)
    a[10:40, 10:40, 10:40] = 500
    a[0, 0, 0] = 30000
    lo, hi = robust_range(a)
    assert lo == 0 and hi == 500


def test_volume_property_carries_the_points_and_shading():
    p = get_preset("ct_bone")
    prop = build_volume_property(p)
    color, opacity = prop.GetRGBTransferFunction(), prop.GetScalarOpacity()
    assert color.GetSize() == len(p.color_points) and opacity.GetSize() == len(p.opacity_points)
    assert np.allclose(color.GetColor(1200), (1.0, 1.0, 0.95))
    assert opacity.GetValue(1000) == pytest.approx(opacity_at(p, 1000))
    assert prop.GetShade() == 1 and prop.GetSpecularPower() == p.specular_power
    mip = build_volume_property(get_preset("ct_mip"), prop)  # updated in place
    assert mip is prop and prop.GetShade() == 0
    assert [blend_mode_id(b) for b in ("composite", "mip", "minip")] == [0, 1, 2]
