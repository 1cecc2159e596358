"""The study browser: patients → studies → series → images, with thumbnails and errors."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QIcon, QImage, QPixmap
from PySide6.QtWidgets import QTreeWidget, QTreeWidgetItem, QWidget

from viewer.model import ImageRef, LoadResult, Patient, Series, Study

THUMB = 64
_ROLE = Qt.ItemDataRole.UserRole


def study_title(study: Study) -> str:
    date = study.date
    if len(date) == 8 and date.isdigit():
        date = f"{date[:4]}-{date[4:6]}-{date[6:]}"
    bits = [x for x in (date, study.description) if x]
    if study.body_part:
        bits.append(study.body_part)
    if study.label:
        bits.append(f"[{study.label}]")
    if not bits and study.source is not None:
        bits.append(study.source.name)
    return " · ".join(bits) or "Study"


class StudyBrowser(QTreeWidget):
    """Tree of what a scan found. Double-click (or Enter) on a study opens it."""

    study_activated = Signal(object)  # Study
    image_activated = Signal(object, object)  # Study, ImageRef

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setHeaderLabels(["Study browser"])
        self.setIconSize(QSize(THUMB, THUMB))
        self.setUniformRowHeights(False)
        self.setAlternatingRowColors(False)
        self._items: dict[int, QTreeWidgetItem] = {}
        self._study_of: dict[int, Study] = {}
        self.error_count = 0
        # A double-click opens the study; it must not also fold its node (QTreeView's
        # default), and it already emits itemActivated (connecting itemDoubleClicked too
        # would open the study twice). The arrow and +/- keys still fold.
        self.setExpandsOnDoubleClick(False)
        self.itemActivated.connect(self._on_item_activated)

    def populate(self, result: LoadResult) -> None:
        self.clear()
        self._items.clear()
        self._study_of.clear()
        for patient in result.patients:
            self._add_patient(patient)
        self.error_count = len(result.errors) + sum(1 for im in result.images if not im.ok)
        if result.errors:
            node = QTreeWidgetItem(self, [f"⚠ Unreadable files ({len(result.errors)})"])
            node.setForeground(0, QBrush(QColor(230, 110, 90)))
            for err in result.errors:
                child = QTreeWidgetItem(node, [f"{err.path.name}: {err.reason}"])
                child.setToolTip(0, f"{err.path}\n{err.reason}")
                child.setForeground(0, QBrush(QColor(230, 110, 90)))
            node.setExpanded(True)
        self.expandToDepth(2)  # down to the images, whose thumbnails appear as decoded

    def _add_patient(self, patient: Patient) -> None:
        name = patient.name.replace("^", " ").strip()
        label = " · ".join(x for x in (name, patient.id) if x) or "Unknown patient"
        pitem = QTreeWidgetItem(self, [label])
        pitem.setData(0, _ROLE, patient)
        for study in patient.studies:
            sitem = QTreeWidgetItem(pitem, [study_title(study)])
            sitem.setData(0, _ROLE, study)
            sitem.setToolTip(0, study.uid)
            self._items[id(study)] = sitem
            for series in study.series:
                self._add_series(sitem, study, series)

    def _add_series(self, parent: QTreeWidgetItem, study: Study, series: Series) -> None:
        bits = [x for x in (series.modality, series.description) if x]
        if series.number is not None:
            bits.insert(0, f"#{series.number}")
        label = " ".join(bits) or "Series"
        label += f" ({len(series.images)})"
        seitem = QTreeWidgetItem(parent, [label])
        seitem.setData(0, _ROLE, series)
        for ref in series.images:
            text = ref.name
            if ref.view_position or ref.laterality:
                text += f"  {ref.view_position} {ref.laterality}".rstrip()
            item = QTreeWidgetItem(seitem, [text])
            item.setData(0, _ROLE, ref)
            tip = str(ref.path)
            if ref.error:
                item.setText(0, f"⚠ {ref.name}: {ref.error}")
                item.setForeground(0, QBrush(QColor(230, 110, 90)))
                tip += f"\n{ref.error}"
            for w in ref.warnings:
                tip += f"\n⚠ {w}"
            item.setToolTip(0, tip)
            self._items[id(ref)] = item
            self._study_of[id(ref)] = study

    def set_thumbnail(self, ref: ImageRef, image: QImage) -> None:
        item = self._items.get(id(ref))
        if item is not None:
            item.setIcon(0, QIcon(QPixmap.fromImage(image)))

    def mark_error(self, ref: ImageRef, message: str) -> None:
        item = self._items.get(id(ref))
        if item is not None:
            item.setText(0, f"⚠ {ref.name}: {message}")
            item.setToolTip(0, f"{ref.path}\n{message}")
            item.setForeground(0, QBrush(QColor(230, 110, 90)))

    def select_study(self, study: Study) -> None:
        item = self._items.get(id(study))
        if item is not None:
            self.setCurrentItem(item)

    def item_for(self, obj) -> QTreeWidgetItem | None:
        return self._items.get(id(obj))

    def _on_item_activated(self, item: QTreeWidgetItem, _column: int = 0) -> None:
        obj = item.data(0, _ROLE)
        if isinstance(obj, Study):
            self.study_activated.emit(obj)
        elif isinstance(obj, Series):
            parent = item.parent()
            study = parent.data(0, _ROLE) if parent is not None else None
            if isinstance(study, Study):
                self.study_activated.emit(study)
        elif isinstance(obj, ImageRef):
            study = self._study_of.get(id(obj))
            if study is not None:
                self.image_activated.emit(study, obj)
        elif isinstance(obj, Patient) and obj.studies:
            self.study_activated.emit(obj.studies[0])
