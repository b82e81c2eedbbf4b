"""The time axis of 4D series (viewer.core.timepoints), their loading with every time point
(viewer.logic.open_study.load_series) and stepping through time points (Volume.show_timepoint,
Session.set_timepoint): on 4D MR series written with pydicom (tests/four_d_cases.py)."""
from __future__ import annotations

import numpy as np
import pytest
from four_d_cases import value, write_4d_series

from viewer.core.session import Session
from viewer.core.timepoints import TimeAxis, time_axis
from viewer.io.dicom_index import scan
from viewer.logic import open_study


def entry_of(folder):
    (entry,) = scan(str(folder)).series
    return entry


@pytest.fixture(scope="module")
def dce(tmp_path_factory):
    """3 time points × 5 slices, told apart by TemporalPositionIdentifier."""
    return entry_of(write_4d_series(tmp_path_factory.mktemp("dce"), n_t=3, n_z=5))


def test_the_index_finds_the_time_points_and_what_varies(dce, tmp_path):
    assert dce.n_timepoints == 3
    axis = time_axis(dce.plan.frames)
    assert axis == TimeAxis(3, ("temporal position",), (1, 2, 3))
    assert axis.describe() == "3 time points (temporal position)"
    assert [axis.text(t) for t in range(3)] == ["Time 1/3 · TPI 1", "Time 2/3 · TPI 2", "Time 3/3 · TPI 3"]
    cardiac = time_axis(entry_of(write_4d_series(tmp_path / "cine", n_t=4, varies="trigger time",
                                                 trigger_ms=45.0)).plan.frames)
    assert cardiac.varies == ("trigger time",) and cardiac.values == (0.0, 45.0, 90.0, 135.0)
    assert cardiac.text(2) == "Time 3/4 · trigger 90 ms" and cardiac.cine_interval_ms() == 45
    pcasl = time_axis(entry_of(write_4d_series(tmp_path / "pcasl", n_t=2, varies="")).plan.frames)
    assert pcasl == TimeAxis(2) and pcasl.text(1) == "Time 2/2" and pcasl.describe() == "2 time points"
    assert pcasl.cine_interval_ms() == 200


def test_the_summary_says_what_varies_and_over_what_range():
    """What the study browser says of a 4D series: the count, the attribute and, where it means something, its range."""
    assert TimeAxis(3, ("temporal position",), (1, 2, 3)).summary() == "4D: 3 time points (temporal position)"
    assert TimeAxis(17, ("trigger time",), tuple(50.0 * t for t in range(17))).summary() == \
        "4D: 17 time points (trigger time 0–800 ms)"
    assert TimeAxis(4, ("b-value",), (0.0, 1000.0, 1000.0, 500.0)).summary() == \
        "4D: 4 time points (b-value 0–1000 s/mm²)"
    assert TimeAxis(3, ("echo", "trigger time"), (1.0, 2.0, 3.0)).summary() == "4D: 3 time points (echo 1–3)"
    assert TimeAxis(2).summary() == "4D: 2 time points"


def test_a_4d_series_loads_every_time_point(dce):
    volume = open_study.load_series(dce)
    assert volume.n_timepoints == 3 and volume.meta["timepoints"].shape == (3, 5, 16, 16)
    assert volume.meta["time_axis"].varies == ("temporal position",)
    z_values = lambda: [int(v) for v in volume.array[:, 8, 8]]  # noqa: E731
    assert volume.timepoint == 0 and z_values() == [value(0, z) for z in range(5)]
    assert volume.meta["instance_numbers"] == [1, 2, 3, 4, 5]
    for t in (2, 1, 0):
        volume.show_timepoint(t)
        assert volume.timepoint == t and z_values() == [value(t, z) for z in range(5)]
        assert volume.meta["instance_numbers"] == [t * 5 + z + 1 for z in range(5)]
        assert np.shares_memory(volume.array, volume.meta["timepoints"])  # a view, never a copy
    with pytest.raises(IndexError):
        volume.show_timepoint(3)


def test_a_4d_series_too_large_for_memory_shows_its_first_time_point(dce, monkeypatch):
    monkeypatch.setattr(open_study, "MAX_4D_BYTES", 100)
    volume = open_study.load_series(dce)
    assert volume.n_timepoints == 1 and "timepoints" not in volume.meta
    assert any("3 time points (temporal position): only the first is shown" in w for w in volume.warnings)
    assert int(volume.array[2, 0, 0]) == value(0, 2)


def test_the_session_steps_through_time_points(dce):
    session = Session()
    seen = []
    session.timepoint_changed.connect(seen.append)
    volume = open_study.load_series(dce)
    session.load_volume(volume)
    assert (session.timepoint, session.n_timepoints) == (0, 3)
    session.set_timepoint(2)
    assert seen == [2] and int(session.volume.array[4, 0, 0]) == value(2, 4)
    assert session.volume.value_at(volume.geometry.index_to_world((3, 5, 5))) == value(2, 3)
    session.set_timepoint(9)  # clamped: already the last
    session.set_timepoint(-4)
    assert seen == [2, 0] and session.timepoint == 0


def test_a_3d_volume_has_one_time_point(dce):
    from viewer.io.series_loader import load_series

    volume = load_series(dce, timepoint=1)  # one time point only, as the io loader gives it
    assert volume.n_timepoints == 1 and int(volume.array[0, 0, 0]) == value(1, 0)
    session = Session()
    session.load_volume(volume)
    session.set_timepoint(1)
    assert session.timepoint == 0


def test_index_json_says_how_many_time_points_and_what_varies(tmp_path, capsys):
    import json

    from four_d_cases import write_4d_series

    from viewer.cli.main import main

    write_4d_series(tmp_path / "4d")
    assert main(["index", str(tmp_path / "4d"), "--json"]) == 0
    (series,) = json.loads(capsys.readouterr().out)["series"]
    assert series["n_timepoints"] == 3
    assert series["time_axis"]["n"] == 3 and series["time_axis"]["varies"][0] == "temporal position"


def test_b_values_name_the_time_points_of_a_diffusion_series(tmp_path):
    import pydicom
    from four_d_cases import write_4d_series

    from viewer.core.timepoints import time_axis
    from viewer.io.dicom_index import scan

    write_4d_series(tmp_path / "dwi")
    for path in sorted((tmp_path / "dwi").iterdir()):
        ds = pydicom.dcmread(path)
        t = int(ds.TemporalPositionIdentifier) - 1
        del ds.TemporalPositionIdentifier
        ds.DiffusionBValue = [0.0, 500.0, 1000.0][t]
        ds.AcquisitionNumber = 1
        ds.save_as(path)
    (entry,) = scan(str(tmp_path / "dwi")).series
    axis = time_axis(entry.plan.frames)
    assert axis.n == 3 and axis.varies[0] == "b-value" and axis.value_text(2) == "b 1000 s/mm²"
