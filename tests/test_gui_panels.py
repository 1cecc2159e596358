"""The view grid, the study browser and the AI panel as a radiologist uses them (issue 12 §1).

Widgets are built alone (no main window) and measured offscreen: geometry is read back
from Qt, never compared with timings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QDockWidget, QMainWindow, QWidget

from viewer.model import ImageRef, LoadResult, Patient, PixelSpec, Series, Study
from viewer.qt.browser import StudyBrowser
from viewer.qt.grid import ViewGrid
from viewer.qt.image_view import ImageView
from viewer.qt.results import ResultsPanel


def make_views(count: int) -> list[ImageView]:
    study = Study(uid="1.2.3")
    refs = [ImageRef(path=Path(f"/nowhere/IM{i}.dcm"), kind="dicom",
                     spec=PixelSpec(rows=64, columns=64)) for i in range(count)]
    return [ImageView(ref, study, Patient()) for ref in refs]


@pytest.fixture
def grid(qtbot):
    widget = ViewGrid()
    qtbot.addWidget(widget)
    widget.resize(800, 600)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def settled(widget: QWidget) -> None:
    widget.layout().activate()
    QApplication.processEvents()


# -------------------------------------------------------------------------- the grid


@pytest.mark.parametrize("then", [
    # The 1×1 layout after a 1×2 one: column 1 kept its stretch and its half of the width.
    lambda g: g.set_layout_choice((1, 1)),
    # Maximising one of two views.
    lambda g: g.toggle_maximise(g.views[0]),
    # A one-view study opened after a two-view one.
    lambda g: g.set_views(make_views(1)),
], ids=["1x1-layout", "maximise", "one-view-study"])
def test_a_single_view_fills_the_grid(grid, then):
    grid.set_views(make_views(2))
    settled(grid)
    assert [v.width() for v in grid.visible_views()][0] < grid.width() * 0.6  # side by side
    then(grid)
    settled(grid)
    [view] = grid.visible_views()
    assert view.width() >= grid.width() - 4 and view.height() >= grid.height() - 4


def test_restoring_from_maximise_gives_both_views_their_half(grid):
    grid.set_views(make_views(2))
    grid.toggle_maximise(grid.views[1])
    grid.toggle_maximise(grid.views[1])
    settled(grid)
    widths = [v.width() for v in grid.visible_views()]
    assert len(widths) == 2 and abs(widths[0] - widths[1]) <= 2


# ----------------------------------------------------------------------- the browser


def test_double_click_opens_a_study_once_and_keeps_it_expanded(qtbot):
    ref = ImageRef(path=Path("/nowhere/IM0.dcm"), kind="dicom")
    study = Study(uid="1.2.3", description="Hand", series=[Series(uid="1.2.3.1",
                                                                  images=[ref])])
    browser = StudyBrowser()
    qtbot.addWidget(browser)
    browser.populate(LoadResult(patients=[Patient(id="P1", studies=[study])]))
    browser.resize(300, 400)
    browser.show()
    qtbot.waitExposed(browser)
    item = browser.item_for(study)
    assert item.isExpanded()
    opened = []
    browser.study_activated.connect(opened.append)
    rect = browser.visualItemRect(item)
    # A real double-click: press, release, then the double-click event and its release.
    qtbot.mouseClick(browser.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.mouseDClick(browser.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert opened == [study]  # once, not twice (activated + doubleClicked)
    assert item.isExpanded()  # QTreeView folded it on double-click


# ---------------------------------------------------------------------- the AI panel


@dataclass
class FakeImage:
    key: str
    probability: float | None
    cam: np.ndarray | None = None


@dataclass
class FakeResult:
    """The fields of ``inference.engine.StudyResult`` the panel reads."""

    supported: bool
    reason: str | None = None
    score: float | None = None
    label: str | None = None
    threshold: float | None = None
    model: str | None = "fracture"
    body_part: str | None = "HAND"
    body_part_source: str | None = "tag"
    flags: list[str] = field(default_factory=list)
    images: list[FakeImage] = field(default_factory=list)


#: The reason the engine gives for a leg film (inference.routing.support).
NOT_SUPPORTED = ("not supported by this model: LEG (this bundle covers: HAND, WRIST, "
                 "FOREARM, ELBOW, HUMERUS, SHOULDER, ARM)")


def docked_panel(qtbot, size: tuple[int, int], views: list[str] | None = None):
    """A shown main window with a ResultsPanel in its right dock, as the app has it."""
    window = QMainWindow()
    qtbot.addWidget(window)
    window.setCentralWidget(QWidget())
    panel = ResultsPanel()
    dock = QDockWidget("AI results")
    dock.setWidget(panel)
    window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
    window.resize(*size)
    if views is not None:
        panel.clear(views)
    window.show()
    qtbot.waitExposed(window)
    return window, dock, panel


def test_not_supported_text_wraps_and_the_panel_keeps_its_width(qtbot):
    # The unwrapped reason widened the dock to 620–820 px and shrank the image to 8–17 %
    # zoom even at 1920×1080.
    window, dock, panel = docked_panel(qtbot, (1920, 1080), ["IM0.dcm", "IM1.dcm"])
    before = (dock.width(), panel.sizeHint().width(), panel.minimumSizeHint().width())
    result = FakeResult(supported=False, reason=NOT_SUPPORTED, body_part="LEG",
                        body_part_source="router",
                        images=[FakeImage("a", None), FakeImage("b", None)])
    panel.show_result(result, ["IM0.dcm", "IM1.dcm"], ["a", "b"])
    settled(window)
    # The verdict stays short in the form; the long reason wraps in the line below it.
    assert "Not supported" in panel.label_value.text()
    assert panel.flags_label.wordWrap() and NOT_SUPPORTED in panel.flags_label.text()
    assert (dock.width(), panel.sizeHint().width(),
            panel.minimumSizeHint().width()) == before
    assert before[0] < 420


def test_every_view_is_listed_scored_or_not(qtbot):
    # Three views: two scored (one with a map), one that could not be decoded.
    panel = ResultsPanel()
    qtbot.addWidget(panel)
    result = FakeResult(supported=True, score=0.71, label="fracture", threshold=0.5,
                        images=[FakeImage("a", 0.82, np.zeros((4, 4))),
                                FakeImage("b", 0.60)])
    panel.show_result(result, ["IM0.dcm", "IM1.dcm", "IM2.dcm"], ["a", "b", "c"],
                      reasons={"c": "JPEG Extended pixel data could not be decoded"})
    assert panel.scored_label.text() == "2 of 3 views scored"
    assert panel.probability_texts() == [
        "0.820", "0.600", "not scored: JPEG Extended pixel data could not be decoded"]
    assert panel.heatmap_states() == [True, None, None]  # a box only where a map exists


def test_verdict_model_and_reviewer_choices_fit_the_panel(qtbot):
    # In the demo screenshot the verdict "FRACTURE (model fracture-hand)" wrapped inside
    # the form and its second line was cut; "Heatmaps" and "Not reviewed" were cut at the
    # panel's width. Now the model has its own row and nothing asks for more width than
    # the panel has.
    window, _dock, panel = docked_panel(qtbot, (1400, 900))
    result = FakeResult(supported=True, score=0.93, label="fracture", threshold=0.63,
                        model="fracture-hand", images=[FakeImage("a", 0.93)])
    result.flag, result.flag_text, result.doubt_threshold = "positive", "FRACTURE", 0.4
    panel.show_result(result, ["IM0.dcm"], ["a"])
    settled(window)
    cases = [
        # (widget, why it is checked)
        (panel.label_value, "the verdict alone, one line"),
        (panel.model_value, "the model on its own row"),
        (panel.overlay_box, "the Heatmaps check box beside Analyze"),
        (panel.cmap_combo, "the colormap, now beside the opacity"),
        *[(b, f"the reviewer's '{b.text()}'") for b in panel.agreement_buttons.values()],
    ]
    for widget, why in cases:
        assert widget.width() >= widget.sizeHint().width(), why
    assert "FRACTURE" in panel.label_value.text() and "model" not in panel.label_value.text()
    assert panel.model_value.text() == "fracture-hand"
    assert panel.threshold_value.text() == "0.63 (doubt 0.40)"
