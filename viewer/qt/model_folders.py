"""The user's own model folders (AI → Add model folder…), remembered in the settings.

A model folder is a ``model.toml`` with TorchScript/safetensors/ONNX weights, or an nnU-Net v2 results
folder (see ``ai.registry.load_model_folder``). Reading one parses JSON/TOML only (no torch), so the
Run AI dialog lists it at once; a folder that stopped working is listed with its reason among the
dialog's problems and never hides the other models. The engine process learns about a folder from the
request (``options["model_folder"]``), so no restart is needed after adding one.
"""
from __future__ import annotations

import os

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QFileDialog

from ai.nnunet_folder import RUNNER as NNUNET_RUNNER
from ai.registry import ManifestError, ModelManifest, Registry, load_model_folder

FOLDERS_KEY = "ai/model_folders"


class ModelFolders:
    def __init__(self, settings: QSettings | None = None):
        self.settings = settings if settings is not None else QSettings("radview", "radview")

    def folders(self) -> list[str]:
        value = self.settings.value(FOLDERS_KEY, []) or []
        if isinstance(value, str):  # QSettings gives a lone string for a one-item list on some back-ends
            value = [value]
        return [str(v) for v in value if str(v).strip()]

    def _store(self, folders: list[str]) -> None:
        self.settings.setValue(FOLDERS_KEY, folders)
        self.settings.sync()

    def add_folder(self, path: str) -> ModelManifest:
        """Check and remember a folder; raise ManifestError (its message is for the user) if it is no model."""
        path = os.path.abspath(path)
        manifest = load_model_folder(path)
        folders = self.folders()
        if path not in folders:
            self._store(folders + [path])
        return manifest

    def remove_folder(self, path: str) -> None:
        self._store([f for f in self.folders() if f != os.path.abspath(path)])

    def registry(self) -> Registry:
        """The built-in models, ``$RADVIEW_MODELS_DIR`` and the remembered folders."""
        registry = Registry()
        for folder in self.folders():
            try:
                registry.add_model_folder(folder)
            except ManifestError as exc:
                registry.problems.append(f"{folder}: skipped: {exc}")
        return registry

    @staticmethod
    def is_user_model(manifest: ModelManifest) -> bool:
        """A model that came from a folder (the engine process must be told where it is)."""
        return manifest.network is not None or manifest.runner == NNUNET_RUNNER

    def ask_folder(self, parent) -> str:
        return QFileDialog.getExistingDirectory(parent, "Add a model folder (model.toml or an nnU-Net v2 results "
                                                        "folder)", os.path.expanduser("~"))
