"""The ``radview`` command: the GUI, or one subcommand per module of this package.

::

    radview [PATH ...]           open the GUI (the bundled sample study when no PATH)
    radview --demo               open the GUI on the bundled sample study
    radview info PATH ... [--json]                                  (viewer.cli.info)
    radview render FILE -o OUT.png [--wl=CENTER,WIDTH] [--invert]   (viewer.cli.render)
    radview predict PATH ... [--bundle DIR] [--device auto|cpu|cuda] [--cams DIR]
                    [--format json|csv]                             (viewer.cli.predict)
    radview report PATH ... -o REPORT.pdf [--bundle DIR | --no-ai] [--deidentify]
                                                                    (viewer.cli.report)
    radview train --data PATH --format … --out BUNDLE_DIR           (viewer.cli.train)
    radview evaluate --bundle DIR --data PATH --format … --out DIR  (viewer.cli.evaluate)
    radview listen [--aet RADVIEW] [--port 11112] [--host 127.0.0.1] --inbox DIR
                   [--accept AET ...] [--analyse]                 (viewer.cli.listen)

``python -m viewer.cli …`` is the same command (how ``torchrun`` starts ``train``).

Every subcommand is a module ``viewer.cli.<name>`` with ``main(argv) -> int`` (the exit
status), imported only when that subcommand runs; each starts with
:func:`viewer.cli._common.start` (argument parsing, logging). Adding one is one line in
:data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from viewer import __version__, paths
from viewer.logs import setup_logging

#: Subcommand → module under ``viewer.cli`` (each has ``main(argv) -> int``), in help order.
COMMANDS: dict[str, str] = {
    "info": "info",
    "render": "render",
    "predict": "predict",
    "train": "train",
    "evaluate": "evaluate",
    "report": "report",
    "listen": "listen",
}


def _gui_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="radview",
        description="Radiograph viewer with built-in AI (research use only). "
        f"Subcommands: {', '.join(COMMANDS)} (radview SUBCOMMAND --help).")
    p.add_argument("paths", nargs="*", help="DICOM files, folders, DICOMDIRs or images")
    p.add_argument("--demo", action="store_true", help="open the bundled sample study")
    p.add_argument("--theme", choices=("dark", "light"), help="colour theme (default: saved)")
    p.add_argument("--bundle", metavar="DIR", help="model bundle folder to use for the AI")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where models run (default: auto = CUDA when available, else CPU)")
    p.add_argument("--quit-after", type=int, metavar="MS",
                   help="close MS milliseconds after the study loaded (smoke tests)")
    p.add_argument("--screenshot", metavar="PNG", help="with --quit-after: save the window")
    p.add_argument("--version", action="version", version=f"radview {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    setup_logging(verbose="-v" in argv or "--verbose" in argv)
    # pydicom's own warnings quote element values (names, IDs, dates): keep them out of logs.
    logging.getLogger("pydicom").setLevel(logging.ERROR)
    if argv and argv[0] in COMMANDS:
        command = importlib.import_module(f"{__name__}.{COMMANDS[argv[0]]}")
        return command.main(argv[1:])
    args = _gui_parser().parse_args(argv)
    targets = list(args.paths)
    if args.demo or not targets:
        targets = [str(paths.sample_study())]
    from viewer.qt.app import run_gui

    return run_gui(targets, theme=args.theme, quit_after_ms=args.quit_after,
                   screenshot=args.screenshot, bundle=args.bundle, device=args.device)
