"""The grid of image views: every view of the study at once."""

from __future__ import annotations

import math

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QGridLayout, QLabel, QWidget

from viewer.qt.image_view import ImageView

#: Layouts offered in the View menu, (rows, columns).
LAYOUTS = [(1, 1), (1, 2), (2, 1), (2, 2), (2, 3), (3, 3), (3, 4), (4, 4)]


def auto_layout(count: int) -> tuple[int, int]:
    """Rows × columns for ``count`` views: as square as possible, wider than tall."""
    if count <= 1:
        return 1, 1
    cols = math.ceil(math.sqrt(count))
    rows = math.ceil(count / cols)
    return rows, cols


class ViewGrid(QWidget):
    """Lays out :class:`ImageView` widgets; one is active; one can be maximised."""

    active_changed = Signal(object)  # ImageView or None

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._layout = QGridLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(2)
        self.views: list[ImageView] = []
        self.layout_choice: tuple[int, int] | None = None  # None → by count
        self.maximised: ImageView | None = None
        self.active: ImageView | None = None
        self._placeholder = QLabel("Open a study: File ▸ Open, or drop files and folders here",
                                   self)
        self._placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._layout.addWidget(self._placeholder, 0, 0)

    def set_views(self, views: list[ImageView]) -> None:
        for v in self.views:
            v.setParent(None)
            v.deleteLater()
        self.views = list(views)
        self.maximised = None
        self.active = None
        for v in self.views:
            v.activated.connect(self.set_active)
            v.maximise_requested.connect(self.toggle_maximise)
        self._relayout()
        self.set_active(self.views[0] if self.views else None)

    def set_layout_choice(self, choice: tuple[int, int] | None) -> None:
        self.layout_choice = choice
        self.maximised = None
        self._relayout()

    def current_layout(self) -> tuple[int, int]:
        return self.layout_choice or auto_layout(len(self.views))

    def visible_views(self) -> list[ImageView]:
        return [v for v in self.views if v.isVisible()]

    def _set_stretch(self, rows: int, cols: int) -> None:
        """Stretch 1 for the ``rows`` × ``cols`` cells in use, 0 for every other row and
        column the layout has ever had. QGridLayout never forgets a row or column: after a
        1×2 grid, column 1 would keep its stretch and claim half the width of a 1×1 grid,
        a maximised view or a one-view study."""
        for r in range(max(self._layout.rowCount(), rows)):
            self._layout.setRowStretch(r, 1 if r < rows else 0)
        for c in range(max(self._layout.columnCount(), cols)):
            self._layout.setColumnStretch(c, 1 if c < cols else 0)

    def _relayout(self) -> None:
        while self._layout.count():
            self._layout.takeAt(0)
        self._placeholder.setVisible(not self.views)
        if not self.views:
            self._layout.addWidget(self._placeholder, 0, 0)
            self._set_stretch(1, 1)
            return
        if self.maximised is not None:
            for v in self.views:
                v.setVisible(v is self.maximised)
            self._layout.addWidget(self.maximised, 0, 0)
            self._set_stretch(1, 1)
            return
        rows, cols = self.current_layout()
        # Keep the active view on the page when the grid has fewer cells than views.
        start = 0
        if self.active in self.views and len(self.views) > rows * cols:
            idx = self.views.index(self.active)
            start = (idx // (rows * cols)) * rows * cols
        shown = self.views[start:start + rows * cols]
        for v in self.views:
            v.setVisible(v in shown)
        for i, v in enumerate(shown):
            self._layout.addWidget(v, i // cols, i % cols)
        self._set_stretch(rows, cols)

    def set_active(self, view: ImageView | None) -> None:
        if view is self.active:
            return
        self.active = view
        for v in self.views:
            v.set_active(v is view)
        if view is not None and not view.isVisible():
            self._relayout()
        self.active_changed.emit(view)

    def toggle_maximise(self, view: ImageView | None = None) -> None:
        view = view or self.active
        if view is None:
            return
        self.maximised = None if self.maximised is view else view
        self.set_active(view)
        self._relayout()

    def step_active(self, delta: int) -> None:
        if not self.views:
            return
        idx = self.views.index(self.active) if self.active in self.views else 0
        self.set_active(self.views[(idx + delta) % len(self.views)])
        if self.maximised is not None:
            self.maximised = self.active
            self._relayout()
