"""Atomic file writes (Qt-free): a temporary file in the target folder, then ``os.replace``.

A reader (the viewer scanning an inbox, a PACS import, another radview) sees either the old
file or the complete new one, never a partial file: the temporary name starts with ``.``
and ends with ``.part``, which :func:`viewer.loader.scan` skips (hidden files), and an
interrupted write removes it.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

#: Suffix of the temporary files; :func:`cleanup_partials` removes leftovers of a crash.
PART_SUFFIX = ".part"


def write_atomic(path: str | os.PathLike[str], write: Callable[[BinaryIO], None]) -> Path:
    """Write ``path`` atomically with ``write(file)``; returns the path.

    The parent folder is created when missing. The data is flushed and fsync'ed before the
    rename, so a crash leaves the old file or the new one. Any exception (including
    KeyboardInterrupt) removes the temporary file and propagates.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}{PART_SUFFIX}")
    try:
        with open(tmp, "xb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes | bytearray | memoryview
                       ) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`write_atomic`)."""
    return write_atomic(path, lambda f: f.write(data))


def cleanup_partials(folder: str | os.PathLike[str]) -> int:
    """Remove temporary ``.*.part`` files left under ``folder`` by a crash; returns how
    many were removed."""
    removed = 0
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            if name.startswith(".") and name.endswith(PART_SUFFIX):
                try:
                    os.unlink(os.path.join(dirpath, name))
                    removed += 1
                except OSError:
                    pass
    return removed
