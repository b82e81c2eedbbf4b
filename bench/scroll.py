"""Benchmark: frame time while scrolling a 512×512 CT series, radview's SliceView vs bare pyqtgraph.

Usage::

    python bench/scroll.py [--frames N] [--warmup N] [--size WxH] [--repeats N]
                           [--mode events|repaint] [--profile [N]] [--platform NAME]
    xvfb-run -a -s "-screen 0 1600x1000x24" python bench/scroll.py --platform xcb

Runs offscreen: the Qt platform is ``--platform``, else ``QT_QPA_PLATFORM`` if the caller
set it, else ``offscreen`` (under ``xvfb-run`` pass ``--platform xcb`` to paint through
the X server; the frame then includes the flush of the backing store to it). The data is the cached demo
study (``viewer.demo.ensure_demo``): the thin CT series (160×512×512
int16, read with ``dicom_index.scan`` + ``series_loader.load_series``) and its
truth label map (``truth/labels.nii.gz``, same grid, 8 labels), window "lung".

Methods (each a top-level widget whose image viewport is resized to exactly
W×H, shown, the image fitted to the viewport)
    radview + overlay      viewer.qt.views.slice_view.SliceView(session, "axial") with the label map as a
                           LabelLayer (fill, opacity 0.4); a frame is ``view.set_slice(k)`` (what
                           the mouse wheel calls: new slice + label overlay + linked cursor +
                           crosshair; corner text, orientation letters and scale bar are painted)
    radview, no overlay    the same SliceView on a session without the label layer
    bare ImageView         pyqtgraph.ImageView as shipped (histogram/LUT widget and time slider
                           shown), ``setImage(volume (z, y, x) int16, levels=lung, autoLevels=False)``
                           once; a frame is ``setCurrentIndex(k)``; no overlay
    bare ImageItem         pyqtgraph.GraphicsView + ViewBox(lockAspect, invertY) + ImageItem; a
                           frame is ``item.setImage(volume[k], autoLevels=False, levels=lung)``;
                           no overlay (the floor for pyqtgraph-based drawing)

What one frame is (identical for every method; timed with time.perf_counter)
    mode "events" (default): change the slice as above, then ``QApplication.processEvents()``.
        That delivers the scene's change notification and the viewport's UpdateRequest, so the
        viewport is painted synchronously (into the backing store, and flushed to the X server
        under xvfb) before processEvents returns: the same work as one wheel step in the app.
    mode "repaint": change the slice, ``viewport().repaint()``, then ``processEvents()``. For a
        QGraphicsView this paints twice per frame (the forced paint, then the paint the scene
        schedules for its changed items), so it is slower for every method alike.
    A paint-event counter on each image viewport checks the paints per frame (reported).
    ImageView also repaints its histogram and time-slider views inside processEvents: that is
    part of its frame.

Scrolling: slices 0→159→0→… (back and forth, one slice per frame); ``--warmup`` untimed frames
(default 20), then ``--frames`` timed frames (default 300). The whole sequence is repeated
``--repeats`` times (default 3), the methods interleaved (round robin) so that load from other
processes spreads over all of them; the medians and 99th percentiles are of all timed frames
pooled, and the spread of the per-repeat medians is shown. gc is collected before each run but
left enabled (its pauses belong to the p99).

Targets
    radview + overlay median ≤ 8 ms
    radview + overlay median ≤ bare ImageView median

``--profile [N]`` also prints a cProfile top-N (by own time and by cumulative time) of the
radview + overlay per-frame path (set_slice + processEvents).
"""
from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from _report import parse_size, verdict  # noqa: E402  (bench/ is on sys.path[0])

from viewer.qt.application import create_app  # noqa: E402

# targets
MEDIAN_TARGET_MS = 8.0


# --- the methods ------------------------------------------------------------------------------

class Method:
    """One way of showing a slice: ``widget`` (top level), ``viewport`` (where the image is painted)."""

    name = ""
    overlay = False

    def __init__(self, data):
        self.data = data
        self.widget = None
        self.viewport = None

    def build(self, size):  # pragma: no cover - overridden
        raise NotImplementedError

    def frame(self, k: int) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def fit(self) -> None:
        """Fit the image to the viewport (after a resize)."""


class RadviewMethod(Method):
    def __init__(self, data, overlay: bool):
        super().__init__(data)
        self.overlay = overlay
        self.name = "radview + overlay" if overlay else "radview, no overlay"

    def build(self, size):
        from viewer.core.layers import LabelLayer
        from viewer.core.session import Session
        from viewer.qt.views.slice_view import SliceView

        session = Session()
        session.load_volume(self.data.volume, preset="lung")
        if self.overlay:
            session.add_layer(LabelLayer(self.data.label_map, name="truth"))
        self.session = session
        self.view = SliceView(session, "axial")
        self.widget = self.view
        self.viewport = self.view.viewport()

    def fit(self):
        self.view.reset_view()

    def frame(self, k):
        self.view.set_slice(k)

    def check(self):
        v = self.view
        problems = []
        if v.k != self.data.last_k:
            problems.append(f"shows slice {v.k}, expected {self.data.last_k}")
        items = list(v._label_items.values())
        if self.overlay and not (items and all(i.isVisible() and i.image is not None for i in items)):
            problems.append("label overlay not shown")
        if not self.overlay and items:
            problems.append("unexpected overlay")
        return problems


class ImageViewMethod(Method):
    name = "bare ImageView"

    def build(self, size):
        import pyqtgraph as pg

        self.iv = pg.ImageView()
        self.iv.setImage(self.data.volume.array, autoLevels=False, levels=self.data.levels,
                         autoHistogramRange=False)
        self.widget = self.iv
        self.viewport = self.iv.ui.graphicsView.viewport()

    def fit(self):
        self.iv.autoRange()

    def frame(self, k):
        self.iv.setCurrentIndex(k)

    def check(self):
        problems = []
        if self.iv.currentIndex != self.data.last_k:
            problems.append(f"shows slice {self.iv.currentIndex}, expected {self.data.last_k}")
        levels = tuple(float(v) for v in self.iv.imageItem.getLevels())
        if not np.allclose(levels, self.data.levels):
            problems.append(f"levels {levels} != {self.data.levels}")
        return problems


class ImageItemMethod(Method):
    name = "bare ImageItem"

    def build(self, size):
        import pyqtgraph as pg

        self.gv = pg.GraphicsView(background="k")
        self.vb = pg.ViewBox(lockAspect=True, invertY=True, enableMenu=False, defaultPadding=0.0)
        self.gv.setCentralItem(self.vb)
        self.item = pg.ImageItem()
        self.vb.addItem(self.item)
        self.item.setImage(self.data.volume.array[0], autoLevels=False, levels=self.data.levels)
        self.widget = self.gv
        self.viewport = self.gv.viewport()
        self.k = 0

    def fit(self):
        from PySide6.QtCore import QRectF

        rows, cols = self.data.volume.array.shape[1:3]
        self.vb.setRange(QRectF(0, 0, cols, rows), padding=0.0)

    def frame(self, k):
        self.k = k
        self.item.setImage(self.data.volume.array[k], autoLevels=False, levels=self.data.levels)

    def check(self):
        return [] if self.k == self.data.last_k else [f"shows slice {self.k}, expected {self.data.last_k}"]


# --- measuring ---------------------------------------------------------------------------------

class PaintCounter:
    """Counts paint events of a widget (an event filter)."""

    def __init__(self, widget):
        from PySide6.QtCore import QEvent, QObject

        class _Filter(QObject):
            def __init__(self):
                super().__init__()
                self.n = 0

            def eventFilter(self, obj, ev):  # noqa: N802
                if ev.type() == QEvent.Paint:
                    self.n += 1
                return False

        self._filter = _Filter()
        widget.installEventFilter(self._filter)

    @property
    def n(self) -> int:
        return self._filter.n


def scroll_sequence(n_slices: int, count: int, start: int = 0) -> list[int]:
    """Slices start, start+1, …, n-1, n-2, …, 0, 1, … (one step per frame), ``count`` of them."""
    period = 2 * (n_slices - 1)
    out = []
    for i in range(start, start + count):
        j = i % period
        out.append(j if j < n_slices else period - j)
    return out


def resize_viewport(app, method, w: int, h: int) -> None:
    """Resize the top-level widget so that its image viewport is exactly w×h (a few tries)."""
    method.widget.resize(w, h)
    method.widget.show()
    app.processEvents()
    for _ in range(5):
        vs = method.viewport.size()
        if (vs.width(), vs.height()) == (w, h):
            break
        ws = method.widget.size()
        method.widget.resize(ws.width() + w - vs.width(), ws.height() + h - vs.height())
        app.processEvents()
    method.fit()
    app.processEvents()


def run_frames(app, method, seq, mode: str, counter: PaintCounter) -> tuple[list[float], int]:
    """Time each frame of ``seq``; return (seconds per frame, paint events of the viewport)."""
    viewport = method.viewport
    frame = method.frame
    process = app.processEvents
    clock = time.perf_counter
    times = []
    n0 = counter.n
    if mode == "events":
        for k in seq:
            t0 = clock()
            frame(k)
            process()
            times.append(clock() - t0)
    else:
        for k in seq:
            t0 = clock()
            frame(k)
            viewport.repaint()
            process()
            times.append(clock() - t0)
    return times, counter.n - n0


class Data:
    def __init__(self):
        from viewer.core.window_presets import find_preset
        from viewer.demo import ensure_demo
        from viewer.io.dicom_index import scan
        from viewer.io.image_io import read_label_map
        from viewer.io.series_loader import load_series

        paths = ensure_demo()
        self.volume = load_series(scan(str(paths.dicom_dir)).find(paths.ct_series_uid))
        self.label_map = read_label_map(str(paths.labels_nii))
        preset = find_preset("lung")
        self.levels = (preset.level - preset.width / 2, preset.level + preset.width / 2)
        self.last_k = None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=300, help="timed frames per run (default 300)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed frames before each run (default 20)")
    parser.add_argument("--size", type=parse_size, default=(800, 800), help="image viewport WxH (default 800x800)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per method, interleaved (default 3)")
    parser.add_argument("--mode", choices=("events", "repaint"), default="events",
                        help="how a frame is painted (see the module docstring)")
    parser.add_argument("--profile", type=int, nargs="?", const=15, default=0, metavar="N",
                        help="also print a cProfile top-N of the radview + overlay frame path")
    parser.add_argument("--platform", help="Qt platform (default: $QT_QPA_PLATFORM or offscreen)")
    args = parser.parse_args(argv)
    w, h = args.size
    # before any Qt import (viewer.qt.app imports Qt inside create_app)
    os.environ["QT_QPA_PLATFORM"] = args.platform or os.environ.get("QT_QPA_PLATFORM") or "offscreen"

    app = create_app()
    import pyqtgraph as pg
    from PySide6 import __version__ as pyside_version
    from PySide6.QtCore import qVersion

    data = Data()
    nz = data.volume.array.shape[0]
    methods = [RadviewMethod(data, overlay=True), RadviewMethod(data, overlay=False),
               ImageViewMethod(data), ImageItemMethod(data)]
    for m in methods:
        m.build((w, h))
        resize_viewport(app, m, w, h)
        m.widget.hide()
    app.processEvents()

    print(f"radview scroll benchmark: {args.frames} timed frames × {args.repeats} runs per method "
          f"(after {args.warmup} warm-up frames), viewport {w}×{h}, mode {args.mode!r}")
    print(f"Qt platform {app.platformName()!r}, Qt {qVersion()}, PySide6 {pyside_version}, "
          f"pyqtgraph {pg.__version__}, numpy {np.__version__}, python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} "
          f"(other work on the machine makes timings noisy)")
    shape = "×".join(map(str, data.volume.array.shape))
    print(f"series {shape} {data.volume.array.dtype}, labels {data.label_map.array.dtype} "
          f"({len(data.label_map.present_labels())} labels), window lung {data.levels}\n")

    counters = {m.name: PaintCounter(m.viewport) for m in methods}
    results = {m.name: [] for m in methods}
    run_medians = {m.name: [] for m in methods}
    paints = {m.name: 0 for m in methods}
    sizes = {}
    problems = {m.name: [] for m in methods}
    total = args.warmup + args.frames
    for rep in range(args.repeats):
        for m in methods:
            m.widget.show()
            app.processEvents()
            sizes[m.name] = (m.viewport.width(), m.viewport.height())
            seq = scroll_sequence(nz, total, start=rep * 37)  # each repeat starts elsewhere
            run_frames(app, m, seq[:args.warmup], args.mode, counters[m.name])
            gc.collect()
            times, n_paints = run_frames(app, m, seq[args.warmup:], args.mode, counters[m.name])
            data.last_k = seq[-1]
            problems[m.name] += [p for p in m.check() if p not in problems[m.name]]
            results[m.name] += times
            run_medians[m.name].append(statistics.median(times))
            paints[m.name] += n_paints
            m.widget.hide()
            app.processEvents()

    def row_stats(name):
        t = np.asarray(results[name]) * 1e3
        return float(np.median(t)), float(np.percentile(t, 99)), t

    ref_iv = row_stats("bare ImageView")
    ref_item = row_stats("bare ImageItem")
    header = (f"{'method':<22}{'viewport':>10}{'median ms':>11}{'p99 ms':>9}{'max ms':>9}"
              f"{'run medians ms':>22}{'paints/frame':>14}{'median vs ImageView':>21}{'vs ImageItem':>14}")
    print(header)
    for m in methods:
        med, p99, t = row_stats(m.name)
        spread = "/".join(f"{v * 1e3:.2f}" for v in run_medians[m.name])
        vp = "×".join(map(str, sizes[m.name]))
        print(f"{m.name:<22}{vp:>10}{med:>11.2f}{p99:>9.2f}{t.max():>9.2f}{spread:>22}"
              f"{paints[m.name] / (args.frames * args.repeats):>14.2f}{med / ref_iv[0]:>21.2f}"
              f"{med / ref_item[0]:>14.2f}")
    fps = 1e3 / row_stats("radview + overlay")[0]
    print(f"(radview + overlay ≈ {fps:.0f} frames/s at the median)")

    bad = {name: p for name, p in problems.items() if p}
    print(f"checks (slice shown after the run, overlay shown, levels kept): "
          f"{'ok' if not bad else 'PROBLEMS'}")
    for name, p in bad.items():
        print(f"  {name}: {'; '.join(p)}")

    med_overlay = row_stats("radview + overlay")[0]
    print("targets: "
          f"radview + overlay median ≤ {MEDIAN_TARGET_MS:g} ms: {verdict(med_overlay <= MEDIAN_TARGET_MS)}; "
          f"radview + overlay median ≤ bare ImageView median: {verdict(med_overlay <= ref_iv[0])}")

    if args.profile:
        import cProfile
        import pstats

        m = methods[0]
        m.widget.show()
        app.processEvents()
        seq = scroll_sequence(nz, args.warmup + args.frames, start=11)
        run_frames(app, m, seq[:args.warmup], args.mode, counters[m.name])
        prof = cProfile.Profile()
        prof.enable()
        run_frames(app, m, seq[args.warmup:], args.mode, counters[m.name])
        prof.disable()
        m.widget.hide()
        print(f"\ncProfile of {args.frames} radview + overlay frames (profiler overhead inflates Python-heavy "
              f"code), top {args.profile} by own time:")
        stats = pstats.Stats(prof, stream=sys.stdout)
        stats.strip_dirs().sort_stats("tottime").print_stats(args.profile)
        print(f"top {args.profile} by cumulative time:")
        stats.sort_stats("cumulative").print_stats(args.profile)

    for m in methods:
        m.widget.close()
    app.processEvents()
    return 0


if __name__ == "__main__":
    sys.exit(main())
