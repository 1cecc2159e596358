"""DICOM networking (viewer.dicomnet, radview listen) against real peers on loopback:
DCMTK's storescu/findscu and a real Orthanc (with its DICOMweb plugin) as the PACS."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from dicom_factory import make_dicom
from dicom_peers import (
    dciodvfy_errors,
    free_port,
    need,
    start_orthanc,
    stop_orthanc,
    storescu,
)
from pydicom import dcmread
from pydicom.uid import JPEG2000Lossless, JPEGLosslessSV1, JPEGLSLossless, RLELossless

from viewer import loader
from viewer.dicomnet import (
    NetError,
    PacsNode,
    StorageServer,
    StudyQuery,
    dicomweb_retrieve,
    dicomweb_search,
    dicomweb_store,
    echo,
    find_studies,
    get_study,
    move_study,
    nodes_from_json,
    nodes_to_json,
    store_files,
)

STUDY = "1.2.826.0.1.3680043.8.498.7701.15"


def _study(folder: Path, n: int = 2, *, rows: int = 96, cols: int = 80,
           study_uid: str = STUDY, patient_id: str = "RV-NET-001") -> list[Path]:
    return [make_dicom(folder / f"IM{i + 1:03d}.dcm", rows=rows, cols=cols, body_part="HAND",
                       instance_number=i + 1, study_uid=study_uid, patient_id=patient_id,
                       series_uid=study_uid + ".1", windows=[(2048, 4096)],
                       pixels=(np.arange(rows * cols).reshape(rows, cols) * (i + 3)) % 4096)
            for i in range(n)]


class _Events:
    def __init__(self) -> None:
        self.stored: list = []
        self.associations: list = []
        self.first: float | None = None
        self.done = threading.Event()

    def on_stored(self, s) -> None:
        self.first = self.first or time.perf_counter()
        self.stored.append(s)

    def on_association(self, a) -> None:
        self.associations.append(a)
        self.done.set()


@pytest.fixture
def scp(tmp_path):
    events = _Events()
    server = StorageServer(tmp_path / "inbox", port=0, on_stored=events.on_stored,
                           on_association=events.on_association)
    server.start()
    server.events = events
    yield server
    server.stop()


def _wait(cond, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


# ------------------------------------------------------------------- storage SCP


def test_storescu_batch_of_50_lands_in_the_inbox_by_study(scp, tmp_path):
    files = _study(tmp_path / "src", 50, rows=64, cols=64)
    out = storescu(scp.port, files)
    assert out.returncode == 0, out.stderr
    _wait(lambda: scp.events.associations)
    got = _files(scp.inbox)
    assert len(got) == 50 and {p.parent.name for p in got} == {STUDY}
    assert scp.events.associations[0].calling_aet == "STORESCU"
    assert not scp.events.associations[0].aborted
    # byte-identical data sets, readable by the viewer's loader
    src = dcmread(files[7])
    back = dcmread(scp.inbox / STUDY / f"{src.SOPInstanceUID}.dcm")
    assert back.PixelData == src.PixelData
    result = loader.scan([scp.inbox])
    assert result.errors == [] and len(result.images) == 50


@pytest.mark.parametrize(("tool", "args", "propose", "syntax"), [
    ("dcmcjpeg", ("+e1",), "-xs", JPEGLosslessSV1),     # JPEG lossless, process 14 SV1
    ("dcmcjpls", (), "-xt", JPEGLSLossless),
    ("dcmcrle", (), "-xr", RLELossless),
], ids=["jpeg-lossless", "jpeg-ls", "rle"])
def test_compressed_transfer_syntaxes_are_kept_as_sent(scp, tmp_path, tool, args, propose,
                                                      syntax):
    [plain] = _study(tmp_path / "src", 1)
    packed = tmp_path / "packed.dcm"
    subprocess.run([need(tool), *args, str(plain), str(packed)], check=True, timeout=60)
    assert dcmread(packed).file_meta.TransferSyntaxUID == syntax  # precondition
    # storescu proposes the compressed syntax first, so it travels compressed
    out = storescu(scp.port, [packed], extra=(propose,))
    assert out.returncode == 0, out.stderr
    [got] = _files(scp.inbox)
    ds = dcmread(got)
    assert ds.file_meta.TransferSyntaxUID == syntax
    assert np.array_equal(ds.pixel_array, dcmread(plain).pixel_array)


def test_jpeg2000_via_pynetdicom_peer(scp, tmp_path):
    # JPEG 2000 from pydicom's own encoder (pylibjpeg-openjpeg), sent with store_files.
    [plain] = _study(tmp_path / "src", 1)
    ds = dcmread(plain)
    ds.compress(JPEG2000Lossless)
    ds.save_as(tmp_path / "j2k.dcm", enforce_file_format=True)
    node = PacsNode("self", "RADVIEW", "127.0.0.1", scp.port)
    assert store_files(node, [tmp_path / "j2k.dcm"]).failed == []
    [got] = _files(scp.inbox)
    assert dcmread(got).file_meta.TransferSyntaxUID == JPEG2000Lossless


def test_duplicates_replace_never_corrupt(scp, tmp_path):
    files = _study(tmp_path / "src", 3)
    storescu(scp.port, files)
    # the same SOP Instance UIDs again, with new pixels: the copies replace the first ones
    again = _study(tmp_path / "v2", 3, rows=50, cols=40)
    for a, b in zip(files, again, strict=True):
        ds = dcmread(b)
        ds.SOPInstanceUID = dcmread(a).SOPInstanceUID
        ds.save_as(b, enforce_file_format=True)
    assert storescu(scp.port, again).returncode == 0
    _wait(lambda: len(scp.events.associations) == 2)
    got = _files(scp.inbox)
    assert len(got) == 3 and all(dcmread(p).Rows == 50 for p in got)
    assert [s.replaced for s in scp.events.stored] == [False] * 3 + [True] * 3


def test_association_aborted_mid_transfer_leaves_no_file(scp, tmp_path):
    # Send the command and the first fragments of a 2 MB data set, then A-ABORT.
    from pynetdicom import AE
    from pynetdicom.dimse_messages import C_STORE_RQ
    from pynetdicom.dimse_primitives import C_STORE
    from pynetdicom.dsutils import encode

    [path] = _study(tmp_path / "src", 1, rows=1024, cols=1024)
    ds = dcmread(path)
    ae = AE("ABORTER")
    ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", scp.port, ae_title="RADVIEW")
    assert assoc.is_established
    req = C_STORE()
    req.MessageID, req.Priority = 1, 2
    req.AffectedSOPClassUID, req.AffectedSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    req.DataSet = io.BytesIO(encode(ds, False, True))
    msg = C_STORE_RQ()
    msg.primitive_to_message(req)
    pdus = list(msg.encode_msg(assoc.accepted_contexts[0].context_id, 16382))
    assert len(pdus) > 10
    for pdu in pdus[: len(pdus) // 2]:
        assoc.dul.send_pdu(pdu)
    time.sleep(0.3)
    assoc.abort()
    time.sleep(0.5)
    assert _files(scp.inbox) == []  # no file, not even a temporary one
    # the SCP is still fine afterwards
    assert storescu(scp.port, [path]).returncode == 0
    assert len(_files(scp.inbox)) == 1


def test_storescu_abort_after_sending_keeps_what_completed(scp, tmp_path):
    # storescu --abort: A-ABORT instead of A-RELEASE once every C-STORE completed.
    files = _study(tmp_path / "src", 3)
    out = storescu(scp.port, files, extra=("--abort",))
    assert out.returncode == 0, out.stderr
    _wait(lambda: scp.events.associations)
    assert scp.events.associations[0].aborted
    assert len(_files(scp.inbox)) == 3


def test_only_accepted_calling_aes(tmp_path):
    with StorageServer(tmp_path / "inbox", port=0, accepted_calling=["MODALITY1"]) as server:
        [f] = _study(tmp_path / "src", 1)
        refused = storescu(server.port, [f], calling="INTRUDER")
        assert refused.returncode != 0
        assert "Calling AE Title Not Recognized" in refused.stderr or \
            "calling" in refused.stderr.lower()
        assert storescu(server.port, [f], calling="MODALITY1").returncode == 0
        assert len(_files(server.inbox)) == 1


def test_binds_to_loopback_by_default(scp):
    assert scp.host == "127.0.0.1"
    assert echo(PacsNode("self", "RADVIEW", "127.0.0.1", scp.port)) < 10


def test_node_settings_round_trip():
    nodes = [PacsNode("main", "PACS1", "pacs.example", 104, "http://pacs/dicom-web"),
             PacsNode("", "X", "h", 11112)]
    assert nodes_from_json(nodes_to_json(nodes)) == nodes
    assert nodes_from_json("not json") == []
    assert PacsNode("n", "A" * 17, "", 0).problems() == [
        "AE title must be 1-16 characters without backslash", "host is empty",
        "port 0 is not in 1-65535"]


# -------------------------------------------------------------------- errors


def test_refused_connection_names_node_and_reason():
    node = PacsNode("gone", "PACS", "127.0.0.1", free_port())
    with pytest.raises(NetError, match=r"^gone \(PACS@127\.0\.0\.1:\d+\): connection refused"):
        echo(node)


def test_timeout_on_a_silent_peer():
    with socket.socket() as silent:  # accepts TCP, never speaks DICOM
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        node = PacsNode("mute", "PACS", "127.0.0.1", silent.getsockname()[1])
        started = time.monotonic()
        with pytest.raises(NetError, match=r"mute .*within 1 s \(timeout"):
            echo(node, timeout=1)
        assert time.monotonic() - started < 10


def test_a_peer_without_c_get(scp):
    node = PacsNode("store-only", "RADVIEW", "127.0.0.1", scp.port)
    with pytest.raises(NetError, match="store-only .*does not support C-GET"):
        get_study(node, STUDY, scp.inbox)


# --------------------------------------------------------------- with Orthanc


@pytest.fixture(scope="module")
def pacs(tmp_path_factory):
    """Orthanc as the PACS; it knows radview's SCP as RADVIEW on a port reserved here."""
    root = tmp_path_factory.mktemp("pacs")
    scp_port = free_port()
    server = start_orthanc(root / "orthanc", {"radview": ("RADVIEW", "127.0.0.1", scp_port)})
    files = _study(root / "src", 2)
    out = storescu(server.dicom_port, files, called="ORTHANC")
    assert out.returncode == 0, out.stderr
    node = PacsNode("orthanc", "ORTHANC", "127.0.0.1", server.dicom_port, server.dicomweb)
    yield server, node, scp_port, root
    stop_orthanc(server)


def test_echo_and_unknown_called_ae(pacs):
    _, node, _, _ = pacs
    assert echo(node) < 10
    wrong = PacsNode("orthanc", "NOT-ORTHANC", node.host, node.port)
    with pytest.raises(NetError, match="association rejected.*[Cc]alled AE title"):
        echo(wrong)


@pytest.mark.parametrize(("query", "hits"), [
    (StudyQuery(), 1),
    (StudyQuery(patient_id="RV-NET-001"), 1),
    (StudyQuery(patient_name="Test*"), 1),
    (StudyQuery(date_from="20240101", date_to="20240131"), 1),
    (StudyQuery(date_from="20250101", date_to="20251231"), 0),
    (StudyQuery(modality="DX"), 1),
    (StudyQuery(accession="ACC0001"), 1),
    (StudyQuery(accession="NOPE"), 0),
])
def test_c_find_study_level(pacs, query, hits):
    matches = find_studies(pacs[1], query)
    assert len(matches) == hits
    if hits:
        assert matches[0].study_uid == STUDY and matches[0].instances == 2


def test_c_get(pacs, tmp_path):
    result = get_study(pacs[1], STUDY, tmp_path / "inbox")
    assert result.completed == 2 and result.failed == 0 and len(result.paths) == 2


def test_c_move_to_unknown_destination(pacs):
    # Orthanc answers 0xC000 (not 0xA801); either way the message names the destination
    with pytest.raises(NetError, match="orthanc .*C-MOVE .*destination 'NOBODY'"):
        move_study(pacs[1], STUDY, destination="NOBODY")


def test_dicomweb_qido_wado_stow(pacs, tmp_path):
    _, node, _, _ = pacs
    [match] = dicomweb_search(node, StudyQuery(patient_id="RV-NET-001"))
    assert match.study_uid == STUDY
    got = dicomweb_retrieve(node, STUDY, tmp_path / "inbox")
    assert got.completed == 2 and all(p.exists() for p in got.paths)
    extra = make_dicom(tmp_path / "x.dcm", study_uid="1.2.826.0.1.3680043.8.498.99.1",
                       patient_id="RV-WEB")
    assert dicomweb_store(node, [extra]).sent == [extra]
    assert [m.patient_id for m in dicomweb_search(node, StudyQuery(patient_id="RV-WEB"))] \
        == ["RV-WEB"]
    bad = PacsNode("web", "X", "127.0.0.1", 1, f"http://127.0.0.1:{free_port()}/dicom-web")
    with pytest.raises(NetError, match="web .*QIDO-RS search: cannot connect"):
        dicomweb_search(bad, StudyQuery())


def test_round_trip_query_retrieve_analyse_send_back(pacs, tmp_path):
    """Query Orthanc → C-MOVE to radview's SCP → analyse → SR + SCs back → findscu and
    Orthanc's REST API see them → dciodvfy passes on what arrived."""
    from bundle_factory import make_bundle

    from inference.engine import Engine
    from viewer.analysis import build_inputs
    from viewer.dicom_results import findings_for, outcome_from, write_results

    server, node, scp_port, _ = pacs
    events = _Events()
    with StorageServer(tmp_path / "inbox", port=scp_port, on_stored=events.on_stored,
                       on_association=events.on_association) as scp:
        [match] = find_studies(node, StudyQuery(patient_id="RV-NET-001"))
        started = time.perf_counter()
        moved = move_study(node, match.study_uid, destination="RADVIEW")
        assert moved.completed == 2 and moved.failed == 0
        _wait(lambda: len(events.stored) == 2)
        assert events.first is not None and events.first - started < 10
        inbox_study = scp.inbox / STUDY
    study = loader.scan([inbox_study]).studies[0]
    inputs, errors = build_inputs(study)
    assert not errors and len(inputs) == 2
    bundle = make_bundle(tmp_path / "bundle")
    result = Engine(bundle, "cpu").analyze(inputs, cams=True)
    paths = write_results(outcome_from(study, inputs, result, bundle), tmp_path / "out")
    sent = store_files(node, paths)
    assert sent.failed == [] and len(sent.sent) == 3

    # findscu (DCMTK) at series level sees the SR and SC series next to the source one
    # (calling as RADVIEW: Orthanc answers C-FIND only from the modalities it knows)
    out = subprocess.run([need("findscu"), "-S", "-aet", "RADVIEW", "-aec", "ORTHANC", "-k",
                          "QueryRetrieveLevel=SERIES", "-k", f"StudyInstanceUID={STUDY}",
                          "-k", "SeriesNumber", "-k", "Modality", "127.0.0.1",
                          str(node.port)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "9901" in out.stderr + out.stdout and "9902" in out.stderr + out.stdout
    # Orthanc's REST API: 3 series; what arrived passes dciodvfy and reads back
    [orthanc_id] = [r["ID"] for r in server.rest("/tools/lookup", STUDY.encode())
                    if r["Type"] == "Study"]
    series = server.rest(f"/studies/{orthanc_id}/series")
    assert sorted(s["MainDicomTags"].get("Modality") for s in series) == ["DX", "OT", "SR"]
    for s in series:
        if s["MainDicomTags"].get("Modality") == "DX":
            continue
        for instance in s["Instances"]:
            arrived = tmp_path / f"arrived_{instance}.dcm"
            arrived.write_bytes(server.rest(f"/instances/{instance}/file"))
            assert dciodvfy_errors(arrived) == [], arrived
    # reopening the retrieved study plus what radview wrote shows the SR findings
    reopened = loader.scan([inbox_study, tmp_path / "out"])
    finding = findings_for(reopened)[STUDY]
    assert set(finding.views) == {im.sop_instance_uid for im in study.images}
    assert len(build_inputs(reopened.studies[0])[0]) == 2


# ------------------------------------------------------------------ the CLI


def test_radview_listen_cli(tmp_path):
    port = free_port()
    with open(tmp_path / "stderr.txt", "w") as err, subprocess.Popen(
            [sys.executable, "-m", "viewer.cli", "listen", "--inbox", str(tmp_path / "inbox"),
             "--port", str(port)], stdout=subprocess.PIPE, stderr=err, text=True,
            env={**os.environ, "PYTHONWARNINGS": "ignore"}) as proc:
        _talk_to_listen(proc, port, tmp_path)
    assert proc.returncode == 0, (tmp_path / "stderr.txt").read_text()


def _talk_to_listen(proc: subprocess.Popen[str], port: int, tmp_path: Path) -> None:
    try:
        first = json.loads(proc.stdout.readline())
        assert first == {"event": "listening", "aet": "RADVIEW", "host": "127.0.0.1",
                         "port": port, "inbox": str(tmp_path / "inbox")}
        files = _study(tmp_path / "src", 3)
        assert storescu(port, files).returncode == 0
        line = json.loads(proc.stdout.readline())
        assert line["event"] == "association" and line["calling_aet"] == "STORESCU"
        assert line["studies"] == [{"study": STUDY, "folder": str(tmp_path / "inbox" / STUDY),
                                    "instances": 3}]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def test_radview_listen_port_in_use(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        from viewer.cli import main

        code = main(["listen", "--inbox", str(tmp_path), "--port",
                     str(busy.getsockname()[1])])
    assert code == 2


def test_predict_dicom_out(tmp_path, capsys):
    from bundle_factory import make_bundle

    from viewer.cli import main

    _study(tmp_path / "src", 2)
    make_bundle(tmp_path / "bundle")
    code = main(["predict", str(tmp_path / "src"), "--bundle", str(tmp_path / "bundle"),
                 "--dicom-out", str(tmp_path / "out"), "--no-progress"])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    written = [Path(p) for p in doc["studies"][0]["dicom"]]
    assert [p.name[:3] for p in written] == ["SR_", "SC_", "SC_"]
    assert all(p.exists() and p.parent == tmp_path / "out" / STUDY for p in written)


def test_radview_listen_analyses_and_writes_dicom(tmp_path):
    # --analyse: each received study is scored as `radview predict FOLDER` would, with
    # --dicom-out the SR and SCs land next to it.
    from bundle_factory import make_bundle

    make_bundle(tmp_path / "bundle")
    port = free_port()
    with open(tmp_path / "stderr.txt", "w") as err, subprocess.Popen(
            [sys.executable, "-m", "viewer.cli", "listen", "--inbox", str(tmp_path / "inbox"),
             "--port", str(port), "--analyse", "--bundle", str(tmp_path / "bundle"),
             "--dicom-out", str(tmp_path / "out")], stdout=subprocess.PIPE, stderr=err,
            text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"}) as proc:
        try:
            assert json.loads(proc.stdout.readline())["event"] == "listening"
            assert storescu(port, _study(tmp_path / "src", 2)).returncode == 0
            assert json.loads(proc.stdout.readline())["event"] == "association"
            text = ""
            while not text.rstrip().endswith("}") or text.count("{") != text.count("}"):
                line = proc.stdout.readline()
                assert line, (tmp_path / "stderr.txt").read_text()
                text += line
            doc = json.loads(text)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    assert doc["schema"] == "radview-predict/1" and doc["studies"][0]["supported"]
    assert [Path(p).name[:3] for p in doc["studies"][0]["dicom"]] == ["SR_", "SC_", "SC_"]
