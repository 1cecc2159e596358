"""Presentation states (issue 16): radview's own written, checked by DCMTK and read back;
another tool's (built here with highdicom) applied. Qt-free."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import highdicom as hd
import numpy as np
import pytest
from dicom_factory import make_dicom, uid_for
from PIL import Image
from pydicom import dcmread
from pydicom.uid import generate_uid

from viewer import gsps
from viewer import measure as ms
from viewer.loader import scan
from viewer.model import Window

DCMPSCHK = shutil.which("dcmpschk")
DCMP2PGM = shutil.which("dcmp2pgm")
needs_dcmtk = pytest.mark.skipif(DCMPSCHK is None or DCMP2PGM is None,
                                 reason="DCMTK (dcmpschk, dcmp2pgm) is not installed; "
                                        ".ci/run installs it")


def _image(tmp_path: Path, **kw) -> Path:
    rows, cols = kw.pop("rows", 48), kw.pop("cols", 64)
    ramp = np.tile(np.linspace(0, 4095, cols).round().astype(np.uint16), (rows, 1))
    return make_dicom(tmp_path / "study" / "im.dcm", rows=rows, cols=cols, pixels=ramp,
                      sop_uid=uid_for(tmp_path, "im"), modality="DX",
                      extra={"ImagerPixelSpacing": [0.2, 0.2],
                             "PatientOrientation": ["R", "F"], **kw.pop("extra", {})},
                      **kw)


ANNOTATIONS = [
    ms.Annotation(ms.LENGTH, ((1, 2), (31, 42))),
    ms.Annotation(ms.ANGLE, ((10, 10), (20, 20), (30, 10))),
    ms.Annotation(ms.COBB, ((1, 1), (20, 5), (2, 30), (20, 25))),
    ms.Annotation(ms.ELLIPSE, ((5, 5), (25, 15))),
    ms.Annotation(ms.RECTANGLE, ((5, 20), (25, 30))),
    ms.Annotation(ms.ARROW, ((40, 30), (55, 40)), text="fracture line"),
    ms.Annotation(ms.CALIBRATION, ((0, 45), (50, 45)), length_mm=12.5),
]


def _save(tmp_path, **kw):
    [ref] = scan([_image(tmp_path)]).images
    cal = ms.calibration_for(ref.spacing)
    path = gsps.save_gsps(ref, ANNOTATIONS, calibration=cal,
                          window=Window(1000, 800, "bone"), **kw)
    return ref, path


def test_radview_gsps_round_trip(tmp_path):
    ref, path = _save(tmp_path, rotation=90, flip_h=True)
    # Beside the image, found by the next scan as a presentation state, not an error.
    assert path.parent == ref.path.parent and path.name.startswith("radview-pr-")
    result = scan([ref.path.parent])
    assert result.presentation_states == [path] and result.errors == []
    state = gsps.latest_states(result)[ref.sop_instance_uid]
    assert state.radview
    got = state.annotations[ref.sop_instance_uid]
    # Every tool comes back as the same editable annotation (ids, kinds, points).
    assert [(a.kind, a.id, a.points, a.length_mm) for a in got] == [
        (a.kind, a.id, tuple((float(x), float(y)) for x, y in a.points), a.length_mm)
        for a in ANNOTATIONS]
    assert next(a for a in got if a.kind == ms.ARROW).text == "fracture line"
    assert state.window_for(ref.sop_instance_uid) == Window(1000, 800, "bone", "LINEAR")
    assert (state.rotation, state.flip_h) == (90, True)
    ds = dcmread(path)
    # Graphic Data in PIXEL units with the 0\0 origin at the top left pixel's corner.
    objects = ds.GraphicAnnotationSequence[0].GraphicObjectSequence
    assert [float(v) for v in objects[0].GraphicData] == [1.5, 2.5, 31.5, 42.5]
    assert objects[0].GraphicAnnotationUnits == "PIXEL"
    # The value as radview displayed it travels as text for other viewers.
    texts = [t.UnformattedTextValue for t in ds.GraphicAnnotationSequence[0]
             .TextObjectSequence]
    assert "10.0 mm at detector" in texts


def test_vertical_flip_is_written_as_horizontal_flip_and_180(tmp_path):
    ref, path = _save(tmp_path, rotation=90, flip_v=True)
    ds = dcmread(path)
    assert (int(ds.ImageRotation), ds.ImageHorizontalFlip) == (270, "Y")


def test_inversion_is_the_presentation_lut(tmp_path):
    _ref, path = _save(tmp_path, invert=True)
    assert dcmread(path).PresentationLUTShape == "INVERSE"
    state = gsps.read_gsps(path)
    assert state.invert_for("MONOCHROME2") is True
    assert state.invert_for("MONOCHROME1") is False


@needs_dcmtk
def test_dcmtk_accepts_and_applies_radview_gsps(tmp_path):
    ref, path = _save(tmp_path, rotation=90)
    check = subprocess.run([DCMPSCHK, str(path)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "Test passed" in check.stdout + check.stderr
    assert "Error" not in check.stdout + check.stderr
    # dcmp2pgm renders the image through the presentation state: rotated 90° (the
    # 64 wide, 48 high image becomes 48 wide, 64 high) and windowed 1000/800.
    out = tmp_path / "out.pgm"
    run = subprocess.run([DCMP2PGM, "-p", str(path), str(ref.path), str(out)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    with Image.open(out) as im:
        arr = np.asarray(im)
    assert arr.shape == (64, 48)
    # The ramp ran left→right (0..4095); rotated clockwise it runs top→bottom. Window
    # 1000/800 maps values below 600 to black and above 1400 to white.
    assert arr[0, 24] == 0 and arr[-1, 24] == 255


def _foreign_gsps(tmp_path: Path, image: Path) -> Path:
    """A presentation state as another system writes it (highdicom, no radview ids)."""
    source = dcmread(image, stop_before_pixels=True)
    layer = hd.pr.GraphicLayer(layer_name="OTHER", order=1)
    ann = hd.pr.GraphicAnnotation(
        referenced_images=[source], graphic_layer=layer,
        graphic_objects=[
            hd.pr.GraphicObject(graphic_type="POLYLINE",
                                graphic_data=np.array([[10.5, 10.5], [40.5, 10.5]]),
                                units="PIXEL"),
            hd.pr.GraphicObject(graphic_type="CIRCLE",
                                graphic_data=np.array([[0.5, 0.5], [0.6, 0.5]]),
                                units="DISPLAY"),
        ],
        text_objects=[hd.pr.TextObject(text_value="see prior", units="PIXEL",
                                       anchor_point=(20.5, 30.5))])
    ps = hd.pr.GrayscaleSoftcopyPresentationState(
        referenced_images=[source], series_instance_uid=generate_uid(), series_number=5,
        sop_instance_uid=generate_uid(), instance_number=1, manufacturer="Other PACS",
        manufacturer_model_name="X", software_versions="1", device_serial_number="1",
        content_label="OTHER", graphic_annotations=[ann], graphic_layers=[layer],
        voi_lut_transformations=[hd.pr.SoftcopyVOILUTTransformation(
            window_center=[2000.0], window_width=[500.0], window_explanation=["THEIRS"])])
    ps.ImageRotation = 180
    ps.ImageHorizontalFlip = "N"
    out = image.parent / "other-ps.dcm"
    ps.save_as(out, enforce_file_format=True)
    return out


def test_foreign_gsps_is_read(tmp_path):
    image = _image(tmp_path)
    _foreign_gsps(tmp_path, image)
    result = scan([image.parent])
    [ref] = result.images
    state = gsps.latest_states(result)[ref.sop_instance_uid]
    assert not state.radview
    anns = state.annotations[ref.sop_instance_uid]
    line = next(a for a in anns if a.kind == ms.GRAPHIC and a.graphic_type == "POLYLINE")
    assert line.points == ((10.0, 10.0), (40.0, 10.0)) and not line.editable
    circle = next(a for a in anns if a.graphic_type == "CIRCLE")
    # DISPLAY units: fractions of the displayed area (the whole 64×48 image).
    assert circle.points[0] == pytest.approx((0.5 * 64 - 0.5, 0.5 * 48 - 0.5))
    text = next(a for a in anns if a.kind == ms.TEXT)
    assert (text.text, text.points) == ("see prior", ((20.0, 30.0),))
    assert state.window_for(ref.sop_instance_uid) == Window(2000, 500, "THEIRS", "LINEAR")
    assert (state.rotation, state.flip_h) == (180, False)


def test_newest_state_wins_and_broken_files_are_skipped(tmp_path):
    ref, ours = _save(tmp_path)
    other = _foreign_gsps(tmp_path, ref.path)
    ds = dcmread(other)
    ds.PresentationCreationDate, ds.PresentationCreationTime = "19990101", "000000"
    ds.save_as(other)
    (ref.path.parent / "broken.dcm").write_bytes(dcmread(ours).preamble + b"DICM" + b"x")
    result = scan([ref.path.parent])
    states = gsps.latest_states(result)
    assert states[ref.sop_instance_uid].path == ours


def test_read_only_folder_falls_back_to_user_data(tmp_path, monkeypatch):
    [ref] = scan([_image(tmp_path)]).images

    def refuse(path, data):
        if Path(path).parent == ref.path.parent:
            raise PermissionError("read-only")
        from viewer.atomicio import write_bytes_atomic as real

        return real(path, data)

    monkeypatch.setattr(gsps, "write_bytes_atomic", refuse)
    path = gsps.save_gsps(ref, ANNOTATIONS[:1], calibration=ms.PIXELS)
    study_uid = dcmread(ref.path, stop_before_pixels=True).StudyInstanceUID
    assert path.parent == gsps.fallback_folder(study_uid)
    assert gsps.known_paths(ref, study_uid) == [path]


DCMPSPRT = shutil.which("dcmpsprt")
PSTAT_CFG = Path("/etc/dcmtk/dcmpstat.cfg")


@pytest.mark.skipif(DCMPSPRT is None or not PSTAT_CFG.is_file(),
                    reason="DCMTK's dcmpsprt and its dcmpstat.cfg are not installed")
def test_dcmpsprt_prints_the_image_through_radview_gsps(tmp_path):
    # DCMTK's print renderer applies the presentation state (VOI, rotation, annotations
    # burned in) and stores a Hardcopy Grayscale Image: radview's GSPS is usable there.
    ref, path = _save(tmp_path, rotation=90)
    work = tmp_path / "print"
    for sub in ("database", "spool", "log", "lut", "reports"):
        (work / sub).mkdir(parents=True)
    run = subprocess.run([DCMPSPRT, "-c", str(PSTAT_CFG), "+p", str(path), str(ref.path)],
                         cwd=work, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "E:" not in run.stdout + run.stderr
    [hardcopy] = (work / "database").glob("HG_*.dcm")
    assert dcmread(hardcopy, stop_before_pixels=True).SOPClassUID == (
        "1.2.840.10008.5.1.1.29")  # Hardcopy Grayscale Image Storage
