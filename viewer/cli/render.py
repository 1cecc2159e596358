"""``radview render``: one image as the viewer displays it, to PNG (Qt-free;
:mod:`viewer.cli` runs :func:`main`).

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
import math
import os
import re
import secrets
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from viewer import loader
from viewer.cli._common import start
from viewer.model import Window
from viewer.pixels import PixelError, decode


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


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


def _parser() -> argparse.ArgumentParser:
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


def main(argv: list[str]) -> int:
    """Run ``radview render``; returns the exit status (0 written, 2 failure)."""
    args = start(_parser(), _join_negative_wl(list(argv)))
    if isinstance(args, int):
        return args
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
    rows, cols = pixels.shape  # printed width×height, as the viewer and `info` do
    print(f"wrote {out} ({cols}×{rows}, {used}{', inverted' if args.invert else ''})")
    return 0
