"""Measurement tools in the GUI (issue 16), pytest-qt offscreen with pixel probes.

Images are a flat mid-grey so that the tools' yellow (and another system's green) lines
are told apart from the image by probing a few pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import shiboken6
from dicom_factory import make_dicom
from pydicom.uid import generate_uid
from PySide6.QtCore import QEvent, QPointF, QSettings, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication
from test_gsps import _foreign_gsps

from viewer import measure as ms
from viewer.model import Window
from viewer.qt.main_window import MainWindow


def flat_image(path: Path, *, rows=120, cols=160, spacing=None, extra=None) -> Path:
    arr = np.full((rows, cols), 1500, np.uint16)
    more = dict(extra or {})
    if spacing is not None:
        more["ImagerPixelSpacing"] = list(spacing)
    return make_dicom(path, rows=rows, cols=cols, pixels=arr, bits_stored=12,
                      sop_uid=generate_uid(), modality="DX", windows=[(2048, 4096)],
                      extra={"PatientOrientation": ["R", "F"], **more})


def _close(win: MainWindow) -> None:
    win.close()
    win.deleteLater()
    QApplication.processEvents()
    QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    QApplication.processEvents()


@pytest.fixture
def make_window(qtbot, tmp_path):
    made = []

    def make() -> MainWindow:
        settings = QSettings(str(tmp_path / f"settings{len(made)}.ini"),
                             QSettings.Format.IniFormat)
        win = MainWindow(settings, discover=False)
        win.resize(900, 700)
        win.set_layout((1, 1))
        win.show()
        qtbot.waitExposed(win)
        made.append(win)
        return win

    yield make
    for win in made:
        if shiboken6.isValid(win):
            _close(win)


def open_and_wait(qtbot, win, paths):
    with qtbot.waitSignal(win.study_loaded, timeout=30000):
        win.open_paths([str(p) for p in paths])
    QApplication.processEvents()
    return win.grid.active or win.grid.views[0]


def wpoint(view, ix, iy):
    return view.state.to_widget((ix, iy), (view.width(), view.height()))


def mouse(view, kind, pos, button=Qt.MouseButton.LeftButton):
    p = QPointF(*pos)
    pressed = button if kind != QEvent.Type.MouseButtonRelease else Qt.MouseButton.NoButton
    ev_button = button if kind != QEvent.Type.MouseMove else Qt.MouseButton.NoButton
    QApplication.sendEvent(view, QMouseEvent(kind, p, view.mapToGlobal(p), ev_button,
                                             pressed, Qt.KeyboardModifier.NoModifier))


def drag(view, start, end, steps=4):
    mouse(view, QEvent.Type.MouseButtonPress, start)
    for i in range(1, steps + 1):
        t = i / steps
        mouse(view, QEvent.Type.MouseMove, (start[0] + (end[0] - start[0]) * t,
                                            start[1] + (end[1] - start[1]) * t))
    mouse(view, QEvent.Type.MouseButtonRelease, end)


def click(view, pos):
    mouse(view, QEvent.Type.MouseMove, pos, Qt.MouseButton.NoButton)
    mouse(view, QEvent.Type.MouseButtonPress, pos)
    mouse(view, QEvent.Type.MouseButtonRelease, pos)


def color(view, pos):
    """The colours drawn at a widget point and its 8 neighbours (lines are antialiased)."""
    img = view.grab().toImage()
    dpr = img.devicePixelRatio()
    out = []
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            c = img.pixelColor(round(pos[0] * dpr) + dx, round(pos[1] * dpr) + dy)
            out.append((c.red(), c.green(), c.blue()))
    return out


def is_yellow(colours) -> bool:
    """The tools' yellow (255, 210, 60) somewhere there; the grey image has r == g == b."""
    return any(r - b > 90 and g - b > 60 for r, g, b in colours)


def is_green(colours) -> bool:
    """Another system's graphics (120, 255, 140)."""
    return any(g - r > 60 and g - b > 50 for r, g, b in colours)


def test_length_by_mouse_is_calibrated_and_follows_rotation_and_flip(qtbot, make_window,
                                                                     tmp_path):
    win = make_window()
    view = open_and_wait(qtbot, win, [flat_image(tmp_path / "a.dcm", spacing=(0.2, 0.2))])
    assert not is_yellow(color(view, wpoint(view, 50, 60)))
    win.reading_tools.tool_actions[ms.LENGTH].trigger()
    drag(view, wpoint(view, 20, 60), wpoint(view, 80, 60))
    [ann] = view.marks.annotations
    assert ann.kind == ms.LENGTH
    assert ann.points[0] == pytest.approx((20, 60), abs=0.5)
    assert ann.points[1] == pytest.approx((80, 60), abs=0.5)
    # 60 px × 0.2 mm at the detector; the label says so.
    label = view.marks.measurement(ann).label
    assert label.endswith("mm at detector") and float(label.split()[0]) == pytest.approx(
        12.0, abs=0.2)
    # The line is drawn where the image point is, after rotation and flip too.
    assert is_yellow(color(view, wpoint(view, 50, 60)))
    before = wpoint(view, 50, 60)
    win._rotate(90)
    after = wpoint(view, 50, 60)
    assert abs(after[0] - before[0]) + abs(after[1] - before[1]) > 20
    assert is_yellow(color(view, after))
    assert not is_yellow(color(view, before))
    win._flip(True)
    assert is_yellow(color(view, wpoint(view, 50, 60)))
    # The status bar gives the calibration.
    mouse(view, QEvent.Type.MouseMove, wpoint(view, 10, 10), Qt.MouseButton.NoButton)
    assert "0.2 mm/px (mm at detector)" in win.cursor_label.text()


def test_angle_cobb_handles_undo_and_delete(qtbot, make_window, tmp_path):
    win = make_window()
    view = open_and_wait(qtbot, win, [flat_image(tmp_path / "a.dcm")])
    tools = win.reading_tools
    # Angle: drag the first arm to the vertex, then click the second arm's end.
    tools.tool_actions[ms.ANGLE].trigger()
    drag(view, wpoint(view, 100, 30), wpoint(view, 40, 30))
    click(view, wpoint(view, 40, 90))
    [angle] = view.marks.annotations
    assert angle.kind == ms.ANGLE
    assert view.marks.measurement(angle).value == pytest.approx(90, abs=1.5)
    # Cobb: two lines, drawn one after the other.
    tools.tool_actions[ms.COBB].trigger()
    drag(view, wpoint(view, 20, 100), wpoint(view, 140, 100))
    drag(view, wpoint(view, 20, 110), wpoint(view, 140, 110 - 120 * np.tan(np.radians(20))))
    cobb = view.marks.annotations.items[-1]
    assert cobb.kind == ms.COBB
    assert view.marks.measurement(cobb).value == pytest.approx(20, abs=1.5)
    assert view.marks.measurement(cobb).label.startswith("Cobb ")
    # In navigate mode an end point can be dragged without touching window/level.
    tools.tool_actions[None].trigger()
    window_before = view.current_window()
    drag(view, wpoint(view, 40, 90), wpoint(view, 40, 110))
    moved = view.marks.annotations.get(angle.id)
    assert moved.points[2] == pytest.approx((40, 110), abs=0.6)
    assert view.current_window() == window_before
    # Undo puts it back; redo again; delete removes the selected one.
    tools.act_undo.trigger()
    assert view.marks.annotations.get(angle.id).points[2] == pytest.approx((40, 90), abs=0.6)
    tools.act_redo.trigger()
    assert view.marks.annotations.get(angle.id).points[2] == pytest.approx((40, 110),
                                                                           abs=0.6)
    assert view.marks.selected == angle.id
    tools.act_delete.trigger()
    assert [a.kind for a in view.marks.annotations] == [ms.COBB]
    # A plain drag on the image (not on a measurement) is still window/level.
    drag(view, wpoint(view, 120, 20), wpoint(view, 150, 40))
    assert view.current_window() != window_before


def test_arrow_calibration_roi_and_key_image(qtbot, make_window, tmp_path):
    win = make_window()
    view = open_and_wait(qtbot, win, [flat_image(tmp_path / "a.dcm")])
    tools = win.reading_tools
    tools.ask_text = lambda _title, _label: "fracture"
    tools.ask_length = lambda: 30.0
    tools.tool_actions[ms.ARROW].trigger()
    drag(view, wpoint(view, 60, 60), wpoint(view, 100, 90))
    arrow = view.marks.annotations.items[-1]
    assert (arrow.kind, arrow.text) == (ms.ARROW, "fracture")
    # Calibrate: a 60 px line is 30 mm → 0.5 mm per pixel, "calibrated by user".
    tools.tool_actions[ms.CALIBRATION].trigger()
    drag(view, wpoint(view, 10, 10), wpoint(view, 70, 10))
    cal = view.marks.calibration()
    assert cal.basis == "mm, calibrated by user"
    assert cal.spacing[0] == pytest.approx(0.5, rel=0.02)
    # Rectangle ROI: statistics of the flat image (1500 everywhere).
    tools.tool_actions[ms.RECTANGLE].trigger()
    drag(view, wpoint(view, 100, 20), wpoint(view, 140, 50))
    roi = view.marks.measurement(view.marks.annotations.items[-1])
    assert roi.stats.mean == 1500 and roi.stats.sd == 0
    assert "mm²" in roi.label and "calibrated by user" in roi.label
    # Key image mark, in the session's reading store.
    tools.act_key.trigger()
    assert win.session.reading.is_key(view.ref) and view.marks.key_image
    # Help lists the tools' shortcuts.
    rows = dict(win.shortcut_rows())
    assert rows["Length"] == "D" and rows["Cobb angle (two lines)"] == "B"


def test_reading_is_saved_as_gsps_and_reloaded(qtbot, make_window, tmp_path):
    folder = tmp_path / "study"
    image = flat_image(folder / "a.dcm", spacing=(0.2, 0.2))
    win = make_window()
    view = open_and_wait(qtbot, win, [folder])
    win.reading_tools.autosave = False
    view.marks.add(ms.Annotation(ms.LENGTH, ((10, 10), (70, 10))))
    chosen = Window(1200, 900)
    view.state.set_window(chosen, "Custom")
    win._rotate(90)
    [path] = win.reading_tools.save_all()
    assert path.parent == folder and path.exists()
    _close(win)

    # A new window (a new session) opening the folder gets it all back.
    win2 = make_window()
    view2 = open_and_wait(qtbot, win2, [folder])
    assert image.exists()
    [ann] = view2.marks.annotations
    assert (ann.kind, ann.points) == (ms.LENGTH, ((10.0, 10.0), (70.0, 10.0)))
    assert view2.current_window().center == chosen.center
    assert view2.current_window().width == chosen.width
    assert view2.state.rotation == 90
    assert is_yellow(color(view2, wpoint(view2, 40, 10)))


def test_foreign_gsps_is_applied(qtbot, make_window, tmp_path):
    folder = tmp_path / "study"
    image = flat_image(folder / "a.dcm")
    _foreign_gsps(tmp_path, image)
    win = make_window()
    view = open_and_wait(qtbot, win, [folder])
    w = view.current_window()
    assert (w.center, w.width) == (2000, 500)
    assert view.state.rotation == 180
    kinds = sorted(a.kind for a in view.marks.annotations)
    assert kinds == [ms.GRAPHIC, ms.GRAPHIC, ms.TEXT]
    # The other system's polyline (image row 10, columns 10..40) is drawn, in green.
    assert is_green(color(view, wpoint(view, 25, 10)))


def test_report_has_key_images_and_the_measurement_table(qtbot, make_window, tmp_path):
    from viewer.qt.report_pdf import render_pdf, window_report_data

    folder = tmp_path / "study"
    flat_image(folder / "a.dcm", spacing=(0.2, 0.2))
    flat_image(folder / "b.dcm", spacing=(0.2, 0.2))
    win = make_window()
    win.set_layout((1, 2))
    open_and_wait(qtbot, win, [folder])
    win.reading_tools.autosave = False
    first, second = win.grid.views
    first.marks.add(ms.Annotation(ms.LENGTH, ((10, 60), (110, 60))))
    win.grid.set_active(first)
    win._rotate(90)
    win.grid.set_active(second)
    win.reading_tools.act_key.trigger()
    data = window_report_data(win)
    assert data.measurements == [(first.ref.name, "Length", "20.0 mm at detector")]
    im1, im2 = data.images
    assert (im1.key, im2.key) == (False, True)
    # The measured image is drawn with its line (yellow over the grey), as displayed.
    assert im1.marked is not None and im1.marked.shape[:2] == im1.displayed.shape[:2]
    r, g, b = (im1.marked[..., i].astype(int) for i in range(3))
    assert ((r - b > 90) & (g - b > 60)).any()
    assert im2.marked is not None  # the key image, marked "KEY IMAGE"
    _pdf, result = render_pdf(data)
    records = {(p.kind, p.number) for p in result.images}
    assert ("marked", 1) in records and ("key", 2) in records


def test_changes_are_saved_when_the_window_closes(qtbot, make_window, tmp_path):
    # A measurement drawn and the window closed before the autosave delay: written anyway.
    folder = tmp_path / "study"
    flat_image(folder / "a.dcm")
    win = make_window()
    view = open_and_wait(qtbot, win, [folder])
    win.reading_tools.tool_actions[ms.LENGTH].trigger()
    drag(view, wpoint(view, 20, 20), wpoint(view, 90, 20))
    assert win.reading_tools._dirty_timer.isActive()
    _close(win)
    [saved] = folder.glob("radview-pr-*.dcm")
    from viewer.gsps import read_gsps

    state = read_gsps(saved)
    [ann] = next(iter(state.annotations.values()))
    assert ann.kind == ms.LENGTH


def test_no_two_actions_share_a_shortcut(make_window):
    # An ambiguous shortcut does nothing in Qt: the reading, frame and comparison tools
    # must not take a key another action has.
    win = make_window()
    seen: dict[str, str] = {}
    for act in win.actions():
        for seq in act.shortcuts():
            key = seq.toString()
            assert key not in seen, f"{key}: {seen.get(key)} and {act.text()}"
            seen[key] = act.text()
    for key in ("D", "G", "B", "E", "Q", "T", "K", "Ctrl+Z", "Ctrl+S", "Ctrl+P", "Right",
                "Space"):
        assert key in seen, key


def test_measurements_survive_switching_studies(qtbot, make_window, tmp_path):
    # The store keeps each image's measurements for the session; views that were
    # replaced stop listening (no callback into a deleted widget).
    a = flat_image(tmp_path / "a" / "a.dcm", extra={"StudyInstanceUID": generate_uid()})
    b = flat_image(tmp_path / "b" / "b.dcm", extra={"StudyInstanceUID": generate_uid()})
    win = make_window()
    win.reading_tools.autosave = False
    view = open_and_wait(qtbot, win, [a.parent, b.parent])
    first = win.session.study
    view.marks.add(ms.Annotation(ms.LENGTH, ((1, 1), (30, 1))))
    other = next(s for s in win.result.studies if s is not first)
    with qtbot.waitSignal(win.study_loaded, timeout=30000):
        win.open_study(other)
    QApplication.processEvents()
    with qtbot.waitSignal(win.study_loaded, timeout=30000):
        win.open_study(first)
    QApplication.processEvents()
    view = win.grid.views[0]
    assert [x.kind for x in view.marks.annotations] == [ms.LENGTH]
    view.marks.add(ms.Annotation(ms.ANGLE, ((1, 1), (10, 10), (20, 1))))
    assert len(view.marks.annotations) == 2
