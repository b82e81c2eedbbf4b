"""The AI models, described as data: one TOML manifest per model (no torch at import time).

Manifests come from ``ai/manifests/`` and from every folder listed in the environment
variable ``RADVIEW_MODELS_DIR`` (``os.pathsep``-separated; each folder's ``*.toml`` and
``*/model.toml`` one level down). A broken manifest is skipped and explained in
:attr:`Registry.problems`; it never breaks the listing. The runner class named in a
manifest is imported only when the model runs.

Security rule: model folders are untrusted input. A manifest names a registered runner
(:mod:`ai.runner_names`: radview's own, or an installed package's entry point), never a
module to import, and the files it names stay inside its folder (:mod:`ai.model_paths`);
a folder that breaks either rule is skipped with its reason before anything is imported or opened.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from ai import nnunet_folder, totalseg, xrv_models
from ai.api import ModelError
from ai.manifest import ManifestError, ModelManifest, load_manifest, parse_manifest  # noqa: F401 - re-exported
from ai.runner_names import UnknownRunner, load_runner, runner_name, target

BUILTIN_DIR = Path(__file__).resolve().parent / "manifests"
ENV_VAR = "RADVIEW_MODELS_DIR"


@dataclass(frozen=True)
class FolderReader:
    """A kind of model folder without a ``model.toml``: how to recognise one and read its manifest."""

    kind: str
    recognises: Callable[[Path], bool]
    read: Callable[[Path], ModelManifest]


#: The model folders the registry reads besides ``model.toml`` ones (the readers depend on
#: :mod:`ai.manifest`, never on this module).
FOLDER_READERS: tuple[FolderReader, ...] = (
    FolderReader("nnU-Net v2 results folder", nnunet_folder.is_nnunet_folder, nnunet_folder.manifest_from_folder),
)

#: Built-in models that are not manifest files: ``provider(problems) -> manifests``. TotalSegmentator tasks are
#: listed when their weights are here or the package is installed; TorchXRayVision's pretrained chest radiograph
#: models when the package is installed (:mod:`ai.xrv_models`).
BUILTIN_PROVIDERS: tuple[Callable[[list], list], ...] = (totalseg.totalseg_manifests, xrv_models.xrv_manifests)


def _reader_for(path: Path) -> Optional[FolderReader]:
    return next((r for r in FOLDER_READERS if r.recognises(path)), None)


def load_model_folder(path: str | os.PathLike) -> ModelManifest:
    """A user's model: a ``model.toml`` (or a folder holding one), or an nnU-Net v2 results folder."""
    p = Path(path)
    if p.is_file() and p.suffix == ".toml":
        return load_manifest(p)
    if not p.is_dir():
        raise ManifestError(f"{p}: no such model folder")
    if (p / "model.toml").is_file():
        return load_manifest(p / "model.toml")
    reader = _reader_for(p)
    if reader is not None:
        return reader.read(p)
    raise ManifestError(f"{p}: not a model folder (it has no model.toml and is not an nnU-Net v2 results folder "
                        "with dataset.json, plans.json and fold_N/checkpoint_final.pth)")


def manifest_files(folder: str | os.PathLike) -> list[Path]:
    """A folder's ``*.toml`` and ``*/model.toml``, sorted."""
    root = Path(folder)
    return sorted(root.glob("*.toml")) + sorted(root.glob("*/model.toml"))


def env_dirs() -> list[str]:
    return [d for d in os.environ.get(ENV_VAR, "").split(os.pathsep) if d.strip()]


class Registry:
    """The known models; ``extra_dirs`` default to ``$RADVIEW_MODELS_DIR``."""

    def __init__(self, extra_dirs: Optional[list[str | os.PathLike]] = None, builtin: bool = True):
        self.problems: list[str] = []
        self._models: dict[str, ModelManifest] = {}
        folders = ([BUILTIN_DIR] if builtin else []) + [Path(d) for d in (env_dirs() if extra_dirs is None
                                                                         else extra_dirs)]
        for folder in folders:
            if not folder.is_dir():
                self.problems.append(f"{folder}: model folder not found")
                continue
            for path in manifest_files(folder):
                self._add(path)
            if folder != BUILTIN_DIR:
                self._add_reader_folders(folder)
        if builtin:
            for provider in BUILTIN_PROVIDERS:
                for m in provider(self.problems):
                    self._models.setdefault(m.id, m)

    def _add_reader_folders(self, folder: Path) -> None:
        """The sub-folders (without a model.toml) that one of :data:`FOLDER_READERS` recognises."""
        for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not (p / "model.toml").exists()):
            if _reader_for(sub) is not None:
                self._add(sub)

    def add_model_folder(self, path: str | os.PathLike) -> ModelManifest:
        """Add one user model (see :func:`load_model_folder`); raise ManifestError if it is unusable."""
        m = load_model_folder(path)
        if m.id in self._models and self._models[m.id].path != m.path:
            raise ManifestError(f"{path}: model id '{m.id}' is already defined by {self._models[m.id].path}")
        self._models[m.id] = m
        return m

    def _add(self, path: Path) -> None:
        try:
            m = load_model_folder(path) if path.is_dir() else load_manifest(path)
        except ManifestError as exc:
            self.problems.append(f"{path}: skipped: {exc}")
            return
        if m.id in self._models:
            self.problems.append(f"{path}: skipped: model id '{m.id}' is already defined by {self._models[m.id].path}")
            return
        self._models[m.id] = m

    def models(self) -> list[ModelManifest]:
        """All models, sorted by name then id."""
        return sorted(self._models.values(), key=lambda m: (m.name.lower(), m.id))

    def ids(self) -> list[str]:
        return sorted(self._models)

    def get(self, model_id: str) -> ModelManifest:
        try:
            return self._models[model_id]
        except KeyError:
            known = ", ".join(self.ids()) or "none"
            raise ModelError(f"unknown model '{model_id}' (known models: {known})") from None

    def load_runner_class(self, manifest: ModelManifest) -> type:
        """Import the manifest's registered runner class (this is where torch gets imported).

        Only a name :mod:`ai.runner_names` knows is imported, also for a manifest built in code.
        """
        try:
            name = runner_name(manifest.runner)
        except UnknownRunner as exc:
            raise ModelError(f"{manifest.name}: {exc}") from None
        where = target(name)
        module_name = where.partition(":")[0]
        try:
            cls = load_runner(name)
        except UnknownRunner as exc:
            raise ModelError(f"{manifest.name}: {exc}") from None
        except ModuleNotFoundError as exc:
            if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
                raise ModelError(f"{manifest.name}: its code '{module_name}' is not installed") from exc
            raise ModelError(f"{manifest.name}: '{module_name}' needs the missing module '{exc.name}'") from exc
        except AttributeError as exc:
            raise ModelError(f"{manifest.name}: '{module_name}' has no runner class '{where.partition(':')[2]}'") \
                from exc
        except Exception as exc:
            raise ModelError(f"{manifest.name}: cannot import '{module_name}': {type(exc).__name__}: {exc}") from exc
        if not isinstance(cls, type):
            raise ModelError(f"{manifest.name}: '{where}' is not a runner class")
        return cls


@functools.lru_cache(maxsize=1)
def default_registry() -> Registry:
    """The registry of the built-in models and ``$RADVIEW_MODELS_DIR`` (read once per process)."""
    return Registry()
