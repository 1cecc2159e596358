"""The one entry prologue every ``radview`` subcommand runs (Qt-free).

:func:`start` parses the command's arguments and sets up its logging:

* argparse never ends the process: ``--help`` and argument errors become an exit status,
  returned to the dispatcher (:func:`exit_status`: ``None`` → 0, an int as is, anything
  else → 2), so every command can be called as a function in tests and tools;
* ``-v``/``--verbose`` (for commands that have it) shows INFO messages; a command that
  reports its progress through a logger (``radview train``'s epoch lines) names it and
  gets them on stderr (:func:`show_progress`).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence


def exit_status(exc: SystemExit) -> int:
    """The exit status a :class:`SystemExit` carries: None → 0, an int as is, else 2."""
    code = exc.code
    if code is None:
        return 0
    return code if isinstance(code, int) else 2


def start(parser: argparse.ArgumentParser, argv: Sequence[str], *,
          progress_logger: str | None = None) -> argparse.Namespace | int:
    """Parse ``argv`` and set up logging; returns the arguments, or the exit status when
    argparse stopped (``--help``: 0; a wrong argument: 2, its message on stderr).

    With ``progress_logger`` (a logger name) that logger's INFO messages (DEBUG with
    ``--verbose``) are shown on stderr (:func:`show_progress`); otherwise ``--verbose``
    lowers the root logger to INFO.
    """
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as exc:
        return exit_status(exc)
    verbose = bool(getattr(args, "verbose", False))
    if progress_logger is not None:
        show_progress(progress_logger, verbose)
    elif verbose:
        logging.getLogger().setLevel(logging.INFO)
    return args


class _BelowWarning(logging.Filter):
    """Passes INFO and DEBUG only (warnings reach stderr through the root handler)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.WARNING


def show_progress(name: str, verbose: bool) -> None:
    """Show logger ``name``'s progress messages (epoch summaries …) on stderr.

    The root logger may already send warnings to stderr and everything to a log file
    (``radview``'s own set-up); this adds an INFO handler for ``name`` on rank 0 (the
    ``RANK`` environment variable of ``torchrun``) unless a root handler already shows
    INFO on stderr. Other ranks log warnings only.
    """
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.WARNING,
                            format="%(levelname)s %(name)s: %(message)s")
    logger = logging.getLogger(name)
    for h in [h for h in logger.handlers if getattr(h, "_radview_progress", False)]:
        logger.removeHandler(h)
    if int(os.environ.get("RANK", "0")) != 0:
        logger.setLevel(logging.WARNING)
        return
    level = logging.DEBUG if verbose else logging.INFO
    logger.setLevel(level)
    shown = any(isinstance(h, logging.StreamHandler) and getattr(h, "stream", None) is
                sys.stderr and h.level <= level for h in root.handlers)
    if not shown:
        handler = logging.StreamHandler(sys.stderr)
        handler.setLevel(level)
        handler.addFilter(_BelowWarning())
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._radview_progress = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
