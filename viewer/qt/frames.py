"""Frame navigation for multi-frame images: slider, keys, cine (issue 16).

:class:`FrameTools` adds a Frames toolbar to the main window (a slider, "frame n / N",
play/pause and the rate) and the actions Next/Previous/First/Last frame and Play cine.
They act on the active view; its frames are decoded in the window's worker pool
(:class:`viewer.frames.FrameSet`), the display shows "frame n of N"
(:func:`viewer.display.view_marks`), and the AI keeps scoring frame 1 (the status line
says so when a study has multi-frame images).
"""

from __future__ import annotations

import logging

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QLabel, QSlider, QSpinBox, QToolBar

from viewer.display import view_marks
from viewer.frames import Cine, Frame, FrameSet, frame_count
from viewer.qt.worker import QtExecutor

log = logging.getLogger(__name__)


def show_frame(view, frame: Frame) -> None:
    """Show a decoded frame in a view, keeping the reader's window/level, zoom and marks."""
    st = view.state
    if st.window is None and st.voi_lut is None and view.pipeline is not None:
        # Freeze the window the reader sees: each frame's own default would flicker.
        st.window, st.preset_label = view.current_window(), view.current_label()
    view.set_pipeline(frame.stored, frame.pipeline, frame.warnings)
    view.frame_index = frame.index
    view.set_view_marks(view_marks(view.ref, None, frame.index))


class FrameTools:
    """Frames toolbar, actions and cine timer of a main window."""

    def __init__(self, window) -> None:
        self.win = window
        self.executor = QtExecutor(window.pool)
        self._sets: dict[int, FrameSet] = {}
        self._wanted: dict[int, int] = {}  # id(view) → frame index asked for
        self.cine = Cine(1)
        self.timer = QTimer(window)
        self.timer.timeout.connect(self._on_tick)
        a = window._action
        self.act_next = a("Next frame", lambda: self.step(1), "Right")
        self.act_prev = a("Previous frame", lambda: self.step(-1), "Left")
        self.act_first = a("First frame", lambda: self.go(0), "Home")
        self.act_last = a("Last frame", lambda: self.go(-1), "End")
        self.act_play = a("Play / pause cine", self.toggle_play, "Space", checkable=True)

        tb = QToolBar("Frames", window)
        tb.setObjectName("frames_toolbar")
        tb.addWidget(QLabel(" Frame "))
        self.slider = QSlider(Qt.Orientation.Horizontal, window)
        self.slider.setMinimumWidth(220)
        self.slider.setRange(1, 1)
        self.slider.valueChanged.connect(lambda v: self.go(v - 1))
        tb.addWidget(self.slider)
        self.label = QLabel(" 1 / 1 ", window)
        tb.addWidget(self.label)
        tb.addAction(self.act_prev)
        tb.addAction(self.act_play)
        tb.addAction(self.act_next)
        tb.addWidget(QLabel(" fps "))
        self.fps = QSpinBox(window)
        self.fps.setRange(1, 60)
        self.fps.setValue(15)
        self.fps.setToolTip("Cine rate, frames per second")
        self.fps.valueChanged.connect(self._on_fps)
        tb.addWidget(self.fps)
        window.addToolBar(tb)
        self.toolbar = tb
        ev = window.session.events
        ev.study_opened.connect(self._on_study_changed)
        ev.study_closed.connect(self._on_study_changed)
        ev.ai_finished.connect(self._on_ai_finished)
        ev.image_decoded.connect(lambda _im: self._sync())
        window.grid.active_changed.connect(lambda _v: self._sync())
        self._sync()

    # -- state ----------------------------------------------------------------------
    def _view(self):
        v = self.win.grid.active
        if v is None or not v.has_image or frame_count(v.ref) < 2:
            return None
        return v

    def frame_set(self, view) -> FrameSet:
        fs = self._sets.get(id(view))
        if fs is None or fs.ref is not view.ref:
            first = None
            if view.pipeline is not None and getattr(view, "frame_index", 0) == 0:
                first = Frame(0, view._stored, view.pipeline, list(getattr(view, "_warnings",
                                                                           [])))
            fs = FrameSet(view.ref, self.executor, first=first,
                          on_ready=lambda f, v=view: self._on_ready(v, f),
                          on_error=lambda i, m, v=view: self._on_error(v, i, m))
            self._sets[id(view)] = fs
            fs.prefetch()
        return fs

    def _on_study_changed(self, *_args) -> None:
        self.stop()
        for fs in self._sets.values():
            fs.cancel()
        self._sets.clear()
        self._wanted.clear()
        QTimer.singleShot(0, self._sync)

    def _sync(self) -> None:
        view = self._view()
        enabled = view is not None
        for w in (self.slider, self.fps, self.act_next, self.act_prev, self.act_first,
                  self.act_last, self.act_play):
            w.setEnabled(enabled)
        self.toolbar.setVisible(enabled)  # only for multi-frame images
        if not enabled:
            self.stop()
            self.label.setText(" – ")
            return
        n = frame_count(view.ref)
        index = getattr(view, "frame_index", 0)
        self.slider.blockSignals(True)
        self.slider.setRange(1, n)
        self.slider.setValue(index + 1)
        self.slider.blockSignals(False)
        self.label.setText(f" {index + 1} / {n} ")
        self.cine.count = n

    # -- navigation -----------------------------------------------------------------
    def go(self, index: int) -> None:
        """Show frame ``index`` (0-based; -1 = last) in the active view."""
        view = self._view()
        if view is None:
            return
        fs = self.frame_set(view)
        index = index % fs.count
        fs.current = index
        self._wanted[id(view)] = index
        frame = fs.get(index)
        if frame is not None:
            show_frame(view, frame)
        else:
            fs.request(index, priority=20)
            self.win.statusBar().showMessage(f"Decoding frame {index + 1}…", 2000)
        self._sync_label(view, index)

    def step(self, delta: int) -> None:
        view = self._view()
        if view is not None:
            self.go(self.cine.next_index(self._wanted.get(id(view),
                                                          getattr(view, "frame_index", 0)),
                                         delta))

    def _sync_label(self, view, index: int) -> None:
        n = frame_count(view.ref)
        self.slider.blockSignals(True)
        self.slider.setValue(index + 1)
        self.slider.blockSignals(False)
        self.label.setText(f" {index + 1} / {n} ")

    def _on_ready(self, view, frame: Frame) -> None:
        if self._wanted.get(id(view)) == frame.index and getattr(
                view, "frame_index", 0) != frame.index:
            show_frame(view, frame)

    def _on_error(self, view, index: int, message: str) -> None:
        self.win.show_error(f"{view.ref.name}: frame {index + 1} could not be decoded: "
                            f"{message}")

    # -- cine -----------------------------------------------------------------------
    def toggle_play(self, on: bool) -> None:
        if on and self._view() is not None:
            self.cine.playing = True
            self.timer.start(self.cine.interval_ms)
        else:
            self.stop()

    def stop(self) -> None:
        self.cine.playing = False
        self.timer.stop()
        if self.act_play.isChecked():
            self.act_play.blockSignals(True)
            self.act_play.setChecked(False)
            self.act_play.blockSignals(False)

    def _on_fps(self, value: int) -> None:
        self.cine.fps = value
        if self.timer.isActive():
            self.timer.start(self.cine.interval_ms)

    def _on_tick(self) -> None:
        view = self._view()
        if view is None:
            self.stop()
            return
        fs = self.frame_set(view)
        nxt = self.cine.next_index(getattr(view, "frame_index", 0))
        if fs.get(nxt) is None:  # not decoded yet: wait for it rather than skip
            fs.request(nxt, priority=20)
            return
        self.go(nxt)

    # -- AI -------------------------------------------------------------------------
    def _on_ai_finished(self, _state) -> None:
        multi = [im for im in self.win.session.decoded if frame_count(im.ref) > 1]
        if multi:
            note = (f"The AI scored frame 1 of {len(multi)} multi-frame image(s); other "
                    "frames are not scored.")
            self.win.results.set_status(f"{self.win.results.status_label.text()}\n{note}")
