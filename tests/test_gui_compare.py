"""Prior comparison (issue 16): layout, dates, linked zoom/pan, per-view W/L, by pixel
probes."""

from __future__ import annotations

import numpy as np
from dicom_factory import make_dicom
from pydicom.uid import generate_uid
from PySide6.QtWidgets import QApplication
from test_gui_measure import make_window  # noqa: F401 - fixture

from viewer.qt.compare import pair_views


def study(folder, date, value, views=("PA", "LATERAL")):
    uid = generate_uid()
    for k, pos in enumerate(views):
        arr = np.full((80, 60), value, np.uint16)
        make_dicom(folder / f"{date}_{pos}.dcm", rows=80, cols=60, pixels=arr,
                   bits_stored=12, study_uid=uid, series_uid=generate_uid(),
                   sop_uid=generate_uid(), instance_number=k + 1, study_date=date,
                   view_position=pos, body_part="HAND", laterality="L", modality="DX",
                   windows=[(2048, 4096)])


def centre(view) -> int:
    img = view.grab().toImage()
    return img.pixelColor(img.width() // 2, img.height() // 2).red()


def test_compare_with_prior(qtbot, make_window, tmp_path):  # noqa: F811
    # The prior (2020) is dark, the current study (2024) bright; the current one lists
    # its views LATERAL first, so pairing must match by view position, not by order.
    study(tmp_path, "20200105", 600, views=("PA", "LATERAL"))
    study(tmp_path, "20240301", 3400, views=("LATERAL", "PA"))
    win = make_window()
    win.open_paths([str(tmp_path)])
    qtbot.waitUntil(lambda: win.session.loaded, timeout=30000)
    current = next(s for s in win.result.studies if s.date == "20240301")
    with qtbot.waitSignal(win.study_loaded, timeout=30000):
        win.open_study(current)
    tools = win.compare_tools
    assert tools.act.isEnabled()
    tools.act.trigger()
    assert tools.active and win.grid.current_layout() == (2, 2)
    qtbot.waitUntil(lambda: all(v.has_image for v in tools.prior_views), timeout=30000)
    QApplication.processEvents()
    left, right = win.grid.views[0], win.grid.views[1]
    assert left.ref.view_position == right.ref.view_position == "LATERAL"
    assert right in tools.prior_views
    # Current bright on the left, prior dark on the right; dates at the top and corners.
    assert centre(left) > 150 > 60 > centre(right)
    assert left.marks.banner == "CURRENT 2024-03-01"
    assert right.marks.banner == "PRIOR 2020-01-05"
    assert "2020-01-05" in right.corner_texts()["tr"]
    # Zoom and pan follow within the pair.
    left.state.set_zoom(2 * left.state.fit_zoom((left.width(), left.height())))
    left.state.pan(30, 10, (left.width(), left.height()))
    rz = right.state.zoom / right.state.fit_zoom((right.width(), right.height()))
    assert abs(rz - 2) < 1e-6
    assert right.state.center == left.state.center  # same matrix size here
    # Window/level stays per view.
    before = right.current_window()
    left.drag_window(40, 0)
    left.finish_window_drag()
    assert right.current_window() == before != left.current_window()
    # Leaving the comparison shows the current study alone again.
    tools.act.trigger()
    assert not tools.active and win.grid.views == win._views
    assert all(not v.marks.banner for v in win._views)


def test_pairing_prefers_view_position_then_laterality():
    from viewer.model import ImageRef

    def ref(pos, lat="L"):
        return ImageRef(path=__import__("pathlib").Path(f"{pos}{lat}"), kind="dicom",
                        view_position=pos, laterality=lat)

    cur = [ref("LATERAL"), ref("PA"), ref("OBLIQUE")]
    prior = [ref("PA", "R"), ref("PA"), ref("LATERAL")]
    assert pair_views(cur, prior) == [(0, 2), (1, 1), (2, 0)]
