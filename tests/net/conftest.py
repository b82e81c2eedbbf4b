"""Fixtures of the PACS tests: one real Orthanc for the session (its own configuration and storage in a temporary
folder, random free ports, loopback traffic only, stopped by its PID — see orthanc_server.py), holding the real CT
of ../shared/data/ct-pancreas-tcia; the nodes that reach it; the CT loaded from the original files."""
from __future__ import annotations

from pathlib import Path

import orthanc_server
import pytest
from pacs_cases import CALLING, CT, CT_SLICES
from reference import data_path


@pytest.fixture(scope="session")
def ct_folder() -> Path:
    return data_path(*CT)


def _orthanc(folder: Path):
    why = orthanc_server.missing()
    if why:
        pytest.skip(why)
    free = orthanc_server.free_port
    return orthanc_server.Orthanc(folder=folder, dicom_port=free(), http_port=free(), modalities={CALLING: free()})


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory, ct_folder):
    """Orthanc holding the CT, for the session; tests only read from it."""
    server = _orthanc(tmp_path_factory.mktemp("orthanc")).start()
    try:
        assert server.upload(ct_folder) == CT_SLICES
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def inbox(tmp_path_factory):
    """An empty Orthanc that the send tests write to (the CT's Orthanc stays as it was)."""
    server = _orthanc(tmp_path_factory.mktemp("inbox")).start()
    try:
        yield server
    finally:
        server.stop()


def _dimse_node(server):
    from viewer.net.nodes import Node

    return Node(name="orthanc", ae_title=server.aet, host="127.0.0.1", port=server.dicom_port, timeout_s=20)


def _web_node(server):
    from viewer.net.nodes import Node

    return Node(name="orthanc-web", dicomweb_url=server.dicomweb_url, auth="basic", username=server.user,
                secret=server.password, timeout_s=20)


@pytest.fixture(scope="session")
def scp_port(orthanc) -> int:
    """The port Orthanc sends C-MOVEs for RADVIEW to: radview's C-STORE SCP listens there in the tests."""
    return orthanc.modalities[CALLING]


@pytest.fixture(scope="session")
def dimse_node(orthanc):
    return _dimse_node(orthanc)


@pytest.fixture(scope="session")
def web_node(orthanc):
    return _web_node(orthanc)


@pytest.fixture(scope="module")
def inbox_nodes(inbox):
    """(DIMSE node, DICOMweb node) of the inbox Orthanc."""
    return _dimse_node(inbox), _web_node(inbox)


@pytest.fixture(scope="session")
def ct_original(ct_folder):
    from viewer.io.series_loader import load_path

    return load_path(str(ct_folder))


@pytest.fixture
def database(tmp_path):
    from viewer.net.study_db import StudyDatabase

    with StudyDatabase(tmp_path / "studies") as db:
        yield db


@pytest.fixture(scope="session")
def ct_source(ct_folder):
    from viewer.export.seg import SourceSeries
    from viewer.io.dicom_index import scan

    return SourceSeries.from_entry(scan(str(ct_folder)).largest_volume())


@pytest.fixture(scope="session")
def make_sr(ct_source, ct_original, tmp_path_factory):
    """``make_sr(label)``: a DICOM SR (TID 1500, viewer.export.sr) with one length measurement on the CT."""
    pytest.importorskip("highdicom")
    import numpy as np

    from viewer.export.sr import write_sr

    folder = tmp_path_factory.mktemp("sr")
    g = ct_original.geometry

    def make(label: str) -> Path:
        a, b = np.asarray(g.index_to_world((60, 200, 200))), np.asarray(g.index_to_world((60, 260, 290)))
        m = {"id": label, "kind": "length", "points_lps": [a.tolist(), b.tolist()], "series_uid": ct_source.series_uid,
             "label": label, "value": float(np.linalg.norm(b - a)), "unit": "mm", "created_by": "radview-test",
             "created_at": "2024-01-01T00:00:00+00:00"}
        path = folder / f"{label}.dcm"
        write_sr(str(path), ct_source, measurements=[m])
        return path

    return make
