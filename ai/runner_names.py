"""Which runner classes a manifest may name: radview's own, by a short name, and those of installed packages.

Security rule: a model folder is untrusted input, so its manifest never names code to import. ``runner`` is a
short name from :data:`BUILTIN` (the old dotted paths of those same classes are accepted and mean them), or the
name of an entry point in the group ``radview.runners`` of an installed package (installing the package is the
decision to trust its code). Anything else is refused when the manifest is parsed, before anything is imported.
Reading the entry points reads package metadata only; a runner's module is imported when its model runs.
"""
from __future__ import annotations

import importlib
import re
from importlib.metadata import EntryPoint, entry_points
from typing import Mapping

ENTRY_POINT_GROUP = "radview.runners"

#: radview's runners: short name -> ``module:Class`` (the module is imported only when a model runs).
BUILTIN: Mapping[str, str] = {
    "ct-body": "ai.runners.ct_models:BodyModel",
    "ct-bone": "ai.runners.ct_models:BoneModel",
    "ct-lungs": "ai.runners.ct_models:LungsModel",
    "ct-lung-nodules": "ai.runners.ct_models:NoduleModel",
    "classifier": "ai.runners.classifier:ClassifierModel",
    "network": "ai.runners.network:NetworkModel",
    "nnunet": "ai.runners.nnunet:NnUNetModel",
    "totalseg": "ai.runners.nnunet:TotalSegModel",
    "xrv-pretrained": "ai.runners.xrv_pretrained:XrvPretrainedModel",
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class UnknownRunner(ValueError):
    """A manifest names a runner radview does not know; the message is one line."""


def installed_runners() -> dict[str, EntryPoint]:
    """The entry points of group ``radview.runners`` by name (metadata only: nothing is imported).

    A package cannot take over one of radview's own names.
    """
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in BUILTIN and _NAME.match(ep.name):
            found.setdefault(ep.name, ep)
    return found


def runner_name(text: object) -> str:
    """The registered name ``text`` means (a short name, or a built-in's old ``module:Class``); else UnknownRunner."""
    if not isinstance(text, str) or not text.strip():
        raise UnknownRunner("field 'runner' must name one of radview's runners")
    text = text.strip()
    if text in BUILTIN:
        return text
    for name, target in BUILTIN.items():
        if text == target:
            return name
    if _NAME.match(text) and text in installed_runners():
        return text
    raise UnknownRunner(f"runner {text[:80]!r} is not one of radview's runners ({', '.join(BUILTIN)}) nor one "
                        f"that an installed package registers (entry point group '{ENTRY_POINT_GROUP}'); "
                        "a model folder cannot name other code to run")


def load_runner(name: str) -> object:
    """Import a registered runner (raises UnknownRunner for any other name, ImportError/AttributeError as they come)."""
    if name in BUILTIN:
        module_name, _, class_name = BUILTIN[name].partition(":")
        return getattr(importlib.import_module(module_name), class_name)
    ep = installed_runners().get(name)
    if ep is None:
        raise UnknownRunner(f"runner '{name}' is not registered (no installed package provides it any more)")
    return ep.load()


def target(name: str) -> str:
    """The ``module:Class`` a registered runner name stands for ("" when no package provides it)."""
    if name in BUILTIN:
        return BUILTIN[name]
    ep = installed_runners().get(name)
    return ep.value if ep is not None else ""
