"""The main window's DICOM network and DICOM-result actions (issue 15).

:class:`DicomActions` adds to a :class:`~viewer.qt.main_window.MainWindow`:

* File ▸ Receive DICOM (a switch): radview's Storage SCP inbox
  (:class:`viewer.qt.pacs.Receiver`); every received study appears in the study browser
  and in the "DICOM inbox" dock as it arrives, and is opened (and so analysed, when
  automatic analysis is on) when no study is open or the receiver's *analyse* setting is
  set;
* File ▸ Query PACS… (Ctrl+Shift+Q): C-FIND/C-MOVE/C-GET or DICOMweb, the retrieved study
  opens; File ▸ DICOM nodes…: the PACS nodes and the receiver's settings;
* File ▸ Export AI result as DICOM…: the TID 1500 SR and one secondary capture per view,
  written on a worker thread, then offered for sending to a node;
* the findings of radview SRs found by a scan, shown on their source images ("from SR").

All network work runs on worker threads (:mod:`viewer.qt.pacs`); errors name the node and
the reason in the status bar.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget, QFileDialog

from viewer.model import LoadResult, Study

log = logging.getLogger(__name__)


class DicomActions:
    """DICOM in/out for one main window (create after the window's own set-up)."""

    def __init__(self, window) -> None:
        from viewer.qt.pacs import InboxPanel, Receiver, ResultExporter

        self.win = window
        self.session = window.session
        self.settings: QSettings = window.settings or QSettings()
        self.receiver = Receiver(window)
        self.exporter = ResultExporter(window)
        self.inbox = InboxPanel(window)
        self.findings: dict = {}
        self.query_dialog = None
        self.send_dialog = None

        self.act_receive = QAction("&Receive DICOM (storage inbox)", window, checkable=True)
        self.act_receive.setStatusTip("Listen for DICOM C-STORE from other systems "
                                      "(127.0.0.1 by default; File ▸ DICOM nodes…)")
        self.act_receive.toggled.connect(self._on_receive_toggled)
        self.act_query = QAction("&Query PACS…", window)
        self.act_query.setShortcut(QKeySequence("Ctrl+Shift+Q"))
        self.act_query.triggered.connect(self.open_query)
        self.act_nodes = QAction("DICOM &nodes…", window)
        self.act_nodes.triggered.connect(self.edit_nodes)
        self.act_export = QAction("Export AI result as &DICOM…", window)
        self.act_export.setStatusTip("Write the study's AI result as a DICOM SR and "
                                     "secondary captures (research use only)")
        self.act_export.triggered.connect(self.export_dialog)
        self.act_export.setEnabled(False)
        for act in (self.act_receive, self.act_query, self.act_nodes, self.act_export):
            window.addAction(act)

        self.receiver.state_changed.connect(self._on_receiver_state)
        self.receiver.study_received.connect(self._on_study_received)
        self.exporter.exported.connect(self._on_exported)
        self.exporter.failed.connect(lambda m: window.show_error(f"DICOM export failed: {m}"))
        self.inbox.open_requested.connect(lambda folder: window.open_paths([folder]))

        ev = self.session.events
        ev.scan_finished.connect(self._on_scan_finished)
        ev.image_decoded.connect(self._on_image_decoded)
        ev.study_opened.connect(lambda _s: self.act_export.setEnabled(False))
        ev.ai_finished.connect(lambda st: self.act_export.setEnabled(
            bool(st.result is not None and st.result.supported)))

    def install(self) -> None:
        """Menu entries (File) and the inbox dock."""
        mb = self.win.menuBar()
        file_menu = next((m for m in mb.findChildren(type(self.win.recent_menu))
                          if m.title() == "&File"), None)
        if file_menu is not None:
            before = self.win.act_quit
            for act in (self.act_export, None, self.act_receive, self.act_query,
                        self.act_nodes, None):
                if act is None:
                    file_menu.insertSeparator(before)
                else:
                    file_menu.insertAction(before, act)
        dock = QDockWidget("DICOM inbox", self.win)
        dock.setObjectName("inbox_dock")
        dock.setWidget(self.inbox)
        self.win.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, dock)
        dock.hide()
        self.dock = dock

    def shutdown(self) -> None:
        self.receiver.stop()

    # -- receiving ----------------------------------------------------------------------
    def _on_receive_toggled(self, on: bool) -> None:
        from viewer.qt.pacs import load_listen

        if on and not self.receiver.running:
            self.receiver.start(load_listen(self.settings))
            self.dock.show()
        elif not on and self.receiver.running:
            self.receiver.stop()

    def _on_receiver_state(self, running: bool, message: str) -> None:
        self.act_receive.blockSignals(True)
        self.act_receive.setChecked(running)
        self.act_receive.blockSignals(False)
        if message:
            self.win.statusBar().showMessage(message, 15000)

    def _on_study_received(self, study_uid: str, folder: str) -> None:
        self.inbox.add_study(study_uid, folder)
        analyse = bool(getattr(self.receiver.settings, "auto_analyse", False))
        if self.session.study is None or (analyse and not self.session.busy):
            self.win.open_paths([folder])  # opens it; the AI runs when automatic
        else:
            self.session.add_paths([folder])  # shown in the browser, the open study stays

    # -- query / nodes ------------------------------------------------------------------
    def open_query(self) -> None:
        from viewer.qt.pacs import QueryDialog

        dlg = QueryDialog(self.settings, self.receiver, self.win)
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dlg.retrieved.connect(lambda folder: self.win.open_paths([folder]))
        dlg.show()
        self.query_dialog = dlg

    def edit_nodes(self) -> None:
        from viewer.qt.pacs import NodeSettingsDialog, load_listen

        dlg = NodeSettingsDialog(self.settings, self.win)
        if dlg.exec() and self.receiver.running:
            self.receiver.stop()
            self.receiver.start(load_listen(self.settings))

    # -- exporting ----------------------------------------------------------------------
    def export_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.win, "Write the AI result as DICOM to")
        if folder:
            self.export(folder)

    def export(self, folder: str | Path) -> bool:
        """Write the open study's SR and SCs to ``folder``/<study UID>/ in the background;
        False (with a message) when there is no scored study."""
        result, study, bundle = self.win.ai_result, self.session.study, self.session.bundle
        if study is None or result is None or not result.supported or bundle is None:
            self.win.show_error("Export AI result as DICOM: no scored study is open")
            return False
        self.exporter.export(study, result, bundle.path, folder)  # loaded in the worker
        self.win.statusBar().showMessage("Writing the AI result as DICOM…", 5000)
        return True

    def _on_exported(self, paths: list) -> None:
        from viewer.qt.pacs import SendDialog, load_nodes

        self.last_exported = [Path(p) for p in paths]
        self.win.statusBar().showMessage(
            f"Wrote {len(paths)} DICOM object(s): 1 SR and {len(paths) - 1} secondary "
            f"capture(s)", 15000)
        if load_nodes(self.settings):
            dlg = SendDialog(self.settings, self.last_exported, self.win)
            dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            dlg.show()
            self.send_dialog = dlg

    # -- SR findings --------------------------------------------------------------------
    def _on_scan_finished(self, result: LoadResult) -> None:
        from viewer.dicom_results import findings_for

        try:
            self.findings = findings_for(result)
        except Exception as exc:  # a broken SR must not stop the study opening
            log.warning("could not read an AI structured report: %s", type(exc).__name__)
            self.findings = {}

    def finding_for(self, study: Study | None):
        return None if study is None else self.findings.get(study.uid)

    def _on_image_decoded(self, im) -> None:
        views = getattr(self.win, "_views", [])
        if not (0 <= im.index < len(views)):
            return
        view = views[im.index]
        if getattr(im.ref, "ai_capture", False):
            view.set_view_marks([*view.view_mark_texts(), "AI capture (not a view)"])
        finding = self.finding_for(self.session.study)
        if finding is None:
            return
        vf = finding.views.get(getattr(im.ref, "sop_instance_uid", None))
        if vf is None:
            return
        if vf.probability is not None and not view.ai_text:
            view.set_ai_text(f"SR {vf.probability:.2f}")
        boxes = []
        for poly in vf.boxes:
            xs, ys = [p[0] for p in poly], [p[1] for p in poly]
            boxes.append({"x0": min(xs), "y0": min(ys), "x1": max(xs), "y1": max(ys),
                          "score": vf.probability or 0.0, "level": "fracture"})
        if boxes and hasattr(view, "set_boxes"):
            view.set_boxes(boxes)
        self.win.statusBar().showMessage(finding.summary(), 15000)
