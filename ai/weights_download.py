"""Weights that a model's own package fetches (TotalSegmentator, TorchXRayVision): whether the package is there, and
the download only with the user's consent.

Consent comes from the request's options only (``allow_download`` is ``True``: the Run AI dialog's checkbox or
``radview-cli ai run --allow-download``); a manifest's parameters cannot give it. No torch here.
"""
from __future__ import annotations

import importlib.util
from typing import Any, Callable, Mapping, TypeVar

from ai.api import ModelError

T = TypeVar("T")


def package_installed(module: str) -> bool:
    """``module`` can be imported (found, not imported)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def fetch_with_consent(options: Mapping[str, Any], ctx, *, title: str, note: str, by: str,
                       download: Callable[[], T], messages: list[str], wait: str = "") -> T:
    """``download()`` (by the package ``by``) when the user agreed, with progress through ``ctx.step`` and a line
    for ``messages``; else a ModelError with ``note`` (what would be fetched, from where, how big) and how to
    agree."""
    if options.get("allow_download") is not True:
        raise ModelError(f"{title}: {note} Agree to the download in the Run AI dialog (radview-cli ai run: "
                         f"--allow-download) to let {by} fetch them.")
    ctx.step(0.0, f"{by} is downloading the weights{wait}")
    where = download()
    messages.append(f"{by} downloaded the weights into {where}")
    return where
