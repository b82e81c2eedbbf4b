"""What the PACS tests share: the real CT's identity and the checks on what a retrieve wrote."""
from __future__ import annotations

from pathlib import Path

CT = ("ct-pancreas-tcia",)
CT_STUDY = "1.3.6.1.4.1.14519.5.2.1.21087345762211724523378497892240459677"
CT_SERIES = "1.3.6.1.4.1.14519.5.2.1.302382790855582445722435410442490497846"
CT_PATIENT = "Pancreas-CT-CB_001"
CT_DATE = "20120706"
CT_SLICES = 134
CALLING = "RADVIEW"  # radview's AE title, known to Orthanc (with its C-STORE SCP port, for C-MOVE)


def assert_same_volume(original, retrieved_folder) -> None:
    """The retrieved series loads voxel-identical to the original, on the same grid."""
    import numpy as np

    from viewer.io.series_loader import load_path

    got = load_path(str(retrieved_folder))
    assert got.array.shape == original.array.shape
    assert got.array.dtype == original.array.dtype
    assert np.array_equal(got.array, original.array)
    assert got.geometry.shape_zyx == original.geometry.shape_zyx
    assert np.allclose(got.geometry.spacing_zyx, original.geometry.spacing_zyx)
    assert np.allclose(got.geometry.origin_lps, original.geometry.origin_lps)
    assert np.allclose(got.geometry.direction_matrix, original.geometry.direction_matrix)


def no_temporary_files(folder) -> list[str]:
    from radview_base.atomic_file import TEMP_PREFIX

    return [str(p) for p in Path(folder).rglob(f"{TEMP_PREFIX}*")]
