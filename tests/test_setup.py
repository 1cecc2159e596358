"""Set-up (issue 12 §2): the Qt X11 libraries on a fresh machine, and a test suite that
cannot skip its GUI tests silently.

apt-get is never really run: :func:`viewer.qt.app.prepare_display` takes the runner,
``find_library``, root-ness and apt-get's presence as arguments.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from viewer.qt.app import XCB_PACKAGES, apt_install_command, prepare_display

REPO = Path(__file__).resolve().parent.parent
X11 = {"DISPLAY": ":0"}
#: What this kind of fresh machine lacked (the README's first command failed on it).
LACKING = {"xcb-icccm", "xcb-keysyms"}


class FakeSystem:
    """Libraries present except ``lacking``; apt-get "installs" what it is asked for,
    after ``fail_first`` failed attempts (a container without package lists)."""

    def __init__(self, lacking: set[str], fail_first: int = 0, works: bool = True) -> None:
        self.lacking = set(lacking)
        self.fail_first = fail_first
        self.works = works
        self.commands: list[list[str]] = []
        self.envs: list[dict[str, str]] = []

    def find_library(self, name: str) -> str | None:
        return None if name in self.lacking else f"lib{name}.so"

    def run(self, command: list[str], env: dict[str, str]) -> tuple[int, str]:
        self.commands.append(command)
        self.envs.append(env)
        if command[:2] != ["apt-get", "install"]:
            return 0, ""
        if self.fail_first or not self.works:
            self.fail_first -= 1
            return 100, "E: Unable to locate package libxcb-icccm4"
        packages = set(command[4:])
        self.lacking = {lib for lib in self.lacking if XCB_PACKAGES[lib] not in packages}
        return 0, "Setting up libxcb-icccm4 ..."


def test_as_root_the_missing_packages_are_installed():
    system, err = FakeSystem(LACKING), io.StringIO()
    problem = prepare_display(X11, find_library=system.find_library, is_root=True,
                              has_apt=True, run=system.run, stderr=err)
    assert problem is None
    assert system.commands == [["apt-get", "install", "-y", "--no-install-recommends",
                                "libxcb-icccm4", "libxcb-keysyms1"]]
    assert system.envs[0]["DEBIAN_FRONTEND"] == "noninteractive"
    assert "installing them as root: apt-get install" in err.getvalue()


def test_a_fresh_container_gets_its_package_lists_first():
    # The first install fails (no package lists): apt-get update, then install again.
    system = FakeSystem(LACKING, fail_first=1)
    problem = prepare_display(X11, find_library=system.find_library, is_root=True,
                              has_apt=True, run=system.run, stderr=io.StringIO())
    assert problem is None
    assert [c[:2] for c in system.commands] == [["apt-get", "install"],
                                                ["apt-get", "update"],
                                                ["apt-get", "install"]]


def test_a_failed_install_says_what_to_run():
    system = FakeSystem(LACKING, works=False)
    problem = prepare_display(X11, find_library=system.find_library, is_root=True,
                              has_apt=True, run=system.run, stderr=io.StringIO())
    assert "apt-get exit status 100" in problem
    assert problem.endswith("run: apt-get install -y --no-install-recommends "
                            "libxcb-icccm4 libxcb-keysyms1")


@pytest.mark.parametrize("is_root, has_apt, expected", [
    # Not root: never a sudo prompt behind the user's back; the exact command instead.
    (False, True, "install them with: sudo apt-get install -y --no-install-recommends "
                  "libxcb-icccm4 libxcb-keysyms1"),
    # No apt-get (not Debian/Ubuntu): the package names, for another package manager.
    (True, False, "packages libxcb-icccm4 libxcb-keysyms1); install them with your "
                  "package manager"),
], ids=["user", "no-apt"])
def test_without_root_or_apt_nothing_is_run(is_root, has_apt, expected):
    system = FakeSystem(LACKING)
    problem = prepare_display(X11, find_library=system.find_library, is_root=is_root,
                              has_apt=has_apt, run=system.run, stderr=io.StringIO())
    assert problem.endswith(expected)
    assert system.commands == []


@pytest.mark.parametrize("env", [
    {"QT_QPA_PLATFORM": "offscreen"},  # no X11 at all
    {"WAYLAND_DISPLAY": "wayland-0"},
    {},  # no display: a different message, and nothing to install
], ids=["offscreen", "wayland", "no-display"])
def test_nothing_is_installed_where_x11_is_not_used(env):
    system = FakeSystem(LACKING)
    prepare_display(env, find_library=system.find_library, is_root=True, has_apt=True,
                    run=system.run, stderr=io.StringIO())
    assert system.commands == []


def test_every_package_name_is_a_debian_package_name():
    assert apt_install_command(["libxcb-icccm4"])[-1] == "libxcb-icccm4"
    for package in XCB_PACKAGES.values():
        assert package == package.lower() and " " not in package


def test_a_missing_pytest_qt_fails_the_suite(tmp_path):
    # Without pytest-qt (here: disabled) the suite used to skip every GUI test and pass.
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:pytest-qt", "-p", "no:cacheprovider",
         "--collect-only", "-q", "tests/test_gui_panels.py"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode != 0
    assert "pytest-qt is not installed (or disabled)" in run.stdout + run.stderr
