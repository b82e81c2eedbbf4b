"""The autouse QThread-leak check of tests/qt/conftest.py: it sees a QThread left running (without walking every
object in the process) and fails the test that left it."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def test_the_check_fails_on_a_running_qthread_and_passes_once_it_stopped(qthread_registry):
    import pytest
    from PySide6.QtCore import QThread

    class Worker(QThread):  # a subclass (its own __init__) is tracked too
        def __init__(self):
            super().__init__()
            self.setObjectName("leak-check-worker")

    plain, sub = QThread(), Worker()
    plain.setObjectName("leak-check-plain")
    qthread_registry.check()  # created, not started: nothing runs
    try:
        for thread in (plain, sub):
            thread.start()
        assert plain in qthread_registry.running() and sub in qthread_registry.running()
        with pytest.raises(AssertionError, match=r"2 QThread\(s\) left running after the test: .*leak-check-"):
            qthread_registry.check()
    finally:
        for thread in (plain, sub):
            thread.quit()
            thread.wait(10000)
    qthread_registry.check()


INNER_TEST = '''
import pytest
from PySide6.QtCore import QThread

LEFT = []


@pytest.fixture(scope="session", autouse=True)
def stop_what_was_left():  # torn down after every test's own checks: the process ends with no thread running
    yield
    for thread in LEFT:
        thread.quit()
        thread.wait(10000)


def test_a_thread_stopped_in_time(qapp):
    thread = QThread()
    thread.start()
    thread.quit()
    assert thread.wait(10000)


def test_a_thread_left_running(qapp):
    thread = QThread()
    thread.setObjectName("left-running")
    thread.start()
    LEFT.append(thread)
'''


def test_a_test_that_leaves_a_qthread_running_fails(tmp_path):
    """The fixture itself, in a pytest run of its own: the test that leaves a thread running fails (an error at
    teardown), the one that stopped its thread passes."""
    (tmp_path / "conftest.py").write_text((HERE / "conftest.py").read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "test_inner.py").write_text(INNER_TEST, encoding="utf-8")
    env = dict(os.environ, QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir",
                           str(tmp_path), str(tmp_path)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "1 QThread(s) left running after the test: 'left-running'" in out, out
    # both calls pass; the leaving one then errors at teardown, the check's
    assert "ERROR at teardown of test_a_thread_left_running" in out and "2 passed, 1 error" in out, out
