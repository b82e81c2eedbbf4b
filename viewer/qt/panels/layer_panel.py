"""The overlay panel: one block per label layer (legend with colours, names and volumes in mL,
per-label visibility, fill opacity, outline mode) and the marker layers' visibility.

Clicking a label in a legend makes it the label the brush paints (``Session.active_label``, shown
bold); the volumes follow every brush or eraser stroke and its undo (``Session.labels_edited``), and
an edited layer's title says so."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont, QIcon, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QSlider,
    QSpinBox,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from viewer.core.layers import LabelLayer, MarkerLayer
from viewer.core.session import Session


def _swatch(rgb) -> QIcon:
    pix = QPixmap(14, 14)
    pix.fill(QColor(*rgb))
    return QIcon(pix)


def _show_provenance(layer, widget: QWidget, *items: QTreeWidgetItem) -> None:
    """An AI layer's provenance (model id and version, method, device, run time, parameters) as its tooltip."""
    prov = getattr(layer, "meta", {}).get("provenance")
    if prov is None:
        return
    from viewer.core.ai_bridge import provenance_text

    tip = provenance_text(prov)
    widget.setToolTip(tip)
    for item in items:
        item.setToolTip(0, tip)
        item.setToolTip(1, tip)


class _LabelLayerBox(QGroupBox):
    def __init__(self, session: Session, layer: LabelLayer):
        edited = layer.meta.get("edited_by")  # a layer edited before (restored from the study's saved layers)
        super().__init__(f"{layer.name} (edited by {edited})" if edited else layer.name)
        self.session, self.layer = session, layer
        self.setCheckable(True)
        self.setChecked(layer.visible)
        self.toggled.connect(lambda on: session.update_layer(layer, visible=on))
        box = QVBoxLayout(self)
        row = QHBoxLayout()
        row.addWidget(QLabel("Opacity"))
        self.opacity = QSlider(Qt.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(int(round(layer.opacity * 100)))
        self.opacity.valueChanged.connect(lambda v: session.update_layer(layer, opacity=v / 100.0))
        row.addWidget(self.opacity, 1)
        self.outline = QCheckBox("Outline")
        self.outline.setChecked(layer.outline)
        self.outline.toggled.connect(lambda on: session.update_layer(layer, outline=on))
        row.addWidget(self.outline)
        box.addLayout(row)
        self.surface_spins: dict[int, QSpinBox] = {}
        self.legend = QTreeWidget()
        self.legend.setHeaderLabels(["Label", "Volume", "3D %"])
        self.legend.headerItem().setToolTip(2, "Opacity of the label's surface in the 3D view")
        self.legend.setRootIsDecorated(False)
        for label in sorted(layer.colors):
            if label == 0:
                continue
            ml = layer.volumes_ml.get(label)
            item = QTreeWidgetItem([f"{label}  {layer.label_name(label)}", f"{ml:.1f} mL" if ml is not None else "—"])
            item.setIcon(0, _swatch(layer.colors[label]))
            item.setData(0, Qt.UserRole, label)
            item.setFlags(item.flags() | Qt.ItemIsUserCheckable)
            item.setCheckState(0, Qt.Unchecked if label in layer.hidden_labels else Qt.Checked)
            self.legend.addTopLevelItem(item)
            spin = QSpinBox()
            spin.setRange(0, 100)
            spin.setSuffix(" %")
            spin.setValue(int(round(100 * layer.surface_opacity.get(label, 1.0))))
            spin.valueChanged.connect(lambda v, lab=label: self._set_surface_opacity(lab, v / 100.0))
            self.legend.setItemWidget(item, 2, spin)
            self.surface_spins[label] = spin
        self.legend.resizeColumnToContents(0)
        self.legend.itemChanged.connect(self._on_item_changed)
        self.legend.itemClicked.connect(self._on_item_clicked)
        self.legend.setToolTip("Click a label to paint it with the brush (B)")
        _show_provenance(layer, self, *(self.legend.topLevelItem(i) for i in range(self.legend.topLevelItemCount())))
        box.addWidget(self.legend)

    def items(self) -> dict[int, QTreeWidgetItem]:
        """label → its legend row."""
        return {self.legend.topLevelItem(i).data(0, Qt.UserRole): self.legend.topLevelItem(i)
                for i in range(self.legend.topLevelItemCount())}

    def volume_text(self, label: int) -> str:
        return self.items()[label].text(1)

    def update_volumes(self) -> None:
        """The volumes (mL) after an edit, and the title (", edited by …")."""
        self.legend.blockSignals(True)
        for label, item in self.items().items():
            ml = self.layer.volumes_ml.get(label)
            item.setText(1, f"{ml:.1f} mL" if ml is not None else "—")
        self.legend.blockSignals(False)
        edited = self.layer.meta.get("edited_by")
        self.setTitle(f"{self.layer.name} (edited by {edited})" if edited else self.layer.name)

    def show_active(self, label: int | None) -> None:
        self.legend.blockSignals(True)
        for lab, item in self.items().items():
            font = QFont(item.font(0))
            font.setBold(lab == label)
            item.setFont(0, font)
        self.legend.blockSignals(False)

    def _on_item_clicked(self, item: QTreeWidgetItem, _column: int) -> None:
        label = item.data(0, Qt.UserRole)
        if label is not None and self.layer in self.session.layers:
            self.session.set_active_label(self.layer, int(label))

    def _set_surface_opacity(self, label: int, opacity: float) -> None:
        self.session.update_layer(self.layer, surface_opacity={**self.layer.surface_opacity, label: opacity})

    def _on_item_changed(self, item: QTreeWidgetItem, _column: int) -> None:
        label = item.data(0, Qt.UserRole)
        hidden = set(self.layer.hidden_labels)
        if item.checkState(0) == Qt.Checked:
            hidden.discard(label)
        else:
            hidden.add(label)
        self.session.update_layer(self.layer, hidden_labels=hidden)


class LayerPanel(QWidget):
    def __init__(self, session: Session, parent=None):
        super().__init__(parent)
        self.session = session
        self._box = QVBoxLayout(self)
        self._box.setContentsMargins(4, 4, 4, 4)
        self._empty = QLabel("No overlays.\nFile → Load segmentation… adds a label map; AI → Run AI… (Ctrl+R) runs "
                             "a model.")
        self._empty.setWordWrap(True)
        self._box.addWidget(self._empty)
        self._box.addStretch(1)
        self._blocks: dict[int, QWidget] = {}
        session.layer_added.connect(self._on_added)
        session.layer_removed.connect(self._on_removed)
        session.labels_edited.connect(self._on_labels_edited)
        session.active_label_changed.connect(self._show_active)

    def _on_labels_edited(self, layer, finished: bool = True) -> None:
        block = self._blocks.get(id(layer))
        if finished and isinstance(block, _LabelLayerBox):
            block.update_volumes()

    def _show_active(self) -> None:
        active = self.session.active_label
        for block in self._blocks.values():
            if isinstance(block, _LabelLayerBox):
                block.show_active(active[1] if active is not None and active[0] is block.layer else None)

    def block_of(self, layer):
        return self._blocks.get(id(layer))

    def _on_added(self, layer) -> None:
        if isinstance(layer, LabelLayer):
            block = _LabelLayerBox(self.session, layer)
        elif isinstance(layer, MarkerLayer):
            block = QCheckBox(f"{layer.name} ({len(layer.markers)} markers)")
            block.setChecked(layer.visible)
            block.toggled.connect(lambda on, lay=layer: self.session.update_layer(lay, visible=on))
            _show_provenance(layer, block)
        else:
            return
        self._blocks[id(layer)] = block
        self._box.insertWidget(self._box.count() - 1, block)
        self._empty.hide()
        self._show_active()

    def _on_removed(self, layer) -> None:
        block = self._blocks.pop(id(layer), None)
        if block is not None:
            block.setParent(None)
            block.deleteLater()
        self._empty.setVisible(not self._blocks)
        self._show_active()

    def blocks(self) -> list[QWidget]:
        return list(self._blocks.values())
