"""The attribute walk of the de-identification: PS3.15 Table E.1-1 applied to every attribute of a dataset
and, with the same rules, of every item of every sequence in it, at any depth.

For each element of a dataset (``AttributeCleaner.clean``):

* private attributes (odd groups, creators included), the whole curve (50xx) and overlay (60xx) groups,
  group lengths (gggg,0000), command and file-meta elements found in the dataset body (groups 0000,
  0002), and **unknown attributes** (a public tag the data dictionary does not know, whatever VR it
  was read with, implicit or explicit) are removed;
* an attribute of the table gets its action, a compound code resolved by the attribute's Type where it
  sits (:func:`viewer.export.deid_profile.resolve`: at the top level, the Type in the IOD of the SOP
  class; in a sequence item, its Type in that sequence's items): X removes it, Z empties it (a
  sequence: zero items), D replaces it with a dummy valid for its VR (a UI: a new UID; a sequence:
  kept, its items de-identified and their free text, person names and, for a code sequence, code
  values replaced by dummies), U replaces its UIDs, U* keeps a sequence of references with its items
  de-identified (their instance UIDs replaced, so references still resolve); a Type 3 X/Z/U* sequence at
  the top level is kept that way when the instance lists what it references in the Common Instance
  Reference module (Referenced Series Sequence): removing the references would make that list wrong;
* an attribute the table does not list: a sequence is walked; inside a D sequence free text (LT, ST,
  UT, UC) and person names become dummies; dates and times become dummies (``blank_unlisted_dates``);
  UI values are remapped unless they name a class, a transfer syntax or a coding scheme, or are UIDs of
  the DICOM registry or under the DICOM root; anything else is kept.

``keep_text``: values kept verbatim where a dummy would go (radview's own review stamps in its SEG and
SR, see :mod:`viewer.export.deid`). Qt-free and torch-free.
"""
from __future__ import annotations

import re
from typing import Callable

from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.uid import UID_dictionary

from viewer.export.deid_profile import BASIC_PROFILE, attribute_type, resolve

__all__ = ["AttributeCleaner", "DUMMY_VALUES", "DICOM_ROOT", "PIXEL_TAGS", "is_known"]

#: D action: a non-empty value valid for the VR that says nothing about the patient.
DUMMY_VALUES: dict[str, object] = {
    "AE": "ANONYMIZED", "AS": "000D", "CS": "ANONYMIZED", "DA": "19000101", "DS": "0",
    "DT": "19000101000000.000000", "IS": "0", "LO": "ANONYMIZED", "LT": "ANONYMIZED", "PN": "ANONYMIZED",
    "SH": "ANONYMIZED", "ST": "ANONYMIZED", "TM": "000000.00", "UC": "ANONYMIZED", "UR": "urn:anonymized",
    "UT": "ANONYMIZED", "FL": 0.0, "FD": 0.0, "SL": 0, "SS": 0, "SV": 0, "UL": 0, "US": 0, "UV": 0,
    "OB": b"\x00\x00", "OD": b"\x00" * 8, "OF": b"\x00" * 4, "OL": b"\x00" * 4, "OV": b"\x00" * 8,
    "OW": b"\x00\x00", "UN": b"\x00\x00", "AT": 0,
}
#: UIDs under the DICOM root are the standard's own (classes, syntaxes, context groups): never a patient's
DICOM_ROOT = "1.2.840.10008."
PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})
_REFERENCED_SERIES = 0x00081115  # Referenced Series Sequence (Common Instance Reference module)
_DATE_VRS = ("DA", "DT", "TM")
_FREE_TEXT_VRS = ("LT", "ST", "UT", "UC", "PN")
_BYTES_VRS = ("OB", "OD", "OF", "OL", "OV", "OW", "UN")
#: the code of a code-sequence item (Person Identification Code Sequence, Institution Code Sequence, ...)
_CODE_TEXT = ("CodeValue", "LongCodeValue", "URNCodeValue", "CodeMeaning")
#: UI attributes that name a class, an encoding or a coding scheme, not an instance: never remapped.
_CLASS_LIKE_UI = re.compile(r"ClassUID|TransferSyntaxUID|CodingSchemeUID|ContextGroupExtensionCreatorUID"
                            r"|MappingResourceUID|ContextUID|PrivateInformationCreatorUID")


def is_known(tag) -> bool:
    """True when the data dictionary (repeating groups included) knows the public attribute ``tag``."""
    try:
        dictionary_VR(tag)
        return True
    except KeyError:
        return False


def _removed_group(tag: int) -> bool:
    group, element = tag >> 16, tag & 0xFFFF
    return (group % 2 == 1 or (group & 0xFF00) in (0x5000, 0x6000) or group in (0x0000, 0x0002)
            or element == 0x0000)


class AttributeCleaner:
    """Applies the profile to datasets of one SOP class; ``new_uid(old)`` gives the run's consistent UIDs."""

    def __init__(self, new_uid: Callable[[str], str], sop_class_uid: str, blank_unlisted_dates: bool = True,
                 keep_text: frozenset[str] = frozenset()):
        self.new_uid = new_uid
        self.sop_class_uid = sop_class_uid
        self.blank_unlisted_dates = blank_unlisted_dates
        self.keep_text = keep_text
        self._lists_references = False

    def clean(self, ds: Dataset, parent: int | None = None, in_dummy_sequence: bool = False) -> None:
        """De-identify ``ds`` in place: the top level when ``parent`` is None, else an item of sequence ``parent``.

        ``in_dummy_sequence``: ``ds`` is (inside) an item of a sequence whose action is D (Content Sequence,
        Graphic Annotation Sequence, ...): its free text and person names become dummies too.
        """
        if parent is None:
            self._lists_references = _REFERENCED_SERIES in ds
        for tag in list(ds.keys()):
            t = int(tag)
            if _removed_group(t):
                del ds[tag]
                continue
            if t in PIXEL_TAGS:
                continue
            code = BASIC_PROFILE.get(t)
            if code is None and not is_known(t):
                del ds[tag]  # an attribute this dictionary does not know: its content cannot be judged
                continue
            try:
                elem = ds[tag]
            except Exception:  # a value pydicom cannot decode: nothing of it may stay
                action = self._action(code, t, parent) if code else "X"
                if action in ("X", "U*"):
                    del ds[tag]
                else:
                    ds[tag] = self._replacement(t, action)
                continue
            if code is None:
                self._unlisted(ds, elem, in_dummy_sequence)
            else:
                self._apply(ds, elem, self._action(code, t, parent), in_dummy_sequence)

    def _action(self, code: str, tag: int, parent: int | None) -> str:
        action = resolve(code, attribute_type(tag, self.sop_class_uid, parent))
        if action == "X" and code == "X/Z/U*" and parent is None and self._lists_references:
            # the Common Instance Reference module lists the instances this one references (Referenced Series
            # Sequence, Type 1C "required if this Instance references Instances"): without these references it
            # would list instances nothing references, so they are required to keep the IOD conformant
            return "U*"
        return action

    # ----------------------------------------------------------------------------------------- listed
    def _apply(self, ds: Dataset, elem: DataElement, action: str, in_dummy_sequence: bool = False) -> None:
        vr, tag = elem.VR, int(elem.tag)
        if action == "X":
            del ds[elem.tag]
        elif action == "U" or (action == "D" and vr == "UI"):  # a dummy UID: a new one, the same for the same old one
            if vr in ("UI", "UN", "LO", "SH"):
                ds[elem.tag] = DataElement(elem.tag, "UI", self._map_uids(elem.value, keep_registered=False))
            else:
                del ds[elem.tag]
        elif vr == "SQ":
            if action == "Z":
                elem.value = Sequence([])
            else:  # D: the items de-identified, their text replaced; U*: the items de-identified
                dummy = action == "D"
                for item in elem.value or ():
                    self.clean(item, parent=tag, in_dummy_sequence=dummy or in_dummy_sequence)
                    if dummy and (keyword_for_tag(tag) or "").endswith("CodeSequence"):
                        for kw in _CODE_TEXT:
                            if kw in item:
                                item[kw].value = "ANONYMIZED" if kw != "URNCodeValue" else DUMMY_VALUES["UR"]
        elif action == "Z":
            elem.value = b"" if vr in _BYTES_VRS else None
        elif action == "D":
            ds[elem.tag] = self._replacement(tag, "D", vr)
        else:  # U* on an attribute that is not a sequence: nothing to keep of it
            del ds[elem.tag]

    def _replacement(self, tag: int, action: str, vr: str | None = None) -> DataElement:
        if vr is None or vr == "UN":
            try:
                vr = dictionary_VR(tag).split(" or ")[0]
            except KeyError:
                vr = "UN"
        if action == "Z":
            return DataElement(tag, vr, Sequence([]) if vr == "SQ" else b"" if vr in _BYTES_VRS else None)
        if vr == "UI" or action == "U":
            return DataElement(tag, "UI", self.new_uid(f"replaced:{tag:08X}"))
        if vr == "SQ":
            return DataElement(tag, "SQ", Sequence([]))
        return DataElement(tag, vr, DUMMY_VALUES.get(vr, b"\x00\x00"))

    # --------------------------------------------------------------------------------------- unlisted
    def _unlisted(self, ds: Dataset, elem: DataElement, in_dummy_sequence: bool) -> None:
        vr = elem.VR
        if vr == "SQ":
            for item in elem.value or ():
                self.clean(item, parent=int(elem.tag), in_dummy_sequence=in_dummy_sequence)
        elif in_dummy_sequence and vr in _FREE_TEXT_VRS:
            if not _is_empty(elem.value) and str(elem.value) not in self.keep_text:
                elem.value = DUMMY_VALUES[vr]
        elif vr in _DATE_VRS and self.blank_unlisted_dates:
            if not _is_empty(elem.value):
                elem.value = DUMMY_VALUES[vr]
        elif vr == "UI":
            if not _CLASS_LIKE_UI.search(keyword_for_tag(elem.tag) or ""):
                elem.value = self._map_uids(elem.value, keep_registered=True)

    def _map_uids(self, value, keep_registered: bool):
        def one(v):
            s = uid_text(v)
            if not s or (keep_registered and (s in UID_dictionary or s.startswith(DICOM_ROOT))):
                return s
            return self.new_uid(s)

        if isinstance(value, (list, tuple, MultiValue)):
            return [one(v) for v in value]
        if isinstance(value, bytes):
            value = value.decode("ascii", "replace").split("\\")
            return one(value[0]) if len(value) == 1 else [one(v) for v in value]
        return one(value)


def uid_text(v) -> str:
    if isinstance(v, bytes):
        v = v.decode("ascii", "replace")
    return str(v).strip().rstrip("\x00").strip() if v is not None else ""


def _is_empty(value) -> bool:
    return value is None or value == "" or value == b"" or (isinstance(value, (list, MultiValue)) and not value)
