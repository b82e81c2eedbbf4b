"""What the user is told: the status bar's message, errors in a non-modal box, and what an export wrote.

One :class:`Notifier` per window; controllers get it instead of the window. Nothing it shows is modal, so
nothing waits on the user (and background results still land while a box is open).
"""
from __future__ import annotations

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QLabel, QMessageBox, QStatusBar, QWidget

READY_TEXT = "Open a study folder (File → Open folder…, or drop it here)"


class Notifier(QObject):
    """The status bar's text (``status_label``), the skipped-files note, and non-modal message boxes.

    ``last_message``: the last warning or error (what :meth:`error` was given); ``message_box``: the last box.
    """

    exported = Signal(str)  # a file was written by an export (its path)
    _posted = Signal(str, bool)  # text, dialog: from any thread, delivered on the GUI thread

    def __init__(self, status_bar: QStatusBar, parent: QWidget):
        super().__init__(parent)
        self.parent_widget = parent
        self.last_message = ""
        self.message_box: QMessageBox | None = None
        self.status_label = QLabel(READY_TEXT)
        self.skipped_label = QLabel("")
        self.skipped_label.setStyleSheet("color: #b36b00;")
        status_bar.addWidget(self.status_label, 1)
        status_bar.addPermanentWidget(self.skipped_label)
        self._posted.connect(self.error)

    def info(self, text: str) -> None:
        """A message in the status bar."""
        self.status_label.setText(text)

    def error(self, text: str, dialog: bool = True) -> None:
        """A warning in the status bar and (``dialog``) in a non-modal box; remembered as ``last_message``."""
        self.last_message = text
        self.status_label.setText(text)
        if dialog:
            self.show_box("radview", text, QMessageBox.Warning)

    def post(self, text: str, dialog: bool = False) -> None:
        """:meth:`error` from any thread (an autosave writer's failure): shown on the GUI thread."""
        self._posted.emit(text, dialog)

    def saved(self, path: str, extra: str = "") -> None:
        """An export wrote ``path``: said in the status bar, and ``exported`` is emitted."""
        self.status_label.setText(f"Saved {path}{extra}")
        self.exported.emit(path)

    def show_box(self, title: str, text: str, icon=QMessageBox.Information, details: str = "") -> QMessageBox:
        """A non-modal message box over the window (closed by the user, deleted when closed)."""
        box = QMessageBox(icon, title, text, QMessageBox.Ok, self.parent_widget)
        if details:
            box.setDetailedText(details)
        box.setAttribute(Qt.WA_DeleteOnClose)
        box.setModal(False)
        box.show()
        self.message_box = box
        return box

    def show_skipped(self, count: int, details: str = "") -> None:
        """The "N files skipped" note at the right of the status bar (empty when none)."""
        self.skipped_label.setText(f"{count} files skipped" if count else "")
        self.skipped_label.setToolTip(details)
