"""``radview info`` and ``radview render``: Qt-free command-line tools.

:mod:`viewer.cli` dispatches ``radview info …`` to :func:`info_main` and ``radview render
…`` to :func:`render_main`; each parses its own arguments and returns the exit status.

radview info
------------
::

    radview info PATH... [--json]

Scans the paths like the viewer does (:func:`viewer.loader.scan`: files, folders,
DICOMDIRs, images, MURA trees; headers only) and prints what was found: patients,
studies, series, images and the files that could not be used, with the reason.
Exit status 0 when at least one image can be shown, 2 when none can (argument errors
also give 2).

With ``--json`` the output is one JSON object with these stable keys (values that are
absent in the file are ``""`` for text and ``null`` otherwise; non-finite numbers are
``null``)::

    {
      "schema": "radview-info/1",
      "patients": [{
        "id", "name", "sex", "birth_date",
        "studies": [{
          "uid", "date", "time", "description", "accession", "institution",
          "body_part",            # normalized (e.g. "WRIST") or null
          "body_part_source",     # "tag" (Body Part Examined), "path" (XR_<PART>) or null
          "label",                # "positive" / "negative" from a MURA folder, or null
          "source",               # folder the study was found in
          "series": [{
            "uid", "number", "description", "modality",
            "images": [{
              "path", "kind",     # kind: "dicom" or "image"
              "sop_instance_uid", "instance_number", "modality", "view_position",
              "laterality", "body_part", "body_part_source",
              "rows", "columns", "bits_allocated", "bits_stored", "signed",
              "photometric", "frames",
              "transfer_syntax_uid", "transfer_syntax_name",   # "" for plain images
              "windows": [{"center", "width", "explanation", "function"}],
              "usable",           # true when the image can be shown
              "warnings": [str],
              "error"             # why it cannot be shown, or null
            }]
          }]
        }]
      }],
      "errors": [{"path", "reason"}],   # files that could not be used at all
      "summary": {"patients", "studies", "series", "images", "usable_images", "errors"}
    }

radview render
--------------
::

    radview render FILE -o OUT.png [--wl CENTER,WIDTH] [--invert] [--frame N]
                                   [--preset LABEL]

Loads one DICOM or image file through :mod:`viewer.loader`, :mod:`viewer.pixels` and
:class:`viewer.display.DisplayPipeline` and writes the displayed frame as an 8-bit
grayscale PNG, exactly what the viewer shows at 100 % zoom. ``--wl`` gives the window in
modality units (after rescale, e.g. HU); a negative center must be attached with ``=``
(``--wl=-600,1500``) because a separate ``-600,1500`` looks like an option to argparse
(``--wl -600,1500`` is also accepted: the two words are joined before parsing).
``--preset`` picks one of the pipeline's presets by label (case-insensitive, e.g. a file
window's explanation, ``"Automatic"``, ``"Full range"``). Without either, the default
preset is used. ``--frame`` is 1-based. The PNG is written atomically (a temporary file in
the same folder, then :func:`os.replace`), so a failed run never leaves a partial file.
Errors go to stderr naming the file and the reason; exit status 2.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import secrets
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from viewer import loader
from viewer.model import ImageRef, LoadResult, Window
from viewer.pixels import PixelError, decode

SCHEMA = "radview-info/1"


# ------------------------------------------------------------------------------ info


def _num(value: float | int | None) -> float | int | None:
    if value is None:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _image_json(ref: ImageRef) -> dict[str, Any]:
    spec = ref.spec
    return {
        "path": str(ref.path),
        "kind": ref.kind,
        "sop_instance_uid": ref.sop_instance_uid,
        "instance_number": ref.instance_number,
        "modality": ref.modality,
        "view_position": ref.view_position,
        "laterality": ref.laterality,
        "body_part": ref.body_part,
        "body_part_source": ref.body_part_source,
        "rows": spec.rows if spec else None,
        "columns": spec.columns if spec else None,
        "bits_allocated": spec.bits_allocated if spec else None,
        "bits_stored": spec.bits_stored if spec else None,
        "signed": spec.signed if spec else None,
        "photometric": spec.photometric if spec else None,
        "frames": spec.number_of_frames if spec else None,
        "transfer_syntax_uid": ref.transfer_syntax,
        "transfer_syntax_name": ref.transfer_syntax_name,
        "windows": [
            {"center": _num(w.center), "width": _num(w.width), "explanation": w.explanation,
             "function": w.function}
            for w in (spec.windows if spec else [])
        ],
        "usable": ref.ok,
        "warnings": list(ref.warnings),
        "error": ref.error,
    }


def result_json(result: LoadResult) -> dict[str, Any]:
    """The ``radview info --json`` object for a scan result (schema in the module notes)."""
    patients = []
    for patient in result.patients:
        studies = []
        for study in patient.studies:
            studies.append({
                "uid": study.uid,
                "date": study.date,
                "time": study.time,
                "description": study.description,
                "accession": study.accession,
                "institution": study.institution,
                "body_part": study.body_part,
                "body_part_source": study.body_part_source,
                "label": study.label,
                "source": str(study.source) if study.source else None,
                "series": [
                    {"uid": s.uid, "number": s.number, "description": s.description,
                     "modality": s.modality, "images": [_image_json(im) for im in s.images]}
                    for s in study.series
                ],
            })
        patients.append({"id": patient.id, "name": patient.name, "sex": patient.sex,
                         "birth_date": patient.birth_date, "studies": studies})
    images = result.images
    return {
        "schema": SCHEMA,
        "patients": patients,
        "errors": [{"path": str(e.path), "reason": e.reason} for e in result.errors],
        "summary": {
            "patients": len(result.patients),
            "studies": len(result.studies),
            "series": sum(len(st.series) for st in result.studies),
            "images": len(images),
            "usable_images": sum(1 for im in images if im.ok),
            "errors": len(result.errors),
        },
    }


def _date(value: str) -> str:
    if re.fullmatch(r"\d{8}", value):
        return f"{value[:4]}-{value[4:6]}-{value[6:]}"
    return value


def _time(value: str) -> str:
    if re.fullmatch(r"\d{6}(\.\d+)?", value):
        return f"{value[:2]}:{value[2:4]}:{value[4:6]}"
    return value


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def result_text(result: LoadResult) -> str:
    """The human-readable ``radview info`` report."""
    lines: list[str] = []
    for patient in result.patients:
        words = [f"Patient {patient.id or '(no ID)'}"]
        if patient.name:
            words.append(patient.name)
        if patient.sex:
            words.append(f"sex {patient.sex}")
        if patient.birth_date:
            words.append(f"born {_date(patient.birth_date)}")
        lines.append("  ".join(words))
        for study in patient.studies:
            words = [f"  Study {study.uid}"]
            when = " ".join(x for x in (_date(study.date), _time(study.time)) if x)
            if when:
                words.append(when)
            if study.description:
                words.append(f'"{study.description}"')
            if study.body_part:
                words.append(f"body part {study.body_part} ({study.body_part_source})")
            else:
                words.append("body part unknown")
            if study.label:
                words.append(f"label {study.label} (path)")
            lines.append("  ".join(words))
            for series in study.series:
                words = [f"    Series {series.uid}"]
                if series.number is not None:
                    words.append(f"#{series.number}")
                if series.description:
                    words.append(f'"{series.description}"')
                if series.modality:
                    words.append(series.modality)
                lines.append("  ".join(words))
                for im in series.images:
                    lines.append(f"      {im.path}")
                    lines.append(f"        {_image_summary(im)}")
                    lines += [f"        warning: {w}" for w in im.warnings]
                    if im.error:
                        lines.append(f"        ERROR: {im.error}")
    if result.errors:
        lines.append("Files not used:")
        lines += [f"  {e.path}: {e.reason}" for e in result.errors]
    images = result.images
    usable = sum(1 for im in images if im.ok)
    lines.append(
        f"{_plural(len(images), 'image')} ({usable} usable) in "
        f"{_plural(len(result.studies), 'study').replace('studys', 'studies')} of "
        f"{_plural(len(result.patients), 'patient')}; "
        f"{_plural(len(result.errors), 'file')} not used."
    )
    return "\n".join(lines)


def _image_summary(im: ImageRef) -> str:
    spec = im.spec
    parts = []
    if spec is not None:
        parts.append(f"{spec.rows}×{spec.columns}")
        parts.append(f"{spec.bits_stored} bits stored{' signed' if spec.signed else ''}")
        parts.append(spec.photometric)
        parts.append(_plural(spec.number_of_frames, "frame"))
    if im.kind == "dicom":
        parts.append(f"{im.transfer_syntax_name} ({im.transfer_syntax})")
    else:
        parts.append("image file")
    if im.body_part:
        parts.append(f"body part {im.body_part} ({im.body_part_source})")
    return ", ".join(parts)


def _info_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="radview info",
        description="List the studies, series and images found in files, folders, "
                    "DICOMDIRs and image trees (headers only), and the files that "
                    "cannot be used. Exit status 0 when at least one image can be shown, "
                    "2 otherwise.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="file, folder or DICOMDIR")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object (schema radview-info/1) instead of text")
    return p


def info_main(argv: list[str]) -> int:
    """Run ``radview info``; returns the exit status (0 something usable, 2 nothing)."""
    try:
        args = _info_parser().parse_args(argv)
    except SystemExit as exc:
        return _exit_code(exc)
    result = loader.scan(args.paths)
    if args.json:
        print(json.dumps(result_json(result), indent=2, ensure_ascii=False))
    else:
        print(result_text(result))
    return 0 if any(im.ok for im in result.images) else 2


def _exit_code(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return 0
    return code if isinstance(code, int) else 2


# ---------------------------------------------------------------------------- render


def parse_wl(value: str) -> tuple[float, float]:
    """``"40,400"`` → ``(40.0, 400.0)``: window center and width, in modality units.

    Raises
    ------
    argparse.ArgumentTypeError
        For anything but two finite numbers separated by a comma, or a width ≤ 0.
    """
    parts = value.split(",")
    try:
        if len(parts) != 2:
            raise ValueError
        center, width = float(parts[0]), float(parts[1])
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected CENTER,WIDTH such as 40,400 (negative center: --wl=-600,1500), "
            f"got {value!r}") from None
    if not (math.isfinite(center) and math.isfinite(width)):
        raise argparse.ArgumentTypeError(f"center and width must be finite, got {value!r}")
    if width <= 0:
        raise argparse.ArgumentTypeError(f"window width must be positive, got {width:g}")
    return center, width


def _render_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="radview render",
        description="Render one DICOM or image file as the viewer displays it and write an "
                    "8-bit grayscale PNG.")
    p.add_argument("file", metavar="FILE", help="a DICOM file or an image file")
    p.add_argument("-o", "--output", required=True, metavar="OUT.png",
                   help="PNG file to write (replaced atomically)")
    choice = p.add_mutually_exclusive_group()
    choice.add_argument("--wl", type=parse_wl, metavar="CENTER,WIDTH",
                        help="window center and width in modality units, e.g. 40,400; "
                             "write a negative center as --wl=-600,1500")
    choice.add_argument("--preset", metavar="LABEL",
                        help="a display preset by label, e.g. 'Automatic', 'Full range' or "
                             "a window explanation from the file")
    p.add_argument("--invert", action="store_true", help="invert the displayed values")
    p.add_argument("--frame", type=int, default=1, metavar="N",
                   help="frame (multi-frame DICOM) or page (TIFF) to render, from 1 "
                        "(default 1)")
    return p


def _join_negative_wl(argv: list[str]) -> list[str]:
    """``["--wl", "-600,1500"]`` → ``["--wl=-600,1500"]`` (argparse would take the value
    for an option)."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i] == "--wl" and i + 1 < len(argv) and re.match(r"^-[\d.]", argv[i + 1]):
            out.append(f"--wl={argv[i + 1]}")
            i += 2
            continue
        out.append(argv[i])
        i += 1
    return out


def _fail(path: str | os.PathLike[str], reason: str) -> int:
    print(f"radview render: {path}: {reason}", file=sys.stderr)
    return 2


def write_png_atomic(pixels: np.ndarray, out: Path) -> None:
    """Write a uint8 2-D array as a grayscale PNG, atomically.

    The PNG goes to a new temporary file in ``out``'s folder (created with mode 0666
    minus the umask, like any new file) and then replaces ``out`` with :func:`os.replace`
    (atomic on POSIX and Windows within one volume); on failure the temporary file is
    removed and ``out`` is untouched.
    """
    arr = np.ascontiguousarray(pixels, dtype=np.uint8)
    if arr.ndim != 2:
        raise ValueError(f"expected a 2-D array, got shape {arr.shape}")
    tmp = out.with_name(f".{out.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            Image.fromarray(arr).save(f, format="PNG")
        os.replace(tmp, out)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def render_main(argv: list[str]) -> int:
    """Run ``radview render``; returns the exit status (0 written, 2 failure)."""
    try:
        args = _render_parser().parse_args(_join_negative_wl(list(argv)))
    except SystemExit as exc:
        return _exit_code(exc)
    src = Path(args.file)
    out = Path(args.output)
    if src.is_dir():
        return _fail(src, "is a folder; render needs one file")
    if not out.parent.is_dir():
        return _fail(out, "the output folder does not exist")
    result = loader.scan([src])
    if result.errors:
        return _fail(result.errors[0].path, result.errors[0].reason)
    images = result.images
    if len(images) != 1:
        return _fail(src, f"expected one image, found {len(images)}")
    ref = images[0]
    if ref.error:
        return _fail(ref.path, ref.error)
    frames = ref.spec.number_of_frames if ref.spec else 1
    if not 1 <= args.frame <= frames:
        return _fail(ref.path, f"frame {args.frame} requested; the file has "
                               f"{_plural(frames, 'frame')} (1..{frames})")
    try:
        decoded = decode(ref, args.frame - 1)
    except PixelError as exc:
        return _fail(exc.path, exc.reason)
    for note in decoded.warnings:
        print(f"radview render: {ref.path}: warning: {note}", file=sys.stderr)

    from viewer.display import DisplayPipeline

    pipeline = DisplayPipeline(decoded.stored, decoded.spec)
    if args.preset is not None:
        wanted = args.preset.strip().casefold()
        preset = next((p for p in pipeline.presets if p.label.casefold() == wanted), None)
        if preset is None:
            labels = ", ".join(repr(p.label) for p in pipeline.presets)
            return _fail(ref.path, f"no preset {args.preset!r}; available: {labels}")
        pixels = pipeline.render_preset(preset, invert=args.invert)
        used = f"preset {preset.label!r}"
    elif args.wl is not None:
        center, width = args.wl
        window = Window(center, width, "command line")
        pixels = pipeline.render(window, invert=args.invert)
        used = f"window {center:g}/{width:g}"
    else:
        pixels = pipeline.render(None, invert=args.invert)
        used = f"default preset {pipeline.default_preset.label!r}"
    try:
        write_png_atomic(pixels, out)
    except (OSError, ValueError) as exc:
        return _fail(out, f"cannot write the PNG ({exc})")
    rows, cols = pixels.shape
    print(f"wrote {out} ({rows}×{cols}, {used}{', inverted' if args.invert else ''})")
    return 0
