"""DICOM Secondary Capture of a screenshot: an RGB image filed in the study it was taken of, so that it can be sent
to a PACS beside the study (File → Export → Send to PACS…).

:func:`write_secondary_capture` writes one Secondary Capture Image (SOP Class 1.2.840.10008.5.1.4.1.1.7, modality
OT, ``DERIVED\\SECONDARY``, conversion type WSD — a workstation) with 8-bit RGB pixels, uncompressed. It takes the
patient and study from ``reference`` (the header of one instance of the series the screenshot shows): the same
StudyInstanceUID, PatientID, PatientName, birth date, sex, accession number, study ID, date and time, so the PACS
files it in that study; it gets a series of its own (``series_uid``, new, never the source series'). Whatever the
screenshot shows burned in (the "AI-assisted, not reviewed" stamp, measurements, the legend) is said by
BurnedInAnnotation YES; ``comments`` goes into ImageComments (e.g. "AI-assisted, not reviewed").

Written with highdicom's :class:`highdicom.sc.SCImage` when highdicom is installed, else with pydicom alone (the
same attributes). The file is written atomically. Qt-free; numpy in, a file out.
"""
from __future__ import annotations

import datetime
import os
from typing import Any

import numpy as np

from radview_base.atomic_file import atomic_write
from viewer.export import ExportError

SC_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.7"
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
MANUFACTURER = "radview"
DEFAULT_SERIES_NUMBER = 9901
DEFAULT_SERIES_DESCRIPTION = "radview screenshots"
# the patient and study attributes copied from the reference instance (pydicom fallback)
_PATIENT_STUDY = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate",
                  "StudyTime", "StudyID", "AccessionNumber", "ReferringPhysicianName", "StudyDescription",
                  "IssuerOfPatientID", "SpecificCharacterSet")
_LO_MAX = 64


def rgb_pixels(image: np.ndarray) -> np.ndarray:
    """``image`` as a contiguous (rows, columns, 3) uint8 array: RGBA loses its alpha, grey becomes RGB."""
    a = np.asarray(image)
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise ExportError(f"a Secondary Capture needs an RGB image, not an array of shape {a.shape}")
    if a.shape[2] == 4:
        a = a[:, :, :3]
    if a.dtype != np.uint8:
        if np.issubdtype(a.dtype, np.floating) and a.size and float(np.nanmax(a)) <= 1.0:
            a = a * 255.0
        a = np.clip(np.nan_to_num(a), 0, 255).astype(np.uint8)
    if a.shape[0] < 1 or a.shape[1] < 1 or a.shape[0] > 65535 or a.shape[1] > 65535:
        raise ExportError(f"a Secondary Capture image must be 1 to 65535 pixels on a side, not {a.shape[:2]}")
    return np.ascontiguousarray(a)


def _check_reference(reference) -> None:
    if not str(getattr(reference, "StudyInstanceUID", "") or ""):
        raise ExportError("the screenshot's source series has no StudyInstanceUID: it cannot be filed in its study")


def _highdicom_dataset(rgb: np.ndarray, reference, series_uid: str, sop_uid: str, series_number: int,
                       instance_number: int):
    import warnings

    import highdicom as hd

    with warnings.catch_warnings():  # the source's PatientName is copied as it is, one component or not
        warnings.filterwarnings("ignore", message=".*unlikely to represent the intended person name.*")
        return _sc_image(hd, rgb, reference, series_uid, sop_uid, series_number, instance_number)


def _sc_image(hd, rgb, reference, series_uid, sop_uid, series_number, instance_number):
    return hd.sc.SCImage.from_ref_dataset(
        ref_dataset=reference, pixel_array=rgb, photometric_interpretation="RGB", bits_allocated=8,
        coordinate_system="PATIENT", series_instance_uid=series_uid, series_number=series_number,
        sop_instance_uid=sop_uid, instance_number=instance_number, manufacturer=MANUFACTURER,
        patient_orientation=("L", "P"),  # replaced below: a screenshot has no one orientation
        transfer_syntax_uid=EXPLICIT_VR_LITTLE_ENDIAN)


def _pydicom_dataset(rgb: np.ndarray, reference, series_uid: str, sop_uid: str, series_number: int,
                     instance_number: int):
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(SC_SOP_CLASS)
    meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    meta.TransferSyntaxUID = UID(EXPLICIT_VR_LITTLE_ENDIAN)
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = FileDataset("", {}, file_meta=meta, preamble=b"\0" * 128)
    for keyword in _PATIENT_STUDY:
        if keyword in reference:
            setattr(ds, keyword, reference.data_element(keyword).value)
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                    "StudyID", "AccessionNumber", "ReferringPhysicianName"):  # Type 2: present, maybe empty
        if keyword not in ds:
            setattr(ds, keyword, "")
    now = datetime.datetime.now()
    ds.SOPClassUID = SC_SOP_CLASS
    ds.SOPInstanceUID = sop_uid
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.InstanceNumber = instance_number
    ds.Modality = "OT"
    ds.Manufacturer = MANUFACTURER
    ds.ContentDate = now.strftime("%Y%m%d")
    ds.ContentTime = now.strftime("%H%M%S")
    ds.DateOfSecondaryCapture = ds.ContentDate
    ds.TimeOfSecondaryCapture = ds.ContentTime
    ds.ImageType = ["DERIVED", "SECONDARY", "OTHER"]
    ds.Rows, ds.Columns = int(rgb.shape[0]), int(rgb.shape[1])
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "RGB"
    ds.PlanarConfiguration = 0
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = rgb.tobytes()
    return ds


def write_secondary_capture(path: str | os.PathLike, image: np.ndarray, reference, *, series_uid: str,
                            sop_uid: str, series_number: int = DEFAULT_SERIES_NUMBER, instance_number: int = 1,
                            series_description: str = DEFAULT_SERIES_DESCRIPTION, comments: str = "",
                            derivation: str = "", use_highdicom: bool | None = None) -> str:
    """Write ``image`` (RGB, RGBA or grey; uint8 or floats in 0..1) as a Secondary Capture in ``reference``'s study.

    ``reference``: a pydicom dataset (a header is enough) of the series the screenshot shows. ``series_uid`` /
    ``sop_uid``: the new series and instance. ``use_highdicom``: None = when installed. Returns ``path``.
    """
    _check_reference(reference)
    if str(getattr(reference, "SeriesInstanceUID", "") or "") == str(series_uid):
        raise ExportError("a Secondary Capture needs a series of its own, not its source series")
    rgb = rgb_pixels(image)
    if use_highdicom is None:
        try:
            import highdicom  # noqa: F401
        except ImportError:
            use_highdicom = False
        else:
            use_highdicom = True
    make = _highdicom_dataset if use_highdicom else _pydicom_dataset
    try:
        ds: Any = make(rgb, reference, str(series_uid), str(sop_uid), int(series_number), int(instance_number))
    except (ValueError, TypeError, AttributeError) as exc:
        raise ExportError(f"cannot make a Secondary Capture of this screenshot: {exc}") from exc
    ds.PatientOrientation = ""  # Type 2C: a screenshot (3D, oblique, a montage) has no one orientation
    ds.ConversionType = "WSD"  # a workstation
    ds.BurnedInAnnotation = "YES"  # the AI stamp, measurements and legend are in the pixels
    ds.SeriesDescription = str(series_description)[:_LO_MAX]
    if comments:
        ds.ImageComments = str(comments)[:10240]
    if derivation:
        ds.DerivationDescription = str(derivation)[:1024]
    atomic_write(str(path), lambda tmp: ds.save_as(tmp, enforce_file_format=True))
    return str(path)


__all__ = ["SC_SOP_CLASS", "write_secondary_capture", "rgb_pixels"]
