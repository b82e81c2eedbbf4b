"""Tiny classification model folders (safetensors, a few KB) and a radiograph to run them on, for tests.

:func:`write_radiograph_classifier` writes a 2D convnet whose scores depend on the image's mean brightness with a
different sign and bias per class, so the probabilities differ from class to class (a sorted table means
something). :func:`radiograph_folder` copies ``RG1_J2KI.dcm`` (a real chest radiograph, CR, MONOCHROME1) from
``../shared/data/dicom-objects`` into a folder, or — where that data is absent — writes a generated DX radiograph
(uncompressed, with a gradient and a bright blob), so the tests run everywhere; ``real`` says which it is.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
DICOM_OBJECTS = ROOT.parent / "shared" / "data" / "dicom-objects"
RADIOGRAPH = DICOM_OBJECTS / "RG1_J2KI.dcm"

CLASSES = ("effusion", "nodule", "pneumothorax", "cardiomegaly", "a class name longer than sixteen characters")

MANIFEST = """\
task = "classification"
id = "{id}"
name = "{name}"
version = "0.3"
modality = "{modality}"
[classification]
classes = [{classes}]
activation = "{activation}"
{threshold}
[input]
size = [{size}]
[input.normalization]
kind = "scale"
clip = [0.0, {clip}]
[network]
format = "safetensors"
file = "model.safetensors"
architecture = "convnet"
[network.args]
features = [2]
"""


def write_radiograph_classifier(folder: Path, *, model_id="tiny-xr", name="Tiny chest XR classifier",
                                modality="CR", activation="sigmoid", classes=CLASSES, size=(32, 32),
                                clip=30000.0, threshold: str = "threshold = 0.5") -> Path:
    """A ``task = "classification"`` folder: a 2D (or 3D, by ``size``) convnet with 1x1-centred kernels: ``m``, the
    mean of the max-pooled brightness in [0, 1]; class k scores ``w_k * m + b_k`` (w from 12 to -12, b from -2 to
    1.5)."""
    import torch
    from safetensors.torch import save_file

    from ai.runners.classifier import ConvNetClassifier

    folder.mkdir(parents=True, exist_ok=True)
    k = len(classes)
    net = ConvNetClassifier(k, dims=len(size), features=(2,))
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        centre = tuple(1 for _ in size)
        net.features[0].weight[(0, 0, *centre)] = 1.0  # channel 0: the brightness; channel 1 stays 0
        weights = torch.linspace(12.0, -12.0, k)
        net.head.weight[:, 0] = weights
        net.head.bias.copy_(torch.linspace(-2.0, 1.5, k))
    save_file(net.state_dict(), str(folder / "model.safetensors"))
    (folder / "model.toml").write_text(MANIFEST.format(
        id=model_id, name=name, modality=modality, classes=", ".join(f'"{c}"' for c in classes),
        activation=activation, threshold=threshold if activation == "sigmoid" else "",
        size=", ".join(map(str, size)), clip=clip))
    return folder


def write_generated_radiograph(path: Path, rows: int = 300, cols: int = 256) -> Path:
    """A DX radiograph written with pydicom: 12-bit, MONOCHROME2, PixelSpacing, no frame of reference."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    y, x = np.mgrid[0:rows, 0:cols]
    pixels = (1200 + 4 * y + 1500 * np.exp(-((y - rows / 2) ** 2 + (x - cols / 3) ** 2) / 800.0)).astype(np.uint16)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Test^Radiograph", "XR1", "19700101", "O"
    ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20260101", "120000", "1", "A1"
    ds.ReferringPhysicianName = ""
    ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "DX", 1, 1
    ds.PatientOrientation = ["L", "F"]
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.Manufacturer = "radview tests"
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelSpacing = [0.2, 0.2]
    ds.ImagerPixelSpacing = [0.2, 0.2]
    ds.WindowCenter, ds.WindowWidth = 2000, 3000
    ds.PixelData = pixels.tobytes()
    ds.save_as(str(path), enforce_file_format=True)
    return path


def radiograph_folder(folder: Path) -> tuple[Path, bool]:
    """A folder holding one radiograph: ``RG1_J2KI.dcm`` when ../shared/data is here (``True``), else a generated
    DX radiograph (``False``)."""
    folder.mkdir(parents=True, exist_ok=True)
    if RADIOGRAPH.is_file():
        shutil.copy(RADIOGRAPH, folder / RADIOGRAPH.name)
        return folder, True
    write_generated_radiograph(folder / "generated_dx.dcm")
    return folder, False
