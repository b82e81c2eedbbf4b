"""``radview-cli pacs``: echo, query, retrieve and send over DIMSE or DICOMweb (``viewer.logic.pacs``).

Each command names its node with ``--node NAME`` (from the node settings, ``viewer.net.nodes``), ``--aet AE@HOST:PORT``
(DIMSE) or ``--dicomweb URL``, and calls as ``--calling-aet`` (default ``RADVIEW``):

* ``pacs echo`` — C-ECHO (a one-result QIDO-RS search for DICOMweb);
* ``pacs query [--level study|series] [--patient-id ID] [--patient-name PATTERN] [--study-date YYYYMMDD[-YYYYMMDD]]
  [--modality M] [--accession A] [--study UID] [--json]`` — a table, or a JSON list (``study_uid``, ``series_uid`` at
  series level, ``patient_id``, ``study_date``, ``modality``, ``description``, ``n_instances``, …);
* ``pacs retrieve --study UID [--series UID] [--method get|move|wado] [--scp-port PORT] [--out DIR]`` — into DIR, or
  into the local study database; for C-MOVE radview's own C-STORE SCP answers as the calling AE title at
  ``--scp-port`` on 127.0.0.1 (with ``--node``: on the configured local address, 127.0.0.1 unless changed), for the
  duration of the retrieve, accepting only the node; prints what arrived and what did not (run it again to resume);
* ``pacs send FILE_OR_DIR...`` — C-STORE (STOW-RS for DICOMweb).

DICOMweb credentials for ``--dicomweb``: ``--user NAME`` (basic; the password from ``$RADVIEW_PACS_PASSWORD``) or
``--bearer-env VAR`` (the token from that variable); ``--ca-bundle FILE`` trusts a private CA (certificates are always
verified). Exit status: 0 done, 1 a network failure or a partial result (the message says what), 2 bad input.
"""
from __future__ import annotations

import json
import os
import sys

from viewer.cli.common import TerminalProgress, UserError

EXIT_FAILED = 1
PASSWORD_ENV = "RADVIEW_PACS_PASSWORD"
SHOWN = 20  # failures and missing instances listed, at most


def add_parser(sub) -> None:
    p = sub.add_parser("pacs", help="query, retrieve and send studies over DICOM networking (DIMSE) or DICOMweb")
    psub = p.add_subparsers(dest="pacs_command", required=True)
    pe = psub.add_parser("echo", help="check a node: C-ECHO, or a QIDO-RS search for DICOMweb")
    _node_args(pe)
    pe.set_defaults(func=cmd_echo)
    pq = psub.add_parser("query", help="find studies or series on a node")
    _node_args(pq)
    pq.add_argument("--level", choices=("study", "series"), default="study")
    pq.add_argument("--patient-id", default="")
    pq.add_argument("--patient-name", default="", help="with * and ? wildcards")
    pq.add_argument("--study-date", default="", help="YYYYMMDD or YYYYMMDD-YYYYMMDD (either end may be open)")
    pq.add_argument("--modality", default="")
    pq.add_argument("--accession", default="")
    pq.add_argument("--description", default="", help="study (or series, at series level) description")
    pq.add_argument("--study", default="", help="StudyInstanceUID")
    pq.add_argument("--limit", type=int, default=0, help="at most this many results (default: all)")
    pq.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    pq.set_defaults(func=cmd_query)
    pr = psub.add_parser("retrieve", help="fetch a study or series into a folder or the local study database")
    _node_args(pr)
    pr.add_argument("--study", required=True, help="StudyInstanceUID")
    pr.add_argument("--series", default="", help="SeriesInstanceUID (default: the whole study)")
    pr.add_argument("--method", choices=("get", "move", "wado"), default=None,
                    help="C-GET (default for DIMSE), C-MOVE to radview's own SCP, or WADO-RS (--dicomweb)")
    pr.add_argument("--scp-port", type=int, default=None,
                    help="for move: the port radview's C-STORE SCP listens on (default: the configured local port)")
    pr.add_argument("--out", default="", help="folder to write the instances to (default: the local study database)")
    pr.set_defaults(func=cmd_retrieve)
    ps = psub.add_parser("send", help="send DICOM files (C-STORE, or STOW-RS for DICOMweb)")
    _node_args(ps)
    ps.add_argument("paths", nargs="+", metavar="FILE_OR_DIR")
    ps.set_defaults(func=cmd_send)


def _node_args(p) -> None:
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--node", help="a node from the node settings (pacs-nodes.json)")
    g.add_argument("--aet", metavar="AE@HOST:PORT", help="a DIMSE node, e.g. ORTHANC@127.0.0.1:4242")
    g.add_argument("--dicomweb", metavar="URL", help="a DICOMweb service, e.g. https://pacs.example.org/dicom-web")
    p.add_argument("--calling-aet", default="RADVIEW", help="radview's AE title (default RADVIEW)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the node (default 30)")
    p.add_argument("--user", default="", help=f"DICOMweb basic auth user (password from ${PASSWORD_ENV})")
    p.add_argument("--bearer-env", default="", metavar="VAR", help="DICOMweb bearer token from this variable")
    p.add_argument("--ca-bundle", default="", help="DICOMweb: trust the certificates in this file too")


# ------------------------------------------------------------------------------------------------ helpers
def _book():
    from viewer.net.errors import SettingsError
    from viewer.net.nodes import load_nodes

    try:
        return load_nodes()
    except SettingsError as exc:
        raise UserError(f"node settings: {exc}") from exc


def node_of(args):
    """The node the arguments name."""
    from viewer.net.errors import SettingsError
    from viewer.net.nodes import Node, parse_aet

    try:
        if args.node:
            return _book().find(args.node)
        if args.aet:
            return parse_aet(args.aet, timeout_s=args.timeout)
        auth, secret_env, user = "none", "", ""
        if args.user and args.bearer_env:
            raise UserError("give --user (basic) or --bearer-env (token), not both")
        if args.user:
            auth, secret_env, user = "basic", PASSWORD_ENV, args.user
        elif args.bearer_env:
            auth, secret_env = "bearer", args.bearer_env
        return Node(name="dicomweb", dicomweb_url=args.dicomweb, auth=auth, username=user, secret_env=secret_env,
                    ca_bundle=args.ca_bundle, timeout_s=args.timeout)
    except SettingsError as exc:
        raise UserError(str(exc)) from exc


def _run(fn, *a, **kw):
    """Call a use case: settings errors are the user's (exit 2), network failures exit 1 with the message."""
    from viewer.net.errors import NetError, SettingsError

    try:
        return fn(*a, **kw)
    except SettingsError as exc:
        raise UserError(str(exc)) from exc
    except NetError as exc:
        raise _Failed(str(exc)) from exc


class _Failed(Exception):
    pass


def _guard(cmd):
    def run(args) -> int:
        try:
            return cmd(args)
        except _Failed as exc:
            print(f"radview-cli: error: {exc}", file=sys.stderr)
            return EXIT_FAILED

    run.__doc__ = cmd.__doc__
    return run


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def _n(value) -> str:
    return "" if value is None else str(value)


# ------------------------------------------------------------------------------------------------ commands
@_guard
def cmd_echo(args) -> int:
    from viewer.logic.pacs import EchoRequest, echo

    node = node_of(args)
    result = _run(echo, _run(EchoRequest, node, args.calling_aet))
    print(result.text())
    return 0


@_guard
def cmd_query(args) -> int:
    from viewer.logic.pacs import QueryRequest, query
    from viewer.net.records import QueryCriteria

    node = node_of(args)
    criteria = _run(QueryCriteria, level=args.level, patient_name=args.patient_name, patient_id=args.patient_id,
                    study_date=args.study_date, modality=args.modality, accession=args.accession,
                    description=args.description, study_uid=args.study, limit=max(args.limit, 0))
    rows = _run(query, QueryRequest(node, criteria, args.calling_aet))
    if args.json:
        print(json.dumps([r.to_json() for r in rows], indent=2))
        return 0
    if not rows:
        print(f"no {args.level} matches on {node.label}")
        return 0
    if args.level == "study":
        table = [["PATIENT ID", "PATIENT NAME", "DATE", "MODALITY", "DESCRIPTION", "SERIES", "INSTANCES", "STUDY UID"]]
        table += [[r.patient_id, r.patient_name, r.study_date, "\\".join(r.modalities), r.description,
                   _n(r.n_series), _n(r.n_instances), r.study_uid] for r in rows]
    else:
        table = [["PATIENT ID", "DATE", "MODALITY", "NUMBER", "DESCRIPTION", "INSTANCES", "SERIES UID"]]
        table += [[r.patient_id, r.study_date, r.modality, _n(r.number), r.description, _n(r.n_instances),
                   r.series_uid] for r in rows]
    print(_table(table))
    noun = args.level if len(rows) == 1 or args.level == "series" else "studies"
    print(f"{len(rows)} {noun} on {node.label}")
    return 0


@_guard
def cmd_retrieve(args) -> int:
    from radview_base.cancel import Cancelled
    from viewer.logic.pacs import RetrieveRequest, retrieve
    from viewer.net.nodes import LocalAE

    node = node_of(args)
    if args.out and os.path.isfile(args.out):
        raise UserError(f"--out {args.out}: is a file, give a folder")
    method = args.method or ""
    if args.dicomweb and method and method != "wado":
        raise UserError(f"--dicomweb retrieves by WADO-RS: --method {method} needs a DIMSE node (--aet or --node)")
    if args.scp_port is not None and (method or ("get" if node.is_dimse else "wado")) != "move":
        raise UserError("--scp-port is for --method move")
    configured = _book().local if not args.aet and not args.dicomweb else LocalAE()
    local = _run(LocalAE, args.calling_aet, configured.host,
                 args.scp_port if args.scp_port is not None else configured.port)
    request = _run(RetrieveRequest, node, args.study, args.series, method, args.calling_aet, args.out, local)
    bar = TerminalProgress("retrieving")
    try:
        result = _run(retrieve, request, progress=bar)
    except Cancelled as exc:  # Ctrl+C arrives as KeyboardInterrupt; a RetrieveCancelled only from the logic
        result = getattr(exc, "result", None)
        if result is None:
            raise
    finally:
        bar.close()
    print(result.summary())
    print(f"written under {result.destination}" if args.out else f"in the local study database: {result.destination}")
    for uid, reason in result.failed[:SHOWN]:
        print(f"failed: {uid or '(no instance)'}: {reason}", file=sys.stderr)
    if len(result.failed) > SHOWN:
        print(f"... and {len(result.failed) - SHOWN} more failure(s)", file=sys.stderr)
    for uid in result.missing[:SHOWN]:
        print(f"missing: {uid}", file=sys.stderr)
    if len(result.missing) > SHOWN:
        print(f"... and {len(result.missing) - SHOWN} more missing", file=sys.stderr)
    if not result.complete:
        print("radview-cli: error: the retrieve is incomplete; run the same command again to fetch what is missing",
              file=sys.stderr)
        return EXIT_FAILED
    return 0


@_guard
def cmd_send(args) -> int:
    from viewer.logic.pacs import SendRequest, send

    for p in args.paths:
        if not os.path.exists(p):
            raise UserError(f"{p}: no such file or folder")
    node = node_of(args)
    bar = TerminalProgress("sending")
    try:
        result = _run(send, _run(SendRequest, node, tuple(args.paths), args.calling_aet), progress=bar)
    finally:
        bar.close()
    print(result.summary())
    for path, reason in result.failed[:SHOWN]:
        print(f"failed: {path}: {reason}", file=sys.stderr)
    if len(result.failed) > SHOWN:
        print(f"... and {len(result.failed) - SHOWN} more failure(s)", file=sys.stderr)
    return 0 if result.complete else EXIT_FAILED
