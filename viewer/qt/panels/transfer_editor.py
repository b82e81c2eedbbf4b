"""A small transfer-function editor: opacity and colour points over the volume's histogram (pyqtgraph).

The plot's x axis is intensity (HU for CT). Above the axis, the opacity curve (0-1) over the
log-scaled histogram; below it, a band showing the colour transfer function with its colour points.

* drag a point: opacity points move in value and opacity, colour points in value only (a point
  stays between its neighbours);
* double-click on empty plot: a new opacity point there (below the axis: a colour point, coloured as
  the band is there);
* right-click a point: removed (at least one of each kind stays);
* double-click a colour point: choose its colour.

Every change emits :attr:`TransferEditor.preset_edited` with a new :class:`TransferPreset` (the View3D
applies it live with ``Scene3D.set_preset``). "Reset" goes back to the preset the editor was opened
with.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QColorDialog, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from viewer.render3d.transfer_presets import TransferPreset

#: the colour band lies at these y (plot units) below the opacity axis
BAND = (-0.16, -0.04)
BAND_Y = sum(BAND) / 2


class _Points(pg.ScatterPlotItem):
    """Draggable points (opacity points are also joined by a line); the editor hears of every edit."""

    def __init__(self, editor: "TransferEditor", kind: str):
        super().__init__(size=9, symbol="o", pen=pg.mkPen(20, 20, 20), pxMode=True)
        self.editor, self.kind = editor, kind
        self.pos = np.zeros((0, 2))
        self.brushes: list = []
        self.line = pg.PlotCurveItem(pen=pg.mkPen(230, 230, 230, width=1.5)) if kind == "opacity" else None
        self._drag: int | None = None
        self._offset = np.zeros(2)
        self.sigClicked.connect(self._clicked)

    def set_points(self, pos: np.ndarray, brushes=None) -> None:
        self.pos = np.asarray(pos, float).reshape(-1, 2)
        self.brushes = brushes if brushes is not None else [pg.mkBrush(255, 255, 255)] * len(self.pos)
        self.setData(pos=self.pos, brush=self.brushes, data=np.arange(len(self.pos)))
        if self.line is not None:
            self.line.setData(self.pos[:, 0], self.pos[:, 1])

    def index_at(self, scene_pos) -> int | None:
        pts = self.pointsAt(self.mapFromScene(scene_pos))
        return int(pts[0].data()) if len(pts) else None

    def hoverEvent(self, ev):  # noqa: N802
        # claim the drag (else the view box pans) and the right-click while over a point
        if not ev.isExit() and len(self.pointsAt(ev.pos())):
            ev.acceptDrags(Qt.LeftButton)
            ev.acceptClicks(Qt.RightButton)
        super().hoverEvent(ev)

    def mouseDragEvent(self, ev):  # noqa: N802 (Qt naming)
        if ev.button() != Qt.LeftButton:
            ev.ignore()
            return
        if ev.isStart():
            pts = self.pointsAt(ev.buttonDownPos())
            if not len(pts):
                ev.ignore()
                return
            self._drag = int(pts[0].data())
            self._offset = self.pos[self._drag] - np.array([ev.buttonDownPos().x(), ev.buttonDownPos().y()])
        elif self._drag is None:
            ev.ignore()
            return
        i = self._drag
        x, y = np.array([ev.pos().x(), ev.pos().y()]) + self._offset
        lo = self.pos[i - 1, 0] if i > 0 else -np.inf
        hi = self.pos[i + 1, 0] if i < len(self.pos) - 1 else np.inf
        self.pos[i, 0] = float(np.clip(x, lo, hi))
        self.pos[i, 1] = float(np.clip(y, 0.0, 1.0)) if self.kind == "opacity" else BAND_Y
        if ev.isFinish():
            self._drag = None
        self.set_points(self.pos, self.brushes)
        ev.accept()
        self.editor.points_edited()

    def _clicked(self, _item, points, ev=None):
        if ev is not None and ev.button() == Qt.RightButton and len(points) and len(self.pos) > 1:
            self.editor.remove_point(self.kind, int(points[0].data()))


class TransferEditor(QWidget):
    """A tool window editing a :class:`TransferPreset` (in the volume's intensities) over its histogram."""

    preset_edited = Signal(object)  # TransferPreset

    def __init__(self, array: np.ndarray, preset: TransferPreset, parent: QWidget | None = None):
        super().__init__(parent, Qt.Tool)
        self.setWindowTitle("Transfer function")
        self.resize(520, 300)
        self.original = preset.copy()
        self.preset = preset.copy()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        self.plot = pg.PlotWidget(background="#181818")
        self.plot.setMenuEnabled(False)
        self.plot.hideButtons()
        self.plot.getAxis("left").setTicks([[(0, "0"), (0.5, "0.5"), (1, "1")]])
        self.plot.setLabel("left", "opacity")
        self.plot.showGrid(x=True, y=False, alpha=0.2)
        self.plot.getViewBox().setMouseEnabled(x=True, y=False)
        layout.addWidget(self.plot, 1)
        self.histogram = pg.PlotDataItem(fillLevel=0, brush=(90, 90, 110, 160), pen=None, stepMode="center")
        self.plot.addItem(self.histogram)
        self.band = pg.ImageItem()
        self.plot.addItem(self.band)
        self.opacity_item = _Points(self, "opacity")
        self.color_item = _Points(self, "color")
        self.plot.addItem(self.opacity_item.line)
        self.plot.addItem(self.opacity_item)
        self.plot.addItem(self.color_item)
        self.plot.scene().sigMouseClicked.connect(self._scene_clicked)
        row = QHBoxLayout()
        self.info = QLabel("")
        self.info.setStyleSheet("color: #888;")
        row.addWidget(self.info, 1)
        reset = QPushButton("Reset")
        reset.clicked.connect(self.reset)
        row.addWidget(reset)
        layout.addLayout(row)
        self.set_histogram(array)
        self.set_preset(self.preset, keep_original=True)

    # --- data ------------------------------------------------------------------------------------
    def set_histogram(self, array: np.ndarray) -> None:
        """Show the log-scaled histogram of ``array`` (a subsample of ~1 M voxels) and fit the x range to it."""
        step = max(1, int(round((array.size / 1_000_000) ** (1 / 3))))
        sample = np.asarray(array[::step, ::step, ::step] if array.ndim == 3 else array, dtype=np.float32).ravel()
        lo, hi = float(sample.min()), float(sample.max())
        if hi <= lo:
            hi = lo + 1.0
        counts, edges = np.histogram(sample, bins=256, range=(lo, hi))
        heights = np.log1p(counts)
        heights = heights / heights.max() if heights.max() > 0 else heights
        self.histogram.setData(edges, heights)
        self.value_range = (lo, hi)
        self.plot.setXRange(lo, hi, padding=0.02)
        self.plot.setYRange(BAND[0] - 0.02, 1.05, padding=0)

    def set_preset(self, preset: TransferPreset, keep_original: bool = False) -> None:
        """Edit ``preset`` (a copy) from now on; "Reset" returns to it."""
        self.preset = preset.copy()
        if not keep_original:
            self.original = preset.copy()
        self.opacity_item.set_points(np.array(self.preset.opacity_points, float))
        self._set_color_points(self.preset.color_points)
        self.info.setText(f"{self.preset.title} ({self.preset.units}) — double-click: add, right-click: remove")

    def _set_color_points(self, color_points) -> None:
        pts = np.array([(v, BAND_Y) for v, *_ in color_points], float)
        brushes = [pg.mkBrush(*(int(round(255 * c)) for c in rgb)) for _v, *rgb in color_points]
        self.color_item.set_points(pts, brushes)
        self._colors = [tuple(rgb) for _v, *rgb in color_points]
        self._draw_band()

    def _draw_band(self) -> None:
        lo, hi = self.value_range
        xs = np.linspace(lo, hi, 256)
        values = [v for v, *_ in self.current_color_points()]
        rgb = np.stack([np.interp(xs, values, [c[k] for c in self._colors]) for k in range(3)], axis=-1)
        self.band.setImage((rgb[None, :, :] * 255).astype(np.uint8), levels=(0, 255))
        self.band.setRect(lo, BAND[0], hi - lo, BAND[1] - BAND[0])

    def current_color_points(self) -> list[tuple[float, float, float, float]]:
        return [(float(x), *c) for (x, _y), c in zip(self.color_item.pos, self._colors)]

    def current_preset(self) -> TransferPreset:
        """The edited preset (the title says it is custom)."""
        opacity = [(float(x), float(y)) for x, y in self.opacity_item.pos]
        title = self.original.title if self.original.title.endswith("(edited)") else f"{self.original.title} (edited)"
        return replace(self.preset, name="custom", title=title, opacity_points=opacity,
                       color_points=self.current_color_points())

    # --- editing -----------------------------------------------------------------------------------
    def points_edited(self) -> None:
        self._draw_band()
        self.preset = self.current_preset()
        self.preset_edited.emit(self.preset.copy())

    def remove_point(self, kind: str, index: int) -> None:
        if kind == "opacity":
            self.opacity_item.set_points(np.delete(self.opacity_item.pos, index, axis=0))
        else:
            points = self.current_color_points()
            del points[index]
            self._set_color_points(points)
        self.points_edited()

    def add_point(self, value: float, y: float) -> None:
        """An opacity point at ``(value, y)`` (y ≥ 0) or a colour point at ``value`` (y < 0, band colour)."""
        if y >= 0:
            pos = np.vstack([self.opacity_item.pos, [value, min(1.0, y)]])
            self.opacity_item.set_points(pos[np.argsort(pos[:, 0], kind="stable")])
        else:
            points = self.current_color_points()
            values = [v for v, *_ in points]
            rgb = tuple(float(np.interp(value, values, [c[k] for c in self._colors])) for k in range(3))
            points.append((float(value), *rgb))
            self._set_color_points(sorted(points))
        self.points_edited()

    def set_color(self, index: int, rgb) -> None:
        points = self.current_color_points()
        points[index] = (points[index][0], *(float(c) for c in rgb))
        self._set_color_points(points)
        self.points_edited()

    def _scene_clicked(self, ev) -> None:
        if not ev.double():
            return
        ev.accept()
        index = self.color_item.index_at(ev.scenePos())
        if index is not None:
            r, g, b = (int(round(255 * c)) for c in self._colors[index])
            color = QColorDialog.getColor(QColor(r, g, b), self, "Colour point")
            if color.isValid():
                self.set_color(index, (color.redF(), color.greenF(), color.blueF()))
            return
        if self.opacity_item.index_at(ev.scenePos()) is not None:
            return
        p = self.plot.getViewBox().mapSceneToView(ev.scenePos())
        self.add_point(float(p.x()), float(p.y()))

    def reset(self) -> None:
        self.set_preset(self.original, keep_original=True)
        self.preset_edited.emit(self.original.copy())
