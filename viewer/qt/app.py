"""Start the GUI."""

from __future__ import annotations

import ctypes.util
import logging
import os
import sys
import time
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from viewer import __version__, paths
from viewer.qt.main_window import MainWindow

log = logging.getLogger(__name__)


#: Debian packages the Qt xcb platform plugin needs (a desktop has them; a server may not).
XCB_PACKAGES = {
    "xcb-cursor": "libxcb-cursor0", "xcb-icccm": "libxcb-icccm4", "xcb-image": "libxcb-image0",
    "xcb-keysyms": "libxcb-keysyms1", "xcb-randr": "libxcb-randr0",
    "xcb-render-util": "libxcb-render-util0", "xcb-shape": "libxcb-shape0",
    "xkbcommon-x11": "libxkbcommon-x11-0",
}


def display_problem(env: dict[str, str] | None = None) -> str | None:
    """Why the GUI cannot start here, or None. Qt itself would abort with a core dump."""
    env = dict(os.environ if env is None else env)
    if not sys.platform.startswith("linux"):
        return None
    platform = env.get("QT_QPA_PLATFORM", "")
    if platform and platform != "xcb":
        return None
    if not platform and env.get("WAYLAND_DISPLAY"):
        return None
    if not env.get("DISPLAY"):
        return ("no display: start radview in a desktop session, under a virtual screen "
                "(xvfb-run radview ...), or set QT_QPA_PLATFORM=offscreen")
    missing = [pkg for lib, pkg in XCB_PACKAGES.items() if ctypes.util.find_library(lib) is None]
    if missing:
        return ("the Qt X11 plugin needs system libraries that are missing; install them, "
                f"e.g. sudo apt-get install {' '.join(missing)}")
    return None


def make_settings() -> QSettings:
    return QSettings(str(paths.settings_file()), QSettings.Format.IniFormat)


def run_gui(open_paths: list[str], theme: str | None = None,
            quit_after_ms: int | None = None, screenshot: str | None = None,
            bundle: str | None = None, device: str = "auto") -> int:
    """Run the application; returns the exit status.

    ``quit_after_ms`` closes the window after the study has loaded and that delay passed
    (smoke tests, packaging checks); ``screenshot`` saves the window to a PNG just before.
    """
    problem = None if QApplication.instance() else display_problem()
    if problem:
        print(f"radview: cannot open a window: {problem}", file=sys.stderr)
        return 2
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("radview")
    app.setApplicationVersion(__version__)
    app.setOrganizationName("radview")
    app.setDesktopFileName("radview")
    icon = QIcon()
    for f in paths.icon_files():
        icon.addFile(str(f))
    app.setWindowIcon(icon)
    window = MainWindow(make_settings(), bundle=bundle, device=device)
    if theme:
        window.set_theme(theme)
    window.show()
    if os.environ.get("RADVIEW_STARTUP_PROBE"):  # bench/startup.py: when the window is up
        from PySide6.QtCore import QTimer

        QTimer.singleShot(0, lambda: print(f"RADVIEW_STARTUP_PROBE shown_at={time.time():.4f}",
                                           file=sys.stderr, flush=True))
    if quit_after_ms is not None:
        from PySide6.QtCore import QTimer

        def finish() -> None:
            if screenshot:
                window.grab().save(screenshot)
                log.info("screenshot written to %s", Path(screenshot).name)
            window.close()

        def on_loaded(_study=None) -> None:
            QTimer.singleShot(quit_after_ms, finish)

        def on_study_loaded(_study=None) -> None:
            # When the AI will run on this study, wait for its result (or failure); while
            # bundles are still being looked for, also stop if none turns up.
            if not window.act_auto_ai.isChecked() or not (window.ai.available
                                                          or window.ai.discovering):
                on_loaded()
                return
            window.ai_finished.connect(on_loaded)
            if not window.ai.available:
                window.ai.bundle_changed.connect(
                    lambda choice: on_loaded() if choice is None else None)

        if open_paths:
            window.study_loaded.connect(on_study_loaded)
            window.scan_finished.connect(
                lambda r: None if r.studies else QTimer.singleShot(quit_after_ms, finish))
        else:
            on_loaded()
    if open_paths:
        window.open_paths(open_paths)
    return app.exec()
