"""Help → Mouse and keys, Help → About radview."""
from __future__ import annotations

from PySide6.QtWidgets import QMessageBox, QWidget

from viewer import ABOUT_TEXT

KEYS_HELP = """<b>Mouse</b>: wheel scroll · left-drag window/level · middle-drag pan · right-drag or Ctrl+wheel zoom ·
Shift+move or Shift+click move the linked cursor · double-click maximise.<br>
<b>Keys</b>: Up/Down (Shift ×10), Home/End slices · PgUp/PgDn previous/next series · 0 window from file,
1 soft tissue, 2 lung, 3 bone, 4 brain, 5 liver, 6 mediastinum, 7 stroke, 8 CT angiography · Space reset ·
I invert · C cine · H crosshair · F12 corner text · Shift+F12 hide patient data · G overlays. Down / wheel down:
the next image (InstanceNumber) in the acquired plane, toward feet / back / left in reformats. Keys work wherever
focus is in the window. Ctrl+drag on the crosshair: oblique planes (View → Reset plane rotation) · toolbar Slice box:
MIP / MinIP / average slabs in mm · 4D series: Ctrl+Left/Right or , / . previous/next time point, Shift+C cine over
time.<br>
<b>Measure</b>: L length · A angle · E ellipse ROI · R rectangle ROI · T text arrow · Esc back to navigation ·
drag or click-click to draw · click to select, drag to move, drag an end point to reshape · Delete removes ·
Ctrl+Z / Ctrl+Y undo / redo. Measurements are saved after every change.<br>
<b>Radiographs, ultrasound, cine</b> (2D images): wheel or Up/Down next image (or frame) · Left/Right frame
step · C play/pause at the file's rate · 0–9 the file's own windows (VOIs), then full range · H flip left–right ·
O overlay planes · S display shutter · measurements in the image's own calibration ("mm at detector", "px").<br>
<b>Label maps</b>: B brush · X (or Shift+B) eraser · [ / ] brush radius · the label painted: toolbar Label box or a
click in the Overlays legend · Ctrl+Z undoes a stroke.<br>
<b>AI review</b> (Findings panel): Y accept · N reject · U not reviewed · Shift+Y / Shift+N accept / reject the
result as a whole · right-click for more. Decisions are saved with the study and undone with Ctrl+Z."""


def show_keys_help(parent: QWidget) -> None:
    QMessageBox.information(parent, "Mouse and keys", KEYS_HELP)


def show_about(parent: QWidget) -> None:
    QMessageBox.about(parent, "About radview", ABOUT_TEXT)
