"""viewer.logs: the log file's place, rotation, and redaction of patient identifiers."""

from __future__ import annotations

import logging

import pytest

from viewer import logs, paths


@pytest.fixture
def state_dir(tmp_path, monkeypatch):
    """A private state folder; the root logger and the identifier registry restored after."""
    monkeypatch.setenv("RADVIEW_STATE_DIR", str(tmp_path / "state"))
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    logs.clear_identifiers()
    yield tmp_path / "state"
    for handler in list(root.handlers):
        if handler not in saved_handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(saved_level)
    logs.clear_identifiers()


def _flush() -> None:
    for handler in logging.getLogger().handlers:
        handler.flush()


def test_log_file_is_in_the_state_folder(state_dir):
    path = logs.setup_logging(verbose=False)
    assert path == state_dir / "radview.log" == paths.log_file()
    logging.getLogger("radview.test").info("hello from the test")
    _flush()
    assert "hello from the test" in path.read_text(encoding="utf-8")


def test_default_state_folder_is_platformdirs(tmp_path, monkeypatch):
    import platformdirs

    monkeypatch.delenv("RADVIEW_STATE_DIR", raising=False)
    monkeypatch.setattr(platformdirs, "user_state_dir", lambda app: str(tmp_path / app))
    assert paths.log_file() == tmp_path / "radview" / "radview.log"
    assert (tmp_path / "radview").is_dir()


def test_setup_twice_does_not_duplicate_handlers(state_dir):
    logs.setup_logging()
    logs.setup_logging()
    ours = [h for h in logging.getLogger().handlers if getattr(h, "_radview", False)]
    assert len(ours) == 2  # one file, one stderr


def test_rotation_keeps_three_backups_of_1mb(state_dir):
    path = logs.setup_logging()
    log = logging.getLogger("radview.test")
    chunk = "x" * 10_000
    for i in range(520):  # ~5.2 MB: rotates more than three times
        log.info("%04d %s", i, chunk)
    _flush()
    files = sorted(p.name for p in state_dir.iterdir())
    assert files == ["radview.log", "radview.log.1", "radview.log.2", "radview.log.3"]
    for p in state_dir.iterdir():
        assert p.stat().st_size <= logs.MAX_BYTES
    # the newest record is in the current file, the oldest ones were dropped
    assert "0519 " in path.read_text(encoding="utf-8")
    assert "0000 " not in "".join(p.read_text(encoding="utf-8") for p in state_dir.iterdir())


def test_stderr_gets_warnings_only(state_dir, capsys):
    logs.setup_logging(verbose=False)
    log = logging.getLogger("radview.test")
    log.info("quiet info")
    log.warning("loud warning")
    err = capsys.readouterr().err
    assert "loud warning" in err and "quiet info" not in err


def test_verbose_logs_debug(state_dir, capsys):
    path = logs.setup_logging(verbose=True)
    logging.getLogger("radview.test").debug("debug detail")
    _flush()
    assert "debug detail" in path.read_text(encoding="utf-8")
    assert "debug detail" in capsys.readouterr().err


def test_registered_patient_name_and_id_are_redacted_in_the_file(state_dir, capsys):
    path = logs.setup_logging()
    logs.register_identifiers(["DOE^JANE^Q", "PAT-0042"])
    log = logging.getLogger("radview.loader")
    log.warning("opened %s (%s) for patient pat-0042", "DOE^JANE^Q", "Jane Doe")
    log.info("Jane Q Doe again; the hand study of DOE")
    _flush()
    text = path.read_text(encoding="utf-8")
    err = capsys.readouterr().err
    for leaked in ("DOE", "Doe", "JANE", "Jane", "PAT-0042", "pat-0042"):
        assert leaked not in text, leaked
        assert leaked not in err, leaked
    assert "[redacted]" in text and "hand study" in text


def test_pydicom_person_name_can_be_registered(state_dir):
    from pydicom.valuerep import PersonName

    logs.register_identifiers([PersonName("SMITH^ROBERT"), None, "", "AB"])
    assert logs.redact("Robert Smith / SMITH^ROBERT") == "[redacted] / [redacted]"
    assert logs.redact("AB stays: too short to register") == "AB stays: too short to register"


def test_keyword_values_are_redacted_without_registration():
    logs.clear_identifiers()
    text = logs.redact("bad header PatientName=ROE^RICHARD, PatientID: 77-1 (Rows=512)")
    assert "ROE" not in text and "77-1" not in text
    assert "PatientName=[redacted]" in text and "Rows=512" in text
    dump = logs.redact("(0010,0010) Patient's Name   PN: 'ROE^RICHARD'")
    assert "ROE" not in dump and dump.endswith("[redacted]")


def test_words_that_merely_contain_an_identifier_survive():
    logs.clear_identifiers()
    logs.register_identifiers(["ANN"])
    assert logs.redact("annotation by Ann") == "annotation by [redacted]"
    logs.clear_identifiers()


def test_tracebacks_are_redacted(state_dir):
    path = logs.setup_logging()
    logs.register_identifiers(["MUSTERMANN^ERIKA"])
    try:
        raise ValueError("cannot parse MUSTERMANN^ERIKA")
    except ValueError:
        logging.getLogger("radview.test").exception("load failed")
    _flush()
    text = path.read_text(encoding="utf-8")
    assert "load failed" in text and "ValueError" in text
    assert "MUSTERMANN" not in text and "ERIKA" not in text


def test_unwritable_state_folder_falls_back_to_stderr(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("RADVIEW_STATE_DIR", str(blocker))
    root = logging.getLogger()
    saved = list(root.handlers), root.level
    try:
        assert logs.setup_logging() is None
        assert "no log file" in capsys.readouterr().err
    finally:
        for handler in list(root.handlers):
            if handler not in saved[0]:
                root.removeHandler(handler)
                handler.close()
        root.setLevel(saved[1])


# ----------------------------------------------- identifiers in file and folder names


@pytest.mark.parametrize("verbose", [False, True], ids=["default", "verbose"])
def test_file_and_folder_names_never_reach_the_log(state_dir, tmp_path, verbose):
    # Archives name files after patients: DOE_JANE.dcm, MRN12345_hand/. Paths were logged
    # at INFO before any header was read (so nothing was registered yet), and the
    # redaction's \w boundaries did not match DOE inside DOE_JANE. A tree with such names
    # is scanned and decoded; the log names files by a hash only.
    from dicom_factory import make_dicom, make_dicomdir

    from viewer.loader import scan
    from viewer.pixels import PixelError, decode

    path = logs.setup_logging(verbose=verbose)
    tree = tmp_path / "MRN12345_DOE_JANE"
    first = make_dicom(tree / "DOE_JANE.dcm", patient_name="DOE^JANE", patient_id="MRN12345")
    (tree / "DOE_JANE copy.dcm").write_bytes(first.read_bytes())  # duplicate SOP UID
    (tree / "MRN12345_notes.dcm").write_bytes(b"\0" * 200)  # unreadable
    make_dicomdir(tree / "MRN12345_hand",
                  [make_dicom(tmp_path / "src" / "JANE.dcm", patient_name="DOE^JANE",
                              patient_id="MRN12345")])
    result = scan([tree])
    for ref in result.images:
        try:
            decode(ref)
        except PixelError:
            pass
    _flush()
    text = path.read_text(encoding="utf-8")
    assert "scan: " in text and "file#" in text  # the log did record the scan
    for name in ("DOE", "JANE", "MRN12345", "notes", "hand"):
        assert name.casefold() not in text.casefold(), name


@pytest.mark.parametrize("message, registered, expected", [
    # `_` joins words in file names: the parts of a registered name are still found.
    ("opening DOE_JANE.dcm", ["DOE^JANE"], "opening [redacted]_[redacted].dcm"),
    ("opening MRN12345_hand.dcm", ["MRN12345"], "opening [redacted]_hand.dcm"),
    # ... but a registered value inside a longer word or number is left alone.
    ("JANET and 1MRN123456", ["DOE^JANE", "MRN12345"], "JANET and 1MRN123456"),
])
def test_redaction_boundaries(state_dir, message, registered, expected):
    logs.register_identifiers(registered)
    assert logs.redact(message) == expected


def test_file_ref_is_short_and_stable(tmp_path):
    # The same path gives the same reference (records of one file can be followed), the
    # name itself does not appear.
    ref = logs.file_ref(tmp_path / "DOE_JANE.dcm")
    assert ref == logs.file_ref(str(tmp_path / "DOE_JANE.dcm"))
    assert ref.startswith("file#") and len(ref) == 13 and "DOE" not in ref
    assert ref != logs.file_ref(tmp_path / "DOE_JOHN.dcm")
