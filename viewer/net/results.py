"""What a retrieve or a send reports: what arrived, what was there already, what failed and why, what is missing.

A retrieve that got only part of what the node holds is a :class:`RetrieveResult` whose ``complete`` is False and
whose ``missing`` / ``failed`` say what did not come, never a silent success. A cancelled retrieve raises
:class:`RetrieveCancelled` (a :class:`~radview_base.cancel.Cancelled`) carrying the same result: what arrived
before the cancel is kept, and a retry fetches only the rest.
"""
from __future__ import annotations

from dataclasses import dataclass

from radview_base.cancel import Cancelled
from viewer.net.instance_header import InstanceHeader


@dataclass(frozen=True)
class StoredInstance:
    """One instance that reached its destination (``new`` False: it was there already and was not written again)."""

    header: InstanceHeader
    path: str
    new: bool = True


@dataclass(frozen=True)
class RetrieveResult:
    method: str  # "get", "move", "wado"
    node: str
    study_uid: str
    series_uid: str = ""
    destination: str = ""
    expected: int | None = None  # instances the node listed (None: it could not list them)
    arrived: tuple[str, ...] = ()  # SOP Instance UIDs written this time
    already_present: tuple[str, ...] = ()  # there before, not fetched again
    failed: tuple[tuple[str, str], ...] = ()  # (SOP Instance UID or "", reason)
    missing: tuple[str, ...] = ()  # listed by the node but not at the destination afterwards
    seconds: float = 0.0
    first_instance_s: float | None = None  # time to the first arriving instance

    @property
    def complete(self) -> bool:
        return not self.failed and not self.missing

    def summary(self) -> str:
        what = f"study {self.study_uid}" + (f" series {self.series_uid}" if self.series_uid else "")
        parts = [f"{len(self.arrived)} instance(s) arrived"]
        if self.already_present:
            parts.append(f"{len(self.already_present)} already present")
        if self.failed:
            parts.append(f"{len(self.failed)} failed")
        if self.missing:
            parts.append(f"{len(self.missing)} missing")
        total = f" of {self.expected}" if self.expected is not None else ""
        return f"{what} by {self.method} from {self.node}{total}: " + ", ".join(parts) + f" ({self.seconds:.1f} s)"


class RetrieveCancelled(Cancelled):
    """The retrieve was cancelled; ``result`` says what had arrived (it stays at the destination)."""

    def __init__(self, result: RetrieveResult):
        super().__init__(f"retrieve cancelled after {len(result.arrived)} new instance(s)")
        self.result = result


@dataclass(frozen=True)
class SendResult:
    node: str
    sent: tuple[str, ...] = ()  # paths stored
    failed: tuple[tuple[str, str], ...] = ()  # (path, reason)
    seconds: float = 0.0

    @property
    def complete(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        text = f"sent {len(self.sent)} file(s) to {self.node}"
        if self.failed:
            text += f"; {len(self.failed)} failed"
        return text + f" ({self.seconds:.1f} s)"
