"""The de-identification profile's data: PS3.15 Table E.1-1 of the current edition, the attribute Types
that resolve its compound codes, and the resolution rules."""
from __future__ import annotations

from collections import Counter

import pytest
from pydicom.datadict import dictionary_description, keyword_for_tag

from viewer.export import deid_types
from viewer.export.deid_clean import is_known
from viewer.export.deid_profile import (
    BASIC_PROFILE,
    TABLE_EDITION,
    TABLE_ROWS,
    TABLE_SOURCE,
    action_for,
    attribute_type,
    resolve,
)

ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4.1"
MR = "1.2.840.10008.5.1.4.1.1.4"
CT = "1.2.840.10008.5.1.4.1.1.2"


def test_the_table_is_the_2026c_edition_with_every_row():
    assert TABLE_EDITION == "2026c" and "2026c" in TABLE_SOURCE and "Isocenter" in TABLE_SOURCE
    assert len(TABLE_ROWS) == 656 and len(BASIC_PROFILE) == 652  # + 50xx, 60xx,3000, 60xx,4000, private
    assert Counter(code for _, code, _, _ in TABLE_ROWS) == {
        "X": 416, "D": 93, "U": 55, "Z": 42, "X/D": 23, "X/Z": 11, "X/Z/D": 8, "Z/D": 6, "X/Z/U*": 2}
    keys = [key for key, _, _, _ in TABLE_ROWS]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert {key for key in keys if "x" in key or "g" in key} == {"50xx,xxxx", "60xx,3000", "60xx,4000", "gggg,eeee"}


def test_the_attributes_the_older_edition_lacked_are_there():
    named = {
        0x00080054: ("Retrieve AE Title", "X"), 0x00080055: ("Station AE Title", "X"),
        0x00081000: ("Network ID", "X"),
        0x00120022: ("Issuer of Clinical Trial Protocol ID", "X"),
        0x00120032: ("Issuer of Clinical Trial Site ID", "X"),
        0x00120041: ("Issuer of Clinical Trial Subject ID", "X"),
        0x00120043: ("Issuer of Clinical Trial Subject Reading ID", "X"),
        0x00120055: ("Issuer of Clinical Trial Time Point ID", "X"),
        0x00120073: ("Issuer of Clinical Trial Series ID", "X"),
        0x00100012: ("Name to Use", "X"), 0x00160051: ("Lens Serial Number", "X"),
    }
    names = {int(key.replace(",", ""), 16): name for key, _, name, _ in TABLE_ROWS if "x" not in key and "g" not in key}
    for tag, (name, code) in named.items():
        assert (names[tag], BASIC_PROFILE[tag]) == (name, code)
    selectors = {names[t]: c for t, c in BASIC_PROFILE.items() if names[t].startswith("Selector ")}
    assert len(selectors) == 14 and set(selectors.values()) == {"D"}
    assert "Selector AE Value" in selectors and "Selector UR Value" in selectors
    assert action_for(0x00291010) == "X" and action_for(0x60023000) == "X" and action_for(0x501E0010) == "X"


def test_every_row_names_the_attribute_the_dictionary_names():
    """The transcription check: each tag's name is pydicom's (for the tags pydicom knows)."""
    def norm(s: str) -> str:
        return s.replace(" (see Note 11)", "").lower().replace(" ", "").replace("-", "")

    unknown = []
    for key, _, name, _ in TABLE_ROWS:
        if "x" in key or "g" in key:
            continue
        tag = int(key.replace(",", ""), 16)
        if not is_known(tag):
            unknown.append(name)
            continue
        assert norm(dictionary_description(tag)) == norm(name), key
    # newer than pydicom 3.0's dictionary: all X, and removed as unknown attributes anyway
    assert len(unknown) <= 25 and all(BASIC_PROFILE[int(k.replace(",", ""), 16)] == "X"
                                      for k, _, n, _ in TABLE_ROWS if n in unknown)


# ------------------------------------------------------------------------------------------ resolution
@pytest.mark.parametrize("code, kind, action", [
    ("X/Z/D", "3", "X"), ("X/Z/D", "2", "Z"), ("X/Z/D", "2C", "Z"), ("X/Z/D", "1", "D"), ("X/Z/D", "1C", "D"),
    ("X/Z", "3", "X"), ("X/Z", "2", "Z"), ("X/Z", "1", "D"),
    ("X/D", "3", "X"), ("X/D", "2", "D"), ("X/D", "1C", "D"),
    ("Z/D", "3", "Z"), ("Z/D", "2C", "Z"), ("Z/D", "1", "D"),
    ("Z", "3", "Z"), ("Z", "2", "Z"), ("Z", "1", "D"),
    ("X/Z/U*", "3", "X"), ("X/Z/U*", "2", "U*"), ("X/Z/U*", "1C", "U*"),
    ("X", "1", "X"), ("D", "3", "D"), ("U", "3", "U"), ("K", "3", "X"), ("C", "3", "X"),
])
def test_compound_codes_resolve_by_the_attributes_type(code, kind, action):
    assert resolve(code, kind) == action


def test_attribute_types_come_from_the_iod_of_the_sop_class():
    assert attribute_type(0x00081111, ENHANCED_MR) == "1C"  # Referenced PPS Sequence, MR Series module
    assert attribute_type(0x00081111, MR) == "3"
    assert attribute_type(0x00081110, MR) == "3"  # Referenced Study Sequence, General Study
    assert attribute_type(0x00080023, ENHANCED_MR) == "1" and attribute_type(0x00080023, CT) == "2C"
    assert attribute_type(0x0008002A, ENHANCED_MR) == "1C" and attribute_type(0x0008002A, CT) == "3"
    assert attribute_type(0x00080080, CT) == "3"  # Institution Name, General Equipment
    assert attribute_type(0x00081140, CT) == "3"  # Referenced Image Sequence, General Image
    # in items: Referenced Image Sequence in a functional group, Source Image Sequence in a derivation item
    assert attribute_type(0x00081140, ENHANCED_MR, parent=0x52009230) == "2"
    assert attribute_type(0x00082112, ENHANCED_MR, parent=0x00089124) == "2"
    assert attribute_type(0x00080080, CT, parent=0x00409999) == "3"  # not listed there: Type 3
    # a SOP class the tables do not know: the strictest Type over all IODs
    assert attribute_type(0x00080023, "1.2.3.4") == "1"


def test_the_types_data_is_what_the_standard_tables_give():
    pytest.importorskip("highdicom", reason="the PS3.3 tables are read from highdicom's copy of the standard")
    from deid_types_source import derive

    data = derive()
    assert deid_types.IODS == data["iods"]
    assert deid_types.SOP_CLASS_IODS == data["sop_class_iods"]
    masks = {tag: {kind: sum(1 << i for i in iods) for kind, iods in by_type.items()}
             for tag, by_type in data["top_level"].items()}
    assert deid_types.TOP_LEVEL == masks
    assert deid_types.NESTED == data["nested"]
    assert all(keyword_for_tag(t) for t in deid_types.TOP_LEVEL)
