"""A private Orthanc for tests and bench/pacs.py: its own configuration and storage in a temporary folder, loopback
traffic only, stopped by its PID. No pytest here (bench/pacs.py uses it too).

Orthanc 1.10 cannot bind its ports to one address: it listens on every interface. So the configuration closes
what it can: ``RemoteAccessAllowed: false`` (its HTTP server answers only 127.0.0.1), ``DicomAlwaysAllowStore`` /
``DicomAlwaysAllowEcho`` false and ``DicomCheckModalityHost`` true (DICOM only from the modalities named, each on
127.0.0.1), HTTP basic authentication on, ports chosen free at random; and every client of ours talks to
127.0.0.1 only. (A private network namespace — ``unshare -n`` — would also hide the ports, but the test's own
client code runs in the pytest process, outside any namespace Orthanc could be put in.)
"""
from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

DICOMWEB_PLUGINS = ("/usr/share/orthanc/plugins/libOrthancDicomWeb.so", "/usr/lib/orthanc/libOrthancDicomWeb.so.1.7")
LOOPBACK = "127.0.0.1"


def missing() -> str:
    """Why Orthanc cannot run here ("" when it can)."""
    if not shutil.which("Orthanc"):
        return "Orthanc is not installed (Debian packages orthanc and orthanc-dicomweb; scripts/setup.sh installs them)"
    if not any(os.path.exists(p) for p in DICOMWEB_PLUGINS):
        return "the Orthanc DICOMweb plugin is not installed (Debian package orthanc-dicomweb)"
    return ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


@dataclass
class Orthanc:
    """One running Orthanc. ``modalities``: AE title → port of the DICOM peers it knows (all on 127.0.0.1)."""

    folder: Path
    dicom_port: int
    http_port: int
    modalities: dict[str, int]
    aet: str = "ORTHANC"
    user: str = "radview"
    password: str = field(default_factory=lambda: secrets.token_hex(8))
    process: subprocess.Popen | None = None
    #: TCP_NODELAY on Orthanc's DICOM sockets (DCMTK reads the variable): without it, as installed, Orthanc holds a
    #: small segment until the client's ACK, which a client that delays its ACKs pays with up to 40 ms
    tcp_nodelay: bool = False

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.url}/dicom-web"

    def config(self) -> dict:
        storage = self.folder / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        plugin = next(p for p in DICOMWEB_PLUGINS if os.path.exists(p))
        return {
            "Name": "radview-test", "DicomAet": self.aet, "DicomPort": self.dicom_port, "HttpPort": self.http_port,
            "StorageDirectory": str(storage), "IndexDirectory": str(storage), "StorageCompression": False,
            "RemoteAccessAllowed": False, "AuthenticationEnabled": True,
            "RegisteredUsers": {self.user: self.password},
            "DicomAlwaysAllowStore": False, "DicomAlwaysAllowEcho": False, "DicomAlwaysAllowFind": False,
            "DicomAlwaysAllowMove": False, "DicomAlwaysAllowGet": False,
            "DicomCheckCalledAet": True, "DicomCheckModalityHost": True,
            "DicomModalities": {ae.lower(): [ae, LOOPBACK, port] for ae, port in self.modalities.items()},
            "Plugins": [plugin], "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
            "ExecuteLuaEnabled": False, "SaveJobs": False,
            "LimitFindResults": 0, "LimitFindInstances": 0,
        }

    # ------------------------------------------------------------------ life
    def start(self, timeout: float = 30.0) -> Orthanc:
        self.folder.mkdir(parents=True, exist_ok=True)
        cfg = self.folder / "orthanc.json"
        cfg.write_text(json.dumps(self.config(), indent=2))
        log = open(self.folder / "orthanc.log", "wb")
        env = dict(os.environ)
        env.pop("TCP_NODELAY", None)
        if self.tcp_nodelay:
            env["TCP_NODELAY"] = "1"
        self.process = subprocess.Popen(["Orthanc", str(cfg)], stdout=log, stderr=subprocess.STDOUT,
                                        cwd=self.folder, start_new_session=True, env=env)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Orthanc exited with {self.process.returncode}: {self.log_tail()}")
            try:
                self.rest("/system")
                return self
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"Orthanc did not answer on port {self.http_port} within {timeout} s: {self.log_tail()}")

    def stop(self) -> None:
        """Stop it by its PID (SIGTERM, then SIGKILL after 10 s)."""
        p = self.process
        if p is None or p.poll() is not None:
            return
        os.kill(p.pid, signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            p.wait(10)

    def log_tail(self, n: int = 2000) -> str:
        try:
            return (self.folder / "orthanc.log").read_text(errors="replace")[-n:]
        except OSError:
            return ""

    # ------------------------------------------------------------------ REST
    def rest(self, path: str, data: bytes | None = None, method: str | None = None, content_type: str = ""):
        req = urllib.request.Request(self.url + path, data=data, method=method)
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
        if content_type:
            req.add_header("Content-Type", content_type)
        with urllib.request.urlopen(req, timeout=30) as r:
            body = r.read()
        return json.loads(body) if body[:1] in (b"{", b"[") else body

    def upload(self, folder: Path) -> int:
        """Store every file of ``folder`` through the REST API; how many were DICOM."""
        n = 0
        for f in sorted(Path(folder).rglob("*")):
            if f.is_file() and f.suffix.lower() == ".dcm":
                self.rest("/instances", f.read_bytes(), "POST", "application/dicom")
                n += 1
        return n

    def sop_instance_uids(self) -> set[str]:
        """The SOPInstanceUID of every instance Orthanc holds (GET /instances?expand)."""
        return {i["MainDicomTags"]["SOPInstanceUID"] for i in self.rest("/instances?expand")}
