"""The main window's DICOM actions with real peers (pytest-qt, offscreen): a study sent by
DCMTK's storescu to the window's inbox opens; a scored study is exported as SR + SCs."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pydicom
import pytest
from dicom_peers import free_port, storescu
from PySide6.QtCore import QSettings
from test_gui import write_gradient
from test_gui_ai import bundle_dir, open_ai_window  # noqa: F401 - bundle_dir is a fixture

from viewer.qt.pacs import LISTEN_KEY


@pytest.fixture
def window(qtbot, tmp_path, bundle_dir, monkeypatch):  # noqa: F811 - the fixture
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    port = free_port()
    settings.setValue(LISTEN_KEY, json.dumps({"ae_title": "RADVIEW", "host": "127.0.0.1",
                                              "port": port, "inbox": str(tmp_path / "inbox"),
                                              "accepted_calling": [], "auto_analyse": False}))
    win = open_ai_window(qtbot, tmp_path, bundle_dir, monkeypatch, settings)
    yield win, port, tmp_path
    win.close()


def test_a_study_sent_to_the_inbox_opens_in_the_window(qtbot, window):
    # Nothing open: the received study is opened (and scored: automatic analysis is on).
    win, port, tmp = window
    src = tmp / "src"
    src.mkdir()
    files = [write_gradient(src / f"{i}.dcm", i + 1) for i in range(2)]
    win.dicom.act_receive.setChecked(True)
    qtbot.waitUntil(lambda: win.dicom.receiver.running, timeout=10000)
    sent: dict = {}
    thread = threading.Thread(target=lambda: sent.update(r=storescu(port, files)))
    thread.start()
    qtbot.waitUntil(lambda: win.session.loaded and len(win.session.images) == 2,
                    timeout=60000)
    thread.join(60)
    assert sent["r"].returncode == 0, sent["r"].stderr
    received = sorted((tmp / "inbox").rglob("*.dcm"))
    assert len(received) == 2  # written into the inbox by study
    assert win.browser.item_for(win.session.study) is not None
    win.dicom.act_receive.setChecked(False)
    qtbot.waitUntil(lambda: not win.dicom.receiver.running, timeout=10000)


def test_export_ai_result_as_dicom_from_the_window(qtbot, window):
    win, _port, tmp = window
    src = tmp / "study"
    src.mkdir()
    for i in range(2):
        write_gradient(src / f"{i}.dcm", i + 1)
    with qtbot.waitSignal(win.ai_finished, timeout=60000):
        win.open_paths([str(src)])
    assert win.dicom.act_export.isEnabled()  # a scored study can be exported
    out = tmp / "out"
    with qtbot.waitSignal(win.dicom.exporter.exported, timeout=60000) as blocker:
        assert win.dicom.export(out)
    paths = [Path(p) for p in blocker.args[0]]
    assert len(paths) == 3  # one SR, one secondary capture per view
    sr = pydicom.dcmread(paths[0])
    assert sr.Modality == "SR" and sr.StudyInstanceUID == win.session.study.uid
    # the others are Secondary Capture images (SOP classes 1.2.840.10008.5.1.4.1.1.7[.x])
    assert all(str(pydicom.dcmread(p).SOPClassUID).startswith("1.2.840.10008.5.1.4.1.1.7")
               for p in paths[1:])
