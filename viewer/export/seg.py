"""DICOM SEG: write a label map as a Segmentation of its source series (reading: :mod:`viewer.io.seg_file`).

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

Reading (:mod:`viewer.io.seg_file`: :func:`read_seg`, :func:`read_seg_segments`, :func:`load_seg`): the
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

from radview_base.atomic_file import atomic_write
from radview_base.geometry import Geometry, GeometryMismatchError, require_same_grid
from viewer.export import AI_NOT_REVIEWED
from viewer.io.seg_file import PRIVATE_CREATOR, PRIVATE_GROUP, PRIVATE_LABEL_ELEMENT, SegError, SegmentStack
from viewer.io.volume import LabelMap

__all__ = ["SourceSeries", "SegInfo", "write_seg", "segment_codes", "seg_note"]



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


def lo_text(text: Any, limit: int = 64) -> str:
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
        name=lo_text(provenance.get("model_name") or provenance.get("model_id") or "unknown model"),
        family=algorithm_family(provenance),
        version=lo_text(provenance.get("model_version") or "unknown"),
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
        from viewer.io.dicom_index import scan

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
            name=lo_text(info["algorithm_name"]), version=lo_text(info.get("algorithm_version") or "unknown"),
            family=family)
    else:
        algorithm_type, algorithm = hd.seg.SegmentAlgorithmTypeValues.MANUAL, None
    desc = hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=lo_text(name) or f"segment {number}",
        segmented_property_category=category,
        segmented_property_type=prop_type,
        algorithm_type=algorithm_type,
        algorithm_identification=algorithm,
        tracking_uid=info.get("tracking_uid") or None,
        tracking_id=lo_text(info["tracking_id"]) if info.get("tracking_id") else None,
        display_color=hd.color.CIELabColor.from_rgb(*[int(c) for c in color]) if color is not None else None,
    )
    if modifier is not None:
        desc.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [modifier]
    if label_value is not None:
        desc.private_block(PRIVATE_GROUP, PRIVATE_CREATOR, create=True).add_new(PRIVATE_LABEL_ELEMENT, "UL",
                                                                               int(label_value))
    return desc


def _segment_numbers(array: np.ndarray, numbers: Mapping[int, int], n_segments: int) -> np.ndarray:
    """The label map with each label id replaced by its segment number (labels without a segment: 0).

    Only the slices that hold a label are mapped (``np.take`` into a zeroed array, the same values as
    ``lut[array]``): a model's labels often fill a fraction of the slices, and mapping all of 512 x 512 x 300
    voxels took a quarter of a second.
    """
    lut = np.zeros(int(max(int(array.max()), *numbers, 0)) + 1, np.uint16 if n_segments > 255 else np.uint8)
    for label, n in numbers.items():
        lut[label] = n
    if array.ndim != 3 or array.dtype.kind not in "ui":
        return lut[array]
    out = np.zeros(array.shape, lut.dtype)
    for z in range(array.shape[0]):
        plane = array[z]
        if plane.any():
            np.take(lut, plane, out=out[z])
    return out


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
            array = _segment_numbers(array, numbers, len(ids))
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
                content_description=lo_text(note),
                content_label="AI_SEGMENTATION" if prov is not None else "SEGMENTATION",
                content_creator_name=content_creator or None,
                series_description=lo_text(series_description),
                omit_empty_frames=True,
            )
    except (ValueError, TypeError, AttributeError) as exc:
        raise SegError(f"cannot make a SEG of series {source.key}: {exc}") from exc
    atomic_write(path, lambda tmp: seg.save_as(tmp, enforce_file_format=True))
    return SegInfo(os.path.abspath(path), str(seg.SOPInstanceUID), str(seg.SeriesInstanceUID), numbers,
                   int(seg.NumberOfFrames), note, seg)


# --------------------------------------------------------------------------------------------- reading
