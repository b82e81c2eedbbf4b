"""How a 2D series hangs on screen (Qt-free): which image in which cell, and which cells are flipped.

- one image: 1×1; two images (a PA + lateral pair, or any pair): side by side, frontal first;
- mammography with right and left CC and MLO views: RCC | LCC over RMLO | LMLO, the breasts back to back
  (chest walls meet in the middle): an image whose file says its anterior side (A) points toward the middle
  is flipped left–right, and its letters flip with it. Without letters nothing is flipped (and the view says
  "orientation not given");
- a longer stack (ultrasound, nuclear medicine) or a cine: 1×1, scrolled image by image.
"""
from __future__ import annotations

from dataclasses import dataclass

_FRONTAL = ("PA", "AP")
_LATERAL = ("LAT", "LL", "RL", "LATERAL")


@dataclass(frozen=True)
class Cell:
    image: int  # index into the series' images
    flip_h: bool = False


@dataclass(frozen=True)
class Hanging:
    rows: int
    columns: int
    cells: tuple[Cell, ...]
    name: str  # "single", "pair", "mammography", "stack"


def _mammo_view(display) -> str:
    view = display.view_position.upper()
    if view in ("CC", "XCCL", "XCCM", "FB"):
        return "CC"
    if view in ("MLO", "ML", "LM", "LMO", "SIO"):
        return "MLO"
    return ""


def _back_to_back_flip(display, chest_wall_side: str) -> bool:
    """Flip when the image's anterior (nipple) side is on the chest-wall side the hanging wants."""
    letters = display.orientation
    if not letters:
        return False
    return "A" in letters.get(chest_wall_side, "")


def mammography(series) -> Hanging | None:
    """RCC | LCC over RMLO | LMLO, when the series has those views (first image of each)."""
    slots: dict[tuple[str, str], int] = {}
    for i, image in enumerate(series.images):
        d = image.display
        side, view = d.laterality.upper()[:1], _mammo_view(d)
        if side in ("R", "L") and view and (side, view) not in slots:
            slots[(side, view)] = i
    if not ({("R", "CC"), ("L", "CC")} <= set(slots) or {("R", "MLO"), ("L", "MLO")} <= set(slots)):
        return None
    cells = []
    rows = [v for v in ("CC", "MLO") if ("R", v) in slots or ("L", v) in slots]
    for view in rows:
        for side, chest_wall in (("R", "right"), ("L", "left")):
            index = slots.get((side, view))
            if index is None:
                cells.append(Cell(-1))
                continue
            cells.append(Cell(index, _back_to_back_flip(series.images[index].display, chest_wall)))
    return Hanging(len(rows), 2, tuple(cells), "mammography")


def hang(series) -> Hanging:
    images = series.images
    if len(images) >= 2 and series.modality == "MG":
        mg = mammography(series)
        if mg is not None:
            return mg
    if len(images) == 1:
        return Hanging(1, 1, (Cell(0),), "single")
    if len(images) == 2 and series.kind != "cine":
        views = [im.display.view_position.upper() for im in images]
        order = (1, 0) if views[1] in _FRONTAL and views[0] in _LATERAL else (0, 1)
        return Hanging(1, 2, tuple(Cell(i) for i in order), "pair")
    return Hanging(1, 1, (Cell(0),), "stack")


def flipped_letters(letters: dict | None, flip_h: bool) -> dict | None:
    """The edge letters after a left–right flip (the letters move with the image)."""
    if not letters or not flip_h:
        return letters
    return {**letters, "left": letters["right"], "right": letters["left"]}
