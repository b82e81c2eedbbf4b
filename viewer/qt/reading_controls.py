"""The reading controls of the window: View → display toggles (the crosshair among them), the Philips scaling
choice, the toolbar's Window box, Invert, Reset and Cine; the slab, plane rotation and time controls
(:mod:`viewer.qt.reformat_controls`).

Declared in :data:`READING_ACTIONS`; the toggles and the Window box follow the session whatever changed it
(a key in a view, a preset, the menu). View → "Philips: display values / floating-point values" is offered while
the open series has Philips' private scale slope: choosing asks the session (``Session.choose_scaling``), the
study opener loads the series again that way, and the check follows the values the volume holds.
"""
from __future__ import annotations

from PySide6.QtWidgets import QComboBox, QLabel

from viewer.core.window_presets import CT_PRESETS, FROM_FILE
from viewer.qt.actions import ActionSpec
from viewer.qt.reformat_controls import ReformatControls

#: View menu toggle → the session's display option
DISPLAY_TOGGLES = {"view.corner_text": "show_corner_text", "view.patient_data": "show_patient_data",
                   "view.overlays": "overlays_visible", "view.invert": "invert", "view.crosshair": "show_crosshair"}
#: View menu choice → ``viewer.io.series_loader`` scaling
SCALING_CHOICES = {"view.scaling.display": "display", "view.scaling.philips": "philips-float"}

READING_ACTIONS = [
    ActionSpec("view.corner_text", "Corner text\tF12", "set_display", args=("show_corner_text",),
               menu="View#display", checkable=True),
    ActionSpec("view.patient_data", "Patient data\tShift+F12", "set_display", args=("show_patient_data",),
               menu="View#display", checkable=True),
    ActionSpec("view.overlays", "Overlays\tG", "set_display", args=("overlays_visible",), menu="View#display",
               checkable=True),
    ActionSpec("view.invert", "Invert\tI", "set_display", args=("invert",), menu="View#display", checkable=True),
    ActionSpec("view.crosshair", "Crosshair\tH", "set_display", args=("show_crosshair",), menu="View#display",
               checkable=True, checked=True),
    ActionSpec("view.scaling.display", "Philips: display values", "choose_scaling", args=("display",),
               menu="View#scaling", checkable=True, group="view.scaling",
               status_tip="Values as the scanner console shows them (RescaleSlope/Intercept)"),
    ActionSpec("view.scaling.philips", "Philips: floating-point values", "choose_scaling", args=("philips-float",),
               menu="View#scaling", checkable=True, group="view.scaling",
               status_tip="Philips' floating-point values, with the private scale slope (2005,100E), as dcm2niix "
                          "writes them"),
    ActionSpec("toolbar.invert", "Invert", "toggle_invert", toolbar="reading#display"),
    ActionSpec("toolbar.reset", "Reset", "reset_view", toolbar="reading#display"),
    ActionSpec("toolbar.cine", "Cine", "toggle_cine", toolbar="reading#display"),
]


class ReadingControls:
    """``preset_box``: the toolbar's Window box (the presets, "from file" and "custom"; for a 2D series the VOIs its
    files offer). Reset and Cine act on the active view: of the MPR layout, or of the 2D images (``planar``)."""

    def __init__(self, session, layout, actions, planar=None):
        self.session, self.layout, self.planar = session, layout, planar
        made = actions.add(READING_ACTIONS, target=self)
        self.toggles = {action_id: made[action_id] for action_id in DISPLAY_TOGGLES}
        self.scalings = {action_id: made[action_id] for action_id in SCALING_CHOICES}
        self.sync_toggles()
        self.sync_scaling()
        session.display_changed.connect(self.sync_toggles)
        session.volume_loaded.connect(lambda _volume: self.sync_scaling())
        session.volume_cleared.connect(self.sync_scaling)
        self.preset_box = QComboBox()
        self.fill_ct_presets()
        self.preset_box.activated.connect(self.apply_preset_at)
        actions.add_widget("reading#window", QLabel(" Window "))
        actions.add_widget("reading#window", self.preset_box)
        session.window_changed.connect(self.sync_preset_box)
        session.volume_loaded.connect(lambda _volume: self.fill_ct_presets())
        session.images_loaded.connect(lambda _series: self.fill_image_vois())
        self.reformat = ReformatControls(session, actions)  # slab, plane rotation, time points

    def fill_ct_presets(self) -> None:
        self.preset_box.clear()
        self.preset_box.addItem(f"0  {FROM_FILE}", FROM_FILE)
        for preset in CT_PRESETS:
            self.preset_box.addItem(f"{preset.key}  {preset.name} ({preset.width:g}/{preset.level:g})", preset.name)
        self.preset_box.addItem("custom", "")

    def fill_image_vois(self) -> None:
        """The VOIs of the active 2D image's file (window pairs with their explanations, VOI LUTs), then full range."""
        from viewer.core.grayscale import voi_choices

        self.preset_box.clear()
        view = self.planar.active if self.planar is not None else None
        if view is None or view.current is None:
            return
        for k, voi in enumerate(voi_choices(view.current)):
            self.preset_box.addItem(f"{k}  {voi.name}", ("voi", k))

    def active_view(self):
        if self.session.images is not None and self.planar is not None and self.planar.active is not None:
            return self.planar.active
        return self.layout.active

    def set_display(self, option: str, on: bool) -> None:
        if getattr(self.session, option) != on:
            self.session.set_display(**{option: on})

    def sync_toggles(self) -> None:
        for action_id, option in DISPLAY_TOGGLES.items():
            self.toggles[action_id].setChecked(getattr(self.session, option))

    def sync_scaling(self) -> None:
        """The Philips choice: offered for a series with Philips' scale slope, checked as its values are."""
        meta = self.session.volume.meta if self.session.volume is not None else {}
        offered = bool(meta.get("philips_scale"))
        for action_id, scaling in SCALING_CHOICES.items():
            action = self.scalings[action_id]
            action.setEnabled(offered)
            action.setChecked(offered and meta.get("scaling", "display") == scaling)

    def choose_scaling(self, scaling: str) -> None:
        if self.session.volume is not None and self.session.volume.meta.get("scaling") != scaling:
            self.session.choose_scaling(scaling)
        self.sync_scaling()  # the check follows the values shown; the reload, when done, moves it

    def toggle_invert(self) -> None:
        self.session.set_display(invert=not self.session.invert)

    def reset_view(self) -> None:
        self.active_view().reset_view()

    def toggle_cine(self) -> None:
        self.active_view().toggle_cine()

    def apply_preset_at(self, index: int) -> None:
        name = self.preset_box.itemData(index)
        if isinstance(name, tuple):  # a VOI of the 2D image's file
            self.active_view().set_voi_index(name[1])
        elif name:
            self.session.apply_preset(name)

    def sync_preset_box(self, _width, _level, name: str) -> None:
        i = self.preset_box.findData(name)
        self.preset_box.setCurrentIndex(i if i >= 0 else self.preset_box.count() - 1)
