"""GUI tests (pytest-qt, offscreen): what is drawn is checked by probing pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from dicom_factory import make_dicom
from pydicom.uid import generate_uid
from PySide6.QtCore import QEvent, QMimeData, QPoint, QPointF, QSettings, Qt, QUrl
from PySide6.QtGui import QDropEvent, QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QApplication

from viewer.qt.main_window import MainWindow

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "resources" / "samples" / "upper_limb_dicom"
STUDY_UID = generate_uid()


def write_gradient(path: Path, instance: int, *, rows=128, cols=160, corner=False,
                   study_uid=STUDY_UID) -> Path:
    """A 12-bit MONOCHROME2 DICOM with a left→right ramp 0..4095 and window 2048/4096.

    With ``corner`` a bright block marks the top-left corner (for orientation probes).
    """
    ramp = np.linspace(0, 4095, cols).round().astype(np.uint16)
    arr = np.tile(ramp, (rows, 1))
    if corner:
        arr[: rows // 4, : cols // 4] = 4095
        arr[: rows // 4, cols // 4: cols // 2] = 0
    return make_dicom(path, rows=rows, cols=cols, bits_stored=12, pixels=arr,
                      patient_name="TEST^GUI", patient_id="GUI-1", study_uid=study_uid,
                      series_uid=generate_uid(entropy_srcs=[study_uid, "series"]),
                      sop_uid=generate_uid(), instance_number=instance, modality="DX",
                      study_date="20240102", study_description="GUI TEST", body_part="HAND",
                      windows=[(2048, 4096)])


@pytest.fixture
def window(qtbot, tmp_path):
    """A main window with private settings; fails the test if top-level widgets leak."""
    before = {id(w) for w in QApplication.topLevelWidgets()}
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    win = MainWindow(settings)
    win.resize(1000, 700)
    win.show()
    qtbot.waitExposed(win)
    yield win
    win.close()
    win.deleteLater()
    QApplication.processEvents()
    QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    QApplication.processEvents()
    leaked = [w for w in QApplication.topLevelWidgets()
              if id(w) not in before and w.isVisible()]
    assert leaked == [], f"leaked windows: {leaked}"


def open_and_wait(qtbot, win: MainWindow, paths) -> None:
    with qtbot.waitSignal(win.study_loaded, timeout=30000):
        win.open_paths([str(p) for p in paths])
    QApplication.processEvents()


def probe(view, x: float, y: float) -> int:
    """Gray value drawn at widget position (x, y) of a view."""
    img = view.grab().toImage()
    dpr = img.devicePixelRatio()
    c = img.pixelColor(int(x * dpr), int(y * dpr))
    return c.red()


def image_point(view, ix: float, iy: float) -> tuple[float, float]:
    return view.state.to_widget((ix, iy), (view.width(), view.height()))


def send_drag(view, start, end, button=Qt.MouseButton.LeftButton, steps=5,
              modifiers=Qt.KeyboardModifier.NoModifier):
    def ev(kind, pos, buttons):
        p = QPointF(*pos)
        return QMouseEvent(kind, p, view.mapToGlobal(p), button if kind != QEvent.Type.MouseMove
                           else Qt.MouseButton.NoButton, buttons, modifiers)

    QApplication.sendEvent(view, ev(QEvent.Type.MouseButtonPress, start, button))
    for i in range(1, steps + 1):
        t = i / steps
        pos = (start[0] + (end[0] - start[0]) * t, start[1] + (end[1] - start[1]) * t)
        QApplication.sendEvent(view, ev(QEvent.Type.MouseMove, pos, button))
    QApplication.sendEvent(view, ev(QEvent.Type.MouseButtonRelease, end,
                                    Qt.MouseButton.NoButton))


@pytest.fixture
def gradient_study(tmp_path):
    folder = tmp_path / "study"
    folder.mkdir()
    for i in range(1, 5):
        write_gradient(folder / f"f{i}", i, corner=(i == 1))
    return folder


def test_sample_study_opens_with_every_view_drawn(qtbot, window):
    # The bundled sample (2 views) opens: both views decoded and visibly drawn.
    open_and_wait(qtbot, window, [SAMPLE])
    views = window.grid.views
    assert len(views) == 2
    for v in views:
        assert v.has_image and v.isVisible()
        img = v.grab().toImage()
        w, h = img.width(), img.height()
        values = {img.pixelColor(int(w * fx), int(h * fy)).red()
                  for fx in (0.3, 0.5, 0.7) for fy in (0.3, 0.5, 0.7)}
        assert len(values) > 2, "a view looks empty"
    assert "DEMO" in window.windowTitle() or "HAND" in window.windowTitle()


def test_views_are_laid_out_by_count_and_switchable(qtbot, window, gradient_study):
    # 4 images → 2×2 by count; 1×1 shows the active one; double-click maximises.
    open_and_wait(qtbot, window, [gradient_study])
    assert window.grid.current_layout() == (2, 2)
    assert len(window.grid.visible_views()) == 4
    window.set_layout((1, 2))
    assert len(window.grid.visible_views()) == 2
    window.set_layout(None)
    v = window.grid.views[3]
    QApplication.sendEvent(v, QMouseEvent(QEvent.Type.MouseButtonDblClick, QPointF(20, 20),
                                          v.mapToGlobal(QPointF(20, 20)),
                                          Qt.MouseButton.LeftButton, Qt.MouseButton.LeftButton,
                                          Qt.KeyboardModifier.NoModifier))
    assert window.grid.visible_views() == [v]
    window.grid.toggle_maximise(v)
    assert len(window.grid.visible_views()) == 4


def test_ramp_is_drawn_dark_to_bright(qtbot, window, gradient_study):
    # Window 2048/4096 over a 0..4095 ramp: left dark, middle mid-gray, right bright.
    open_and_wait(qtbot, window, [gradient_study])
    v = window.grid.views[1]
    left = probe(v, *image_point(v, 5, 64))
    mid = probe(v, *image_point(v, 80, 64))
    right = probe(v, *image_point(v, 154, 64))
    assert left < 20 and right > 235 and 100 < mid < 155


def test_wl_drag_changes_pixels_in_the_expected_direction(qtbot, window, gradient_study):
    # Dragging down raises the level → the same pixel gets darker; dragging right widens
    # the window → less contrast between two probes.
    open_and_wait(qtbot, window, [gradient_study])
    v = window.grid.views[1]
    window.grid.set_active(v)
    pa, pb = image_point(v, 60, 64), image_point(v, 100, 64)
    mid0 = probe(v, *image_point(v, 80, 64))
    c0 = v.current_window().center
    send_drag(v, (50, 50), (50, 110))
    assert v.current_window().center > c0
    assert probe(v, *image_point(v, 80, 64)) < mid0 - 10
    v.state.reset()
    contrast0 = probe(v, *pb) - probe(v, *pa)
    send_drag(v, (50, 50), (200, 50))
    contrast1 = probe(v, *pb) - probe(v, *pa)
    assert contrast1 < contrast0 - 5
    # The toolbar follows the active view's window.
    assert window.width_spin.value() == pytest.approx(v.current_window().width, abs=1)


def test_linked_wl_applies_to_every_view(qtbot, window, gradient_study):
    open_and_wait(qtbot, window, [gradient_study])
    window.act_linked.setChecked(True)
    a, b = window.grid.views[0], window.grid.views[1]
    window.grid.set_active(a)
    send_drag(a, (50, 50), (50, 100))
    assert b.current_window().center == pytest.approx(a.current_window().center)
    window.act_linked.setChecked(False)
    send_drag(a, (50, 50), (50, 100))
    assert b.current_window().center != pytest.approx(a.current_window().center)


def test_numeric_window_entry(qtbot, window, gradient_study):
    # Typing W/L: a narrow window at 1000 makes pixels above ~1100 white.
    open_and_wait(qtbot, window, [gradient_study])
    v = window.grid.active
    window.width_spin.setValue(200)
    window.center_spin.setValue(1000)
    assert v.current_window().width == 200 and v.current_window().center == 1000
    assert probe(v, *image_point(v, 60, 64)) > 250  # stored ≈ 1546 → above window


def test_invert_and_presets(qtbot, window, gradient_study):
    open_and_wait(qtbot, window, [gradient_study])
    v = window.grid.views[1]
    window.grid.set_active(v)
    pos = image_point(v, 20, 64)
    before = probe(v, *pos)
    window.act_invert.trigger()
    assert v.state.invert
    assert probe(v, *pos) == pytest.approx(255 - before, abs=2)
    window.act_invert.trigger()
    labels = [window.preset_combo.itemText(i) for i in range(window.preset_combo.count())]
    assert labels[-2:] == ["Automatic", "Full range"] and len(labels) == 3
    window._apply_preset_index(labels.index("Automatic"))
    assert v.current_label() == "Automatic"


def test_wheel_zooms_about_the_cursor(qtbot, window, gradient_study):
    # The image pixel under the cursor stays under it while zooming in.
    open_and_wait(qtbot, window, [gradient_study])
    v = window.grid.views[0]
    size = (v.width(), v.height())
    cursor = (v.width() * 0.7, v.height() * 0.4)
    q = v.state.to_image(cursor, size)
    zoom0 = v.state.effective_zoom(size)
    ev = QWheelEvent(QPointF(*cursor), v.mapToGlobal(QPointF(*cursor)), QPoint(0, 0),
                     QPoint(0, 240), Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                     Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(v, ev)
    assert v.state.effective_zoom(size) == pytest.approx(zoom0 * 2 ** 0.5)  # two notches
    assert v.state.to_image(cursor, size) == pytest.approx(q, abs=1e-6)


def test_rotate_and_flip_move_the_marked_corner(qtbot, window, gradient_study):
    # Image 1 has a white block at its top-left; after R it is drawn top-right.
    open_and_wait(qtbot, window, [gradient_study])
    v = window.grid.views[0]
    window.grid.set_active(v)
    w, h = v.state.image_size

    def corner_brightness():
        return probe(v, *image_point(v, w * 0.1, h * 0.1))

    def screen_probe(fx, fy):
        # Probe the screen position where the image's top-left region lands.
        return probe(v, fx, fy)

    tl = image_point(v, w * 0.1, h * 0.1)
    assert screen_probe(*tl) > 240
    window.act_rot_cw.trigger()
    x, y = image_point(v, w * 0.1, h * 0.1)
    assert x > v.width() / 2 and y < v.height() / 2  # now top-right on screen
    assert corner_brightness() > 240
    window.act_flip_h.trigger()
    x2, _ = image_point(v, w * 0.1, h * 0.1)
    assert x2 < v.width() / 2
    assert corner_brightness() > 240
    window.act_reset.trigger()
    assert v.state.rotation == 0 and not v.state.flip_h and not v.state.flip_v


def test_status_bar_shows_stored_and_modality_value(qtbot, window, gradient_study):
    open_and_wait(qtbot, window, [gradient_study])
    v = window.grid.views[1]
    x, y = image_point(v, 80, 64)
    QApplication.sendEvent(v, QMouseEvent(QEvent.Type.MouseMove, QPointF(x, y),
                                          v.mapToGlobal(QPointF(x, y)), Qt.MouseButton.NoButton,
                                          Qt.MouseButton.NoButton,
                                          Qt.KeyboardModifier.NoModifier))
    text = window.cursor_label.text()
    expected = int(np.linspace(0, 4095, 160).round()[80])
    assert "x 80" in text and "y 64" in text and f"stored {expected}" in text


def test_bad_file_is_reported_and_the_rest_opens(qtbot, window, gradient_study):
    # A garbage file and a truncated DICOM beside good ones: the good ones display and the
    # browser lists the bad ones with reasons.
    (gradient_study / "junk.dcm").write_text("not an image")
    bad = write_gradient(gradient_study / "trunc.dcm", 9)
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    open_and_wait(qtbot, window, [gradient_study])
    drawn = [v for v in window.grid.views if v.has_image]
    assert len(drawn) == 4
    assert window.browser.error_count >= 1
    texts = []
    root = window.browser.invisibleRootItem()

    def walk(item):
        for i in range(item.childCount()):
            texts.append(item.child(i).text(0))
            walk(item.child(i))

    walk(root)
    joined = "\n".join(texts)
    assert "junk.dcm" in joined and "trunc.dcm" in joined


def test_tag_browser_search(qtbot, window, gradient_study):
    open_and_wait(qtbot, window, [gradient_study])
    window.act_tags.trigger()
    dlg = window.tag_browser
    assert "WindowCenter" in dlg.visible_keywords()
    dlg.search.setText("0028,1051")
    assert dlg.visible_keywords() == ["WindowWidth"]
    dlg.search.setText("gui test")
    assert dlg.visible_keywords() == ["StudyDescription"]
    dlg.close()


def test_settings_are_remembered(qtbot, tmp_path, gradient_study):
    # Layout, theme, corner text and recent studies survive a restart.
    ini = str(tmp_path / "remember.ini")
    win = MainWindow(QSettings(ini, QSettings.Format.IniFormat))
    qtbot.addWidget(win)
    win.show()
    open_and_wait(qtbot, win, [gradient_study])
    win.set_layout((1, 2))
    win.set_theme("light")
    win.act_corner.setChecked(False)
    win.close()
    win2 = MainWindow(QSettings(ini, QSettings.Format.IniFormat))
    qtbot.addWidget(win2)
    assert win2.grid.layout_choice == (1, 2)
    assert win2.theme == "light"
    assert not win2.act_corner.isChecked()
    assert win2.recent() == [str(gradient_study)]
    win2.set_theme("dark")
    win2.close()


def test_drop_opens_paths(qtbot, window, gradient_study):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(gradient_study))])
    ev = QDropEvent(QPointF(100, 100), Qt.DropAction.CopyAction, mime,
                    Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(window.study_loaded, timeout=30000):
        window.dropEvent(ev)
    assert len(window.grid.views) == 4


def test_shortcuts_are_listed_in_help(qtbot, window):
    rows = dict(window.shortcut_rows())
    for name in ("Invert", "Fit to view", "Rotate 90° clockwise", "Reset view",
                 "DICOM tags…"):
        assert name in rows
    window.act_shortcuts.trigger()
    dlg = window.shortcuts_dialog
    assert dlg.isVisible()
    dlg.close()


def test_corner_text_names_patient_and_window(qtbot, window, gradient_study):
    open_and_wait(qtbot, window, [gradient_study])
    texts = window.grid.views[0].corner_texts()
    assert "TEST GUI" in texts["tl"] and "GUI-1" in texts["tl"]
    assert "2024-01-02" in texts["tr"]
    assert any(line.startswith("W 4096  L 2048") for line in texts["br"])


def test_opening_another_study_drops_stale_results(qtbot, window, gradient_study, tmp_path):
    # Open one study and at once another: only the second one's views remain.
    other = tmp_path / "other"
    other.mkdir()
    write_gradient(other / "a", 1, study_uid=generate_uid())
    window.open_paths([str(gradient_study)])
    with qtbot.waitSignal(window.study_loaded, timeout=30000):
        window.open_paths([str(other)])
    window.wait_idle()
    assert len(window.grid.views) == 1
    assert window.grid.views[0].ref.path.parent == other


@pytest.mark.parametrize("env, expected", [
    # No display at all: a clear message instead of Qt's abort.
    ({}, "no display"),
    # Offscreen or Wayland need no X libraries.
    ({"QT_QPA_PLATFORM": "offscreen"}, None),
    ({"WAYLAND_DISPLAY": "wayland-0"}, None),
])
def test_display_problem(env, expected):
    from viewer.qt.app import display_problem

    problem = display_problem(env)
    assert (problem is None) if expected is None else (expected in problem)


def test_about_credits_fracatlas(window):
    # CC BY 4.0 requires attribution wherever derived images or weights are shown.
    text = window.about_text()
    assert "FracAtlas" in text and "CC BY 4.0" in text and "Research use only" in text
