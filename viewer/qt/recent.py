"""Recently opened studies (folders or image files), kept in QSettings, newest first."""
from __future__ import annotations

import os
from typing import Callable

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QMenu

SETTINGS_KEY = "recent/studies"
MAX_RECENT = 10


def _same(a: str, b: str) -> bool:
    return os.path.normcase(a) == os.path.normcase(b)


class RecentStudies:
    """Up to ``limit`` recent paths; ``add`` moves a path to the front, ``paths`` lists those that still exist."""

    def __init__(self, settings: QSettings | None = None, limit: int = MAX_RECENT):
        self.settings = settings if settings is not None else QSettings("radview", "radview")
        self.limit = limit

    def _stored(self) -> list[str]:
        value = self.settings.value(SETTINGS_KEY, [])
        if value is None:
            return []
        if isinstance(value, str):  # INI files give a one-element list back as a plain string
            return [value] if value else []
        return [str(v) for v in value if v]

    def _store(self, paths: list[str]) -> None:
        self.settings.setValue(SETTINGS_KEY, paths)
        self.settings.sync()

    def add(self, path: str | os.PathLike) -> None:
        path = os.path.abspath(os.fspath(path))
        paths = [path] + [p for p in self._stored() if not _same(p, path)]
        self._store(paths[: self.limit])

    def paths(self) -> list[str]:
        return [p for p in self._stored() if os.path.exists(p)]

    def clear(self) -> None:
        self._store([])

    def populate_menu(self, menu: QMenu, open_fn: Callable[[str], None]) -> None:
        """Fill ``menu`` with one action per existing recent path (calling ``open_fn(path)``) and a Clear action.

        Connect ``menu.aboutToShow`` to this so the menu is current whenever it opens.
        """
        menu.clear()
        if not menu.title():
            menu.setTitle("Recent studies")
        paths = self.paths()
        for n, path in enumerate(paths, start=1):
            name = os.path.basename(path.rstrip(os.sep)) or path
            label = f"{name}  —  {path}".replace("&", "&&")  # a literal '&' is not a mnemonic
            action = menu.addAction(f"&{n % 10} {label}" if n <= 10 else label)
            action.setToolTip(path)
            action.setData(path)
            action.triggered.connect(lambda _checked=False, p=path: open_fn(p))
        if not paths:
            menu.addAction("(no recent studies)").setEnabled(False)
        menu.addSeparator()
        clear = menu.addAction("Clear recent studies", self.clear)
        clear.setEnabled(bool(paths))
