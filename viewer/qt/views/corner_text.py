"""What each corner of a reading view says (``shared/CONVENTIONS.md``, "Corner text").

Plain strings built from the session and the view's state, so tests can read
exactly what is painted. Patient data (top right) is left out when the
session hides it; exported screenshots ask for it explicitly (and, without
patient data, also leave out the acquisition date and time).
"""
from __future__ import annotations

import numpy as np

from viewer.core.window_presets import FROM_FILE


def dicom_date(value: str) -> str:
    value = (value or "").strip()
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if len(value) == 8 and value.isdigit() else value


def dicom_time(value: str) -> str:
    value = (value or "").strip()
    return f"{value[:2]}:{value[2:4]}:{value[4:6]}" if len(value) >= 6 and value[:6].isdigit() else value


def _value_text(value, modality: str) -> str:
    if value is None:
        return ""
    arr = np.asarray(value)
    if arr.ndim:  # colour
        return "RGB " + " ".join(str(int(v)) for v in arr)
    v = float(arr)
    text = f"{v:.0f}" if v == int(v) else f"{v:.4g}"
    return f"{text} HU" if modality == "CT" else f"Value {text}"


def corner_lines(view, patient_data: bool | None = None, acquisition_date: bool = True) -> dict[str, list[str]]:
    """The corner lines of ``view``. ``patient_data``: the top-right patient and study lines (None: as the session
    shows them); ``acquisition_date``: the bottom-right acquisition date and time (exports without patient data
    leave dates out)."""
    session, plane = view.session, view.plane
    volume = session.volume
    out = {"top_left": [], "top_right": [], "bottom_left": [], "bottom_right": []}
    if volume is None or plane is None:
        return out
    meta = volume.meta
    modality = volume.modality
    tl = out["top_left"]
    tl.append(f"{view.view.capitalize()}  Im {view.k + 1}/{plane.n_slices}")
    series = " ".join(s for s in (f"Se {meta['series_number']}:" if meta.get("series_number") is not None else "",
                                  str(meta.get("description") or "")) if s)
    if series:
        tl.append(series)
    thickness = meta.get("slice_thickness")
    tl.append(f"Thk {thickness:.2f} mm" if thickness else f"Spacing {plane.slice_spacing:.2f} mm")
    if meta.get("lossy"):
        tl.append("LOSSY COMPRESSION")
    for warning in volume.warnings[:1]:
        tl.append("⚠ " + (warning if len(warning) < 60 else warning[:57] + "…"))

    if session.show_patient_data if patient_data is None else patient_data:
        patient, study = meta.get("patient") or {}, meta.get("study") or {}
        tr = out["top_right"]
        for line in (str(patient.get("name") or "").replace("^", " ").strip(), patient.get("id"),
                     " ".join(s for s in (dicom_date(patient.get("birth_date", "")), patient.get("sex", "")) if s),
                     study.get("institution"), study.get("description"), dicom_date(study.get("date", ""))):
            if line:
                tr.append(str(line))

    bl = out["bottom_left"]
    if view.hover is not None:
        world, value = view.hover
        bl.append("Pos (LPS) {:.1f}, {:.1f}, {:.1f} mm".format(*world))
        bl.append(_value_text(value, modality))
    preset = session.preset_name or "custom"
    preset = "from file" if preset == FROM_FILE else preset
    bl.append(f"W {session.width:.0f} L {session.level:.0f} ({preset})" + ("  inverted" if session.invert else ""))
    bl.append(f"Zoom {view.zoom_factor():.2f}×")

    br = out["bottom_right"]
    series_info = meta.get("series_info") or {}
    date = dicom_date(series_info.get("date", ""))
    time = dicom_time(series_info.get("time", ""))
    if (date or time) and acquisition_date:
        br.append(" ".join(s for s in (date, time) if s))
    if modality == "MR":
        mr = [f"TR {series_info['tr']:.0f}" if series_info.get("tr") else "",
              f"TE {series_info['te']:.1f}" if series_info.get("te") else ""]
        if any(mr):
            br.append(" ".join(s for s in mr if s) + " ms")
        if series_info.get("field_strength"):
            br.append(f"{series_info['field_strength']:.1f} T")
    if modality:
        br.append(modality)
    return out
