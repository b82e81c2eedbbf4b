"""PS3.15 Table E.1-1, Basic Application Level Confidentiality Profile: the action per attribute, and how a
compound action resolves for an attribute's Type.

The table is :mod:`viewer.export.deid_table` (edition 2026c, 656 rows; its docstring says where it comes
from); the attribute Types come from :mod:`viewer.export.deid_types` (generated from the PS3.3 module
tables). Option columns (Retain UIDs, Clean Descriptors, ...) are not implemented: this is the Basic
Profile without options.

Action codes (PS3.15 Table E.1-1 legend):
    D       replace with a non-zero length dummy value consistent with the VR
    Z       replace with a zero length value (or a dummy value consistent with the VR)
    X       remove
    K       keep (no Basic Profile entry uses it)
    C       clean (options only)
    U       replace with a non-zero length UID, internally consistent within the set of instances
    Z/D     Z unless D is required to maintain IOD conformance (Type 2 versus Type 1)
    X/Z     X unless Z is required (Type 3 versus Type 2)
    X/D     X unless D is required (Type 3 versus Type 1)
    X/Z/D   X unless Z or D is required (Type 3 versus Type 2 versus Type 1)
    X/Z/U*  X unless Z or replacement of contained instance UIDs (U) is required (sequences of references)

:func:`resolve` turns a code and the attribute's Type at its place (top level of the IOD of the SOP
class, or inside the items of its parent sequence) into one of ``X``, ``Z``, ``D``, ``U`` or ``U*``
(keep the sequence, its items de-identified and their instance UIDs replaced). An attribute whose Type
is not known at that place is treated as Type 3: the X branch, removal.
"""
from __future__ import annotations

from functools import lru_cache

from viewer.export.deid_table import EDITION, ROWS, SOURCE

__all__ = ["BASIC_PROFILE", "TABLE_ROWS", "REPEATING_GROUP_ACTIONS", "ACTION_CODES", "TABLE_SOURCE",
           "TABLE_EDITION", "action_for", "attribute_type", "resolve"]

TABLE_SOURCE = SOURCE
TABLE_EDITION = EDITION
ACTION_CODES = ("D", "Z", "X", "K", "C", "U", "Z/D", "X/Z", "X/D", "X/Z/D", "X/Z/U*")


def _parse(text: str) -> tuple[tuple[str, str, str, bool], ...]:
    rows = []
    for line in text.strip().splitlines():
        key, code, name, *retired = line.split("|")
        if code not in ACTION_CODES:
            raise ValueError(f"Table E.1-1 row {key}: unknown action {code!r}")
        rows.append((key, code, name, bool(retired)))
    return tuple(rows)


#: (tag as "gggg,eeee", Basic Profile code, attribute name, retired) for every row of the table
TABLE_ROWS = _parse(ROWS)

#: (group, element) as one int -> Basic Profile action, for the rows that name one attribute.
BASIC_PROFILE: dict[int, str] = {int(key.replace(",", ""), 16): code for key, code, _, _ in TABLE_ROWS
                                 if all(c in "0123456789abcdef," for c in key)}

#: Rows of the table for repeating groups: (group mask, group value, element or None for any) -> action.
#: Curve Data (50xx,xxxx) X; Overlay Data (60xx,3000) X; Overlay Comments (60xx,4000) X.
REPEATING_GROUP_ACTIONS: tuple[tuple[int, int, int | None, str], ...] = (
    (0xFF00, 0x5000, None, "X"),    # (50XX,XXXX) Curve Data
    (0xFF00, 0x6000, 0x3000, "X"),  # (60XX,3000) Overlay Data
    (0xFF00, 0x6000, 0x4000, "X"),  # (60XX,4000) Overlay Comments
)


def action_for(tag: int) -> str | None:
    """The Basic Profile action for ``tag`` (an int), or None when the table does not list it.

    Private attributes (odd groups) are "X"; repeating curve/overlay rows are matched by group.
    """
    tag = int(tag)
    action = BASIC_PROFILE.get(tag)
    if action is not None:
        return action
    group, element = tag >> 16, tag & 0xFFFF
    if group % 2 == 1:
        return "X"
    for mask, value, elem, act in REPEATING_GROUP_ACTIONS:
        if group & mask == value and (elem is None or elem == element):
            return act
    return None


# ------------------------------------------------------------------------------------------------ Types
_TYPE_ORDER = ("1", "1C", "2", "2C", "3")


@lru_cache(maxsize=None)
def _any_iod(tag: int) -> str:
    """The strictest top-level Type of ``tag`` over all IODs (for a SOP class the tables do not know)."""
    from viewer.export.deid_types import TOP_LEVEL

    kinds = TOP_LEVEL.get(tag, {})
    return next((k for k in _TYPE_ORDER if k in kinds), "3")


def attribute_type(tag: int, sop_class_uid: str, parent: int | None = None) -> str:
    """The Type ("1", "1C", "2", "2C" or "3") of ``tag`` where it sits: at the top level of the IOD of
    ``sop_class_uid`` (``parent`` None), or in an item of the sequence ``parent`` (the strictest Type
    over all IODs). "3" when the tables do not list it there (or list it as Type 3)."""
    from viewer.export.deid_types import NESTED, SOP_CLASS_IODS, TOP_LEVEL

    tag = int(tag)
    if parent is not None:
        return NESTED.get((int(parent), tag), "3")
    iod = SOP_CLASS_IODS.get(str(sop_class_uid).strip())
    if iod is None:
        return _any_iod(tag)
    for kind, iods in TOP_LEVEL.get(tag, {}).items():
        if (iods >> iod) & 1:
            return kind
    return "3"


def resolve(code: str, kind: str) -> str:
    """One of X, Z, D, U, U* for the Basic Profile ``code`` of an attribute of Type ``kind``.

    Type 1 and 1C attributes need a value (D), Type 2 and 2C may be empty (Z), Type 3 may go (X); a
    conditional Type is taken as required, since the attribute is present (its condition held in the
    source). For X/Z/U* any required Type keeps the sequence with its instance UIDs replaced (U*).
    """
    required, empty_ok = kind in ("1", "1C"), kind in ("2", "2C")
    if code in ("X", "D", "U", "K", "C"):
        return "X" if code in ("K", "C") else code  # K and C belong to options this module does not offer
    if code in ("Z", "Z/D"):
        return "D" if required else "Z"
    if code == "X/Z/U*":
        return "U*" if required or empty_ok else "X"
    if required:
        return "D"
    if empty_ok:
        return "Z" if "Z" in code else "D"  # X/D on a Type 2 attribute: a dummy keeps it conformant
    return "X"
