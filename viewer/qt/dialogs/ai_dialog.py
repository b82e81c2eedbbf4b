"""The "Run AI" dialog: which model, on which device. The last choice is remembered (QSettings).

Models that cannot run on the open series (another modality) are listed but
disabled, with the reason. A model whose weights must first be downloaded
(``parameters["needs_download"]``, e.g. a TotalSegmentator task) shows its
``download_note`` and a consent box; Run stays disabled until it is ticked, and
the options then carry ``allow_download = True``. The dialog only collects the
choice; the AI controller runs it.
"""
from __future__ import annotations

from html import escape

from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
)

from viewer.core.ai_bridge import NOT_REVIEWED, method_in_plain_words, modality_mismatch

MODEL_KEY = "ai/model"
DEVICE_KEY = "ai/device"
#: (shown text, device string of the request)
DEVICES = (("Automatic (GPU if available)", "auto"), ("CPU", "cpu"), ("GPU (CUDA)", "cuda"))


def _modality_text(manifest) -> str:
    several = getattr(manifest, "modalities", None)
    if several is not None:
        return "/".join(several) or "any"
    m = getattr(manifest, "modality", "") or ""
    return "/".join(m) if isinstance(m, (list, tuple, set)) else str(m or "any")


class RunAiDialog(QDialog):
    """``model_id`` and ``device`` hold the choice once accepted."""

    def __init__(self, manifests, volume=None, settings: QSettings | None = None, parent=None,
                 problems=()):
        super().__init__(parent)
        self.setWindowTitle("Run AI")
        self.setObjectName("run_ai_dialog")
        self.resize(860, 580)  # room for ~8 models with a long description and a download note
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
        self.model_list.setMinimumHeight(170)
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

        self.download_note = QLabel()  # shown for models whose weights must be downloaded first
        self.download_note.setWordWrap(True)
        self.download_note.setStyleSheet("color: #b36b00;")
        self.download_consent = QCheckBox()
        self.download_consent.toggled.connect(lambda _on: self._sync_run())
        box.addWidget(self.download_note)
        box.addWidget(self.download_consent)
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
        self.options: dict = {}  # e.g. {"allow_download": True} once accepted
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
        params = getattr(manifest, "parameters", None) or {}
        needs = bool(params.get("needs_download")) and self.selected_model_id() is not None
        self.download_note.setText(str(params.get("download_note") or "") if needs else "")
        size = f"about {params['download_mb']:.0f} MB" if params.get("download_mb") else "size unknown"
        self.download_consent.setText(f"I agree that {params.get('download_by') or 'the model'} downloads the "
                                      f"weights ({size}) from its servers")
        self.download_consent.setChecked(False)
        self.download_note.setVisible(needs)
        self.download_consent.setVisible(needs)
        self._sync_run()

    def needs_download(self) -> bool:
        manifest = self.manifests.get(self.selected_model_id())
        return bool(manifest is not None and (getattr(manifest, "parameters", None) or {}).get("needs_download"))

    def _sync_run(self) -> None:
        ok = self.selected_model_id() is not None and (not self.needs_download() or self.download_consent.isChecked())
        self.buttons.button(QDialogButtonBox.Ok).setEnabled(ok)

    def accept(self) -> None:
        model_id = self.selected_model_id()
        if model_id is None or (self.needs_download() and not self.download_consent.isChecked()):
            return
        self.model_id, self.device = model_id, self.selected_device()
        self.options = {"allow_download": True} if self.needs_download() else {}
        self.settings.setValue(MODEL_KEY, self.model_id)
        self.settings.setValue(DEVICE_KEY, self.device)
        self.settings.sync()
        super().accept()
