"""``radview predict``: score every study found under the given paths (Qt-free;
:mod:`viewer.cli` runs :func:`main`).

::

    radview predict PATH... [--bundle DIR] [--device auto|cpu|cuda] [--cams DIR]
                            [--format json|csv] [--dicom-out DIR] [--no-progress] [-v]

``--dicom-out DIR`` writes each scored DICOM study's result as DICOM
(:mod:`viewer.dicom_results`: a TID 1500 SR and one secondary capture per view, under
``DIR/<Study Instance UID>/``) and adds ``"dicom": [paths]`` to that study's JSON.

Scans the paths like the viewer (:func:`viewer.loader.scan`: DICOM files, folders,
DICOMDIRs, images, MURA trees), renders each image in its default display window
(:func:`viewer.analysis.model_input`, exactly what the viewer shows on opening it), and
runs each study through :class:`inference.engine.Engine` with the bundle's models.

Bundle: ``--bundle DIR``, else the first valid bundle found
(:func:`inference.bundle.default_bundle`: user data folder, then the shipped
``resources/models``).

Exit status: 0 when at least one study was scored; 1 when none was (nothing found, nothing
readable, or no study supported by the bundle); 2 with a message on stderr when the
bundle is refused or not found, the device is unavailable, or the arguments are wrong.
Unreadable files never abort the batch: they are listed under ``errors``.

Output (stdout)
---------------
``--format json`` (default): one object, a stable contract (see ``docs/predict_json.md``)::

    {
      "schema": "radview-predict/1",
      "bundle": {"name", "version"},
      "studies": [{
        "study",                # Study Instance UID, or the folder of an image study
        "body_part",            # e.g. "WRIST", or null when unknown
        "body_part_source",     # "tag" | "path" | "router" | null
        "supported",            # false: no model for the part (or nothing readable)
        "reason",               # why not supported, else null
        "model",                # the bundle's model name, or null
        "score",                # study score 0–1 ("aggregation"), null when not supported
        "label",                # e.g. "fracture"/"no fracture" (flag positive or not)
        "threshold",            # the model's threshold, or null
        "flag",                 # "positive" | "doubt" | "negative", or null
        "flag_text",            # "FRACTURE" | "DOUBT" | "NO FRACTURE", or null
        "doubt_threshold",      # lower edge of the doubt band, or null
        "aggregation",          # "mean" | "max" | "noisy_or", or null
        "flags": [str],         # e.g. "images disagree: …", "low router confidence (0.42)"
        "images": [{
          "path",
          "body_part",          # what this image says (tag, folder or router)
          "probability",        # 0–1, null when not supported
          "level",              # "positive" | "doubt" | "negative", or null
          "boxes",              # [{x0, y0, x1, y1, score, level}] image pixels, best
                                # first (level "fracture" | "doubt"); [] without a box head
          "cam"                 # PNG path under --cams, else null
        }]
      }],
      "errors": [{"path", "error"}]   # files that could not be read, and why
    }

``--format csv``: one row per image, the study columns repeated (columns ``study,
body_part, body_part_source, supported, reason, model, score, label, threshold, flags,
path, image_body_part, probability, cam, flag, level, boxes``; ``boxes`` as JSON); a
study without readable images is one row with empty image columns. Errors go to stderr,
one line each.

``--cams DIR`` writes, for every scored image, ``DIR/NNNN_<file stem>.png``: the image in
its default window with the Grad-CAM heat map (jet colours, opacity rising with the map)
blended over it (:func:`viewer.overlay.blend`, the same colours as the viewer).

A progress line goes to stderr when stderr is a terminal (``--no-progress`` silences it).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import os
import re
import secrets
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from viewer.cli._common import start

SCHEMA = "radview-predict/1"

CSV_COLUMNS = ("study", "body_part", "body_part_source", "supported", "reason", "model",
               "score", "label", "threshold", "flags", "path", "image_body_part",
               "probability", "cam", "flag", "level", "boxes")

log = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="radview predict",
        description="Score every study under the paths with a model bundle "
                    "(research use only — not for diagnosis).")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="DICOM files, folders, DICOMDIRs, images or MURA folders")
    p.add_argument("--bundle", metavar="DIR", help="model bundle folder (default: the first "
                   "valid bundle in the user data folder, then the shipped ones)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="where to run the models (default: auto = CUDA if available)")
    p.add_argument("--cams", metavar="DIR", help="write Grad-CAM overlays (PNG) to DIR")
    p.add_argument("--dicom-out", metavar="DIR",
                   help="write each scored DICOM study's result as DICOM to DIR/<study UID>/: "
                        "a TID 1500 SR and one secondary capture per view")
    p.add_argument("--body-part", metavar="PART",
                   help="score every study as this body part (e.g. WRIST) with that part's "
                        "model, routing skipped, as the viewer's override does")
    p.add_argument("--format", default="json", choices=("json", "csv"),
                   help="output format on stdout (default: json)")
    p.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    return p


def _fail(message: str) -> int:
    print(f"radview predict: {message}", file=sys.stderr)
    return 2


class _Progress:
    """A one-line progress bar on stderr, shown only on a terminal."""

    def __init__(self, stream: TextIO, enabled: bool) -> None:
        self.stream = stream
        self.enabled = enabled and stream.isatty()
        self.shown = False

    def update(self, done: int, total: int, note: str = "") -> None:
        if not self.enabled or total <= 0:
            return
        width = 24
        filled = round(width * done / total)
        bar = "#" * filled + "-" * (width - filled)
        self.stream.write(f"\rscoring [{bar}] {done}/{total} studies {note[:40]:<40}")
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()


def _safe_stem(path: Path) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", path.stem)[:60].strip("._")
    return stem or "image"


def _write_rgb_png(rgb: Any, out: Path) -> None:
    """Write an RGB ``uint8`` array as PNG atomically (temporary file, then replace)."""
    from PIL import Image

    tmp = out.with_name(f".{out.name}.{secrets.token_hex(6)}.tmp")
    try:
        with open(tmp, "xb") as f:
            Image.fromarray(rgb).save(f, format="PNG")
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_dicom(out: str, study: Any, inputs: Any, res: Any, bundle: Any,
                 errors: list[dict[str, Any]]) -> list[str]:
    """``--dicom-out``: the SR and SCs of one study (:mod:`viewer.dicom_results`)."""
    from viewer.dicom_results import ExportError, outcome_from, write_results

    if not res.supported:
        return []
    try:
        return [str(p) for p in write_results(outcome_from(study, inputs, res, bundle), out)]
    except ExportError as exc:
        errors.append({"path": str(study.source or study.uid), "error": str(exc)})
    except OSError as exc:
        errors.append({"path": out, "error": f"cannot write the DICOM result ({exc})"})
    return []


def _num(value: float | None) -> float | None:
    return None if value is None else round(float(value), 6)


def main(argv: list[str]) -> int:
    """Run ``radview predict``; returns the exit status (see the module notes)."""
    args = start(_parser(), argv)
    if isinstance(args, int):
        return args

    from inference.bundle import Bundle, default_bundle
    from inference.engine import Engine
    from inference.errors import BundleError, InferenceError
    from viewer import loader
    from viewer.analysis import build_inputs
    from viewer.overlay import blend

    try:
        bundle = Bundle.load(args.bundle) if args.bundle else default_bundle()
    except BundleError as exc:
        return _fail(str(exc))
    try:
        engine = Engine(bundle, args.device)
        if args.body_part is not None:
            from inference.bodyparts import normalize_body_part

            part = normalize_body_part(args.body_part)
            if part not in bundle.manifest.routing:
                return _fail(f"--body-part {args.body_part!r}: this bundle has no model for "
                             f"it (it covers: {', '.join(bundle.manifest.parts)})")
    except (InferenceError, ValueError, RuntimeError) as exc:
        return _fail(str(exc))
    cams_dir = Path(args.cams) if args.cams else None
    if cams_dir is not None:
        try:
            cams_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return _fail(f"{cams_dir}: cannot create the CAM folder ({exc})")

    started = time.perf_counter()
    result = loader.scan(args.paths)
    errors = [{"path": str(e.path), "error": e.reason} for e in result.errors]
    studies_out: list[dict[str, Any]] = []
    progress = _Progress(sys.stderr, not args.no_progress)
    scored = 0
    cam_count = 0
    images_seen = 0
    total = len(result.studies)
    for index, study in enumerate(result.studies):
        progress.update(index, total, Path(str(study.source or study.uid)).name)
        inputs, problems = build_inputs(study)
        errors += [{"path": str(e.path), "error": e.reason} for e in problems]
        entry: dict[str, Any] = {
            "study": study.uid, "body_part": None, "body_part_source": None,
            "supported": False, "reason": None, "model": None, "score": None,
            "label": None, "threshold": None, "flag": None, "flag_text": None,
            "doubt_threshold": None, "aggregation": None, "flags": [],
            "body_part_uncertain": False, "router_part": None, "router_confidence": None,
            "images": []}
        studies_out.append(entry)
        if not inputs:
            entry["reason"] = "no readable images"
            continue
        images_seen += len(inputs)
        try:
            res = engine.analyze(inputs, override_part=args.body_part,
                                 cams=cams_dir is not None or bool(args.dicom_out))
        except InferenceError as exc:
            log.warning("study %s: %s", study.uid, exc)
            entry["reason"] = f"analysis failed: {exc}"
            entry["images"] = [{"path": im.key, "body_part": im.tag_part or im.path_part,
                                "probability": None, "level": None, "boxes": [],
                                "cam": None} for im in inputs]
            continue
        entry.update({
            "body_part": res.body_part, "body_part_source": res.body_part_source,
            "supported": res.supported, "reason": res.reason, "model": res.model,
            "score": _num(res.score), "label": res.label, "threshold": res.threshold,
            "flag": res.flag, "flag_text": res.flag_text,
            "doubt_threshold": res.doubt_threshold, "aggregation": res.aggregation,
            "flags": list(res.flags), "body_part_uncertain": res.part_uncertain,
            "router_part": res.router_part,
            "router_confidence": _num(res.router_confidence)})
        scored += res.supported
        for im, r in zip(inputs, res.images, strict=True):
            cam_path = None
            if cams_dir is not None and r.cam is not None:
                cam_count += 1
                cam_path = cams_dir / f"{cam_count:04d}_{_safe_stem(Path(im.key))}.png"
                try:
                    rgb = blend(im.pixels, r.cam, "jet", 0.5)
                    if r.boxes:
                        from viewer.overlay import draw_boxes

                        rgb = draw_boxes(rgb, r.boxes)
                    _write_rgb_png(rgb, cam_path)
                except OSError as exc:
                    errors.append({"path": str(cam_path), "error": f"cannot write ({exc})"})
                    cam_path = None
            entry["images"].append({"path": r.key, "body_part": r.body_part,
                                    "probability": _num(r.probability), "level": r.level,
                                    "boxes": list(r.boxes or []),
                                    "cam": str(cam_path) if cam_path else None})
        if args.dicom_out:
            entry["dicom"] = _write_dicom(args.dicom_out, study, inputs, res, bundle, errors)
    progress.update(total, total)
    progress.close()
    elapsed = time.perf_counter() - started
    log.info("scored %d of %d studies (%d images) in %.1f s", scored, total, images_seen,
             elapsed)

    if args.format == "json":
        out = {"schema": SCHEMA,
               "bundle": {"name": bundle.manifest.name, "version": bundle.manifest.version},
               "studies": studies_out, "errors": errors}
        sys.stdout.write(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(to_csv(studies_out))
        for e in errors:
            print(f"radview predict: {e['path']}: {e['error']}", file=sys.stderr)
    return 0 if scored else 1


def to_csv(studies: list[dict[str, Any]]) -> str:
    """CSV text, one row per image with the study columns repeated (see module notes)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)

    def cell(value: Any) -> Any:
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        return value

    for st in studies:
        head = [st["study"], st["body_part"], st["body_part_source"], st["supported"],
                st["reason"], st["model"], st["score"], st["label"], st["threshold"],
                "; ".join(st["flags"])]
        rows = st["images"] or [{"path": None, "body_part": None, "probability": None,
                                 "cam": None, "level": None, "boxes": []}]
        for im in rows:
            boxes = json.dumps(im.get("boxes") or []) if im["path"] else None
            writer.writerow([cell(v) for v in (*head, im["path"], im["body_part"],
                                               im["probability"], im["cam"], st.get("flag"),
                                               im.get("level"), boxes)])
    return buf.getvalue()
