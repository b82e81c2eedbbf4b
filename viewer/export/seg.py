"""DICOM SEG: write a label map as a Segmentation of its source series, and read SEGs back onto a grid.

Writing (:func:`write_seg`, through highdicom): one BINARY segment per label
of the label table, frames only where a segment is present, every frame
referencing its source image (the series' SOP instances, read header-only by
:class:`SourceSeries`). Decisions:

* **Segment numbers** are 1..n in ascending label id (the standard wants them
  consecutive); the mapping is returned (:attr:`SegInfo.segment_of_label`).
  Each segment also records its label id in a private element (creator
  ``RADVIEW 1``, element (0071,xx01), UL), so radview reads back the ids it
  wrote (an AI "nodule" label 8 stays 8); other readers see segments 1..n.
* **Empty segments are kept** (a segment without frames): a model's label
  table says what it looked for ("nodule", none found), and the SEG keeps that.
  ``skip_empty=True`` drops them.
* **Codes**: known names (body, lung_left/right, airway, trachea, heart, aorta,
  bone, nodule, liver, ...) get SNOMED CT category/type codes from pydicom's
  code dictionary (CID 7150/7151/7166); left/right is a type modifier (Left
  7771000 / Right 24028007 on Lung, Kidney, ...). Anything else is
  Tissue/Tissue. A label map read from a SEG keeps that SEG's codes (retired
  SNOMED-RT "SRT" codes become their SNOMED CT equivalents) and algorithm
  (an old-style SegmentAlgorithmName without a family: Manual Processing for a
  SEMIAUTOMATIC segment).
* **Algorithm**: with an AI provenance, AUTOMATIC (SEMIAUTOMATIC when a user
  edited the result) with the model's name, version, family (CID 7162:
  Artificial Intelligence for learned networks, Morphological Operations for
  classical image analysis) and parameters (device, precision, run time,
  start time, model parameters); without one, MANUAL.
* The review state is in SeriesDescription and ContentDescription:
  ``AI result, not reviewed`` (:data:`viewer.export.AI_NOT_REVIEWED`) until a
  reviewer is named.

Reading (:func:`read_seg`, :func:`read_seg_segments`, :func:`load_seg`): the
SEG is parsed with highdicom (``hd.seg.segread``; frames decoded with
``get_stored_frame``) and every frame is placed by its own plane position and
orientation on the reference grid (physical space, not file order): frames
must lie on the grid's voxel centres (within 0.1 voxel) with the grid's pixel
spacing, in any in-plane orientation; otherwise the read is refused with the
offset. Missing frames are background. FRACTIONAL segments count where the
value is at least half the maximum. LABELMAP SEGs map pixel values to segments
(background segments excluded). Label values are the ids radview recorded
when it wrote the SEG, else the segment numbers. **Overlapping segments** (a LabelMap holds one
label per voxel): a voxel shows the *smallest* segment covering it (fewest
voxels; equal sizes: the higher segment number), so a lesion inside an organ
stays visible; the number of voxels in more than one segment is in
``meta["overlapping_voxels"]`` with a warning. :func:`read_seg_segments`
returns every segment's own mask instead (nothing lost; memory: one boolean
volume per segment).

Qt-free and torch-free; highdicom is imported when a SEG is written or read.
"""
from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from viewer.core.geometry import Geometry, GeometryMismatchError, require_same_grid
from viewer.core.volume import LabelMap, Volume

from . import AI_NOT_REVIEWED, ExportError
from .atomic import atomic_write

__all__ = ["SEG_SOP_CLASSES", "SegError", "SourceSeries", "SegInfo", "SegmentStack", "write_seg", "read_seg",
           "read_seg_segments", "load_seg", "seg_volume", "is_seg_file", "segment_codes", "seg_note"]

#: SOP classes read as segmentations.
SEG_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.66.4": "Segmentation Storage",
    "1.2.840.10008.5.1.4.1.1.66.7": "Label Map Segmentation Storage",
}
#: The private element that keeps a segment's label id of the label map it was written from.
PRIVATE_GROUP, PRIVATE_CREATOR, PRIVATE_LABEL_ELEMENT = 0x0071, "RADVIEW 1", 0x01
#: How far (in voxels, along each axis) a SEG frame may lie from the reference grid's voxel centres.
GRID_TOLERANCE_VOXELS = 0.1
_BACKGROUND_TYPE = ("125040", "DCM")


class SegError(ExportError):
    """A SEG that cannot be written or read as asked; one line for the user."""


# ------------------------------------------------------------------------------------------- provenance
def provenance_dict(provenance: Any) -> dict | None:
    """A provenance as a plain dict: ``ai.api.Provenance`` (its ``as_dict``), a mapping (findings.json), or None."""
    if provenance is None:
        return None
    if hasattr(provenance, "as_dict"):
        return dict(provenance.as_dict())
    if isinstance(provenance, Mapping):
        return dict(provenance)
    raise TypeError(f"a provenance is a mapping or ai.api.Provenance, got {type(provenance).__name__}")


def seg_note(provenance: Mapping | None, reviewed_by: str | None = None, edited: bool = False) -> str:
    """The review label of an export: ``AI result, not reviewed`` for an AI result until someone reviewed it."""
    if provenance is None:
        return "Manual segmentation" if not reviewed_by else f"Segmentation reviewed by {reviewed_by}"
    if reviewed_by:
        return f"AI result{', edited' if edited else ''}, reviewed by {reviewed_by}"
    return "AI result, edited, not reviewed" if edited else AI_NOT_REVIEWED


def _lo(text: Any, limit: int = 64) -> str:
    """A value for a DICOM LO/SH (no backslash, no control characters, at most ``limit`` characters)."""
    s = re.sub(r"[\\\x00-\x1f]", " ", str(text)).strip()
    return s[:limit]


def algorithm_family(provenance: Mapping):
    """CID 7162 family: Artificial Intelligence for learned models, Morphological Operations for classical ones."""
    from pydicom.sr.codedict import codes

    method = str(provenance.get("method", "")).lower()
    if method.startswith("classical") or "not a learned" in method:
        return codes.cid7162.MorphologicalOperations
    return codes.cid7162.ArtificialIntelligence


def algorithm_parameters(provenance: Mapping) -> dict[str, str]:
    """What the run was: device, precision, run time, start, method and the model's parameters (as text)."""
    out: dict[str, str] = {}
    for key in ("model_id", "device", "precision", "run_time_s", "started_at", "method", "software"):
        value = provenance.get(key)
        if value not in (None, ""):
            out[key] = f"{value:.3f}" if isinstance(value, float) else str(value)
    for key, value in sorted(dict(provenance.get("parameters") or {}).items(), key=lambda kv: str(kv[0])):
        out[f"parameters.{key}"] = str(value)
    return {k.replace(",", ";").replace("=", ":"): v.replace(",", ";") for k, v in out.items()}


def algorithm_identification(provenance: Mapping):
    import highdicom as hd

    params = algorithm_parameters(provenance)
    text = ",".join(f"{k}={v}" for k, v in params.items())
    while len(text) > 10240 and params:  # AlgorithmParameters is an LT (10240 characters)
        params.pop(next(reversed(params)))
        text = ",".join(f"{k}={v}" for k, v in params.items())
    return hd.AlgorithmIdentificationSequence(
        name=_lo(provenance.get("model_name") or provenance.get("model_id") or "unknown model"),
        family=algorithm_family(provenance),
        version=_lo(provenance.get("model_version") or "unknown"),
        source="radview",
        parameters=params or None,
    )


# ------------------------------------------------------------------------------------------------ codes
def _named_codes() -> dict[str, tuple]:
    """name -> (category, type, laterality modifier or None), SNOMED CT from pydicom's code dictionary."""
    from pydicom.sr.codedict import codes

    sct = codes.SCT
    anat, tissue, abnormal = sct.AnatomicalStructure, sct.Tissue, sct.MorphologicallyAbnormalStructure
    table = {
        "body": (anat, sct.EntireBody), "body_outline": (anat, sct.EntireBody), "patient": (anat, sct.EntireBody),
        "skin": (tissue, sct.Skin),
        "lung": (anat, sct.Lung), "lungs": (anat, sct.Lung),
        "airway": (anat, sct.AirwayStructure), "airways": (anat, sct.AirwayStructure), "trachea": (anat, sct.Trachea),
        "heart": (anat, sct.Heart), "aorta": (anat, sct.Aorta), "liver": (anat, sct.Liver),
        "spleen": (anat, sct.Spleen), "pancreas": (anat, sct.Pancreas), "kidney": (anat, sct.Kidney),
        "stomach": (anat, sct.Stomach), "esophagus": (anat, sct.Esophagus), "gallbladder": (anat, sct.Gallbladder),
        "colon": (anat, sct.Colon), "brain": (anat, sct.Brain), "spinal_cord": (anat, sct.SpinalCord),
        "adrenal_gland": (anat, sct.AdrenalGland), "pulmonary_artery": (anat, sct.PulmonaryArtery),
        "inferior_vena_cava": (anat, sct.InferiorVenaCava),
        "bone": (tissue, sct.BoneTissue), "bones": (tissue, sct.BoneTissue), "skeleton": (tissue, sct.BoneTissue),
        "spine": (anat, sct.Spine), "vertebra": (anat, sct.Vertebra), "vertebrae": (anat, sct.Vertebra),
        "rib": (anat, sct.Rib), "ribs": (anat, sct.Rib), "sternum": (anat, sct.Sternum),
        "fat": (tissue, sct.AdiposeTissue),
        "nodule": (abnormal, sct.Nodule), "lung_nodule": (abnormal, sct.Nodule), "nodules": (abnormal, sct.Nodule),
        "nodule_candidate": (abnormal, sct.Nodule), "nodule_candidates": (abnormal, sct.Nodule),
        "lesion": (abnormal, sct.Lesion), "mass": (abnormal, sct.Mass), "tumor": (abnormal, sct.Neoplasm),
        "tumour": (abnormal, sct.Neoplasm), "neoplasm": (abnormal, sct.Neoplasm),
    }
    return table


_CODE_TABLE: dict[str, tuple] | None = None


def _normal_name(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", str(name).strip().lower())


def segment_codes(name: str) -> tuple:
    """(category, type, laterality modifier or None) as pydicom ``Code``s for a label name.

    ``lung_left``, ``left_lung`` and ``left lung`` all give Lung with the Left modifier; an
    unknown name gives the generic Tissue/Tissue.
    """
    from pydicom.sr.codedict import codes

    global _CODE_TABLE
    if _CODE_TABLE is None:
        _CODE_TABLE = _named_codes()
    key = _normal_name(name)
    if key in _CODE_TABLE:
        return (*_CODE_TABLE[key], None)
    side = None
    for word, code in (("left", codes.SCT.Left), ("right", codes.SCT.Right)):
        if key.startswith(word + "_"):
            key, side = key[len(word) + 1:], code
        elif key.endswith("_" + word):
            key, side = key[: -len(word) - 1], code
    if side is not None and key in _CODE_TABLE:
        return (*_CODE_TABLE[key], side)
    return codes.SCT.Tissue, codes.SCT.Tissue, None


def _srt_to_sct(value: str, scheme: str) -> tuple[str, str]:
    """Retired SNOMED-RT codes (scheme SRT, e.g. T-62000) as their SNOMED CT equivalents (pydicom's table)."""
    if scheme == "SRT":
        try:
            from pydicom.sr._snomed_dict import mapping
        except ImportError:  # pragma: no cover - a private table that may move
            return value, scheme
        if value in mapping.get("SRT", {}):
            return mapping["SRT"][value], "SCT"
    return value, scheme


def _coded(code):
    import highdicom as hd

    if code is None:
        return None
    if isinstance(code, (list, tuple)):
        value, scheme, meaning = code[:3]
        value, scheme = _srt_to_sct(str(value), str(scheme))
        return hd.sr.CodedConcept(value, scheme, str(meaning))
    return hd.sr.CodedConcept(code.value, code.scheme_designator, code.meaning, code.scheme_version)


def _code_tuple(item) -> list[str] | None:
    if item is None:
        return None
    return [str(item.CodeValue if "CodeValue" in item else item.get("LongCodeValue", item.get("URNCodeValue", ""))),
            str(item.CodingSchemeDesignator), str(item.CodeMeaning)]


# ------------------------------------------------------------------------------------------ source series
def _sanitise(ds) -> None:
    """Fix header quirks of real files that highdicom refuses (it copies patient and study attributes)."""
    if "SpecificCharacterSet" in ds and not ds.SpecificCharacterSet:
        del ds.SpecificCharacterSet


@dataclass
class SourceSeries:
    """The source images of a loaded series: header-only datasets and, per slice of the grid, which frame.

    ``slices[z] = (dataset index, 0-based frame)``. Built from the index's series
    entry (:meth:`from_entry`), so the grid is exactly the one ``load_series``
    gives; refused when the loader had to resample (uneven spacing, gantry tilt,
    missing slices): those slices are not source images.
    """

    geometry: Geometry
    datasets: list
    slices: list[tuple[int, int]]
    key: str = ""

    @classmethod
    def from_entry(cls, entry, timepoint: int = 0) -> "SourceSeries":
        import pydicom

        if not entry.loadable:
            raise SegError(f"series {entry.key} cannot be loaded: {entry.refusal}")
        plan = entry.plan
        if plan.resample_z or plan.inplane_shift_px is not None or plan.missing:
            why = ("uneven slice spacing" if plan.resample_z else
                   "gantry tilt" if plan.inplane_shift_px is not None else "missing slices")
            raise SegError(f"series {entry.key} was resampled on loading ({why}): its grid's slices are not "
                           "the source images a DICOM export must reference")
        if not 0 <= timepoint < plan.n_timepoints:
            raise SegError(f"time point {timepoint} out of range (series has {plan.n_timepoints})")
        paths: dict[str, int] = {}
        datasets = []
        slices: list[tuple[int, int] | None] = [None] * plan.geometry.shape_zyx[0]
        for k, fr in enumerate(plan.frames[timepoint]):
            path = fr.file.path
            if path not in paths:
                try:
                    ds = pydicom.dcmread(path, stop_before_pixels=True)
                except (OSError, ValueError) as exc:
                    raise SegError(f"cannot read {path}: {exc}") from exc
                _sanitise(ds)
                paths[path] = len(datasets)
                datasets.append(ds)
            slices[int(round(plan.slice_index[k]))] = (paths[path], int(fr.frame))
        if any(s is None for s in slices):
            raise SegError(f"series {entry.key}: not every slice of the grid has a source image")
        return cls(plan.geometry, datasets, slices, entry.key)

    @classmethod
    def open(cls, path: str, series: str | None = None) -> "SourceSeries":
        """The series ``series`` (key or SeriesInstanceUID; default: the largest volume) of a DICOM folder."""
        from viewer.core.dicom_index import scan

        if not os.path.exists(path):
            raise SegError(f"{path}: no such file or folder")
        index = scan(path)
        if series:
            try:
                entry = index.find(series)
            except KeyError as exc:
                raise SegError(exc.args[0]) from exc
        else:
            entry = index.largest_volume()
            if entry is None:
                raise SegError(f"no loadable DICOM image series in {path}")
        return cls.from_entry(entry)

    # --- what the series is ---------------------------------------------------------------------
    @property
    def first(self):
        return self.datasets[0]

    @property
    def series_uid(self) -> str:
        return str(self.first.get("SeriesInstanceUID", ""))

    @property
    def study_uid(self) -> str:
        return str(self.first.get("StudyInstanceUID", ""))

    @property
    def frame_of_reference_uid(self) -> str:
        return str(self.first.get("FrameOfReferenceUID", ""))

    @property
    def modality(self) -> str:
        return str(self.first.get("Modality", ""))

    @property
    def multiframe(self) -> bool:
        return any(int(ds.get("NumberOfFrames", 1) or 1) > 1 for ds in self.datasets)

    def reference(self, z: int) -> tuple[str, str, int | None]:
        """(SOP Class UID, SOP Instance UID, 1-based frame number or None) of slice ``z``."""
        d, frame = self.slices[int(z)]
        ds = self.datasets[d]
        number = frame + 1 if int(ds.get("NumberOfFrames", 1) or 1) > 1 else None
        return str(ds.SOPClassUID), str(ds.SOPInstanceUID), number

    def nearest_slice(self, points_lps) -> int:
        """The slice whose plane is nearest to the points' centre (clipped into the series)."""
        centre = np.asarray(points_lps, dtype=float).reshape(-1, 3).mean(axis=0)
        k = float(self.geometry.world_to_index(centre)[0])
        return int(np.clip(np.rint(k), 0, self.geometry.shape_zyx[0] - 1))


# --------------------------------------------------------------------------------------------- writing
@dataclass
class SegInfo:
    """What :func:`write_seg` wrote."""

    path: str
    sop_instance_uid: str
    series_instance_uid: str
    segment_of_label: dict[int, int]  # label id in the label map -> segment number in the SEG
    n_frames: int
    note: str
    dataset: Any = field(default=None, repr=False)  # the highdicom Segmentation (for an SR to reference)


@dataclass(eq=False)
class SegmentStack:
    """Segments that may overlap: ``masks[i]`` is the boolean (z, y, x) mask of label value ``numbers[i]``."""

    masks: np.ndarray  # (n, z, y, x) bool
    geometry: Geometry
    labels: dict[int, str]  # label value -> name, in the order of ``masks``
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.masks.ndim != 4 or tuple(self.masks.shape[1:]) != self.geometry.shape_zyx:
            raise ValueError(f"masks {self.masks.shape} do not match the geometry {self.geometry.shape_zyx}")
        if len(self.labels) != self.masks.shape[0]:
            raise ValueError(f"{len(self.labels)} names for {self.masks.shape[0]} masks")
        self.labels = {int(k): str(v) for k, v in self.labels.items()}

    @property
    def numbers(self) -> list[int]:
        return list(self.labels)

    def to_label_map(self) -> LabelMap:
        """One label per voxel: the smallest segment covering it (equal sizes: the higher number)."""
        numbers = self.numbers
        dtype = np.uint8 if max(numbers, default=0) < 256 else np.uint16
        out = np.zeros(self.geometry.shape_zyx, dtype)
        sizes = [int(np.count_nonzero(m)) for m in self.masks]
        for i in sorted(range(len(numbers)), key=lambda i: (-sizes[i], numbers[i])):
            out[self.masks[i]] = numbers[i]
        return LabelMap(out, self.geometry, dict(self.labels), meta=dict(self.meta))


def _segment_description(number: int, name: str, info: Mapping | None, provenance: Mapping | None, edited: bool,
                         color, label_value: int | None = None):
    import highdicom as hd
    from pydicom.sr.codedict import codes

    info = info or {}
    if info.get("category") and info.get("type"):
        category, prop_type = _coded(info["category"]), _coded(info["type"])
        modifier = _coded(info.get("type_modifier"))
    else:
        category, prop_type, modifier = (_coded(c) for c in segment_codes(name))
    if provenance is not None:
        algorithm_type = hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC if edited else \
            hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC
        algorithm = algorithm_identification(provenance)
    elif info.get("algorithm_type") in ("AUTOMATIC", "SEMIAUTOMATIC") and info.get("algorithm_name"):
        algorithm_type = hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC if edited else info["algorithm_type"]
        # the family is required now; older SEGs only named the algorithm: an unknown family of a
        # semi-automatic (user-driven) tool is taken as manual processing
        family = _coded(info.get("algorithm_family")) or (
            codes.cid7162.ManualProcessing if info["algorithm_type"] == "SEMIAUTOMATIC" else algorithm_family({}))
        algorithm = hd.AlgorithmIdentificationSequence(
            name=_lo(info["algorithm_name"]), version=_lo(info.get("algorithm_version") or "unknown"), family=family)
    else:
        algorithm_type, algorithm = hd.seg.SegmentAlgorithmTypeValues.MANUAL, None
    desc = hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=_lo(name) or f"segment {number}",
        segmented_property_category=category,
        segmented_property_type=prop_type,
        algorithm_type=algorithm_type,
        algorithm_identification=algorithm,
        tracking_uid=info.get("tracking_uid") or None,
        tracking_id=_lo(info["tracking_id"]) if info.get("tracking_id") else None,
        display_color=hd.color.CIELabColor.from_rgb(*[int(c) for c in color]) if color is not None else None,
    )
    if modifier is not None:
        desc.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [modifier]
    if label_value is not None:
        desc.private_block(PRIVATE_GROUP, PRIVATE_CREATOR, create=True).add_new(PRIVATE_LABEL_ELEMENT, "UL",
                                                                               int(label_value))
    return desc


def _frames_in_source_order(source: SourceSeries, array: np.ndarray) -> tuple[list, np.ndarray]:
    """The source datasets and the pixel array in the order highdicom wants (one frame per source frame)."""
    if not source.multiframe:
        return [source.datasets[d] for d, _ in source.slices], array
    if len(source.datasets) != 1:
        raise SegError("the series mixes several multi-frame files: a SEG can reference one multi-frame image "
                       "or single-frame images")
    n = int(source.first.NumberOfFrames)
    frames = np.zeros((n,) + array.shape[1:], dtype=array.dtype)
    for z, (_, f) in enumerate(source.slices):
        frames[f] = array[z]
    return [source.first], frames


def write_seg(path: str, labels: LabelMap | SegmentStack, source: SourceSeries, *, provenance: Any = None,
              edited: bool = False, reviewed_by: str | None = None, content_creator: str | None = None,
              skip_empty: bool = False, series_number: int = 901, series_description: str | None = None,
              colors: Mapping[int, Sequence[int]] | None = None) -> SegInfo:
    """Write ``labels`` (on ``source``'s grid) as a DICOM SEG at ``path`` (atomically); see the module notes.

    ``provenance``: the AI run that made the labels (``ai.api.Provenance`` or the
    ``provenance`` mapping of findings.json) — AUTOMATIC segments with its
    algorithm identification; None — MANUAL segments (or, for a label map read
    from a SEG, that SEG's own algorithm identification). ``edited``: a user
    changed the AI result (SEMIAUTOMATIC). ``reviewed_by``: who reviewed it (else
    "AI result, not reviewed"). ``labels`` may be a :class:`SegmentStack` (overlapping segments).
    """
    import highdicom as hd

    from viewer import __version__
    from viewer.core.layers import default_color

    try:
        require_same_grid(source.geometry, labels.geometry, what="the label map")
    except GeometryMismatchError as exc:
        raise SegError(f"{exc} (series {source.key})") from exc
    prov = provenance_dict(provenance)
    seg_meta = dict(labels.meta.get("segments") or {})
    colors = dict(colors or {})
    if isinstance(labels, SegmentStack):
        ids = list(labels.labels)
        present = {n for n, m in zip(ids, labels.masks) if m.any()}
    else:
        present = set(labels.present_labels())
        ids = sorted(set(labels.labels) | present)
    if skip_empty:
        ids = [i for i in ids if i in present]
    if not ids:
        raise SegError("the label map has no labels: there is no segment to export")
    if any(i <= 0 for i in ids):
        raise SegError(f"label ids must be positive integers, got {min(ids)}")
    numbers = {label: n for n, label in enumerate(ids, start=1)}
    if isinstance(labels, SegmentStack):
        keep = [labels.numbers.index(i) for i in ids]
        array = np.moveaxis(labels.masks[keep], 0, -1).astype(np.uint8) if keep else \
            np.zeros(labels.geometry.shape_zyx, np.uint8)
    else:
        array = labels.array
        if ids != list(range(1, len(ids) + 1)) or array.dtype.itemsize > 2 or array.dtype.kind != "u":
            lut = np.zeros(int(max(int(array.max()), *ids, 0)) + 1, np.uint16 if len(ids) > 255 else np.uint8)
            for label, n in numbers.items():
                lut[label] = n
            array = lut[array]
    descriptions = []
    for label, n in numbers.items():
        name = labels.labels.get(label, f"label {label}")
        info = seg_meta.get(label) or seg_meta.get(str(label))
        if info and info.get("label") not in (None, name):
            info = None  # the table was renamed since the SEG was read: its codes no longer apply
        color = colors.get(label) or (info or {}).get("color_rgb") or default_color(label, name)
        descriptions.append(_segment_description(n, name, info, prov, edited, color, label))
    note = seg_note(prov, reviewed_by, edited)
    if series_description is None:
        if prov is not None:
            series_description = f"{note}: {prov.get('model_name') or prov.get('model_id') or 'AI'} " \
                                 f"{prov.get('model_version') or ''}"
        else:
            series_description = f"Segmentation ({note.lower()})"
    sources, pixels = _frames_in_source_order(source, array)
    try:
        with warnings.catch_warnings():  # highdicom's advice on the source's person names (it copies them)
            warnings.filterwarnings("ignore", message=".*intended person name", category=UserWarning)
            seg = hd.seg.Segmentation(
                source_images=sources,
                pixel_array=pixels,
                segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
                segment_descriptions=descriptions,
                series_instance_uid=hd.UID(),
                series_number=int(series_number),
                sop_instance_uid=hd.UID(),
                instance_number=1,
                manufacturer="radview",
                manufacturer_model_name="radview",
                software_versions=f"radview {__version__}",
                device_serial_number="0",
                content_description=_lo(note),
                content_label="AI_SEGMENTATION" if prov is not None else "SEGMENTATION",
                content_creator_name=content_creator or None,
                series_description=_lo(series_description),
                omit_empty_frames=True,
            )
    except (ValueError, TypeError, AttributeError) as exc:
        raise SegError(f"cannot make a SEG of series {source.key}: {exc}") from exc
    atomic_write(path, lambda tmp: seg.save_as(tmp, enforce_file_format=True))
    return SegInfo(os.path.abspath(path), str(seg.SOPInstanceUID), str(seg.SeriesInstanceUID), numbers,
                   int(seg.NumberOfFrames), note, seg)


# --------------------------------------------------------------------------------------------- reading
def is_seg_file(path: str) -> bool:
    """True when ``path`` is a DICOM Segmentation (or Label Map Segmentation) object."""
    import pydicom

    if not os.path.isfile(path):
        return False
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID"])
    except Exception:  # noqa: BLE001 - anything unreadable is "not a SEG"
        return False
    return str(ds.get("SOPClassUID", "")) in SEG_SOP_CLASSES


def _open(seg_or_path):
    import highdicom as hd
    import pydicom

    if isinstance(seg_or_path, hd.seg.Segmentation):
        return seg_or_path, str(getattr(seg_or_path, "filename", "") or "")
    path = os.fspath(seg_or_path)
    if not os.path.isfile(path):
        raise SegError(f"{path}: no such file")
    try:
        ds = pydicom.dcmread(path)
    except Exception as exc:  # noqa: BLE001 - pydicom raises many kinds
        raise SegError(f"{path}: not a DICOM file ({exc})") from exc
    sop_class = str(ds.get("SOPClassUID", ""))
    if sop_class not in SEG_SOP_CLASSES:
        raise SegError(f"{path} is not a DICOM SEG (SOP class {sop_class or 'missing'})")
    try:
        return hd.seg.Segmentation.from_dataset(ds, copy=False), path
    except (ValueError, AttributeError, KeyError, TypeError) as exc:
        raise SegError(f"{path}: malformed SEG ({exc})") from exc


@dataclass
class _Frame:
    index: int  # 0-based
    segment: int | None  # None: a LABELMAP frame (pixel values are segment numbers)
    position: np.ndarray
    orientation: np.ndarray
    spacing: tuple[float, float]  # (between rows, between columns)


def _item(groups, name):
    if groups is not None and name in groups and len(getattr(groups, name)):
        return getattr(groups, name)[0]
    return None


def _frames(seg) -> list[_Frame]:
    if str(seg.get("DimensionOrganizationType", "")) == "TILED_FULL":
        raise SegError("a tiled (slide microscopy) SEG has no patient-space frames to place on a volume")
    shared = seg.SharedFunctionalGroupsSequence[0] if "SharedFunctionalGroupsSequence" in seg else None
    per_frame = seg.get("PerFrameFunctionalGroupsSequence", [])
    labelmap = str(seg.get("SegmentationType", "")) == "LABELMAP"
    out = []
    for i in range(int(seg.get("NumberOfFrames", 1) or 1)):
        groups = per_frame[i] if i < len(per_frame) else None
        pos = _item(groups, "PlanePositionSequence") or _item(shared, "PlanePositionSequence")
        ori = _item(groups, "PlaneOrientationSequence") or _item(shared, "PlaneOrientationSequence")
        meas = _item(groups, "PixelMeasuresSequence") or _item(shared, "PixelMeasuresSequence")
        if pos is None or ori is None or meas is None or "PixelSpacing" not in meas:
            raise SegError(f"SEG frame {i + 1} has no position, orientation or pixel spacing in patient space")
        segment = None
        if not labelmap:
            ident = _item(groups, "SegmentIdentificationSequence") or _item(shared, "SegmentIdentificationSequence")
            if ident is None:
                raise SegError(f"SEG frame {i + 1} does not say which segment it belongs to")
            segment = int(ident.ReferencedSegmentNumber)
        out.append(_Frame(i, segment, np.asarray(pos.ImagePositionPatient, float),
                          np.asarray(ori.ImageOrientationPatient, float),
                          (float(meas.PixelSpacing[0]), float(meas.PixelSpacing[1]))))
    return out


class _Placer:
    """Places SEG frames on a grid: frame pixel (row a, column b) -> voxel t + a·u + b·v (integer vectors)."""

    def __init__(self, geometry: Geometry, rows: int, cols: int, tol: float = GRID_TOLERANCE_VOXELS):
        self.g, self.rows, self.cols, self.tol = geometry, rows, cols, tol
        self.shape = np.asarray(geometry.shape_zyx)
        self._cache: dict[tuple, tuple] = {}

    def _axes(self, fr: _Frame) -> tuple[np.ndarray, np.ndarray]:
        key = (tuple(np.round(fr.orientation, 6)), fr.spacing)
        if key not in self._cache:
            row_dir, col_dir = fr.orientation[:3], fr.orientation[3:]
            m = np.linalg.inv(self.g.direction_matrix * self.g.spacing_xyz)  # LPS -> (i, j, k)
            u = (m @ (col_dir * fr.spacing[0]))[::-1]  # one row down, in (k, j, i)
            v = (m @ (row_dir * fr.spacing[1]))[::-1]  # one column right
            ru, rv = np.rint(u), np.rint(v)
            drift = max(np.abs(u - ru).max() * max(self.rows - 1, 1), np.abs(v - rv).max() * max(self.cols - 1, 1))
            unit = lambda w: np.count_nonzero(w) == 1 and np.abs(w).sum() == 1  # noqa: E731
            if not (unit(ru) and unit(rv) and np.argmax(np.abs(ru)) != np.argmax(np.abs(rv))) or drift > self.tol:
                g = self.g
                raise SegError(
                    f"the SEG's frames (orientation {_fmt(fr.orientation)}, pixel spacing {_fmt(fr.spacing)} mm) "
                    f"are not on the series' grid (pixel spacing {_fmt(g.spacing_zyx[1:])} mm, axes "
                    f"{_fmt(g.direction_matrix[:, 0])} / {_fmt(g.direction_matrix[:, 1])}): it would need resampling")
            self._cache[key] = (ru.astype(int), rv.astype(int))
        return self._cache[key]

    def origin(self, fr: _Frame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        u, v = self._axes(fr)
        t = self.g.world_to_index(fr.position)
        rt = np.rint(t)
        off = np.abs(t - rt)
        if off.max() > self.tol:
            mm = float(np.max(off * np.asarray(self.g.spacing_zyx)))
            raise SegError(f"SEG frame {fr.index + 1} at {_fmt(fr.position)} lies {mm:.3f} mm off the series' "
                           f"voxel centres (tolerance {self.tol:g} voxel)")
        return rt.astype(int), u, v

    def place(self, fr: _Frame, mask: np.ndarray):
        """Where the frame's foreground pixels go: ``((target, source) or None, pixels outside the grid)``.

        ``array[target]`` is the part of a (z, y, x) grid the frame covers: with ``source``
        a boolean mask over that part (frames on the grid's own row/column axes: basic
        slicing), or, with ``source`` None, exactly the foreground voxels (index arrays).
        """
        t, u, v = self.origin(fr)
        total = int(np.count_nonzero(mask))
        if u[1] == 1 and v[2] == 1:  # the common case: rows along y, columns along x
            k, j0, i0 = t
            ja, jb = max(j0, 0), min(j0 + self.rows, self.shape[1])
            ia, ib = max(i0, 0), min(i0 + self.cols, self.shape[2])
            if not 0 <= k < self.shape[0] or ja >= jb or ia >= ib:
                return None, total
            src = mask[ja - j0:jb - j0, ia - i0:ib - i0]
            return ((int(k), slice(ja, jb), slice(ia, ib)), src), total - int(np.count_nonzero(src))
        a, b = np.nonzero(mask)
        idx = t[:, None] + np.outer(u, a) + np.outer(v, b)
        inside = np.all((idx >= 0) & (idx < self.shape[:, None]), axis=0)
        if not inside.any():
            return None, total
        return (tuple(idx[:, inside]), None), int((~inside).sum())


def _fmt(values) -> str:
    return "(" + ", ".join(f"{float(v):.4g}" for v in np.ravel(values)) + ")"


def _frame_mask(seg, fr: _Frame, fractional_max: float | None) -> np.ndarray:
    stored = seg.get_stored_frame(fr.index + 1)
    if fractional_max is not None:
        return stored.astype(np.float64) * 2 >= fractional_max
    return stored


def _segment_infos(seg) -> dict[int, dict]:
    infos = {}
    for item in seg.SegmentSequence:
        n = int(item.SegmentNumber)
        type_item = item.SegmentedPropertyTypeCodeSequence[0]
        modifier = type_item.get("SegmentedPropertyTypeModifierCodeSequence")
        algo = item.get("SegmentationAlgorithmIdentificationSequence")
        algo = algo[0] if algo else None
        color = None
        if "RecommendedDisplayCIELabValue" in item:
            try:
                import highdicom as hd

                color = [int(c) for c in hd.color.CIELabColor.from_dicom_value(
                    item.RecommendedDisplayCIELabValue).to_rgb()]
            except (ValueError, TypeError, AttributeError):
                color = None
        try:
            value = int(item.private_block(PRIVATE_GROUP, PRIVATE_CREATOR)[PRIVATE_LABEL_ELEMENT].value)
        except (KeyError, TypeError, ValueError):
            value = None
        infos[n] = {
            "number": n,
            "label_value": value,
            "label": str(item.get("SegmentLabel", "") or f"segment {n}"),
            "category": _code_tuple(item.SegmentedPropertyCategoryCodeSequence[0]),
            "type": _code_tuple(type_item),
            "type_modifier": _code_tuple(modifier[0]) if modifier else None,
            "algorithm_type": str(item.get("SegmentAlgorithmType", "")),
            "algorithm_name": str(algo.get("AlgorithmName", "")) if algo else str(item.get("SegmentAlgorithmName", "")),
            "algorithm_version": str(algo.get("AlgorithmVersion", "")) if algo else "",
            "algorithm_family": _code_tuple(algo.AlgorithmFamilyCodeSequence[0])
            if algo is not None and "AlgorithmFamilyCodeSequence" in algo else None,
            "algorithm_parameters": str(algo.get("AlgorithmParameters", "")) if algo else "",
            "tracking_id": str(item.get("TrackingID", "")),
            "tracking_uid": str(item.get("TrackingUID", "")),
            "color_rgb": color,
        }
    return infos


def _label_values(infos: Mapping[int, dict], numbers: Sequence[int]) -> dict[int, int]:
    """segment number -> label value: the label ids radview recorded when it wrote the SEG, else the numbers."""
    values = {n: infos[n].get("label_value") for n in numbers}
    if all(isinstance(v, int) and v > 0 for v in values.values()) and len(set(values.values())) == len(values):
        return dict(values)
    return {n: n for n in numbers}


def _is_background(info: Mapping, number: int) -> bool:
    return number == 0 or (info.get("type") or [None, None])[:2] == list(_BACKGROUND_TYPE)


def _seg_meta(seg, path: str, infos: dict) -> dict:
    refs = [str(s.SeriesInstanceUID) for s in seg.get("ReferencedSeriesSequence", [])]
    return {
        "modality": "SEG",
        "source_file": path,
        "sop_instance_uid": str(seg.get("SOPInstanceUID", "")),
        "series_uid": str(seg.get("SeriesInstanceUID", "")),
        "study_uid": str(seg.get("StudyInstanceUID", "")),
        "frame_of_reference_uid": str(seg.get("FrameOfReferenceUID", "")),
        "referenced_series_uids": refs,
        "description": str(seg.get("SeriesDescription", "")),
        "content_description": str(seg.get("ContentDescription", "")),
        "content_label": str(seg.get("ContentLabel", "")),
        "segmentation_type": str(seg.get("SegmentationType", "")),
    }


def _reference_geometry(seg, reference) -> tuple[Geometry, list[str]]:
    warnings: list[str] = []
    if isinstance(reference, Volume):
        meta = reference.meta or {}
        ours, theirs = str(meta.get("frame_of_reference_uid") or ""), str(seg.get("FrameOfReferenceUID", ""))
        if ours and theirs and ours != theirs:
            raise SegError(f"the SEG is in frame of reference {theirs}, the series in {ours}: they do not share "
                           "patient coordinates")
        uid = str(meta.get("series_uid") or "")
        refs = [str(s.SeriesInstanceUID) for s in seg.get("ReferencedSeriesSequence", [])]
        if uid and refs and uid not in refs:
            warnings.append(f"the SEG was made on series {refs[0]}, shown here on {uid} (same frame of reference)")
        return reference.geometry, warnings
    if isinstance(reference, Geometry):
        return reference, warnings
    raise TypeError(f"reference must be a Volume or a Geometry, got {type(reference).__name__}")


def _fractional_max(seg) -> float | None:
    if str(seg.get("SegmentationType", "")) == "FRACTIONAL":
        return float(seg.get("MaximumFractionalValue", 255) or 255)
    return None


def _place_all(seg, geometry: Geometry, paint, order=None) -> dict[int, int]:
    """Decode every frame and hand its in-grid pixels to ``paint(segment, target, source)``; return outside counts.

    For LABELMAP frames ``paint`` is called once per segment value present in the frame.
    ``order``: segment numbers in the order to paint (frames of other segments are skipped).
    """
    frames = _frames(seg)
    placer = _Placer(geometry, int(seg.Rows), int(seg.Columns))
    fractional_max = _fractional_max(seg)
    outside: dict[int, int] = {}
    if order is not None:
        rank = {n: r for r, n in enumerate(order)}
        frames = sorted((f for f in frames if f.segment is None or f.segment in rank),
                        key=lambda f: rank.get(f.segment, -1))
    for fr in frames:
        stored = _frame_mask(seg, fr, fractional_max)
        if fr.segment is None:
            pairs = [(int(v), stored == v) for v in np.unique(stored) if v != 0]
        else:
            pairs = [(fr.segment, stored.astype(bool, copy=False))]
        for number, mask in pairs:
            if not mask.any():
                continue
            placed, out = placer.place(fr, mask)
            outside[number] = outside.get(number, 0) + out
            if placed is not None:
                paint(number, *placed)
    return outside


def _outside_warnings(outside: dict[int, int], infos: Mapping) -> list[str]:
    return [f"{n} voxel(s) of segment {s} ({infos.get(s, {}).get('label', s)}) lie outside the series and are "
            "not shown" for s, n in sorted(outside.items()) if n]


def read_seg(seg_or_path, reference: Volume | Geometry) -> LabelMap:
    """The SEG's segments as a :class:`LabelMap` on ``reference``'s grid.

    Label values are the label ids radview recorded when it wrote the SEG, else the segment numbers.

    Overlaps: the smallest segment wins (see the module notes). ``meta`` holds the
    SEG's identity, ``segments`` (number -> label, codes, algorithm), ``overlapping_voxels``
    and ``warnings``. Raises :class:`SegError` when the SEG's frames are not on the grid.
    """
    seg, path = _open(seg_or_path)
    geometry, warnings = _reference_geometry(seg, reference)
    infos = _segment_infos(seg)
    numbers = [n for n in sorted(infos) if not _is_background(infos[n], n)]
    value_of = _label_values(infos, numbers)
    top = max(value_of.values(), default=0)
    out = np.zeros(geometry.shape_zyx, np.uint8 if top < 256 else np.uint16 if top < 65536 else np.uint32)
    valid = set(numbers)

    if str(seg.get("SegmentationType", "")) == "LABELMAP":
        order = None
    else:  # pass 1: segment sizes, so that smaller segments are painted last (they win overlaps)
        sizes = {n: 0 for n in numbers}

        def count(number, target, source):
            if number in sizes:
                sizes[number] += int(np.count_nonzero(source)) if source is not None else len(target[0])

        _place_all(seg, geometry, count)
        order = sorted(numbers, key=lambda n: (-sizes[n], n))

    overlapped: np.ndarray | None = None  # voxels in more than one segment (allocated at the first overlap)

    def paint(number, target, source):
        nonlocal overlapped
        if number not in valid:
            return
        hit = _paint(out, target, source, value_of[number])
        if hit is not None:
            if overlapped is None:
                overlapped = np.zeros(geometry.shape_zyx, bool)
            overlapped[hit] = True

    outside = _place_all(seg, geometry, paint, order)
    meta = _seg_meta(seg, path, infos)
    meta["segments"] = {value_of[n]: infos[n] for n in numbers}
    overlaps = int(np.count_nonzero(overlapped)) if overlapped is not None else 0
    meta["overlapping_voxels"] = overlaps
    if overlaps:
        warnings.append(f"{overlaps} voxel(s) belong to more than one segment: each shows the smallest segment "
                        "covering it")
    warnings += _outside_warnings({k: v for k, v in outside.items() if k in valid}, infos)
    meta["warnings"] = warnings
    return LabelMap(out, geometry, {value_of[n]: infos[n]["label"] for n in numbers}, meta=meta)


def _paint(array: np.ndarray, target, source, value):
    """Paint ``value`` into ``array`` where a placed frame is on (see ``_Placer.place``).

    Returns the index (into ``array``) of the painted voxels that already held a label, or None when none did.
    """
    if source is not None:
        view = array[target]
        before = view[source]
        view[source] = value
        if not before.any():
            return None
        rows, cols = np.nonzero(source)
        hit = before != 0
        k, rs, cs = target
        return (np.full(int(hit.sum()), k), rows[hit] + rs.start, cols[hit] + cs.start)
    before = array[target]
    array[target] = value
    if not before.any():
        return None
    hit = before != 0
    return tuple(i[hit] for i in target)


def read_seg_segments(seg_or_path, reference: Volume | Geometry) -> SegmentStack:
    """Every segment's own boolean mask on ``reference``'s grid (overlaps kept; one volume per segment)."""
    seg, path = _open(seg_or_path)
    geometry, warnings = _reference_geometry(seg, reference)
    infos = _segment_infos(seg)
    numbers = [n for n in sorted(infos) if not _is_background(infos[n], n)]
    masks = np.zeros((len(numbers),) + geometry.shape_zyx, bool)
    slot = {n: i for i, n in enumerate(numbers)}

    def paint(number, target, source):
        if number in slot:
            _paint(masks[slot[number]], target, source, True)

    outside = _place_all(seg, geometry, paint)
    value_of = _label_values(infos, numbers)
    meta = _seg_meta(seg, path, infos)
    meta["segments"] = {value_of[n]: infos[n] for n in numbers}
    overlap = int(np.count_nonzero(masks.sum(axis=0, dtype=np.uint16) > 1)) if len(numbers) > 1 else 0
    meta["overlapping_voxels"] = overlap
    meta["warnings"] = warnings + _outside_warnings({k: v for k, v in outside.items() if k in slot}, infos)
    return SegmentStack(masks, geometry, {value_of[n]: infos[n]["label"] for n in numbers}, meta)


def seg_geometry(seg_or_path) -> Geometry:
    """The SEG's own voxel grid (highdicom's ``get_volume_geometry``: its frames as a regular volume)."""
    seg, path = _open(seg_or_path)
    try:
        vg = seg.get_volume_geometry()
    except (ValueError, RuntimeError, AttributeError) as exc:
        raise SegError(f"{path or 'the SEG'}: its frames are not a regular volume ({exc}); open it on its "
                       "source series") from exc
    if vg is None:
        frames = _frames(seg)
        if frames and all(np.allclose(f.position, frames[0].position) for f in frames):
            shared = seg.SharedFunctionalGroupsSequence[0] if "SharedFunctionalGroupsSequence" in seg else None
            meas = _item(shared, "PixelMeasuresSequence")
            thickness = float(getattr(meas, "SliceThickness", 0) or 0) or 1.0
            row_dir, col_dir = frames[0].orientation[:3], frames[0].orientation[3:]
            direction = np.column_stack([row_dir, col_dir, np.cross(row_dir, col_dir)])
            return Geometry((1, int(seg.Rows), int(seg.Columns)), (thickness, *frames[0].spacing),
                            tuple(frames[0].position), direction)
        raise SegError(f"{path or 'the SEG'}: its frames are not a regular volume; open it on its source series")
    a = np.asarray(vg.affine, dtype=float)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = a[:3, 2], a[:3, 1], a[:3, 0], a[:3, 3]
    geometry = Geometry.from_affine_lps(m, tuple(int(v) for v in vg.spatial_shape))
    if np.linalg.det(geometry.direction_matrix) < 0:  # slices stacked against the normal: flip, as the loader does
        d = geometry.direction_matrix.copy()
        last = geometry.index_to_world((geometry.shape_zyx[0] - 1, 0, 0))
        d[:, 2] = 0.0 - d[:, 2]
        geometry = Geometry(geometry.shape_zyx, geometry.spacing_zyx, tuple(last), d)
    return geometry


def load_seg(seg_or_path, reference: Volume | Geometry | None = None) -> LabelMap:
    """:func:`read_seg` on ``reference``'s grid, or on the SEG's own grid (:func:`seg_geometry`) without one."""
    seg, _ = _open(seg_or_path)
    return read_seg(seg, reference if reference is not None else seg_geometry(seg))


def seg_volume(path: str) -> Volume:
    """A SEG opened on its own: its label map as a Volume (modality "SEG"; names in ``meta["labels"]``).

    What ``series_loader.load_path`` returns for a SEG file; to show a SEG over
    its source series, use :func:`read_seg` with that series' volume.
    """
    from viewer.core.series_loader import LoadError

    try:
        labels = load_seg(path)
    except SegError as exc:
        raise LoadError(str(exc)) from exc
    meta = dict(labels.meta)
    warnings = list(meta.pop("warnings", []))
    meta.update({"labels": dict(labels.labels), "is_label_map": True, "series_key": meta.get("series_uid", ""),
                 "window": None, "patient": {}, "study": {}})
    return Volume(labels.array, labels.geometry, meta=meta, warnings=warnings)
