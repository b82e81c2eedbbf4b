"""2D DICOM cases built from real pixels (../shared/data/dicom-objects), each exercising one branch of the 2D
image model: PatientOrientation variants, MONOCHROME1 with a VOI LUT Sequence, ImagerPixelSpacing with and
without ERMF, an ultrasound region, a 20-frame cine, a four-view mammography study, two radiographs of
different sizes in one series, shutters and overlay planes.

The radiograph pixels are the real CR chest of ``RG1_J2KI.dcm`` (decoded once, 4× smaller); the ultrasound and
cine pixels are the real ``US1_UNCR.dcm``. Attributes are rewritten; pixel data is written uncompressed.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from reference import data_path

CR_CLASS = "1.2.840.10008.5.1.4.1.1.1"
MG_CLASS = "1.2.840.10008.5.1.4.1.1.1.2"
US_CLASS = "1.2.840.10008.5.1.4.1.1.6.1"
US_MULTI_CLASS = "1.2.840.10008.5.1.4.1.1.3.1"


@lru_cache(maxsize=1)
def chest_pixels() -> np.ndarray:
    """The real CR chest (MONOCHROME1, stored uint16), 4× smaller: 489×461."""
    ds = pydicom.dcmread(data_path("dicom-objects", "RG1_J2KI.dcm"))
    return np.ascontiguousarray(ds.pixel_array[::4, ::4]).astype(np.uint16)


@lru_cache(maxsize=1)
def ultrasound_pixels() -> np.ndarray:
    """The real ultrasound image (RGB 480×640) as one grayscale channel."""
    ds = pydicom.dcmread(data_path("dicom-objects", "US1_UNCR.dcm"))
    return np.ascontiguousarray(ds.pixel_array[..., 0]).astype(np.uint8)


def _base(sop_class: str, modality: str, series_uid: str, study_uid: str, number: int) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
    ds.Modality = modality
    ds.PatientName, ds.PatientID = "Test^Planar", "PLANAR1"
    ds.StudyDate, ds.SeriesNumber, ds.InstanceNumber = "20240102", 1, number
    ds.SeriesDescription = f"{modality} test"
    return ds


def write_radiograph(folder: Path, name: str, pixels: np.ndarray | None = None, *, series_uid: str | None = None,
                     study_uid: str | None = None, number: int = 1, modality: str = "CR",
                     photometric: str = "MONOCHROME1", **attrs) -> Path:
    """A radiograph from the real chest pixels; ``attrs`` are set as given (PatientOrientation, …)."""
    pixels = chest_pixels() if pixels is None else pixels
    ds = _base(MG_CLASS if modality == "MG" else CR_CLASS, modality, series_uid or generate_uid(),
               study_uid or generate_uid(), number)
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 15, 14, 0
    ds.RescaleSlope, ds.RescaleIntercept = 1, 0
    for key, value in attrs.items():
        setattr(ds, key, value)
    ds.PixelData = np.ascontiguousarray(pixels, dtype=np.uint16).tobytes()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    ds.save_as(path, enforce_file_format=True)
    return path


def write_ultrasound(folder: Path, name: str, frames: int = 1, *, series_uid: str | None = None, number: int = 1,
                     **attrs) -> Path:
    """An ultrasound image (or a ``frames``-frame cine: the real image shifted one column per frame)."""
    base = ultrasound_pixels()
    ds = _base(US_MULTI_CLASS if frames > 1 else US_CLASS, "US", series_uid or generate_uid(), generate_uid(), number)
    ds.Rows, ds.Columns = base.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    stack = np.stack([np.roll(base, 8 * k, axis=1) for k in range(frames)])
    if frames > 1:
        ds.NumberOfFrames = frames
        ds.FrameIncrementPointer = pydicom.tag.Tag("FrameTime")
    for key, value in attrs.items():
        setattr(ds, key, value)
    ds.PixelData = stack.tobytes()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    ds.save_as(path, enforce_file_format=True)
    return path


def us_region(x0: int, y0: int, x1: int, y1: int, delta_cm: float) -> Dataset:
    item = Dataset()
    item.RegionLocationMinX0, item.RegionLocationMinY0 = x0, y0
    item.RegionLocationMaxX1, item.RegionLocationMaxY1 = x1, y1
    item.PhysicalUnitsXDirection = item.PhysicalUnitsYDirection = 3  # cm
    item.PhysicalDeltaX = item.PhysicalDeltaY = delta_cm
    item.RegionSpatialFormat, item.RegionDataType, item.RegionFlags = 1, 1, 0
    return item


def voi_lut_item(first: int, n: int, bits: int = 16) -> Dataset:
    """A VOI LUT item mapping stored ``first … first+n-1`` linearly onto 0 … 2**bits-1 (the same as a window)."""
    item = Dataset()
    item.add_new((0x0028, 0x3002), "US", [n, first, bits])
    item.LUTExplanation = "linear test LUT"
    data = np.round(np.linspace(0, (1 << bits) - 1, n)).astype(np.uint16)
    item.add_new((0x0028, 0x3006), "US", data.tolist())
    return item


def mammography_study(folder: Path) -> dict[str, Path]:
    """Four views RCC, LCC, RMLO, LMLO in one series, each with its laterality, view and PatientOrientation.

    As acquired (and as DICOM's mammography examples give them), every view has its anterior (nipple) side
    toward the image's right edge ("A" first), so the hanging must flip the right breast's views (shown in the
    left column) to put the chest walls back to back.
    """
    series, study = generate_uid(), generate_uid()
    out = {}
    for n, (side, view) in enumerate((("R", "CC"), ("L", "CC"), ("R", "MLO"), ("L", "MLO")), start=1):
        pixels = chest_pixels()[:, : chest_pixels().shape[1] // 2]  # one half: a breast-like extent
        bottom = "L" if side == "R" else "R"
        if view == "MLO":
            bottom = "F" + bottom
        out[side + view] = write_radiograph(folder, f"{side}{view}.dcm", pixels, series_uid=series, study_uid=study,
                                            number=n, modality="MG", photometric="MONOCHROME2",
                                            ImageLaterality=side, ViewPosition=view,
                                            PatientOrientation=["A", bottom], ImagerPixelSpacing=[0.1, 0.1])
    return out
