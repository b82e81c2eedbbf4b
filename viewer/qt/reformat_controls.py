"""The toolbar's reformat and time controls.

* Slab: a mode box (slice, MIP, MinIP, average) and, for a slab, its thickness in mm, applied to every reading
  view (``Session.set_slab``); Reset plane rotation (View menu; in the toolbar while planes are rotated) brings
  oblique planes (Ctrl+drag on the crosshair) back to the volume's own.
* Time, for a 4D series (perfusion, DCE, cardiac phases, pCASL, diffusion): a slider over the time points, the
  time point's name ("Time 2/3 · TPI 2"), ◀ ▶ (Ctrl+Left / Ctrl+Right, or , and .) and cine over time
  (Shift+C) at the trigger times' pace where the series has them. Shown only while a 4D series is open.
"""
from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QLabel, QSlider

from viewer.core.reformat import SLAB_MODES
from viewer.core.timepoints import single
from viewer.qt.actions import ActionSpec

SLAB_TITLES = {"": "Slice", "MIP": "MIP", "MinIP": "MinIP", "Average": "Average"}

REFORMAT_ACTIONS = [
    ActionSpec("view.reset_rotation", "Reset plane rotation", "reset_rotation", menu="View#reformat",
               status_tip="The reading views back to the volume's own planes (Ctrl+drag on the crosshair rotates "
                          "them)"),
    ActionSpec("toolbar.reset_rotation", "Reset planes", "reset_rotation", toolbar="reading#reformat",
               tip="Oblique planes back to the volume's own (Ctrl+drag on the crosshair rotates them)"),
    ActionSpec("view.time.previous", "Previous time point", "step_time", args=(-1,), menu="View#time",
               shortcut=("Ctrl+Left", ",")),
    ActionSpec("view.time.next", "Next time point", "step_time", args=(1,), menu="View#time",
               shortcut=("Ctrl+Right", ".")),
    ActionSpec("view.time.cine", "Cine over time", "toggle_time_cine", menu="View#time",
               toolbar="reading#time", shortcut="Shift+C", icon_text="▶ Time"),
]


class ReformatControls:
    """The slab box and thickness, the rotation reset, and the time controls of ``session``."""

    def __init__(self, session, actions):
        self.session = session
        made = actions.add(REFORMAT_ACTIONS, target=self)
        self.time_actions = [made["view.time.previous"], made["view.time.next"], made["view.time.cine"]]
        self.slab_box = QComboBox()
        for mode in SLAB_MODES:
            self.slab_box.addItem(SLAB_TITLES[mode], mode)
        self.slab_box.setToolTip("Slab: the slice, or the maximum (MIP), minimum (MinIP) or average intensity over "
                                 "a thickness")
        self.slab_box.activated.connect(lambda _i: self.apply_slab())
        self.thickness = QDoubleSpinBox()
        self.thickness.setRange(0.5, 500.0)
        self.thickness.setDecimals(1)
        self.thickness.setSingleStep(1.0)
        self.thickness.setSuffix(" mm")
        self.thickness.setValue(session.slab.thickness_mm)
        self.thickness.setToolTip("Slab thickness")
        self.thickness.valueChanged.connect(lambda _v: self.apply_slab())
        actions.add_widget("reading#reformat", self.slab_box)
        self.thickness_widget = actions.add_widget("reading#reformat", self.thickness)
        self.reset_actions = (made["view.reset_rotation"], made["toolbar.reset_rotation"])
        self.slider = QSlider(Qt.Horizontal)
        self.slider.setFixedWidth(100)
        self.slider.setPageStep(1)
        self.slider.valueChanged.connect(session.set_timepoint)
        self.time_label = QLabel()
        self.time_widgets = [actions.add_widget("reading#time", self.slider),
                             actions.add_widget("reading#time", self.time_label)]
        self.cine = QTimer()
        self.cine.timeout.connect(lambda: self.step_time(1, wrap=True))
        session.reformat_changed.connect(self.sync_slab)
        session.volume_loaded.connect(lambda _v: self.sync_slab())  # (a new volume starts with unrotated planes)
        session.timepoint_changed.connect(lambda _t: self.sync_time())
        session.volume_loaded.connect(lambda _v: self.sync_time())
        session.volume_cleared.connect(self.sync_time)
        session.images_loaded.connect(lambda _s: self.sync_time())
        self.sync_slab()
        self.sync_time()

    # --- slab and rotation -------------------------------------------------------------------------------------
    def apply_slab(self) -> None:
        self.session.set_slab(self.slab_box.currentData(), self.thickness.value())

    def sync_slab(self) -> None:
        """The box and thickness follow the session's slab; the thickness and the rotation reset show when they
        apply (the toolbar stays short at 1280 pixels)."""
        slab = self.session.slab
        self.thickness_widget.setVisible(slab.active)
        self.reset_actions[0].setEnabled(self.session.rotations.any)
        self.reset_actions[1].setVisible(self.session.rotations.any)
        self.slab_box.setCurrentIndex(max(self.slab_box.findData(slab.mode), 0))
        if abs(self.thickness.value() - slab.thickness_mm) > 1e-6:
            self.thickness.blockSignals(True)
            self.thickness.setValue(slab.thickness_mm)
            self.thickness.blockSignals(False)

    def reset_rotation(self) -> None:
        self.session.reset_rotations()

    # --- time ------------------------------------------------------------------------------------------------
    def time_axis(self):
        volume = self.session.volume
        n = self.session.n_timepoints
        axis = (volume.meta.get("time_axis") if volume is not None else None) or single(n)
        return axis if axis.n == n else single(n)

    def step_time(self, step: int, wrap: bool = False) -> None:
        n = self.session.n_timepoints
        if n > 1:
            t = self.session.timepoint + int(step)
            self.session.set_timepoint(t % n if wrap else t)

    def toggle_time_cine(self) -> None:
        if self.cine.isActive():
            self.cine.stop()
        elif self.session.n_timepoints > 1:
            self.cine.start(self.time_axis().cine_interval_ms())
        self.sync_time()

    @property
    def time_cine_running(self) -> bool:
        return self.cine.isActive()

    def sync_time(self) -> None:
        """The time controls follow the series: shown for a 4D series, at the time point shown."""
        n = self.session.n_timepoints if self.session.images is None else 0
        if n < 2 and self.cine.isActive():
            self.cine.stop()
        for action in (*self.time_widgets, *self.time_actions):
            action.setVisible(n > 1)
            action.setEnabled(n > 1)
        if n < 2:
            return
        self.slider.blockSignals(True)
        self.slider.setRange(0, n - 1)
        self.slider.setValue(self.session.timepoint)
        self.slider.blockSignals(False)
        self.time_label.setText(" " + self.time_axis().text(self.session.timepoint).removeprefix("Time ") + " ")
        self.time_actions[2].setIconText("■ Time" if self.cine.isActive() else "▶ Time")
