"""The ``radview`` command.

::

    radview [PATH ...]           open the GUI (the bundled sample study when no PATH)
    radview --demo               open the GUI on the bundled sample study
    radview info PATH ... [--json]
    radview render FILE -o OUT.png [--wl=CENTER,WIDTH] [--invert]
    radview predict PATH ... [--bundle DIR] [--device auto|cpu|cuda] [--cams DIR]
                    [--format json|csv]
    radview report PATH ... -o REPORT.pdf [--bundle DIR | --no-ai] [--deidentify]
"""

from __future__ import annotations

import argparse
import logging
import sys

from viewer import __version__, paths
from viewer.logs import setup_logging

SUBCOMMANDS = ("info", "render", "predict", "train", "evaluate", "report")


def _gui_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="radview",
        description="Radiograph viewer with built-in AI (research use only). "
        f"Subcommands: {', '.join(SUBCOMMANDS)} (radview SUBCOMMAND --help).")
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
    if argv and argv[0] in SUBCOMMANDS:
        from inference.training import cli as cli_train
        from viewer import cli_info, cli_predict, cli_report

        handler = {"info": cli_info.info_main, "render": cli_info.render_main,
                   "predict": cli_predict.predict_main, "train": cli_train.train_main,
                   "evaluate": cli_train.evaluate_main, "report": cli_report.report_main,
                   }[argv[0]]
        return handler(argv[1:])
    args = _gui_parser().parse_args(argv)
    targets = list(args.paths)
    if args.demo or not targets:
        targets = [str(paths.sample_study())]
    from viewer.qt.app import run_gui

    return run_gui(targets, theme=args.theme, quit_after_ms=args.quit_after,
                   screenshot=args.screenshot, bundle=args.bundle, device=args.device)


if __name__ == "__main__":
    sys.exit(main())
