"""Benchmark: 2D series in the real window, side by side with a bare pyqtgraph ImageView in the same run.

Usage::

    xvfb-run -a -s "-screen 0 1600x1000x24" python bench/planar.py [--repeats 3] [--seconds 6]

open   a 2-image CR study (2 × 2,500×2,000, 16-bit MONOCHROME1, the real chest of
       ../shared/data/dicom-objects/RG1_J2KI.dcm resized — or a smooth synthetic one where that is absent),
       written uncompressed to a temporary folder. radview: ``MainWindow.open_path(folder)`` until the first
       image is drawn (index, header, pixels, the display pipeline, the hanging). Baseline: pydicom reads both
       files' pixels, MONOCHROME1 is inverted by hand, ``pg.ImageView.setImage`` of the first. Warm: the first
       run is discarded (imports and the OS file cache), the median of ``--repeats`` is printed. Target ≤ 0.5 s.
cine   a 300-frame 640×480 8-bit ultrasound cine at 30 frames/s (FrameTime 33.33 ms). radview: the real window
       plays it (``PlanarView.toggle_cine``) for ``--seconds``; frames whose time passed are dropped and counted.
       Baseline: a bare ``pg.ImageView`` stepped by a precise QTimer on the same clock and the same drop rule.
       Target ≤ 1 dropped frame per 100.

Both print the load average: on a busy 2-core machine the timings stretch.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.append(str(BENCH))  # for _report, after the project (bench/ai.py must not shadow ``ai``)

import numpy as np  # noqa: E402
from _report import verdict  # noqa: E402


def _cr_pixels(shape=(2500, 2000)) -> np.ndarray:
    try:
        from planar_cases import chest_pixels

        small = chest_pixels()
        rows = np.linspace(0, small.shape[0] - 1, shape[0]).astype(int)
        cols = np.linspace(0, small.shape[1] - 1, shape[1]).astype(int)
        return np.ascontiguousarray(small[rows][:, cols])
    except Exception:  # no shared data: a smooth synthetic radiograph
        y, x = np.mgrid[: shape[0], : shape[1]]
        return (16000 + 8000 * np.sin(x / 150.0) * np.cos(y / 170.0)).astype(np.uint16)


def write_cr_study(folder: Path) -> None:
    from planar_cases import write_radiograph
    from pydicom.uid import generate_uid

    pixels, series = _cr_pixels(), generate_uid()
    write_radiograph(folder, "pa.dcm", pixels, series_uid=series, number=1, ViewPosition="PA",
                     PatientOrientation=["L", "F"], WindowCenter=int(np.median(pixels)),
                     WindowWidth=int(np.ptp(pixels)))
    write_radiograph(folder, "lat.dcm", pixels[:, ::-1], series_uid=series, number=2, ViewPosition="LL",
                     PatientOrientation=["A", "F"], WindowCenter=int(np.median(pixels)),
                     WindowWidth=int(np.ptp(pixels)))


def write_cine(folder: Path, frames: int = 300) -> Path:
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    y, x = np.mgrid[:480, :640]
    stack = np.stack([((np.sin((x + 6 * k) / 23.0) * np.cos(y / 31.0) + 1) * 120).astype(np.uint8)
                      for k in range(frames)])
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.3.1"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.Modality = generate_uid(), generate_uid(), "US"
    ds.Rows, ds.Columns, ds.NumberOfFrames, ds.FrameTime = 480, 640, frames, 1000.0 / 30
    ds.FrameIncrementPointer = pydicom.tag.Tag("FrameTime")
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = stack.tobytes()
    folder.mkdir(parents=True, exist_ok=True)
    ds.save_as(folder / "cine.dcm", enforce_file_format=True)
    return folder


def wait(app, condition, timeout=120.0) -> None:
    end = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > end:
            raise TimeoutError("timed out")
        app.processEvents()
        time.sleep(0.001)


def bench_open(app, window_cls, folder: Path, repeats: int) -> tuple[list[float], list[float]]:
    import pydicom
    import pyqtgraph as pg

    ours, bare = [], []
    for _ in range(repeats + 1):
        window = window_cls()
        window.show()
        app.processEvents()
        t0 = time.perf_counter()
        window.open_path(str(folder))
        wait(app, lambda w=window: bool(w.planar_area.views) and w.planar_area.views[0].image_item.image is not None)
        app.processEvents()
        ours.append(time.perf_counter() - t0)
        window.close()
        window.deleteLater()
        app.processEvents()

        view = pg.ImageView()
        view.show()
        app.processEvents()
        t0 = time.perf_counter()
        images = [pydicom.dcmread(p).pixel_array for p in sorted(folder.glob("*.dcm"))]
        view.setImage((images[0].max() - images[0]).T)
        app.processEvents()
        bare.append(time.perf_counter() - t0)
        view.close()
        view.deleteLater()
        app.processEvents()
    return ours[1:], bare[1:]


def bench_cine(app, window_cls, folder: Path, seconds: float) -> tuple[dict, dict]:
    import pydicom
    import pyqtgraph as pg
    from PySide6.QtCore import Qt, QTimer

    window = window_cls()
    window.resize(1280, 800)
    window.show()
    window.open_path(str(folder))
    wait(app, lambda: bool(window.planar_area.views) and window.planar_area.views[0].image_item.image is not None)
    view = window.planar_area.views[0]
    view.toggle_cine()
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.001)
    view.stop_cine()
    ours = {"shown": view.frames_shown, "dropped": view.frames_dropped}
    window.close()
    window.deleteLater()
    app.processEvents()

    frames = pydicom.dcmread(folder / "cine.dcm").pixel_array
    image_view = pg.ImageView()
    image_view.resize(900, 700)
    image_view.show()
    interval = 1.0 / 30
    state = {"k": 0, "due": time.perf_counter(), "shown": 0, "dropped": 0}
    timer = QTimer()
    timer.setSingleShot(True)
    timer.setTimerType(Qt.PreciseTimer)

    def tick():
        now = time.perf_counter()
        late = int((now - state["due"]) // interval) if now > state["due"] + interval else 0
        state["dropped"] += late
        state["k"] = (state["k"] + 1 + late) % len(frames)
        image_view.setImage(frames[state["k"]].T, autoLevels=False, autoRange=False, levels=(0, 255))
        state["shown"] += 1
        state["due"] += (late + 1) * interval
        timer.start(max(0, int(round((state["due"] - time.perf_counter()) * 1000))))

    timer.timeout.connect(tick)
    tick()
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.001)
    timer.stop()
    image_view.close()
    return ours, {"shown": state["shown"], "dropped": state["dropped"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["RADVIEW_ANNOTATIONS_DIR"] = str(Path(tmp) / "annotations")
        from PySide6.QtCore import QSettings

        from viewer.qt.application import create_app
        from viewer.qt.main_window import MainWindow

        app = create_app([])

        def window_cls():
            return MainWindow(QSettings(str(Path(tmp) / "settings.ini"), QSettings.IniFormat))

        cr, cine = Path(tmp) / "cr", Path(tmp) / "cine"
        write_cr_study(cr)
        write_cine(cine)
        print(f"load average {os.getloadavg()[0]:.2f} (1 min) on {os.cpu_count()} CPUs")
        ours, bare = bench_open(app, window_cls, cr, args.repeats)
        o, b = statistics.median(ours), statistics.median(bare)
        print(f"open 2-image CR (2 × 2500×2000 16-bit) to first display, warm, median of {args.repeats}:")
        print(f"  radview {o * 1000:7.0f} ms   bare pyqtgraph ImageView {b * 1000:7.0f} ms   ratio {o / b:5.2f}×   "
              f"target ≤ 500 ms: {verdict(o <= 0.5)}")
        ours_c, bare_c = bench_cine(app, window_cls, cine, args.seconds)
        for name, c in (("radview", ours_c), ("bare pyqtgraph ImageView", bare_c)):
            total = c["shown"] + c["dropped"]
            per100 = 100.0 * c["dropped"] / max(total, 1)
            print(f"  cine 300×640×480 at 30 fps for {args.seconds:g} s — {name}: {c['shown']} shown, "
                  f"{c['dropped']} dropped ({per100:.2f} per 100)"
                  + (f"   target ≤ 1 per 100: {verdict(per100 <= 1.0)}" if name == "radview" else ""))
        print(f"load average {os.getloadavg()[0]:.2f} (1 min) at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
