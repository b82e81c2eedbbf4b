"""The image a slice view shows, made without blocking the GUI thread.

:func:`viewer.core.reformat.render` makes a slice, a slab or an oblique plane. A cheap one (a native slice, a
slab reading at most :data:`SYNC_VOXELS`) is made at once, on the GUI thread; a dear one (a thick slab, any
oblique plane) goes to a worker thread (all cores but one), and the view keeps its last image until the result
comes back on the GUI thread. Only the newest request's result is shown: requests made while one is running
replace each other, so scrolling through a slab never queues work.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor

from PySide6.QtCore import QObject, QTimer, Signal

from viewer.core.reformat import Rendered, render, render_cost

#: a render reading at most this many voxels (``render_cost``) runs on the GUI thread: at most ~15 ms (measured:
#: a native 100-slice MIP of 512² int16, 26 M voxels, ~13 ms on the axial plane, ~30 ms on the sagittal); every
#: oblique plane (~35 ms for 428×702 trilinear samples) and larger slabs go to the worker
SYNC_VOXELS = 8_000_000

_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _warm_up() -> None:
    """Import ``scipy.ndimage`` (oblique planes) on the worker, once: its first import takes ~0.4 s, and a GUI
    thread that needed it then would wait for it."""
    import scipy.ndimage  # noqa: F401


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            workers = max(1, (os.cpu_count() or 2) - 1)  # a core stays the GUI thread's
            _POOL = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="slice-render")
            _POOL.submit(_warm_up)
        return _POOL


class SliceRenderer(QObject):
    """Makes one view's images; ``ready(Rendered)`` is emitted on the GUI thread for the newest request.

    A worker's result is collected by a 5 ms timer on the GUI thread while a render runs (no signal crosses from a
    Python thread into Qt)."""

    ready = Signal(object)

    def __init__(self, parent=None):
        super().__init__(parent)
        self._serial = 0
        self._running: tuple[int, Future] | None = None
        self._next: tuple | None = None
        self._poll = QTimer(self)
        self._poll.setInterval(5)
        self._poll.timeout.connect(self._collect)
        _pool()

    @property
    def idle(self) -> bool:
        """No render is running or waiting."""
        return self._running is None and self._next is None

    def request(self, array, plane, k: int, slab=None, sync: bool | None = None) -> Rendered | None:
        """The image of slice ``k``: returned at once when cheap (or ``sync``), else None and ``ready`` later."""
        self._serial += 1
        if sync or (sync is None and render_cost(plane, slab) <= SYNC_VOXELS):
            self._next = None
            return render(array, plane, k, slab)
        self._next = (self._serial, array, plane, k, slab)
        self._start()
        return None

    def cancel(self) -> None:
        """Forget what was asked (a new volume, no volume): a running render's result is dropped."""
        self._serial += 1
        self._next = None

    def _start(self) -> None:
        if self._running is not None or self._next is None:
            return
        serial, *job = self._next
        self._next = None
        self._running = (serial, _pool().submit(render, *job))
        self._poll.start()

    def _collect(self) -> None:
        if self._running is None or not self._running[1].done():
            return
        serial, future = self._running
        self._running = None
        self._poll.stop()
        self._start()
        if serial == self._serial:
            self.ready.emit(future.result())  # (a failed render raises here, on the GUI thread)
