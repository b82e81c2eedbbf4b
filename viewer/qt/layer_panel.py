"""The overlay panel: one block per label layer (legend with colours, names and volumes in mL,
per-label visibility, fill opacity, outline mode) and the marker layers' visibility."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (QCheckBox, QGroupBox, QHBoxLayout, QLabel, QSlider, QSpinBox, QTreeWidget,
                               QTreeWidgetItem, QVBoxLayout, QWidget)

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
        super().__init__(layer.name)
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
        _show_provenance(layer, self, *(self.legend.topLevelItem(i) for i in range(self.legend.topLevelItemCount())))
        box.addWidget(self.legend)

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

    def _on_removed(self, layer) -> None:
        block = self._blocks.pop(id(layer), None)
        if block is not None:
            block.setParent(None)
            block.deleteLater()
        self._empty.setVisible(not self._blocks)

    def blocks(self) -> list[QWidget]:
        return list(self._blocks.values())
