"""Write the phantom as a standards-conformant CT study with pydicom.

Three series share one study and frame of reference:

* thin axial series (one file per slice, InstanceNumber 1 = most superior),
* 5 mm average-intensity slab series derived from it,
* a coronal projection localizer (scout).

Pixel data are signed 16-bit HU (RescaleSlope 1, RescaleIntercept 0) in
Explicit VR Little Endian. All UIDs are derived deterministically from the seed.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, CTImageStorage, ExplicitVRLittleEndian, generate_uid

from viewer.demo.phantom import Grid

ProgressFn = Callable[[float, str], None]

SLAB_THICKNESS_MM = 5.0
LOCALIZER_PIXEL_MM = 0.75
STUDY_DATE, STUDY_TIME = "20240315", "101500"
CT_SUBDIR, SLAB_SUBDIR, LOCALIZER_SUBDIR = "ct_thin", "ct_slab5", "localizer"


@dataclass(frozen=True)
class StudyUIDs:
    study: str
    frame_of_reference: str
    ct_series: str
    slab_series: str
    localizer_series: str


def _uid(seed: int, *parts) -> str:
    return generate_uid(entropy_srcs=["radview-demo", "v1", str(seed), *map(str, parts)])


def study_uids(seed: int) -> StudyUIDs:
    """The study's UIDs; identical for identical seeds."""
    return StudyUIDs(*(_uid(seed, name) for name in ("study", "frame", "ct", "slab", "localizer")))


def _ds(value: float) -> str:
    """Decimal String of at most 16 characters."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    if text in ("-0", ""):
        text = "0"
    if len(text) > 16:
        text = f"{value:.9g}"
    return text


# ------------------------------------------------------------------ datasets
def _base_dataset(uids: StudyUIDs, seed: int) -> Dataset:
    """Patient, study, equipment, frame-of-reference and CT acquisition attributes."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = CTImageStorage
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = STUDY_DATE
    ds.StudyTime = STUDY_TIME
    ds.AccessionNumber = "RVDEMO0001"
    ds.Modality = "CT"
    ds.Manufacturer = "radview (synthetic)"
    ds.InstitutionName = "radview demo"
    ds.ReferringPhysicianName = "Demo^Referrer"
    ds.StationName = "PHANTOM01"
    ds.StudyDescription = "radview demo chest CT (synthetic phantom)"
    ds.ManufacturerModelName = "procedural chest phantom"
    ds.PatientName = "Demo^Phantom"
    ds.PatientID = "RADVIEW-DEMO"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.PatientAge = "054Y"
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "synthetic data, no real patient"
    ds.BodyPartExamined = "CHEST"
    ds.KVP = "120"
    ds.DataCollectionDiameter = "500"
    ds.SoftwareVersions = f"radview-demo 1 (seed {seed})"
    ds.DistanceSourceToDetector = "1040"
    ds.DistanceSourceToPatient = "570"
    ds.GantryDetectorTilt = "0"
    ds.TableHeight = "150"
    ds.RotationDirection = "CW"
    ds.ExposureTime = "500"
    ds.XRayTubeCurrent = 200
    ds.Exposure = 100
    ds.FilterType = "BODY"
    ds.GeneratorPower = 24
    ds.FocalSpots = "1.2"
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = uids.study
    ds.StudyID = "1"
    ds.AcquisitionNumber = 1
    ds.FrameOfReferenceUID = uids.frame_of_reference
    ds.PositionReferenceIndicator = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleIntercept = "0"
    ds.RescaleSlope = "1"
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    return ds


def _image_dataset(base: Dataset, series_uid: str, series_number: int, series_description: str,
                   sop_uid: str, instance_number: int, pixels: np.ndarray) -> Dataset:
    ds = copy.deepcopy(base)
    ds.SOPInstanceUID = sop_uid
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.SeriesDescription = series_description
    ds.InstanceNumber = instance_number
    ds.Rows, ds.Columns = (int(v) for v in pixels.shape)
    ds.PixelData = np.ascontiguousarray(pixels, dtype="<i2").tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta.ImplementationVersionName = "RADVIEW_DEMO_1"
    return ds


def _set_axial(ds: Dataset, grid: Grid, z_mm: float, thickness_mm: float, spacing_mm: float) -> None:
    sz, sy, sx = grid.spacing_zyx
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.ImagePositionPatient = [_ds(grid.origin_lps[0]), _ds(grid.origin_lps[1]), _ds(z_mm)]
    ds.SliceLocation = _ds(z_mm)
    ds.PixelSpacing = [_ds(sy), _ds(sx)]
    ds.SliceThickness = _ds(thickness_mm)
    ds.SpacingBetweenSlices = _ds(spacing_mm)
    ds.ReconstructionDiameter = _ds(grid.shape_zyx[2] * sx)
    ds.ConvolutionKernel = "STANDARD"
    ds.ContrastBolusAgent = "iodinated contrast (simulated)"
    ds.ContrastBolusRoute = "IV"
    ds.RevolutionTime = 0.5
    ds.SingleCollimationWidth = 0.625
    ds.TotalCollimationWidth = 40.0
    ds.SpiralPitchFactor = 0.984
    ds.CTDIvol = 8.5
    phantom_type = Dataset()
    phantom_type.CodeValue = "113691"
    phantom_type.CodingSchemeDesignator = "DCM"
    phantom_type.CodeMeaning = "IEC Body Dosimetry Phantom"
    ds.CTDIPhantomTypeCodeSequence = [phantom_type]
    ds.RescaleType = "HU"
    ds.WindowCenter = ["40", "-600"]
    ds.WindowWidth = ["400", "1500"]
    ds.WindowCenterWidthExplanation = ["MEDIASTINUM", "LUNG"]


def _write(ds: Dataset, path: Path) -> None:
    ds.save_as(path, enforce_file_format=True)


# ------------------------------------------------------------------- series
def slab_average(hu_zyx: np.ndarray, thin_mm: float, slab_mm: float) -> np.ndarray:
    """Average of thin slices (each covering ``thin_mm``) over consecutive ``slab_mm`` slabs.

    Slab ``j`` covers ``[j * slab_mm, (j + 1) * slab_mm)`` measured from the
    outer edge of slice 0; partial overlaps are weighted by their length.
    """
    nz = hu_zyx.shape[0]
    n_slab = int(math.floor(nz * thin_mm / slab_mm + 1e-6))
    out = np.empty((n_slab,) + hu_zyx.shape[1:], np.float32)
    for j in range(n_slab):
        lo, hi = j * slab_mm, (j + 1) * slab_mm
        acc = np.zeros(hu_zyx.shape[1:], np.float32)
        for k in range(int(lo // thin_mm), min(nz, int(math.ceil(hi / thin_mm)))):
            w = min(hi, (k + 1) * thin_mm) - max(lo, k * thin_mm)
            if w > 0:
                acc += np.float32(w / slab_mm) * hu_zyx[k]
        out[j] = acc
    return np.rint(out).astype(np.int16)


def localizer_projection(hu_zyx: np.ndarray, grid: Grid, pixel_mm: float = LOCALIZER_PIXEL_MM) -> np.ndarray:
    """Coronal scout: mean attenuation (HU) along y over the whole field of view.

    Returned array is ``(rows, columns)`` with row 0 at the most superior slice
    and rows ``pixel_mm`` apart toward inferior; columns follow the CT columns.
    """
    sz = grid.spacing_zyx[0]
    mean = np.zeros((hu_zyx.shape[0], hu_zyx.shape[2]), np.float32)
    for k in range(hu_zyx.shape[0]):
        mean[k] = np.maximum(hu_zyx[k], -1000).mean(axis=0, dtype=np.float32)
    nz = hu_zyx.shape[0]
    rows = int(math.floor((nz - 1) * sz / pixel_mm + 1e-6)) + 1
    k = (nz - 1) - np.arange(rows) * (pixel_mm / sz)  # fractional slice index, superior first
    k0 = np.clip(np.floor(k).astype(int), 0, nz - 1)
    k1 = np.clip(k0 + 1, 0, nz - 1)
    f = (k - k0)[:, None].astype(np.float32)
    image = mean[k0] * (1 - f) + mean[k1] * f
    return np.rint(image).astype(np.int16)


def _thin_series(out: Path, hu_zyx: np.ndarray, grid: Grid, base: Dataset, uids: StudyUIDs,
                 seed: int, report: ProgressFn) -> None:
    nz = hu_zyx.shape[0]
    sz = grid.spacing_zyx[0]
    for n in range(1, nz + 1):
        k = nz - n
        z = grid.origin_lps[2] + k * sz
        ds = _image_dataset(base, uids.ct_series, 2, f"Chest {sz:.1f} mm", _uid(seed, "ct", n), n, hu_zyx[k])
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.AcquisitionTime = ds.ContentTime = ds.SeriesTime = "101700"
        _set_axial(ds, grid, z, sz, sz)
        _write(ds, out / f"CT{n:04d}.dcm")
        if n % 16 == 0:
            report(n / nz, f"DICOM: thin series {n}/{nz}")


def _slab_series(out: Path, hu_zyx: np.ndarray, grid: Grid, base: Dataset, uids: StudyUIDs,
                 seed: int, report: ProgressFn) -> None:
    sz = grid.spacing_zyx[0]
    slabs = slab_average(hu_zyx, sz, SLAB_THICKNESS_MM)
    n_slab = slabs.shape[0]
    z_edge = grid.origin_lps[2] - sz / 2  # inferior edge of slice 0
    for n in range(1, n_slab + 1):
        j = n_slab - n
        z = z_edge + (j + 0.5) * SLAB_THICKNESS_MM
        ds = _image_dataset(base, uids.slab_series, 3, "Chest 5 mm average", _uid(seed, "slab", n), n, slabs[j])
        ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
        ds.DerivationDescription = f"average of {sz:.1f} mm slices over {SLAB_THICKNESS_MM:.0f} mm slabs"
        ds.AcquisitionTime = ds.ContentTime = "101700"
        ds.SeriesTime = "101800"
        _set_axial(ds, grid, z, SLAB_THICKNESS_MM, SLAB_THICKNESS_MM)
        _write(ds, out / f"SL{n:04d}.dcm")
    report(1.0, "DICOM: slab series")


def _localizer(out: Path, hu_zyx: np.ndarray, grid: Grid, base: Dataset, uids: StudyUIDs, seed: int) -> None:
    image = localizer_projection(hu_zyx, grid)
    sz, _, sx = grid.spacing_zyx
    z_top = grid.origin_lps[2] + (hu_zyx.shape[0] - 1) * sz
    ds = _image_dataset(base, uids.localizer_series, 1, "Topogram AP", _uid(seed, "localizer", 1), 1, image)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    ds.AcquisitionTime = ds.ContentTime = ds.SeriesTime = "101600"
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "0", "-1"]
    ds.ImagePositionPatient = [_ds(grid.origin_lps[0]), "0", _ds(z_top)]
    ds.PixelSpacing = [_ds(LOCALIZER_PIXEL_MM), _ds(sx)]
    ds.SliceThickness = ""
    # Rescale Type is left out: HU is implied, and dciodvfy discourages an explicit HU on localizers
    lo, hi = np.percentile(image, [1, 99.9])
    ds.WindowCenter = _ds(round((lo + hi) / 2))
    ds.WindowWidth = _ds(max(1, round(hi - lo)))
    ds.ImageComments = "coronal projection: mean attenuation (HU) along the AP direction"
    _write(ds, out / "LOC0001.dcm")


def write_study(dicom_dir, hu_zyx: np.ndarray, grid: Grid, seed: int,
                progress: Optional[ProgressFn] = None) -> StudyUIDs:
    """Write the three series below ``dicom_dir`` and return their UIDs."""
    report = progress or (lambda f, m: None)
    root = Path(dicom_dir)
    dirs = [root / name for name in (CT_SUBDIR, SLAB_SUBDIR, LOCALIZER_SUBDIR)]
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
    uids = study_uids(seed)
    base = _base_dataset(uids, seed)
    report(0.0, "DICOM: localizer")
    _localizer(dirs[2], hu_zyx, grid, base, uids, seed)
    _thin_series(dirs[0], hu_zyx, grid, base, uids, seed, lambda f, m: report(0.05 + 0.75 * f, m))
    _slab_series(dirs[1], hu_zyx, grid, base, uids, seed, lambda f, m: report(0.8 + 0.2 * f, m))
    return uids


def series_dirs(dicom_dir) -> Sequence[Path]:
    """(thin, slab, localizer) directories below ``dicom_dir``."""
    root = Path(dicom_dir)
    return tuple(root / name for name in (CT_SUBDIR, SLAB_SUBDIR, LOCALIZER_SUBDIR))
