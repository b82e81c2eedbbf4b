"""``radview-cli convert`` writes without a second copy of the volume (issue 15, part 7).

It peaked at 2.2× the volume (SimpleITK's GetImageFromArray copies the array before writing). The series is now
loaded straight into one array and streamed to the file slice by slice: the whole process's peak resident
memory (its VmHWM) must stay within 1.15 × the volume + 150 MB.
Measured on a synthetic 300-slice 512² CT (int16, GE-like signed pixels, intercept -1024) written with pydicom.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

ROOT = Path(__file__).resolve().parents[2]
NZ, SIZE = 300, 512
MB = 2**20
FACTOR, OVERHEAD_MB = 1.15, 150

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/status"),
                                reason="a process's peak resident memory (VmHWM) is read from /proc (Linux)")


def _stored(k: int) -> np.ndarray:
    """Slice ``k``'s stored values: a ramp that differs per slice (HU = stored - 1024)."""
    ramp = (np.arange(SIZE * SIZE, dtype=np.int32).reshape(SIZE, SIZE) % 3000)
    return (ramp + 7 * k).astype(np.int16)


@pytest.fixture(scope="module")
def ct300(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ct300")
    series, study, frame = generate_uid(), generate_uid(), generate_uid()
    for k in range(NZ):
        ds = Dataset()
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = generate_uid()
        ds.Modality = "CT"
        ds.PatientID = "CONVERT-300"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.SeriesNumber = 2
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [-250.0, -250.0, 100.0 - 1.25 * k]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [0.9765625, 0.9765625]
        ds.SliceThickness = 1.25
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = ds.Columns = SIZE
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        ds.PixelData = _stored(k).tobytes()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.save_as(folder / f"{(k * 7919) % NZ:04d}.dcm", enforce_file_format=True)  # names ≠ position order
    return folder


#: runs the command in the child and reports that process's own peak resident memory (VmHWM). (``ru_maxrss`` of a
#: child is no measure here: Linux carries the parent's high-water mark into it across the vfork + exec.)
_WRAPPER = """
import sys
sys.argv = ["radview-cli"] + sys.argv[1:]
from viewer.cli.main import main
try:
    status = main()
finally:
    with open("/proc/self/status") as fp:
        hwm = next(line for line in fp if line.startswith("VmHWM:"))
    sys.stderr.write("PEAK " + hwm.split()[1] + "\\n")
sys.exit(status)
"""


def _convert_peak(folder: Path, out: Path) -> int:
    """Peak resident bytes of the whole convert process."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", _WRAPPER, "convert", str(folder), "--out", str(out)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "wrote" in proc.stdout
    (kib,) = [line.split()[1] for line in proc.stderr.splitlines() if line.startswith("PEAK ")]
    return int(kib) * 1024


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz", ".nrrd"])
def test_convert_peak_memory_is_one_volume(ct300, tmp_path, suffix):
    volume_bytes = NZ * SIZE * SIZE * 2
    out = tmp_path / f"ct{suffix}"
    peak = _convert_peak(ct300, out)
    limit = FACTOR * volume_bytes + OVERHEAD_MB * MB
    assert peak <= limit, (f"convert peaked at {peak / MB:.0f} MB = {peak / volume_bytes:.2f} × the "
                           f"{volume_bytes / MB:.0f} MB volume (limit {limit / MB:.0f} MB)")
    img = sitk.ReadImage(str(out))
    arr = sitk.GetArrayViewFromImage(img)
    assert arr.shape == (NZ, SIZE, SIZE) and arr.dtype == np.int16
    # radview's z runs along the slice normal (+z, feet → head): the last file written is the first slice
    for z in (0, 1, NZ // 2, NZ - 1):
        np.testing.assert_array_equal(arr[z], _stored(NZ - 1 - z).astype(np.int32) - 1024)
    assert np.allclose(img.GetOrigin(), (-250.0, -250.0, 100.0 - 1.25 * (NZ - 1)))
    assert np.allclose(img.GetSpacing(), (0.9765625, 0.9765625, 1.25))
