"""``radview-cli ai``: list the AI models, or run one on a series in this process (research use, not a diagnosis).

``ai run`` writes ``labels.nii.gz`` (on the series' grid), ``labels.json`` (id -> name) and
``findings.json`` (provenance, detections, messages) into the output folder, each atomically.
torch is imported only when a model runs.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys

from viewer.cli import ai_dataset, ai_eval, ai_train
from viewer.cli.common import UserError, require_exists

_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def _device(text: str) -> str:
    if not _DEVICE.match(text.strip().lower()):
        raise argparse.ArgumentTypeError(f"unknown device {text!r}: use auto, cpu, cuda, cuda:N or mps")
    return text.strip().lower()


def add_parser(sub) -> None:
    """Register ``ai models``, ``ai run``, ``ai eval``, ``ai train`` and ``ai dataset`` on the top-level subparsers."""
    pa = sub.add_parser("ai", help="list the AI models, or run one on a series (research use, not a diagnosis)")
    asub = pa.add_subparsers(dest="ai_command", required=True)
    pm = asub.add_parser("models", help="list the available models")
    pm.add_argument("--json", action="store_true", help="machine-readable output (the manifests)")
    pm.set_defaults(func=cmd_models)
    pr = asub.add_parser("run", help="run a model; write labels.nii.gz, labels.json and findings.json")
    pr.add_argument("path", help="a DICOM folder or an image file")
    pr.add_argument("--series", help="series key or SeriesInstanceUID (default: the largest volume)")
    which = pr.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", help="model id (see 'radview-cli ai models')")
    which.add_argument("--model-dir", help="a model folder: model.toml with TorchScript/safetensors/ONNX weights, "
                                           "or an nnU-Net v2 results folder")
    pr.add_argument("--out", required=True, help="output folder")
    pr.add_argument("--device", type=_device, default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    pr.add_argument("--allow-torchscript", action="store_true",
                    help="let this model's TorchScript weights run: they contain code that runs with your "
                         "permissions (only for models you trust)")
    pr.add_argument("--allow-download", action="store_true",
                    help="let a model whose weights are not on this computer (a TotalSegmentator task, a "
                         "TorchXRayVision model) have its package download them from its servers")
    pr.set_defaults(func=cmd_run)
    ai_eval.add_parser(asub)  # ai eval
    ai_train.add_parser(asub, _device)  # ai train
    ai_dataset.add_parser(asub)  # ai dataset --from-reviewed


def cmd_models(args) -> int:
    from ai.registry import default_registry

    registry = default_registry()
    for problem in registry.problems:
        print(f"warning: {problem}", file=sys.stderr)
    models = registry.models()
    if args.json:
        json.dump([m.as_dict() for m in models], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    rows = [("ID", "NAME", "VERSION", "MODALITY", "METHOD")]
    rows += [(m.id, m.name, m.version, m.modality, m.method) for m in models]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)) + "  " + r[4])
    return 0


class _Progress:
    """``progress(fraction, message)`` on stderr: a tqdm bar on a terminal; otherwise a plain line per 10 %."""

    def __init__(self, label: str, stream=None):
        self.label = label
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._last_decile = -1
        self._bar = None

    def __call__(self, fraction: float, message: str) -> None:
        fraction = min(max(float(fraction), 0.0), 1.0)
        if self.tty:
            if self._bar is None:
                from tqdm import tqdm

                self._bar = tqdm(total=100, desc=self.label, file=self.stream, mininterval=0.1, leave=True,
                                 bar_format="{desc} [{bar:30}] {percentage:3.0f}%{postfix}")
            self._bar.set_postfix_str(message[:30], refresh=False)
            self._bar.update(100 * fraction - self._bar.n)
        else:
            decile = int(fraction * 10)
            if decile == self._last_decile:
                return
            self._last_decile = decile
            self.stream.write(f"{self.label}: {fraction:.0%} {message}\n")
            self.stream.flush()

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _load_volume(args):
    from viewer.io.image_io import ImageFileError
    from viewer.io.series_loader import LoadError, load_path

    try:
        volume = load_path(args.path, args.series, progress=None)
    except (KeyError, LoadError, ImageFileError) as exc:
        raise UserError(exc.args[0]) from exc
    if volume.is_color:
        raise UserError("colour images cannot be analysed; pick a grayscale series")
    return volume


def cmd_run(args) -> int:
    from ai import code_consent
    from ai.api import NOT_A_DIAGNOSIS, Cancelled, InferenceRequest, ModelError
    from ai.registry import ManifestError, Registry, default_registry

    try:
        if args.model_dir:
            registry = Registry(extra_dirs=[], builtin=False)
            manifest = registry.add_model_folder(args.model_dir)
        else:
            registry = default_registry()
            manifest = registry.get(args.model)
    except ManifestError as exc:
        raise UserError(f"{args.model_dir}: {exc}" if str(args.model_dir) not in str(exc) else str(exc)) from exc
    except ModelError as exc:
        raise UserError(str(exc)) from exc
    require_exists(args.path)
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UserError(f"--out {args.out}: not a folder")
    allowed = {manifest.folder} if args.allow_torchscript and manifest.folder else set()  # TorchScript: code
    if not code_consent.allowed(manifest, allowed):
        raise UserError(code_consent.refusal(manifest))
    volume = _load_volume(args)
    request = InferenceRequest(array=volume.array, grid=volume.geometry, model_id=manifest.id, device=args.device,
                               modality=volume.modality, series_uid=str(volume.meta.get("series_uid", "")),
                               series_description=str(volume.meta.get("description", "")),
                               allow_code_in=frozenset(allowed),
                               options={"allow_download": True} if args.allow_download else {})
    from ai.engine import Engine

    bar = _Progress(manifest.name)
    try:
        result = Engine(registry).run(request, progress=bar)
    except (ModelError, Cancelled) as exc:
        raise UserError(str(exc)) from exc
    finally:
        bar.finish()
    written = _write_outputs(args.out, volume, result, args.path, NOT_A_DIAGNOSIS)
    for message in result.messages:
        print(f"note: {message}", file=sys.stderr)
    print(f"wrote {', '.join(written)} to {args.out}: {len(result.detections)} detection(s); "
          f"{result.provenance.summary()}")
    print(NOT_A_DIAGNOSIS)
    return 0


def _write_outputs(out: str, volume, result, source: str, note: str) -> list[str]:
    from viewer.export.json_file import write_json
    from viewer.io.image_io import ImageFileError, write_image
    from viewer.io.volume import LabelMap

    written = []
    try:
        os.makedirs(out, exist_ok=True)
        if result.labels is not None:
            names = dict(result.label_names)
            write_image(LabelMap(result.labels, volume.geometry, names), os.path.join(out, "labels.nii.gz"))
            write_json(os.path.join(out, "labels.json"), {str(k): v for k, v in sorted(names.items())})
            written += ["labels.nii.gz", "labels.json"]
        from viewer.logic.batch_outputs import findings_document

        findings = findings_document(volume, result, source, note)  # the batch's findings.json, the same shape
        write_json(os.path.join(out, "findings.json"), findings)
    except (ImageFileError, RuntimeError, OSError) as exc:
        raise UserError(f"cannot write to {out}: {exc}") from exc
    return written + ["findings.json"]
