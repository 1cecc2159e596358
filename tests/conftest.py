"""Shared test set-up: headless Qt, isolated settings, no network."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# Before anything imports Qt: draw offscreen, never on a real display.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYDICOM_DATA_OFFLINE", "1")

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/dicom_factory.py

import pytest


def pytest_configure(config):
    """A missing pytest-qt fails the run: the GUI tests must never be skipped silently."""
    if not any(config.pluginmanager.hasplugin(n) for n in ("pytest-qt", "pytestqt")):
        raise pytest.UsageError(
            "pytest-qt is not installed (or disabled): the GUI tests cannot run. "
            "Install the test extras: pip install -e '.[test]'")


@pytest.fixture(autouse=True)
def _isolated_config(tmp_path_factory, monkeypatch):
    """Every test gets its own settings, log and data folders: never the user's real ones."""
    monkeypatch.setenv("RADVIEW_CONFIG_DIR", str(tmp_path_factory.mktemp("config")))
    monkeypatch.setenv("RADVIEW_STATE_DIR", str(tmp_path_factory.mktemp("state")))
    monkeypatch.setenv("RADVIEW_DATA_DIR", str(tmp_path_factory.mktemp("data")))
    # Only the bundles a test makes itself: the shipped default bundle would otherwise
    # score (and draw heatmaps over) every study a GUI test opens. Tests of the shipped
    # bundle use the `shipped_bundle` fixture.
    monkeypatch.setenv("RADVIEW_SHIPPED_MODELS_DIR", str(tmp_path_factory.mktemp("shipped")))
    # Patient values registered for redaction by an earlier test ("TEST", …) would redact
    # parts of this test's tmp paths: every test starts with none.
    from viewer import logs

    logs.clear_identifiers()


@pytest.fixture
def shipped_bundle(monkeypatch):
    """The default bundle in resources/models (fails when it is missing)."""
    monkeypatch.delenv("RADVIEW_SHIPPED_MODELS_DIR", raising=False)
    from inference.bundle import discover_bundles

    found = [b for b in discover_bundles() if b.ok]
    assert found, "no usable bundle in resources/models"
    return found[0]


REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "resources" / "samples"
