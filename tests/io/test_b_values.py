"""Diffusion b-values (viewer.io.b_value): the standard DiffusionBValue (0018,9087), else GE's (0043,xx39), Siemens'
(0019,xx0C) and Philips' (2001,xx03) private tags, read only inside the block their own private creator names — a
different vendor's element at the same number is never taken for a b-value. On small files written with pydicom,
read by the fast header reader and by pydicom, and on a 4D diffusion series whose time points the index names by
b-value."""
from __future__ import annotations

import struct

import pydicom
import pytest
from four_d_cases import write_4d_series

from viewer.core.timepoints import time_axis
from viewer.io.b_value import b_value, private_b_value, pydicom_private_elements
from viewer.io.dicom_header import ImageFile, read_header
from viewer.io.dicom_index import scan


def ge(value: str, creator: str = "GEMS_PARM_01", block: int = 0x10):
    def add(ds, _t=0, _z=0):
        ds.private_block(0x0043, creator, create=True)  # (creator at the first free slot: 0x10)
        ds.add_new((0x0043, (block << 8) | 0x39), "IS", value)
    return add


def siemens(value: int, creator: str = "SIEMENS MR HEADER"):
    def add(ds, _t=0, _z=0):
        ds.private_block(0x0019, creator, create=True).add_new(0x0C, "IS", value)
    return add


def philips(value: float, creator: str = "Philips Imaging DD 001", vr: str = "FL"):
    def add(ds, _t=0, _z=0):
        ds.private_block(0x2001, creator, create=True).add_new(
            0x03, vr, struct.pack("<f", value) if vr == "UN" else value)
    return add


def write_one(tmp_path, add, name: str, implicit: bool = False) -> str:
    folder = write_4d_series(tmp_path / name, n_t=1, n_z=1, size=4, extra=add, implicit=implicit)
    (path,) = folder.iterdir()
    return str(path)


def read_both(path: str):
    """The b-value read by radview's header reader (fast path) and through pydicom."""
    info = read_header(path)
    assert isinstance(info, ImageFile), info
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return info.frames[0].b_value, b_value(ds.get("DiffusionBValue"), pydicom_private_elements(ds))


@pytest.mark.parametrize("implicit", [False, True], ids=["explicit VR", "implicit VR"])
@pytest.mark.parametrize("add, expected", [
    (ge("1000\\8\\0\\0"), 1000.0),
    (ge("1000000500\\8\\0\\0"), 500.0),  # GE's 1e9 flag
    (ge("0\\8\\0\\0"), 0.0),
    (siemens(800), 800.0),
    (philips(1500.0), 1500.0),
], ids=["GE", "GE 1e9", "GE b0", "Siemens", "Philips"])
def test_each_vendors_private_b_value_is_read(tmp_path, add, expected, implicit):
    path = write_one(tmp_path, add, "one", implicit)
    assert read_both(path) == (expected, expected)


def test_a_philips_b_factor_whose_vr_was_lost_is_still_read(tmp_path):
    path = write_one(tmp_path, philips(700.0, vr="UN"), "un")
    assert read_both(path) == (700.0, 700.0)


@pytest.mark.parametrize("add", [
    ge("1000\\8\\0\\0", creator="GEMS_ACQU_01"),
    siemens(800, creator="GEMS_ACQU_01"),  # GE's acquisition block lives in group 0019 too
    philips(1500.0, creator="Philips Imaging DD 002"),
    siemens(800, creator="ACME CORP 1"),
], ids=["GE number, other creator", "Siemens number, GE creator", "Philips number, DD 002", "unknown creator"])
def test_an_element_of_another_private_block_is_never_a_b_value(tmp_path, add):
    path = write_one(tmp_path, add, "wrong")
    assert read_both(path) == (None, None)


def test_the_block_is_found_wherever_its_creator_sits(tmp_path):
    """GE's creator in the second slot (0043,0011): its b-value is (0043,1139); (0043,1039) is another vendor's."""
    def add(ds, _t=0, _z=0):
        ds.private_block(0x0043, "ACME CORP 1", create=True).add_new(0x39, "IS", "77")
        ge("1000\\8\\0\\0", block=0x11)(ds)

    path = write_one(tmp_path, add, "second")
    ds = pydicom.dcmread(path)
    assert ds[0x0043, 0x0011].value == "GEMS_PARM_01" and ds[0x0043, 0x1039].value == 77
    assert read_both(path) == (1000.0, 1000.0)


def test_the_standard_b_value_wins_over_a_private_one(tmp_path):
    def add(ds, _t=0, _z=0):
        ds.DiffusionBValue = 50.0
        siemens(800)(ds)

    assert read_both(write_one(tmp_path, add, "standard")) == (50.0, 50.0)
    assert b_value(None, {}) is None and private_b_value({}) is None


def test_a_diffusion_series_is_named_by_its_private_b_values(tmp_path):
    """b0 and two b1000 directions, b-values only in GE's private tag: the index says what varies."""
    b_values = ["0\\8\\0\\0", "1000000000\\8\\0\\0", "1000\\8\\0\\0", "500\\8\\0\\0"]
    folder = write_4d_series(tmp_path / "dwi", n_t=4, n_z=3, size=4, varies="",
                             extra=lambda ds, t, _z: ge(b_values[t])(ds))
    (entry,) = scan(str(folder)).series
    axis = time_axis(entry.plan.frames)
    assert axis.varies[0] == "b-value" and axis.values == (0.0, 0.0, 1000.0, 500.0)
    assert axis.text(2) == "Time 3/4 · b 1000 s/mm²"
    assert axis.summary() == "4D: 4 time points (b-value 0–1000 s/mm²)"
