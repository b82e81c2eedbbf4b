"""Training datasets: cases found in the layouts users have, patient splits, and bad datasets refused with reasons.

Real files throughout: small phantoms written as NIfTI cases, and one in the exact layout ``radview-cli demo``
writes (DICOM series + truth label map + labels.json). No torch is needed here.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from training_cases import SMALL_SHAPE, SMALL_SPACING, write_case, write_dataset, write_image

from ai.training.dataset import DatasetError, has_side, load_case, open_dataset
from viewer.demo.phantom import make_phantom


def _demo_case(folder: Path, seed: int) -> Path:
    """The layout ``radview-cli demo`` writes (dicom/ with three series, truth/labels.nii.gz + labels.json)."""
    from viewer.demo.dicom_writer import write_study
    from viewer.demo.phantom import LABELS

    p = make_phantom(seed, shape_zyx=(12, 32, 32), spacing_zyx=(20.0, 12.0, 12.0))
    write_study(folder / "dicom", p.hu_zyx, p.grid, seed)
    write_image(p.labels_zyx, folder / "truth" / "labels.nii.gz", p.grid.spacing_zyx, p.grid.origin_lps)
    (folder / "truth" / "labels.json").write_text(json.dumps({str(k): v for k, v in LABELS.items()}))
    return folder


def test_a_demo_layout_case_is_read_from_its_dicom_series_on_the_label_maps_grid(tmp_path):
    for seed in (1, 2):
        _demo_case(tmp_path / "data" / f"demo-{seed}", seed)
    (tmp_path / "data" / "dataset.toml").write_text('patient_key = "case"\nlabels = ["lung_left", "lung_right"]\n')
    ds = open_dataset(tmp_path / "data")
    assert [c.id for c in ds.cases] == ["demo-1", "demo-2"]
    case = ds.cases[0]
    assert Path(case.image).name == "dicom" and len(case.image_files) == 12  # the thin series, not slab/localizer
    assert case.modality == "CT" and ds.modality == "CT"
    assert ds.labels == ("lung_left", "lung_right") and ds.label_ids == (2, 3)  # the table's own ids
    assert len(ds.training) == 1 and len(ds.validation) == 1
    data = load_case(ds, case)
    assert data.image.shape == data.labels.shape == (12, 32, 32)
    assert set(np.unique(data.labels)) <= {0, 2, 3} and (data.labels == 2).any()
    assert data.image.min() < -500  # HU, rescaled


def test_demo_cases_of_one_patient_id_are_refused_a_split(tmp_path):
    for seed in (1, 2):
        _demo_case(tmp_path / "data" / f"demo-{seed}", seed)
    with pytest.raises(DatasetError, match="at least 2 patients.*RADVIEW-DEMO|RADVIEW-DEMO.*at least 2 patients"):
        open_dataset(tmp_path / "data")


def test_fewer_cases_than_a_split_needs_are_refused(tmp_path):
    write_dataset(tmp_path / "data", [1])
    with pytest.raises(DatasetError, match="1 case.*at least 2 patients"):
        open_dataset(tmp_path / "data")


def test_a_label_map_on_another_grid_than_its_image_is_refused(tmp_path):
    root = write_dataset(tmp_path / "data", [1, 2, 3])
    p = make_phantom(2, shape_zyx=SMALL_SHAPE, spacing_zyx=SMALL_SPACING)
    shifted = tuple(o + 7.5 for o in p.grid.origin_lps)
    write_image(p.labels_zyx, root / "case-002" / "truth" / "labels.nii.gz", p.grid.spacing_zyx, shifted)
    ds = open_dataset(root)
    with pytest.raises(DatasetError, match=r"case case-002: the label map is on another grid than its image: .*mm"):
        load_case(ds, ds.case("case-002"))
    bigger = np.zeros((SMALL_SHAPE[0] + 1, *SMALL_SHAPE[1:]), np.uint8)
    write_image(bigger, root / "case-003" / "truth" / "labels.nii.gz", p.grid.spacing_zyx, p.grid.origin_lps)
    with pytest.raises(DatasetError, match="case case-003: the label map is on another grid.*shape"):
        load_case(ds, ds.case("case-003"))


def test_a_label_missing_from_the_table_is_refused(tmp_path):
    root = write_dataset(tmp_path / "data", [1, 2, 3])
    (root / "case-002" / "truth" / "labels.json").write_text(json.dumps({"1": "body", "2": "lung_left"}))
    with pytest.raises(DatasetError, match="case case-002: label lung_right is missing from its label table"):
        open_dataset(root, labels=["lung_left", "lung_right"])
    with pytest.raises(DatasetError, match="case case-002: label .*lung_right.* is missing from its label table"):
        open_dataset(root)  # every label of the tables is trained: each case must name them all
    ds = open_dataset(root, labels=["lung_left"])  # only the named one: fine to open ...
    with pytest.raises(DatasetError, match=r"case case-002: label 3, 4, 5, 6, 7, 8 of the label map is missing "
                                           r"from its label table \(labels.json\)"):
        load_case(ds, ds.case("case-002"))  # ... but its map holds values the table does not name


def test_splits_go_by_patient_never_tearing_one_apart(tmp_path):
    root = write_dataset(tmp_path / "data", [1, 2, 3, 4, 5])
    (root / "dataset.toml").write_text('[patients]\n"case-001" = "P1"\n"case-002" = "P1"\n"case-003" = "P1"\n'
                                       '[split]\nvalidation_fraction = 0.5\n')
    ds = open_dataset(root)
    p1 = {"case-001", "case-002", "case-003"}
    assert p1 <= set(ds.training) or p1 <= set(ds.validation)
    assert set(ds.training).isdisjoint(ds.validation) and len(ds.training) + len(ds.validation) == 5
    (root / "dataset.toml").write_text('[patients]\n"case-001" = "P1"\n"case-002" = "P1"\n'
                                       '[split]\nvalidation = ["case-002"]\n')
    with pytest.raises(DatasetError, match="patient P1 has cases on both sides of the split"):
        open_dataset(root)
    (root / "dataset.toml").write_text('[split]\nvalidation = ["case-004", "case-005"]\n')
    ds = open_dataset(root)
    assert ds.validation == ("case-004", "case-005") and ds.training == ("case-001", "case-002", "case-003")


def test_the_data_hash_names_the_files_and_their_contents(tmp_path):
    root = write_dataset(tmp_path / "data", [1, 2])
    first = open_dataset(root).data_hash
    assert first.startswith("sha256:") and open_dataset(root).data_hash == first
    write_case(root / "case-002", 3)  # other pixels, same names
    assert open_dataset(root).data_hash != first


def test_lateral_labels_are_recognised():
    assert all(has_side(n) for n in ("lung_left", "Lung Right", "kidney_l", "rt femur", "leftAtrium"))
    assert not any(has_side(n) for n in ("body", "heart", "aorta", "bone", "liver", "lung"))
