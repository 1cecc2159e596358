"""The import direction is one way: viewer.qt → viewer (Qt-free) → inference, and the
training code (inference.training) stays out of the runtime engine and the viewer.

Checked two ways: import-linter contracts in pyproject.toml (run by the README's test
command and here), and subprocesses that import the Qt-free modules with PySide6 made
unimportable — an import of Qt anywhere in them fails the test — or that list what
importing the runtime engine loaded.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

QT_FREE = ["inference", "viewer.model", "viewer.loader", "viewer.pixels", "viewer.display",
           "viewer.viewstate", "viewer.paths", "viewer.overlay", "viewer.analysis",
           "viewer.logs", "viewer.report", "viewer.session", "viewer.cli", "viewer.cli.info",
           "viewer.cli.render", "viewer.cli.predict", "viewer.cli.report", "viewer.cli.train",
           "viewer.cli.evaluate", "viewer.cli.listen", "viewer.atomicio",
           "viewer.dicom_results", "viewer.dicomnet", "inference.bundle", "inference.engine",
           "inference.models",
           "inference.routing", "inference.gradcam", "inference.preprocess",
           "inference.training.train", "inference.training.evaluate",
           "viewer.training_input", "inference.aggregate", "inference.boxes",
           "inference.training.boxfit"]

#: The runtime engine: what the viewer and ``radview predict`` use (never the training code).
RUNTIME = ["inference.bundle", "inference.engine", "inference.models", "inference.preprocess",
           "inference.routing", "inference.gradcam", "inference.bodyparts", "inference.errors",
           "inference.efficientnet_lite",
           # issue 14: study aggregation / flag, and the box head
           "inference.aggregate", "inference.boxes"]

_BLOCK_QT = """
import importlib, importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.split('.')[0]
        if top in ('PySide6', 'shiboken6', 'PyQt5', 'PyQt6') or name.startswith('viewer.qt'):
            raise ImportError('blocked in the Qt-free check: ' + name)
        return None
sys.meta_path.insert(0, Block())
"""


@pytest.mark.parametrize("module", QT_FREE)
def test_module_imports_without_qt(module):
    # Each Qt-free module must import in a process where PySide6 cannot be imported.
    code = _BLOCK_QT + f"import {module}\nprint('ok')"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_inference_never_imports_viewer():
    # inference is the engine: importing it must not pull in any viewer module.
    code = ("import sys, inference\n"
            "bad = [m for m in sys.modules if m == 'viewer' or m.startswith('viewer.')]\n"
            "print(bad)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_only_viewer_qt_imports_pyside6():
    # A static check that also covers modules nothing imports yet.
    offenders = []
    for path in [*(REPO / "viewer").rglob("*.py"), *(REPO / "inference").rglob("*.py")]:
        rel = path.relative_to(REPO)
        if rel.parts[:2] == ("viewer", "qt"):
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip().startswith(("import PySide6", "from PySide6")):
                offenders.append(f"{rel}: {line.strip()}")
    assert offenders == []


def test_import_linter_contracts_hold():
    # The same contracts as `lint-imports` in the README's test command.
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.fail("lint-imports is not installed: install the [test] extra")
    out = subprocess.run([exe], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("code", [
    # The GUI's modules: torch would add seconds and hundreds of MB to start-up.
    "import viewer.qt.main_window",
    # Bundle discovery runs while the first study decodes: it must stay light.
    "from inference.bundle import discover_bundles; discover_bundles()",
])
def test_startup_paths_do_not_import_torch(code):
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys\n"
                          "print('torch' in sys.modules)"],
                         cwd=REPO, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_runtime_engine_never_imports_training():
    # Importing the whole runtime engine (and radview's commands that use it) must not load
    # inference.training: torchvision-heavy training code stays out of the viewer.
    modules = [*RUNTIME, "viewer.cli", "viewer.cli.predict", "viewer.cli.report",
               "viewer.analysis"]
    code = ("import importlib, sys\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            "print([m for m in sys.modules if m.startswith('inference.training')])")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_every_runtime_module_is_under_the_training_contract():
    # The import-linter contract lists the runtime modules by name: a new module in
    # inference/ must be added there (and to RUNTIME) or go into inference/training/.
    found = {f"inference.{p.stem}" for p in (REPO / "inference").glob("*.py")
             if p.stem != "__init__"}
    contracts = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    training = [c for c in contracts["tool"]["importlinter"]["contracts"]
                if c.get("forbidden_modules") == ["inference.training"]
                and c["source_modules"] != ["viewer"]]
    assert len(training) == 1
    assert found == set(training[0]["source_modules"]) == set(RUNTIME)
