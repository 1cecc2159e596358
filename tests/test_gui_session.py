"""The study-switch defect through the real window and browser (pytest-qt, offscreen).

Reported twice: double-clicking another study while one was still decoding made the new
study "loaded" before its images arrived ("0 of 3 image(s) shown; 3 file(s) could not be
shown"), scored a partial study and enabled report export on it. Decoding is slowed down
here so the switch always lands mid-decode.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from dicom_factory import make_dicom
from pydicom.uid import generate_uid
from PySide6.QtCore import QSettings, Qt
from PySide6.QtTest import QTest

from viewer import pixels
from viewer.qt.main_window import MainWindow


def _study(folder, n: int, tag: str, description: str) -> None:
    uid = generate_uid(entropy_srcs=[tag])
    for i in range(n):
        ramp = np.tile(np.linspace(0, 4095, 96).astype(np.uint16), (64, 1))
        make_dicom(folder / f"{tag}_{i}.dcm", rows=64, cols=96, pixels=ramp, study_uid=uid,
                   series_uid=generate_uid(entropy_srcs=[tag, "s"]), sop_uid=generate_uid(),
                   instance_number=i + 1, modality="DX", patient_id="P-1",
                   study_description=description, study_date="2024010" + str(n))


@pytest.fixture
def slow_window(qtbot, tmp_path, monkeypatch):
    _study(tmp_path, 3, "A", "SLOW STUDY")
    _study(tmp_path, 2, "B", "SECOND STUDY")
    real = pixels.decode

    def slow_decode(ref, *args, **kwargs):
        if ref.path.name.startswith("A_"):
            time.sleep(0.6)  # like a large JPEG 2000 film
        return real(ref, *args, **kwargs)

    monkeypatch.setattr(pixels, "decode", slow_decode)
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    win = MainWindow(settings, discover=False)
    win.resize(1200, 800)
    win.show()
    qtbot.waitExposed(win)
    yield win, tmp_path
    win.close()


def test_double_click_another_study_while_one_decodes(qtbot, slow_window):
    win, folder = slow_window
    loaded: list = []
    win.study_loaded.connect(loaded.append)
    with qtbot.waitSignal(win.scan_finished, timeout=20000):
        win.open_paths([str(folder)])
    first = next(st for st in win.result.studies if len(st.images) == 3)
    second = next(st for st in win.result.studies if st is not first)
    win.open_study(first)  # the slow study (no-op when it is the one already opening)
    qtbot.waitUntil(lambda: win.study is first and len(win.grid.views) == 3, timeout=20000)
    assert len(second.images) == 2 and first not in loaded  # precondition: mid-decode
    loaded.clear()
    item = win.browser.item_for(second)
    win.browser.scrollToItem(item)
    rect = win.browser.visualItemRect(item)
    assert rect.isValid(), "the second study's row is not visible in the browser"
    qtbot.wait(50)
    # A user's double-click: QTest's mouseDClick sends only the second press, so the first
    # click is sent before it.
    for send in (QTest.mouseClick, QTest.mouseDClick):
        send(win.browser.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
             rect.center())
    # Mid-decode the new study is not "loaded" and cannot be exported yet.
    assert win.study is second
    assert loaded == [] or loaded[-1] is not second
    assert not win.act_export_report.isEnabled()
    qtbot.waitUntil(lambda: bool(loaded) and loaded[-1] is second, timeout=20000)
    assert win.wait_idle(20000)
    assert loaded.count(second) == 1  # loaded exactly once
    assert first not in loaded  # the abandoned study never reports "loaded"
    assert all(v.has_image for v in win.grid.views) and len(win.grid.views) == 2
    assert "2 of 2 image(s) shown" in win.statusBar().currentMessage()
    assert win.act_export_report.isEnabled()
    # A later switch back still works (cancellation keeps working).
    win.open_study(first)
    qtbot.waitUntil(lambda: loaded[-1] is first, timeout=30000)
    assert all(v.has_image for v in win.grid.views) and len(win.grid.views) == 3
