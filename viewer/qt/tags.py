"""A searchable DICOM tag browser (header only; pixel data is not read)."""

from __future__ import annotations

from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from PySide6.QtWidgets import (
    QDialog,
    QLabel,
    QLineEdit,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

MAX_VALUE_CHARS = 200


def _value_text(elem) -> str:
    if elem.VR == "SQ":
        return f"<sequence of {len(elem.value)} item(s)>"
    if elem.VR in ("OB", "OW", "OF", "OD", "OL", "OV", "UN") and isinstance(
            elem.value, (bytes, bytearray)):
        return f"<{len(elem.value)} bytes>"
    text = str(elem.value)
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS] + "…"


class TagBrowser(QDialog):
    """Lists every element of a file's header, nested for sequences, filtered by a search
    over tag, keyword and value."""

    def __init__(self, path: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"DICOM tags — {path.name}")
        self.resize(820, 640)
        layout = QVBoxLayout(self)
        self.search = QLineEdit(self)
        self.search.setPlaceholderText("Search tag, keyword or value (e.g. 0028,1050 or Window)")
        self.search.setClearButtonEnabled(True)
        self.tree = QTreeWidget(self)
        self.tree.setHeaderLabels(["Tag", "Keyword", "VR", "Value"])
        self.tree.setColumnWidth(0, 110)
        self.tree.setColumnWidth(1, 220)
        self.tree.setColumnWidth(2, 40)
        self.info = QLabel(str(path), self)
        layout.addWidget(self.search)
        layout.addWidget(self.tree)
        layout.addWidget(self.info)
        self.search.textChanged.connect(self._on_search_changed)
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        except Exception as exc:
            self.info.setText(f"{path}: cannot read header: {exc}")
            return
        if getattr(ds, "file_meta", None) is not None and len(ds.file_meta):
            meta = QTreeWidgetItem(self.tree, ["File meta", "", "", ""])
            self._add(meta, ds.file_meta)
        self._add(self.tree.invisibleRootItem(), ds)
        self.tree.expandToDepth(0)

    def _add(self, parent: QTreeWidgetItem, ds: Dataset) -> None:
        for elem in ds:
            tag = f"({elem.tag.group:04X},{elem.tag.element:04X})"
            item = QTreeWidgetItem(parent, [tag, elem.keyword or elem.name, elem.VR,
                                            _value_text(elem)])
            if elem.VR == "SQ":
                for i, sub in enumerate(elem.value):
                    child = QTreeWidgetItem(item, [f"Item {i + 1}", "", "", ""])
                    self._add(child, sub)

    def _on_search_changed(self, text: str) -> None:
        needle = text.strip().lower().replace(" ", "")
        root = self.tree.invisibleRootItem()
        for i in range(root.childCount()):
            self._filter(root.child(i), needle)

    def _filter(self, item: QTreeWidgetItem, needle: str) -> bool:
        """Show items that match or have a matching descendant; returns visibility."""
        hay = " ".join(item.text(c) for c in range(4)).lower()
        compact = hay.replace(" ", "").replace("(", "").replace(")", "")
        match = not needle or needle in compact or needle.replace(",", "") in compact
        child_match = False
        for i in range(item.childCount()):
            child_match |= self._filter(item.child(i), needle if not match else "")
        visible = match or child_match
        item.setHidden(not visible)
        if needle and child_match:
            item.setExpanded(True)
        return visible

    def visible_keywords(self) -> list[str]:
        out: list[str] = []

        def walk(it: QTreeWidgetItem) -> None:
            for i in range(it.childCount()):
                c = it.child(i)
                if not c.isHidden():
                    if c.text(1):
                        out.append(c.text(1))
                    walk(c)

        walk(self.tree.invisibleRootItem())
        return out
