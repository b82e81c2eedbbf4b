"""Generate (once) a synthetic CT series for the load benchmark.

The series looks like a scanner export: one explicit-VR little-endian file per
slice, a realistic CT header (patient/study/series attributes, rescale
intercept -1024 / slope 1, window, pixel spacing), ImagePositionPatient
stepping along z, and file names shuffled so that name order is not position
order. The pixels are smooth noise: their content does not matter for speed.

The files are written into a cache folder and reused while a marker file with
the same parameters is present.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

MARKER = ".radview-bench-complete.json"  # hidden, so directory scanners skip it
FORMAT_VERSION = 1


def _smooth_noise(rng: np.random.Generator, nz: int, size: int, coarse: int = 17):
    """Yield ``nz`` slices of smooth 3D noise (float32, roughly -1..1) of ``size``×``size`` pixels."""
    nzc = max(2, nz // 16 + 2)
    grid = rng.standard_normal((nzc, coarse, coarse)).astype(np.float32)
    # separable linear interpolation: coarse (coarse×coarse) → fine (size×size)
    src = np.linspace(0, coarse - 1, size)
    lo = np.minimum(src.astype(int), coarse - 2)
    w = (src - lo).astype(np.float32)
    interp = np.zeros((size, coarse), dtype=np.float32)
    interp[np.arange(size), lo] = 1 - w
    interp[np.arange(size), lo + 1] = w
    zsrc = np.linspace(0, nzc - 1, nz)
    for z in zsrc:
        k = min(int(z), nzc - 2)
        t = np.float32(z - k)
        plane = grid[k] * (1 - t) + grid[k + 1] * t
        yield interp @ plane @ interp.T


def _dataset(k: int, nz: int, size: int, uids: dict, pixel_representation: int) -> pydicom.Dataset:
    """Header of the slice with InstanceNumber ``k + 1`` (no pixel data yet)."""
    sop_uid = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = pydicom.uid.PYDICOM_IMPLEMENTATION_UID

    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = "20240115"
    ds.StudyTime = ds.SeriesTime = "101500"
    ds.AcquisitionTime = ds.ContentTime = f"1016{k % 60:02d}.{k:06d}"
    ds.AccessionNumber = "BENCH0001"
    ds.Modality = "CT"
    ds.Manufacturer = "SYNTHETIC"
    ds.InstitutionName = "radview benchmark"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "CT ABDOMEN PELVIS W CONTRAST"
    ds.SeriesDescription = "Synthetic 1.0mm axial"
    ds.ManufacturerModelName = "bench-ct"
    ds.PatientName = "Bench^Synthetic"
    ds.PatientID = "BENCH-CT-300"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.BodyPartExamined = "ABDOMEN"
    ds.SliceThickness = "1.0"
    ds.KVP = "120"
    ds.DataCollectionDiameter = "500.0"
    ds.ReconstructionDiameter = "500.0"
    ds.GantryDetectorTilt = "0.0"
    ds.TableHeight = "150.0"
    ds.ConvolutionKernel = "STANDARD"
    ds.PatientPosition = "FFS"
    ds.StudyInstanceUID = uids["study"]
    ds.SeriesInstanceUID = uids["series"]
    ds.StudyID = "1"
    ds.SeriesNumber = 3
    ds.AcquisitionNumber = 1
    ds.InstanceNumber = k + 1
    # head to feet: instance 1 is the highest z, so position order is the reverse of instance order
    ds.ImagePositionPatient = [-250.0, -250.0, round(150.0 - k * 1.0, 3)]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.FrameOfReferenceUID = uids["frame"]
    ds.PositionReferenceIndicator = ""
    ds.SliceLocation = str(round(150.0 - k * 1.0, 3))
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = size
    ds.Columns = size
    ds.PixelSpacing = [round(500.0 / size, 6)] * 2
    ds.BitsAllocated = 16
    ds.BitsStored = 16 if pixel_representation == 1 else 12
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = pixel_representation
    ds.WindowCenter = "40"
    ds.WindowWidth = "400"
    ds.RescaleIntercept = "-1024"
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    return ds


def ensure_ct_series(folder: Path, nz: int = 300, size: int = 512, pixel_representation: int = 1,
                     seed: int = 1234) -> tuple[Path, bool]:
    """The folder holding the series (generating it if needed) and whether it was generated now."""
    params = {"version": FORMAT_VERSION, "nz": nz, "size": size,
              "pixel_representation": pixel_representation, "seed": seed}
    marker = folder / MARKER
    if marker.is_file():
        try:
            if json.loads(marker.read_text()) == params:
                return folder, False
        except (OSError, ValueError):
            pass
    if folder.exists():
        shutil.rmtree(folder)
    tmp = folder.with_name(folder.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)

    rng = np.random.default_rng(seed)
    uids = {"study": generate_uid(), "series": generate_uid(), "frame": generate_uid()}
    names = rng.permutation(nz)  # file name number ≠ instance number ≠ position order
    stored_dtype = np.int16 if pixel_representation == 1 else np.uint16
    for k, noise in enumerate(_smooth_noise(rng, nz, size)):
        hu = 40.0 + 400.0 * noise + rng.normal(0.0, 15.0, noise.shape)  # soft tissue ± smooth variation
        stored = np.clip(np.rint(hu + 1024.0), 0, 4095).astype(stored_dtype)
        ds = _dataset(k, nz, size, uids, pixel_representation)
        ds.PixelData = stored.tobytes()
        ds.save_as(tmp / f"IM{names[k]:05d}.dcm", enforce_file_format=True)
    (tmp / MARKER).write_text(json.dumps(params))
    tmp.rename(folder)
    return folder, True
