"""The 3D view's toolbar row: rendering preset, shading, volume on/off, camera views A P L R S I and Reset, crop box,
transfer-function editor, and a status text. Widgets only: :class:`~viewer.qt.views.view3d.View3D` connects them.
"""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QSizePolicy, QToolButton, QWidget

#: camera button → Scene3D view name
CAMERA_BUTTONS = (("A", "anterior"), ("P", "posterior"), ("L", "left"), ("R", "right"),
                  ("S", "superior"), ("I", "inferior"))
CUSTOM_PRESET = "__custom__"
STYLE = ("QWidget { background: #202020; color: #ddd; } QToolButton { padding: 1px 3px; } "
         "QToolButton:checked { background: #3a5f8a; } QToolButton:disabled { color: #666; }")


def tool_button(text: str, tip: str) -> QToolButton:
    b = QToolButton()
    b.setText(text)
    b.setToolTip(tip)
    b.setAutoRaise(True)
    b.setFocusPolicy(Qt.NoFocus)
    if len(text) == 1:
        b.setFixedWidth(20)
    return b


class Toolbar3D(QWidget):
    """The row of controls above the 3D picture."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setStyleSheet(STYLE)
        bar = QHBoxLayout(self)
        bar.setContentsMargins(2, 1, 2, 1)
        bar.setSpacing(2)
        self.preset_combo = QComboBox()
        self.preset_combo.setToolTip("Volume-rendering preset")
        self.preset_combo.setSizeAdjustPolicy(QComboBox.AdjustToContents)
        self.preset_combo.setMinimumContentsLength(10)
        self.preset_combo.setFocusPolicy(Qt.NoFocus)
        bar.addWidget(self.preset_combo)
        self.shading_button = tool_button("Shade", "Shade the volume (lighting)")
        self.shading_button.setCheckable(True)
        bar.addWidget(self.shading_button)
        self.volume_button = tool_button("Vol", "Show the volume rendering (off: label surfaces only)")
        self.volume_button.setCheckable(True)
        self.volume_button.setChecked(True)
        bar.addWidget(self.volume_button)
        bar.addSpacing(4)
        self.camera_buttons: dict[str, QToolButton] = {}
        for letter, view in CAMERA_BUTTONS:
            button = tool_button(letter, f"View from the patient's {view} side")
            self.camera_buttons[view] = button
            bar.addWidget(button)
        self.reset_button = tool_button("Reset", "Fit the scene in the view (R)")
        bar.addWidget(self.reset_button)
        bar.addSpacing(4)
        self.crop_button = tool_button("Crop", "Crop box: drag its faces to cut the volume")
        self.crop_button.setCheckable(True)
        bar.addWidget(self.crop_button)
        self.edit_button = tool_button("TF…", "Edit transfer function…")
        bar.addWidget(self.edit_button)
        self.status = QLabel("")
        self.status.setStyleSheet("color: #999;")
        self.status.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        bar.addWidget(self.status, 1)

    def show_presets(self, choices: list[tuple[str, str]], current: str | None) -> None:
        """Fill the preset box with ``(name, title)`` pairs and select ``current``, without emitting."""
        combo = self.preset_combo
        combo.blockSignals(True)
        combo.clear()
        for name, title in choices:
            combo.addItem(title, name)
        i = combo.findData(current)
        if i >= 0:
            combo.setCurrentIndex(i)
        combo.blockSignals(False)

    def select_preset(self, name: str) -> None:
        """Select ``name`` (adding a "Custom" entry for an edited preset), without emitting."""
        combo = self.preset_combo
        i = combo.findData(name)
        if i < 0 and name == CUSTOM_PRESET:
            combo.addItem("Custom", CUSTOM_PRESET)
            i = combo.count() - 1
        if i >= 0 and i != combo.currentIndex():
            combo.blockSignals(True)
            combo.setCurrentIndex(i)
            combo.blockSignals(False)

    @staticmethod
    def set_checked_quietly(button: QToolButton, on: bool) -> None:
        if button.isChecked() != bool(on):
            button.blockSignals(True)
            button.setChecked(bool(on))
            button.blockSignals(False)

    def set_volume_controls_enabled(self, on: bool) -> None:
        for w in (self.preset_combo, self.shading_button, self.volume_button, self.crop_button, self.edit_button):
            w.setEnabled(on)
