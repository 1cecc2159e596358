"""The main window's reading tools (issue 16): measurement tools, undo, key images and
presentation states.

:class:`ReadingTools` adds the Measure menu and toolbar to a
:class:`~viewer.qt.main_window.MainWindow`, gives every view its image's annotation list
from the session (:attr:`viewer.session.Session.reading`), applies the newest
presentation state of each image when it is decoded (radview's own or another system's,
:mod:`viewer.gsps`), and saves radview's (File ▸ Save reading, and a moment after each
change of the measurements).
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QInputDialog, QToolBar

from viewer import gsps
from viewer import measure as ms
from viewer.model import Study

log = logging.getLogger(__name__)

#: (tool, menu text, shortcut)
TOOLS = [
    (None, "&Navigate (window/level)", "N"),
    (ms.LENGTH, "&Length", "D"),
    (ms.ANGLE, "&Angle (three points)", "G"),
    (ms.COBB, "&Cobb angle (two lines)", "B"),
    (ms.ELLIPSE, "&Ellipse ROI", "E"),
    (ms.RECTANGLE, "&Rectangle ROI", "Q"),
    (ms.ARROW, "&Text arrow", "T"),
    (ms.CALIBRATION, "Cali&brate (line of known length)", "Shift+D"),
]

#: Milliseconds after the last change of the measurements before they are saved.
AUTOSAVE_MS = 1500


class ReadingTools:
    """Measure menu, tool state and presentation states for one main window."""

    def __init__(self, window) -> None:
        self.win = window
        self.session = window.session
        self.tool: str | None = None
        self._states: dict[str, gsps.PresentationState] = {}
        self._dirty_timer = QTimer(window)
        self._dirty_timer.setSingleShot(True)
        self._dirty_timer.setInterval(AUTOSAVE_MS)
        self._dirty_timer.timeout.connect(self.save_dirty)
        self.autosave = True
        self.last_saved: list[Path] = []
        self.ask_text = self._dialog_text
        self.ask_length = self._dialog_length

        a = window._action
        group = QActionGroup(window)
        self.tool_actions: dict[str | None, QAction] = {}
        for tool, text, key in TOOLS:
            act = a(text, lambda _=False, t=tool: self.set_tool(t), key)
            act.setCheckable(True)
            group.addAction(act)
            self.tool_actions[tool] = act
        self.tool_actions[None].setChecked(True)
        self.act_undo = a("&Undo measurement", self.undo, QKeySequence.StandardKey.Undo)
        self.act_redo = a("&Redo measurement", self.redo, QKeySequence.StandardKey.Redo)
        self.act_delete = a("&Delete selected measurement", self.delete_selected,
                            QKeySequence.StandardKey.Delete)
        self.act_clear = a("Clear measurements of the view", self.clear_view)
        self.act_cancel = a("Cancel drawing", self.cancel, "Esc")
        self.act_key = a("Mark as &key image", self._on_key_toggled, "K", checkable=True,
                         tip="Key images go into the PDF report")
        self.act_save = a("&Save reading (presentation state)", self.save_all,
                          QKeySequence.StandardKey.Save,
                          tip="Save measurements, annotations and window/level as DICOM "
                              "presentation states beside the images")

        # Connected before the window's own handlers replace the views: the measurements
        # of the study being left are saved first.
        ev = self.session.events
        ev.study_opened.connect(lambda _study: self._leave_views())
        ev.study_closed.connect(self._leave_views)


    # -- menus ----------------------------------------------------------------------
    def install(self) -> None:
        """Add the Measure menu (before Help) and toolbar, and follow the session (call
        after the window connected its own session handlers)."""
        ev = self.session.events
        ev.study_opened.connect(self._on_study_opened)
        ev.image_decoded.connect(self._on_image_decoded)
        self.win.grid.active_changed.connect(self._on_active_changed)
        mb = self.win.menuBar()
        menu = mb.addMenu("&Measure")
        for tool, _t, _k in TOOLS:
            menu.addAction(self.tool_actions[tool])
        menu.addSeparator()
        for act in (self.act_undo, self.act_redo, self.act_delete, self.act_clear,
                    self.act_cancel, None, self.act_key, self.act_save):
            menu.addSeparator() if act is None else menu.addAction(act)
        help_menu = next((m.menuAction() for m in mb.findChildren(type(menu))
                          if m.title() == "&Help"), None)
        if help_menu is not None:
            mb.insertMenu(help_menu, menu)
        self.menu = menu
        tb = QToolBar("Measure", self.win)
        tb.setObjectName("measure_toolbar")
        for tool, _t, _k in TOOLS:
            act = self.tool_actions[tool]
            act.setIconText(act.text().replace("&", "").split(" (")[0])
            tb.addAction(act)
        tb.addSeparator()
        tb.addAction(self.act_key)
        self.win.addToolBar(tb)  # same row: the views keep their height
        self.toolbar = tb
        file_menu = next((m for m in mb.findChildren(type(menu)) if m.title() == "&File"),
                         None)
        if file_menu is not None:
            file_menu.insertAction(self.win.act_export_report, self.act_save)

    # -- views ----------------------------------------------------------------------
    def _views(self):
        return list(self.win._views)

    def _active(self):
        v = self.win.grid.active
        return v if v is not None and v.has_image else None

    def _on_study_opened(self, study: Study) -> None:
        store = self.session.reading
        for v in self._views():
            lst = store.annotations(v.ref)
            v.marks.set_list(lst)
            v.marks.ask_text = lambda t, label: self.ask_text(t, label)
            v.marks.ask_length = lambda: self.ask_length()
            v.marks.set_tool(self.tool)
            v.marks.key_image = store.is_key(v.ref)
            lst.subscribe(self._on_annotations_changed)
        extra = [p for ref in study.images for p in gsps.known_paths(ref, study.uid)]
        try:
            self._states = gsps.latest_states(self.session.result, study.images, extra)
        except Exception:  # never stop a study from opening
            log.exception("presentation states could not be read")
            self._states = {}
        self._on_active_changed(self.win.grid.active)

    def _on_image_decoded(self, im) -> None:
        views = self._views()
        if not (0 <= im.index < len(views)):
            return
        view = views[im.index]
        uid = view.ref.sop_instance_uid
        state = self._states.get(uid)
        if state is not None:
            self.apply_state(view, state)

    def apply_state(self, view, state: gsps.PresentationState) -> None:
        """Apply a presentation state to a decoded view: VOI, inversion, rotation, flip,
        and its annotations when the reader has none on this image yet."""
        uid = view.ref.sop_instance_uid
        st = view.state
        window = state.window_for(uid)
        if window is not None:
            st.set_window(window, window.explanation or "Presentation state")
        invert = state.invert_for(view.pipeline.spec.photometric if view.pipeline else "")
        if invert is not None and invert != st.invert:
            st.set_invert(invert)
        st.rotation, st.flip_h, st.flip_v = state.rotation % 360, state.flip_h, False
        st._emit("geometry")
        lst = view.marks.annotations
        if not len(lst) and not lst.dirty:
            lst.replace_all(state.annotations.get(uid, []))
        who = "radview" if state.radview else "another system"
        for note in state.notes:
            self.win.statusBar().showMessage(f"{view.ref.name}: {note}", 8000)
        log.info("presentation state by %s applied to image %d", who,
                 self._views().index(view) + 1)
        if view is self.win.grid.active:
            self.win._sync_controls()

    def _on_active_changed(self, view) -> None:
        act = self.act_key
        act.blockSignals(True)
        act.setChecked(view is not None and self.session.reading.is_key(view.ref))
        act.blockSignals(False)

    # -- actions --------------------------------------------------------------------
    def set_tool(self, tool: str | None) -> None:
        self.tool = tool
        if self.tool_actions[tool].isChecked() is False:
            self.tool_actions[tool].setChecked(True)
        for v in self._views():
            v.marks.set_tool(tool)
        name = ms.TOOL_NAMES.get(tool, "") if tool else "Navigate"
        self.win.statusBar().showMessage(f"Tool: {name}", 3000)

    def undo(self) -> None:
        if (v := self._active()) is not None and not v.marks.annotations.undo():
            self.win.statusBar().showMessage("Nothing to undo in this view", 3000)

    def redo(self) -> None:
        if (v := self._active()) is not None:
            v.marks.annotations.redo()

    def delete_selected(self) -> None:
        if (v := self._active()) is not None and not v.marks.delete_selected():
            self.win.statusBar().showMessage("Click a measurement to select it first", 3000)

    def clear_view(self) -> None:
        if (v := self._active()) is not None:
            v.marks.annotations.clear()

    def cancel(self) -> None:
        for v in self._views():
            v.marks.cancel()
        if self.tool is not None:
            self.set_tool(None)

    def _on_key_toggled(self, on: bool) -> None:
        v = self.win.grid.active
        if v is None:
            return
        self.session.reading.set_key(v.ref, on)
        v.marks.key_image = on
        v.update()

    # -- dialogs --------------------------------------------------------------------
    def _dialog_text(self, title: str, label: str) -> str | None:
        text, ok = QInputDialog.getText(self.win, title, label)
        return text if ok else None

    def _dialog_length(self) -> float | None:
        value, ok = QInputDialog.getDouble(self.win, "Calibrate",
                                           "Known length of the line (mm):", 10.0, 0.01,
                                           10000.0, 2)
        return value if ok else None

    # -- saving ---------------------------------------------------------------------
    def _on_annotations_changed(self) -> None:
        if self.autosave:
            self._dirty_timer.start()

    def save_view(self, view) -> Path | None:
        """Write the presentation state of one view; returns the file (None: not DICOM)."""
        if view.ref.kind != "dicom" or view.pipeline is None:
            return None
        st = view.state
        window = view.current_window() if st.window is not None else None
        lst = view.marks.annotations
        pipe = view.pipeline
        path = gsps.save_gsps(
            view.ref, list(lst), calibration=view.marks.calibration(), window=window,
            invert=st.invert, rotation=st.rotation, flip_h=st.flip_h, flip_v=st.flip_v,
            stored=getattr(view, "_stored", None), modality=pipe.modality_value,
            modality_unit=view.marks.modality_unit())
        lst.mark_saved()
        return path

    def save_dirty(self) -> list[Path]:
        """Save the views whose measurements changed since they were last saved."""
        return self._save([v for v in self._views() if v.marks.annotations.dirty])

    def save_all(self) -> list[Path]:
        """File ▸ Save reading: every decoded DICOM view with measurements or a window,
        rotation, flip or inversion set by the reader."""
        views = [v for v in self._views() if v.has_image and (
            len(v.marks.annotations) or v.marks.annotations.dirty or v.state.window
            is not None or v.state.invert or v.state.rotation or v.state.flip_h
            or v.state.flip_v)]
        paths = self._save(views)
        if not views:
            self.win.statusBar().showMessage("Nothing to save: no measurement, window or "
                                             "rotation set in this study", 5000)
        return paths

    def _save(self, views) -> list[Path]:
        self._dirty_timer.stop()
        out = []
        for v in views:
            try:
                path = self.save_view(v)
            except Exception as exc:  # a read-only folder and no fallback, a bad header
                self.win.show_error(f"{v.ref.name}: the reading could not be saved "
                                    f"({type(exc).__name__}: {exc})")
                continue
            if path is not None:
                out.append(path)
        if out:
            self.win.statusBar().showMessage(
                f"Reading saved: {len(out)} presentation state(s) beside the images", 5000)
        self.last_saved = out
        return out

    def _leave_views(self) -> None:
        """The window is about to replace its views: save, and stop them listening."""
        self.flush()
        for v in self._views():
            v.marks.detach()
            v.marks.annotations.unsubscribe(self._on_annotations_changed)

    def flush(self) -> None:
        """Save pending changes now (the window is closing or another study opens)."""
        if self._dirty_timer.isActive():
            self.save_dirty()
