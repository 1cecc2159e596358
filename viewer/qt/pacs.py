"""PACS widgets: the receiving switch, node settings, the query dialog, sending results,
and the inbox panel. Every network call runs on a :class:`~viewer.qt.worker.WorkerPool`
thread; the GUI thread only shows results and errors (one message naming the node and
the reason, :class:`viewer.dicomnet.NetError`).

What the main window wires (see each class):

* :class:`Receiver` — the Storage SCP switch (``start(settings)`` / ``stop()``); its
  ``study_received(study_uid, folder)`` signal fires on the GUI thread when an incoming
  association that stored instances ends.
* :class:`NodeSettingsDialog` — Settings ▸ DICOM nodes… (PACS list with C-ECHO test,
  receiving AE title/address/port/inbox/accepted calling AEs/auto-analyse).
* :class:`QueryDialog` — File ▸ Query PACS…: C-FIND / QIDO-RS, then C-MOVE (to the
  receiver), C-GET or WADO-RS; ``retrieved(folder)`` when the study is in the inbox.
* :class:`SendDialog` — send files (the SR and SCs) to a node by C-STORE or STOW-RS.
* :class:`InboxPanel` — studies as they arrive, with radview SR findings when present.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QSettings, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from viewer import paths
from viewer.dicomnet import (
    AssociationSummary,
    ListenSettings,
    NetError,
    PacsNode,
    StorageServer,
    StoredInstance,
    StudyMatch,
    StudyQuery,
    nodes_from_json,
    nodes_to_json,
)
from viewer.qt.worker import Worker, WorkerPool

log = logging.getLogger(__name__)

NODES_KEY = "pacs/nodes"
LISTEN_KEY = "pacs/listen"


# --------------------------------------------------------------------------- settings


def default_inbox() -> Path:
    """``<user data dir>/radview/inbox``."""
    return paths.user_data_dir() / "inbox"


def load_nodes(settings: QSettings) -> list[PacsNode]:
    return nodes_from_json(str(settings.value(NODES_KEY, "[]") or "[]"))


def save_nodes(settings: QSettings, nodes: list[PacsNode]) -> None:
    settings.setValue(NODES_KEY, nodes_to_json(nodes))


def load_listen(settings: QSettings) -> ListenSettings:
    import json

    try:
        raw = json.loads(str(settings.value(LISTEN_KEY, "{}") or "{}"))
    except ValueError:
        raw = {}
    out = ListenSettings()
    for key in ("ae_title", "host", "inbox"):
        if isinstance(raw.get(key), str):
            setattr(out, key, raw[key])
    if isinstance(raw.get("port"), int):
        out.port = raw["port"]
    out.accepted_calling = [str(a) for a in raw.get("accepted_calling", []) or []]
    out.auto_analyse = bool(raw.get("auto_analyse", False))
    out.inbox = out.inbox or str(default_inbox())
    return out


def save_listen(settings: QSettings, listen: ListenSettings) -> None:
    import json
    from dataclasses import asdict

    settings.setValue(LISTEN_KEY, json.dumps(asdict(listen)))


# ---------------------------------------------------------------------------- helpers


class _Runner(QObject):
    """Runs network calls on a worker pool; ``done(result)`` / ``failed(message)`` arrive
    on the GUI thread."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.pool = WorkerPool(self, threads=2)

    def run(self, fn: Callable[[], Any], done: Callable[[Any], None],
            failed: Callable[[str], None]) -> Worker:
        worker = Worker(lambda job: fn())
        worker.signals.returned.connect(done)
        worker.signals.errored.connect(lambda exc: failed(_message(exc)))
        return self.pool.start(worker)


def _message(exc: BaseException) -> str:
    if isinstance(exc, NetError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


# --------------------------------------------------------------------------- receiver


class Receiver(QObject):
    """The app's Storage SCP switch (a :class:`viewer.dicomnet.StorageServer`).

    Signals (GUI thread): ``instance_stored(StoredInstance)`` after each instance,
    ``study_received(study_uid, folder)`` when an association that stored instances of
    that study ends (add/refresh it in the study browser; analyse it when
    ``settings.auto_analyse``), ``state_changed(running, message)``.
    """

    instance_stored = Signal(object)
    study_received = Signal(str, str)
    state_changed = Signal(bool, str)
    _association = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.server: StorageServer | None = None
        self.settings = ListenSettings()
        self._association.connect(self._on_association)

    @property
    def running(self) -> bool:
        return self.server is not None and self.server.running

    def start(self, settings: ListenSettings) -> bool:
        """Start receiving; False (and ``state_changed(False, reason)``) when the port
        cannot be bound."""
        self.stop()
        self.settings = settings
        server = StorageServer(settings.inbox or default_inbox(), ae_title=settings.ae_title,
                               host=settings.host, port=settings.port,
                               accepted_calling=settings.accepted_calling,
                               on_stored=self.instance_stored.emit,
                               on_association=self._association.emit)
        try:
            server.start()
        except NetError as exc:
            self.state_changed.emit(False, f"Receiving not started: {exc}")
            return False
        self.server = server
        self.state_changed.emit(True, f"Receiving as {server} into {server.inbox}")
        return True

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
            self.state_changed.emit(False, "Receiving stopped")

    def _on_association(self, summary: AssociationSummary) -> None:
        for uid, folder in summary.studies.items():
            self.study_received.emit(uid, str(folder))


# --------------------------------------------------------------------- node settings


class NodeSettingsDialog(QDialog):
    """PACS nodes (name, AE title, host, port, DICOMweb URL) with a C-ECHO test, and the
    receiving settings. ``accept()`` saves both to ``settings``."""

    _COLUMNS = ("Name", "AE title", "Host", "Port", "DICOMweb URL")

    def __init__(self, settings: QSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("DICOM nodes")
        self.settings = settings
        self.runner = _Runner(self)
        self.table = QTableWidget(0, len(self._COLUMNS))
        self.table.setHorizontalHeaderLabels(self._COLUMNS)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        for node in load_nodes(settings):
            self._add_row(node)
        add, remove = QPushButton("Add"), QPushButton("Remove")
        self.test_button = QPushButton("Test (C-ECHO)")
        add.clicked.connect(lambda: self._add_row(PacsNode("", "", "127.0.0.1", 104)))
        remove.clicked.connect(lambda: self.table.removeRow(self.table.currentRow()))
        self.test_button.clicked.connect(self._on_test_clicked)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        buttons = QHBoxLayout()
        for b in (add, remove, self.test_button):
            buttons.addWidget(b)
        buttons.addStretch(1)

        listen = load_listen(settings)
        box = QGroupBox("Receiving (Storage SCP)")
        form = QFormLayout(box)
        self.aet = QLineEdit(listen.ae_title)
        self.host = QLineEdit(listen.host)
        self.port = QSpinBox()
        self.port.setRange(1, 65535)
        self.port.setValue(listen.port)
        self.inbox = QLineEdit(listen.inbox)
        browse = QPushButton("…")
        browse.clicked.connect(self._on_browse_clicked)
        row = QHBoxLayout()
        row.addWidget(self.inbox)
        row.addWidget(browse)
        self.accepted = QLineEdit(", ".join(listen.accepted_calling))
        self.accepted.setPlaceholderText("any (or: MODALITY1, PACS)")
        self.auto = QCheckBox("Analyse received studies automatically")
        self.auto.setChecked(listen.auto_analyse)
        form.addRow("AE title", self.aet)
        form.addRow("Address", self.host)
        form.addRow("Port", self.port)
        form.addRow("Inbox", row)
        form.addRow("Accepted calling AEs", self.accepted)
        form.addRow("", self.auto)

        ok = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                              | QDialogButtonBox.StandardButton.Cancel)
        ok.accepted.connect(self.accept)
        ok.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("PACS nodes"))
        layout.addWidget(self.table)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        layout.addWidget(box)
        layout.addWidget(ok)
        self.resize(720, 520)

    def _add_row(self, node: PacsNode) -> None:
        r = self.table.rowCount()
        self.table.insertRow(r)
        for c, v in enumerate((node.name, node.ae_title, node.host, str(node.port),
                               node.dicomweb_url)):
            self.table.setItem(r, c, QTableWidgetItem(v))

    def nodes(self) -> list[PacsNode]:
        out = []
        for r in range(self.table.rowCount()):
            cells = [(self.table.item(r, c).text().strip() if self.table.item(r, c) else "")
                     for c in range(len(self._COLUMNS))]
            try:
                port = int(cells[3])
            except ValueError:
                port = 0
            out.append(PacsNode(cells[0], cells[1], cells[2], port, cells[4]))
        return out

    def listen_settings(self) -> ListenSettings:
        return ListenSettings(
            ae_title=self.aet.text().strip() or "RADVIEW", host=self.host.text().strip()
            or "127.0.0.1", port=self.port.value(), inbox=self.inbox.text().strip(),
            accepted_calling=[a.strip() for a in self.accepted.text().split(",")
                              if a.strip()], auto_analyse=self.auto.isChecked())

    def _on_browse_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Inbox folder", self.inbox.text())
        if folder:
            self.inbox.setText(folder)

    def _on_test_clicked(self) -> None:
        from viewer.dicomnet import echo

        row = self.table.currentRow()
        nodes = self.nodes()
        if not 0 <= row < len(nodes):
            self.status.setText("Select a node to test.")
            return
        node = nodes[row]
        problems = node.problems()
        if problems:
            self.status.setText(f"{node}: {'; '.join(problems)}")
            return
        aet = self.aet.text().strip() or "RADVIEW"
        self.status.setText(f"C-ECHO {node}…")
        self.test_button.setEnabled(False)

        def done(seconds: float) -> None:
            self.test_button.setEnabled(True)
            self.status.setText(f"{node}: C-ECHO OK ({seconds * 1000:.0f} ms)")

        def failed(message: str) -> None:
            self.test_button.setEnabled(True)
            self.status.setText(message)

        self.runner.run(lambda: echo(node, calling_aet=aet, timeout=10), done, failed)

    def accept(self) -> None:
        bad = [f"{n}: {'; '.join(n.problems())}" for n in self.nodes() if n.problems()]
        if bad:
            self.status.setText("\n".join(bad))
            return
        save_nodes(self.settings, self.nodes())
        save_listen(self.settings, self.listen_settings())
        super().accept()


# ------------------------------------------------------------------------ query dialog


class QueryDialog(QDialog):
    """File ▸ Query PACS…: study-level query, then retrieval into the inbox.

    ``retrieved(folder)`` is emitted (GUI thread) with the study's inbox folder when the
    retrieval finished; the main window opens it. C-MOVE needs ``receiver`` running (it is
    started with the saved receiving settings when it is not).
    """

    retrieved = Signal(str)
    _COLUMNS = ("Patient", "ID", "Date", "Description", "Accession", "Modalities", "Images")

    def __init__(self, settings: QSettings, receiver: Receiver | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Query PACS")
        self.settings = settings
        self.receiver = receiver
        self.runner = _Runner(self)
        self.timeout = 30.0  # seconds, per network operation
        self.matches: list[StudyMatch] = []
        self.node_box = QComboBox()
        self.nodes = load_nodes(settings)
        for node in self.nodes:
            self.node_box.addItem(str(node))
        self.protocol = QComboBox()
        self.protocol.addItems(["DIMSE (C-FIND)", "DICOMweb (QIDO-RS)"])
        self.method = QComboBox()
        self.method.addItems(["C-MOVE", "C-GET", "WADO-RS"])
        self.patient_name = QLineEdit()
        self.patient_name.setPlaceholderText("DOE^J*")
        self.patient_id = QLineEdit()
        self.date_from = QLineEdit()
        self.date_from.setPlaceholderText("YYYYMMDD")
        self.date_to = QLineEdit()
        self.date_to.setPlaceholderText("YYYYMMDD")
        self.modality = QLineEdit()
        self.modality.setPlaceholderText("DX, CR…")
        self.accession = QLineEdit()
        form = QFormLayout()
        top = QHBoxLayout()
        top.addWidget(self.node_box, 1)
        top.addWidget(self.protocol)
        form.addRow("Node", top)
        form.addRow("Patient name", self.patient_name)
        form.addRow("Patient ID", self.patient_id)
        dates = QHBoxLayout()
        dates.addWidget(self.date_from)
        dates.addWidget(QLabel("to"))
        dates.addWidget(self.date_to)
        form.addRow("Study date", dates)
        form.addRow("Modality", self.modality)
        form.addRow("Accession", self.accession)
        self.search_button = QPushButton("Search")
        self.search_button.setDefault(True)
        self.search_button.clicked.connect(self._on_search_clicked)
        self.retrieve_button = QPushButton("Retrieve")
        self.retrieve_button.clicked.connect(self._on_retrieve_clicked)
        self.retrieve_button.setEnabled(False)
        self.table = QTableWidget(0, len(self._COLUMNS))
        self.table.setHorizontalHeaderLabels(self._COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.doubleClicked.connect(self._on_retrieve_clicked)
        self.status = QLabel("" if self.nodes else
                             "No PACS node configured: Settings ▸ DICOM nodes…")
        self.status.setWordWrap(True)
        actions = QHBoxLayout()
        actions.addWidget(self.search_button)
        actions.addStretch(1)
        actions.addWidget(QLabel("Retrieve by"))
        actions.addWidget(self.method)
        actions.addWidget(self.retrieve_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(actions)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.status)
        self.resize(820, 560)

    def node(self) -> PacsNode | None:
        i = self.node_box.currentIndex()
        return self.nodes[i] if 0 <= i < len(self.nodes) else None

    def query(self) -> StudyQuery:
        return StudyQuery(patient_name=self.patient_name.text().strip(),
                          patient_id=self.patient_id.text().strip(),
                          date_from=self.date_from.text().strip(),
                          date_to=self.date_to.text().strip(),
                          modality=self.modality.text().strip().upper(),
                          accession=self.accession.text().strip())

    def _busy(self, busy: bool, message: str) -> None:
        self.search_button.setEnabled(not busy)
        self.retrieve_button.setEnabled(not busy and bool(self.matches))
        self.status.setText(message)

    def _on_search_clicked(self) -> None:
        from viewer.dicomnet import dicomweb_search, find_studies

        node = self.node()
        if node is None:
            self.status.setText("No PACS node configured: Settings ▸ DICOM nodes…")
            return
        query = self.query()
        web = self.protocol.currentIndex() == 1
        aet = load_listen(self.settings).ae_title
        self._busy(True, f"Searching {node}…")
        t = self.timeout
        fn = ((lambda: dicomweb_search(node, query, timeout=t)) if web
              else (lambda: find_studies(node, query, calling_aet=aet, timeout=t)))
        self.runner.run(fn, self._on_found, lambda m: self._busy(False, m))

    def _on_found(self, matches: list[StudyMatch]) -> None:
        self.matches = matches
        self.table.setRowCount(len(matches))
        for r, m in enumerate(matches):
            for c, v in enumerate((m.patient_name.replace("^", " "), m.patient_id, m.date,
                                   m.description, m.accession, m.modalities,
                                   "" if m.instances is None else str(m.instances))):
                self.table.setItem(r, c, QTableWidgetItem(v))
        if matches:
            self.table.selectRow(0)
        self._busy(False, f"{len(matches)} studies found on {self.node()}.")

    def _on_retrieve_clicked(self) -> None:
        from viewer.dicomnet import dicomweb_retrieve, get_study, move_study

        node, row = self.node(), self.table.currentRow()
        if node is None or not 0 <= row < len(self.matches):
            return
        uid = self.matches[row].study_uid
        listen = load_listen(self.settings)
        inbox = Path(listen.inbox or default_inbox())
        method = self.method.currentText()
        if method == "C-MOVE":
            if self.receiver is None:
                self.status.setText("C-MOVE needs radview's receiver; use C-GET or WADO-RS.")
                return
            if not self.receiver.running and not self.receiver.start(listen):
                self.status.setText(f"C-MOVE needs radview's receiver, which could not "
                                    f"start on port {listen.port}.")
                return
            inbox = self.receiver.server.inbox  # type: ignore[union-attr]
            dest = self.receiver.settings.ae_title

            def fn() -> Any:
                return move_study(node, uid, destination=dest, calling_aet=listen.ae_title,
                                  timeout=self.timeout)
        elif method == "C-GET":
            def fn() -> Any:
                return get_study(node, uid, inbox, calling_aet=listen.ae_title,
                                 timeout=self.timeout)
        else:
            def fn() -> Any:
                return dicomweb_retrieve(node, uid, inbox, timeout=self.timeout)
        folder = inbox / _safe_uid(uid)
        self._busy(True, f"Retrieving from {node} by {method}…")

        def done(result: Any) -> None:
            self._busy(False, f"Retrieved {result.completed} instances "
                              f"({result.failed} failed) in {result.seconds:.1f} s.")
            if result.completed:
                self.retrieved.emit(str(folder))

        self.runner.run(fn, done, lambda m: self._busy(False, m))


def _safe_uid(uid: str) -> str:
    from viewer.dicomnet import inbox_path

    return inbox_path(".", uid, "x").parent.name


# ------------------------------------------------------------------------ exporting


class ResultExporter(QObject):
    """File ▸ Export AI result as DICOM…: writes the SR and SCs of a scored study on a
    worker thread (:func:`viewer.dicom_results.export_study_result`).

    ``exported(paths)`` (list of str, SR first) or ``failed(message)`` arrive on the GUI
    thread; the main window then offers :class:`SendDialog` with the paths.
    """

    exported = Signal(list)
    failed = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.runner = _Runner(self)

    def export(self, study: Any, result: Any, bundle: Any, out_dir: str | Path) -> None:
        """``bundle``: a loaded :class:`inference.bundle.Bundle`, or its folder (loaded —
        weights hashed — on the worker thread, not the GUI's)."""
        from viewer.dicom_results import export_study_result

        def work() -> list[str]:
            b = bundle
            if isinstance(b, str | Path):
                from inference.bundle import Bundle

                b = Bundle.load(b)
            return [str(p) for p in export_study_result(study, result, b, out_dir)]

        self.runner.run(work, self.exported.emit, self.failed.emit)


# ------------------------------------------------------------------------ sending


class SendDialog(QDialog):
    """Send files (radview's SR and SCs) to a node: C-STORE, or STOW-RS when chosen."""

    def __init__(self, settings: QSettings, files: list[Path],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Send AI result to PACS")
        self.settings = settings
        self.files = list(files)
        self.runner = _Runner(self)
        self.nodes = load_nodes(settings)
        self.node_box = QComboBox()
        for node in self.nodes:
            self.node_box.addItem(str(node))
        self.protocol = QComboBox()
        self.protocol.addItems(["C-STORE", "STOW-RS"])
        self.status = QLabel(f"{len(self.files)} files (structured report and captures).")
        self.status.setWordWrap(True)
        self.send_button = QPushButton("Send")
        self.send_button.clicked.connect(self._on_send_clicked)
        close = QPushButton("Close")
        close.clicked.connect(self.reject)
        form = QFormLayout()
        form.addRow("Node", self.node_box)
        form.addRow("Protocol", self.protocol)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.send_button)
        buttons.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.status)
        layout.addLayout(buttons)

    def _on_send_clicked(self) -> None:
        from viewer.dicomnet import dicomweb_store, store_files

        i = self.node_box.currentIndex()
        if not 0 <= i < len(self.nodes):
            self.status.setText("No PACS node configured: Settings ▸ DICOM nodes…")
            return
        node, files = self.nodes[i], self.files
        aet = load_listen(self.settings).ae_title
        web = self.protocol.currentIndex() == 1
        self.send_button.setEnabled(False)
        self.status.setText(f"Sending {len(files)} files to {node}…")

        def done(result: Any) -> None:
            self.send_button.setEnabled(True)
            lines = [f"Sent {len(result.sent)} of {len(files)} files to {node}."]
            lines += [f"{p.name}: {why}" for p, why in result.failed]
            self.status.setText("\n".join(lines))

        def failed(message: str) -> None:
            self.send_button.setEnabled(True)
            self.status.setText(message)

        fn = ((lambda: dicomweb_store(node, files)) if web
              else (lambda: store_files(node, files, calling_aet=aet)))
        self.runner.run(fn, done, failed)


# --------------------------------------------------------------------------- inbox


class InboxPanel(QWidget):
    """Received studies, newest first, with the radview SR finding when one is present.

    ``add_study(study_uid, folder)`` (connect :attr:`Receiver.study_received`) scans the
    folder on a worker thread and (re)lists the study; ``open_requested(folder)`` is
    emitted on double-click.
    """

    open_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.runner = _Runner(self)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Study / view", "Images", "AI (from radview SR)"])
        self.tree.header().setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.tree.header().setStretchLastSection(True)
        self.tree.setColumnWidth(0, 240)
        self.tree.setColumnWidth(1, 60)
        self.tree.itemDoubleClicked.connect(self._on_item_double_clicked)
        self.items: dict[str, QTreeWidgetItem] = {}
        self.status = QLabel("")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tree)
        layout.addWidget(self.status)

    def add_study(self, study_uid: str, folder: str, extra: list[str] | None = None) -> None:
        from viewer import loader
        from viewer.dicom_results import findings_for

        def scan() -> Any:
            result = loader.scan([folder, *(extra or [])])
            return result, findings_for(result)

        self.runner.run(scan, lambda out: self._show(study_uid, folder, *out),
                        self.status.setText)

    def _show(self, study_uid: str, folder: str, result: Any, findings: dict) -> None:
        study = next((s for s in result.studies if s.uid == study_uid), None)
        if study is None:
            self.status.setText(f"{folder}: no images")
            return
        patient = next(p for p in result.patients if study in p.studies)
        item = self.items.get(study_uid)
        if item is None:
            item = QTreeWidgetItem()
            self.tree.insertTopLevelItem(0, item)
            self.items[study_uid] = item
        item.takeChildren()
        views = [im for im in study.images if not im.ai_capture]
        finding = findings.get(study_uid)
        title = " ".join(x for x in (patient.name.replace("^", " "), study.date,
                                     study.description) if x)
        item.setText(0, title or study_uid)
        item.setText(1, str(len(views)))
        item.setText(2, finding.summary() if finding else "not analysed")
        item.setData(0, Qt.ItemDataRole.UserRole, folder)
        for im in views:
            child = QTreeWidgetItem(item)
            number = f"#{im.instance_number}" if im.instance_number is not None else im.name
            child.setText(0, " ".join(x for x in (im.view_position, im.laterality, number)
                                      if x))
            child.setToolTip(0, str(im.path))
            view = finding.views.get(im.sop_instance_uid) if finding else None
            if view is not None and view.probability is not None:
                boxes = f", {len(view.boxes)} boxes" if view.boxes else ""
                child.setText(2, f"{view.label} ({view.probability:.2f}, operating point "
                                 f"{view.threshold:.2f}){boxes}")
        item.setExpanded(True)
        self.status.setText(f"Studies received: {len(self.items)}")

    def _on_item_double_clicked(self, item: QTreeWidgetItem, _column: int) -> None:
        top = item.parent() or item
        folder = top.data(0, Qt.ItemDataRole.UserRole)
        if folder:
            self.open_requested.emit(str(folder))


__all__ = ["InboxPanel", "NodeSettingsDialog", "QueryDialog", "Receiver", "ResultExporter",
           "SendDialog",
           "StoredInstance", "load_listen", "load_nodes", "save_listen", "save_nodes"]
