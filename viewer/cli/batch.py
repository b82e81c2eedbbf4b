"""``radview-cli batch``: run a model over an archive (``batch run``) and measure the results (``batch eval``).

``batch run INPUT... --model ID --out DIR`` runs one job per selected series (``--select KEY=VALUE``: modality,
description regex, min_slices; by default the series of the model's modality) and writes, per series,
``DIR/<series key>/`` (labels.nii.gz + labels.json, seg.dcm, findings.json, sr.dcm, thumbnail.png) and one row
of ``DIR/results.csv``. A rerun skips finished jobs and retries failed ones; a kill loses only the jobs in
flight. ``--engine local`` (default) runs ``--workers`` processes here; ``--engine ray`` runs Ray actors on the
cluster at ``--address`` (or a local Ray instance).

PACS input, besides or instead of folders: ``--node NAME`` (or ``--aet AE@HOST:PORT`` / ``--dicomweb URL``, as
``radview-cli pacs`` takes them) with query options (``--patient-id``, ``--patient-name``, ``--study-date``,
``--modality``, ``--accession``, ``--study UID``). The node is queried at series level; in the planning step,
before any job runs, each selected series is retrieved (``--method get`` by default, ``move`` or ``wado``) into
``DIR/.input/<series_uid>/`` and its job runs on that folder. A series that fails to retrieve is a ``failed`` row
with the reason; a rerun does not retrieve a series whose cache is complete again (``viewer.logic.batch_pacs``).
The work lives in ``viewer.logic.batch_run``; this module checks the options and prints.

``batch eval --pred DIR --ref DIR --out DIR`` (or ``--pairs FILE.csv``): per case the metrics of ``ai eval``,
over the dataset the mean and median with 95 % bootstrap intervals (``viewer.logic.batch_eval``).

Exit status: 0 when every series ended ok or skipped, 1 when any failed (the rows say why), 2 for a user error.
"""
from __future__ import annotations

import os
import sys

from viewer.cli.common import UserError, require_exists

PACS_NOTE = ("PACS input: --node NAME (or --aet / --dicomweb) plus query options; in the planning step each selected "
             "series is retrieved into DIR/.input/<series_uid>/ (a rerun does not retrieve it again) and its job "
             "runs there; a series that fails to retrieve is a failed row with the reason")
PASSWORD_ENV = "RADVIEW_PACS_PASSWORD"  # as radview-cli pacs


def add_parser(sub) -> None:
    """Register ``batch run`` and ``batch eval`` on the top-level subparsers."""
    pb = sub.add_parser("batch", help="run a model over many series (resumable; local processes or Ray), and "
                                      "evaluate a batch against references")
    bsub = pb.add_subparsers(dest="batch_command", required=True)
    pr = bsub.add_parser("run", help="run a model on every selected series under the inputs",
                         description="One job per selected series; results in DIR/<series>/ and DIR/results.csv. "
                                     "A rerun skips finished jobs and retries failed ones. " + PACS_NOTE + ".")
    pr.add_argument("inputs", nargs="*", metavar="INPUT",
                    help="DICOM folders (searched recursively); none when the series come from a PACS (--node)")
    which = pr.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", help="model id (see 'radview-cli ai models')")
    which.add_argument("--model-dir", help="a model folder (model.toml with weights, or an nnU-Net v2 results folder)")
    pr.add_argument("--out", required=True, help="output folder (results.csv, manifest.jsonl, one folder per series)")
    pr.add_argument("--select", action="append", default=[], metavar="KEY=VALUE",
                    help="which series: modality=CT (or a list CT,PT; 'any'), description=REGEX (case-insensitive), "
                         "min_slices=N; repeat for several (default: the model's modality)")
    pr.add_argument("--engine", choices=("local", "ray"), default="local",
                    help="local worker processes (default) or Ray actors")
    pr.add_argument("--workers", type=_positive_int, default=None,
                    help="worker processes or Ray actors, each with one loaded model (local default 1; Ray default: "
                         "one per GPU, else one per --cpus-per-worker CPUs of the cluster)")
    pr.add_argument("--threads", type=_positive_int, default=None,
                    help="local engine: torch threads per worker (default: the CPUs shared out)")
    pr.add_argument("--address", help="Ray: the cluster's address HOST:PORT (default: a local Ray instance)")
    pr.add_argument("--cpus-per-worker", type=float, default=1.0, help="Ray: CPUs reserved per actor (default 1)")
    pr.add_argument("--gpus-per-worker", type=float, default=None,
                    help="Ray: GPUs per actor where the cluster has GPUs (default 1; 0.5 shares one GPU by two)")
    pr.add_argument("--device", type=_device, default="auto",
                    help="auto (default), cpu, cuda, cuda:N or mps; local engine: a list such as cuda:0,cuda:1 gives "
                         "each worker its own GPU (Ray gives each actor its own GPU by itself)")
    pr.add_argument("--allow-torchscript", action="store_true",
                    help="let this model's TorchScript weights run (they contain code: only for models you trust)")
    _add_pacs_args(pr)
    pr.set_defaults(func=cmd_run)
    _add_eval_parser(bsub)


QUERY_OPTIONS = ("patient_id", "patient_name", "study_date", "modality", "accession", "study")


def _add_pacs_args(pr) -> None:
    """The node and query options of ``radview-cli pacs query`` / ``retrieve``, mirrored (here they are optional)."""
    g = pr.add_argument_group("PACS input", PACS_NOTE)
    node = g.add_mutually_exclusive_group()
    node.add_argument("--node", help="a node from the node settings (pacs-nodes.json)")
    node.add_argument("--aet", metavar="AE@HOST:PORT", help="a DIMSE node, e.g. ORTHANC@127.0.0.1:4242")
    node.add_argument("--dicomweb", metavar="URL", help="a DICOMweb service, e.g. https://pacs.example.org/dicom-web")
    g.add_argument("--calling-aet", default="RADVIEW", help="radview's AE title (default RADVIEW)")
    g.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the node (default 30)")
    g.add_argument("--user", default="", help=f"DICOMweb basic auth user (password from ${PASSWORD_ENV})")
    g.add_argument("--bearer-env", default="", metavar="VAR", help="DICOMweb bearer token from this variable")
    g.add_argument("--ca-bundle", default="", help="DICOMweb: trust the certificates in this file too")
    g.add_argument("--patient-id", default="")
    g.add_argument("--patient-name", default="", help="with * and ? wildcards")
    g.add_argument("--study-date", default="", help="YYYYMMDD or YYYYMMDD-YYYYMMDD (either end may be open)")
    g.add_argument("--modality", default="", help="series modality asked of the node (--select still applies)")
    g.add_argument("--accession", default="")
    g.add_argument("--study", default="", help="StudyInstanceUID")
    g.add_argument("--method", choices=("get", "move", "wado"), default=None,
                   help="C-GET (default for DIMSE), C-MOVE to radview's own SCP, or WADO-RS (--dicomweb)")
    g.add_argument("--scp-port", type=int, default=None,
                   help="for move: the port radview's C-STORE SCP listens on (default: the configured local port)")


def _device(text: str) -> str:
    """A device, or a comma-separated list of them (local engine: one per worker, in turn)."""
    import argparse
    import re

    devices = [d.strip().lower() for d in text.split(",")]
    for d in devices:
        if not re.match(r"^(auto|cpu|mps|cuda(:\d+)?)$", d):
            raise argparse.ArgumentTypeError(f"unknown device {d!r}: use auto, cpu, cuda, cuda:N or mps")
    return ",".join(devices)


def _positive_int(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


class _Progress:
    """Each finished job: a tqdm bar with ETA on a terminal; otherwise one line per job on stderr."""

    def __init__(self):
        import time

        self.tty = sys.stderr.isatty()
        self._bar = None
        self._t0 = time.monotonic()

    def __call__(self, done: int, total: int, row: dict) -> None:
        status, key = row.get("status", ""), str(row.get("series_key", ""))
        if self.tty:
            if self._bar is None:
                from tqdm import tqdm

                self._bar = tqdm(total=total, desc="batch", unit="series", file=sys.stderr, dynamic_ncols=True,
                                 mininterval=0.2)
            self._bar.set_postfix_str(f"{status} {key[-24:]}", refresh=False)
            self._bar.update(done - self._bar.n)
        else:
            import time

            error = f": {row.get('error')}" if row.get("error") else ""
            left = (time.monotonic() - self._t0) / max(done, 1) * (total - done)
            eta = f", about {left / 60:.0f} min left" if left >= 90 else f", about {left:.0f} s left" if left else ""
            print(f"[{done}/{total}] {status} {key} {_secs(row.get('seconds'))}{error}{eta}", file=sys.stderr,
                  flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _secs(value) -> str:
    try:
        return f"{float(value):.1f} s"
    except (TypeError, ValueError):
        return ""


def cmd_run(args) -> int:
    from viewer.logic.batch_engines import EngineError
    from viewer.logic.batch_jobs import ModelSpec
    from viewer.logic.batch_run import BatchError, BatchRequest, run_batch

    pacs = bool(args.node or args.aet or args.dicomweb)
    if not args.inputs and not pacs:
        raise UserError("give input folders, or a PACS node (--node, --aet or --dicomweb) with query options")
    if not pacs:
        given = [f"--{o.replace('_', '-')}" for o in QUERY_OPTIONS + ("method", "scp_port")
                 if getattr(args, o) not in ("", None)]
        if given:
            raise UserError(f"{', '.join(given)}: query options need a PACS node (--node, --aet or --dicomweb)")
    for path in args.inputs:
        require_exists(path)
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UserError(f"--out {args.out}: not a folder")
    if args.engine == "local" and (args.address or args.gpus_per_worker is not None):
        raise UserError("--address and --gpus-per-worker are for --engine ray")
    if args.engine == "ray" and "," in args.device:
        raise UserError("--engine ray gives each actor its own GPU: give one --device (cuda or auto), not a list")
    spec = ModelSpec(model_id=args.model or "", model_dir=os.path.abspath(args.model_dir) if args.model_dir else "",
                     device=args.device, allow_torchscript=args.allow_torchscript)
    inputs = list(args.inputs)
    if pacs:
        inputs += _fetch_pacs(args, spec)
    request = BatchRequest(inputs=tuple(inputs), out=args.out, spec=spec, select=tuple(args.select),
                           engine=args.engine, workers=args.workers, threads=args.threads, address=args.address,
                           cpus_per_worker=args.cpus_per_worker, gpus_per_worker=args.gpus_per_worker)
    progress = _Progress()
    try:
        summary = run_batch(request, on_row=progress, on_plan=lambda text: print(text, file=sys.stderr, flush=True))
    except (BatchError, EngineError) as exc:
        raise UserError(str(exc)) from exc
    finally:
        progress.close()
    counts = ", ".join(f"{summary.counts.get(s, 0)} {s}" for s in ("ok", "failed", "skipped"))
    print(f"{counts}: {summary.ran} run now in {summary.wall_s:.1f} s ({summary.series_per_minute:.2f} series/min), "
          f"{summary.carried} kept from earlier runs; {summary.engine}")
    for key, error in summary.failures[:20]:
        print(f"  failed {key}: {error}")
    if len(summary.failures) > 20:
        print(f"  … and {len(summary.failures) - 20} more (see results.csv)")
    print(f"results: {summary.results}")
    from ai.api import NOT_A_DIAGNOSIS

    print(NOT_A_DIAGNOSIS)
    return 1 if summary.failures else 0


def _fetch_pacs(args, spec) -> list[str]:
    """Query the node and retrieve the selected series into DIR/.input/ (viewer.logic.batch_pacs): their folders."""
    from viewer.cli.pacs import node_of
    from viewer.logic.batch_pacs import PacsInput, fetch_series
    from viewer.logic.batch_plan import Selection
    from viewer.logic.batch_run import BatchError, model_manifest
    from viewer.logic.pacs import RetrieveRequest
    from viewer.net.errors import NetError, SettingsError
    from viewer.net.nodes import LocalAE, load_nodes
    from viewer.net.records import QueryCriteria

    method = args.method or ""
    if args.dicomweb and method and method != "wado":
        raise UserError(f"--dicomweb retrieves by WADO-RS: --method {method} needs a DIMSE node (--aet or --node)")
    try:
        selection = Selection.parse(args.select, default_modality=model_manifest(spec).modality)
    except (BatchError, ValueError) as exc:
        raise UserError(str(exc)) from exc
    node = node_of(args)
    if args.scp_port is not None and (method or ("get" if node.is_dimse else "wado")) != "move":
        raise UserError("--scp-port is for --method move")
    try:
        configured = load_nodes().local if args.node else LocalAE()
        local = LocalAE(args.calling_aet, configured.host,
                        args.scp_port if args.scp_port is not None else configured.port)
        criteria = QueryCriteria(level="series", patient_id=args.patient_id, patient_name=args.patient_name,
                                 study_date=args.study_date, modality=args.modality, accession=args.accession,
                                 study_uid=args.study)
        source = PacsInput(node, criteria, method, args.calling_aet, local)
        RetrieveRequest(node, "1.2.3", "", method, args.calling_aet)  # a method the node cannot serve: say so now
    except SettingsError as exc:
        raise UserError(str(exc)) from exc

    def said(done: int, total: int, text: str) -> None:
        print(f"[{done}/{total}] {text}", file=sys.stderr, flush=True)

    try:
        fetched = fetch_series(source, args.out, selection, on_series=said)
    except SettingsError as exc:
        raise UserError(str(exc)) from exc
    except NetError as exc:
        raise UserError(f"the PACS query failed: {exc}") from exc
    print(fetched.text(node.label), file=sys.stderr, flush=True)
    if not fetched.inputs and not args.inputs:
        raise UserError(f"no series on {node.label} match the query")
    return fetched.inputs


# --- batch eval ---------------------------------------------------------------------------------------------------
def _add_eval_parser(bsub) -> None:
    pe = bsub.add_parser("eval", help="per-case metrics of 'ai eval' and dataset figures with 95%% bootstrap "
                                      "intervals; cases.csv, summary.json, summary.md and plots")
    pe.add_argument("--pred", help="a 'batch run' output folder (one folder per series)")
    pe.add_argument("--ref", help="references: <series_uid>/labels.nii.gz + labels.json (+ findings.json or "
                                  "nodules.json for detections)")
    pe.add_argument("--pairs", help="a CSV with columns pred, ref: case folders (absolute or relative to the CSV)")
    pe.add_argument("--out", required=True, help="output folder")
    pe.add_argument("--min-score", type=float, default=0.0,
                    help="detections scoring below this are left out of precision/recall/F1 (default 0)")
    pe.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    pe.set_defaults(func=cmd_eval)


def cmd_eval(args) -> int:
    from viewer.cli.common import TerminalProgress
    from viewer.logic import batch_eval
    from viewer.logic.evaluation import NOT_VALIDATION, EvaluationError

    if args.pairs and (args.pred or args.ref):
        raise UserError("give --pairs, or --pred and --ref, not both")
    if not args.pairs and not (args.pred and args.ref):
        raise UserError("give --pred and --ref (paired by series UID), or --pairs FILE.csv")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UserError(f"--out {args.out}: not a folder")
    progress = TerminalProgress("evaluating")
    try:
        pairing = batch_eval.pair_from_csv(args.pairs) if args.pairs else batch_eval.pair_by_series(args.pred,
                                                                                                   args.ref)
        summary = batch_eval.evaluate_batch(pairing, args.out, args.min_score, progress=progress,
                                            plots=not args.no_plots)
    except EvaluationError as exc:
        raise UserError(str(exc)) from exc
    finally:
        progress.close()
    print(f"{summary['n_cases']} case(s) evaluated" +
          (f", {len(summary['failed_cases'])} could not be" if summary["failed_cases"] else "") +
          (f"; unpaired: {len(pairing.unpaired_pred)} prediction(s), {len(pairing.unpaired_ref)} reference(s)"
           if pairing.unpaired_pred or pairing.unpaired_ref else ""))
    for name, s in summary["labels"].items():
        d, h = s["dice"], s["hd95"]
        hd = f"HD95 {h['mean']:.2f} mm" if h["mean"] is not None else "HD95 —"
        print(f"  {name}: Dice {d['mean']:.3f} [{d['ci95'][0]:.3f}, {d['ci95'][1]:.3f}] (median {d['median']:.3f}), "
              f"{hd}, {s['n_cases']} case(s)")
    det = summary["detection"]
    if det:
        print(f"  detection: precision {det['precision']:.3f}, recall {det['recall']:.3f}, F1 {det['f1']:.3f}, "
              f"CPM {det['froc']['cpm']:.3f}")
    for case in summary["failed_cases"]:
        print(f"  not evaluated {case['case']}: {case['error']}")
    print(f"wrote cases.csv, summary.json, summary.md{', plots' if summary['plots'] else ''} to {args.out}")
    print(NOT_VALIDATION)
    return 0
