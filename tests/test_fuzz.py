"""A seeded mutation-fuzz run over the real files the suite reads (bench/fuzz_files.py).

Each case mangles one source file (bit flips, interesting bytes, truncation, a corrupted
VR or length, codec-stream corruption, a spliced chunk) and reads it as the viewer does.
The run is a separate process with radview's logging, so that what it prints is what a
user would see. Asserted: every file is accounted for (an image or an error), nothing
escapes radview, no traceback (Python or Rust) reaches stderr, no case hangs (the
runner's per-case watchdog exits the process), and memory stays bounded. The 10,000-case
run and its figures are in bench/README.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CASES = 400
#: Peak resident memory allowed for the whole run (the 10,000-case run peaks near 110 MB).
MAX_RSS_MB = 600


def test_mutation_fuzz(tmp_path):
    cases_out = tmp_path / "cases.jsonl"
    env = {**os.environ, "RADVIEW_STATE_DIR": str(tmp_path / "state")}
    run = subprocess.run(
        [sys.executable, str(REPO / "bench" / "fuzz_files.py"), "--cases", str(CASES),
         "--seed", "12", "--case-timeout", "120", "--cases-out", str(cases_out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
    last = cases_out.read_text().splitlines()[-1:] if cases_out.exists() else []
    # A hang makes the watchdog exit with status 1; the last case line names it.
    assert run.returncode == 0, (run.stderr[-3000:], last)
    summary = json.loads(run.stdout)
    assert summary["crashes"] == []
    assert sum(summary["outcomes"].values()) == CASES  # every file accounted for
    assert set(summary["outcomes"]) <= {"image", "image-error", "file-error"}
    assert "Traceback" not in run.stderr and "panicked at" not in run.stderr, run.stderr
    assert summary["peak_rss_mb"] < MAX_RSS_MB
