"""Models that contain code run only where the user allowed it (no torch).

Security rule: TorchScript weights are a program (TorchScript code run by torch's interpreter with the user's
permissions), not just numbers. A model whose manifest :attr:`~ai.manifest.ModelManifest.contains_code` runs only
when its request lists the model's folder in :attr:`ai.api.InferenceRequest.allow_code_in` (``radview-cli ai run
--allow-torchscript``; a GUI asks the user per folder). The engine checks this before the runner is loaded, on
every run, also when the runner is already cached.
"""
from __future__ import annotations

import os

from ai.api import CONTAINS_CODE_NOTE, InferenceRequest, ModelError
from ai.manifest import ModelManifest


def _same(a: str, b: str) -> bool:
    return os.path.normcase(os.path.realpath(a)) == os.path.normcase(os.path.realpath(b))


def allowed(manifest: ModelManifest, allow_code_in) -> bool:
    """True for a model without code, or one whose folder (or manifest file) is among ``allow_code_in``."""
    if not manifest.contains_code:
        return True
    mine = [p for p in (manifest.folder, manifest.path) if p]
    return any(_same(p, str(folder)) for p in mine for folder in allow_code_in if str(folder))


def refusal(manifest: ModelManifest) -> str:
    """The one-line message for a code-containing model that was not allowed."""
    return (f"{manifest.name} {CONTAINS_CODE_NOTE}: run it only if you trust where it came from, and allow "
            f"TorchScript for its folder {manifest.folder} (radview-cli ai run --allow-torchscript)")


def check(manifest: ModelManifest, request: InferenceRequest) -> None:
    """Raise ModelError (one line, for the user) when ``manifest`` contains code the request did not allow."""
    if not allowed(manifest, request.allow_code_in):
        raise ModelError(refusal(manifest))
