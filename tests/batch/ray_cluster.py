"""A real Ray cluster for a test: a head node and one worker node, on loopback addresses only.

Ray binds its head's and nodes' ports on every interface, and turns ``--node-ip-address 127.0.0.1`` into the
machine's own network address unless clusters are switched off (then a second node cannot join). So the test's
cluster runs in a private network namespace whose only interface is loopback, and a private PID namespace:
``unshare --net --pid --fork --mount-proc --kill-child`` (root). The head listens on 127.0.0.1, the worker node on
127.0.0.2; the batch command runs inside the same namespaces (``--engine ray --address 127.0.0.1:PORT``). The
script stops the cluster with ``ray stop --force`` on exit — inside the PID namespace it sees only its own
processes — and when the namespace's first process ends the kernel kills whatever is left in it; the caller
kills that process by its PID in a ``finally``. Token authentication is on, with a fresh token per cluster in the
environment (nothing written to ``~/.ray``); Ray's files stay in the test's temporary folder.

Where namespaces are not allowed (not root), :func:`can_isolate` is False and the test uses a local Ray
instance started by the batch command itself (``ray.init``, loopback only) instead.
"""
from __future__ import annotations

import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

HEAD_PORT = 6379
OBJECT_STORE_BYTES = 100 * 1024 * 1024


def can_isolate() -> bool:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    try:
        out = subprocess.run(["unshare", "--net", "--pid", "--fork", "--mount-proc", "--kill-child", "true"],
                             capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0


def script(command: list[str], temp_dir: Path, head_cpus: int = 1, worker_cpus: int = 1) -> str:
    bin_dir = Path(sys.executable).parent
    ray = shlex.quote(str(bin_dir / "ray"))
    common = f"--object-store-memory {OBJECT_STORE_BYTES} --disable-usage-stats"
    return f"""set -u
ip link set lo up
export RAY_USAGE_STATS_ENABLED=0 PATH={shlex.quote(str(bin_dir))}:$PATH RAY_TMPDIR={shlex.quote(str(temp_dir))}
export RAY_AUTH_MODE=token RAY_AUTH_TOKEN={secrets.token_hex(32)}
trap '{ray} stop --force >/dev/null 2>&1' EXIT
{ray} start --head --node-ip-address 127.0.0.1 --port {HEAD_PORT} --num-cpus {head_cpus} --include-dashboard false \
  --temp-dir {shlex.quote(str(temp_dir))} {common} > {shlex.quote(str(temp_dir))}.head.log 2>&1 || \
  {{ echo "ray head did not start"; tail -20 {shlex.quote(str(temp_dir))}.head.log; exit 90; }}
{ray} start --address 127.0.0.1:{HEAD_PORT} --node-ip-address 127.0.0.2 --num-cpus {worker_cpus} {common} \
  > {shlex.quote(str(temp_dir))}.worker.log 2>&1 || \
  {{ echo "ray worker node did not start"; tail -20 {shlex.quote(str(temp_dir))}.worker.log; exit 91; }}
{' '.join(shlex.quote(c) for c in command)}
"""


def run_isolated(command: list[str], temp_dir: Path, timeout: float, env: dict | None = None):
    """Run ``command`` beside a fresh two-node cluster (head 127.0.0.1:HEAD_PORT) in private namespaces."""
    temp_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(["unshare", "--net", "--pid", "--fork", "--mount-proc", "--kill-child", "bash", "-c",
                             script(command, temp_dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:  # the namespace's processes die with its first one
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
