"""Where radview finds its resources and keeps its settings, logs and models (Qt-free).

This is the one place that knows the layout, from a source checkout and from a frozen
(PyInstaller) build alike: in a build, ``resources/`` lies inside the bundle folder
(``sys._MEIPASS``, i.e. ``dist/radview/_internal``), from source it is the checkout's
``resources/``.

Environment overrides (tests use them so they never touch the user's real folders):

- ``RADVIEW_CONFIG_DIR``: settings and recent files (``settings.ini``).
- ``RADVIEW_STATE_DIR``: logs (``radview.log`` and its rotated copies).
- ``RADVIEW_DATA_DIR``: user data, e.g. model bundles installed by the user.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import platformdirs

APP_NAME = "radview"

#: Sizes of the raster application icons in ``resources/icons`` (``radview-<size>.png``).
ICON_SIZES = (16, 32, 48, 64, 128, 256)


def is_frozen() -> bool:
    """True when running from a PyInstaller build rather than from source."""
    return bool(getattr(sys, "frozen", False) and getattr(sys, "_MEIPASS", None))


def resources_dir() -> Path:
    """The ``resources/`` folder, from a source checkout or a frozen build."""
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen:
        return Path(frozen) / "resources"
    return Path(__file__).resolve().parent.parent / "resources"


def sample_study() -> Path:
    """The bundled sample study opened when radview starts without a path."""
    return resources_dir() / "samples" / "upper_limb_dicom"


def icons_dir() -> Path:
    """The application icons (``radview.svg`` and ``radview-<size>.png``)."""
    return resources_dir() / "icons"


def icon_files() -> list[Path]:
    """The application icon files that exist, largest raster first, then the SVG."""
    folder = icons_dir()
    files = [folder / f"radview-{size}.png" for size in sorted(ICON_SIZES, reverse=True)]
    files.append(folder / "radview.svg")
    return [f for f in files if f.is_file()]


def models_dir() -> Path:
    """The default model bundles shipped with radview (may not exist).

    Same rule as :func:`inference.bundle.shipped_models_dir`, incl. the
    ``RADVIEW_SHIPPED_MODELS_DIR`` override.
    """
    override = os.environ.get("RADVIEW_SHIPPED_MODELS_DIR")
    return Path(override) if override else resources_dir() / "models"


def _dir_from(env_var: str, default: str) -> Path:
    override = os.environ.get(env_var)
    path = Path(override) if override else Path(default)
    path.mkdir(parents=True, exist_ok=True)
    return path


def config_dir() -> Path:
    """Settings and recent files (created if missing)."""
    return _dir_from("RADVIEW_CONFIG_DIR", platformdirs.user_config_dir(APP_NAME))


def settings_file() -> Path:
    return config_dir() / "settings.ini"


def state_dir() -> Path:
    """Logs and other state that may be thrown away (created if missing)."""
    return _dir_from("RADVIEW_STATE_DIR", platformdirs.user_state_dir(APP_NAME))


def log_file() -> Path:
    return state_dir() / "radview.log"


def user_data_dir() -> Path:
    """Per-user data (created if missing)."""
    return _dir_from("RADVIEW_DATA_DIR", platformdirs.user_data_dir(APP_NAME))


def user_models_dir() -> Path:
    """Model bundles the user installed (``<user data>/models``; not created)."""
    return user_data_dir() / "models"
