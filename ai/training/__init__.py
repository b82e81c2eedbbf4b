"""Training radview's own 3D U-Net from a folder of labelled cases (``radview-cli ai train``).

One module per job: :mod:`~ai.training.dataset` (the cases and their checks; no torch), :mod:`~ai.training.split`
(training and validation by patient; no torch), :mod:`~ai.training.settings` (what a run is asked to do; no torch),
:mod:`~ai.training.plan` (labels, grid, patch, network), :mod:`~ai.training.prepared` (a case on the model's
grid), :mod:`~ai.training.patches` (label-balanced patch centres), :mod:`~ai.training.augment` (rotation,
scaling, intensity, mirroring that cannot swap left and right), :mod:`~ai.training.loss` (Dice + cross-entropy),
:mod:`~ai.training.validation` (sliding-window Dice on the validation cases), :mod:`~ai.training.checkpoint`
(atomic checkpoints a killed run resumes from), :mod:`~ai.training.report` (curves and per-case metrics),
:mod:`~ai.training.model_folder` (the ``model.toml`` + safetensors folder the registry lists) and
:mod:`~ai.training.trainer` (the loop). torch is imported only by the modules that need it.
"""
