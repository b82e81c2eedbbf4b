"""4D DICOM series written with pydicom: every slice position repeated once per time point (perfusion, DCE,
cardiac phases, pCASL, diffusion), for the time-point tests of core and qt.

:func:`write_4d_series` writes ``n_t`` time points × ``n_z`` axial MR slices; the pixels of time point ``t`` at
slice ``z`` hold :func:`value` ``(t, z)`` everywhere (or ``pixels(t, z)`` when given), so the image shown says
which time point and slice it is. What tells the time points apart is chosen: TemporalPositionIdentifier (DCE,
perfusion), TriggerTime (cardiac phases) or nothing but the InstanceNumber (pCASL label/control pairs); ``extra``
adds what else an image carries (the b-value of a diffusion series, in a vendor's private tag).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"


def value(t: int, z: int) -> int:
    """The pixel value of time point ``t`` (from 0) at slice ``z``: distinct for every pair."""
    return 1000 * (t + 1) + 10 * z


def write_4d_series(folder: Path, n_t: int = 3, n_z: int = 5, size: int = 16, spacing: float = 4.0,
                    varies: str = "temporal position", trigger_ms: float = 50.0, pixels=None, extra=None,
                    implicit: bool = False) -> Path:
    """Write the series into ``folder`` (files named in an order unrelated to time or position); return it.

    ``extra(ds, t, z)``: more attributes of each image (a vendor's private b-value …); ``implicit``: written in
    implicit VR little endian (private elements then carry no VR)."""
    folder.mkdir(parents=True, exist_ok=True)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    order = np.random.default_rng(4).permutation(n_t * n_z)
    for t in range(n_t):
        for z in range(n_z):
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = MR_IMAGE, generate_uid()
            meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
            ds = Dataset()
            ds.file_meta = meta
            ds.SOPClassUID, ds.SOPInstanceUID = MR_IMAGE, meta.MediaStorageSOPInstanceUID
            ds.PatientName, ds.PatientID = "Test^FourD", "4D-1"
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
            ds.StudyDate, ds.Modality, ds.SeriesNumber = "20240101", "MR", 701
            ds.SeriesDescription = f"4D {varies}"
            ds.InstanceNumber = t * n_z + z + 1
            if varies == "temporal position":
                ds.TemporalPositionIdentifier = t + 1
                ds.NumberOfTemporalPositions = n_t
            elif varies == "trigger time":
                ds.TriggerTime = t * trigger_ms
            ds.ImagePositionPatient = [-size / 2, -size / 2, z * spacing]
            ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
            ds.PixelSpacing, ds.SliceThickness = [1.0, 1.0], spacing
            ds.Rows = ds.Columns = size
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
            image = np.full((size, size), value(t, z), np.int16) if pixels is None else pixels(t, z)
            ds.PixelData = np.asarray(image, np.int16).tobytes()
            if extra is not None:
                extra(ds, t, z)
            ds.save_as(folder / f"im{order[t * n_z + z]:04d}.dcm", enforce_file_format=True)
    return folder
