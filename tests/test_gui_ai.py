"""The viewer's AI side (pytest-qt, offscreen): worker, results panel, overlays.

Bundles are tiny random-weight models written by tests/bundle_factory.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from bundle_factory import make_bundle
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication
from test_gui import image_point, open_and_wait, probe, write_gradient

from viewer.qt.main_window import MainWindow


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("bundle") / "tiny"
    make_bundle(d, arch="resnet18", input_size=64, threshold=0.5)
    return d


def open_ai_window(qtbot, tmp_path, bundle_dir, monkeypatch,
                   settings: QSettings | None = None) -> MainWindow:
    """A shown main window that uses only ``bundle_dir`` (no user or shipped bundles leak
    in), once its bundle is ready."""
    monkeypatch.setenv("RADVIEW_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr("inference.bundle.shipped_models_dir", lambda: tmp_path / "none")
    settings = settings or QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    win = MainWindow(settings, bundle=str(bundle_dir))
    win.resize(1200, 800)
    win.show()
    qtbot.waitExposed(win)
    qtbot.waitUntil(lambda: win.ai.available, timeout=30000)
    return win


@pytest.fixture
def ai_window(qtbot, tmp_path, bundle_dir, monkeypatch):
    win = open_ai_window(qtbot, tmp_path, bundle_dir, monkeypatch)
    yield win
    win.close()
    QApplication.processEvents()


@pytest.fixture
def hand_study(tmp_path) -> Path:
    folder = tmp_path / "hand"
    folder.mkdir()
    for i in (1, 2, 3):
        write_gradient(folder / f"im{i}.dcm", i)  # BodyPartExamined HAND
    return folder


def _open_and_score(qtbot, win, folder):
    with qtbot.waitSignal(win.ai_finished, timeout=60000) as sig:
        win.open_paths([str(folder)])
    return sig.args[0]


def test_bundle_is_shown_and_study_is_scored_automatically(qtbot, ai_window, hand_study):
    # Opening a study runs the AI: study score = mean of the views, one CAM per view.
    result = _open_and_score(qtbot, ai_window, hand_study)
    assert result is not None and result.supported
    assert result.body_part == "HAND" and result.body_part_source == "tag"
    probs = [im.probability for im in result.images]
    assert result.score == pytest.approx(float(np.mean(probs)))
    assert "AI: tiny" in ai_window.ai_label.text() or "AI:" in ai_window.ai_label.text()
    texts = ai_window.results.probability_texts()
    assert texts == [f"{p:.3f}" for p in probs]
    for v in ai_window.grid.views:
        assert v.cam is not None and v.cam.shape == v.state.image_size[::-1]
        assert v.ai_text.startswith("AI ")
    assert "tag" in ai_window.results.part_value.text() or "DICOM" in (
        ai_window.results.part_value.text())


def test_override_rescores_with_override_source(qtbot, ai_window, hand_study):
    _open_and_score(qtbot, ai_window, hand_study)
    with qtbot.waitSignal(ai_window.ai_finished, timeout=60000) as sig:
        ai_window.set_override_part("ELBOW")
    result = sig.args[0]
    assert result.body_part == "ELBOW" and result.body_part_source == "override"
    assert "reviewer override" in ai_window.results.part_value.text()


def test_unsupported_part_gets_no_score(qtbot, ai_window, tmp_path):
    # A chest film: "not supported", no score, no heatmaps — never a silent score.
    folder = tmp_path / "chest"
    folder.mkdir()
    p = write_gradient(folder / "c.dcm", 1)
    import pydicom

    ds = pydicom.dcmread(p)
    ds.BodyPartExamined = "CHEST"
    ds.save_as(p)
    result = _open_and_score(qtbot, ai_window, folder)
    assert not result.supported and result.score is None
    assert "not supported" in result.reason
    assert "Not supported" in ai_window.results.label_value.text()
    assert "not supported by this model: CHEST" in ai_window.results.flags_label.text()
    assert all(v.cam is None for v in ai_window.grid.views)


def test_heatmap_is_drawn_and_toggles(qtbot, ai_window, hand_study):
    # Replace the model's CAM with a known one (hot top-left quarter) and probe colours.
    _open_and_score(qtbot, ai_window, hand_study)
    v = ai_window.grid.views[0]
    w, h = v.state.image_size
    cam = np.zeros((h, w), np.float32)
    cam[: h // 2, : w // 2] = 1.0
    v.set_cam(cam)
    ai_window.results.opacity_slider.setValue(100)
    hot = image_point(v, w * 0.2, h * 0.2)
    cold = image_point(v, w * 0.8, h * 0.8)

    def rgb(pos):
        img = v.grab().toImage()
        c = img.pixelColor(int(pos[0] * img.devicePixelRatio()),
                           int(pos[1] * img.devicePixelRatio()))
        return c.red(), c.green(), c.blue()

    r, g, b = rgb(hot)
    assert r > 100 and b < 60  # jet's dark red at 1.0
    r, g, b = rgb(cold)
    assert r == g == b  # untouched grayscale
    ai_window.act_heatmaps.trigger()  # global toggle off (O)
    r, g, b = rgb(hot)
    assert r == g == b
    ai_window.act_heatmaps.trigger()
    # Registration: after rotating, the hot quarter moves with the image.
    v.state.rotate(90)
    v.state.flip(True)
    r, g, b = rgb(image_point(v, w * 0.2, h * 0.2))
    assert r > 100 and b < 60
    assert probe(v, *image_point(v, w * 0.8, h * 0.8)) >= 0


def test_model_that_raises_shows_one_message_and_viewer_keeps_working(
        qtbot, ai_window, hand_study, monkeypatch):
    from inference.engine import Engine
    from inference.errors import InferenceError

    def boom(self, *a, **k):
        raise InferenceError("model exploded on purpose")

    monkeypatch.setattr(Engine, "analyze", boom)
    result = _open_and_score(qtbot, ai_window, hand_study)
    assert result is None
    assert "model exploded on purpose" in ai_window.results.status_label.text()
    assert all(v.has_image for v in ai_window.grid.views)
    ai_window.act_invert.trigger()  # the viewer still responds
    assert ai_window.grid.active.state.invert


def test_opening_another_study_cancels_and_drops_stale_results(
        qtbot, ai_window, hand_study, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    write_gradient(other / "x.dcm", 1, study_uid="1.2.826.0.1.3680043.8.498.99")
    ai_window.open_paths([str(hand_study)])
    qtbot.waitUntil(lambda: ai_window.study is not None, timeout=30000)
    with qtbot.waitSignal(ai_window.ai_finished, timeout=60000) as sig:
        ai_window.open_paths([str(other)])
    result = sig.args[0]
    assert [Path(im.key).parent for im in result.images] == [other]
    ai_window.wait_idle()
    assert ai_window.ai_result is result


def test_no_bundle_means_ai_off_with_a_reason(qtbot, tmp_path, monkeypatch, hand_study):
    monkeypatch.setenv("RADVIEW_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr("inference.bundle.shipped_models_dir", lambda: tmp_path / "none")
    win = MainWindow(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: "AI off" in win.ai_label.text(), timeout=30000)
    assert "no model bundle" in win.results.bundle_label.text()
    open_and_wait(qtbot, win, [hand_study])
    assert all(v.has_image for v in win.grid.views)
    win.close()
