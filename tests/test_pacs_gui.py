"""PACS widgets (viewer.qt.pacs) against a real Orthanc and DCMTK's storescu: the query
dialog finds and retrieves a study, the receiver fills the inbox panel with SR findings,
the C-ECHO test and errors never block the GUI thread.

``RADVIEW_SCREENSHOTS=DIR`` saves the query dialog and the inbox panel as PNGs there
(how docs/pacs_query.png and docs/pacs_inbox.png were made)."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest
from dicom_peers import free_port, start_orthanc, stop_orthanc, storescu
from PySide6.QtCore import QSettings

from viewer.dicomnet import ListenSettings, PacsNode
from viewer.qt.pacs import (
    InboxPanel,
    NodeSettingsDialog,
    QueryDialog,
    Receiver,
    ResultExporter,
    SendDialog,
    load_listen,
    load_nodes,
    save_listen,
    save_nodes,
)

STUDY = "1.2.826.0.1.3680043.8.498.7701.16"


def _shot(widget, name: str) -> None:
    folder = os.environ.get("RADVIEW_SCREENSHOTS")
    if folder:
        widget.grab().save(str(Path(folder) / name))


def _study(folder: Path, n: int = 2) -> list[Path]:
    import numpy as np
    from dicom_factory import make_dicom

    return [make_dicom(folder / f"IM{i + 1}.dcm", rows=128, cols=96, body_part="HAND",
                       instance_number=i + 1, study_uid=STUDY, series_uid=STUDY + ".1",
                       patient_id="RV-GUI-001", patient_name="Doe^Jane",
                       study_description="XR HAND 2 views", view_position=("PA", "LAT")[i],
                       laterality="L", windows=[(2048, 4096)],
                       pixels=(np.arange(128 * 96).reshape(128, 96) * (i + 5)) % 4096)
            for i in range(n)]


@pytest.fixture(scope="module")
def pacs(tmp_path_factory):
    root = tmp_path_factory.mktemp("gui-pacs")
    scp_port = free_port()
    server = start_orthanc(root / "orthanc", {"radview": ("RADVIEW", "127.0.0.1", scp_port)})
    assert storescu(server.dicom_port, _study(root / "src"), called="ORTHANC").returncode == 0
    yield server, scp_port, root
    stop_orthanc(server)


@pytest.fixture
def settings(tmp_path):
    s = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    yield s
    s.sync()


def test_settings_round_trip(settings, tmp_path):
    nodes = [PacsNode("orthanc", "ORTHANC", "127.0.0.1", 4242, "http://x/dicom-web")]
    save_nodes(settings, nodes)
    listen = ListenSettings("ME", "127.0.0.1", 11113, str(tmp_path), ["A", "B"], True)
    save_listen(settings, listen)
    assert load_nodes(settings) == nodes and load_listen(settings) == listen


def test_query_dialog_finds_and_moves_a_study(qtbot, pacs, settings, tmp_path):
    server, scp_port, _ = pacs
    save_nodes(settings, [PacsNode("Orthanc", "ORTHANC", "127.0.0.1", server.dicom_port,
                                   server.dicomweb)])
    save_listen(settings, ListenSettings(port=scp_port, inbox=str(tmp_path / "inbox")))
    receiver = Receiver()
    dialog = QueryDialog(settings, receiver)
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.patient_id.setText("RV-GUI-001")
    dialog.search_button.click()
    assert not dialog.search_button.isEnabled()  # the call runs on a worker thread
    qtbot.waitUntil(lambda: dialog.table.rowCount() == 1, timeout=30000)
    assert dialog.table.item(0, 0).text() == "Doe Jane"
    assert dialog.table.item(0, 6).text() == "2"
    _shot(dialog, "pacs_query.png")
    dialog.method.setCurrentText("C-MOVE")
    started = time.perf_counter()
    with qtbot.waitSignal(dialog.retrieved, timeout=60000) as blocker:
        dialog.retrieve_button.click()
    elapsed = time.perf_counter() - started
    folder = Path(blocker.args[0])
    assert len(list(folder.glob("*.dcm"))) == 2 and elapsed < 30
    assert "Retrieved 2 instances" in dialog.status.text()
    receiver.stop()


def test_query_dialog_c_get_and_dicomweb(qtbot, pacs, settings, tmp_path):
    server, _, _ = pacs
    save_nodes(settings, [PacsNode("Orthanc", "ORTHANC", "127.0.0.1", server.dicom_port,
                                   server.dicomweb)])
    save_listen(settings, ListenSettings(port=free_port(), inbox=str(tmp_path / "inbox")))
    dialog = QueryDialog(settings, None)
    qtbot.addWidget(dialog)
    dialog.protocol.setCurrentIndex(1)  # QIDO-RS
    dialog.search_button.click()
    qtbot.waitUntil(lambda: dialog.table.rowCount() >= 1, timeout=30000)
    for method in ("C-GET", "WADO-RS"):
        dialog.method.setCurrentText(method)
        with qtbot.waitSignal(dialog.retrieved, timeout=60000):
            dialog.retrieve_button.click()


def test_query_errors_name_the_node_and_never_block(qtbot, settings):
    with socket.socket() as silent:  # accepts TCP, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        save_nodes(settings, [PacsNode("Mute", "MUTE", "127.0.0.1", silent.getsockname()[1])])
        dialog = QueryDialog(settings, None)
        qtbot.addWidget(dialog)
        dialog.timeout = 2.0
        started = time.perf_counter()
        dialog.search_button.click()
        assert time.perf_counter() - started < 0.5  # returned at once: the GUI is free
        qtbot.waitUntil(lambda: dialog.search_button.isEnabled(), timeout=20000)
    assert dialog.status.text().startswith("Mute (MUTE@127.0.0.1:")
    assert "timeout" in dialog.status.text()


def test_node_settings_echo(qtbot, settings, tmp_path):
    receiver = Receiver()
    assert receiver.start(ListenSettings(port=0, inbox=str(tmp_path / "inbox")))
    port = receiver.server.port
    save_nodes(settings, [PacsNode("self", "RADVIEW", "127.0.0.1", port),
                          PacsNode("nobody", "X", "127.0.0.1", free_port())])
    dialog = NodeSettingsDialog(settings)
    qtbot.addWidget(dialog)
    dialog.table.setCurrentCell(0, 0)
    dialog.test_button.click()
    qtbot.waitUntil(lambda: "C-ECHO OK" in dialog.status.text(), timeout=20000)
    dialog.table.setCurrentCell(1, 0)
    dialog.test_button.click()
    qtbot.waitUntil(lambda: "connection refused" in dialog.status.text(), timeout=20000)
    assert dialog.status.text().startswith("nobody (X@127.0.0.1:")
    receiver.stop()


def test_received_study_appears_with_its_sr_findings(qtbot, settings, tmp_path):
    """storescu sends a study, then radview's SR + SCs for it: the inbox panel lists the
    study as it arrives and shows the SR's findings on its views (never the SCs)."""
    from bundle_factory import make_bundle

    from inference.engine import Engine
    from viewer import loader
    from viewer.analysis import build_inputs
    from viewer.dicom_results import outcome_from, write_results

    files = _study(tmp_path / "src")
    study = loader.scan([tmp_path / "src"]).studies[0]
    inputs, _ = build_inputs(study)
    bundle = make_bundle(tmp_path / "bundle", name="random-test-weights", version="0.0.1")
    result = Engine(bundle, "cpu").analyze(inputs, cams=True)
    outputs = write_results(outcome_from(study, inputs, result, bundle), tmp_path / "out")

    receiver = Receiver()
    assert receiver.start(ListenSettings(port=0, inbox=str(tmp_path / "inbox")))
    panel = InboxPanel()
    qtbot.addWidget(panel)
    panel.resize(760, 260)
    panel.show()
    receiver.study_received.connect(panel.add_study)
    with qtbot.waitSignal(receiver.study_received, timeout=30000):
        assert storescu(receiver.server.port, files).returncode == 0
    qtbot.waitUntil(lambda: panel.tree.topLevelItemCount() == 1, timeout=30000)
    assert panel.tree.topLevelItem(0).text(2) == "not analysed"
    with qtbot.waitSignal(receiver.study_received, timeout=30000):
        # -R: propose exactly the files' classes (Comprehensive 3D SR is not in its defaults)
        assert storescu(receiver.server.port, outputs, extra=("-R",)).returncode == 0
    item = panel.tree.topLevelItem(0)
    qtbot.waitUntil(lambda: item.text(2).startswith("AI (SR"), timeout=30000)
    assert item.text(1) == "2" and item.childCount() == 2  # captures are not views
    assert "research use only" in item.text(2)
    assert all(item.child(i).text(2).split(" (")[0] in ("abnormal", "normal")
               for i in range(2))
    _shot(panel, "pacs_inbox.png")
    receiver.stop()


def test_send_dialog_c_store(qtbot, settings, tmp_path):
    receiver = Receiver()
    assert receiver.start(ListenSettings(port=0, inbox=str(tmp_path / "inbox")))
    save_nodes(settings, [PacsNode("self", "RADVIEW", "127.0.0.1", receiver.server.port)])
    files = _study(tmp_path / "src")
    dialog = SendDialog(settings, files)
    qtbot.addWidget(dialog)
    dialog.send_button.click()
    qtbot.waitUntil(lambda: dialog.status.text().startswith("Sent 2 of 2"), timeout=30000)
    receiver.stop()


def test_receiver_reports_a_busy_port(qtbot, tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        receiver = Receiver()
        with qtbot.waitSignal(receiver.state_changed) as blocker:
            ok = receiver.start(ListenSettings(port=busy.getsockname()[1],
                                               inbox=str(tmp_path)))
    assert not ok and blocker.args[0] is False
    assert "cannot listen on 127.0.0.1:" in blocker.args[1]


def test_result_exporter_writes_sr_and_captures_off_the_gui_thread(qtbot, tmp_path):
    from bundle_factory import make_bundle

    from inference.engine import Engine
    from viewer import loader
    from viewer.analysis import build_inputs

    _study(tmp_path / "src")
    study = loader.scan([tmp_path / "src"]).studies[0]
    bundle = make_bundle(tmp_path / "bundle")
    result = Engine(bundle, "cpu").analyze(build_inputs(study)[0], cams=True)
    exporter = ResultExporter()
    with qtbot.waitSignal(exporter.exported, timeout=60000) as blocker:
        exporter.export(study, result, bundle, tmp_path / "out")
    assert [Path(p).name[:3] for p in blocker.args[0]] == ["SR_", "SC_", "SC_"]
    with qtbot.waitSignal(exporter.failed, timeout=60000) as blocker:
        exporter.export(study, result, bundle, tmp_path / "src" / "IM1.dcm")  # a file
    assert "Error" in blocker.args[0] or "exists" in blocker.args[0]
