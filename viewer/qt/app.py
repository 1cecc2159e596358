"""Start the GUI."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from viewer import __version__, paths
from viewer.qt.main_window import MainWindow

log = logging.getLogger(__name__)


def make_settings() -> QSettings:
    return QSettings(str(paths.settings_file()), QSettings.Format.IniFormat)


def run_gui(open_paths: list[str], theme: str | None = None,
            quit_after_ms: int | None = None, screenshot: str | None = None) -> int:
    """Run the application; returns the exit status.

    ``quit_after_ms`` closes the window after the study has loaded and that delay passed
    (smoke tests, packaging checks); ``screenshot`` saves the window to a PNG just before.
    """
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("radview")
    app.setApplicationVersion(__version__)
    app.setOrganizationName("radview")
    window = MainWindow(make_settings())
    if theme:
        window.set_theme(theme)
    window.show()
    if quit_after_ms is not None:
        from PySide6.QtCore import QTimer

        def finish() -> None:
            if screenshot:
                window.grab().save(screenshot)
                log.info("screenshot written to %s", Path(screenshot).name)
            window.close()

        def on_loaded(_study=None) -> None:
            QTimer.singleShot(quit_after_ms, finish)

        if open_paths:
            window.study_loaded.connect(on_loaded)
            window.scan_finished.connect(
                lambda r: None if r.studies else QTimer.singleShot(quit_after_ms, finish))
        else:
            on_loaded()
    if open_paths:
        window.open_paths(open_paths)
    return app.exec()
