"""Benchmark: time from process start to the first image of the demo study in the radview GUI.

Usage::

    python bench/startup.py [--runs N] [--platform offscreen|xcb|...]
    xvfb-run -a -s "-screen 0 1600x1000x24" python bench/startup.py --platform xcb

The Qt platform of the child processes is ``--platform``, else ``QT_QPA_PLATFORM`` if set,
else ``offscreen`` (so under ``xvfb-run`` pass ``--platform xcb`` to use the X server).
The demo study must be cached (``viewer.demo.ensure_demo``): the parent makes sure it is,
outside any timing, and reads every file of it once so the page cache is warm.

Methods (each a fresh ``python`` process; t = 0 is ``time.time()`` in the parent just before
``subprocess.Popen``, passed to the child in ``RADVIEW_BENCH_T0``; the child reports
``time.time() - t0`` at each milestone, so the interpreter's own start-up is included)
    python -c pass          interpreter start and exit only (the floor of any process)
    bare ImageView          ``import PySide6.QtWidgets, pyqtgraph``; QApplication; ``pg.ImageView()``;
                            ``show()``; ``setImage(np.zeros((512, 512)))``; ``processEvents()``; then
                            a forced ``viewport().repaint()`` of its image view (the same forced paint
                            radview gets); the time is taken after the repaint returns
    radview --demo          ``python bench/startup.py --child``: the real entry point
                            ``viewer.qt.app.main(["--demo"])`` (window, background demo check, index,
                            series load, lung window, cursor at a nodule), with hooks installed
                            before it runs; milestones:
        imports             viewer.qt.app and viewer.qt.main_window imported (PySide6, pyqtgraph, numpy,
                            pydicom ...; main() would import them itself, this only records when)
        window shown        MainWindow.show() returned
        window painted      the axial view's viewport receives its first paint event (empty view)
        demo found          StudyOpener.open_path called: the background ensure_demo() has returned
        index               StudyOpener.show_index called (demo found in the cache, folder scanned)
        preview             MainWindow.layout_widget.show_preview returned and the axial viewport
                            was repainted synchronously (the first slice read, shown while loading)
        volume loaded       session.volume_loaded fired (the whole series is in memory)
        first image         after volume_loaded, a QTimer.singleShot(0) (so MainWindow._show_volume
                            has finished, lung window and nodule cursor applied) calls the axial
                            viewport's repaint(); the time is taken after it returns. The child then
                            prints its milestones as one JSON line and exits with os._exit(0).

One untimed warm-up run of each method, then ``--runs`` runs (default 5) with the methods
interleaved; the table shows the median (min–max) of each milestone.

Target: radview first image ≤ 2 s (demo cached).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
T0_ENV = "RADVIEW_BENCH_T0"

TARGET_S = 2.0

BARE_IMAGEVIEW = """
import os, time, json
t0 = float(os.environ["RADVIEW_BENCH_T0"])
import numpy as np
import PySide6.QtWidgets
import pyqtgraph as pg
app = PySide6.QtWidgets.QApplication([])
w = pg.ImageView()
w.show()
w.setImage(np.zeros((512, 512)))
app.processEvents()
w.ui.graphicsView.viewport().repaint()
print("BENCH " + json.dumps({"first image": time.time() - t0}), flush=True)
"""

PYTHON_PASS = """
import os, time, json
print("BENCH " + json.dumps({"first image": time.time() - float(os.environ["RADVIEW_BENCH_T0"])}), flush=True)
"""

RADVIEW_MILESTONES = ("python started", "imports", "window shown", "window painted", "demo found", "index",
                      "preview", "volume loaded", "first image")


# --- the child: the real app with hooks --------------------------------------------------------

def child() -> int:
    t0 = float(os.environ[T0_ENV])
    marks: dict[str, float] = {"python started": time.time() - t0}

    def mark(name: str) -> None:
        marks.setdefault(name, time.time() - t0)

    sys.path.insert(0, str(REPO))
    import viewer.qt.app as app_mod
    from viewer.qt import main_window as mw_mod
    from viewer.qt.controllers.study_opener import StudyOpener

    mark("imports")
    MainWindow = mw_mod.MainWindow
    original_init = MainWindow.__init__
    original_show_index = StudyOpener.show_index
    original_open_path = StudyOpener.open_path

    def done() -> None:
        print("BENCH " + json.dumps(marks), flush=True)
        os._exit(0)

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        window = self
        axial = self.layout_widget.views["axial"]
        original_preview = self.layout_widget.show_preview

        def show_preview(*a, **k):
            result = original_preview(*a, **k)
            axial.viewport().repaint()
            mark("preview")
            return result

        self.layout_widget.show_preview = show_preview

        from PySide6.QtCore import QEvent, QObject

        class FirstPaint(QObject):
            def eventFilter(self, obj, ev):  # noqa: N802
                if ev.type() == QEvent.Paint:
                    mark("window painted")  # (the axial view's first paint starts: empty, black)
                return False

        self._bench_first_paint = FirstPaint()
        axial.viewport().installEventFilter(self._bench_first_paint)

        def first_image() -> None:
            if window.session.volume is None:
                return
            axial.viewport().repaint()
            mark("first image")
            marks["shown"] = {"preset": window.session.preset_name, "slice": axial.k,
                              "n_slices": axial.plane.n_slices, "uid": window.session.volume.meta.get("series_uid")}
            done()

        def on_loaded(_volume) -> None:
            from PySide6.QtCore import QTimer

            mark("volume loaded")
            QTimer.singleShot(0, first_image)

        # connected after the views (they connect in ViewLayout.__init__), so it runs after them
        self.session.volume_loaded.connect(on_loaded)

    def show_index(self, *args, **kwargs):
        mark("index")
        return original_show_index(self, *args, **kwargs)

    def open_path(self, *args, **kwargs):
        mark("demo found")
        return original_open_path(self, *args, **kwargs)

    def show(self):
        mw_mod.QMainWindow.show(self)
        mark("window shown")

    MainWindow.__init__ = init
    StudyOpener.show_index = show_index
    MainWindow.show = show
    StudyOpener.open_path = open_path

    from PySide6.QtCore import QTimer

    def give_up() -> None:
        print("BENCH " + json.dumps({**marks, "error": "no image within 60 s"}), flush=True)
        os._exit(1)

    QTimer.singleShot(60000, give_up)  # runs once the app's event loop is up
    app_mod.main(["--demo"])
    give_up()
    return 1


# --- the parent ----------------------------------------------------------------------------------

def run_child(args: list[str], env: dict) -> dict:
    t0 = time.time()
    env = {**env, T0_ENV: repr(t0)}
    proc = subprocess.Popen([sys.executable, *args], env=env, cwd=str(REPO), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    for line in out.splitlines():
        if line.startswith("BENCH "):
            result = json.loads(line[6:])
            if "error" in result:
                raise RuntimeError(f"{' '.join(args)}: {result['error']}\n{err[-2000:]}")
            return result
    raise RuntimeError(f"{' '.join(args)} gave no result (exit {proc.returncode}):\n{err[-2000:]}")


def warm_page_cache(folder: Path) -> int:
    n = 0
    for root, _, names in os.walk(folder):
        for name in names:
            with open(os.path.join(root, name), "rb") as fp:
                while fp.read(1 << 22):
                    pass
            n += 1
    return n


def fmt(values: list[float]) -> str:
    if not values:
        return "—"
    return f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per method (default 5)")
    parser.add_argument("--platform", help="Qt platform for the children (default: $QT_QPA_PLATFORM or offscreen)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child()

    sys.path.insert(0, str(REPO))
    from viewer.demo import ensure_demo

    qpa = args.platform or os.environ.get("QT_QPA_PLATFORM") or "offscreen"
    env = {**os.environ, "QT_QPA_PLATFORM": qpa}
    t = time.perf_counter()
    paths = ensure_demo()
    prepared = time.perf_counter() - t
    n_files = warm_page_cache(paths.root)

    methods = {
        "python -c pass": ["-c", PYTHON_PASS],
        "bare ImageView": ["-c", BARE_IMAGEVIEW],
        "radview --demo": [str(Path(__file__).resolve()), "--child"],
    }
    print(f"radview startup benchmark: {args.runs} runs per method (median, min–max), after one warm-up run each")
    display = f" (DISPLAY {os.environ['DISPLAY']})" if qpa == "xcb" and "DISPLAY" in os.environ else ""
    print(f"Qt platform {qpa!r}{display}, python {platform.python_version()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f} (other work on the machine makes timings noisy)")
    print(f"demo study cached at {paths.root} ({n_files} files read into the page cache"
          f"{'' if prepared < 1 else f'; generated first in {prepared:.1f} s'})\n")

    results: dict[str, list[dict]] = {name: [] for name in methods}
    for child_args in methods.values():
        run_child(child_args, env)  # warm-up: byte-code caches, page cache, font cache
    for _ in range(args.runs):
        for name, child_args in methods.items():
            results[name].append(run_child(child_args, env))

    print(f"{'seconds from process start':<32}{'python -c pass':>20}{'bare ImageView':>20}{'radview --demo':>20}")
    for milestone in RADVIEW_MILESTONES:
        cells = []
        for name in methods:
            values = [r[milestone] for r in results[name] if milestone in r]
            cells.append(fmt(values))
        print(f"{milestone:<32}{cells[0]:>20}{cells[1]:>20}{cells[2]:>20}")
    first = {name: statistics.median(r["first image"] for r in results[name]) for name in methods}
    print(f"{'first image / bare ImageView':<32}{first['python -c pass'] / first['bare ImageView']:>20.2f}"
          f"{1.0:>20.2f}{first['radview --demo'] / first['bare ImageView']:>20.2f}")
    shown = [r.get("shown", {}) for r in results["radview --demo"]]
    ok = all(x.get("preset") == "lung" and x.get("uid") == paths.ct_series_uid for x in shown)
    print(f"check: every radview run showed the demo CT series in the lung window: {'yes' if ok else 'NO'}"
          f" (axial slice {shown[0].get('slice')}/{shown[0].get('n_slices')})")
    missing_preview = sum("preview" not in r for r in results["radview --demo"])
    if missing_preview:
        print(f"(the preview was not shown in {missing_preview} of {args.runs} radview runs)")
    print(f"\ntarget: radview first image ≤ {TARGET_S:g} s with the demo cached: "
          f"{'MET' if first['radview --demo'] <= TARGET_S else 'NOT MET'} "
          f"({first['radview --demo']:.2f} s median; radview − bare ImageView = "
          f"{first['radview --demo'] - first['bare ImageView']:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
