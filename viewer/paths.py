"""Where radview finds its resources and keeps its settings (Qt-free).

``RADVIEW_CONFIG_DIR`` overrides the settings folder (tests use it so they never touch
the user's real settings).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import platformdirs

APP_NAME = "radview"


def resources_dir() -> Path:
    """The ``resources/`` folder, from a source checkout or a frozen build."""
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen:
        return Path(frozen) / "resources"
    return Path(__file__).resolve().parent.parent / "resources"


def sample_study() -> Path:
    """The bundled sample study opened when radview starts without a path."""
    return resources_dir() / "samples" / "upper_limb_dicom"


def config_dir() -> Path:
    override = os.environ.get("RADVIEW_CONFIG_DIR")
    path = Path(override) if override else Path(platformdirs.user_config_dir(APP_NAME))
    path.mkdir(parents=True, exist_ok=True)
    return path


def settings_file() -> Path:
    return config_dir() / "settings.ini"
