"""DICOM networking (Qt-free): a Storage SCP inbox and the PACS operations radview uses.

::

    server = StorageServer("/data/inbox", ae_title="RADVIEW", port=11112,
                           on_stored=print, on_association=print)
    server.start()                       # non-blocking; server.stop() to end
    node = PacsNode("pacs", "ORTHANC", "127.0.0.1", 4242)
    echo(node)                           # seconds, or NetError naming the node and why
    matches = find_studies(node, StudyQuery(patient_id="123"))
    move_study(node, matches[0].study_uid, destination="RADVIEW")
    get_study(node, uid, "/data/inbox")  # C-GET, when the PACS offers it
    store_files(node, ["/out/SR.dcm", "/out/SC_1.dcm"])

Inbox (PS3.4 B, Storage Service Class as SCP)
---------------------------------------------
Every accepted instance is written to ``inbox/<Study Instance UID>/<SOP Instance
UID>.dcm`` in the DICOM File Format exactly as received (no re-encoding: compressed
transfer syntaxes stay compressed), **atomically** (:mod:`viewer.atomicio`: a hidden
temporary file in the study folder, fsync, ``os.replace``). A second copy of an instance
replaces the first in one step; readers never see a partial file. pynetdicom only calls
the C-STORE handler once the whole data set has arrived, so an association aborted
mid-transfer writes nothing; leftovers of a crash (``.*.part``) are removed when the
server starts. The server binds to ``127.0.0.1`` unless told otherwise; ``accepted_calling``
restricts the calling AE titles (others are rejected at association, reason "calling AE
title not recognised").

Every storage SOP class is accepted with every transfer syntax pynetdicom knows
(uncompressed, deflated, JPEG, JPEG-LS, JPEG 2000, RLE, ...).

Errors
------
Every SCU operation raises :class:`NetError` whose message names the node
(``"ORTHANC@127.0.0.1:4242"``) and the reason: connection refused, no answer within the
timeout, association rejected (with the peer's reason, e.g. "called AE title not
recognised"), presentation context not accepted (e.g. the PACS does not offer C-GET),
or a failure status from the peer. Nothing here touches Qt: the GUI calls these from a
worker thread.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset

from viewer.atomicio import cleanup_partials, write_atomic, write_bytes_atomic

log = logging.getLogger(__name__)

DEFAULT_AET = "RADVIEW"
DEFAULT_PORT = 11112
DEFAULT_HOST = "127.0.0.1"
DEFAULT_TIMEOUT = 30.0
#: Largest PDU the SCP (and C-GET) accepts, bytes.
MAX_PDU = 262_144

#: Storage SOP classes proposed for C-GET (a requestor may propose at most 128 contexts).
GET_STORAGE_CLASSES = (
    "1.2.840.10008.5.1.4.1.1.1",  # CR
    "1.2.840.10008.5.1.4.1.1.1.1",  # DX for presentation
    "1.2.840.10008.5.1.4.1.1.1.1.1",  # DX for processing
    "1.2.840.10008.5.1.4.1.1.1.2",  # MG for presentation
    "1.2.840.10008.5.1.4.1.1.1.3",  # IO for presentation
    "1.2.840.10008.5.1.4.1.1.2",  # CT
    "1.2.840.10008.5.1.4.1.1.4",  # MR
    "1.2.840.10008.5.1.4.1.1.6.1",  # US
    "1.2.840.10008.5.1.4.1.1.7",  # SC
    "1.2.840.10008.5.1.4.1.1.7.4",  # multi-frame true colour SC
    "1.2.840.10008.5.1.4.1.1.12.1",  # XA
    "1.2.840.10008.5.1.4.1.1.88.22",  # Enhanced SR
    "1.2.840.10008.5.1.4.1.1.88.33",  # Comprehensive SR
    "1.2.840.10008.5.1.4.1.1.88.34",  # Comprehensive 3D SR
    "1.2.840.10008.5.1.4.1.1.88.59",  # Key Object Selection
)


class NetError(Exception):
    """A DICOM network operation failed; ``str()`` names the node and the reason."""

    def __init__(self, node: PacsNode | str, reason: str) -> None:
        self.node = str(node)
        self.reason = reason
        super().__init__(f"{self.node}: {reason}")


@dataclass
class PacsNode:
    """A remote DICOM node (PACS) as configured in the settings.

    Attributes
    ----------
    name
        What the user calls it.
    ae_title, host, port
        Its Application Entity title (≤ 16 characters), address and DIMSE port.
    dicomweb_url
        Base URL of its DICOMweb service (QIDO-RS / WADO-RS / STOW-RS), e.g.
        ``http://pacs:8042/dicom-web``; empty when it has none.
    """

    name: str
    ae_title: str
    host: str
    port: int
    dicomweb_url: str = ""

    def __str__(self) -> str:
        label = f"{self.ae_title}@{self.host}:{self.port}"
        return label if self.name in ("", self.ae_title) else f"{self.name} ({label})"

    def problems(self) -> list[str]:
        """What is wrong with the settings (empty when usable)."""
        out = []
        if not self.ae_title.strip() or len(self.ae_title) > 16 or "\\" in self.ae_title:
            out.append("AE title must be 1-16 characters without backslash")
        if not self.host.strip():
            out.append("host is empty")
        if not 0 < int(self.port) < 65536:
            out.append(f"port {self.port} is not in 1-65535")
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PacsNode:
        return cls(name=str(data.get("name", "")), ae_title=str(data["ae_title"]),
                   host=str(data["host"]), port=int(data["port"]),
                   dicomweb_url=str(data.get("dicomweb_url", "") or ""))


def nodes_to_json(nodes: Iterable[PacsNode]) -> str:
    """Serialize nodes for the settings store."""
    return json.dumps([asdict(n) for n in nodes])


def nodes_from_json(text: str) -> list[PacsNode]:
    """Nodes from :func:`nodes_to_json` text; invalid entries are skipped (logged)."""
    out = []
    try:
        raw = json.loads(text or "[]")
    except ValueError:
        log.warning("PACS node settings are not valid JSON; ignored")
        return out
    for entry in raw if isinstance(raw, list) else []:
        try:
            out.append(PacsNode.from_dict(entry))
        except (KeyError, TypeError, ValueError):
            log.warning("a PACS node entry is incomplete; ignored")
    return out


@dataclass
class ListenSettings:
    """Storage SCP settings (the app's switch and ``radview listen``)."""

    ae_title: str = DEFAULT_AET
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    inbox: str = ""
    accepted_calling: list[str] = field(default_factory=list)  # empty: any calling AE
    auto_analyse: bool = False


# ------------------------------------------------------------------------------ inbox


def _safe(uid: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in ".-_" else "_" for c in uid.strip())
    return cleaned[:64].strip(".") or "unknown"


@dataclass(frozen=True)
class StoredInstance:
    """One instance written to the inbox."""

    path: Path
    study_uid: str
    sop_instance_uid: str
    calling_aet: str
    replaced: bool


@dataclass
class AssociationSummary:
    """What one incoming association stored (reported when it is released or aborted)."""

    calling_aet: str
    aborted: bool
    stored: list[StoredInstance] = field(default_factory=list)

    @property
    def studies(self) -> dict[str, Path]:
        """Study Instance UID → its inbox folder, for the studies this association touched."""
        return {s.study_uid: s.path.parent for s in self.stored}


def inbox_path(inbox: str | os.PathLike[str], study_uid: str, sop_uid: str) -> Path:
    """Where an instance goes: ``inbox/<study UID>/<SOP Instance UID>.dcm``."""
    return Path(inbox) / _safe(study_uid) / f"{_safe(sop_uid)}.dcm"


def _store_event(inbox: Path, event: Any) -> tuple[int, StoredInstance | None]:
    """Write one C-STORE request atomically; returns (status, what was stored)."""
    try:
        ds = event.dataset
        study_uid = str(ds.get("StudyInstanceUID", "") or "")
        sop_uid = str(event.request.AffectedSOPInstanceUID or ds.get("SOPInstanceUID", ""))
    except Exception as exc:
        log.warning("C-STORE: data set cannot be decoded (%s)", exc)
        return 0xC210, None  # cannot understand
    if not study_uid or not sop_uid:
        log.warning("C-STORE: no Study or SOP Instance UID; refused")
        return 0xC211, None
    path = inbox_path(inbox, study_uid, sop_uid)
    replaced = path.exists()
    try:
        write_bytes_atomic(path, event.encoded_dataset())
    except OSError as exc:
        log.error("C-STORE: cannot write %s (%s)", path.name, exc)
        return 0xA700, None  # out of resources
    calling = str(event.assoc.requestor.ae_title).strip()
    return 0x0000, StoredInstance(path, study_uid, sop_uid, calling, replaced)


def _storage_ae(ae_title: str):
    from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts
    from pynetdicom.sop_class import Verification

    ae = AE(ae_title=ae_title)
    for cx in AllStoragePresentationContexts:
        ae.add_supported_context(cx.abstract_syntax, ALL_TRANSFER_SYNTAXES)
    ae.add_supported_context(Verification)
    return ae


class StorageServer:
    """A Storage SCP (and Verification SCP) writing into an inbox folder.

    Parameters
    ----------
    inbox
        Folder receiving ``<study UID>/<SOP UID>.dcm`` (created when missing).
    ae_title, host, port
        What the server answers as and where it listens (default ``127.0.0.1``; port 0
        picks a free port, see :attr:`port` after :meth:`start`).
    accepted_calling
        Calling AE titles allowed to associate; empty or None: any.
    on_stored
        Called with a :class:`StoredInstance` after each instance is written, from a
        network thread (the GUI must hand it to its own thread).
    on_association
        Called with an :class:`AssociationSummary` when an association that stored at
        least one instance ends (released or aborted), from a network thread.
    """

    def __init__(self, inbox: str | os.PathLike[str], *, ae_title: str = DEFAULT_AET,
                 host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                 accepted_calling: Sequence[str] | None = None,
                 on_stored: Callable[[StoredInstance], None] | None = None,
                 on_association: Callable[[AssociationSummary], None] | None = None) -> None:
        self.inbox = Path(inbox)
        self.ae_title = ae_title
        self.host = host
        self.port = port
        self.accepted_calling = [a.strip() for a in accepted_calling or [] if a.strip()]
        self.on_stored = on_stored
        self.on_association = on_association
        self.received = 0
        self._server: Any = None
        self._lock = threading.Lock()
        self._open: dict[int, AssociationSummary] = {}

    @property
    def running(self) -> bool:
        return self._server is not None

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"

    def start(self) -> None:
        """Start listening (non-blocking). Raises :class:`NetError` when the port cannot
        be bound."""
        from pynetdicom import evt

        if self._server is not None:
            return
        self.inbox.mkdir(parents=True, exist_ok=True)
        removed = cleanup_partials(self.inbox)
        if removed:
            log.info("inbox: removed %d partial files left by a crash", removed)
        ae = _storage_ae(self.ae_title)
        ae.require_calling_aet = self.accepted_calling
        ae.maximum_associations = 16
        # Large PDUs: a 10 MB radiograph in ~40 PDUs rather than ~640 (pynetdicom's 16 KB
        # default); the receive loop is Python, so fewer PDUs is most of the speed.
        ae.maximum_pdu_size = MAX_PDU
        handlers = [(evt.EVT_C_STORE, self._on_store), (evt.EVT_RELEASED, self._on_end),
                    (evt.EVT_ABORTED, self._on_abort), (evt.EVT_CONN_CLOSE, self._on_close)]
        try:
            self._server = ae.start_server((self.host, self.port), block=False,
                                           evt_handlers=handlers)
        except OSError as exc:
            raise NetError(str(self), f"cannot listen on {self.host}:{self.port} "
                                      f"({exc.strerror or exc})") from exc
        self.port = self._server.server_address[1]
        log.info("storage SCP %s listening, inbox %s", self, self.inbox)

    def stop(self) -> None:
        """Stop listening and close open associations."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            log.info("storage SCP %s stopped", self)

    def __enter__(self) -> StorageServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _summary(self, event: Any) -> AssociationSummary:
        with self._lock:
            key = id(event.assoc)
            if key not in self._open:
                self._open[key] = AssociationSummary(
                    str(event.assoc.requestor.ae_title).strip(), aborted=False)
            return self._open[key]

    def _on_store(self, event: Any) -> int:
        status, stored = _store_event(self.inbox, event)
        if stored is not None:
            with self._lock:
                self.received += 1
            self._summary(event).stored.append(stored)
            if self.on_stored:
                try:
                    self.on_stored(stored)
                except Exception:
                    log.exception("on_stored callback failed")
        return status

    def _finish(self, event: Any, aborted: bool) -> None:
        with self._lock:
            summary = self._open.pop(id(event.assoc), None)
        if summary is None or not summary.stored:
            return
        summary.aborted = aborted
        if self.on_association:
            try:
                self.on_association(summary)
            except Exception:
                log.exception("on_association callback failed")

    def _on_end(self, event: Any) -> None:
        self._finish(event, False)

    def _on_abort(self, event: Any) -> None:
        self._finish(event, True)

    def _on_close(self, event: Any) -> None:
        self._finish(event, True)


# ------------------------------------------------------------------------ SCU helpers


def _check_reachable(node: PacsNode, timeout: float) -> None:
    try:
        with socket.create_connection((node.host, int(node.port)), timeout=timeout):
            pass
    except ConnectionRefusedError as exc:
        raise NetError(node, f"connection refused (nothing listening on "
                             f"{node.host}:{node.port})") from exc
    except TimeoutError as exc:
        raise NetError(node, f"no answer within {timeout:g} s (timeout)") from exc
    except socket.gaierror as exc:
        raise NetError(node, f"unknown host {node.host!r} ({exc.strerror})") from exc
    except OSError as exc:
        raise NetError(node, f"cannot connect ({exc.strerror or exc})") from exc


def _associate(node: PacsNode, ae: Any, timeout: float, **kwargs: Any) -> Any:
    problems = node.problems()
    if problems:
        raise NetError(node, "; ".join(problems))
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    ae.connection_timeout = timeout
    _check_reachable(node, timeout)
    started = time.monotonic()
    assoc = ae.associate(node.host, int(node.port), ae_title=node.ae_title, **kwargs)
    if assoc.is_established:
        return assoc
    if assoc.is_rejected:
        rsp = assoc.acceptor.primitive
        reason = "association rejected"
        if rsp is not None:
            try:
                reason = f"association rejected by the peer: {rsp.reason_str}"
            except Exception:
                pass
            if rsp.diagnostic == 7:
                reason += f" (does it know the called AE title {node.ae_title!r}?)"
            elif rsp.diagnostic == 3:
                reason += f" (add radview's AE title {ae.ae_title!r} to its known nodes)"
        raise NetError(node, reason)
    if time.monotonic() - started >= 0.9 * timeout:
        raise NetError(node, f"no answer to the association request within {timeout:g} s "
                             f"(timeout; is it a DICOM service?)")
    if assoc.is_aborted:
        raise NetError(node, "association aborted by the peer")
    raise NetError(node, f"no association (no answer within {timeout:g} s, or not a "
                         f"DICOM service)")


def _context_or_fail(node: PacsNode, assoc: Any, sop_class: str, what: str) -> None:
    if not any(cx.abstract_syntax == sop_class for cx in assoc.accepted_contexts):
        assoc.release()
        raise NetError(node, f"does not support {what} (presentation context not accepted)")


def echo(node: PacsNode, *, calling_aet: str = DEFAULT_AET,
         timeout: float = DEFAULT_TIMEOUT) -> float:
    """C-ECHO ``node``; returns the round trip in seconds."""
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification

    ae = AE(ae_title=calling_aet)
    ae.add_requested_context(Verification)
    started = time.perf_counter()
    assoc = _associate(node, ae, timeout)
    try:
        status = assoc.send_c_echo()
    finally:
        assoc.release()
    if not status or status.get("Status") != 0x0000:
        raise NetError(node, f"C-ECHO failed ({_status_text(status)})")
    return time.perf_counter() - started


def _status_text(status: Dataset | None) -> str:
    if not status or "Status" not in status:
        return "no response (timeout or aborted)"
    text = f"status 0x{int(status.Status):04X}"
    comment = str(status.get("ErrorComment", "") or "")
    return f"{text}: {comment}" if comment else text


@dataclass
class StudyQuery:
    """C-FIND / QIDO-RS study-level query; empty fields match anything.

    ``patient_name`` may use ``*`` wildcards; dates are ``YYYYMMDD``.
    """

    patient_name: str = ""
    patient_id: str = ""
    date_from: str = ""
    date_to: str = ""
    modality: str = ""
    accession: str = ""
    study_uid: str = ""

    def date_range(self) -> str:
        if not self.date_from and not self.date_to:
            return ""
        if self.date_from == self.date_to:
            return self.date_from
        return f"{self.date_from}-{self.date_to}"

    def identifier(self) -> Dataset:
        ds = Dataset()
        ds.QueryRetrieveLevel = "STUDY"
        ds.PatientName = self.patient_name
        ds.PatientID = self.patient_id
        ds.StudyDate = self.date_range()
        ds.ModalitiesInStudy = self.modality
        ds.AccessionNumber = self.accession
        ds.StudyInstanceUID = self.study_uid
        ds.StudyDescription = ""
        ds.StudyTime = ""
        ds.NumberOfStudyRelatedInstances = ""
        return ds


@dataclass
class StudyMatch:
    """One study found by :func:`find_studies` or :func:`dicomweb_search`."""

    study_uid: str
    patient_name: str = ""
    patient_id: str = ""
    date: str = ""
    description: str = ""
    accession: str = ""
    modalities: str = ""
    instances: int | None = None

    @classmethod
    def from_dataset(cls, ds: Dataset) -> StudyMatch:
        mods = ds.get("ModalitiesInStudy", "")
        if not isinstance(mods, str):
            mods = "\\".join(str(m) for m in mods)
        count = ds.get("NumberOfStudyRelatedInstances")
        return cls(study_uid=str(ds.get("StudyInstanceUID", "")),
                   patient_name=str(ds.get("PatientName", "") or ""),
                   patient_id=str(ds.get("PatientID", "") or ""),
                   date=str(ds.get("StudyDate", "") or ""),
                   description=str(ds.get("StudyDescription", "") or ""),
                   accession=str(ds.get("AccessionNumber", "") or ""), modalities=mods,
                   instances=int(count) if count not in (None, "") else None)


def find_studies(node: PacsNode, query: StudyQuery, *, calling_aet: str = DEFAULT_AET,
                 timeout: float = DEFAULT_TIMEOUT, limit: int = 500) -> list[StudyMatch]:
    """C-FIND at study level (Study Root, PS3.4 C.6.2)."""
    from pynetdicom import AE
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind as Find

    ae = AE(ae_title=calling_aet)
    ae.add_requested_context(Find)
    assoc = _associate(node, ae, timeout)
    _context_or_fail(node, assoc, Find, "study-root C-FIND")
    out: list[StudyMatch] = []
    try:
        for status, identifier in assoc.send_c_find(query.identifier(), Find):
            if not status or "Status" not in status:
                raise NetError(node, f"C-FIND: {_status_text(status)}")
            code = int(status.Status)
            if code in (0xFF00, 0xFF01) and identifier is not None:
                out.append(StudyMatch.from_dataset(identifier))
                if len(out) >= limit:
                    assoc.send_c_cancel(1, None)
            elif code not in (0x0000, 0xFE00):
                raise NetError(node, f"C-FIND failed ({_status_text(status)})")
    finally:
        if assoc.is_established:
            assoc.release()
    return out


@dataclass
class RetrieveResult:
    """Outcome of a C-MOVE / C-GET / WADO-RS retrieval."""

    completed: int = 0
    failed: int = 0
    warning: int = 0
    paths: list[Path] = field(default_factory=list)
    seconds: float = 0.0


def _counts(status: Dataset, result: RetrieveResult) -> None:
    result.completed = int(status.get("NumberOfCompletedSuboperations", result.completed)
                           or 0)
    result.failed = int(status.get("NumberOfFailedSuboperations", result.failed) or 0)
    result.warning = int(status.get("NumberOfWarningSuboperations", result.warning) or 0)


def move_study(node: PacsNode, study_uid: str, *, destination: str = DEFAULT_AET,
               calling_aet: str = DEFAULT_AET, timeout: float = DEFAULT_TIMEOUT,
               progress: Callable[[int, int], None] | None = None) -> RetrieveResult:
    """C-MOVE a study from ``node`` to the AE ``destination`` (normally radview's own SCP,
    which the PACS must know by AE title, host and port)."""
    from pynetdicom import AE
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelMove as Move

    ae = AE(ae_title=calling_aet)
    ae.add_requested_context(Move)
    started = time.perf_counter()
    assoc = _associate(node, ae, timeout)
    _context_or_fail(node, assoc, Move, "study-root C-MOVE")
    ident = Dataset()
    ident.QueryRetrieveLevel = "STUDY"
    ident.StudyInstanceUID = study_uid
    result = RetrieveResult()
    try:
        for status, _ in assoc.send_c_move(ident, destination, Move):
            if not status or "Status" not in status:
                raise NetError(node, f"C-MOVE: {_status_text(status)}")
            code = int(status.Status)
            _counts(status, result)
            if code == 0xFF00:
                if progress:
                    remaining = int(status.get("NumberOfRemainingSuboperations", 0) or 0)
                    done = result.completed + result.failed + result.warning
                    progress(done, done + remaining)
            elif code == 0xA801:
                raise NetError(node, f"C-MOVE refused: move destination {destination!r} "
                                     f"unknown to the PACS (add it with radview's host "
                                     f"and port)")
            elif code & 0xF000 == 0xC000 and result.completed == 0:
                raise NetError(node, f"C-MOVE failed ({_status_text(status)}, unable to "
                                     f"process): does the PACS know the destination "
                                     f"{destination!r} (AE title, radview's host and port)?")
            elif code not in (0x0000, 0xB000):
                raise NetError(node, f"C-MOVE failed ({_status_text(status)})")
    finally:
        if assoc.is_established:
            assoc.release()
    result.seconds = time.perf_counter() - started
    return result


def get_study(node: PacsNode, study_uid: str, inbox: str | os.PathLike[str], *,
              calling_aet: str = DEFAULT_AET, timeout: float = DEFAULT_TIMEOUT,
              on_stored: Callable[[StoredInstance], None] | None = None) -> RetrieveResult:
    """C-GET a study into ``inbox`` over the same association (no SCP needed).

    Raises :class:`NetError` "does not support C-GET" when the PACS does not accept the
    Study Root GET context (use :func:`move_study` then).
    """
    from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, build_role, evt
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelGet as Get

    inbox = Path(inbox)
    ae = AE(ae_title=calling_aet)
    ae.add_requested_context(Get)
    roles = []
    for uid in GET_STORAGE_CLASSES:
        ae.add_requested_context(uid, ALL_TRANSFER_SYNTAXES[:8])
        roles.append(build_role(uid, scp_role=True))
    result = RetrieveResult()

    def handle(event: Any) -> int:
        status, stored = _store_event(inbox, event)
        if stored is not None:
            result.paths.append(stored.path)
            if on_stored:
                on_stored(stored)
        return status

    started = time.perf_counter()
    assoc = _associate(node, ae, timeout, ext_neg=roles,
                       evt_handlers=[(evt.EVT_C_STORE, handle)])
    _context_or_fail(node, assoc, Get, "C-GET")
    ident = Dataset()
    ident.QueryRetrieveLevel = "STUDY"
    ident.StudyInstanceUID = study_uid
    try:
        for status, _ in assoc.send_c_get(ident, Get):
            if not status or "Status" not in status:
                raise NetError(node, f"C-GET: {_status_text(status)}")
            code = int(status.Status)
            _counts(status, result)
            if code not in (0x0000, 0xFF00, 0xB000):
                raise NetError(node, f"C-GET failed ({_status_text(status)})")
    finally:
        if assoc.is_established:
            assoc.release()
    result.seconds = time.perf_counter() - started
    return result


@dataclass
class StoreResult:
    """Outcome of :func:`store_files`."""

    sent: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)


def store_files(node: PacsNode, paths: Sequence[str | os.PathLike[str]], *,
                calling_aet: str = DEFAULT_AET, timeout: float = DEFAULT_TIMEOUT
                ) -> StoreResult:
    """C-STORE files (e.g. radview's SR and SCs) to ``node``, one association.

    A file the PACS refuses is listed in ``failed`` with the reason; an association
    failure raises :class:`NetError`.
    """
    from pynetdicom import AE

    datasets = []
    result = StoreResult()
    for raw in paths:
        path = Path(raw)
        try:
            datasets.append((path, dcmread(path)))
        except Exception as exc:
            result.failed.append((path, f"cannot be read ({exc})"))
    if not datasets:
        return result
    ae = AE(ae_title=calling_aet)
    contexts = sorted({(str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID))
                       for _, ds in datasets})
    for sop_class, ts in contexts[:128]:
        ae.add_requested_context(sop_class, ts)
    assoc = _associate(node, ae, timeout)
    try:
        for path, ds in datasets:
            try:
                status = assoc.send_c_store(ds)
            except ValueError as exc:  # no accepted context for this class/syntax
                result.failed.append((path, f"not accepted by {node} ({exc})"))
                continue
            if status and int(status.get("Status", -1)) in (0x0000, 0xB000, 0xB007, 0xB006):
                result.sent.append(path)
            else:
                result.failed.append((path, f"C-STORE failed ({_status_text(status)})"))
    finally:
        if assoc.is_established:
            assoc.release()
    return result


# -------------------------------------------------------------------------- DICOMweb


def _web(node: PacsNode, timeout: float):
    import requests
    from dicomweb_client.api import DICOMwebClient

    class _Session(requests.Session):  # every request gets the timeout
        def request(self, *args: Any, **kwargs: Any) -> Any:
            kwargs.setdefault("timeout", timeout)
            return super().request(*args, **kwargs)

    if not node.dicomweb_url:
        raise NetError(node, "no DICOMweb URL configured")
    return DICOMwebClient(url=node.dicomweb_url, session=_Session())


def _web_error(node: PacsNode, what: str, exc: Exception) -> NetError:
    import requests

    if isinstance(exc, requests.exceptions.ConnectionError):
        return NetError(node, f"{what}: cannot connect to {node.dicomweb_url}")
    if isinstance(exc, requests.exceptions.Timeout):
        return NetError(node, f"{what}: no answer from {node.dicomweb_url} (timeout)")
    if isinstance(exc, requests.exceptions.HTTPError) and exc.response is not None:
        return NetError(node, f"{what}: HTTP {exc.response.status_code} "
                              f"{exc.response.reason} from {node.dicomweb_url}")
    return NetError(node, f"{what}: {exc}")


def dicomweb_search(node: PacsNode, query: StudyQuery, *,
                    timeout: float = DEFAULT_TIMEOUT) -> list[StudyMatch]:
    """QIDO-RS study search (same fields as :func:`find_studies`)."""
    filters = {k: v for k, v in {
        "PatientName": query.patient_name, "PatientID": query.patient_id,
        "StudyDate": query.date_range(), "ModalitiesInStudy": query.modality,
        "AccessionNumber": query.accession, "StudyInstanceUID": query.study_uid}.items() if v}
    client = _web(node, timeout)
    try:
        found = client.search_for_studies(search_filters=filters, fuzzymatching=False)
    except Exception as exc:
        raise _web_error(node, "QIDO-RS search", exc) from exc
    return [StudyMatch.from_dataset(Dataset.from_json(item)) for item in found]


def dicomweb_retrieve(node: PacsNode, study_uid: str, inbox: str | os.PathLike[str], *,
                      timeout: float = DEFAULT_TIMEOUT) -> RetrieveResult:
    """WADO-RS: retrieve a study into ``inbox`` (atomic writes, as the SCP does)."""
    from pydicom.filewriter import dcmwrite

    client = _web(node, timeout)
    started = time.perf_counter()
    try:
        datasets = client.retrieve_study(study_uid)
    except Exception as exc:
        raise _web_error(node, "WADO-RS retrieve", exc) from exc
    result = RetrieveResult()
    for ds in datasets:
        path = inbox_path(inbox, str(ds.StudyInstanceUID), str(ds.SOPInstanceUID))
        write_atomic(path, lambda f, ds=ds: dcmwrite(f, ds, enforce_file_format=True))
        result.paths.append(path)
        result.completed += 1
    result.seconds = time.perf_counter() - started
    return result


def dicomweb_store(node: PacsNode, paths: Sequence[str | os.PathLike[str]], *,
                   timeout: float = DEFAULT_TIMEOUT) -> StoreResult:
    """STOW-RS: send files to ``node``'s DICOMweb service."""
    client = _web(node, timeout)
    result = StoreResult()
    datasets = []
    for raw in paths:
        try:
            datasets.append((Path(raw), dcmread(raw)))
        except Exception as exc:
            result.failed.append((Path(raw), f"cannot be read ({exc})"))
    if datasets:
        try:
            client.store_instances([ds for _, ds in datasets])
        except Exception as exc:
            raise _web_error(node, "STOW-RS store", exc) from exc
        result.sent += [p for p, _ in datasets]
    return result
