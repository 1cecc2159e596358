"""What the viewer hands to the AI engine (Qt-free; used by the GUI and ``radview predict``).

The model sees the image in its **default** display window — the window the viewer opens
it with (:attr:`viewer.display.DisplayPipeline.default_preset`: the file's first window,
else the automatic percentile window; MONOCHROME1 inverted so bone is white) — never the
user's current window/level, so a score does not change when the user drags W/L.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from viewer import pixels
from viewer.display import DisplayPipeline
from viewer.loader import path_hints
from viewer.model import FileError, ImageRef, Study
from viewer.pixels import DecodedImage, PixelError

if TYPE_CHECKING:  # inference.engine imports torch: only where a model actually runs
    from inference.engine import ImageInput


def model_input(decoded: DecodedImage | DisplayPipeline) -> np.ndarray:
    """The image in its default display window, ``uint8`` (rows, columns), 0 black.

    Parameters
    ----------
    decoded
        A decoded frame, or the :class:`~viewer.display.DisplayPipeline` the viewer
        already built for it (saves building a second one).
    """
    pipeline = (decoded if isinstance(decoded, DisplayPipeline)
                else DisplayPipeline(decoded.stored, decoded.spec))
    return pipeline.render_preset(pipeline.default_preset)


def input_fields(ref: ImageRef, decoded: DecodedImage | DisplayPipeline
                 ) -> tuple[str, np.ndarray, str | None, str | None]:
    """``(key, pixels, tag_part, path_part)`` of one image, without importing torch.

    ``tag_part`` is the image's Body Part Examined (normalized by the loader) when it has
    one; ``path_part`` comes from a MURA ``XR_<PART>`` ancestor folder, whatever the tag.
    """
    tag = ref.body_part if ref.body_part_source == "tag" else None
    return str(ref.path), model_input(decoded), tag, path_hints(ref.path).body_part


def image_input(ref: ImageRef, decoded: DecodedImage | DisplayPipeline) -> ImageInput:
    """The engine's :class:`~inference.engine.ImageInput` for one image."""
    from inference.engine import ImageInput

    key, px, tag, path = input_fields(ref, decoded)
    return ImageInput(key=key, pixels=px, tag_part=tag, path_part=path)


def build_inputs(
    study: Study, decode: Callable[[ImageRef], DecodedImage] = pixels.decode
) -> tuple[list[ImageInput], list[FileError]]:
    """Decode a study's images for the engine.

    Parameters
    ----------
    study
        A study from :func:`viewer.loader.scan`.
    decode
        Decoder (default :func:`viewer.pixels.decode`, frame 1).

    Returns
    -------
    inputs
        One per image that could be decoded, in the study's order.
    errors
        One :class:`~viewer.model.FileError` per image that could not (``ImageRef.error``
        set at scan time, a decoding failure, or values the display pipeline refuses),
        with the reason.
    """
    inputs: list[ImageInput] = []
    errors: list[FileError] = []
    for ref in study.images:
        if ref.error:
            errors.append(FileError(ref.path, ref.error))
            continue
        try:
            inputs.append(image_input(ref, decode(ref)))
        except PixelError as exc:
            errors.append(FileError(ref.path, exc.reason))
        except ValueError as exc:  # the display pipeline refused the decoded values
            errors.append(FileError(ref.path, f"cannot be displayed ({exc})"))
    return inputs, errors
