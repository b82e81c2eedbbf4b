"""Read one DICOM file's header (never its pixel data) into plain records.

A file becomes an :class:`ImageFile` with one :class:`FrameRecord` per frame
(enhanced multi-frame objects carry per-frame geometry in functional groups),
or a :class:`Skipped` with a reason a user can read.
"""
from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass, field

import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from viewer.io.b_value import b_value, pydicom_private_elements
from viewer.io.fast_header import LONG_VRS, PIXEL_TAGS, FastDataset, read_fast
from viewer.io.regular_file import not_regular_reason, open_bounded

pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE

#: SOP classes that never hold an image (reason shown to the user).
NON_IMAGE_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.66": "Raw Data object (vendor raw data, not an image)",
    "1.2.840.10008.5.1.4.1.1.66.1": "Spatial Registration object (not an image)",
    "1.2.840.10008.5.1.4.1.1.66.4": "DICOM SEG segmentation (open it as a segmentation of its source series)",
    "1.2.840.10008.5.1.4.1.1.481.3": "RT Structure Set (contours, not an image)",
    "1.2.840.10008.5.1.4.1.1.11.1": "Grayscale Softcopy Presentation State (not an image)",
    "1.2.840.10008.5.1.4.1.1.104.1": "Encapsulated PDF (not an image)",
    "1.2.840.10008.5.1.4.1.1.88.11": "Basic Text SR (a report, not an image)",
    "1.2.840.10008.5.1.4.1.1.88.22": "Enhanced SR (a report, not an image)",
    "1.2.840.10008.5.1.4.1.1.88.33": "Comprehensive SR (a report, not an image)",
    "1.2.840.10008.5.1.4.1.1.88.34": "Comprehensive 3D SR (a report, not an image)",
    "1.2.840.10008.5.1.4.1.1.88.59": "Key Object Selection (not an image)",
}
SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"
#: a file whose pixel data would decode to more than this is refused at index time (never allocated)
MAX_DECODED_BYTES = 4 * 2**30
_NATIVE_LE = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"}
_BIG_ENDIAN = "1.2.840.10008.1.2.2"


@dataclass(slots=True)
class FrameRecord:
    """One 2D image: a single-frame file or one frame of a multi-frame file."""

    file: "ImageFile"
    frame: int
    position: tuple[float, float, float] | None
    orientation: tuple[float, ...] | None
    pixel_spacing: tuple[float, float] | None  # (row spacing, column spacing) as in DICOM
    slice_thickness: float | None
    slope: float
    intercept: float
    echo: float | None
    component: str
    temporal_key: tuple
    acquisition: int | None
    frame_type: tuple[str, ...] = ()
    philips_scale: float | None = None  # private (2005,100E): Philips floating-point scaling
    #: DiffusionBValue (0018,9087), classic or in the MR Diffusion macro, else the vendor's private b-value
    #: (:mod:`viewer.io.b_value`; s/mm²)
    b_value: float | None = None
    #: why ``position`` is None although ImagePositionPatient is given (NaN, infinite, not three numbers); "" else
    position_problem: str = ""


@dataclass(slots=True)
class ImageFile:
    path: str
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax: str
    patient: dict
    study: dict
    series: dict
    modality: str
    image_type: tuple[str, ...]
    rows: int
    columns: int
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    samples_per_pixel: int
    photometric: str
    planar_configuration: int
    number_of_frames: int
    pixel_tag: str
    pixel_offset: int | None  # byte offset of the native pixel values, None if encapsulated/deflated
    pixel_length: int | None
    lossy: bool
    window: tuple[float, float] | None  # (center, width)
    category: str  # "image", "localizer" or "secondary"
    frames: list[FrameRecord] = field(default_factory=list)
    instance_number: int | None = None  # InstanceNumber: "image 20" on PACS and in the corner text
    #: byte offset of the pixel data element's value whatever the transfer syntax (None for deflate): where the
    #: pixel reader looks when the declared transfer syntax does not decode (``pixel_offset`` is for native data)
    pixel_value_offset: int | None = None

    @property
    def big_endian(self) -> bool:
        return self.transfer_syntax == _BIG_ENDIAN

    @property
    def is_native(self) -> bool:
        return self.pixel_offset is not None


@dataclass(frozen=True, slots=True)
class Skipped:
    path: str
    reason: str


def _f(value, default=None):
    try:
        if value is None or value == "":
            return default
        value = float(value)
    except (TypeError, ValueError, OverflowError):
        return default
    return value if math.isfinite(value) else default  # "nan"/"inf" in a DS: treat as absent


def _i(value, default=None):
    try:
        if value is None or value == "":
            return default
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return default


def _bits_stored(value, bits_allocated: int) -> int:
    """BitsStored, or BitsAllocated where it is absent or impossible (0, negative, above BitsAllocated)."""
    return value if value is not None and 0 < value <= bits_allocated else bits_allocated


def _floats(value, n, positive=False):
    try:
        vals = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    if len(vals) != n or not all(math.isfinite(v) for v in vals):
        return None
    if positive and min(vals) <= 0:
        return None
    return vals


def _position(value) -> tuple[tuple[float, float, float] | None, str]:
    """(ImagePositionPatient as three finite floats or None, why a value that is given cannot be used)."""
    position = _floats(value, 3)
    if position is not None or value is None or value == "":
        return position, ""
    try:
        text = ", ".join(str(v) for v in value) if isinstance(value, (list, tuple, pydicom.multival.MultiValue)) \
            else str(value)
    except Exception:  # a value that cannot even be shown
        text = "?"
    return None, f"ImagePositionPatient ({text[:60]}) is not a position"


def _orientation(value):
    """ImageOrientationPatient as six floats, or None when absent or degenerate (a zero, huge or tiny
    direction cosine, or row and column directions (nearly) parallel): such a value cannot place an image."""
    o = _floats(value, 6)
    if o is None:
        return None
    r, c = o[:3], o[3:]
    nr, nc = math.hypot(*r), math.hypot(*c)
    if not (0.5 < nr < 2 and 0.5 < nc < 2):
        return None
    cross = math.hypot(r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0])
    return o if cross > 0.5 * nr * nc else None


def _text(ds, keyword, default=""):
    try:
        value = ds.get(keyword, default)
    except Exception:  # a malformed element: treat as absent
        return default
    if value is None:
        return default
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def _strings(value) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value.upper(),)
    return tuple(str(v).upper() for v in value)


def _first(value):
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        return value[0] if len(value) else None
    return value


def _component(image_type: tuple[str, ...], complex_component: str = "") -> str:
    """Magnitude/phase/real/imaginary, as dcm2niix splits them."""
    cc = complex_component.upper()
    if cc in ("PHASE", "REAL", "IMAGINARY"):
        return cc.lower()
    tokens = {t.upper() for t in image_type[2:]}
    if tokens & {"P", "PHASE", "PHASE MAP"}:
        return "phase"
    if tokens & {"R", "REAL"}:
        return "real"
    if tokens & {"I", "IMAGINARY"}:
        return "imaginary"
    return ""


def _private_item(per_frame, shared):
    """The Philips private per-frame item (2005,140F), where its scale slope lives."""
    for group in (per_frame, shared):
        if group is not None and (0x2005, 0x140F) in group:
            seq = group[(0x2005, 0x140F)].value
            if seq:
                return seq[0]
    return None


def _macro(per_frame, shared, sequence: str):
    """First item of a functional-group macro, per-frame first, then shared."""
    for group in (per_frame, shared):
        if group is not None:
            seq = group.get(sequence)
            if seq:
                return seq[0]
    return None


def _pixel_element(fp, explicit: bool, little: bool) -> tuple[str, int | None, int | None] | None:
    """Parse the element header at ``fp``'s position: (name, value offset, length) or None."""
    start = fp.tell()
    head = fp.read(12)
    if len(head) < 8:
        return None
    order = "<" if little else ">"
    group, elem = struct.unpack(order + "HH", head[:4])
    tag = (group << 16) | elem
    if tag not in PIXEL_TAGS:
        return None
    if explicit and head[4:6].isalpha():
        if head[4:6] in LONG_VRS:
            if len(head) < 12:
                return None
            (length,) = struct.unpack(order + "I", head[8:12])
            offset = start + 12
        else:
            (length,) = struct.unpack(order + "H", head[6:8])
            offset = start + 8
    else:
        (length,) = struct.unpack(order + "I", head[4:8])
        offset = start + 8
    return PIXEL_TAGS[tag], offset, None if length == 0xFFFFFFFF else length


def _encapsulated_problem(path: str, offset: int, n_frames: int = 1) -> str | None:
    """Walk the items of encapsulated pixel data starting at ``offset``: why it is incomplete, or None.

    Each frame needs at least one fragment after the Basic Offset Table item: a file declaring more frames
    than it holds fragments is refused here, before anything is allocated for them.

    Only item headers are read (a seek per fragment), so a truncated compressed file is skipped at index
    time instead of taking its series down when the series is loaded.
    """
    with open_bounded(path) as fp:
        size = fp.raw.size
        if n_frames * 8 > size:
            return f"declares {n_frames} frames, more than the file's {size} bytes can hold"
        pos, items = offset, 0
        while True:
            fp.seek(pos)
            head = fp.read(8)
            if len(head) < 8:
                return "compressed pixel data ends without its sequence delimiter: file truncated"
            group, elem, length = struct.unpack("<HHI", head)
            tag = (group << 16) | elem
            if tag == 0xFFFEE0DD:
                if items - 1 < n_frames:
                    return f"declares {n_frames} frames but its compressed pixel data holds {max(items - 1, 0)}"
                return None
            items += 1
            if tag != 0xFFFEE000 or length == 0xFFFFFFFF:
                return (f"compressed pixel data is malformed (element ({group:04X},{elem:04X}) where a fragment "
                        "was expected)")
            pos += 8 + length
            if pos > size:
                return "compressed pixel data runs past the end of the file: truncated"


def read_header(path: str) -> ImageFile | Skipped:
    """Parse ``path``'s header; any problem becomes a :class:`Skipped` with its reason.

    Only regular files are read: a FIFO, a device (a link to ``/dev/zero`` or ``/dev/urandom``) or a socket is
    skipped with its reason before anything opens it, and no read goes past the file's size.
    """
    reason = not_regular_reason(path)
    if reason:
        return Skipped(path, reason)
    try:
        return _read_header(path)
    except InvalidDicomError:
        return Skipped(path, "not a DICOM file")
    except MemoryError:
        return Skipped(path, "header too large to read")
    except Exception as exc:  # corrupt input must never escape as an exception
        return Skipped(path, f"unreadable DICOM header ({type(exc).__name__}: {str(exc)[:120]})")


def _read_header(path: str) -> ImageFile | Skipped:
    fast = read_fast(path, stat_first=False)  # (read_header has just checked it is a regular file)
    if fast is not None:
        if "Rows" not in fast and "SOPClassUID" not in fast:
            return Skipped(path, "not a DICOM file")
        return _image_file(path, fast, fast.transfer_syntax, fast.pixel, fast.at_eof, "")
    with open_bounded(path) as fp:
        preamble = fp.read(132)
        if len(preamble) < 132 or preamble[128:132] != b"DICM":
            # Files without the Part 10 preamble: accept only if they parse as a dataset with image attributes.
            fp.seek(0)
            if len(preamble) < 8:
                return Skipped(path, "not a DICOM file (too short)")
            ds = pydicom.dcmread(fp, stop_before_pixels=True, force=True)
            if "Rows" not in ds and "SOPClassUID" not in ds:
                return Skipped(path, "not a DICOM file")
        else:
            fp.seek(0)
            ds = pydicom.dcmread(fp, stop_before_pixels=True)
        meta = getattr(ds, "file_meta", None)
        ts = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
        if not ts:
            ts = "1.2.840.10008.1.2"
        explicit = ts != "1.2.840.10008.1.2"
        little = ts != _BIG_ENDIAN
        encoding = getattr(ds, "original_encoding", (None, None))
        if encoding[0] is not None:  # what pydicom found the bytes to be (a lying file meta included)
            explicit, little = not encoding[0], bool(encoding[1])
        deflated = ts == "1.2.840.10008.1.2.1.99"
        pixel = None if deflated else _pixel_element(fp, explicit, little)
        if deflated and "Rows" in ds:
            pixel = ("PixelData", None, None)
        at_eof = fp.read(1) == b"" if pixel is None else False
    meta_sop = str(meta.get("MediaStorageSOPClassUID", "")) if meta is not None else ""
    return _image_file(path, ds, ts, pixel, at_eof, meta_sop)


def _image_file(path, ds, ts, pixel, at_eof, meta_sop) -> ImageFile | Skipped:
    sop_class = _text(ds, "SOPClassUID") or meta_sop
    if sop_class in NON_IMAGE_SOP_CLASSES:
        return Skipped(path, NON_IMAGE_SOP_CLASSES[sop_class])
    if pixel is None:
        if at_eof or "Rows" not in ds:
            name = UID(sop_class).name if sop_class else "unknown object"
            return Skipped(path, f"no pixel data ({name}): not an image")
        return Skipped(path, "pixel data element not found where expected (file may be truncated)")
    rows, cols = _i(ds.get("Rows")), _i(ds.get("Columns"))
    if not rows or not cols:
        return Skipped(path, "image without Rows/Columns")
    if rows < 0 or cols < 0:
        return Skipped(path, f"invalid image size {rows}×{cols}")
    bits_allocated = _i(ds.get("BitsAllocated"), 16)
    if bits_allocated not in (1, 8, 16, 32, 64):
        return Skipped(path, f"unsupported BitsAllocated {bits_allocated}")
    pixel_tag, offset, length = pixel if pixel else ("PixelData", None, None)
    n_frames = _i(ds.get("NumberOfFrames"), 1) or 1
    samples = _i(ds.get("SamplesPerPixel"), 1) or 1
    if n_frames < 0:
        return Skipped(path, f"invalid NumberOfFrames {n_frames}")
    if samples < 0:
        return Skipped(path, f"invalid SamplesPerPixel {samples}")
    declared = rows * cols * samples * n_frames * max(bits_allocated, 8) // 8
    if declared > MAX_DECODED_BYTES:
        return Skipped(path, f"declares {n_frames} frame(s) of {rows}×{cols}×{samples} at {bits_allocated} bits "
                             f"({declared / 2**30:.1f} GiB decoded): refused before reading, too large to be real")
    if offset is not None and length is None:  # encapsulated (undefined length): every fragment must be there
        problem = _encapsulated_problem(path, offset, n_frames)
        if problem:
            return Skipped(path, problem)
    if offset is not None and length is not None and pixel_tag == "PixelData" and bits_allocated >= 8:
        expected = rows * cols * samples * n_frames * bits_allocated // 8
        if length < expected:
            return Skipped(path, f"pixel data holds {length} bytes, {expected} expected: file truncated or corrupt")
        if os.path.getsize(path) < offset + expected:
            return Skipped(path, "file is shorter than its pixel data: truncated")
    image_type = _strings(ds.get("ImageType"))
    if "LOCALIZER" in image_type[2:3] or "LOCALIZER" in image_type or "SCOUT" in image_type:
        category = "localizer"
    elif sop_class.startswith(SECONDARY_CAPTURE_PREFIX):
        category = "secondary"
    else:
        category = "image"
    lossy = _text(ds, "LossyImageCompression") == "01" or length is None and ts in {
        "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.81",
        "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.203"}
    wc, ww = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
    window = (_f(wc), _f(ww)) if _f(wc) is not None and _f(ww) else None

    info = ImageFile(
        path=path,
        sop_class_uid=sop_class,
        sop_instance_uid=_text(ds, "SOPInstanceUID"),
        transfer_syntax=ts,
        patient={"name": _text(ds, "PatientName"), "id": _text(ds, "PatientID"),
                 "birth_date": _text(ds, "PatientBirthDate"), "sex": _text(ds, "PatientSex")},
        study={"uid": _text(ds, "StudyInstanceUID"), "date": _text(ds, "StudyDate"), "time": _text(ds, "StudyTime"),
               "description": _text(ds, "StudyDescription"), "accession": _text(ds, "AccessionNumber"),
               "institution": _text(ds, "InstitutionName")},
        series={"uid": _text(ds, "SeriesInstanceUID"), "number": _i(ds.get("SeriesNumber")),
                "description": _text(ds, "SeriesDescription") or _text(ds, "ProtocolName"),
                "date": _text(ds, "SeriesDate") or _text(ds, "AcquisitionDate"),
                "time": _text(ds, "SeriesTime") or _text(ds, "AcquisitionTime"),
                "frame_of_reference": _text(ds, "FrameOfReferenceUID"),
                "manufacturer": _text(ds, "Manufacturer"), "body_part": _text(ds, "BodyPartExamined"),
                "tr": _f(ds.get("RepetitionTime")), "te": _f(ds.get("EchoTime")),
                "field_strength": _f(ds.get("MagneticFieldStrength")),
                "acquisition_date": _text(ds, "AcquisitionDate"), "acquisition_time": _text(ds, "AcquisitionTime"),
                "kvp": _f(ds.get("KVP")), "mas": _mas(ds), "kernel": _text(ds, "ConvolutionKernel")},
        modality=_text(ds, "Modality"),
        image_type=image_type,
        rows=rows,
        columns=cols,
        bits_allocated=bits_allocated,
        bits_stored=_bits_stored(_i(ds.get("BitsStored")), bits_allocated),
        pixel_representation=_i(ds.get("PixelRepresentation"), 0) or 0,
        samples_per_pixel=samples,
        photometric=_text(ds, "PhotometricInterpretation", "MONOCHROME2").upper(),
        planar_configuration=_i(ds.get("PlanarConfiguration"), 0) or 0,
        number_of_frames=n_frames,
        pixel_tag=pixel_tag,
        pixel_offset=offset if length is not None and (ts in _NATIVE_LE or ts == _BIG_ENDIAN) else None,
        pixel_length=length,
        lossy=lossy,
        window=window,
        category=category,
        pixel_value_offset=offset,
        instance_number=_i(ds.get("InstanceNumber")),
    )
    if "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds:
        info.frames = _enhanced_frames(ds, info)
    else:
        info.frames = _classic_frames(ds, info)
    if samples > 1:  # the modality rescale (and Philips' scale) applies to grayscale only: colour stays as stored
        for fr in info.frames:
            fr.slope, fr.intercept, fr.philips_scale = 1.0, 0.0, None
    return info


def _mas(ds) -> float | None:
    """The exposure in mAs: Exposure (0018,1152), else tube current (mA) × exposure time (ms) / 1000."""
    exposure = _f(ds.get("Exposure"))
    if exposure is not None:
        return exposure
    current, time_ms = _f(ds.get("XRayTubeCurrent")), _f(ds.get("ExposureTime"))
    return current * time_ms / 1000.0 if current is not None and time_ms is not None else None


def _philips_scale(ds, info: ImageFile) -> float | None:
    if not info.series.get("manufacturer", "").upper().startswith("PHILIPS") or ds is None:
        return None
    try:
        value = ds.get("PhilipsScaleSlope") if isinstance(ds, FastDataset) else ds.get((0x2005, 0x100E))
        value = getattr(value, "value", value)
        value = _f(value[0] if isinstance(value, (list, tuple)) else value)
    except Exception:
        return None
    return value if value and math.isfinite(value) and value > 0 else None


def _b_value(standard, ds) -> float | None:
    """DiffusionBValue, else the vendor's private b-value (:mod:`viewer.io.b_value`); None when the header has none
    or it cannot be read."""
    try:
        private = ds.private if isinstance(ds, FastDataset) else pydicom_private_elements(ds)
        return b_value(standard, private)
    except Exception:  # noqa: BLE001 (a malformed element: no b-value)
        return None


def _classic_frames(ds, info: ImageFile) -> list[FrameRecord]:
    echo = _f(ds.get("EchoNumbers")) if "EchoNumbers" in ds else None
    if echo is None:
        echo = _f(ds.get("EchoTime"))
    base = dict(
        orientation=_orientation(ds.get("ImageOrientationPatient")),
        pixel_spacing=_floats(ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing"), 2, positive=True),
        slice_thickness=(_f(ds.get("SpacingBetweenSlices")) if info.number_of_frames > 1
                         else _f(ds.get("SliceThickness"))),
        slope=_f(ds.get("RescaleSlope"), 1.0) or 1.0,
        intercept=_f(ds.get("RescaleIntercept"), 0.0),
        echo=echo,
        component=_component(info.image_type),
        acquisition=_i(ds.get("AcquisitionNumber")),
        philips_scale=_philips_scale(ds, info),
        b_value=_b_value(ds.get("DiffusionBValue"), ds),
    )
    temporal = (_i(ds.get("TemporalPositionIdentifier"), 0), _i(ds.get("AcquisitionNumber"), 0) or 0,
                _f(ds.get("TriggerTime"), 0.0), _i(ds.get("InstanceNumber"), 0) or 0)
    position, problem = _position(ds.get("ImagePositionPatient"))
    frames = []
    if info.number_of_frames == 1:
        frames.append(FrameRecord(info, 0, position, temporal_key=temporal, position_problem=problem, **base))
        return frames
    # Classic multi-frame (e.g. NM, US, old MR): frames stacked along the normal by SpacingBetweenSlices
    # when a geometry is given; otherwise frames without positions.
    spacing = base["slice_thickness"]
    normal = None
    if base["orientation"] and position and spacing:
        o = base["orientation"]
        normal = (o[1] * o[5] - o[2] * o[4], o[2] * o[3] - o[0] * o[5], o[0] * o[4] - o[1] * o[3])
    for k in range(info.number_of_frames):
        pos = tuple(position[i] + k * spacing * normal[i] for i in range(3)) if normal else None
        frames.append(FrameRecord(info, k, pos, temporal_key=temporal + (k,), position_problem=problem, **base))
    return frames


def _enhanced_frames(ds, info: ImageFile) -> list[FrameRecord]:
    shared_seq = ds.get("SharedFunctionalGroupsSequence")
    shared = shared_seq[0] if shared_seq else None
    per_seq = ds.get("PerFrameFunctionalGroupsSequence") or []
    private_b = _b_value(None, ds)  # a vendor's b-value at the top level, for frames without the diffusion macro
    frames = []
    for k in range(info.number_of_frames):
        per = per_seq[k] if k < len(per_seq) else None
        pos_m = _macro(per, shared, "PlanePositionSequence")
        ori_m = _macro(per, shared, "PlaneOrientationSequence")
        pm_m = _macro(per, shared, "PixelMeasuresSequence")
        pvt_m = _macro(per, shared, "PixelValueTransformationSequence")
        fc_m = _macro(per, shared, "FrameContentSequence")
        echo_m = _macro(per, shared, "MREchoSequence")
        diffusion_m = _macro(per, shared, "MRDiffusionSequence")
        mrft_m = _macro(per, shared, "MRImageFrameTypeSequence") or _macro(per, shared, "CTImageFrameTypeSequence")
        frame_type = tuple(str(v).upper() for v in (mrft_m.get("FrameType") or ())) if mrft_m is not None else ()
        complex_component = _text(mrft_m, "ComplexImageComponent") if mrft_m is not None else ""
        dim_raw = fc_m.get("DimensionIndexValues") if fc_m is not None else None
        if isinstance(dim_raw, (list, tuple, pydicom.multival.MultiValue)):
            dim = tuple(int(v) for v in dim_raw)
        else:
            dim = (int(dim_raw),) if dim_raw is not None else ()
        # frames at one position: by dimension indices, last dimension most significant (as dcm2niix
        # orders volumes), else by temporal position; then file order
        tpi = _i(fc_m.get("TemporalPositionIndex"), 0) if fc_m is not None else 0
        temporal = (dim[::-1] if dim else (tpi,)) + (k,)
        position, problem = _position(pos_m.get("ImagePositionPatient") if pos_m is not None else None)
        frames.append(FrameRecord(
            file=info,
            frame=k,
            position=position,
            position_problem=problem,
            orientation=_orientation(ori_m.get("ImageOrientationPatient")) if ori_m is not None else None,
            pixel_spacing=_floats(pm_m.get("PixelSpacing"), 2, positive=True) if pm_m is not None else None,
            slice_thickness=_f(pm_m.get("SliceThickness")) if pm_m is not None else None,
            slope=((_f(pvt_m.get("RescaleSlope"), 1.0) or 1.0) if pvt_m is not None
                   else (_f(ds.get("RescaleSlope"), 1.0) or 1.0)),
            intercept=(_f(pvt_m.get("RescaleIntercept"), 0.0) if pvt_m is not None
                       else _f(ds.get("RescaleIntercept"), 0.0)),
            echo=_f(echo_m.get("EffectiveEchoTime")) if echo_m is not None else None,
            component=_component(frame_type or info.image_type, complex_component),
            temporal_key=temporal,
            acquisition=_i(ds.get("AcquisitionNumber")),
            frame_type=frame_type,
            philips_scale=_philips_scale(_private_item(per, shared), info),
            b_value=b_value(diffusion_m.get("DiffusionBValue"), {}) if diffusion_m is not None and
            diffusion_m.get("DiffusionBValue") is not None else private_b,
        ))
    return frames
