"""Retrieving the 134-slice CT from a local Orthanc: radview by C-GET, C-MOVE and WADO-RS beside dcmtk's getscu and
movescu, on the same data in the same run.

    python bench/pacs.py [--pairs 7] [--repeat 3] [--code DIR] [--keep]

Starts a private Orthanc (tests/net/orthanc_server.py: its own configuration and storage in a temporary folder,
random free ports, loopback traffic only), stores ../shared/data/ct-pancreas-tcia in it, warms everything once, then:

* the side-by-side table: each method ``--repeat`` times, interleaved, each into a fresh folder, the median (and
  best) time to the first slice and to the whole series;
* the target: ``--pairs`` pairs of radview C-GET and getscu run back to back (which goes first alternates), each
  pair printed with its ratio and the load average at that moment; the verdict is on the median of the pairs'
  ratios. Other work on a 2-core machine slows both members of a pair alike, so a busy minute moves the ratio far
  less than it moves either time;
* the same pairs against a second Orthanc that sends with ``TCP_NODELAY`` (DCMTK reads the variable). As installed,
  Orthanc holds a small segment until the client acknowledges the previous one, and a client that delays its ACKs
  (getscu; radview before it set ``TCP_QUICKACK``) waits up to 40 ms for it now and then: getscu's time for the
  series varies 0.35–2 s with it. Without the stalls getscu is at its best, the stricter comparison.

radview's times include everything ``viewer.logic.pacs.retrieve`` does: asking the node for the study's SOP
classes (for the presentation contexts) or, when the destination holds part of the series, listing its instances
(so that a retry resumes), the transfer, and writing each instance atomically (data synced to disk, renamed) —
dcmtk writes its files in place and syncs nothing. radview's first slice is the first instance written and renamed
into place; dcmtk's is the moment its second file appears (it writes one file at a time, so the first is then
complete).

dcmtk runs with ``TCP_NODELAY=1``: without it (its default build) every instance waits about 40 ms for a delayed
ACK (Nagle's algorithm on both sides), which would make it look several times slower than it is; one default run is
shown for reference. ``--code DIR`` imports radview's ``viewer`` package from DIR (say a ``git archive`` of an
earlier commit) instead of this checkout, so that before and after can be measured on the same machine with the
same script. Target: radview's C-GET takes at most 1.2 × getscu's time for the whole series.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "net"))
if "--code" in sys.argv[:-1]:  # before anything imports viewer
    sys.path.insert(0, os.path.abspath(sys.argv[sys.argv.index("--code") + 1]))

import orthanc_server  # noqa: E402  (tests/net: the Orthanc launcher the tests use)
from _report import verdict  # noqa: E402  (bench/ is on sys.path)

CT = ROOT.parent / "shared" / "data" / "ct-pancreas-tcia"
STUDY = "1.3.6.1.4.1.14519.5.2.1.21087345762211724523378497892240459677"
SERIES = "1.3.6.1.4.1.14519.5.2.1.302382790855582445722435410442490497846"
N_SLICES = 134
TARGET = 1.2


def dcmtk(tool: str) -> str:
    """dcmtk's tool, not pynetdicom's script of the same name that the virtual environment puts first on PATH."""
    for folder in ("/usr/bin", "/usr/local/bin"):
        path = os.path.join(folder, tool)
        if os.access(path, os.X_OK):
            return path
    return ""


def _first_complete_file(folder: Path, stop: threading.Event, t0: float, out: list) -> None:
    """Poll ``folder`` (every 2 ms): the time its second file appears (the first is complete then)."""
    while not stop.is_set():
        try:
            n = sum(1 for e in os.scandir(folder) if e.is_file())
        except FileNotFoundError:
            n = 0
        if n >= 2:
            out.append(time.perf_counter() - t0)
            return
        time.sleep(0.002)


def run_dcmtk(cmd: list[str], folder: Path, nodelay: bool = True) -> tuple[float, float]:
    folder.mkdir(parents=True)
    env = dict(os.environ)
    if nodelay:
        env["TCP_NODELAY"] = "1"
    else:
        env.pop("TCP_NODELAY", None)
    stop, first = threading.Event(), []
    t0 = time.perf_counter()
    watcher = threading.Thread(target=_first_complete_file, args=(folder, stop, t0, first), daemon=True)
    watcher.start()
    proc = subprocess.run(cmd + ["-od", str(folder)], capture_output=True, text=True, env=env, timeout=300)
    total = time.perf_counter() - t0
    stop.set()
    watcher.join()
    n = sum(1 for p in folder.iterdir() if p.is_file())
    if proc.returncode != 0 or n != N_SLICES:
        raise SystemExit(f"{cmd[0]} failed ({proc.returncode}, {n} files): {proc.stderr[-2000:]}")
    return (first[0] if first else total), total


def run_radview(request_kwargs: dict, folder: Path) -> tuple[float, float]:
    from viewer.logic.pacs import RetrieveRequest, retrieve

    first = []
    t0 = time.perf_counter()

    def on_instance(item) -> None:
        if not first:
            first.append(time.perf_counter() - t0)

    result = retrieve(RetrieveRequest(out_dir=str(folder), **request_kwargs), on_instance=on_instance)
    total = time.perf_counter() - t0
    if not result.complete or len(result.arrived) != N_SLICES:
        raise SystemExit(f"radview {request_kwargs.get('method')} incomplete: {result.summary()} {result.failed[:3]}")
    return first[0], total


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=7, help="radview C-GET / getscu pairs for the target (median ratio)")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved runs of every method for the table")
    ap.add_argument("--code", metavar="DIR", help="import radview's viewer package from DIR instead of this checkout")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (Orthanc's log, the last files)")
    args = ap.parse_args(argv)
    why = orthanc_server.missing()
    if why:
        print(f"skipped: {why}")
        return 0
    if not CT.is_dir():
        print(f"skipped: {CT} not found")
        return 0
    getscu, movescu = dcmtk("getscu"), dcmtk("movescu")
    if not getscu or not movescu:
        print("skipped: dcmtk's getscu/movescu not found (Debian package dcmtk)")
        return 0

    import viewer
    from viewer.net.nodes import LocalAE, Node

    work = Path(tempfile.mkdtemp(prefix="radview-bench-pacs-"))
    free = orthanc_server.free_port
    ports = {"RADVIEW": free(), "GETSCU": free(), "MOVESCU": free()}
    server = orthanc_server.Orthanc(folder=work / "orthanc", dicom_port=free(), http_port=free(), modalities=ports)
    load_before = os.getloadavg()
    server.start()
    try:
        t = time.perf_counter()
        server.upload(CT)
        print(f"Orthanc {server.dicom_port}/{server.http_port}: stored {N_SLICES} CT slices "
              f"in {time.perf_counter() - t:.1f} s; radview from {Path(viewer.__file__).parent.parent}")
        dimse = Node(name="orthanc", ae_title=server.aet, host="127.0.0.1", port=server.dicom_port, timeout_s=60)
        web = Node(name="orthanc-web", dicomweb_url=server.dicomweb_url, auth="basic", username=server.user,
                   secret=server.password, timeout_s=60)
        keys = ["-S", "-k", "QueryRetrieveLevel=SERIES", "-k", f"StudyInstanceUID={STUDY}",
                "-k", f"SeriesInstanceUID={SERIES}"]
        peer = ["127.0.0.1", str(server.dicom_port)]
        methods = {
            "dcmtk getscu": lambda d: run_dcmtk([getscu, "-aet", "GETSCU", "-aec", server.aet, *keys, *peer], d),
            "radview C-GET": lambda d: run_radview(dict(node=dimse, study_uid=STUDY, series_uid=SERIES, method="get",
                                                        calling_aet="RADVIEW"), d),
            "dcmtk movescu": lambda d: run_dcmtk([movescu, "-aet", "MOVESCU", "-aec", server.aet, "-aem", "MOVESCU",
                                                  "+P", str(ports["MOVESCU"]), *keys, *peer], d),
            "radview C-MOVE": lambda d: run_radview(dict(node=dimse, study_uid=STUDY, series_uid=SERIES,
                                                         method="move", calling_aet="RADVIEW",
                                                         local=LocalAE("RADVIEW", "127.0.0.1", ports["RADVIEW"])), d),
            "radview WADO-RS": lambda d: run_radview(dict(node=web, study_uid=STUDY, series_uid=SERIES, method="wado"),
                                                     d),
        }

        def once(name: str, folder: Path) -> tuple[float, float]:
            try:
                return methods[name](folder)
            finally:
                shutil.rmtree(folder, ignore_errors=True)

        times: dict[str, list[tuple[float, float]]] = {name: [] for name in methods}
        for name in methods:  # warm: imports, Orthanc's caches, the page cache
            once(name, work / "warm" / name.replace(" ", "-"))
        for i in range(args.repeat):
            for name in methods:
                times[name].append(once(name, work / f"run{i}" / name.replace(" ", "-")))
        pairs = _pairs(args.pairs, once, work / "pairs")
        nagle = run_dcmtk([getscu, "-aet", "GETSCU", "-aec", server.aet, *keys, *peer], work / "nagle", nodelay=False)
        server.stop()
        # the same pairs against an Orthanc that sends with TCP_NODELAY: no delayed-ACK stalls for either client
        server = orthanc_server.Orthanc(folder=work / "orthanc-nodelay", dicom_port=free(), http_port=free(),
                                        modalities=ports, tcp_nodelay=True)
        server.start()
        server.upload(CT)
        dimse = Node(name="orthanc", ae_title=server.aet, host="127.0.0.1", port=server.dicom_port, timeout_s=60)
        peer = ["127.0.0.1", str(server.dicom_port)]
        for name in ("dcmtk getscu", "radview C-GET"):
            once(name, work / "warm-nodelay" / name.replace(" ", "-"))
        strict = _pairs(args.pairs, once, work / "pairs-nodelay")
    finally:
        server.stop()
        load_after = os.getloadavg()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    print(f"machine: {os.cpu_count()} CPUs; load average (1, 5, 15 min) before {_load(load_before)}, "
          f"after {_load(load_after)}")
    print(f"{N_SLICES} CT slices (512 x 512, 68 MB), median (best) of {args.repeat} interleaved runs, each into an "
          f"empty folder:\n")
    print(f"{'method':<18}{'first slice':>20}{'whole series':>20}{'vs getscu':>12}")
    base = statistics.median(t for _, t in times["dcmtk getscu"])
    for name, runs in times.items():
        firsts, totals = [f for f, _ in runs], [t for _, t in runs]
        med = statistics.median(totals)
        print(f"{name:<18}{_cell(firsts):>20}{_cell(totals):>20}{med / base:>11.2f}x")
    print(f"{'getscu, Nagle on':<18}{nagle[0] * 1000:>17.0f} ms{nagle[1] * 1000:>17.0f} ms{nagle[1] / base:>11.2f}x"
          f"   (dcmtk's default: no TCP_NODELAY; one run, for reference)")
    if not pairs:
        return 0
    ratio = _print_pairs(pairs, "Orthanc as installed (sends without TCP_NODELAY)")
    strict_ratio = _print_pairs(strict, "Orthanc with TCP_NODELAY=1 (no delayed-ACK stalls for either client)")
    print(f"\ntarget: radview C-GET whole series <= {TARGET} x getscu, median of the pairs: {ratio:.2f} x — "
          f"{verdict(ratio <= TARGET)}")
    print(f"same against the Orthanc sending with TCP_NODELAY (getscu at its best): {strict_ratio:.2f} x — "
          f"{verdict(strict_ratio <= TARGET)}")
    return 0


def _pairs(n: int, once, folder: Path) -> list[tuple[float, float, float, str]]:
    """``n`` pairs of getscu and radview C-GET back to back, which goes first alternating: (getscu s, radview s,
    1-minute load average after the pair, which went first)."""
    out = []
    for i in range(n):
        order = ("dcmtk getscu", "radview C-GET") if i % 2 == 0 else ("radview C-GET", "dcmtk getscu")
        got = {name: once(name, folder / f"{i}" / name.replace(" ", "-"))[1] for name in order}
        out.append((got["dcmtk getscu"], got["radview C-GET"], os.getloadavg()[0], order[0]))
    return out


def _print_pairs(pairs, title: str) -> float:
    """Print each pair; the median ratio."""
    print(f"\nradview C-GET vs getscu, whole series, {len(pairs)} pairs run back to back; {title}:")
    print(f"{'pair':<6}{'first':<9}{'getscu':>10}{'radview':>10}{'ratio':>8}{'load 1 min':>12}")
    for i, (g, r, load, first) in enumerate(pairs, 1):
        print(f"{i:<6}{first.split()[-1]:<9}{g * 1000:>7.0f} ms{r * 1000:>7.0f} ms{r / g:>8.2f}{load:>12.2f}")
    ratios = [r / g for g, r, _, _ in pairs]
    ratio = statistics.median(ratios)
    print(f"median ratio {ratio:.2f} (range {min(ratios):.2f}-{max(ratios):.2f}); medians getscu "
          f"{statistics.median(g for g, *_ in pairs) * 1000:.0f} ms, radview "
          f"{statistics.median(r for _, r, *_ in pairs) * 1000:.0f} ms")
    return ratio


def _cell(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.0f} ({min(values) * 1000:.0f}) ms"


def _load(load) -> str:
    return ", ".join(f"{v:.2f}" for v in load)


if __name__ == "__main__":
    sys.exit(main())
