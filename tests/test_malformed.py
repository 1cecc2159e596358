"""Mangled files (issue 12 §3): whatever one file does to pydicom, Pillow or a decoder is
that file's error, reported once, in one line, and every file given is accounted for.

Each case is a real file (radview's factory, or pydicom's test data) with one defect that
a mutation fuzzer found; ``tests/test_fuzz.py`` runs the fuzzer itself.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from dicom_factory import make_dicom, make_dicomdir
from PIL import Image
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.pixels import pixel_array
from pydicom.uid import MediaStorageDirectoryStorage

from viewer import logs, pixels
from viewer.cli.info import main as info_main
from viewer.cli.render import main as render_main
from viewer.loader import scan
from viewer.pixels import PixelError, decode, is_recoverable


def data_file(name: str) -> Path:
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.fail(f"{name} is not available locally: pip install pydicom-data")
    return Path(path)


def patch_bytes(path: Path, old: bytes, new: bytes) -> Path:
    """Replace the one occurrence of ``old`` in the file (asserted unique)."""
    raw = path.read_bytes()
    assert raw.count(old) == 1, f"{old!r} occurs {raw.count(old)} times"
    path.write_bytes(raw.replace(old, new))
    return path


@pytest.fixture
def quiet_logging():
    """radview's logging set up as the command line does; root handlers restored after."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    logs.setup_logging(verbose=False)
    yield
    for handler in list(root.handlers):
        if handler not in saved_handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(saved_level)


# ------------------------------------------------------------- unknown VRs in headers

# Explicit VR Little Endian element headers: tag (group, element little endian) + VR.
PATIENT_NAME_PN = b"\x10\x00\x10\x00PN"
REFERRING_PN = b"\x08\x00\x90\x00PN"
META_SOP_CLASS_UI = b"\x02\x00\x02\x00UI"


@pytest.mark.parametrize("header", [
    # Patient's Name with VR "XY": pydicom raised NotImplementedError on reading the value,
    # outside any guard, and the whole scan (`radview info DIR`) died with it.
    PATIENT_NAME_PN,
    # Referring Physician's Name, read the same unguarded way.
    REFERRING_PN,
], ids=["PatientName", "ReferringPhysicianName"])
def test_unknown_vr_in_a_name_costs_no_other_file(tmp_path, capsys, header):
    for i in range(3):
        make_dicom(tmp_path / f"IM{i}.dcm", instance_number=i + 1)
    bad = make_dicom(tmp_path / "IM9.dcm", instance_number=9,
                     extra={"ReferringPhysicianName": "REF^DOC"})
    patch_bytes(bad, header, header[:4] + b"XY")
    result = scan([tmp_path])
    assert sorted(im.name for im in result.images) == ["IM0.dcm", "IM1.dcm", "IM2.dcm",
                                                       "IM9.dcm"]
    assert all(im.ok for im in result.images) and result.errors == []
    assert info_main([str(tmp_path)]) == 0
    assert "4 images (4 usable)" in capsys.readouterr().out


def test_unknown_vr_in_the_file_meta(tmp_path, capsys):
    # (0002,0002) with VR "QQ": `_is_dicomdir` read it outside its try, so `radview info
    # FILE` and `radview render FILE` crashed before looking at the image.
    bad = patch_bytes(make_dicom(tmp_path / "meta.dcm"), META_SOP_CLASS_UI,
                      META_SOP_CLASS_UI[:4] + b"QQ")
    assert info_main([str(bad)]) == 0
    assert "1 image (1 usable)" in capsys.readouterr().out
    assert render_main([str(bad), "-o", str(tmp_path / "out.png")]) == 0
    with Image.open(tmp_path / "out.png") as im:
        assert im.size == (64, 64)


def test_a_library_failure_while_examining_is_that_files_error(tmp_path, monkeypatch):
    # Whatever escapes the examination of one file (here a KeyError from a library, as the
    # fuzzer found) becomes that file's error; the next file is still scanned.
    make_dicom(tmp_path / "a.dcm")
    make_dicom(tmp_path / "b.dcm")
    import viewer.loader as loader

    real = loader._examine_dicom

    def examine(path):
        if path.name == "a.dcm":
            raise KeyError("boom")
        return real(path)

    monkeypatch.setattr(loader, "_examine_dicom", examine)
    result = scan([tmp_path])
    assert [im.name for im in result.images] == ["b.dcm"]
    [err] = result.errors
    assert err.path.name == "a.dcm" and err.reason == "cannot be read: KeyError: 'boom'"


# --------------------------------------------------------------------- decoder panics


def rle_panic_file(tmp_path: Path) -> Path:
    """pydicom's SC_rgb_rle_16bit.dcm with the first run header of its last RLE segment
    made a 128-byte replicate run: the segment decodes 28 bytes too long."""
    raw = bytearray(data_file("SC_rgb_rle_16bit.dcm").read_bytes())
    header = raw.find(bytes.fromhex("0600000040000000"))  # 6 segments, first at 64
    assert header > 0
    raw[header + 1064] = 0x81  # segment 6 starts at offset 1064 of the fragment
    out = tmp_path / "rle_panic.dcm"
    out.write_bytes(bytes(raw))
    return out


def test_pylibjpeg_rle_panics_on_the_file(tmp_path):
    # The precondition: pylibjpeg-rle raises pyo3's PanicException, which derives from
    # BaseException and so passed every `except Exception` in pixels and the GUI worker.
    with pytest.raises(BaseException) as caught:
        pixel_array(rle_panic_file(tmp_path), decoding_plugin="pylibjpeg")
    assert type(caught.value).__name__ == "PanicException"
    assert not isinstance(caught.value, Exception)
    assert is_recoverable(caught.value)


def test_rle_is_decoded_by_pydicoms_plugin(tmp_path):
    # RLE goes to pydicom's numpy plugin, which reports the over-long segment as a
    # warning (no panic, nothing printed by Rust) ...
    [ref] = scan([rle_panic_file(tmp_path)]).images
    decoded = decode(ref)
    assert decoded.stored.shape == (100, 100)
    assert any("non-conformant padding" in w for w in decoded.warnings)
    # ... and a real RLE file decodes exactly as with pylibjpeg-rle.
    [ok] = scan([data_file("SC_rgb_rle_16bit.dcm")]).images
    reference = pixel_array(data_file("SC_rgb_rle_16bit.dcm"), decoding_plugin="pylibjpeg")
    assert decode(ok).stored.shape == reference.shape[:2]


def test_a_decoder_panic_is_that_files_error(tmp_path, monkeypatch, capfd):
    # With pylibjpeg-rle chosen, the panic is caught as the file's PixelError, which says
    # the data is corrupt (not "install python-gdcm").
    monkeypatch.setattr(pixels, "RLE_PLUGIN", "pylibjpeg")
    [ref] = scan([rle_panic_file(tmp_path)]).images
    with pytest.raises(PixelError) as caught:
        decode(ref)
    assert "the decoder crashed: index out of bounds" in caught.value.reason
    assert caught.value.reason.endswith("the compressed data is corrupt")
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.parametrize("exc, recoverable", [
    (ValueError("bad value"), True),  # any Exception is one file's failure
    (NotImplementedError("Unknown Value Representation"), True),
    (KeyboardInterrupt(), False),  # the user's Ctrl+C must stop the scan
    (SystemExit(2), False),
    (GeneratorExit(), False),
])
def test_is_recoverable(exc, recoverable):
    assert is_recoverable(exc) is recoverable


def test_the_gui_worker_reports_a_panic(qtbot, tmp_path, monkeypatch):
    # The worker thread's guard caught Exception only: a panic killed the decode job
    # without `errored`, and the view waited for ever.
    from viewer.qt.worker import Worker

    monkeypatch.setattr(pixels, "RLE_PLUGIN", "pylibjpeg")
    path = rle_panic_file(tmp_path)

    def job(_job):
        return pixel_array(path, decoding_plugin="pylibjpeg")

    worker = Worker(job)
    with qtbot.waitSignal(worker.signals.errored, timeout=30000) as blocker:
        worker.run()
    assert type(blocker.args[0]).__name__ == "PanicException"


# ------------------------------------------------------------------- corrupt codestreams


def corrupt_jpeg(tmp_path: Path) -> Path:
    """pydicom's SC_rgb_jpeg_dcmtk.dcm (JPEG Baseline) with its scan header (SOS) naming
    Huffman tables 7/7, which do not exist."""
    raw = bytearray(data_file("SC_rgb_jpeg_dcmtk.dcm").read_bytes())
    sos = raw.find(b"\xff\xda")
    assert sos > 0
    raw[sos + 6] = 0x77  # Td/Ta of the first component
    out = tmp_path / "jpeg_corrupt.dcm"
    out.write_bytes(bytes(raw))
    return out


@pytest.mark.parametrize("make, says, never", [
    # Every installed plugin failed on the data: another decoder would not help.
    (corrupt_jpeg, "the compressed data is corrupt", "python-gdcm"),
    # 12-bit JPEG Extended: Pillow refuses the variant, so gdcm is the right advice.
    (lambda tmp: data_file("JPEG-lossy.dcm"), "install python-gdcm", "is corrupt"),
], ids=["corrupt-baseline", "12-bit-extended"])
def test_decode_failure_hint(tmp_path, make, says, never):
    [ref] = scan([make(tmp_path)]).images
    with pytest.raises(PixelError) as caught:
        decode(ref)
    assert says in caught.value.reason and never not in caught.value.reason


def test_pydicom_tracebacks_stay_out_of_stderr_and_the_log(tmp_path, quiet_logging, capfd):
    # pydicom logs each failed plugin at ERROR with a traceback that quotes UIDs; radview
    # reports the failure itself. Importing pydicom resets its logger's level, so the
    # records are dropped by radview's handlers instead.
    path = corrupt_jpeg(tmp_path)
    uid = str(dcmread(path, stop_before_pixels=True).SOPInstanceUID)
    [ref] = scan([path]).images
    with pytest.raises(PixelError):
        decode(ref)
    for handler in logging.getLogger().handlers:
        handler.flush()
    err = capfd.readouterr().err
    log_text = (Path(logs.paths.log_file())).read_text(encoding="utf-8")
    for text in (err, log_text):
        assert "Traceback" not in text and "pydicom" not in text and uid not in text


# ------------------------------------------------------------------ DICOMDIR by content


def bbmri_like(tmp_path: Path) -> tuple[Path, Path]:
    """A DICOMDIR named ``bbmri.dcmdir`` whose file meta lacks (0002,0002) Media Storage SOP
    Class (its SOP Class is in the data set instead) and whose one reference is missing,
    like the real ``bbmri.dcmdir`` test file. Returns (the file, the missing path)."""
    root = tmp_path / "media"
    dicomdir = make_dicomdir(root, [make_dicom(tmp_path / "src.dcm")])
    ds = dcmread(dicomdir)
    del ds.file_meta.MediaStorageSOPClassUID
    ds.SOPClassUID = MediaStorageDirectoryStorage
    out = root / "bbmri.dcmdir"
    ds.save_as(out, enforce_file_format=False)
    dicomdir.unlink()
    [missing] = [p for p in root.rglob("*") if p.is_file() and p != out]
    missing.unlink()
    return out, missing


def test_dicomdir_without_meta_sop_class_is_expanded(tmp_path, capsys):
    # `info` said "0 images … 0 files not used" and `render` "expected one image, found
    # 0": the file was neither an image nor an error. Its missing reference is listed.
    path, missing = bbmri_like(tmp_path)
    result = scan([path])
    [err] = result.errors
    assert err.path == missing and err.reason.endswith("but the file is missing")
    assert info_main([str(path)]) == 2
    out = capsys.readouterr().out
    assert f"{missing}: DICOMDIR record" in out and "1 file not used" in out
    assert render_main([str(path), "-o", str(tmp_path / "x.png")]) == 2
    assert "the file is missing" in capsys.readouterr().err


def test_dicomdir_by_content_loads_its_images(tmp_path):
    # The same file with its reference present: the image is loaded through it.
    root = tmp_path / "media"
    dicomdir = make_dicomdir(root, [make_dicom(tmp_path / "src.dcm")])
    ds = dcmread(dicomdir)
    del ds.file_meta.MediaStorageSOPClassUID
    ds.SOPClassUID = MediaStorageDirectoryStorage
    ds.save_as(root / "index.dcmdir", enforce_file_format=False)
    dicomdir.unlink()
    result = scan([root / "index.dcmdir"])
    assert len(result.images) == 1 and result.errors == []
    assert np.asarray(decode(result.images[0]).stored).shape == (64, 64)


def test_a_codestream_larger_than_the_header_is_refused_before_decoding(tmp_path):
    # pydicom's JPEG2000.dcm (256×1024) with one byte of the SIZ marker's Ysiz changed:
    # the codestream declares 256×15,533,056 pixels and openjpeg ran for minutes (the
    # fuzzer's one hang). It is refused from its header, without calling the decoder.
    raw = bytearray(data_file("JPEG2000.dcm").read_bytes())
    siz = raw.find(b"\xff\x4f\xff\x51")
    assert raw[siz + 13] == 0x00
    raw[siz + 13] = 0xED
    path = tmp_path / "j2k_siz.dcm"
    path.write_bytes(bytes(raw))
    [ref] = scan([path]).images
    with pytest.raises(PixelError) as caught:
        decode(ref)
    assert ("the JPEG 2000 codestream's SIZ marker declares 256×15533056 pixels "
            "(width×height), the DICOM header 256×1024" in caught.value.reason)
