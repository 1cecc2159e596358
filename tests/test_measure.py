"""Measurements with honest calibration (issue 16), Qt-free.

The calibration table is a set of generated DICOM files, one per case PS3.3 distinguishes
(Pixel Spacing vs Imager Pixel Spacing, Estimated Radiographic Magnification Factor,
Pixel Spacing Calibration Type), each with the exact length a 30 × 40 pixel segment
(50 px) must measure and the basis shown beside it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from dicom_factory import make_dicom, uid_for
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence

from viewer import measure as ms
from viewer.display import DisplayPipeline
from viewer.loader import scan
from viewer.orientation import edge_letters, opposite


def _enhanced_spacing(spacing: list[float]) -> DicomSequence:
    measures = Dataset()
    measures.PixelSpacing = spacing
    measures.SliceThickness = 1
    item = Dataset()
    item.PixelMeasuresSequence = DicomSequence([measures])
    return DicomSequence([item])


#: (id, header elements, expected basis, expected length of the (0,0)–(30,40) segment)
CALIBRATION_CASES = [
    # No spacing at all (e.g. pydicom-data RG3): pixels, never millimetres.
    ("none", {}, "px", 50.0),
    # Pixel Spacing alone: in the patient (PS3.3 10.7.1.3), plain "mm".
    ("pixel-spacing", {"PixelSpacing": [0.5, 0.5]}, "mm", 25.0),
    # Imager Pixel Spacing alone: at the detector, magnification not corrected.
    ("imager-only", {"ImagerPixelSpacing": [0.2, 0.2]}, "mm at detector", 10.0),
    # Imager Pixel Spacing and ERMF: divided by the magnification (0.2 / 1.25 = 0.16).
    ("imager-ermf", {"ImagerPixelSpacing": [0.2, 0.2],
                     "EstimatedRadiographicMagnificationFactor": "1.25"},
     "mm, corrected by ERMF 1.25", 8.0),
    # Pixel Spacing equal to Imager Pixel Spacing: still the detector plane.
    ("equal", {"PixelSpacing": [0.2, 0.2], "ImagerPixelSpacing": [0.2, 0.2]},
     "mm at detector", 10.0),
    # ... and with ERMF: corrected.
    ("equal-ermf", {"PixelSpacing": [0.2, 0.2], "ImagerPixelSpacing": [0.2, 0.2],
                    "EstimatedRadiographicMagnificationFactor": "1.25"},
     "mm, corrected by ERMF 1.25", 8.0),
    # The modality already divided by ERMF: Pixel Spacing = Imager Pixel Spacing / ERMF.
    ("corrected-by-modality", {"PixelSpacing": [0.16, 0.16],
                               "ImagerPixelSpacing": [0.2, 0.2],
                               "EstimatedRadiographicMagnificationFactor": "1.25"},
     "mm, corrected by ERMF 1.25", 8.0),
    # Pixel Spacing differs from Imager Pixel Spacing without ERMF: the modality
    # calibrated it some other way; Pixel Spacing is used.
    ("different", {"PixelSpacing": [0.15, 0.15], "ImagerPixelSpacing": [0.2, 0.2]},
     "mm", 7.5),
    # Calibrated with a fiducial (Pixel Spacing Calibration Type FIDUCIAL).
    ("fiducial", {"PixelSpacing": [0.1, 0.1], "ImagerPixelSpacing": [0.2, 0.2],
                  "PixelSpacingCalibrationType": "FIDUCIAL",
                  "PixelSpacingCalibrationDescription": "25 mm ball"}, "mm", 5.0),
    # GEOMETRY calibration even when equal to Imager Pixel Spacing: calibrated "mm".
    ("geometry", {"PixelSpacing": [0.2, 0.2], "ImagerPixelSpacing": [0.2, 0.2],
                  "PixelSpacingCalibrationType": "GEOMETRY"}, "mm", 10.0),
    # Anisotropic pixels: row spacing 0.1 (y), column spacing 0.2 (x):
    # hypot(30 * 0.2, 40 * 0.1) = hypot(6, 4).
    ("anisotropic", {"PixelSpacing": [0.1, 0.2]}, "mm", math.hypot(6.0, 4.0)),
    # Enhanced object: Pixel Measures functional group (shared).
    ("functional-group", {"SharedFunctionalGroupsSequence": _enhanced_spacing([0.25, 0.25])},
     "mm", 12.5),
    # Unusable values count as absent: a zero spacing, a negative ERMF.
    ("zero-spacing", {"PixelSpacing": [0.0, 0.0]}, "px", 50.0),
    ("bad-ermf", {"ImagerPixelSpacing": [0.2, 0.2],
                  "EstimatedRadiographicMagnificationFactor": "-1"}, "mm at detector", 10.0),
]


@pytest.mark.parametrize("elements,basis,expected",
                         [c[1:] for c in CALIBRATION_CASES],
                         ids=[c[0] for c in CALIBRATION_CASES])
def test_calibration_table(tmp_path, elements, basis, expected):
    path = make_dicom(tmp_path / "im.dcm", extra=elements)
    [ref] = scan([path]).images
    cal = ms.calibration_for(ref.spacing)
    assert cal.basis == basis
    assert cal.unit == ("px" if basis == "px" else "mm")
    value = ms.length((0, 0), (30, 40), cal)
    assert value == pytest.approx(expected, rel=1e-12)
    label = ms.measure(ms.Annotation(ms.LENGTH, ((0, 0), (30, 40))), cal).label
    digits = 0 if basis == "px" else 1
    assert label == f"{expected:.{digits}f} {basis}"


def test_user_calibration_wins_and_keeps_the_aspect_ratio(tmp_path):
    # A 100 px line drawn over a 25 mm object: 0.25 mm per pixel, "calibrated by user".
    cal = ms.calibration_for(None, ms.UserCalibration((0, 0), (100, 0), 25.0))
    assert cal.basis == "mm, calibrated by user"
    assert ms.length((0, 0), (30, 40), cal) == pytest.approx(12.5)
    # Over a header spacing (row 0.1, column 0.2): the aspect ratio is kept. A vertical
    # 50 px line said to be 10 mm → row spacing 0.2, column 0.4.
    info = ms.SpacingInfo(pixel_spacing=(0.1, 0.2))
    cal = ms.calibration_for(info, ms.UserCalibration((0, 0), (0, 50), 10.0))
    assert cal.spacing == pytest.approx((0.2, 0.4))
    assert ms.length((0, 0), (10, 0), cal) == pytest.approx(4.0)
    # A degenerate line leaves the header's calibration.
    assert ms.calibration_for(info, ms.UserCalibration((3, 3), (3, 3), 10.0)).basis == "mm"


def test_calibration_annotation_sets_the_list_calibration():
    lst = ms.AnnotationList()
    lst.add(ms.Annotation(ms.CALIBRATION, ((0, 0), (0, 40)), length_mm=10.0))
    cal = lst.calibration(None)
    assert cal.basis == "mm, calibrated by user"
    assert ms.length((0, 0), (30, 40), cal) == pytest.approx(12.5)
    # A second calibration replaces the first (one per image).
    lst.add(ms.Annotation(ms.CALIBRATION, ((0, 0), (10, 0)), length_mm=10.0))
    assert [a.kind for a in lst].count(ms.CALIBRATION) == 1
    assert ms.length((0, 0), (30, 40), lst.calibration(None)) == pytest.approx(50.0)


ANGLE_CASES = [
    # A right angle.
    ((10, 0), (0, 0), (0, 10), ms.PIXELS, 90.0),
    # Straight line.
    ((-5, 0), (0, 0), (5, 0), ms.PIXELS, 180.0),
    # 45° in pixels becomes atan(1/2) from horizontal when columns are twice as wide
    # (row 1 mm, column 2 mm): the angle is measured in the patient plane.
    ((10, 0), (0, 0), (1, 1), ms.Calibration((1.0, 2.0), "mm"),
     math.degrees(math.atan2(1, 2))),
]


@pytest.mark.parametrize("a,vertex,b,cal,expected", ANGLE_CASES)
def test_three_point_angle(a, vertex, b, cal, expected):
    assert ms.angle(a, vertex, b, cal) == pytest.approx(expected)


def test_cobb_angle_is_acute_and_independent_of_drawing_direction():
    horizontal = ((0, 0), (10, 0))
    tilted = ((0, 0), (10 * math.cos(math.radians(30)), 10 * math.sin(math.radians(30))))
    assert ms.line_angle(horizontal, tilted) == pytest.approx(30)
    assert ms.line_angle(horizontal[::-1], tilted) == pytest.approx(30)
    # 150° between directed lines is a 30° Cobb angle.
    reversed_tilt = (tilted[1], tilted[0])
    assert ms.line_angle(horizontal, reversed_tilt) == pytest.approx(30)
    # Perpendicular lines.
    assert ms.line_angle(horizontal, ((5, 5), (5, 50))) == pytest.approx(90)
    ann = ms.Annotation(ms.COBB, (*horizontal, *tilted))
    assert ms.measure(ann).label == "Cobb 30.0°"


def test_roi_stats_in_modality_units(tmp_path):
    # Rescale slope 2, intercept -100: statistics are of 2 * stored - 100.
    path = make_dicom(tmp_path / "ct.dcm", rescale=(2, -100, "US"))
    [ref] = scan([path]).images
    from viewer.pixels import decode

    decoded = decode(ref)
    pipe = DisplayPipeline(decoded.stored, decoded.spec)
    stored = decoded.stored
    # Rectangle with corners at pixel centres (2, 3) and (5, 7): columns 2..5, rows 3..7.
    st = ms.roi_stats(ms.RECTANGLE, (2, 3), (5, 7), stored, pipe.modality_value)
    block = stored[3:8, 2:6].astype(float) * 2 - 100
    assert st.count == 20
    assert (st.mean, st.sd, st.minimum, st.maximum) == pytest.approx(
        (block.mean(), block.std(), block.min(), block.max()))
    # Ellipse inscribed in the box (0,0)–(4,4): the 13 pixel centres within radius 2.
    st = ms.roi_stats(ms.ELLIPSE, (4, 4), (0, 0), stored, pipe.modality_value)
    ys, xs = np.mgrid[0:5, 0:5]
    inside = (xs - 2) ** 2 + (ys - 2) ** 2 <= 4
    values = stored[0:5, 0:5][inside].astype(float) * 2 - 100
    assert st.count == 13 == inside.sum()
    assert st.mean == pytest.approx(values.mean())
    assert st.area == pytest.approx(math.pi * 4)  # px²: no spacing
    label = ms.measure(ms.Annotation(ms.ELLIPSE, ((0, 0), (4, 4))), ms.PIXELS, stored,
                      pipe.modality_value, "HU").label
    assert label.startswith(f"mean {values.mean():.1f} HU")
    assert "area 13 px²" in label
    # Outside the image: no pixels, NaN statistics, no crash.
    st = ms.roi_stats(ms.RECTANGLE, (100, 100), (120, 120), stored, pipe.modality_value)
    assert st.count == 0 and math.isnan(st.mean)


def test_roi_area_carries_the_basis():
    cal = ms.Calibration((0.2, 0.2), "mm at detector")
    label = ms.measure(ms.Annotation(ms.RECTANGLE, ((0, 0), (10, 5))), cal).label
    assert label == "area 2.0 mm² (at detector)"


def test_undo_redo_and_edit():
    lst = ms.AnnotationList()
    seen = []
    lst.subscribe(lambda: seen.append(len(lst)))
    a = lst.add(ms.Annotation(ms.LENGTH, ((0, 0), (1, 1))))
    b = lst.add(ms.Annotation(ms.ANGLE, ((0, 0), (1, 1), (2, 0))))
    lst.update(a.moved(1, (3, 4)))
    assert lst.get(a.id).points == ((0, 0), (3, 4))
    lst.remove(b.id)
    assert [x.id for x in lst] == [a.id]
    assert lst.undo() and [x.id for x in lst] == [a.id, b.id]
    assert lst.undo() and lst.get(a.id).points == ((0, 0), (1, 1))
    assert lst.redo() and lst.get(a.id).points == ((0, 0), (3, 4))
    # A new change after undo drops the redo history.
    lst.undo()
    lst.clear()
    assert not lst.can_redo and len(lst) == 0
    assert seen and lst.dirty
    while lst.undo():
        pass
    assert len(lst) == 0 and not lst.can_undo


def test_reading_store_keys_and_key_images(tmp_path):
    a = make_dicom(tmp_path / "a.dcm", sop_uid=uid_for("a"))
    b = make_dicom(tmp_path / "b.dcm", sop_uid=uid_for("b"))
    ra, rb = scan([a, b]).images
    store = ms.ReadingStore()
    store.annotations(ra).add(ms.Annotation(ms.LENGTH, ((0, 0), (3, 4))))
    assert store.has(ra) and not store.has(rb)
    assert store.annotations(ra) is store.annotations(ra)
    store.set_key(rb, True)
    assert store.is_key(rb) and not store.is_key(ra)
    rows = ms.measurement_rows(ra, store.annotations(ra))
    assert rows == [("a.dcm", "Length", "5 px")]


ORIENTATION_CASES = [
    # (rotation, flip_h, flip_v) → (left, right, top, bottom) for Patient Orientation R\F
    ((0, False, False), ("L", "R", "H", "F")),
    # Rotated 90° clockwise: what was at the top (H) is now at the right.
    ((90, False, False), ("F", "H", "L", "R")),
    ((180, False, False), ("R", "L", "F", "H")),
    # Flipped left-right.
    ((0, True, False), ("R", "L", "H", "F")),
    # Flipped top-bottom.
    ((0, False, True), ("L", "R", "F", "H")),
]


@pytest.mark.parametrize("transform,edges", ORIENTATION_CASES)
def test_orientation_letters_follow_rotation_and_flip(transform, edges):
    got = edge_letters(("R", "F"), *transform)
    assert (got["left"], got["right"], got["top"], got["bottom"]) == edges


def test_orientation_from_the_header(tmp_path):
    path = make_dicom(tmp_path / "o.dcm", extra={"PatientOrientation": ["A", "FL"]})
    [ref] = scan([path]).images
    assert ref.patient_orientation == ("A", "FL")
    assert edge_letters(ref.patient_orientation)["top"] == "HR" == opposite("FL")
    assert edge_letters(()) == {}


#: Real files (pydicom-data): (file, basis, mm per pixel or None)
REAL_CASES = [
    # Extremity CR without any spacing element: pixels, never millimetres.
    ("RG3_UNCR.dcm", "px", None),
    # Chest CR whose Pixel Spacing is 0\0 (unusable): pixels.
    ("RG1_UNCR.dcm", "px", None),
    # CT: Pixel Spacing in the patient (plain "mm").
    ("693_UNCR.dcm", "mm", (0.478516, 0.478516)),
]


@pytest.mark.parametrize("name,basis,spacing", REAL_CASES, ids=[c[0] for c in REAL_CASES])
def test_calibration_of_real_files(name, basis, spacing):
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name, download=False)
    assert path is not None, f"pydicom-data lacks {name}"
    [ref] = scan([path]).images
    cal = ms.calibration_for(ref.spacing)
    assert (cal.basis, cal.spacing) == (basis, spacing)
