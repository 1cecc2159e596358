"""Start the GUI.

System libraries. On Linux under X11, Qt's xcb platform plugin needs a dozen system
libraries (:data:`XCB_PACKAGES`) that a desktop has and a fresh server or container
often lacks; Qt would abort with a core dump. Before the first window, :func:`run_gui`
checks them (:func:`prepare_display`): as root on a Debian/Ubuntu system it installs the
missing packages with ``apt-get`` (non-interactive, saying so on stderr); otherwise it
prints the exact ``sudo apt-get install …`` command and exits with status 2.
"""

from __future__ import annotations

import ctypes.util
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from PySide6.QtCore import QSettings
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from viewer import __version__, paths
from viewer.qt.main_window import MainWindow

log = logging.getLogger(__name__)


#: The libraries Qt's xcb platform plugin links to (``ldd libQt6XcbQpa.so.6``), as
#: :func:`ctypes.util.find_library` names, and the Debian/Ubuntu package of each.
XCB_PACKAGES = {
    "xcb": "libxcb1", "xcb-cursor": "libxcb-cursor0", "xcb-icccm": "libxcb-icccm4",
    "xcb-image": "libxcb-image0", "xcb-keysyms": "libxcb-keysyms1",
    "xcb-randr": "libxcb-randr0", "xcb-render": "libxcb-render0",
    "xcb-render-util": "libxcb-render-util0", "xcb-shape": "libxcb-shape0",
    "xcb-shm": "libxcb-shm0", "xcb-sync": "libxcb-sync1", "xcb-util": "libxcb-util1",
    "xcb-xfixes": "libxcb-xfixes0", "xcb-xkb": "libxcb-xkb1", "xkbcommon": "libxkbcommon0",
    "xkbcommon-x11": "libxkbcommon-x11-0", "X11": "libx11-6", "X11-xcb": "libx11-xcb1",
    "GL": "libgl1", "EGL": "libegl1", "fontconfig": "libfontconfig1", "dbus-1": "libdbus-1-3",
}

#: ``run(command, env) -> (exit status, output)``; :func:`prepare_display` takes one so
#: that tests decide what apt-get "does".
Runner = Callable[[list[str], dict[str, str]], tuple[int, str]]


def _needs_xcb(env: dict[str, str]) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    platform = env.get("QT_QPA_PLATFORM", "")
    if platform:
        return platform == "xcb"
    return not env.get("WAYLAND_DISPLAY")


def missing_xcb_packages(find_library: Callable[[str], str | None] = ctypes.util.find_library
                         ) -> list[str]:
    """Debian packages of the xcb plugin's libraries that are not installed, sorted."""
    return sorted({pkg for lib, pkg in XCB_PACKAGES.items() if find_library(lib) is None})


def apt_install_command(packages: list[str]) -> list[str]:
    """``apt-get install -y --no-install-recommends PKG…``."""
    return ["apt-get", "install", "-y", "--no-install-recommends", *packages]


def _missing_text(packages: list[str], has_apt: bool) -> str:
    if has_apt:
        return ("the Qt X11 plugin needs system libraries that are missing; install them "
                f"with: sudo {' '.join(apt_install_command(packages))}")
    return ("the Qt X11 plugin needs system libraries that are missing (Debian/Ubuntu "
            f"packages {' '.join(packages)}); install them with your package manager")


def display_problem(env: dict[str, str] | None = None,
                    find_library: Callable[[str], str | None] = ctypes.util.find_library,
                    ) -> str | None:
    """Why the GUI cannot start here, or None. Qt itself would abort with a core dump."""
    env = dict(os.environ if env is None else env)
    if not _needs_xcb(env):
        return None
    if not env.get("DISPLAY"):
        return ("no display: start radview in a desktop session, under a virtual screen "
                "(xvfb-run radview ...), or set QT_QPA_PLATFORM=offscreen")
    missing = missing_xcb_packages(find_library)
    if missing:
        return _missing_text(missing, shutil.which("apt-get") is not None)
    return None


def _run(command: list[str], env: dict[str, str]) -> tuple[int, str]:
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True,
                              timeout=900, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 1, str(exc)
    return done.returncode, (done.stdout or "") + (done.stderr or "")


def prepare_display(env: dict[str, str] | None = None, *,
                    find_library: Callable[[str], str | None] = ctypes.util.find_library,
                    is_root: bool | None = None, has_apt: bool | None = None,
                    run: Runner = _run, stderr: TextIO | None = None) -> str | None:
    """Make the GUI startable here when radview can: install missing xcb libraries.

    Parameters
    ----------
    env
        The environment (default ``os.environ``).
    find_library, is_root, has_apt, run, stderr
        How libraries are found, whether this process is root (default: effective uid
        0), whether ``apt-get`` exists, how commands run, where progress is said (default
        ``sys.stderr``); tests replace them.

    Returns
    -------
    str or None
        None when a window can be opened (possibly after installing packages), else why
        not, with the exact command the user must run.

    Notes
    -----
    Only the X11 (xcb) platform needs these libraries; offscreen, Wayland and non-Linux
    platforms return None at once. As root with apt-get, the missing packages are
    installed with :func:`apt_install_command` under ``DEBIAN_FRONTEND=noninteractive``;
    when that fails (a fresh container has no package lists), ``apt-get update`` runs
    once and the install is retried. Never as another user: no ``sudo`` prompt appears
    behind the user's back.
    """
    env = dict(os.environ if env is None else env)
    problem = display_problem(env, find_library)
    if problem is None or not _needs_xcb(env) or not env.get("DISPLAY"):
        return problem
    missing = missing_xcb_packages(find_library)
    if is_root is None:
        is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    if has_apt is None:
        has_apt = shutil.which("apt-get") is not None
    if not (is_root and has_apt):
        return _missing_text(missing, has_apt)
    out = stderr if stderr is not None else sys.stderr
    command = apt_install_command(missing)
    print(f"radview: the Qt X11 plugin needs system libraries that are missing; installing "
          f"them as root: {' '.join(command)}", file=out, flush=True)
    apt_env = {**env, "DEBIAN_FRONTEND": "noninteractive"}
    status, output = run(command, apt_env)
    if status != 0:
        print("radview: apt-get install failed; updating the package lists and retrying",
              file=out, flush=True)
        run(["apt-get", "update", "-q"], apt_env)
        status, output = run(command, apt_env)
    if status != 0:
        tail = " | ".join(output.strip().splitlines()[-3:])
        return (f"installing the Qt X11 plugin's libraries failed (apt-get exit status "
                f"{status}: {tail}); run: {' '.join(command)}")
    still = missing_xcb_packages(find_library)
    if still:
        return _missing_text(still, has_apt)
    print(f"radview: installed {' '.join(missing)}", file=out, flush=True)
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
    problem = None if QApplication.instance() else prepare_display()
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
                window.session.events.bundle_changed.connect(
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
