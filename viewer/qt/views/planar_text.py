"""What each corner of a 2D image view says: plain strings from the file, so tests read exactly what is painted.

Top left: modality and kind, the image's InstanceNumber and its place in the series, the frame and its rate
for a cine, the series. Top right: patient and study (hidden with patient data). Bottom left: the VOI and its
name, inverted, zoom. Bottom right: laterality and view position, the calibration of measurements ("mm at
detector", "px (no calibration)"), acquisition date and time.
"""
from __future__ import annotations

from viewer.qt.views.corner_text import dicom_date, dicom_time


def _fps(ms: float | None) -> str:
    return f"{1000.0 / ms:.3g} fps" if ms else "no frame rate in the file: 10 fps"


def planar_corner_lines(view, patient_data: bool | None = None, acquisition_date: bool = True) -> dict:
    out = {"top_left": [], "top_right": [], "bottom_left": [], "bottom_right": [], "warnings": []}
    image = view.current
    if image is None:
        return out
    series, d = view.series, image.display
    meta = series.meta
    tl = out["top_left"]
    number = f"Im {d.instance_number}" if d.instance_number is not None else "Im (no number)"
    tl.append(f"{d.modality or series.modality} {series.kind}  {number}  ({view.image + 1}/{len(series.images)})")
    if image.n_frames > 1:
        tl.append(f"Fr {view.frame + 1}/{image.n_frames}  {_fps(d.frame_time_ms)}")
    text = " ".join(s for s in (f"Se {meta['series_number']}:" if meta.get("series_number") is not None else "",
                                str(meta.get("description") or "")) if s)
    if text:
        tl.append(text)
    out["warnings"] = ["⚠ " + w for w in series.warnings[:1]]  # their own line (corner_layout elides it)

    session = view.session
    if session.show_patient_data if patient_data is None else patient_data:
        tr = out["top_right"]
        for line in (str(meta.get("patient_name") or "").replace("^", " ").strip(), meta.get("patient_id"),
                     " ".join(s for s in (dicom_date(meta.get("patient_birth_date", "")), meta.get("patient_sex", ""))
                              if s),
                     meta.get("institution"), dicom_date(meta.get("study_date", ""))):
            if line:
                tr.append(str(line))

    bl = out["bottom_left"]
    voi = view.voi
    if image.is_color:
        bl.append(f"{d.photometric.lower()} colour")
    elif voi is not None:
        if voi.lut_index is not None:
            bl.append(voi.name)
        else:
            bl.append(f"W {voi.width:.0f} L {voi.center:.0f}" + (f" ({voi.name})" if voi.name else " (custom)"))
    if view.invert:
        bl.append("inverted")
    if d.inverted:
        bl.append("MONOCHROME1" if d.photometric == "MONOCHROME1" else "presentation LUT inverse")
    bl.append(f"Zoom {zoom_of(view):.2f}×")

    br = out["bottom_right"]
    side = " ".join(s for s in (d.laterality, d.view_position) if s)
    if side:
        br.append(side)
    br.append(f"Measure: {d.calibration.label}")
    if view.flip_h:
        br.append("flipped left–right")
    date, time = dicom_date(meta.get("series_date", "")), dicom_time(d.time or meta.get("series_time", ""))
    if (date or time) and acquisition_date:
        br.append(" ".join(s for s in (date, time) if s))
    return out


def zoom_of(view) -> float:
    try:
        px = view.vb.viewPixelSize()[0]
    except Exception:
        return 1.0
    return 1.0 / px if px else 1.0
