"""The training loop: radview's 3D U-Net (:class:`ai.runners.architectures.UNet3D`) from a dataset to a model folder.

Order of work: open and check the dataset (:mod:`ai.training.dataset`), resolve the plan (labels, model grid,
patch, network; an ``--init`` model folder lends its own), look for a checkpoint of the same run in the output
folder, read and prepare every case on the model grid (:mod:`ai.training.prepared`), then train: patches drawn
with label balance (:mod:`ai.training.patches`), augmented (:mod:`ai.training.augment`), Dice + cross-entropy
(:mod:`ai.training.loss`), AdamW with a polynomial learning-rate decay over the budget, float16 autocast and a
GradScaler on CUDA only. After every epoch the validation cases are segmented (:mod:`ai.training.validation`);
the best network by mean validation Dice is kept, and training stops early after ``patience`` epochs without a
better one. A checkpoint is written every ``checkpoint_every`` steps and at every epoch's end
(:mod:`ai.training.checkpoint`): a killed run started again with the same data and parameters goes on from
there. At the end the best network becomes a model folder (:mod:`ai.training.model_folder`) with its report
(:mod:`ai.training.report`). The plan (labels, grid, patch, network, normalisation) is :mod:`ai.training.plan`'s.
"""
from __future__ import annotations

import math
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Optional

import torch

from ai.api import Cancelled, ModelError
from ai.training import checkpoint as ckpt
from ai.training.augment import Augmentation, extract, mirror_axes
from ai.training.dataset import Dataset, DatasetError, label_geometry, load_case, open_dataset
from ai.training.loss import dice_ce_loss
from ai.training.model_folder import trained_manifest, write_model_folder
from ai.training.patches import PatchSampler
from ai.training.plan import ORIENTATION, Plan, build_network, make_plan, normalization, silence_unused
from ai.training.prepared import PreparedCase, prepare_case
from ai.training.report import write_report
from ai.training.settings import TrainingError, TrainSettings, run_key
from ai.training.validation import mean_dice, validate

MIN_IMPROVEMENT = 1e-4

ProgressFn = Callable[[float, str], None]


@dataclass
class TrainOutcome:
    out: str
    model_id: str
    run_id: str
    steps: int
    epochs: int
    elapsed_s: float
    stopped: str  # "time budget" | "epochs" | "early stopping"
    best_dice: dict
    untrained_dice: dict
    resumed_from_step: int
    samples_per_s: float
    files: list[str] = field(default_factory=list)
    history: dict = field(default_factory=dict)


# --- the run ----------------------------------------------------------------------------------------------------
class _Run:
    """The state of one training run (what a checkpoint holds)."""

    def __init__(self, settings: TrainSettings, plan: Plan, key: str, net, device: torch.device):
        self.settings, self.plan, self.key, self.net, self.device = settings, plan, key, net, device
        self.mixed = device.type == "cuda"
        self.optimizer = torch.optim.AdamW(net.parameters(), lr=settings.learning_rate, weight_decay=1e-5)
        self.scaler = torch.amp.GradScaler("cuda") if self.mixed else None
        self.generator = torch.Generator().manual_seed(settings.seed)
        self.step = 0
        self.epoch = 0
        self.elapsed_s = 0.0
        self.train_s = 0.0
        self.history: dict = {"loss": [], "validation": []}
        self.best_dice = -1.0
        self.best_state: dict = {}
        self.best_epoch = 0
        self.stale = 0
        self.run_id = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ-") + secrets.token_hex(3)
        self.resumed_from = 0

    def state(self) -> dict:
        return {"key": self.key, "run_id": self.run_id, "step": self.step, "epoch": self.epoch,
                "elapsed_s": self.elapsed_s, "train_s": self.train_s, "model": self.net.state_dict(),
                "best_model": self.best_state, "best_dice": self.best_dice, "best_epoch": self.best_epoch,
                "stale": self.stale, "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler is not None else {},
                "generator": self.generator.get_state(), "history": self.history}

    def restore(self, state: dict) -> None:
        self.net.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.generator.set_state(state["generator"])
        for name in ("run_id", "step", "epoch", "elapsed_s", "train_s", "history", "best_dice", "best_epoch",
                     "stale"):
            setattr(self, name, state[name])
        self.best_state = dict(state["best_model"])
        self.resumed_from = self.step

    def progress_fraction(self) -> float:
        s = self.settings
        if s.epochs is not None:
            return min(self.step / (s.epochs * s.steps_per_epoch), 1.0)
        return min(self.elapsed_s / s.budget_s, 1.0)


def _lr(run: _Run) -> float:
    return run.settings.learning_rate * (1.0 - min(run.progress_fraction(), 0.999)) ** 0.9


def _batch(run: _Run, sampler: PatchSampler, cases: list[PreparedCase], aug: Optional[Augmentation]):
    images, labels = [], []
    for _ in range(run.settings.batch_size):
        index, centre = sampler.draw()
        img, lab = extract(cases[index], centre, run.plan.patch_size, aug, run.generator)
        images.append(img)
        labels.append(lab)
    x = torch.stack(images).to(run.device)
    if run.device.type == "cpu":
        x = x.contiguous(memory_format=torch.channels_last_3d)
    return x, torch.stack(labels).to(run.device)


def _train_step(run: _Run, x: torch.Tensor, y: torch.Tensor) -> float:
    for group in run.optimizer.param_groups:
        group["lr"] = _lr(run)
    run.optimizer.zero_grad(set_to_none=True)
    if run.mixed:
        with torch.autocast("cuda", dtype=torch.float16):
            logits = run.net(x)
        loss = dice_ce_loss(logits, y, run.plan.label_ids)
        run.scaler.scale(loss).backward()
        run.scaler.unscale_(run.optimizer)
        torch.nn.utils.clip_grad_norm_(run.net.parameters(), 12.0)
        run.scaler.step(run.optimizer)
        run.scaler.update()
    else:
        loss = dice_ce_loss(run.net(x), y, run.plan.label_ids)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(run.net.parameters(), 12.0)
        run.optimizer.step()
    silence_unused(run.net, run.plan.label_ids)
    return float(loss.detach())


def _validate(run: _Run, val_cases, partial: bool = False) -> dict:
    metrics = validate(run.net, val_cases, run.plan.patch_size, run.plan.labels, run.plan.label_ids, run.device,
                       run.mixed)
    dice = mean_dice(metrics)
    record = {"epoch": run.epoch, "step": run.step, "elapsed_s": round(run.elapsed_s, 2), "dice": dice,
              "partial": partial}
    run.history["validation"].append(record)
    if dice["mean"] > run.best_dice + MIN_IMPROVEMENT:
        run.best_dice = dice["mean"]
        run.best_state = {k: v.detach().clone().cpu() for k, v in run.net.state_dict().items()}
        run.best_epoch = run.epoch
        run.stale = 0
    elif run.step > 0 and not partial:
        run.stale += 1
    return record


def _stop_reason(run: _Run) -> Optional[str]:
    s = run.settings
    if s.epochs is not None and run.epoch >= s.epochs:
        return "epochs"
    if s.budget_s is not None and run.elapsed_s >= s.budget_s:
        return "time budget"
    if s.patience and run.stale >= s.patience:
        return "early stopping"
    return None


def _prepare_cases(dataset: Dataset, plan: Plan, seed: int, report: ProgressFn) -> dict[str, PreparedCase]:
    """Read each case, check it, and put it on the model grid (one full-size case in memory at a time)."""
    norm = normalization(plan.normalization)
    gen = torch.Generator().manual_seed(seed + 1)
    prepared = {}
    for i, case in enumerate(dataset.cases):
        report(0.02 + 0.08 * i / len(dataset.cases), f"reading case {case.id}")
        d = load_case(dataset, case)
        prepared[case.id] = prepare_case(case.id, d.image, d.labels, d.geometry, plan.spacing_mm, ORIENTATION, norm,
                                         max(plan.label_ids) + 1, gen)
    return prepared


def train(settings: TrainSettings, progress: Optional[ProgressFn] = None, cancel=None,
          on_epoch: Optional[Callable[[dict], None]] = None, log: Optional[Callable[[str], None]] = None
          ) -> TrainOutcome:
    """Train; raise TrainingError or DatasetError (the reason, for the user) or Cancelled (checkpoint written).

    ``settings.threads`` sets torch's CPU threads for the run only; the caller's setting comes back afterwards.
    """
    threads = torch.get_num_threads()
    if settings.threads:
        torch.set_num_threads(settings.threads)
    try:
        return _train(settings, progress, cancel, on_epoch, log)
    finally:
        torch.set_num_threads(threads)


def _train(settings: TrainSettings, progress, cancel, on_epoch, log) -> TrainOutcome:
    report = progress or (lambda f, m: None)
    say = log or (lambda m: None)
    report(0.0, "checking the dataset")
    dataset = open_dataset(settings.data, settings.labels or None)
    say(f"dataset {dataset.root}: {dataset.describe()}; data {dataset.data_hash[:23]}")
    plan = make_plan(settings, dataset, [label_geometry(c) for c in dataset.cases])
    key = run_key(dataset.data_hash, plan.parameters(settings), plan.init_hash)
    try:
        state = None if settings.resume == "never" else ckpt.load_checkpoint(settings.out)
    except ValueError as exc:
        raise TrainingError(f"{exc}; use --restart to start over") from None
    if state is not None and state["key"] != key:
        raise TrainingError(f"{settings.out} holds a checkpoint of another training (other data or parameters): "
                            "use --restart to start over, or another --out")
    if state is None and settings.resume == "always":
        raise TrainingError(f"--resume: {settings.out} holds no training checkpoint")
    ckpt.remove_leftovers(settings.out)
    from ai.runners.device import choose_device, describe_device

    try:
        device = choose_device(settings.device)
    except ModelError as exc:
        raise TrainingError(str(exc)) from None
    prepared = _prepare_cases(dataset, plan, settings.seed, report)
    train_cases = [prepared[c] for c in dataset.training]
    val_cases = [prepared[c] for c in dataset.validation]
    net, notes = build_network(plan, settings.seed)
    for note in notes:
        say(note)
    net = net.to(device)
    if device.type == "cpu":
        net = net.to(memory_format=torch.channels_last_3d)
    run = _Run(settings, plan, key, net, device)
    if state is not None:
        run.restore(state)
        say(f"resuming run {run.run_id} at step {run.step} (epoch {run.epoch}, {run.elapsed_s:.0f} s trained)")
    say(f"training on {describe_device(device)}: {len(train_cases)} training / {len(val_cases)} validation cases, "
        f"labels {', '.join(plan.labels)}, grid {' × '.join(f'{s:g}' for s in plan.spacing_mm)} mm, patch "
        f"{' × '.join(map(str, plan.patch_size))}, U-Net {list(plan.features)}, batch {settings.batch_size}")
    aug = None
    if settings.augment:
        aug = Augmentation(mirror=mirror_axes(dataset.has_laterality()), p_mirror=settings.mirror)
    sampler = PatchSampler(train_cases, plan.patch_size, settings.foreground_fraction, run.generator)
    if not run.history["validation"]:
        record = _validate(run, val_cases)
        say(f"untrained: validation Dice {_dice_text(record['dice'])}")
    stopped = _loop(run, sampler, train_cases, val_cases, aug, report, cancel, on_epoch, say)
    return _finish(run, dataset, plan, val_cases, stopped, report, say)


def _dice_text(d: dict) -> str:
    return ", ".join(f"{k} {v:.3f}" for k, v in d.items())


def _loop(run, sampler, train_cases, val_cases, aug, report, cancel, on_epoch, say) -> str:
    s = run.settings
    clock = time.perf_counter()
    last_validated = run.history["validation"][-1]["step"] if run.history["validation"] else -1

    def tick() -> None:
        nonlocal clock
        now = time.perf_counter()
        run.elapsed_s += now - clock
        clock = now

    while True:
        tick()
        stopped = _stop_reason(run)
        if stopped:
            break
        if cancel is not None and cancel.is_set():
            ckpt.save_checkpoint(s.out, run.state())
            raise Cancelled(f"training cancelled at step {run.step}; the checkpoint resumes it")
        t0 = time.perf_counter()
        x, y = _batch(run, sampler, train_cases, aug)
        loss = _train_step(run, x, y)
        run.train_s += time.perf_counter() - t0
        if not math.isfinite(loss):
            raise TrainingError(f"the loss is {loss} at step {run.step + 1}: lower the learning rate")
        run.step += 1
        run.history["loss"].append([run.step, round(loss, 5)])
        tick()
        report(0.1 + 0.85 * run.progress_fraction(), f"step {run.step}, loss {loss:.3f}")
        if run.step % s.steps_per_epoch == 0:
            run.epoch += 1
            record = _validate(run, val_cases)
            last_validated = run.step
            tick()
            ckpt.save_checkpoint(s.out, run.state())
            say(f"epoch {run.epoch} (step {run.step}, {run.elapsed_s:.0f} s): loss {loss:.3f}, validation Dice "
                f"{_dice_text(record['dice'])}")
            if on_epoch is not None:
                on_epoch(record)
        elif run.step % s.checkpoint_every == 0:
            ckpt.save_checkpoint(s.out, run.state())
    if last_validated != run.step:  # the budget ran out within an epoch: its last steps count too
        record = _validate(run, val_cases, partial=True)
        say(f"end (step {run.step}): validation Dice {_dice_text(record['dice'])}")
    ckpt.save_checkpoint(s.out, run.state())
    return stopped


def _finish(run: _Run, dataset: Dataset, plan: Plan, val_cases, stopped: str, report, say) -> TrainOutcome:
    s = run.settings
    report(0.96, "writing the model folder")
    best = dict(run.best_state)
    run.net.load_state_dict(best)
    metrics = validate(run.net, val_cases, plan.patch_size, plan.labels, plan.label_ids, run.device, run.mixed)
    best_dice = mean_dice(metrics)
    model_id = s.resolved_id()
    text = trained_manifest(model_id, s.model_name, run.run_id, dataset, plan, best_dice["mean"], run.step)
    files = write_model_folder(s.out, best, text)
    samples_per_s = s.batch_size * run.step / run.train_s if run.train_s > 0 else 0.0
    record = {"run_id": run.run_id, "model_id": model_id, "data": dataset.root, "data_hash": dataset.data_hash,
              "training_cases": list(dataset.training), "validation_cases": list(dataset.validation),
              "parameters": plan.parameters(s), "init": plan.init_id, "init_hash": plan.init_hash,
              "device": str(run.device), "mixed_precision": run.mixed, "steps": run.step, "epochs": run.epoch,
              "elapsed_s": round(run.elapsed_s, 2), "train_s": round(run.train_s, 2),
              "samples_per_s": round(samples_per_s, 3), "stopped": stopped, "best_epoch": run.best_epoch,
              "best_validation_dice": best_dice, "resumed_from_step": run.resumed_from,
              "budget": {"minutes": s.minutes, "epochs": s.epochs, "patience": s.patience}}
    files += write_report(s.out, run.history, metrics, record)
    say(f"stopped ({stopped}) after {run.step} steps, {run.elapsed_s:.0f} s; best epoch {run.best_epoch}: "
        f"validation Dice {_dice_text(best_dice)}")
    report(1.0, "done")
    untrained = run.history["validation"][0]["dice"] if run.history["validation"] else {}
    return TrainOutcome(out=s.out, model_id=model_id, run_id=run.run_id, steps=run.step, epochs=run.epoch,
                        elapsed_s=run.elapsed_s, stopped=stopped, best_dice=best_dice, untrained_dice=untrained,
                        resumed_from_step=run.resumed_from, samples_per_s=samples_per_s, files=files,
                        history=run.history)


__all__ = ["TrainSettings", "TrainOutcome", "TrainingError", "DatasetError", "Cancelled", "train"]
