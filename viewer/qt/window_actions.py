"""The main window's menu bar and toolbars, and the entries that act on the window itself, as data.

The menus and toolbars are declared here in their order, with their sections; every module that offers
commands adds its entries to them by place (``"File/Export#formats"``): :data:`FILE_ACTIONS`
(:mod:`viewer.qt.controllers.study_opener`), ``CAPTURE_ACTIONS`` (:mod:`viewer.qt.controllers.capture_actions`),
``EXPORT_ACTIONS`` (:mod:`viewer.qt.controllers.export_actions`), ``READING_ACTIONS``
(:mod:`viewer.qt.reading_controls`), ``REFORMAT_ACTIONS`` (:mod:`viewer.qt.reformat_controls`: slab, plane
rotation, time points), ``MEASURE_ACTIONS`` (:mod:`viewer.qt.overlays.annotation_tools`),
``AI_ACTIONS`` (:mod:`viewer.qt.controllers.ai_controller`), ``COMPARE_ACTIONS``
(:mod:`viewer.qt.panels.metrics_panel`).
"""
from __future__ import annotations

from viewer.qt.actions import ActionSpec, MenuSpec, ToolbarSpec
from viewer.qt.views.view_layout import LAYOUTS

MENUS = [
    MenuSpec("File", "&File", ("open", "load", "quit")),
    MenuSpec("View", "&View", ("layouts", "display", "reformat", "time", "scaling")),
    MenuSpec("Measure", "&Measure", ("tools", "paint", "edit")),
    MenuSpec("AI", "&AI", ("run", "models", "compare")),
    MenuSpec("Settings", "&Settings", ("pacs",)),  # DICOM nodes… (viewer.qt.controllers.pacs_actions)
    MenuSpec("Help", "&Help"),
]

TOOLBARS = [
    ToolbarSpec("reading", "Reading", ("layouts", "window", "display", "reformat", "time", "ai")),
    ToolbarSpec("measure", "Measure", ("tools", "paint")),
]

#: entries whose callbacks are the window's own (quit, the layouts, help)
WINDOW_ACTIONS = [
    ActionSpec("file.quit", "&Quit", "close", menu="File#quit", shortcut="Ctrl+Q"),
    *(ActionSpec(f"view.layout.{name}", f"Layout {name.replace('x', '×')}", "set_layout", args=(name,),
                 menu="View#layouts", checkable=True, group="view.layouts") for name in LAYOUTS),
    *(ActionSpec(f"toolbar.layout.{name}", name.replace("x", "×"), "set_layout", args=(name,),
                 toolbar="reading#layouts") for name in LAYOUTS),
    ActionSpec("help.keys", "&Mouse and keys", "show_keys_help", menu="Help"),
    ActionSpec("help.about", "&About radview", "show_about", menu="Help"),
]
