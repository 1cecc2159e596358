"""Desktop packaging: the packaging files (always) and the built application (when built).

The tests of the build itself run ``dist/radview/radview`` and are skipped unless it exists:
building takes minutes and ~1 GB of disk, so the normal test run never builds. Build with
``packaging/build.sh`` (or run ``packaging/smoke.sh``, which builds if needed and runs
these tests).
"""

from __future__ import annotations

import configparser
import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from viewer import paths

ROOT = Path(__file__).resolve().parent.parent
PACKAGING = ROOT / "packaging"
LINUX = PACKAGING / "linux"
BUILD_DIR = ROOT / "dist" / "radview"
BUILD = BUILD_DIR / "radview"
SAMPLE = ROOT / "resources" / "samples" / "upper_limb_dicom"
MIME_NS = "{http://www.freedesktop.org/standards/shared-mime-info}"

needs_build = pytest.mark.skipif(
    not BUILD.exists(),
    reason="no desktop build: dist/radview/radview does not exist (packaging/build.sh "
           "builds it in minutes, ~1 GB; packaging/smoke.sh builds and runs these tests)")


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen",
               RADVIEW_CONFIG_DIR=str(tmp_path / "config"),
               RADVIEW_STATE_DIR=str(tmp_path / "state"))
    env.pop("RADVIEW_STARTUP_PROBE", None)
    return env


def _run(args: list[str], tmp_path: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=_env(tmp_path), capture_output=True, text=True,
                          timeout=timeout)


# -- packaging files (no build needed) --------------------------------------------------


def test_icon_set_is_complete_and_small():
    from PIL import Image

    svg = paths.icons_dir() / "radview.svg"
    assert svg.is_file() and svg.stat().st_size < 8_000
    ET.parse(svg)
    for size in paths.ICON_SIZES:
        png = paths.icons_dir() / f"radview-{size}.png"
        with Image.open(png) as img:
            assert img.size == (size, size) and img.mode == "RGBA"
        assert png.stat().st_size < 20_000
    assert paths.icon_files()[0].name == "radview-256.png"


def test_desktop_entry():
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str  # keys are case-sensitive
    entry.read(LINUX / "radview.desktop", encoding="utf-8")
    d = entry["Desktop Entry"]
    assert d["Type"] == "Application" and d["Icon"] == "radview"
    assert d["Exec"] == "radview %F" and d["TryExec"] == "radview"
    assert "application/dicom" in d["MimeType"].split(";")
    assert d["Terminal"] == "false"
    if shutil.which("desktop-file-validate"):
        out = subprocess.run(["desktop-file-validate", str(LINUX / "radview.desktop")],
                             capture_output=True, text=True)
        assert out.returncode == 0 and "error" not in out.stdout, out.stdout


def test_mime_definition_covers_dcm_dicomdir_and_magic():
    root = ET.parse(LINUX / "radview-mime.xml").getroot()
    (mime,) = root.findall(f"{MIME_NS}mime-type")
    assert mime.get("type") == "application/dicom"
    globs = {g.get("pattern") for g in mime.findall(f"{MIME_NS}glob")}
    assert globs == {"*.dcm", "*.DCM", "DICOMDIR"}
    (match,) = mime.findall(f"{MIME_NS}magic/{MIME_NS}match")
    assert (match.get("type"), match.get("offset"), match.get("value")) == (
        "string", "128", "DICM")
    # the magic is right for the bundled samples
    for f in SAMPLE.glob("*.dcm"):
        assert f.read_bytes()[128:132] == b"DICM"


def test_appstream_metadata():
    root = ET.parse(LINUX / "io.github.radview.metainfo.xml").getroot()
    assert root.tag == "component" and root.get("type") == "desktop-application"
    assert root.findtext("id") == "io.github.radview"
    assert root.findtext("launchable") == "radview.desktop"
    assert root.findtext("metadata_license") == "CC0-1.0"
    assert root.find("provides/mediatype").text == "application/dicom"
    from viewer import __version__

    assert root.find("releases/release").get("version") == __version__
    if shutil.which("appstreamcli"):
        out = subprocess.run(["appstreamcli", "validate", "--no-net",
                              str(LINUX / "io.github.radview.metainfo.xml")],
                             capture_output=True, text=True)
        assert out.returncode == 0, out.stdout + out.stderr


def test_spec_lists_only_existing_inputs():
    spec = (PACKAGING / "radview.spec").read_text()
    for rel in ("packaging/radview_main.py", "packaging/hooks/rthook_torchvision_cpu.py"):
        assert Path(rel).name in spec and (ROOT / rel).is_file()
    assert "resources" in spec and (ROOT / "resources" / "samples").is_dir()


def _fake_build(tmp_path: Path) -> Path:
    """A stand-in build folder: the installer's logic without building (seconds)."""
    fake = tmp_path / "fake" / "radview"
    (fake / "_internal" / "resources").mkdir(parents=True)
    shutil.copytree(paths.icons_dir(), fake / "_internal" / "resources" / "icons")
    exe = fake / "radview"
    exe.write_text("#!/bin/sh\necho fake radview \"$@\"\n")
    exe.chmod(0o755)
    return fake


def test_install_script_into_a_prefix_and_uninstall(tmp_path):
    prefix = tmp_path / "prefix"
    fake = _fake_build(tmp_path)
    out = subprocess.run(["bash", str(LINUX / "install.sh"), "--prefix", str(prefix),
                          "--from", str(fake)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    share = prefix / "share"
    expected = [prefix / "lib" / "radview" / "radview",
                share / "applications" / "radview.desktop",
                share / "mime" / "packages" / "radview.xml",
                share / "metainfo" / "io.github.radview.metainfo.xml",
                share / "icons" / "hicolor" / "scalable" / "apps" / "radview.svg"]
    expected += [share / "icons" / "hicolor" / f"{s}x{s}" / "apps" / "radview.png"
                 for s in paths.ICON_SIZES]
    for f in expected:
        assert f.is_file(), f
    launcher = prefix / "bin" / "radview"
    assert launcher.is_symlink()
    assert subprocess.run([str(launcher), "x"], capture_output=True, text=True).stdout == (
        "fake radview x\n")
    desktop = (share / "applications" / "radview.desktop").read_text()
    assert f"Exec={launcher} %F" in desktop and f"TryExec={launcher}" in desktop
    if shutil.which("update-mime-database"):
        assert "application/dicom:DICOMDIR" in (share / "mime" / "globs2").read_text()

    # installing again replaces the build; uninstalling removes what was installed
    again = subprocess.run(["bash", str(LINUX / "install.sh"), "--prefix", str(prefix),
                            "--from", str(fake), "--no-caches"], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    gone = subprocess.run(["bash", str(LINUX / "install.sh"), "--prefix", str(prefix),
                           "--uninstall"], capture_output=True, text=True)
    assert gone.returncode == 0, gone.stderr
    assert not any(f.exists() for f in expected) and not launcher.exists()


def test_install_script_refuses_a_missing_build(tmp_path):
    out = subprocess.run(["bash", str(LINUX / "install.sh"), "--prefix", str(tmp_path / "p"),
                          "--from", str(tmp_path / "nothing")], capture_output=True, text=True)
    assert out.returncode == 2 and "no build" in out.stderr


# -- the built application ----------------------------------------------------------------


@needs_build
def test_build_version(tmp_path):
    from viewer import __version__

    out = _run([str(BUILD), "--version"], tmp_path)
    assert out.returncode == 0 and out.stdout.strip() == f"radview {__version__}"


@needs_build
def test_build_info_on_the_sample(tmp_path):
    out = _run([str(BUILD), "info", str(SAMPLE)], tmp_path)
    assert out.returncode == 0, out.stderr
    assert "2 images (2 usable)" in out.stdout
    unreadable = _run([str(BUILD), "info", str(tmp_path)], tmp_path)
    assert unreadable.returncode == 2


@needs_build
def test_build_opens_the_gui_and_quits(tmp_path):
    shot = tmp_path / "window.png"
    out = _run([str(BUILD), "--quit-after", "2000", "--screenshot", str(shot)], tmp_path)
    assert out.returncode == 0, out.stderr
    import numpy as np
    from PIL import Image

    with Image.open(shot) as img:
        assert img.width >= 640 and img.height >= 400
        gray = np.asarray(img.convert("L").resize((64, 64)))
    assert len(np.unique(gray)) > 20  # a drawn window, not a blank one


@needs_build
def test_build_runs_torch_torchvision_gradcam_and_codecs(tmp_path):
    out = _run([str(BUILD), "--build-selftest"], tmp_path, timeout=300)
    report = json.loads(out.stdout)
    failed = {k: v.get("error") for k, v in report["checks"].items() if not v["ok"]}
    assert out.returncode == 0 and not failed, failed
    assert report["checks"]["paths"]["frozen"] is True
    assert report["checks"]["resnet18"]["shape"] == [1, 1000]
    variant = json.loads((BUILD_DIR / "build-info.json").read_text())["variant"]
    if variant == "cpu":
        assert report["checks"]["torch"]["cuda_build"] is None
    else:  # the CUDA build keeps torchvision's C++ ops
        assert report["checks"]["resnet18"]["torchvision_ops"] is True


@needs_build
@pytest.mark.skipif(not shutil.which("xvfb-run"),
                    reason="xvfb-run is not installed (apt-get install xvfb)")
def test_build_opens_an_x11_window(tmp_path):
    """The platform plugin a workstation uses (xcb), under a virtual X server."""
    env = _env(tmp_path)
    env.pop("QT_QPA_PLATFORM")
    shot = tmp_path / "x11.png"
    out = subprocess.run(["xvfb-run", "-a", "-s", "-screen 0 1280x900x24", str(BUILD),
                          "--quit-after", "1000", "--screenshot", str(shot)], env=env,
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    assert shot.stat().st_size > 10_000


def _build_has_predict(tmp_path: Path) -> bool:
    return _run([str(BUILD), "predict", "--help"], tmp_path).returncode == 0


@needs_build
def test_build_predicts_with_a_bundle(tmp_path):
    """The AI end to end inside the build: bundle loading, models, Grad-CAM maps."""
    if not _build_has_predict(tmp_path):
        pytest.skip("this build predates `radview predict`: rebuild with packaging/build.sh")
    from bundle_factory import make_bundle

    make_bundle(tmp_path / "bundle")
    out = _run([str(BUILD), "predict", str(SAMPLE), "--bundle", str(tmp_path / "bundle"),
                "--device", "cpu", "--cams", str(tmp_path / "cams"), "--no-progress"],
               tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr
    (study,) = json.loads(out.stdout)["studies"]
    assert study["supported"] and 0 <= study["score"] <= 1, study
    assert any((tmp_path / "cams").rglob("*.png"))


@needs_build
def test_build_gui_runs_the_ai_and_quits(tmp_path):
    if not _build_has_predict(tmp_path):
        pytest.skip("this build predates the AI engine: rebuild with packaging/build.sh")
    from bundle_factory import make_bundle

    make_bundle(tmp_path / "bundle")
    out = _run([str(BUILD), "--bundle", str(tmp_path / "bundle"), "--device", "cpu",
                "--quit-after", "500", "--screenshot", str(tmp_path / "ai.png")], tmp_path,
               timeout=300)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "ai.png").stat().st_size > 10_000


@needs_build
def test_build_contents(tmp_path):
    internal = BUILD_DIR / "_internal"
    assert (internal / "resources" / "icons" / "radview.svg").is_file()
    assert sorted(p.name for p in (internal / "resources" / "samples" /
                                   "upper_limb_dicom").iterdir()) == ["IM0001.dcm", "IM0002.dcm"]
    assert not (internal / "resources" / "samples" / "build_samples.py").exists()
    info = json.loads((BUILD_DIR / "build-info.json").read_text())
    assert info["variant"] in ("cpu", "cuda")
    if info["variant"] == "cpu":
        big = [p.name for p in internal.rglob("*") if "cuda" in p.name.lower()
               and p.suffix in (".so", ".13", ".12") and p.stat().st_size > 1_000_000]
        assert not big, big
        assert not (internal / "nvidia").exists()
    assert not list(BUILD_DIR.rglob("libQt6WebEngine*"))
    assert not [p for p in BUILD_DIR.rglob("*") if p.is_symlink() and not p.exists()]
    assert (BUILD_DIR / "linux" / "install.sh").is_file()


@needs_build
def test_build_logs_into_the_state_folder(tmp_path):
    """The build writes its log into the state folder, without the sample's patient."""
    out = _run([str(BUILD), "info", str(SAMPLE)], tmp_path)
    assert out.returncode == 0
    log = tmp_path / "state" / "radview.log"
    assert log.exists(), "no log file in RADVIEW_STATE_DIR"
    assert "DEMO^HAND" not in log.read_text(encoding="utf-8")


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v"]))
