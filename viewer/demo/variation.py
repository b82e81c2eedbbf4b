"""How a seeded demo patient differs from the demo's own: :class:`Variation`, drawn from the seed alone.

The defaults are the demo study's patient (``radview-cli demo`` without ``--seed``); any other seed varies
the marrow and cortical bone density (down to osteoporotic marrow), the contrast phase (none, venous,
arterial), the body size, a foam pad under the back, clothing, the number, sizes and types of the nodules,
and (drawn after those, so they stay what they were) the patient's position in the field of view and the
lungs' own shape and volume: the height of each diaphragm dome and of the apices (inspiration), and the
subcutaneous fat in front and behind and on each side, which narrows or widens the chest cavity (and so
the lungs) inside an unchanged skin outline.

Only numbers here (no grid, no painting): ``viewer.demo.phantom`` applies them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_SEED = 20240601

#: (diameter mm, type) of the demo's lung nodules, placed largest first.
NODULE_SPECS: tuple[tuple[float, str], ...] = (
    (25.0, "solid"),
    (18.0, "ground-glass"),
    (12.0, "solid"),
    (8.0, "ground-glass"),
    (6.0, "solid"),
    (4.0, "solid"),
)
BLOOD_HU = 45.0  # unenhanced blood: contrast-filled vessels and chambers are scaled from it

#: lateral offset drawn for a seeded patient (mm); the phantom narrows it to what the field of view allows
OFFSET_X_MM = 30.0
#: anterior/posterior offset of the patient with the table (the table height against the isocentre, mm)
OFFSET_Y_MM = 25.0


@dataclass(frozen=True)
class Variation:
    """How a seeded phantom differs from the demo's patient (the defaults are the demo's)."""

    marrow_shift_hu: float = 0.0  # added to cancellous bone and marrow
    cortex_factor: float = 1.0  # cortical bone density above soft tissue, relative
    contrast_factor: float = 1.0  # enhancement of blood above BLOOD_HU, relative (0: no contrast)
    body_scale: float = 1.0
    pad_mm: float = 0.0  # a foam pad on the table, this thick (touching the back when thick enough)
    clothing: bool = False
    nodule_specs: tuple[tuple[float, str], ...] = NODULE_SPECS
    # where the patient lies: + toward patient left (x) and posterior (y); the table moves with y (its
    # height), not with x (the patient lies off-centre on it); make_phantom narrows x where a wide body
    # would leave the field of view
    offset_x_mm: float = 0.0
    offset_y_mm: float = 0.0
    # the lungs' own shape: dome tops raised (+) or lowered (-), a lowered dome flatter (its recesses reach
    # no lower than the demo's); the apices lowered (-); subcutaneous fat relative to the demo's, on each
    # side and front/back (the skin stays where it is: more fat, a smaller chest cavity)
    dome_right_mm: float = 0.0
    dome_left_mm: float = 0.0
    apex_mm: float = 0.0
    fat_right: float = 1.0
    fat_left: float = 1.0
    fat_ap: float = 1.0

    @classmethod
    def from_seed(cls, seed: int) -> "Variation":
        if seed == DEFAULT_SEED:
            return cls()
        rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 17])
        phase = rng.choice(["none", "venous", "arterial"])
        contrast = {"none": 0.0, "venous": rng.uniform(0.55, 0.8), "arterial": rng.uniform(1.0, 1.35)}[phase]
        n = int(rng.integers(4, 8))
        sizes = [float(rng.choice([6.0, 7.0, 8.0, 10.0, 12.0, 15.0, 20.0])) for _ in range(3)]
        sizes += [float(rng.choice([4.0, 5.0, 6.0, 8.0, 10.0, 14.0, 18.0])) for _ in range(n - 3)]
        specs = tuple((d, "ground-glass" if d >= 8.0 and rng.uniform() < 0.3 else "solid")
                      for d in sorted(sizes, reverse=True))
        base = dict(marrow_shift_hu=float(rng.uniform(-110.0, 30.0)), cortex_factor=float(rng.uniform(0.6, 1.1)),
                    contrast_factor=float(contrast), body_scale=float(rng.uniform(0.92, 1.08)),
                    pad_mm=float(rng.uniform(6.0, 14.0)), clothing=bool(rng.uniform() < 0.7), nodule_specs=specs)
        # drawn after the above, so a seed keeps the bone, contrast, size, pad, clothing and nodules it had
        rise = float(rng.uniform(-1.0, 1.0))  # breathing: both domes move together, each a little on its own
        fat = float(rng.uniform(0.55, 1.6))  # the patient's fat, each side and front/back a little on its own
        return cls(**base,
                   offset_x_mm=float(rng.uniform(-OFFSET_X_MM, OFFSET_X_MM)),
                   offset_y_mm=float(rng.uniform(-OFFSET_Y_MM, OFFSET_Y_MM)),
                   dome_right_mm=float(18.0 * rise + rng.uniform(-6.0, 6.0)),
                   dome_left_mm=float(18.0 * rise + rng.uniform(-6.0, 6.0)),
                   apex_mm=float(rng.uniform(-15.0, 0.0)),
                   fat_right=float(fat * rng.uniform(0.85, 1.15)), fat_left=float(fat * rng.uniform(0.85, 1.15)),
                   fat_ap=float(fat * rng.uniform(0.8, 1.2)))

    def blood(self, hu: float) -> float:
        return hu if self.contrast_factor == 1.0 else BLOOD_HU + (hu - BLOOD_HU) * self.contrast_factor

    def marrow(self, hu: float) -> float:
        return hu + self.marrow_shift_hu

    def cortex(self, hu: float) -> float:
        return hu if self.cortex_factor == 1.0 else 40.0 + (hu - 40.0) * self.cortex_factor
