"""Drives a real radview process from inside (``RADVIEW_STARTUP_HOOK=layer_driver:<function>``), for the label
layer autosave (viewer/store/layer_store.py).

``paint_strokes``: once the demo study is open, loads its segmentation (as File → Load segmentation… does),
chooses the brush (B) and paints strokes on the axial view with real mouse events (the user's code path),
one slice further each time; when the autosave has put a stroke on disk it prints
``PERSISTED <n> <z> <crc32 of slice z> <revision>`` for every slice the stroke changed, and
``TIMING <GUI snapshot ms> <background write ms>``. It goes on until the process is killed (or
``RADVIEW_DRIVER_COUNT`` strokes are painted).

``report_layers``: once the study is open and its saved layers are back, prints
``LAYER <name> <edited_by> <revision>`` for each label layer, ``SLICE <z> <crc32>`` for every slice of the
first one, then ``END``, and closes the window.
"""
from __future__ import annotations

import os
import time
import zlib

import numpy as np
from annotation_driver import app_ready, every
from input_events import drag
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest

PAINT_LABEL = 8  # nodule


def paint_strokes(window) -> None:
    from viewer.demo import ensure_demo

    limit = int(os.environ.get("RADVIEW_DRIVER_COUNT", "100000"))
    state = {"n": 0, "waiting": None, "layer": None, "requested": False}
    saver = window.layer_autosave

    def step() -> None:
        if not app_ready(window):
            return
        session = window.session
        axial = window.layout_widget.views["axial"]
        layer = state["layer"]
        if layer is None:
            if not session.label_layers():
                if not state["requested"]:
                    window.load_segmentation(str(ensure_demo().labels_nii))
                    state["requested"] = True
                return
            layer = state["layer"] = session.label_layers()[0]
            session.set_active_label(layer, PAINT_LABEL)
            axial.setFocus()
            QTest.keyClick(axial, Qt.Key_B)
            if window.layout_widget.tools.tool != "brush":
                raise RuntimeError("B did not choose the brush")
            print(f"READY {layer.name} {'x'.join(map(str, layer.label_map.array.shape))}", flush=True)
            return
        if state["waiting"] is not None:  # the last stroke: on disk yet?
            n, slices, generation, revision = state["waiting"]
            if saver.saved_generation < generation:
                return
            for z in slices:
                crc = zlib.crc32(np.ascontiguousarray(layer.label_map.array[z]))
                print(f"PERSISTED {n} {z} {crc} {revision}", flush=True)
            print(f"TIMING {saver.schedule_ms[-1]:.2f} {saver.write_ms[-1] if saver.write_ms else -1:.1f}",
                  flush=True)
            state["waiting"] = None
            state["n"] += 1
            if state["n"] >= limit:
                timer.stop()
            return
        n = state["n"]
        axial.set_slice(10 + (n * 7) % 140)  # each stroke on its own slice
        before = axial.label_painter.last_edit
        centre = axial.viewport().rect().center()
        start = centre + QPoint(-40 + (n % 5) * 9, -30 + (n % 3) * 13)
        drag(axial.viewport(), start, start + QPoint(70 + (n % 4) * 9, 40 - (n % 6) * 8))
        edit = axial.label_painter.last_edit
        if edit is None or edit is before:
            raise RuntimeError(f"stroke {n} changed nothing")
        slices = sorted({int(z) for z in np.unravel_index(edit.flat_index, layer.label_map.array.shape)[0]})
        state["waiting"] = (n, slices, saver.generation, layer.meta["revision"])

    timer = every(30, step)
    window._driver_timer = timer


def report_layers(window) -> None:
    state = {"since": None}

    def step() -> None:
        if not app_ready(window):
            return
        layers = window.session.label_layers()
        if not layers:  # the saved layers are read off the GUI thread: give them a moment
            state["since"] = state["since"] or time.monotonic()
            if time.monotonic() - state["since"] < 20:
                return
        timer.stop()
        print(f"LOADED {window.autosave.study_uid} {len(layers)}", flush=True)
        for layer in layers:
            print(f"LAYER {layer.name} {layer.meta.get('edited_by', '-')} {layer.meta.get('revision', '0')}",
                  flush=True)
        if layers:
            array = layers[0].label_map.array
            for z in range(array.shape[0]):
                print(f"SLICE {z} {zlib.crc32(np.ascontiguousarray(array[z]))}", flush=True)
        if window.notices.last_message:
            print(f"MESSAGE {window.notices.last_message}", flush=True)
        print("END", flush=True)
        window.close()

    timer = every(50, step)
    window._driver_timer = timer
