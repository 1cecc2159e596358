"""The README opens with the two commands CI and users run; .ci/run runs the test one."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```bash\n(.*?)\n```", text, flags=re.S)[:2]


def test_readme_opens_with_run_and_test_commands():
    # Exactly two code blocks come first: set up + launch, set up + test.
    run, test = _readme_commands()
    assert run.strip().endswith(".venv/bin/radview")
    assert "pytest" in test and "ruff check" in test and "lint-imports" in test


def test_ci_runs_the_readme_test_command_verbatim():
    # CI must run the same command a developer runs, not a look-alike.
    _, test = _readme_commands()
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert test.strip() in ci.splitlines()
