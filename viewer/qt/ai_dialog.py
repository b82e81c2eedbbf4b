"""The "Run AI" dialog: which model, on which device. The last choice is remembered (QSettings).

Models that cannot run on the open series (another modality) are listed but
disabled, with the reason. The dialog only collects the choice; the AI
controller runs it.
"""
from __future__ import annotations

from html import escape

from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QFormLayout, QLabel, QTreeWidget,
                               QTreeWidgetItem, QVBoxLayout)

from viewer.core.ai_bridge import NOT_REVIEWED, method_in_plain_words, modality_mismatch

MODEL_KEY = "ai/model"
DEVICE_KEY = "ai/device"
#: (shown text, device string of the request)
DEVICES = (("Automatic (GPU if available)", "auto"), ("CPU", "cpu"), ("GPU (CUDA)", "cuda"))


def _modality_text(manifest) -> str:
    m = getattr(manifest, "modality", "") or ""
    return "/".join(m) if isinstance(m, (list, tuple, set)) else str(m or "any")


class RunAiDialog(QDialog):
    """``model_id`` and ``device`` hold the choice once accepted."""

    def __init__(self, manifests, volume=None, settings: QSettings | None = None, parent=None,
                 problems=()):
        super().__init__(parent)
        self.setWindowTitle("Run AI")
        self.setObjectName("run_ai_dialog")
        self.resize(760, 420)
        self.settings = settings if settings is not None else QSettings("radview", "radview")
        self.manifests = {m.id: m for m in manifests}
        box = QVBoxLayout(self)
        series = (volume.meta.get("description") or "") if volume is not None else ""
        intro = QLabel(f"Run a model on the open series{f' ({series})' if series else ''}. "
                       f"It runs in the background; the viewer stays usable, and Cancel stops it.")
        intro.setWordWrap(True)
        box.addWidget(intro)

        self.model_list = QTreeWidget()
        self.model_list.setHeaderLabels(["Model", "Version", "Modality", "Method", "Available"])
        self.model_list.setRootIsDecorated(False)
        self.model_list.setAlternatingRowColors(True)
        self.items: dict[str, QTreeWidgetItem] = {}
        for manifest in sorted(manifests, key=lambda m: (bool(modality_mismatch(m, volume)), m.name.lower())):
            reason = modality_mismatch(manifest, volume)
            item = QTreeWidgetItem([manifest.name, str(manifest.version), _modality_text(manifest),
                                    method_in_plain_words(manifest.method), f"no: {reason}" if reason else "yes"])
            item.setData(0, Qt.UserRole, manifest.id)
            tip = f"{manifest.name} ({manifest.id}) version {manifest.version}\n{manifest.description}".strip()
            if reason:
                tip += f"\n\nNot available: {reason}."
                item.setFlags(item.flags() & ~Qt.ItemIsEnabled & ~Qt.ItemIsSelectable)
            for col in range(5):
                item.setToolTip(col, tip)
            self.model_list.addTopLevelItem(item)
            self.items[manifest.id] = item
        for col in range(4):
            self.model_list.resizeColumnToContents(col)
        self.model_list.currentItemChanged.connect(self._on_current_changed)
        self.model_list.itemDoubleClicked.connect(lambda item, _c: item.flags() & Qt.ItemIsEnabled and self.accept())
        box.addWidget(self.model_list, 1)

        self.description = QLabel()
        self.description.setWordWrap(True)
        self.description.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.description.setMinimumHeight(40)
        box.addWidget(self.description)
        if problems:
            issues = QLabel(f"{len(problems)} model manifest(s) could not be read (hover for details).")
            issues.setStyleSheet("color: #b36b00;")
            issues.setToolTip("\n".join(problems))
            box.addWidget(issues)
        if not manifests:
            self.description.setText("No models are installed.")

        form = QFormLayout()
        self.device_box = QComboBox()
        for text, device in DEVICES:
            self.device_box.addItem(text, device)
        form.addRow("Device", self.device_box)
        box.addLayout(form)
        note = QLabel(NOT_REVIEWED + ". Research software, not for clinical use.")
        note.setStyleSheet("color: #888;")
        box.addWidget(note)

        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.buttons.button(QDialogButtonBox.Ok).setText("Run")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        box.addWidget(self.buttons)

        self.model_id: str | None = None
        self.device: str = "auto"
        self._restore()

    # --- choice ---------------------------------------------------------------------------------
    def _enabled_ids(self) -> list[str]:
        return [mid for mid, item in self.items.items() if item.flags() & Qt.ItemIsEnabled]

    def _restore(self) -> None:
        last_model = str(self.settings.value(MODEL_KEY, "") or "")
        last_device = str(self.settings.value(DEVICE_KEY, "auto") or "auto")
        enabled = self._enabled_ids()
        if last_model in enabled:
            self.select_model(last_model)
        elif enabled:
            self.select_model(next(mid for mid in self.items if mid in enabled))
        else:
            self._on_current_changed(None, None)
        i = self.device_box.findData(last_device)
        self.device_box.setCurrentIndex(max(i, 0))

    def select_model(self, model_id: str) -> bool:
        item = self.items.get(model_id)
        if item is None or not item.flags() & Qt.ItemIsEnabled:
            return False
        self.model_list.setCurrentItem(item)
        return True

    def select_device(self, device: str) -> bool:
        i = self.device_box.findData(device)
        if i >= 0:
            self.device_box.setCurrentIndex(i)
        return i >= 0

    def selected_model_id(self) -> str | None:
        item = self.model_list.currentItem()
        if item is None or not item.flags() & Qt.ItemIsEnabled:
            return None
        return item.data(0, Qt.UserRole)

    def selected_device(self) -> str:
        return self.device_box.currentData() or "auto"

    def _on_current_changed(self, current, _previous) -> None:
        model_id = current.data(0, Qt.UserRole) if current is not None else None
        manifest = self.manifests.get(model_id)
        if manifest is not None:
            self.description.setText(f"<b>{escape(manifest.name)}</b> {escape(str(manifest.version))} — "
                                     f"{escape(method_in_plain_words(manifest.method))}.<br>"
                                     f"{escape(manifest.description or '')}")
        elif self.manifests:
            self.description.setText("No model can run on this series.")
        self.buttons.button(QDialogButtonBox.Ok).setEnabled(self.selected_model_id() is not None)

    def accept(self) -> None:
        model_id = self.selected_model_id()
        if model_id is None:
            return
        self.model_id, self.device = model_id, self.selected_device()
        self.settings.setValue(MODEL_KEY, self.model_id)
        self.settings.setValue(DEVICE_KEY, self.device)
        self.settings.sync()
        super().accept()
