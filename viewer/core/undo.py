"""An undo/redo stack of commands (the command pattern), Qt-free.

A :class:`Command` knows how to do and undo itself; :meth:`UndoStack.push`
does it and records it. A new command after some undos drops the redo
history, as in every editor.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from psygnal import Signal


@dataclass(frozen=True)
class Command:
    text: str
    do: Callable[[], None]
    undo: Callable[[], None]


class UndoStack:
    changed = Signal()  # after push, undo, redo or clear

    def __init__(self, limit: int = 500) -> None:
        self.limit = limit
        self._done: list[Command] = []
        self._undone: list[Command] = []

    def push(self, command: Command) -> None:
        """Do ``command`` and record it (the redo history is dropped)."""
        command.do()
        self._done.append(command)
        del self._done[:-self.limit]
        self._undone.clear()
        self.changed.emit()

    def undo(self) -> Command | None:
        if not self._done:
            return None
        command = self._done.pop()
        command.undo()
        self._undone.append(command)
        self.changed.emit()
        return command

    def redo(self) -> Command | None:
        if not self._undone:
            return None
        command = self._undone.pop()
        command.do()
        self._done.append(command)
        self.changed.emit()
        return command

    def clear(self) -> None:
        self._done.clear()
        self._undone.clear()
        self.changed.emit()

    @property
    def can_undo(self) -> bool:
        return bool(self._done)

    @property
    def can_redo(self) -> bool:
        return bool(self._undone)

    @property
    def undo_text(self) -> str:
        return self._done[-1].text if self._done else ""

    @property
    def redo_text(self) -> str:
        return self._undone[-1].text if self._undone else ""
