"""``radview listen``: a DICOM Storage SCP writing every received instance into an inbox.

::

    radview listen --inbox DIR [--aet RADVIEW] [--port 11112] [--host 127.0.0.1]
                   [--accept AET ...] [--analyse [--bundle DIR] [--dicom-out DIR]] [-v]

Instances go to ``DIR/<Study Instance UID>/<SOP Instance UID>.dcm``, written atomically
(see :mod:`viewer.dicomnet`); the server binds to 127.0.0.1 unless ``--host`` says
otherwise (``--host 0.0.0.0`` for every interface). ``--accept`` limits the calling AE
titles (repeatable; default: any). When an association ends, one JSON line goes to
stdout::

    {"event": "association", "calling_aet": "STORESCU", "aborted": false,
     "studies": [{"study": "1.2…", "folder": "DIR/1.2…", "instances": 50}]}

``--analyse`` then scores each of those studies as ``radview predict FOLDER`` would (its
JSON document follows on stdout; with ``--dicom-out`` the SR and SCs are written too).
Runs until interrupted (Ctrl+C or SIGTERM); exit status 0, or 2 when the port cannot be
bound or the arguments are wrong.
"""

from __future__ import annotations

import argparse
import json
import logging
import queue
import signal
import sys
import threading
from typing import Any

from viewer.cli._common import start

log = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    from viewer.dicomnet import DEFAULT_AET, DEFAULT_HOST, DEFAULT_PORT

    p = argparse.ArgumentParser(
        prog="radview listen",
        description="Receive DICOM instances (C-STORE) into an inbox folder.")
    p.add_argument("--inbox", required=True, metavar="DIR", help="folder receiving studies")
    p.add_argument("--aet", default=DEFAULT_AET, help=f"AE title (default {DEFAULT_AET})")
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"TCP port (default {DEFAULT_PORT}; 0 picks a free one)")
    p.add_argument("--host", default=DEFAULT_HOST,
                   help=f"address to bind (default {DEFAULT_HOST}: this machine only)")
    p.add_argument("--accept", action="append", default=[], metavar="AET",
                   help="accept only this calling AE title (repeatable; default: any)")
    p.add_argument("--analyse", action="store_true",
                   help="score each received study (as radview predict does)")
    p.add_argument("--bundle", metavar="DIR", help="model bundle for --analyse")
    p.add_argument("--dicom-out", metavar="DIR", help="with --analyse: write SR + SCs here")
    p.add_argument("-v", "--verbose", action="store_true", help="log each instance")
    return p


def main(argv: list[str]) -> int:
    """Run ``radview listen`` until interrupted; returns the exit status."""
    args = start(_parser(), argv)
    if isinstance(args, int):
        return args
    from viewer.dicomnet import AssociationSummary, NetError, StorageServer

    lines: queue.Queue[AssociationSummary | None] = queue.Queue()
    out_lock = threading.Lock()

    def emit(obj: dict[str, Any]) -> None:
        with out_lock:
            sys.stdout.write(json.dumps(obj) + "\n")
            sys.stdout.flush()

    server = StorageServer(args.inbox, ae_title=args.aet, host=args.host, port=args.port,
                           accepted_calling=args.accept,
                           on_stored=lambda s: log.info("stored %s", s.path.name),
                           on_association=lines.put)
    try:
        server.start()
    except NetError as exc:
        print(f"radview listen: {exc}", file=sys.stderr)
        return 2
    emit({"event": "listening", "aet": server.ae_title, "host": server.host,
          "port": server.port, "inbox": str(server.inbox)})
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()
        lines.put(None)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    try:
        while not stop.is_set():
            summary = lines.get()
            if summary is None:
                break
            counts: dict[str, int] = {}
            for s in summary.stored:
                counts[s.study_uid] = counts.get(s.study_uid, 0) + 1
            folders = summary.studies
            emit({"event": "association", "calling_aet": summary.calling_aet,
                  "aborted": summary.aborted,
                  "studies": [{"study": uid, "folder": str(folders[uid]), "instances": n}
                              for uid, n in counts.items()]})
            if args.analyse:
                from viewer.cli.predict import main as predict_main

                for folder in folders.values():
                    extra = ["--bundle", args.bundle] if args.bundle else []
                    extra += ["--dicom-out", args.dicom_out] if args.dicom_out else []
                    with out_lock:
                        predict_main([str(folder), "--no-progress", *extra])
                        sys.stdout.flush()
    finally:
        server.stop()
    return 0
