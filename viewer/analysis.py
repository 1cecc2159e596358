"""What the viewer hands to the AI engine (Qt-free; used by the GUI and ``radview predict``).

The model sees the image in its **default** display window — the window the viewer opens
it with (:attr:`viewer.display.DisplayPipeline.default_preset`: the file's first window,
else the automatic percentile window; MONOCHROME1 inverted so bone is white) — never the
user's current window/level, so a score does not change when the user drags W/L.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

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
        if ref.ai_capture:  # radview's own AI capture: never a new view
            continue
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


@dataclass(frozen=True)
class ViewRow:
    """One row of the AI panel: a view of the study and what the model made of it.

    Attributes
    ----------
    name, key
        The view's label and its engine key (``str(ref.path)``).
    probability
        The view's probability (0–1), or None when it was not scored.
    note
        ``""`` when scored, else ``"not scored: <reason>"``.
    has_map
        True when the result holds a heatmap (CAM) for this view.
    """

    name: str
    key: str
    probability: float | None
    note: str
    has_map: bool

    @property
    def scored(self) -> bool:
        return self.probability is not None


def result_rows(result: Any, views: Sequence[tuple[str, str, str | None]]) -> list[ViewRow]:
    """Every view of a study, scored or not, for the AI panel (Qt-free).

    Parameters
    ----------
    result
        An ``inference.engine.StudyResult`` (``images`` with ``key``, ``probability``,
        ``cam``; ``supported``, ``reason``).
    views
        ``(name, key, reason)`` for *every* view of the study, in grid order; ``reason``
        says why a view was not handed to the model (its scan or decode error), or None.

    Returns
    -------
    list[ViewRow]
        One per view, in the order given. A view the model did not see is "not scored:"
        its reason (``"not decoded"`` when none is known); a view it saw without a
        probability (study not supported) is "not scored:" the study's reason.
    """
    by_key = {im.key: im for im in getattr(result, "images", [])}
    rows = []
    for name, key, reason in views:
        im = by_key.get(key)
        prob = None if im is None else im.probability
        if prob is not None:
            note = ""
        elif im is None:
            note = f"not scored: {reason or 'not decoded'}"
        else:
            note = f"not scored: {getattr(result, 'reason', None) or 'no score'}"
        has_map = im is not None and getattr(im, "cam", None) is not None
        rows.append(ViewRow(name, key, prob, note, has_map))
    return rows


def scored_text(rows: Sequence[ViewRow]) -> str:
    """``"2 of 3 views scored"`` (``"1 of 1 view scored"``)."""
    total = len(rows)
    return f"{sum(r.scored for r in rows)} of {total} view{'' if total == 1 else 's'} scored"
