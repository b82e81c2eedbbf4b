"""The real app in a subprocess (offscreen Qt, a startup hook driving it), read line by line: for the SIGKILL tests."""
from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def start_app(hook: str, tmp_path: Path, log_name: str) -> tuple[subprocess.Popen, "queue.Queue[str]"]:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", RADVIEW_STARTUP_HOOK=hook, PYTHONUNBUFFERED="1",
               RADVIEW_ANNOTATIONS_DIR=str(tmp_path / "annotations"), XDG_CONFIG_HOME=str(tmp_path / "config"),
               PYTHONPATH=os.pathsep.join([str(ROOT), str(HERE)]))
    proc = subprocess.Popen([sys.executable, "-m", "viewer.qt.app", "--demo"], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=open(tmp_path / log_name, "w"))
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put("<eof>")

    threading.Thread(target=read, daemon=True).start()
    return proc, lines


def next_line(lines, deadline: float, proc, log: Path) -> str:
    try:
        line = lines.get(timeout=max(deadline - time.monotonic(), 0.1))
    except queue.Empty:
        proc.kill()
        pytest.fail(f"the app said nothing in time; its log:\n{log.read_text()[-3000:]}")
    if line == "<eof>":
        pytest.fail(f"the app ended early (rc {proc.wait()}); its log:\n{log.read_text()[-3000:]}")
    return line
