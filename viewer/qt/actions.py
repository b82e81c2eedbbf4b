"""Menus, toolbars and actions declared once, as data, and built by one :class:`ActionRegistry`.

A module that offers commands declares them as lists of :class:`ActionSpec` (and :class:`MenuSpec` for a
submenu); the registry makes the QActions and QMenus, puts them where they are declared and keeps them by id,
so nothing finds a menu or an action by its text::

    EXPORT_ACTIONS = [ActionSpec("export.seg", "Segmentation as DICOM &SEG…", "choose_seg",
                                 menu="File/Export#formats"), ...]
    actions = registry.add(EXPORT_ACTIONS, target=self)   # {"export.seg": QAction, ...}
    registry.action("export.seg").trigger()

Places are written ``"<menu path or toolbar id>#<section>"``. The menu bar's menus and the toolbars are
declared first, with their sections (:data:`viewer.qt.window_actions.MENUS`); a section is a run of entries
between separators, and an entry goes at the end of its section whenever it is added, so a controller built
later still puts its entries in their declared place. Empty sections leave no stray separator (Qt collapses
them in menus).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMenu, QToolBar, QWidget


@dataclass(frozen=True)
class ActionSpec:
    """One command.

    ``callback``: a method name looked up on the ``target`` given to :meth:`ActionRegistry.add`, or a callable;
    it is called with ``args`` (and, for a checkable action outside a group, the new checked state).
    ``menu`` / ``toolbar``: where it shows (``"File/Export#formats"``, ``"reading#display"``); either may be empty.
    ``group``: checkable actions of one group are exclusive.
    """

    id: str
    title: str
    callback: str | Callable[..., Any] | None = None
    menu: str = ""
    toolbar: str = ""
    shortcut: str | tuple[str, ...] = ""
    args: tuple = ()
    checkable: bool = False
    checked: bool = False
    group: str = ""
    tip: str = ""
    status_tip: str = ""
    icon_text: str = ""


@dataclass(frozen=True)
class MenuSpec:
    """A menu: top level (``path`` without "/") in the order declared, or a submenu at ``menu`` (a place)."""

    path: str
    title: str
    sections: tuple[str, ...] = ("",)
    menu: str = ""
    tooltips: bool = False


@dataclass(frozen=True)
class ToolbarSpec:
    id: str
    title: str
    sections: tuple[str, ...] = ("",)


def _split(place: str) -> tuple[str, str]:
    where, _, section = place.partition("#")
    return where, section


class _Sections:
    """The sections of one menu or toolbar: a separator action marks where each section after the first begins."""

    def __init__(self, container: QMenu | QToolBar, names: Iterable[str]):
        self.container = container
        self.names = tuple(names)
        self.starts = {name: container.addSeparator() for name in self.names[1:]}

    def before(self, section: str) -> QAction | None:
        """The action a new entry of ``section`` is inserted before (None: appended at the end)."""
        if section not in self.names:
            raise KeyError(f"no section {section!r} in {self.container.objectName() or self.container.windowTitle()}"
                           f" (sections: {', '.join(self.names)})")
        later = self.names[self.names.index(section) + 1:]
        return self.starts[later[0]] if later else None

    def insert_action(self, section: str, action: QAction) -> None:
        before = self.before(section)
        if before is None:
            self.container.addAction(action)
        else:
            self.container.insertAction(before, action)


class ActionRegistry(QObject):
    """Builds the declared menus, toolbars and actions of ``window`` and keeps them by id / path."""

    def __init__(self, window: QMainWindow):
        super().__init__(window)
        self.window = window
        self.actions: dict[str, QAction] = {}
        self.menus: dict[str, QMenu] = {}
        self.toolbars: dict[str, QToolBar] = {}
        self.groups: dict[str, QActionGroup] = {}
        self.sections: dict[str, _Sections] = {}

    # --- declaring -----------------------------------------------------------------------------------
    def declare(self, menus: Iterable[MenuSpec] = (), toolbars: Iterable[ToolbarSpec] = ()) -> None:
        for spec in menus:
            self.add_menu(spec)
        for spec in toolbars:
            bar = QToolBar(spec.title, self.window)
            bar.setObjectName(spec.id)
            self.window.addToolBar(bar)
            self.toolbars[spec.id] = bar
            self.sections[spec.id] = _Sections(bar, spec.sections)

    def add_menu(self, spec: MenuSpec) -> QMenu:
        if spec.path in self.menus:
            raise ValueError(f"menu {spec.path!r} is declared twice")
        menu = QMenu(spec.title, self.window)
        menu.setObjectName(spec.path)
        menu.setToolTipsVisible(spec.tooltips)
        if spec.menu:
            where, section = _split(spec.menu)
            before = self.sections[where].before(section)
            parent = self.menus[where]
            if before is None:
                parent.addMenu(menu)
            else:
                parent.insertMenu(before, menu)
        else:
            self.window.menuBar().addMenu(menu)
        self.menus[spec.path] = menu
        self.sections[spec.path] = _Sections(menu, spec.sections)
        return menu

    def add(self, specs: Iterable[ActionSpec | MenuSpec], target: object = None) -> dict[str, QAction]:
        """Make and place every declared entry; return the new actions by id."""
        made = {}
        for spec in specs:
            if isinstance(spec, MenuSpec):
                self.add_menu(spec)
            else:
                made[spec.id] = self._make(spec, target)
        return made

    def _make(self, spec: ActionSpec, target: object) -> QAction:
        if spec.id in self.actions:
            raise ValueError(f"action {spec.id!r} is declared twice")
        action = QAction(spec.title, self.window)
        action.setObjectName(spec.id)
        if spec.shortcut:
            keys = (spec.shortcut,) if isinstance(spec.shortcut, str) else spec.shortcut
            action.setShortcuts([QKeySequence(k) for k in keys])
        if spec.checkable:
            action.setCheckable(True)
            action.setChecked(spec.checked)
        if spec.group:
            group = self.groups.get(spec.group)
            if group is None:
                group = self.groups[spec.group] = QActionGroup(self.window)
                group.setExclusive(True)
            group.addAction(action)
        if spec.tip:
            action.setToolTip(spec.tip)
        if spec.status_tip:
            action.setStatusTip(spec.status_tip)
        if spec.icon_text:
            action.setIconText(spec.icon_text)
        callback = getattr(target, spec.callback) if isinstance(spec.callback, str) else spec.callback
        if callback is not None:
            args = spec.args
            if spec.checkable and not spec.group:
                action.toggled.connect(lambda on, f=callback, a=args: f(*a, on))
            else:
                action.triggered.connect(lambda _checked=False, f=callback, a=args: f(*a))
        for place in (spec.menu, spec.toolbar):
            if place:
                where, section = _split(place)
                self.sections[where].insert_action(section, action)
        self.actions[spec.id] = action
        return action

    def add_widget(self, place: str, widget: QWidget) -> QAction:
        """Put ``widget`` (a combo box, a label) at the end of a toolbar section."""
        where, section = _split(place)
        bar = self.toolbars[where]
        before = self.sections[where].before(section)
        return bar.addWidget(widget) if before is None else bar.insertWidget(before, widget)

    # --- looking up ------------------------------------------------------------------------------------
    def action(self, action_id: str) -> QAction:
        return self.actions[action_id]

    def menu(self, path: str) -> QMenu:
        return self.menus[path]

    def toolbar(self, toolbar_id: str) -> QToolBar:
        return self.toolbars[toolbar_id]
