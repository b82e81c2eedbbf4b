"""What a 2D image's file says about how to show it: orientation letters, calibration, frame timing, VOI.

Radiographs, mammograms, ultrasound, nuclear medicine and cine have no common 3D grid: each image carries its
own size, pixel spacing, calibration, letters and frames (DICOM PS3.3 C.7.6.1.1.1 PatientOrientation,
C.8.4.x ImagerPixelSpacing / ERMF, C.8.5.5 ultrasound regions, C.7.6.5 cine, C.11.2 VOI LUT). Read once with
pydicom (header only, overlays included) into a frozen :class:`ImageDisplay`. Nothing is invented: where the
file does not say, the value is ``None`` and the screen says so.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import pydicom

#: letters of PatientOrientation and their opposites (H head, F foot)
_OPPOSITE = {"A": "P", "P": "A", "R": "L", "L": "R", "H": "F", "F": "H"}
#: LPS axes → letters for ImageOrientationPatient directions (+x L, +y P, +z H)
_AXIS_LETTERS = (("R", "L"), ("A", "P"), ("F", "H"))
PROJECTION_MODALITIES = frozenset({"CR", "DX", "MG", "IO", "PX", "XA", "RF"})
CINE_MODALITIES = frozenset({"US", "XA", "RF", "OT", "SC", "ES", "XC", "NM", "IVUS"})
#: DICOM PhysicalUnits (0018,6024): 3 = cm
_UNITS_CM = 3


@dataclass(frozen=True)
class Calibration:
    """How distances on the image are measured: ``source`` names the attribute, ``spacing_mm`` (row, col)."""

    source: str  # "PixelSpacing" | "ImagerPixelSpacing" | "ImagerPixelSpacing/ERMF" | "UltrasoundRegion" | "none"
    spacing_mm: tuple[float, float] | None = None
    region: tuple[int, int, int, int] | None = None  # ultrasound: (x0, y0, x1, y1), pixel bounds inclusive
    magnification: float | None = None

    @property
    def unit(self) -> str:
        return "px" if self.spacing_mm is None else "mm"

    @property
    def label(self) -> str:
        """What the number means, shown beside every measurement and the scale bar."""
        if self.source == "ImagerPixelSpacing":
            return "mm at detector"
        if self.source == "ImagerPixelSpacing/ERMF":
            return f"mm (detector ÷ magnification {self.magnification:g})"
        if self.source == "UltrasoundRegion":
            return "mm (ultrasound region)"
        if self.source == "PixelSpacing":
            return "mm"
        return "px (no calibration)"

    def applies(self, points_rc) -> bool:
        """True when every (row, col) point lies where this calibration holds (the US region, or anywhere)."""
        if self.spacing_mm is None:
            return False
        if self.region is None:
            return True
        x0, y0, x1, y1 = self.region
        return all(y0 - 0.5 <= r <= y1 + 0.5 and x0 - 0.5 <= c <= x1 + 0.5 for r, c in points_rc)

    def length(self, a_rc, b_rc) -> tuple[float, str]:
        """(value, unit) of the distance between two (row, col) points: mm where calibrated, else pixels."""
        dr, dc = b_rc[0] - a_rc[0], b_rc[1] - a_rc[1]
        if self.applies([a_rc, b_rc]):
            sy, sx = self.spacing_mm
            return math.hypot(dr * sy, dc * sx), "mm"
        return math.hypot(dr, dc), "px"

    def as_dict(self) -> dict:
        return {"calibration": self.source,
                "pixel_spacing_mm": list(self.spacing_mm) if self.spacing_mm else None,
                "label": self.label, "region": list(self.region) if self.region else None}


@dataclass(frozen=True)
class VoiPreset:
    """One VOI the file offers: a window pair (``center``/``width``) or a VOI LUT Sequence item (``lut_index``)."""

    name: str
    center: float | None = None
    width: float | None = None
    function: str = "LINEAR"  # LINEAR, LINEAR_EXACT, SIGMOID
    lut_index: int | None = None


@dataclass(frozen=True)
class ImageDisplay:
    """One 2D image's display attributes (one file; cine frames share them)."""

    path: str
    sop_instance_uid: str
    sop_class_uid: str
    modality: str
    instance_number: int | None
    time: str  # AcquisitionTime / ContentTime, for ordering
    rows: int
    columns: int
    frames: int
    photometric: str
    orientation: dict | None  # {"left", "right", "top", "bottom"} letters, or None
    orientation_source: str  # "ImageOrientationPatient" | "PatientOrientation" | "none"
    calibration: Calibration
    frame_time_ms: float | None
    frame_times_ms: tuple[float, ...] = ()  # per-frame display times (FrameTimeVector), when given
    laterality: str = ""
    view_position: str = ""
    presentation_lut_shape: str = ""
    voi_presets: tuple[VoiPreset, ...] = ()
    has_modality_lut_sequence: bool = False
    shutter: dict | None = None
    overlay_groups: tuple[int, ...] = ()
    description: str = ""
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def inverted(self) -> bool:
        """MONOCHROME1, or a Presentation LUT Shape INVERSE: the lowest value shows white (PS3.3 C.11.6)."""
        return self.photometric == "MONOCHROME1" or self.presentation_lut_shape == "INVERSE"

    def as_dict(self) -> dict:
        """The ``display`` object of ``radview-cli index --json``."""
        cal = self.calibration
        return {"orientation": dict(self.orientation) if self.orientation else None,
                "orientation_source": self.orientation_source,
                "pixel_spacing_mm": [round(v, 6) for v in cal.spacing_mm] if cal.spacing_mm else None,
                "calibration": cal.source, "calibration_label": cal.label,
                "frames": self.frames,
                "frame_time_ms": round(self.frame_time_ms, 4) if self.frame_time_ms else None,
                "photometric": self.photometric, "inverted": self.inverted,
                "laterality": self.laterality or None, "view_position": self.view_position or None,
                "voi": [p.name for p in self.voi_presets],
                "shutter": self.shutter["shape"] if self.shutter else None,
                "overlays": len(self.overlay_groups)}


# --- parsing helpers ---------------------------------------------------------------------------------------
def _floats(value) -> list[float]:
    if value is None:
        return []
    values = value if isinstance(value, (list, tuple, pydicom.multival.MultiValue)) else [value]
    out = []
    for v in values:
        try:
            f = float(v)
        except (TypeError, ValueError):
            return []
        if not math.isfinite(f):
            return []
        out.append(f)
    return out


def _text(ds, keyword: str) -> str:
    value = ds.get(keyword)
    if value is None:
        return ""
    if isinstance(value, pydicom.multival.MultiValue):
        value = "\\".join(str(v) for v in value)
    return str(value).strip()


def _int(ds, keyword: str) -> int | None:
    try:
        return int(ds.get(keyword))
    except (TypeError, ValueError):
        return None


def letters_from_patient_orientation(value) -> dict | None:
    """PatientOrientation (row direction, column direction) → the four edge letters, or None if not usable."""
    if value is None:
        return None
    parts = [str(v).strip().upper() for v in (value if isinstance(value, (list, tuple, pydicom.multival.MultiValue))
                                              else str(value).split("\\"))]
    if len(parts) != 2 or not all(parts) or any(ch not in _OPPOSITE for p in parts for ch in p):
        return None
    right, bottom = parts
    return {"right": right, "left": "".join(_OPPOSITE[c] for c in right),
            "bottom": bottom, "top": "".join(_OPPOSITE[c] for c in bottom)}


def _direction_letters(vector, threshold: float = 0.25) -> str:
    """LPS direction → letters, strongest axis first (R/L, A/P, F/H), as for oblique planes."""
    order = sorted(range(3), key=lambda i: -abs(vector[i]))
    return "".join(_AXIS_LETTERS[i][vector[i] > 0] for i in order if abs(vector[i]) >= threshold)


def letters_from_iop(iop) -> dict | None:
    values = _floats(iop)
    if len(values) != 6:
        return None
    row, col = values[:3], values[3:]
    nr, nc = math.hypot(*row), math.hypot(*col)
    cross = math.hypot(row[1] * col[2] - row[2] * col[1], row[2] * col[0] - row[0] * col[2],
                       row[0] * col[1] - row[1] * col[0])
    if not (0.5 < nr < 2 and 0.5 < nc < 2) or cross <= 0.5 * nr * nc:  # zero, huge, tiny or parallel: says nothing
        return None
    right, bottom = _direction_letters(row), _direction_letters(col)
    left, top = _direction_letters([-v for v in row]), _direction_letters([-v for v in col])
    return {"right": right, "left": left, "bottom": bottom, "top": top}


def _us_calibration(ds) -> Calibration | None:
    for item in ds.get("SequenceOfUltrasoundRegions") or []:
        if _int(item, "PhysicalUnitsXDirection") != _UNITS_CM or _int(item, "PhysicalUnitsYDirection") != _UNITS_CM:
            continue
        dx, dy = _floats(item.get("PhysicalDeltaX")), _floats(item.get("PhysicalDeltaY"))
        bounds = [_int(item, k) for k in ("RegionLocationMinX0", "RegionLocationMinY0",
                                          "RegionLocationMaxX1", "RegionLocationMaxY1")]
        if not dx or not dy or dx[0] == 0 or dy[0] == 0 or None in bounds:
            continue
        return Calibration("UltrasoundRegion", (abs(dy[0]) * 10.0, abs(dx[0]) * 10.0), tuple(bounds))
    return None


def calibration_of(ds) -> Calibration:
    """PixelSpacing; else ImagerPixelSpacing (÷ ERMF where given); else an ultrasound region; else none (px)."""
    spacing = _floats(ds.get("PixelSpacing"))
    if len(spacing) == 2 and min(spacing) > 0:
        return Calibration("PixelSpacing", (spacing[0], spacing[1]))
    imager = _floats(ds.get("ImagerPixelSpacing"))
    if len(imager) == 2 and min(imager) > 0:
        ermf = _floats(ds.get("EstimatedRadiographicMagnificationFactor"))
        if ermf and ermf[0] > 0 and ermf[0] != 1.0:
            return Calibration("ImagerPixelSpacing/ERMF", (imager[0] / ermf[0], imager[1] / ermf[0]),
                               magnification=ermf[0])
        return Calibration("ImagerPixelSpacing", (imager[0], imager[1]))
    return _us_calibration(ds) or Calibration("none")


def frame_timing(ds, n_frames: int) -> tuple[float | None, tuple[float, ...]]:
    """(mean frame time in ms, per-frame times) from FrameTime, FrameTimeVector, CineRate or
    RecommendedDisplayFrameRate, in that order; (None, ()) where the file gives no rate."""
    ft = _floats(ds.get("FrameTime"))
    if ft and ft[0] > 0:
        return ft[0], ()
    vector = _floats(ds.get("FrameTimeVector"))
    if len(vector) >= 2 and all(v >= 0 for v in vector) and sum(vector[1:]) > 0:
        steps = tuple(vector[1:])
        return sum(steps) / len(steps), steps
    for keyword in ("CineRate", "RecommendedDisplayFrameRate"):
        rate = _floats(ds.get(keyword))
        if rate and rate[0] > 0:
            return 1000.0 / rate[0], ()
    return None, ()


def voi_presets(ds) -> tuple[VoiPreset, ...]:
    """Every window pair (with its WindowCenterWidthExplanation) and every VOI LUT Sequence item of the file."""
    centers, widths = _floats(ds.get("WindowCenter")), _floats(ds.get("WindowWidth"))
    explanations = ds.get("WindowCenterWidthExplanation")
    if isinstance(explanations, (str, bytes)) or explanations is None:
        explanations = [explanations] if explanations else []
    function = _text(ds, "VOILUTFunction").upper() or "LINEAR"
    if function not in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
        function = "LINEAR"
    presets = []
    for i, (c, w) in enumerate(zip(centers, widths)):
        if w <= 0:
            continue
        explanation = str(explanations[i]).strip() if i < len(explanations) and explanations[i] else ""
        name = f"{explanation} " if explanation else ""
        name += f"W {w:g} / L {c:g}" + ("" if function == "LINEAR" else f" ({function.lower()})")
        presets.append(VoiPreset(name, c, w, function))
    for i, item in enumerate(ds.get("VOILUTSequence") or []):
        if "LUTDescriptor" in item and "LUTData" in item:
            explanation = _text(item, "LUTExplanation")
            presets.append(VoiPreset(f"VOI LUT {i + 1}" + (f": {explanation}" if explanation else ""), lut_index=i))
    return tuple(presets)


def shutter_of(ds) -> dict | None:
    """The display shutter (PS3.3 C.7.6.11): its shapes and geometry, or None."""
    shapes = {s.strip().upper() for s in _text(ds, "ShutterShape").split("\\") if s.strip()}
    if not shapes:
        return None
    out: dict = {"shape": "\\".join(sorted(shapes))}
    if "RECTANGULAR" in shapes:
        edges = [_int(ds, k) for k in ("ShutterLeftVerticalEdge", "ShutterRightVerticalEdge",
                                       "ShutterUpperHorizontalEdge", "ShutterLowerHorizontalEdge")]
        if None not in edges:
            out["rectangle"] = edges  # left, right, upper, lower (1-based columns / rows)
    if "CIRCULAR" in shapes:
        centre, radius = _floats(ds.get("CenterOfCircularShutter")), _int(ds, "RadiusOfCircularShutter")
        if len(centre) == 2 and radius:
            out["circle"] = [centre[0], centre[1], radius]  # row, column (1-based), radius
    if "POLYGONAL" in shapes:
        vertices = _floats(ds.get("VerticesOfThePolygonalShutter"))
        if len(vertices) >= 6 and len(vertices) % 2 == 0:
            out["polygon"] = [vertices[i:i + 2] for i in range(0, len(vertices), 2)]  # (row, column) pairs
    value = _int(ds, "ShutterPresentationValue")
    out["value"] = value if value is not None else 0
    return out if len(out) > 2 else None


def overlay_groups(ds) -> tuple[int, ...]:
    """The repeating groups 6000–601E that hold a graphics overlay plane (OverlayData present)."""
    return tuple(g for g in range(0x6000, 0x6020, 2) if (g, 0x3000) in ds and (g, 0x0010) in ds)


def image_display(path: str, ds, n_frames: int | None = None) -> ImageDisplay:
    """The :class:`ImageDisplay` of one file's dataset (header; pixel data not needed)."""
    rows, cols = _int(ds, "Rows") or 0, _int(ds, "Columns") or 0
    frames = n_frames or _int(ds, "NumberOfFrames") or 1
    warnings = []
    letters = letters_from_iop(ds.get("ImageOrientationPatient"))
    source = "ImageOrientationPatient" if letters else "none"
    if letters is None:
        letters = letters_from_patient_orientation(ds.get("PatientOrientation"))
        source = "PatientOrientation" if letters else "none"
    if letters is None:
        warnings.append("orientation not given")
    frame_time, frame_times = frame_timing(ds, frames) if frames > 1 else (None, ())
    return ImageDisplay(
        path=path, sop_instance_uid=_text(ds, "SOPInstanceUID"), sop_class_uid=_text(ds, "SOPClassUID"),
        modality=_text(ds, "Modality"), instance_number=_int(ds, "InstanceNumber"),
        time=_text(ds, "AcquisitionTime") or _text(ds, "ContentTime"),
        rows=rows, columns=cols, frames=frames,
        photometric=_text(ds, "PhotometricInterpretation").upper() or "MONOCHROME2",
        orientation=letters, orientation_source=source, calibration=calibration_of(ds),
        frame_time_ms=frame_time, frame_times_ms=frame_times,
        laterality=_text(ds, "ImageLaterality") or _text(ds, "Laterality"),
        view_position=_text(ds, "ViewPosition").upper(),
        presentation_lut_shape=_text(ds, "PresentationLUTShape").upper(),
        voi_presets=voi_presets(ds), has_modality_lut_sequence="ModalityLUTSequence" in ds,
        shutter=shutter_of(ds), overlay_groups=overlay_groups(ds),
        description=_text(ds, "SeriesDescription"), warnings=tuple(warnings))


def read_display(path: str) -> tuple[ImageDisplay, object]:
    """(display attributes, the pydicom header without pixel data) of the file at ``path``."""
    ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    return image_display(path, ds), ds
