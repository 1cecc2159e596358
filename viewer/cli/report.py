"""``radview report``: a study's PDF report, headless (Qt-free argument parsing).

::

    radview report PATH... -o REPORT.pdf [--bundle DIR | --no-ai] [--deidentify]
                   [--impression TEXT] [--agreement agree|disagree|not-reviewed]
                   [--device auto|cpu|cuda] [--cmap jet|viridis|hot] [-v]

Scans the paths like the viewer (:func:`viewer.loader.scan`) and reports the first study
with a readable image (a note on stderr says how many others were skipped). Each view is
shown in its default display window, unrotated — exactly what the viewer shows when it
opens the study — and scored with the bundle's models, Grad-CAM maps included
(:class:`inference.engine.Engine`).

Bundle: ``--bundle DIR``, else the first valid bundle found
(:func:`inference.bundle.default_bundle`, as ``radview predict`` does). When there is none,
or ``--no-ai`` is given, or the analysis fails, the report says so in its AI section and
still shows every view.

The PDF is painted with Qt (:mod:`viewer.qt.report_pdf`, imported only here, lazily); with
no display (Linux without ``DISPLAY``/``WAYLAND_DISPLAY``) Qt's offscreen platform is used.

Exit status: 0 when the report was written; 1 when no study with a readable image was
found (nothing is written); 2 with a message on stderr for wrong arguments, a bundle given
with ``--bundle`` that is refused, an unavailable device, or a target that cannot be
written (nothing is left behind and an existing file is untouched).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from viewer.cli._common import start
from viewer.report import AGREEMENTS, NOT_REVIEWED, ReportError

log = logging.getLogger(__name__)

_AGREEMENT_CHOICES = {a.replace(" ", "-"): a for a in AGREEMENTS}


def _parser() -> argparse.ArgumentParser:
    from viewer.overlay import COLORMAPS

    p = argparse.ArgumentParser(
        prog="radview report",
        description="Write a study's PDF report: identity, AI result, every view as "
                    "displayed and with its Grad-CAM heat map, bundle and file checksums "
                    "(research use only — not for diagnosis).")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="a study: DICOM files, a folder, a DICOMDIR or images")
    p.add_argument("-o", "--output", required=True, metavar="REPORT.pdf",
                   help="the PDF to write (replaced atomically when it exists)")
    ai = p.add_mutually_exclusive_group()
    ai.add_argument("--bundle", metavar="DIR", help="model bundle folder (default: the first "
                    "valid bundle in the user data folder, then the shipped ones)")
    ai.add_argument("--no-ai", action="store_true", help="do not run the AI")
    p.add_argument("--deidentify", action="store_true",
                   help="leave out patient name, ID, birth date, accession, institution "
                        "and file names (text and metadata; pixels cannot be cleaned)")
    p.add_argument("--impression", default="", metavar="TEXT",
                   help="the reviewer's impression to print in the report")
    p.add_argument("--agreement", default=NOT_REVIEWED.replace(" ", "-"),
                   choices=tuple(_AGREEMENT_CHOICES),
                   help="the reviewer's agreement with the AI result (default: not-reviewed)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="where to run the models (default: auto = CUDA if available)")
    p.add_argument("--cmap", default="jet", choices=COLORMAPS, help="heat map colours")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    return p


def _fail(message: str) -> int:
    print(f"radview report: {message}", file=sys.stderr)
    return 2


def _target_problem(target: Path) -> str | None:
    """Why ``target`` cannot be written, checked before any work (the writer re-checks)."""
    folder = target.parent
    if not folder.exists():
        return "the folder does not exist"
    if not folder.is_dir():
        return "the parent is not a folder"
    if target.is_dir():
        return "is a folder"
    if not os.access(folder, os.W_OK):
        return "the folder is not writable (permission denied)"
    return None


def main(argv: list[str]) -> int:
    """Run ``radview report``; returns the exit status (see the module notes)."""
    args = start(_parser(), argv)
    if isinstance(args, int):
        return args
    target = Path(args.output).expanduser()
    problem = _target_problem(target)
    if problem:
        return _fail(f"cannot write {target}: {problem}")

    from viewer import loader, pixels
    from viewer.display import DisplayPipeline
    from viewer.pixels import PixelError
    from viewer.report import ViewSnapshot, gather

    result = loader.scan(args.paths)
    studies = [st for st in result.studies if any(im.ok for im in st.images)]
    if not studies:
        reasons = "; ".join(f"{e.path.name}: {e.reason}" for e in result.errors[:3])
        print(f"radview report: no study with a readable image found"
              f"{' (' + reasons + ')' if reasons else ''}", file=sys.stderr)
        return 1
    study = studies[0]
    if len(studies) > 1:
        print(f"radview report: {len(studies)} studies found; reporting the first, "
              f"{len(studies) - 1} skipped", file=sys.stderr)
    patient = next((p for p in result.patients if study in p.studies), None)

    snapshots: list[ViewSnapshot] = []
    for ref in study.images:
        if ref.error:
            snapshots.append(ViewSnapshot(ref, None, message=ref.error))
            continue
        try:
            decoded = pixels.decode(ref)
            snapshots.append(ViewSnapshot(ref, DisplayPipeline(decoded.stored, decoded.spec)))
        except PixelError as exc:
            snapshots.append(ViewSnapshot(ref, None, message=exc.reason))
        except ValueError as exc:
            snapshots.append(ViewSnapshot(ref, None, message=f"cannot be displayed ({exc})"))

    ai_result, ai_reason, manifest, bundle_note = None, None, None, None
    if args.no_ai:
        ai_reason = bundle_note = "AI not requested (--no-ai)"
    else:
        outcome = _analyze(args, snapshots)
        if isinstance(outcome, int):
            return outcome
        ai_result, ai_reason, manifest, bundle_note = outcome
    if ai_result is not None:
        cams = {im.key: im.cam for im in ai_result.images}
        for snap in snapshots:
            snap.cam = cams.get(str(snap.ref.path))

    from viewer.qt.report_pdf import ensure_application, image_max_side, write_pdf

    ensure_application()

    data = gather(study, patient, snapshots, ai_result=ai_result, ai_reason=ai_reason,
                  bundle=manifest, bundle_note=bundle_note, impression=args.impression,
                  agreement=_AGREEMENT_CHOICES[args.agreement], deidentify=args.deidentify,
                  cmap=args.cmap, max_side=image_max_side())
    try:
        written = write_pdf(data, target)
    except ReportError as exc:
        return _fail(f"cannot write {target}: {exc.reason}")
    ai_text = (f"AI {ai_result.label} {ai_result.score:.3f}"
               if ai_result is not None and ai_result.supported else "no AI score")
    print(f"wrote {target} ({written.pages} pages, {len(snapshots)} views, {ai_text})")
    return 0


def _analyze(args, snapshots):
    """Score the decoded views: ``(result, reason, manifest, bundle note)`` or an exit
    status (2) when an explicitly named bundle or device cannot be used."""
    from inference.bundle import Bundle, default_bundle
    from inference.errors import BundleError, InferenceError, NoBundleError
    from viewer.analysis import input_fields

    try:
        bundle = Bundle.load(args.bundle) if args.bundle else default_bundle()
    except NoBundleError:
        log.info("no model bundle found")
        reason = ("no model bundle found (install one in the user data folder or pass "
                  "--bundle DIR)")
        return None, reason, None, reason
    except BundleError as exc:
        return _fail(str(exc))
    try:
        from inference.engine import Engine, ImageInput

        engine = Engine(bundle, args.device)
    except (InferenceError, ValueError, RuntimeError) as exc:
        return _fail(str(exc))
    inputs = [ImageInput(*input_fields(s.ref, s.pipeline)) for s in snapshots
              if s.pipeline is not None]
    if not inputs:
        return None, "no readable images to score", bundle.manifest, None
    try:
        return engine.analyze(inputs, cams=True), None, bundle.manifest, None
    except InferenceError as exc:
        log.warning("analysis failed: %s", exc)
        return None, f"analysis failed: {exc}", bundle.manifest, None
    finally:
        engine.close()
