"""Make the issue-16 screenshots: measurements on a real CR and a report page.

    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/reading_screenshots.py

Writes ``docs/measurements.png`` (pydicom-data RG3, a lower-leg CR, with a calibration,
a length, an angle, an ellipse ROI and a text arrow) and ``docs/report_measurements.png``
(the report page with the measurement table and the key image; needs ``pdftoppm``) and
``docs/prior_comparison.png`` (the sample hand study beside a simulated prior).

RG3 has no Pixel Spacing nor Imager Pixel Spacing, so radview measures it in pixels
until the reader calibrates. Here the calibration line spans the image's full width,
taken to be 352 mm: the 1760-pixel width of a 35 × 35 cm CR plate read at 0.2 mm — an
assumption for the demonstration, shown as "mm, calibrated by user" on every value.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pydicom.data import get_testdata_file
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

DOCS = Path(__file__).resolve().parent


def main() -> int:
    from viewer import measure as ms
    from viewer.qt.main_window import MainWindow
    from viewer.qt.report_pdf import export_window_report

    app = QApplication.instance() or QApplication(sys.argv)
    work = Path(tempfile.mkdtemp(prefix="radview-shots-"))
    source = Path(get_testdata_file("RG3_UNCR.dcm", download=False))
    study = work / "rg3"
    study.mkdir()
    shutil.copy(source, study / "RG3_UNCR.dcm")  # the presentation state is written here

    settings = QSettings(str(work / "settings.ini"), QSettings.Format.IniFormat)
    win = MainWindow(settings, discover=False)
    win.resize(1850, 1000)
    win.set_layout((1, 1))
    win.results_dock.hide()
    win.show()
    done = []
    win.study_loaded.connect(lambda _s: done.append(True))
    win.open_paths([str(study)])
    while not done:
        app.processEvents()
    win.wait_idle()
    view = win.grid.views[0]
    win.reading_tools.autosave = False
    add = view.marks.add
    add(ms.Annotation(ms.CALIBRATION, ((-0.5, 1560.0), (1759.5, 1560.0)), length_mm=352.0))
    # Tibial shaft width, an angle at the ankle, the lytic lesion, a note.
    add(ms.Annotation(ms.LENGTH, ((792.0, 700.0), (928.0, 700.0))))
    add(ms.Annotation(ms.ANGLE, ((880.0, 250.0), (860.0, 1390.0), (1060.0, 1330.0))))
    add(ms.Annotation(ms.ELLIPSE, ((800.0, 1000.0), (915.0, 1200.0))))
    add(ms.Annotation(ms.ARROW, ((905.0, 1080.0), (1130.0, 940.0)), text="lytic lesion"))
    win.reading_tools.act_key.setChecked(True)
    view.state.set_zoom(None)
    app.processEvents()
    win.grab().save(str(DOCS / "measurements.png"))
    paths = win.reading_tools.save_all()
    print("presentation state:", *paths)

    pdf = work / "report.pdf"
    export_window_report(win, pdf)
    if shutil.which("pdftoppm"):
        # The page that holds the measurement table.
        for page in range(1, 6):
            out = work / f"page{page}"
            subprocess.run(["pdftoppm", "-r", "80", "-f", str(page), "-l", str(page),
                            "-png", "-singlefile", str(pdf), str(out)], check=True)
            text = subprocess.run(["pdftotext", "-f", str(page), "-l", str(page), str(pdf),
                                   "-"], capture_output=True, text=True).stdout
            if "Measurements" in text:
                shutil.copy(out.with_suffix(".png"), DOCS / "report_measurements.png")
                break
    print("report:", pdf)
    win.close()
    prior_comparison(app, work)
    return 0


def prior_comparison(app, work: Path) -> None:
    """docs/prior_comparison.png: the sample hand study against a simulated prior.

    The prior is the sample's second view (FracAtlas IMG0003397) written as a study of
    the same fictitious patient dated a year earlier (new UIDs): a layout demonstration,
    not a real follow-up.
    """
    from pydicom import dcmread
    from pydicom.uid import generate_uid

    from viewer import paths
    from viewer.qt.main_window import MainWindow

    folder = work / "priors"
    folder.mkdir()
    samples = paths.sample_study()
    first, second = sorted(samples.glob("*.dcm"))
    ds = dcmread(first)
    ds.save_as(folder / "current.dcm")
    prior = dcmread(second)
    prior.StudyInstanceUID, prior.SeriesInstanceUID = generate_uid(), generate_uid()
    prior.SOPInstanceUID = prior.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    prior.StudyDate = prior.SeriesDate = prior.ContentDate = "20250105"
    prior.StudyDescription = "XR HAND (simulated prior)"
    prior.save_as(folder / "prior.dcm")

    settings = QSettings(str(work / "settings2.ini"), QSettings.Format.IniFormat)
    win = MainWindow(settings, discover=False)
    win.resize(1850, 950)
    win.results_dock.hide()
    win.show()
    win.open_paths([str(folder)])
    while not win.session.loaded:
        app.processEvents()
    current = next(s for s in win.result.studies if s.date != "20250105")
    win.open_study(current)
    while not win.session.loaded:
        app.processEvents()
    win.wait_idle()
    tools = win.compare_tools
    tools.act.trigger()
    while not all(v.has_image for v in tools.prior_views):
        app.processEvents()
    left = win.grid.views[0]
    size = (left.width(), left.height())
    left.state.zoom_about(1.6, (size[0] * 0.45, size[1] * 0.4), size)
    right = tools.prior_views[0]
    right.drag_window(-60, 25)  # window/level per view
    right.finish_window_drag()
    app.processEvents()
    win.grab().save(str(DOCS / "prior_comparison.png"))
    win.close()


if __name__ == "__main__":
    raise SystemExit(main())
