"""What each corner of a reading view says (``shared/CONVENTIONS.md``, "Corner text").

Plain strings built from the session and the view's state, so tests can read
exactly what is painted (where each line goes, elided to fit, is
:mod:`viewer.qt.views.corner_layout`'s job). Patient data (top right) is left
out when the session hides it; exported screenshots ask for it explicitly (and,
without patient data, also leave out the acquisition date and time).

* top left: the image number ("Im 20/134" is InstanceNumber 20 in the plane the
  series was acquired in; a reformat says so), the time point of a 4D series
  ("Time 2/3 · TPI 2"), the slice's position in mm and its thickness (a slab's
  mode and thickness: "MIP 10.0 mm"), series number and description, lossy
  compression;
* top right: patient name, ID, birth date and sex, institution, study
  description and date;
* bottom left: cursor position (LPS, mm) and value, W/L with the preset's name,
  zoom;
* bottom right: acquisition date and time; CT: kVp, mAs, kernel; MR: TR/TE,
  field strength; the modality;
* warnings: what the loader found odd, on a line of their own below the top
  blocks.
"""
from __future__ import annotations

import numpy as np

from viewer.core.slicing import slice_location
from viewer.core.timepoints import single
from viewer.core.window_presets import FROM_FILE

CORNERS = ("top_left", "top_right", "bottom_left", "bottom_right")
WARNINGS = "warnings"


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


def _number(value: float) -> str:
    return f"{value:.0f}" if abs(value - round(value)) < 0.05 else f"{value:.1f}"


def image_line(view) -> str:
    """The first top-left line: the image number, "Im 20/134" (InstanceNumber 20) or "Im 12/256 reformat"."""
    return view.image_numbers.text(view.k) if view.image_numbers is not None else ""


def time_line(view) -> str:
    """The time point shown of a 4D series, "Time 2/3 · TPI 2" ("" for a 3D volume)."""
    volume = view.session.volume
    if volume is None or volume.n_timepoints < 2:
        return ""
    axis = volume.meta.get("time_axis") or single(volume.n_timepoints)
    return axis.text(volume.timepoint)


def location_line(view) -> str:
    """The slice's position, e.g. "Z -123.5 mm", and its thickness: the series' SliceThickness in the acquired
    plane, the spacing of the reformatted slices in a reformat; a slab's mode and thickness ("MIP 10.0 mm")."""
    label, mm = slice_location(view.plane, view.k)
    slab = view.session.slab
    if slab.active and view.plane.n_slices > 1 and not view.session.volume.is_color:
        return f"{label} {mm:.1f} mm  {slab.text(view.plane)}"
    thickness = (view.session.volume.meta or {}).get("slice_thickness")
    native = view.image_numbers is not None and view.image_numbers.native
    return f"{label} {mm:.1f} mm  Thk {thickness if thickness and native else view.plane.slice_spacing:.2f} mm"


def acquisition_lines(meta: dict, modality: str, acquisition_date: bool = True) -> list[str]:
    """Bottom right: acquisition date and time; CT kVp, mAs and kernel; MR TR/TE and field strength; modality."""
    out = []
    info = meta.get("series_info") or {}
    date = dicom_date(info.get("acquisition_date") or info.get("date") or "")
    time = dicom_time(info.get("acquisition_time") or info.get("time") or "")
    if (date or time) and acquisition_date:
        out.append(" ".join(s for s in (date, time) if s))
    if modality == "CT":
        exposure = [f"{_number(info['kvp'])} kVp" if info.get("kvp") else "",
                    f"{_number(info['mas'])} mAs" if info.get("mas") else ""]
        if any(exposure):
            out.append("  ".join(s for s in exposure if s))
        if info.get("kernel"):
            out.append(f"Kernel {info['kernel']}")
    if modality == "MR":
        tr, te = info.get("tr"), info.get("te")
        mr = [f"TR {tr:.0f}" if tr and tr >= 100 else f"TR {tr:.1f}" if tr else "", f"TE {te:.1f}" if te else ""]
        if any(mr):
            out.append(" ".join(s for s in mr if s) + " ms")
        if info.get("field_strength"):
            out.append(f"{info['field_strength']:.1f} T")
    if modality:
        out.append(modality)
    return out


def corner_lines(view, patient_data: bool | None = None, acquisition_date: bool = True) -> dict[str, list[str]]:
    """The corner lines of ``view`` (keys :data:`CORNERS` and :data:`WARNINGS`). ``patient_data``: the top-right
    patient and study lines (None: as the session shows them); ``acquisition_date``: the bottom-right acquisition
    date and time (exports without patient data leave dates out)."""
    session, plane = view.session, view.plane
    volume = session.volume
    out: dict[str, list[str]] = {corner: [] for corner in (*CORNERS, WARNINGS)}
    if volume is None or plane is None:
        return out
    meta = volume.meta
    modality = volume.modality
    tl = out["top_left"]
    tl.append(image_line(view))
    if time_line(view):
        tl.append(time_line(view))
    tl.append(location_line(view))
    series = " ".join(s for s in (f"Se {meta['series_number']}:" if meta.get("series_number") is not None else "",
                                  str(meta.get("description") or "")) if s)
    if series:
        tl.append(series)
    if meta.get("lossy"):
        tl.append("LOSSY COMPRESSION")
    out[WARNINGS] = ["⚠ " + warning for warning in volume.warnings[:2]]

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
        bl.append("LPS {:.1f}, {:.1f}, {:.1f} mm".format(*world))
        bl.append(_value_text(value, modality))
    preset = session.preset_name or "custom"
    preset = "from file" if preset == FROM_FILE else preset
    bl.append(f"W {session.width:.0f} L {session.level:.0f} ({preset})" + ("  inverted" if session.invert else ""))
    bl.append(f"Zoom {view.zoom_factor():.2f}×")

    out["bottom_right"] = acquisition_lines(meta, modality, acquisition_date)
    return out
