"""``radview-cli pacs`` against the real Orthanc: echo, query (table and --json), retrieve (C-GET, C-MOVE, WADO-RS,
into a folder or the local database), send; failures exit non-zero with one line, never a traceback."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import orthanc_server
from pacs_cases import CALLING, CT_PATIENT, CT_SERIES, CT_SLICES, CT_STUDY
from reference import data_path

ROOT = Path(__file__).resolve().parents[2]


def pacs(tmp_path, *args, env=None, timeout=120):
    environment = dict(os.environ, PYTHONPATH=str(ROOT), RADVIEW_STUDY_DB=str(tmp_path / "studies"),
                       RADVIEW_PACS_NODES=str(tmp_path / "pacs-nodes.json"), **(env or {}))
    return subprocess.run([sys.executable, "-m", "viewer.cli.main", "pacs", *map(str, args)], capture_output=True,
                          text=True, env=environment, cwd=ROOT, timeout=timeout)


def test_echo_and_query(orthanc, tmp_path):
    aet = f"{orthanc.aet}@127.0.0.1:{orthanc.dicom_port}"
    out = pacs(tmp_path, "echo", "--aet", aet)
    assert out.returncode == 0 and "C-ECHO OK" in out.stdout, out.stderr
    out = pacs(tmp_path, "query", "--aet", aet, "--patient-id", CT_PATIENT, "--study-date", "20120101-20121231",
               "--json")
    assert out.returncode == 0, out.stderr
    [study] = json.loads(out.stdout)
    assert {"study_uid", "patient_id", "study_date", "modality", "description", "n_instances"} <= set(study)
    assert (study["study_uid"], study["n_instances"], study["modality"]) == (CT_STUDY, CT_SLICES, "CT")
    out = pacs(tmp_path, "query", "--aet", aet, "--level", "series", "--study", CT_STUDY, "--json")
    [series] = json.loads(out.stdout)
    assert (series["series_uid"], series["study_uid"], series["n_instances"]) == (CT_SERIES, CT_STUDY, CT_SLICES)
    out = pacs(tmp_path, "query", "--aet", aet, "--patient-name", "Pancreas*")
    assert out.returncode == 0 and CT_STUDY in out.stdout and "1 study on" in out.stdout


def test_retrieve_by_get_then_again_then_by_move(orthanc, tmp_path):
    aet = f"{orthanc.aet}@127.0.0.1:{orthanc.dicom_port}"
    out = pacs(tmp_path, "retrieve", "--aet", aet, "--study", CT_STUDY, "--out", tmp_path / "get")
    assert out.returncode == 0, out.stderr
    assert f"of {CT_SLICES}: {CT_SLICES} instance(s) arrived" in out.stdout
    out = pacs(tmp_path, "retrieve", "--aet", aet, "--study", CT_STUDY, "--out", tmp_path / "get")
    assert out.returncode == 0 and f"0 instance(s) arrived, {CT_SLICES} already present" in out.stdout
    # C-MOVE into the local database: radview's SCP answers as RADVIEW on 127.0.0.1 at --scp-port
    out = pacs(tmp_path, "retrieve", "--aet", aet, "--study", CT_STUDY, "--series", CT_SERIES, "--method", "move",
               "--scp-port", orthanc.modalities[CALLING])
    assert out.returncode == 0, out.stderr
    assert "in the local study database" in out.stdout
    assert len(list((tmp_path / "studies" / "store" / CT_STUDY / CT_SERIES).glob("*.dcm"))) == CT_SLICES


def test_retrieve_by_wado_with_basic_auth_and_send(orthanc, inbox, tmp_path):
    env = {"RADVIEW_PACS_PASSWORD": orthanc.password}
    out = pacs(tmp_path, "retrieve", "--dicomweb", orthanc.dicomweb_url, "--user", orthanc.user, "--study", CT_STUDY,
               "--out", tmp_path / "wado", env=env)
    assert out.returncode == 0, out.stderr
    assert f"by wado from dicomweb ({orthanc.dicomweb_url}) of {CT_SLICES}: {CT_SLICES}" in out.stdout
    seg = data_path("seg-dcmqi", "liver.dcm")
    label_map = data_path("seg-dcmqi", "sparse-labelmap-noppv.dcm")  # a Label Map SEG: unknown to Orthanc 1.10
    nodes = {"nodes": [{"name": "inbox", "ae_title": inbox.aet, "host": "127.0.0.1", "port": inbox.dicom_port}]}
    (tmp_path / "pacs-nodes.json").write_text(json.dumps(nodes))
    out = pacs(tmp_path, "send", "--node", "inbox", seg)
    assert out.returncode == 0 and "sent 1 file(s) to inbox" in out.stdout, out.stderr
    import pydicom

    assert str(pydicom.dcmread(str(seg), stop_before_pixels=True).SOPInstanceUID) in inbox.sop_instance_uids()
    out = pacs(tmp_path, "send", "--node", "inbox", label_map, seg)
    assert out.returncode == 1 and "sent 1 file(s) to inbox (" in out.stdout and "; 1 failed" in out.stdout
    assert f"failed: {label_map}: inbox (" in out.stderr and "cannot take it" in out.stderr


def test_failures_exit_non_zero_with_one_line(orthanc, tmp_path):
    closed = f"ORTHANC@127.0.0.1:{orthanc_server.free_port()}"
    out = pacs(tmp_path, "echo", "--aet", closed, "--timeout", "5")
    assert out.returncode == 1 and out.stderr.startswith("radview-cli: error:") and "connection refused" in out.stderr
    assert "Traceback" not in out.stderr
    out = pacs(tmp_path, "query", "--aet", "nonsense")
    assert out.returncode == 2 and "AE@HOST:PORT" in out.stderr
    out = pacs(tmp_path, "retrieve", "--dicomweb", orthanc.dicomweb_url, "--study", CT_STUDY, "--method", "get")
    assert out.returncode == 2 and "WADO-RS" in out.stderr
    out = pacs(tmp_path, "echo", "--node", "absent")
    assert out.returncode == 2 and "no node named 'absent'" in out.stderr
    out = pacs(tmp_path, "query", "--dicomweb", orthanc.dicomweb_url, "--patient-id", CT_PATIENT)
    assert out.returncode == 1 and "HTTP 401" in out.stderr  # no credentials given
