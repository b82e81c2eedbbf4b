"""The reading keys, wherever the focus is in the window: slice steps, presets 0-9, I, C, Space, the tools.

A view's ``keyPressEvent`` only sees keys while the view has the focus; once a toolbar button, the Window box or a
table of a dock has it, the keys went there instead. :func:`install_reading_keys` makes one ``QShortcut`` per
reading key on the reading layout with ``Qt.WindowShortcut`` context, so the key reaches the active view
(:meth:`SliceView.handle_key`) from anywhere in the window while the layout is shown (a 2D series hides it: its
views keep their own keys).

Widgets that need a key of their own keep it: text fields and spin boxes (typing, arrows), the 3D view (its
own keys), and Space on buttons and lists (press, tick). The key is passed to them as it came.
"""
from __future__ import annotations

from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QKeyEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QLineEdit,
    QPlainTextEdit,
    QTextEdit,
    QWidget,
)

#: every key a slice view handles (``shared/CONVENTIONS.md``, Mouse and keys; the measuring tools and the brush)
READING_KEYS = (
    "Up", "Down", "Shift+Up", "Shift+Down", "Home", "End", "PgUp", "PgDown",
    *"0123456789", "Space", "I", "C", "F12", "Shift+F12", "G", "H",
    "L", "A", "E", "R", "T", "B", "X", "Shift+B", "[", "]", "Esc", "Del", "Backspace",
)
#: widgets that type, or step with the arrows: every key stays theirs
_TYPING = (QLineEdit, QAbstractSpinBox, QTextEdit, QPlainTextEdit)


def _key_text(key: int, mods) -> str:
    if Qt.Key_A <= key <= Qt.Key_Z:
        return chr(key) if mods & Qt.ShiftModifier else chr(key).lower()
    if 0x20 <= key < 0x7F:
        return chr(key)
    return ""


def keeps_key(widget: QWidget | None, key: int, own_widgets: tuple = ()) -> bool:
    """``widget`` (the focus) needs ``key`` itself."""
    if widget is None:
        return False
    if isinstance(widget, _TYPING) or isinstance(widget, QComboBox) and widget.isEditable():
        return True
    if any(w is widget or w.isAncestorOf(widget) for w in own_widgets if w is not None):
        return True
    return key == Qt.Key_Space and isinstance(widget, (QAbstractButton, QAbstractItemView))


class ReadingKeys:
    """The window-level reading keys of one layout (``layout.active`` gets them; see the module)."""

    def __init__(self, layout):
        self.layout = layout
        self.shortcuts: list[QShortcut] = []
        for text in READING_KEYS:
            sequence = QKeySequence(text)
            shortcut = QShortcut(sequence, layout)
            shortcut.setContext(Qt.WindowShortcut)
            shortcut.setAutoRepeat(True)
            shortcut.activated.connect(lambda combo=sequence[0]: self.route(combo.key(), combo.keyboardModifiers()))
            self.shortcuts.append(shortcut)

    def route(self, key, mods) -> None:
        """Pass ``key`` to the focused slice view or the active one, or back to a focus that keeps it."""
        focus = QApplication.focusWidget()
        if keeps_key(focus, key, (self.layout.pane_3d,)):
            QApplication.sendEvent(focus, QKeyEvent(QEvent.KeyPress, key, mods, _key_text(key, mods)))
            return
        views = self.layout.views.values()
        target = focus if any(focus is v for v in views) else self.layout.active
        target.handle_key(key, mods)


def install_reading_keys(layout) -> ReadingKeys:
    return ReadingKeys(layout)
