"""TotalSegmentator tasks as radview models (no torch, no nnunetv2, no totalsegmentator imported here).

TotalSegmentator (Wasserthal et al., Radiology: AI 2023; github.com/wasserth/TotalSegmentator) ships trained
nnU-Net v2 models. radview runs a task's model itself, through :class:`ai.runners.nnunet.TotalSegModel`
(nnunetv2's predictor, weights loaded safely), with TotalSegmentator's own input handling for that task:

* the image is turned to nibabel's closest canonical orientation (RAS), as ``nib.as_closest_canonical``
  (TotalSegmentator's ``as_closest_canonical``), and the labels are turned back exactly;
* tasks run at a fixed resolution are resampled as TotalSegmentator's ``change_spacing`` does (scipy
  ``ndimage.zoom``, cubic spline, truncated to int32, to an isotropic spacing), predicted there, and the labels
  brought back with nearest-neighbour zoom to the image's grid;
* the "body" tasks get TotalSegmentator's clean-up at that resolution: the largest connected trunk only, and
  extremity blobs under 50 ml removed.

Where the weights are looked for (a task's nnU-Net folder ``Dataset<id>_*/<Trainer>__nnUNetPlans__3d_fullres``):
``$RADVIEW_TOTALSEG_WEIGHTS`` (a folder laid out like TotalSegmentator's weights folder, or TotalSegmentator's
home holding ``nnunet/results``), then TotalSegmentator's own weights folder: ``$TOTALSEG_WEIGHTS_PATH``, else
``$TOTALSEG_HOME_DIR/nnunet/results``, else ``~/.totalsegmentator/nnunet/results`` (``/tmp/.totalsegmentator``
when the home folder is ``/``), as TotalSegmentator's ``config.get_weights_dir`` finds them.

Which tasks are listed: a task whose weights are found is listed (and runs offline). When the
``totalsegmentator`` package is installed, the other tasks are listed too, marked ``needs_download``: running one
is refused with a message unless the request's options carry ``allow_download = True`` (the user agreed in the
Run AI dialog); then TotalSegmentator's own ``totalsegmentator.libs.download_pretrained_weights(task_id)``
fetches them. Without the package and without weights, no TotalSegmentator task is listed.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ai import weights_download
from ai.api import ModelError
from ai.manifest import ManifestError, ModelManifest, parse_manifest
from ai.nnunet_folder import is_nnunet_folder, manifest_from_folder

ENV_WEIGHTS = "RADVIEW_TOTALSEG_WEIGHTS"
RUNNER = "totalseg"  # ai.runners.nnunet.TotalSegModel (see ai.runner_names)
CITATION = "Wasserthal et al., TotalSegmentator, Radiology: Artificial Intelligence 2023"

# TotalSegmentator v2 class maps (totalsegmentator/map_to_binary.py, class_map["total"], ["body"]).
TOTAL_V2 = (
    "spleen kidney_right kidney_left gallbladder liver stomach pancreas adrenal_gland_right adrenal_gland_left "
    "lung_upper_lobe_left lung_lower_lobe_left lung_upper_lobe_right lung_middle_lobe_right lung_lower_lobe_right "
    "esophagus trachea thyroid_gland small_bowel duodenum colon urinary_bladder prostate kidney_cyst_left "
    "kidney_cyst_right sacrum vertebrae_S1 vertebrae_L5 vertebrae_L4 vertebrae_L3 vertebrae_L2 vertebrae_L1 "
    "vertebrae_T12 vertebrae_T11 vertebrae_T10 vertebrae_T9 vertebrae_T8 vertebrae_T7 vertebrae_T6 vertebrae_T5 "
    "vertebrae_T4 vertebrae_T3 vertebrae_T2 vertebrae_T1 vertebrae_C7 vertebrae_C6 vertebrae_C5 vertebrae_C4 "
    "vertebrae_C3 vertebrae_C2 vertebrae_C1 heart aorta pulmonary_vein brachiocephalic_trunk "
    "subclavian_artery_right subclavian_artery_left common_carotid_artery_right common_carotid_artery_left "
    "brachiocephalic_vein_left brachiocephalic_vein_right atrial_appendage_left superior_vena_cava "
    "inferior_vena_cava portal_vein_and_splenic_vein iliac_artery_left iliac_artery_right iliac_vena_left "
    "iliac_vena_right humerus_left humerus_right scapula_left scapula_right clavicula_left clavicula_right "
    "femur_left femur_right hip_left hip_right spinal_cord gluteus_maximus_left gluteus_maximus_right "
    "gluteus_medius_left gluteus_medius_right gluteus_minimus_left gluteus_minimus_right autochthon_left "
    "autochthon_right iliopsoas_left iliopsoas_right brain skull "
    + " ".join(f"rib_left_{i}" for i in range(1, 13)) + " " + " ".join(f"rib_right_{i}" for i in range(1, 13))
    + " sternum costal_cartilages").split()
assert len(TOTAL_V2) == 117
BODY = ("body_trunc", "body_extremities")


@dataclass(frozen=True)
class Task:
    """One TotalSegmentator model, as TotalSegmentator's python_api/libs define it."""

    name: str  # TotalSegmentator's task name (with its --fast/--fastest flavour)
    task_id: int
    dataset: str  # the weights folder download_pretrained_weights(task_id) unpacks
    trainer: str
    resample_mm: Optional[float]  # TotalSegmentator resamples to this isotropic spacing first (None: it does not)
    labels: tuple[str, ...]
    title: str
    postprocess: str = ""  # "body": largest trunk, no small extremity blobs
    plans: str = "nnUNetPlans"
    configuration: str = "3d_fullres"
    step_size: float = 0.5
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def model_id(self) -> str:
        return "totalseg-" + self.name.replace("_", "-")

    @property
    def folder_name(self) -> str:
        return f"{self.trainer}__{self.plans}__{self.configuration}"


TASKS = (
    Task("total_fast", 297, "Dataset297_TotalSegmentator_total_3mm_1559subj", "nnUNetTrainer_4000epochs_NoMirroring",
         3.0, TOTAL_V2, "TotalSegmentator total, fast (3 mm)"),
    Task("total_fastest", 298, "Dataset298_TotalSegmentator_total_6mm_1559subj", "nnUNetTrainer_4000epochs_NoMirroring",
         6.0, TOTAL_V2, "TotalSegmentator total, fastest (6 mm)"),
    Task("body", 299, "Dataset299_body_1559subj", "nnUNetTrainer", 1.5, BODY, "TotalSegmentator body (1.5 mm)",
         postprocess="body"),
    Task("body_fast", 300, "Dataset300_body_6mm_1559subj", "nnUNetTrainer", 6.0, BODY,
         "TotalSegmentator body, fast (6 mm)", postprocess="body"),
)


def task(name: str) -> Task:
    for t in TASKS:
        if t.name == name:
            return t
    raise ModelError(f"unknown TotalSegmentator task '{name}' (known: {', '.join(t.name for t in TASKS)})")


# --- where the weights are ------------------------------------------------------------------------------------
def package_installed() -> bool:
    return weights_download.package_installed("totalsegmentator")


def totalseg_home() -> Path:
    """TotalSegmentator's config.get_totalseg_dir()."""
    if "TOTALSEG_HOME_DIR" in os.environ:
        return Path(os.environ["TOTALSEG_HOME_DIR"])
    home = Path("/tmp") if str(Path.home()) == "/" else Path.home()
    return home / ".totalsegmentator"


def totalseg_weights_dir() -> Path:
    """TotalSegmentator's config.get_weights_dir(): where its download puts the weights."""
    if "TOTALSEG_WEIGHTS_PATH" in os.environ:
        return Path(os.environ["TOTALSEG_WEIGHTS_PATH"])
    return totalseg_home() / "nnunet" / "results"


def weights_dirs() -> list[Path]:
    """Folders that may hold TotalSegmentator weights, the user's first."""
    out: list[Path] = []
    user = os.environ.get(ENV_WEIGHTS, "").strip()
    if user:
        for d in (Path(user), Path(user) / "nnunet" / "results"):
            out.append(d)
    out.append(totalseg_weights_dir())
    seen, unique = set(), []
    for d in out:
        key = os.path.normcase(os.path.abspath(d))
        if key not in seen:
            seen.add(key)
            unique.append(d)
    return unique


def find_task_folder(t: Task) -> Optional[Path]:
    """The task's nnU-Net results folder, if its weights are on this computer."""
    for root in weights_dirs():
        try:
            candidates = sorted(root.glob(f"Dataset{t.task_id:03d}_*"), key=lambda p: (p.name != t.dataset, p.name))
        except OSError:
            continue
        for dataset in candidates:
            folder = dataset / t.folder_name
            if is_nnunet_folder(folder):
                return folder
    return None


def download_note(t: Task) -> str:
    return (f"The weights of TotalSegmentator's '{t.name}' model (nnU-Net task {t.task_id}) are not on this "
            f"computer. TotalSegmentator downloads them from its servers (its GitHub releases) into "
            f"{totalseg_weights_dir()}; radview does not know their size in advance.")


def download_weights(t: Task) -> Path:
    """TotalSegmentator's own download (totalsegmentator.libs.download_pretrained_weights); the task's folder."""
    try:
        from totalsegmentator.libs import download_pretrained_weights
    except ImportError as exc:
        raise ModelError(f"the TotalSegmentator weights of '{t.name}' are not on this computer, and the "
                         f"totalsegmentator package that downloads them is not installed ({exc})") from None
    try:
        download_pretrained_weights(t.task_id)
    except Exception as exc:  # noqa: BLE001 - network, disk, or TotalSegmentator errors: one line for the user
        raise ModelError(f"TotalSegmentator could not download the weights of '{t.name}': "
                         f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}") from None
    folder = find_task_folder(t)
    if folder is None:
        raise ModelError(f"TotalSegmentator's download of '{t.name}' finished, but no {t.dataset}/{t.folder_name} "
                         f"folder with weights is in {totalseg_weights_dir()}")
    return folder


# --- manifests -------------------------------------------------------------------------------------------------
def _parameters(t: Task) -> dict:
    return {"task": t.name, "task_id": t.task_id, "folds": [0], "use_mirroring": False,
            "tile_step_size": t.step_size, "checkpoint": "checkpoint_final.pth",
            "resample_mm": t.resample_mm or 0.0, "orientation": "RAS (nibabel closest canonical)",
            "postprocess": t.postprocess}


def _description(t: Task, where: str) -> str:
    spacing = f"resampled to {t.resample_mm:g} mm" if t.resample_mm else "at the image's own spacing"
    return (f"TotalSegmentator task '{t.name}' (nnU-Net task {t.task_id}, {t.trainer}), run by radview with "
            f"TotalSegmentator's input handling: closest canonical orientation, {spacing}"
            f"{', largest trunk and no small extremity blobs' if t.postprocess == 'body' else ''}. "
            f"Cite: {CITATION}. {where}")


def manifest_for(t: Task, folder: Optional[Path]) -> ModelManifest:
    """The task's manifest: from its weights folder, or (weights absent) one that needs a download."""
    labels = {i + 1: name for i, name in enumerate(t.labels)}
    if folder is not None:
        return manifest_from_folder(folder, model_id=t.model_id, name=t.title, runner=RUNNER,
                                    description=_description(t, f"Weights: {folder}"),
                                    parameters={**_parameters(t), "needs_download": False})
    data = {
        "id": t.model_id, "name": t.title, "version": "weights not downloaded", "modality": "CT",
        "method": "learned network (nnU-Net v2)", "runner": RUNNER,
        "description": _description(t, "Its weights are not on this computer yet."),
        "outputs": ["labels"], "labels": {str(k): v for k, v in labels.items()},
        "input": {"overlap": 1.0 - t.step_size,
                  **({"spacing_mm": [t.resample_mm] * 3} if t.resample_mm else {})},
        "device": {"supports": ["cuda", "mps", "cpu"], "mixed_precision": True},
        "parameters": {**_parameters(t), "needs_download": True, "download_note": download_note(t),
                       "download_by": "TotalSegmentator"},
    }
    return parse_manifest(data, path="")


def totalseg_manifests(problems: Optional[list] = None) -> list[ModelManifest]:
    """Manifests of the TotalSegmentator tasks that can run here (see the module doc for which are listed)."""
    installed = package_installed()
    out = []
    for t in TASKS:
        folder = find_task_folder(t)
        if folder is None and not installed:
            continue
        try:
            out.append(manifest_for(t, folder))
        except ManifestError as exc:
            if problems is not None:
                problems.append(f"{folder or t.name}: skipped: {exc}")
    return out
