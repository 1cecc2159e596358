"""Multi-frame navigation (issue 16): keys, slider, cine; frames decode off the GUI
thread; pixel probes check which frame is drawn."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from dicom_factory import make_dicom
from pydicom.uid import generate_uid
from test_gui_measure import make_window, open_and_wait  # noqa: F401 - fixture

from viewer import frames as fr
from viewer import pixels
from viewer.session import ManualExecutor

FRAMES = 10


def multiframe(path, frames=FRAMES):
    """Frame k is flat at stored value 300 * k (12 bits), window 1500/3000: frames get
    brighter one after the other."""
    arr = np.stack([np.full((48, 64), 300 * k, np.uint16) for k in range(frames)])
    return make_dicom(path, rows=48, cols=64, frames=frames, pixels=arr, bits_stored=12,
                      sop_uid=generate_uid(), modality="XA", windows=[(1500, 3000)])


def centre_gray(view) -> int:
    img = view.grab().toImage()
    return img.pixelColor(img.width() // 2, img.height() // 2).red()


def test_frame_keys_slider_and_cine(qtbot, make_window, tmp_path, monkeypatch):  # noqa: F811
    threads = []
    real = pixels.decode

    def spy(ref, frame=0):
        threads.append(threading.current_thread() is threading.main_thread())
        return real(ref, frame)

    monkeypatch.setattr(pixels, "decode", spy)
    win = make_window()
    view = open_and_wait(qtbot, win, [multiframe(tmp_path / "cine.dcm")])
    tools = win.frame_tools
    assert "frame 1 of 10" in view.view_mark_texts()
    first = centre_gray(view)
    tools.act_next.trigger()
    qtbot.waitUntil(lambda: getattr(view, "frame_index", 0) == 1, timeout=10000)
    assert "frame 2 of 10" in view.view_mark_texts()
    assert centre_gray(view) > first + 10
    assert tools.label.text().strip() == "2 / 10"
    # The slider goes straight to a frame; End to the last, Home back to the first.
    tools.slider.setValue(6)
    qtbot.waitUntil(lambda: view.frame_index == 5, timeout=10000)
    tools.act_last.trigger()
    qtbot.waitUntil(lambda: view.frame_index == 9, timeout=10000)
    last = centre_gray(view)
    tools.act_first.trigger()
    qtbot.waitUntil(lambda: view.frame_index == 0, timeout=10000)
    assert centre_gray(view) == first < last
    # The window the reader saw stays while frames change (no per-frame default).
    assert view.current_window().center == 1500
    # Cine at 30 fps runs through the frames and loops.
    tools.fps.setValue(30)
    tools.act_play.trigger()
    seen = set()
    qtbot.waitUntil(lambda: seen.add(view.frame_index) or len(seen) == FRAMES, timeout=10000)
    tools.act_play.trigger()
    assert not tools.timer.isActive()
    # Every frame but the first (the session's) was decoded in a worker thread.
    assert threads and not any(threads[1:])


def test_frame_set_decodes_on_request_and_evicts(tmp_path):
    path = multiframe(tmp_path / "m.dcm")
    from viewer.loader import scan

    [ref] = scan([path]).images
    ex = ManualExecutor()
    ready = []
    fs = fr.FrameSet(ref, ex, on_ready=lambda f: ready.append(f.index),
                     budget=3 * 48 * 64 * 2 * 2)
    fs.request(4)
    fs.request(4)  # pending: not twice
    assert len(ex.jobs) == 1
    ex.run_all()
    assert ready == [4] and fs.get(4).stored[0, 0] == 1200
    fs.current = 4
    fs.prefetch()
    ex.run_all()
    # Three frames fit the budget; one place is kept for frame 1 (the session seeds it).
    assert sorted(fs.frames) == [4, 5]
    fs.cancel()
    fs.request(8)
    ex.run_all()
    assert fs.get(8) is None


def test_cine_rate_from_the_header():
    assert fr.cine_rate({"RecommendedDisplayFrameRate": 25}) == 25
    assert fr.cine_rate({"FrameTime": 33.3}) == pytest.approx(30.03, rel=1e-3)
    assert fr.cine_rate({"CineRate": "abc"}) is None
    assert fr.Cine(10, fps=30).interval_ms == 33
    assert fr.Cine(10).next_index(9) == 0


def test_ai_says_it_scored_frame_one(qtbot, make_window, tmp_path):  # noqa: F811
    win = make_window()
    open_and_wait(qtbot, win, [multiframe(tmp_path / "cine.dcm")])
    # The model's input is frame 1 (the session's decoded frame), whatever is shown.
    [inputs] = win.session.model_inputs()
    assert int(np.asarray(inputs[1]).max()) == 0  # frame 1 is flat at 0 here
    win.results.set_status("AI: done")
    win.frame_tools._on_ai_finished(None)
    assert "scored frame 1 of 1 multi-frame image" in win.results.status_label.text()
