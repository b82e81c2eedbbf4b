"""C-STORE of DICOM files (radview's exports: SEG, SR, de-identified copies, Secondary Capture) to a node.

Files are sent as they are: one presentation context per (SOP class, transfer syntax) the files use, so nothing is
decoded or transcoded; more than a context limit's worth of kinds goes over several associations. Each file's
outcome is in the :class:`~viewer.net.results.SendResult`: a file the node refused, one it cannot take (no
accepted context) or one that is not DICOM is listed with the reason, never dropped silently.
"""
from __future__ import annotations

import os
import threading
import time
from typing import Callable, Iterable

from viewer.net.association import abort_when, check_status, finish, new_ae, open_association, raise_if_cancelled
from viewer.net.errors import ContextsRejected, NetError
from viewer.net.nodes import Node
from viewer.net.results import SendResult

MAX_CONTEXTS = 120
_WARNINGS = (0xB000, 0xB006, 0xB007)


def dicom_files(paths: Iterable[str]) -> list[str]:
    """The files named, and the files under the folders named (hidden ones skipped), in a stable order."""
    files: list[str] = []
    for p in paths:
        p = os.fspath(p)
        if os.path.isdir(p):
            for folder, dirs, names in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                files += [os.path.join(folder, n) for n in sorted(names) if not n.startswith(".")]
        else:
            files.append(p)
    return files


def _kind(path: str) -> tuple[str, str]:
    """(SOP class, transfer syntax) from the file meta."""
    from pydicom.filereader import read_file_meta_info

    meta = read_file_meta_info(path)
    return str(meta.MediaStorageSOPClassUID), str(meta.TransferSyntaxUID)


def c_store(node: Node, calling_aet: str, paths: Iterable[str], progress: Callable | None = None,
            cancel: threading.Event | None = None) -> SendResult:
    """Send the DICOM files at ``paths`` (files or folders) to ``node``."""
    from pydicom.errors import InvalidDicomError

    t0 = time.perf_counter()
    files = dicom_files(paths)
    failed: list[tuple[str, str]] = []
    kinds: dict[str, tuple[str, str]] = {}
    for f in files:
        try:
            kinds[f] = _kind(f)
        except (InvalidDicomError, OSError, AttributeError, KeyError, ValueError) as exc:
            failed.append((f, f"not a DICOM file with file meta ({exc})"))
    groups: list[list[str]] = []
    group_kinds: list[set] = []
    for f, kind in kinds.items():
        for g, ks in zip(groups, group_kinds):
            if kind in ks or len(ks) < MAX_CONTEXTS:
                g.append(f)
                ks.add(kind)
                break
        else:
            groups.append([f])
            group_kinds.append({kind})
    sent: list[str] = []
    done = len(failed)
    for group, ks in zip(groups, group_kinds):
        ae = new_ae(calling_aet, node)
        for sop_class, ts in sorted(ks):
            ae.add_requested_context(sop_class, [ts])
        try:
            assoc = open_association(ae, node)
        except ContextsRejected as exc:  # none of these kinds: each file is reported, the other groups still go
            failed += [(f, str(exc)) for f in group]
            done += len(group)
            continue
        try:
            with abort_when(cancel, assoc):
                for f in group:
                    raise_if_cancelled(cancel)
                    try:
                        status = assoc.send_c_store(f)
                        code = check_status(status, node, "C-STORE")
                    except NetError as exc:
                        raise_if_cancelled(cancel)
                        failed.append((f, str(exc)))
                        failed += [(rest, "not sent: the association was lost") for rest in group[group.index(f) + 1:]]
                        break
                    except (ValueError, RuntimeError) as exc:  # no accepted context for its class/syntax
                        failed.append((f, f"{node.label} cannot take it: {exc}"))
                        continue
                    if code == 0 or code in _WARNINGS:
                        sent.append(f)
                    else:
                        from pynetdicom.status import code_to_category

                        comment = str(status.get("ErrorComment", "") or "").strip()
                        failed.append((f, f"refused with status 0x{code:04X} ({code_to_category(code)})"
                                          + (f": {comment}" if comment else "")))
                    done += 1
                    if progress is not None:
                        progress(done, len(files), "")
        finally:
            finish(assoc)
    return SendResult(node=node.label, sent=tuple(sent), failed=tuple(failed), seconds=time.perf_counter() - t0)
