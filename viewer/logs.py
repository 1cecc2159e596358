"""radview's logging: a rotating log file in the user's state folder, warnings on stderr,
and patient identifiers kept out of both (Qt-free).

::

    from viewer import logs
    logs.setup_logging(verbose=False)          # once, at start-up (viewer.cli.main)
    logs.register_identifiers(["DOE^JANE", "PAT-0042"])   # when a study is loaded

Files: ``<state dir>/radview.log`` (``platformdirs.user_state_dir("radview")``, e.g.
``~/.local/state/radview/radview.log``; ``RADVIEW_STATE_DIR`` overrides), rotated at 1 MB
with 3 old copies (``radview.log.1`` … ``.3``). The file gets INFO and above (DEBUG with
``verbose``), stderr gets WARNING and above (DEBUG with ``verbose``).

Redaction. Every record that reaches radview's handlers goes through
:class:`RedactingFilter`, which rewrites the message (and any traceback) with
:func:`redact`:

1. values registered with :func:`register_identifiers` (patient names and IDs, accession
   numbers, ...; the code that reads DICOM headers registers them) are replaced by
   ``[redacted]`` wherever they appear, case-insensitively; a DICOM person name
   ``FAMILY^GIVEN`` is also matched as ``FAMILY GIVEN``, ``GIVEN FAMILY`` and by each name
   component of at least 3 characters;
2. without any registration, ``PatientName=...``/``PatientID: ...``-style text (a DICOM
   keyword of the patient module or ``AccessionNumber``, followed by ``=`` or ``:``) and
   pydicom's ``(0010,xxxx) Name  VR: value`` element dumps have their value masked.

This is a safety net, not a guarantee: log messages should still avoid identifiers.
File and folder names are never logged: messages name a path by :func:`file_ref`, a short
stable hash (names such as ``DOE_JANE.dcm`` are logged before any header is read).
Without ``verbose``, pydicom's own records are dropped (:class:`QuietLibraries`): radview
reports each file's problem itself, and pydicom's quote tracebacks, values and UIDs.
"""

from __future__ import annotations

import hashlib
import logging
import logging.handlers
import os
import re
import sys
import threading
from collections.abc import Iterable
from pathlib import Path

from viewer import paths

REDACTED = "[redacted]"
MAX_BYTES = 1_000_000
BACKUP_COUNT = 3
FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(threadName)s]: %(message)s"
STDERR_FORMAT = "%(levelname)s %(name)s: %(message)s"

#: Shorter registered values are ignored (they would mask ordinary words and numbers).
MIN_LENGTH = 3

_lock = threading.Lock()
_identifiers: set[str] = set()
_pattern: re.Pattern[str] | None = None

#: ``PatientName=DOE^JANE``, ``PatientID: 123``, ``AccessionNumber='A1'`` ...
_KEYWORD_VALUE = re.compile(
    r"(?P<key>\b(?:Patient\w*|OtherPatient\w*|AccessionNumber|IssuerOfPatientID|"
    r"ReferringPhysicianName|PerformingPhysicianName|MedicalRecordLocator)\b"
    r"\s*[:=]\s*)(?P<value>'[^']*'|\"[^\"]*\"|[^\s,;)\]}]+)")
#: pydicom's element repr: ``(0010,0010) Patient's Name   PN: 'DOE^JANE'``
_TAG_DUMP = re.compile(
    r"(?P<key>\(0010,\s*[0-9A-Fa-f]{4}\)[^\n]*?\b[A-Z]{2}:\s*)"
    r"(?P<value>'[^'\n]*'|\"[^\"\n]*\"|[^\n]*)")


#: A registered value matches between letters/digits only: ``_``, ``-``, ``.`` and ``^``
#: separate, so ``DOE`` is found in ``DOE_JANE.dcm`` and ``MRN12345`` in
#: ``MRN12345_hand.dcm`` (``\b`` and ``\w`` count ``_`` as part of a word).
_EDGE_BEFORE = r"(?<![^\W_])"
_EDGE_AFTER = r"(?![^\W_])"


def file_ref(path: str | os.PathLike[str]) -> str:
    """A short stable name for a file or folder in log messages: ``file#3fa2c1d0``.

    File and folder names often carry patient names or record numbers
    (``DOE_JANE.dcm``, ``MRN12345_hand/``), and they are logged before any header says
    which values identify a patient. Log messages therefore name paths by this hash of
    the absolute path (the first 8 hex digits of its SHA-256), never by the name itself;
    the same path always gives the same reference, so the records of one file can be
    followed through a log. To find the file behind a reference::

        python -c "from viewer.logs import file_ref; print(file_ref('PATH'))"
    """
    absolute = os.path.abspath(os.fspath(path))
    digest = hashlib.sha256(absolute.encode("utf-8", "surrogateescape")).hexdigest()
    return f"file#{digest[:8]}"


def _variants(value: str) -> set[str]:
    value = value.strip()
    out = {value}
    if "^" in value:
        parts = [p.strip() for p in value.split("^") if p.strip()]
        out.add(" ".join(parts))
        if len(parts) >= 2:
            out.add(" ".join([*parts[1:], parts[0]]))  # GIVEN [MIDDLE] FAMILY
        out.update(parts)
    return {v for v in out if len(v) >= MIN_LENGTH}


def register_identifiers(values: Iterable[object]) -> None:
    """Remember identifying values (names, IDs) so :func:`redact` masks them from now on.

    Accepts strings or anything whose ``str()`` is the value (e.g. pydicom's
    ``PersonName``); empty and very short values (< 3 characters) are ignored.
    """
    global _pattern
    new: set[str] = set()
    for value in values:
        if value is None:
            continue
        new |= _variants(str(value))
    with _lock:
        if new <= _identifiers:
            return
        _identifiers.update(new)
        alternatives = sorted(_identifiers, key=len, reverse=True)  # longest first
        _pattern = re.compile(
            _EDGE_BEFORE + r"(?:" + "|".join(re.escape(v) for v in alternatives) + r")"
            + _EDGE_AFTER, re.IGNORECASE)


def clear_identifiers() -> None:
    """Forget every registered value (tests; a new session)."""
    global _pattern
    with _lock:
        _identifiers.clear()
        _pattern = None


def redact(text: str) -> str:
    """``text`` with registered identifiers and patient-tag values replaced by [redacted]."""
    pattern = _pattern
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    text = _KEYWORD_VALUE.sub(lambda m: m.group("key") + REDACTED, text)
    return _TAG_DUMP.sub(lambda m: m.group("key") + REDACTED, text)


class RedactingFilter(logging.Filter):
    """Rewrites each record's message and traceback through :func:`redact`."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: log it as it is
            message = str(record.msg)
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class QuietLibraries(logging.Filter):
    """Drops the records of libraries whose messages radview reports itself.

    pydicom logs every decoding plugin that fails at ERROR with a full traceback (and
    header oddities at WARNING, quoting element values and UIDs), even when radview then
    reports the file's problem in one line; importing pydicom resets its logger's level
    (``pydicom.config.debug(False, False)``), so a level set before that import is lost.
    A filter on radview's own handlers does not depend on import order. With ``verbose``
    nothing is dropped.
    """

    #: Logger names (and their children) that are dropped.
    NAMES = ("pydicom",)

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(record.name == n or record.name.startswith(n + ".")
                       for n in self.NAMES)


def _is_ours(handler: logging.Handler) -> bool:
    return getattr(handler, "_radview", False)


def setup_logging(verbose: bool = False) -> Path | None:
    """Send the root logger to the rotating log file and to stderr, both redacted.

    Calling it again replaces the handlers it installed before (no duplicates). Returns the
    log file, or None when the state folder cannot be written (then stderr only).
    """
    root = logging.getLogger()
    for handler in [h for h in root.handlers if _is_ours(h)]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    redacting = RedactingFilter()
    quiet = None if verbose else QuietLibraries()

    stderr = logging.StreamHandler(sys.stderr)
    stderr.setLevel(logging.DEBUG if verbose else logging.WARNING)
    stderr.setFormatter(logging.Formatter(STDERR_FORMAT))
    if quiet is not None:
        stderr.addFilter(quiet)
    stderr.addFilter(redacting)
    stderr._radview = True  # type: ignore[attr-defined]
    root.addHandler(stderr)

    try:
        path = paths.log_file()
        file_handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=MAX_BYTES, backupCount=BACKUP_COUNT, encoding="utf-8")
    except OSError as exc:
        logging.getLogger(__name__).warning("no log file (%s); logging to stderr only", exc)
        return None
    file_handler.setLevel(logging.DEBUG if verbose else logging.INFO)
    file_handler.setFormatter(logging.Formatter(FILE_FORMAT))
    if quiet is not None:
        file_handler.addFilter(quiet)
    file_handler.addFilter(redacting)
    file_handler._radview = True  # type: ignore[attr-defined]
    root.addHandler(file_handler)
    return path
