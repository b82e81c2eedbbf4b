"""Fixtures of the export tests: the demo study (generated once into the user cache) and a real AI run on it."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def demo_paths():
    from viewer.demo import ensure_demo

    return ensure_demo()


@pytest.fixture(scope="session")
def demo_entry(demo_paths):
    from viewer.io.dicom_index import scan

    return scan(str(demo_paths.dicom_dir)).find(demo_paths.ct_series_uid)


@pytest.fixture(scope="session")
def demo_volume(demo_entry):
    from viewer.io.series_loader import load_series

    return load_series(demo_entry)


@pytest.fixture(scope="session")
def demo_source(demo_entry):
    from viewer.export.seg import SourceSeries

    return SourceSeries.from_entry(demo_entry)


@pytest.fixture(scope="session")
def demo_labels(demo_paths):
    from viewer.io.image_io import read_label_map

    return read_label_map(str(demo_paths.labels_nii))


@pytest.fixture(scope="session")
def ai_run(demo_paths, tmp_path_factory) -> Path:
    """``radview-cli ai run --model ct-lung-nodules`` on the demo CT: real labels.nii.gz, labels.json, findings.json."""
    out = tmp_path_factory.mktemp("ai-run")
    done = subprocess.run([sys.executable, "-m", "viewer.cli.main", "ai", "run", str(demo_paths.dicom_dir), "--series",
                           demo_paths.ct_series_uid, "--model", "ct-lung-nodules", "--device", "cpu", "--out",
                           str(out)], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="session")
def dciodvfy():
    """``dciodvfy(path)``: dciodvfy's "Error" lines for a file (warnings allowed); skips without dicom3tools."""
    exe = shutil.which("dciodvfy")
    if exe is None:
        pytest.skip("dciodvfy (Debian's dicom3tools, installed by scripts/setup.sh) is not installed")

    def errors(path) -> list[str]:
        done = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=120)
        return [ln for ln in (done.stdout + done.stderr).splitlines() if ln.startswith("Error")]

    return errors
