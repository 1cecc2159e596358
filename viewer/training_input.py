"""The model input of a file, for training: exactly what the viewer hands the engine.

``radview train`` and ``radview evaluate`` pass :func:`read_model_input` to the training
code (:func:`inference.training.data.build_cache`, by injection: ``inference`` never
imports the viewer). It decodes a file with the viewer's own decoders (DICOM by content,
else PNG/JPEG/TIFF/BMP: :mod:`viewer.pixels`) and renders it in its default display window
(:func:`viewer.analysis.model_input`: the file's first window, else the automatic
percentile window; MONOCHROME1 inverted so bone is white). The GUI and ``radview predict``
get their model input through the same two steps (:func:`viewer.analysis.build_inputs`),
so a model is trained on the pixels it is later shown: 16-bit PNG/TIFF films are windowed
by percentile in both, not stretched min–max for training only, and DICOM can be trained
on.

Qt-free; imports no torch.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from viewer.analysis import model_input
from viewer.pixels import PixelError, decode_dicom, decode_image_file, sniff_dicom

#: Name of this reader in training cache keys (a change of reading makes a new cache).
CACHE_TAG = "viewer.default-window/1"


class UnreadableImageError(ValueError):
    """A file the viewer cannot decode or display; the message says why."""


def read_model_input(path: str | os.PathLike[str]) -> np.ndarray:
    """One file as the model sees it before resizing: ``uint8`` (rows, columns), 0 black.

    Parameters
    ----------
    path
        A DICOM file (recognised by content, any name) or a PNG/JPEG/TIFF/BMP file; frame
        (page) 1.

    Returns
    -------
    numpy.ndarray
        The image in its default display window (:func:`viewer.analysis.model_input`).

    Raises
    ------
    UnreadableImageError
        A :class:`ValueError` naming the file and the reason (unsupported codec, damaged
        file, values the display pipeline refuses …); ``OSError`` when the file cannot be
        read at all.
    """
    path = Path(path)
    with path.open("rb") as f:
        head = f.read(132)
    try:
        decoded = decode_dicom(path) if sniff_dicom(head) else decode_image_file(path)
        return model_input(decoded)
    except PixelError as exc:
        raise UnreadableImageError(f"{path}: {exc.reason}") from exc
    except ValueError as exc:  # the display pipeline refused the decoded values
        raise UnreadableImageError(f"{path}: cannot be displayed ({exc})") from exc


read_model_input.cache_tag = CACHE_TAG  # type: ignore[attr-defined]
