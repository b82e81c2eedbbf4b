"""No module reaches into another object's ``_private`` attributes: ``other._x`` where ``other`` is not ``self`` or
``cls``. Read from the tokens, so strings and comments don't count; import statements of a library's private
module are not reaching into an object and are skipped."""
from __future__ import annotations

import io
import tokenize
from pathlib import Path

import import_graph

#: accepted, each with its reason
ALLOWED = {
    "sys._getframe",  # nnU-Net's predictor: the documented way to read a caller's frame in CPython
    "dul._run_loop_delay",  # viewer/net/association.py: pynetdicom's network-thread poll, no public setter (measured)
    "extension._has_ops",  # ai/runners/xrv_import.py: torchvision's own verdict on its C++ ops (no public API)
}


def private_reaches(source: str) -> list[tuple[int, str]]:
    """(line, ``name._attr``) of every access to a private attribute of something other than self/cls."""
    found = []
    previous: list[tokenize.TokenInfo] = []  # the last two code tokens of the logical line
    in_import = False
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type in (tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT) or tok.string == ";":
            previous, in_import = [], False  # a new statement starts
            continue
        if tok.type in (tokenize.COMMENT, tokenize.NL):
            continue
        if not previous:
            in_import = tok.type == tokenize.NAME and tok.string in ("import", "from")
        if (not in_import and tok.type == tokenize.NAME and tok.string.startswith("_")
                and not tok.string.startswith("__") and len(previous) == 2 and previous[1].string == "."
                and previous[0].type == tokenize.NAME and previous[0].string not in ("self", "cls")):
            found.append((tok.start[0], f"{previous[0].string}.{tok.string}"))
        previous = (previous + [tok])[-2:]
    return found


def test_the_check_finds_a_reach_into_another_objects_private_attribute():
    code = ("from pydicom.sr._snomed_dict import mapping\nclass A:\n    def f(self, other):\n"
            "        self._ok = self.x.__len__()\n        return other._secret  # x._no\ns = 'window._report'\n")
    assert private_reaches(code) == [(5, "other._secret")]


def test_no_module_reaches_into_another_objects_private_attributes():
    offences = []
    for _name, path in sorted(import_graph.modules().items()):
        for line, what in private_reaches(Path(path).read_text(encoding="utf-8")):
            if what not in ALLOWED:
                offences.append(f"{path.relative_to(import_graph.ROOT)}:{line}: {what}")
    assert offences == []


def test_no_module_imports_another_modules_private_names():
    """``from viewer.export.seg import _helper`` is the same reach as ``seg._helper``: a private name stays home."""
    import ast

    offences = []
    for _name, path in sorted(import_graph.modules().items()):
        for node in ast.walk(ast.parse(Path(path).read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").split(".")[0]
                                                      in import_graph.PACKAGES):
                offences += [f"{path.relative_to(import_graph.ROOT)}:{node.lineno}: {alias.name}"
                             for alias in node.names if alias.name.startswith("_") and not alias.name.startswith("__")]
    assert offences == []
