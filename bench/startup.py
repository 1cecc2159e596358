"""Start-up time to the first window, from source and from the desktop build.

Usage::

    python bench/startup.py [--runs 3] [--targets source,build] [--cold]

For each target that exists — ``source``: ``.venv/bin/radview``; ``build``:
``dist/radview/radview`` (packaging/build.sh) — starts the real GUI offscreen on the bundled
sample study ``--runs`` times (after one discarded warm-up run that fills the disk cache)
with ``RADVIEW_STARTUP_PROBE=1``, which makes ``viewer.qt.app.run_gui`` print the wall-clock
time once the main window has been shown and the event loop runs. Reports, as JSON:

- ``window_s``: from just before the process is spawned to the main window shown (median,
  and every run);
- ``exit_s``: to the process's exit with ``--quit-after 0`` (study loaded, window closed);
- ``info_s``: ``radview info`` on the sample study (command-line start-up, no Qt window);
- ``size_mib`` of the build folder and its ``build-info.json``;
- ``warmup_run``: the discarded first run.

``--cold`` instead drops the target's files (the build folder; for source the virtual
environment, the base interpreter's library and the checkout) from the page cache before
every run (``posix_fadvise(DONTNEED)``: only those files, nothing else on the machine), to
approximate a first start after installing or rebooting. Pages that other running
processes have mapped stay cached, so this is a lower bound of a truly cold start.

Settings and logs go to a temporary folder, never the user's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {"source": ROOT / ".venv" / "bin" / "radview",
           "build": ROOT / "dist" / "radview" / "radview"}
SAMPLE = ROOT / "resources" / "samples" / "upper_limb_dicom"
PROBE = "RADVIEW_STARTUP_PROBE shown_at="


def _evict(roots: list[Path]) -> None:
    for root in roots:
        for dirpath, _dirs, files in os.walk(root):
            for name in files:
                path = os.path.join(dirpath, name)
                try:
                    fd = os.open(path, os.O_RDONLY)
                except OSError:
                    continue
                try:
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                finally:
                    os.close(fd)


def _cache_roots(name: str, exe: Path) -> list[Path]:
    if name == "build":
        return [exe.parent]
    base = Path(sys.base_prefix) / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    return [ROOT / ".venv", base, ROOT / "viewer", ROOT / "inference"]


def _env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", RADVIEW_STARTUP_PROBE="1",
               RADVIEW_CONFIG_DIR=str(tmp / "config"), RADVIEW_STATE_DIR=str(tmp / "state"))
    env.pop("RADVIEW_DATA_DIR", None)
    return env


def gui_run(exe: Path, env: dict[str, str], timeout: float) -> dict[str, float]:
    start = time.time()
    proc = subprocess.Popen([str(exe), str(SAMPLE), "--quit-after", "0"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _, err = proc.communicate(timeout=timeout)  # the probe line carries its own time
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    code = proc.returncode
    shown = next((float(line[len(PROBE):].strip()) for line in err.splitlines()
                  if line.startswith(PROBE)), None)
    end = time.time()
    if code != 0 or shown is None:
        raise RuntimeError(f"{exe} exited {code}; probe {'seen' if shown else 'not seen'}")
    return {"window_s": round(shown - start, 3), "exit_s": round(end - start, 3)}


def info_run(exe: Path, env: dict[str, str], timeout: float) -> float:
    start = time.time()
    subprocess.run([str(exe), "info", str(SAMPLE)], env=env, check=True, timeout=timeout,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return round(time.time() - start, 3)


def measure(exe: Path, runs: int, timeout: float, evict: list[Path] | None = None) -> dict:
    with tempfile.TemporaryDirectory(prefix="radview-startup-") as tmp:
        env = _env(Path(tmp))
        first = gui_run(exe, env, timeout)  # warm-up: disk cache, fonts, first settings file
        gui, info = [], []
        for _ in range(runs):
            if evict:
                _evict(evict)
            gui.append(gui_run(exe, env, timeout))
        for _ in range(runs):
            if evict:
                _evict(evict)
            info.append(info_run(exe, env, timeout))
    return {
        "exe": str(exe.relative_to(ROOT)),
        "cold": bool(evict),
        "window_s": statistics.median(r["window_s"] for r in gui),
        "exit_s": statistics.median(r["exit_s"] for r in gui),
        "info_s": statistics.median(info),
        "runs": gui,
        "info_runs": info,
        "warmup_run": first,
    }


def _build_facts() -> dict:
    folder = TARGETS["build"].parent
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and not f.is_symlink())
    facts: dict = {"size_mib": round(size / 2**20)}
    info = folder / "build-info.json"
    if info.is_file():
        facts["build_info"] = json.loads(info.read_text())
    return facts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--targets", default="source,build")
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("--cold", action="store_true",
                    help="drop the target's files from the page cache before each run")
    args = ap.parse_args()
    report: dict = {"runs": args.runs, "cpu_count": os.cpu_count(), "results": {}}
    for name in args.targets.split(","):
        exe = TARGETS[name]
        if not exe.exists():
            report["results"][name] = {"skipped": f"{exe.relative_to(ROOT)} does not exist"}
            continue
        evict = _cache_roots(name, exe) if args.cold else None
        report["results"][name] = measure(exe, args.runs, args.timeout, evict)
        if name == "build":
            report["results"][name].update(_build_facts())
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
