"""Qt-free grayscale display pipeline: stored pixel values → 8-bit display values.

This module implements the grayscale part of the DICOM standard display pipeline
(PS3.3 C.11 "Look Up Tables and Presentation States", PS3.4 Annex N "Pixel Transformation
Sequence")::

    stored value ──► Modality LUT ──► VOI LUT / window ──► Presentation LUT ──► 8-bit
                     (C.11.1)          (C.11.2)              (C.11.6, MONOCHROME1)

It needs only numpy and the header values collected in :class:`viewer.model.PixelSpec`;
it never imports Qt or pydicom.

Design
------
Every stage is a function of the stored value alone, so the whole chain collapses into
one ``uint8`` lookup table (LUT) with one entry per stored value. :class:`DisplayPipeline`
does the per-image work once, in ``__init__``:

* the stored-value range actually present in the image, ``lo..hi`` (the LUT covers this
  range, not the full ``2**BitsStored`` range, so a 12-bit image in 16-bit words costs a
  4096-entry LUT);
* an index image ``stored - lo`` as ``uint16`` (``uint32`` for wider ranges), which is the
  only per-pixel copy kept;
* the modality value of every LUT entry (``float64``);
* an exact histogram of the index image, from which come the modality range and the
  automatic window, both excluding Pixel Padding.

A window/level change then costs one LUT build (proportional to the number of LUT
entries, at most 65 536 for 16-bit data) plus one gather over the image
(:meth:`DisplayPipeline.apply_lut`): about 4 ms for a 2500 × 2048 12-bit frame on a
2-core CPU, against about 65 ms for pydicom's float64 modality + VOI pass and uint8
scaling on the same machine. Run ``python bench/window_level.py`` for the figures on
yours.

Conventions chosen here (each documented where it is implemented):

* A Modality LUT Sequence, when present, replaces Rescale Slope/Intercept (the two are
  mutually exclusive in PS3.3 C.11.1; if a file carries both, the LUT wins).
* MONOCHROME1 (PS3.3 C.7.6.3.1.2) and Presentation LUT Shape ``INVERSE`` (C.11.6.1,
  C.8.11.3) each mean "display inverted"; both together still mean inverted once (the DX
  Image Module requires ``INVERSE`` for MONOCHROME1, so it describes the same inversion).
  The user's invert toggle flips the result.
* Pixel Padding (C.7.5.1.1.2) is excluded from all statistics and always displayed black.
* Plain 8-bit images without any header windows are shown "as saved" (identity mapping).
"""

from __future__ import annotations

import logging
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from viewer.model import ImageRef, LutData, PixelSpec, Window

logger = logging.getLogger(__name__)

#: VOI LUT Function (0028,1056) enumerated values, PS3.3 C.11.2.1.3.
VOI_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")

#: Percentiles (in %) of the modality values, padding excluded, spanned by the automatic
#: window.
AUTO_PERCENTILES = (0.5, 99.5)

#: A horizontal or vertical drag over this many screen pixels changes the window width or
#: center by the whole modality range of the image (see :func:`window_for_drag`).
DRAG_PIXELS_PER_RANGE = 512

#: Largest LUT built exactly, one entry per stored value. Wider stored ranges (only possible
#: with BitsStored > 24) are binned into this many entries.
MAX_LUT_ENTRIES = 1 << 24

#: Pixels gathered per chunk in :meth:`DisplayPipeline.apply_lut`: the index chunk is
#: widened to ``intp`` (np.take's native index type, 2 MiB per chunk) because np.take on a
#: ``uint16`` index is about 3x slower than on ``intp``, and a whole-image ``intp`` index
#: would cost 8 bytes per pixel of memory for every open image.
_GATHER_CHUNK = 1 << 18

#: Images with at least this many pixels are mapped in two halves, one on a helper
#: thread: numpy releases the GIL in the cast and the gather, so a W/L update of a
#: 2500×2048 frame takes ~2.5 ms instead of ~4 ms on two cores.
_SPLIT_PIXELS = 1 << 20
_helper: ThreadPoolExecutor | None = None


def _helper_pool() -> ThreadPoolExecutor | None:
    global _helper
    if _helper is None and (os.cpu_count() or 1) > 1:
        _helper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="radview-lut")
    return _helper


def _gather(lut: np.ndarray, source: np.ndarray, target: np.ndarray) -> None:
    """``target[i] = lut[source[i]]`` in chunks (numpy's take wants intp indices)."""
    scratch = np.empty(min(_GATHER_CHUNK, source.size), dtype=np.intp)
    for start in range(0, source.size, _GATHER_CHUNK):
        stop = min(start + _GATHER_CHUNK, source.size)
        chunk = scratch[: stop - start]
        np.copyto(chunk, source[start:stop], casting="unsafe")
        # mode="clip": no bounds-check buffering of out (indices are valid anyway).
        np.take(lut, chunk, out=target[start:stop], mode="clip")

_DISPLAY_MAX = 255.0


@dataclass(frozen=True)
class Preset:
    """A named way to display an image: a window or a VOI LUT.

    Parameters
    ----------
    label
        Text for menus: the file's explanation, or ``"Window 1"``, ``"VOI LUT 1"``,
        ``"Automatic"``, ``"Full range"``, ``"As saved"``.
    window
        The window, in modality units (output of the modality LUT / rescale), or None.
    voi_lut
        The VOI LUT Sequence item, or None. Exactly one of ``window`` and ``voi_lut`` is
        set.
    kind
        Where it comes from: ``"file"`` (Window Center/Width in the header), ``"lut"``
        (VOI LUT Sequence), ``"auto"`` (percentiles of the data), ``"full"`` (data minimum
        to maximum) or ``"identity"`` (plain 8-bit image shown as saved).
    """

    label: str
    window: Window | None = None
    voi_lut: LutData | None = None
    kind: str = "window"


def window_problem(window: Window) -> str | None:
    """Say why a window cannot be applied, or return None when it can.

    Parameters
    ----------
    window
        The window to check.

    Returns
    -------
    str or None
        A short phrase such as ``"has width 0 (LINEAR needs at least 1)"``, meant to follow
        ``"window 40/0 "`` in a message; None for a usable window.

    Notes
    -----
    PS3.3 C.11.2.1.2.1 requires Window Width ≥ 1 for LINEAR; C.11.2.1.3.1 and
    C.11.2.1.3.2 require Window Width > 0 for SIGMOID and LINEAR_EXACT. Center and width
    must be finite numbers (a header may carry an empty or unparsable value that the
    loader turned into NaN).
    """
    center, width = float(window.center), float(window.width)
    if not (math.isfinite(center) and math.isfinite(width)):
        return "has no usable numeric center/width"
    if _function(window) == "LINEAR":
        if width < 1:
            return f"has width {width:g} (LINEAR needs at least 1)"
    elif width <= 0:
        return f"has width {width:g} ({_function(window)} needs more than 0)"
    return None


def window_for_drag(
    window: Window, dx: float, dy: float, modality_range: tuple[float, float]
) -> Window:
    """Return the window after a mouse drag of ``(dx, dy)`` screen pixels.

    Convention (the common one of clinical viewers): dragging **right** widens the window
    (less contrast), dragging **left** narrows it; dragging **down** raises the center
    (darker image), dragging **up** lowers it (brighter image). Screen y grows downwards,
    so ``dy > 0`` is a downward drag.

    Parameters
    ----------
    window
        The window before the drag, in modality units.
    dx, dy
        Mouse movement since that window was current, in screen pixels.
    modality_range
        ``(min, max)`` modality value of the image (:attr:`DisplayPipeline.modality_range`).
        Sensitivity is ``(max - min) / DRAG_PIXELS_PER_RANGE`` modality units per pixel
        (at least 1/512 unit), so a drag across ~500 pixels sweeps the whole data range
        whatever the modality's units are.

    Returns
    -------
    Window
        New center and width; the width is clamped to ≥ 1 (valid for every VOI LUT
        Function). The VOI LUT Function is kept; the explanation is cleared because the
        window is no longer the one the file named.
    """
    low, high = float(modality_range[0]), float(modality_range[1])
    span = high - low if math.isfinite(high - low) and high > low else 1.0
    per_pixel = span / DRAG_PIXELS_PER_RANGE
    width = max(1.0, float(window.width) + dx * per_pixel)
    center = float(window.center) + dy * per_pixel
    return Window(center=center, width=width, explanation="", function=window.function)


def _function(window: Window) -> str:
    """VOI LUT Function of ``window``, normalized; absent means LINEAR (C.11.2.1.3)."""
    name = (window.function or "LINEAR").strip().upper()
    return name if name in VOI_FUNCTIONS else "LINEAR"


def _exact_window(low: float, high: float, explanation: str) -> Window:
    """The LINEAR window that maps ``low`` to 0 and ``high`` to 255 exactly.

    With C.11.2.1.2.1, ``x <= c - 0.5 - (w - 1) / 2`` gives the minimum output and
    ``x = c - 0.5 + (w - 1) / 2`` the maximum, hence ``w = high - low + 1`` and
    ``c = (low + high + 1) / 2``. For 0..4095 this is the familiar 2048/4096.
    """
    width = max(1.0, high - low + 1.0)
    return Window(center=(low + high + 1.0) / 2.0, width=width, explanation=explanation)


def _window_to_display(values: np.ndarray, window: Window) -> np.ndarray:
    """Apply a VOI window to modality values; return float64 display values in [0, 255].

    Parameters
    ----------
    values
        Modality values (float64, any shape).
    window
        A window for which :func:`window_problem` returns None.

    Notes
    -----
    Formulas from PS3.3 with y_min = 0, y_max = 255:

    * LINEAR (C.11.2.1.2.1): ``x <= c - 0.5 - (w-1)/2`` → 0; ``x > c - 0.5 + (w-1)/2``
      → 255; else ``((x - (c - 0.5)) / (w-1) + 0.5) * 255``. With w = 1 the middle
      interval is empty: a step at c - 0.5.
    * LINEAR_EXACT (C.11.2.1.3.2): ``x <= c - w/2`` → 0; ``x > c + w/2`` → 255; else
      ``((x - c) / w + 0.5) * 255``.
    * SIGMOID (C.11.2.1.3.1): ``255 / (1 + exp(-4 (x - c) / w))``.
    """
    center, width = float(window.center), float(window.width)
    function = _function(window)
    if function == "SIGMOID":
        # exp overflows float64 beyond ~709; the output is 0 there anyway.
        exponent = np.clip(-4.0 * (values - center) / width, -700.0, 700.0)
        return _DISPLAY_MAX / (1.0 + np.exp(exponent))
    if function == "LINEAR_EXACT":
        ramp_center, ramp_width = center, width
    else:  # LINEAR
        ramp_center, ramp_width = center - 0.5, width - 1.0
    lower = ramp_center - ramp_width / 2.0
    upper = ramp_center + ramp_width / 2.0
    if ramp_width > 0:
        ramp = ((values - ramp_center) / ramp_width + 0.5) * _DISPLAY_MAX
    else:
        ramp = np.full_like(values, _DISPLAY_MAX)
    out = np.where(values <= lower, 0.0, np.where(values > upper, _DISPLAY_MAX, ramp))
    return np.clip(out, 0.0, _DISPLAY_MAX)


def _voi_lut_to_display(values: np.ndarray, lut: LutData) -> np.ndarray:
    """Apply a VOI LUT Sequence item to modality values; return float64 in [0, 255].

    PS3.3 C.11.2.1.1: an input below the first value mapped gives the first entry, above
    the last mapped value the last entry. Modality values that are not integers (rescale
    with a fractional slope) are rounded to the nearest entry. Entries are scaled from
    ``0 .. 2**bits - 1`` (third value of the LUT Descriptor) to ``0 .. 255``; an entry
    beyond that range (a descriptor that understates the bit depth) is clipped.
    """
    data = np.asarray(lut.data, dtype=np.float64).reshape(-1)
    position = np.rint(values) - lut.first_mapped
    index = np.clip(position, 0, data.size - 1).astype(np.intp)
    full_scale = float((1 << max(1, int(lut.bits))) - 1)
    return np.clip(data[index], 0.0, full_scale) * (_DISPLAY_MAX / full_scale)


def _padding_bounds(spec: PixelSpec) -> tuple[int, int] | None:
    """Stored-value interval (inclusive) that is Pixel Padding, or None.

    PS3.3 C.7.5.1.1.2: Pixel Padding Value (0028,0120) alone marks one stored value; with
    Pixel Padding Range Limit (0028,0121) every value between the two, inclusive, is
    padding, whichever of the two is larger. Both are stored values (before the modality
    LUT). Their VR is US or SS after Pixel Representation; a negative value misread as
    US (e.g. 63536 for -2000) is folded back into the signed range.
    """
    if spec.padding_value is None:
        return None
    values = [int(spec.padding_value)]
    if spec.padding_range_limit is not None:
        values.append(int(spec.padding_range_limit))
    if spec.signed:
        top = spec.declared_range[1]
        wrap = 1 << (16 if spec.bits_allocated <= 16 else 32)
        values = [v - wrap if max(top, wrap // 2 - 1) < v < wrap else v for v in values]
    return min(values), max(values)


def _is_plain_8bit(spec: PixelSpec) -> bool:
    """True for an 8-bit MONOCHROME2 image with no windowing or rescale in its header.

    This is what :mod:`viewer.pixels` makes of a PNG/JPEG, and also an 8-bit DICOM
    Secondary Capture without windows; both are meant to be seen as saved.
    """
    return (
        spec.bits_stored == 8
        and not spec.signed
        and spec.photometric == "MONOCHROME2"
        and not spec.windows
        and not spec.voi_luts
        and spec.modality_lut is None
        and spec.rescale_slope == 1
        and spec.rescale_intercept == 0
        and spec.presentation_lut_shape.strip().upper() != "INVERSE"
    )


class DisplayPipeline:
    """The display chain of one grayscale frame, as a LUT rebuilt on each W/L change.

    Parameters
    ----------
    stored
        2-D array (rows, columns) of stored values, already masked to BitsStored and
        sign-extended for signed data; any integer dtype (uint8, uint16, int16, int32 ...).
        It is copied (as an index image); the caller may reuse it afterwards.
    spec
        The header values (:class:`viewer.model.PixelSpec`).

    Attributes
    ----------
    spec : PixelSpec
        As given.
    shape : tuple of int
        Rows, columns.
    present_range : tuple of int
        Smallest and largest stored value present in the image (padding included): the
        range the LUT covers (unlike :attr:`PixelSpec.declared_range
        <viewer.model.PixelSpec.declared_range>`, every value the header allows).
    modality_range : tuple of float
        Smallest and largest modality value present, padding excluded (modality units,
        e.g. HU for CT).
    auto_window : Window
        LINEAR window spanning the 0.5 and 99.5 percentiles of the modality values,
        padding excluded (exact, from a histogram of every pixel).
    full_window : Window
        LINEAR window spanning ``modality_range`` exactly.
    presets : list of Preset
        In menu order: ``"As saved"`` (plain 8-bit images only), every usable file window
        in file order, every VOI LUT, ``"Automatic"``, ``"Full range"``. File windows that
        cannot be applied (:func:`window_problem`) are left out, with a log message.
    default_preset : Preset
        What to show first; see Notes.
    default_reason : str or None
        Why the default is not the first file window, in words for the status bar, e.g.
        ``"file window 40/400 lies outside the data (2000..3000); automatic window
        used"``; None when the file's first window (or, for plain 8-bit images, the
        identity) is used.

    Notes
    -----
    Default preset: the first file window (Window Center/Width, PS3.3 C.11.2.1.2); if the
    file has none, or it cannot be applied, or it lies entirely outside the data's modality
    range, the first VOI LUT if any, else the automatic window. The reason is logged
    (``WARNING`` for a bad window, ``INFO`` for a missing one).

    Plain 8-bit images with no windowing information default to ``"As saved"``, the
    identity mapping (stored value v is displayed as v), so that a PNG looks the way it was
    saved. "Full range" would stretch a PNG that does not span 0..255; that remains one
    click away. 16-bit plain images default to the automatic window, because they
    usually hold 10–14-bit radiographs that would look almost black as saved.

    Pixel Padding values (PS3.3 C.7.5.1.1.2) are excluded from every statistic and
    always displayed black (0), whatever the inversion: padding is the background outside
    the detector, and black is the background convention of reading rooms.
    """

    def __init__(self, stored: np.ndarray, spec: PixelSpec) -> None:
        stored = np.asarray(stored)
        if stored.ndim != 2:
            raise ValueError(f"stored pixels must be 2-D (rows, columns), got {stored.shape}")
        if stored.dtype.kind not in "iu":
            raise TypeError(f"stored pixels must be integers, got dtype {stored.dtype}")
        if stored.size == 0:
            raise ValueError("stored pixel array is empty")
        self.spec = spec
        self.shape: tuple[int, int] = (int(stored.shape[0]), int(stored.shape[1]))

        # --- index image: stored - lo over the range present -------------------------
        lo, hi = int(stored.min()), int(stored.max())
        self.present_range: tuple[int, int] = (lo, hi)
        span = hi - lo + 1
        self._step = 1 if span <= MAX_LUT_ENTRIES else -(-span // MAX_LUT_ENTRIES)
        entries = (hi - lo) // self._step + 1
        index_dtype = np.uint16 if entries <= 1 << 16 else np.uint32
        if self._step == 1:
            # Casting to an unsigned type wraps modulo 2**bits, so a modular subtraction
            # gives stored - lo exactly (it fits: span <= 2**bits). One copy, no int64.
            bits = np.iinfo(index_dtype).bits
            index = stored.astype(index_dtype, order="C")
            index -= index_dtype(lo % (1 << bits))
        else:
            logger.warning(
                "stored values span %d levels; the display LUT bins them by %d",
                span,
                self._step,
            )
            index = ((stored.astype(np.int64) - lo) // self._step).astype(index_dtype)
        self._index = index
        # Stored value represented by each LUT entry (the bin middle when binned).
        self._entry_stored = lo + np.arange(entries, dtype=np.float64) * self._step
        self._entry_stored += (self._step - 1) / 2.0

        # --- modality values of every entry (C.11.1) ----------------------------------
        self._modality_lut = spec.modality_lut
        if self._modality_lut is not None and np.asarray(self._modality_lut.data).size == 0:
            logger.warning("Modality LUT Sequence item has no entries; rescale used instead")
            self._modality_lut = None
        if self._modality_lut is not None and (
            spec.rescale_slope != 1 or spec.rescale_intercept != 0
        ):
            logger.info(
                "file has both a Modality LUT Sequence and Rescale Slope/Intercept "
                "(%g/%g); the LUT is used (PS3.3 C.11.1)",
                spec.rescale_slope,
                spec.rescale_intercept,
            )
        slope = float(spec.rescale_slope)
        if not math.isfinite(slope) or slope == 0:
            logger.warning("Rescale Slope %r is unusable; 1 used", spec.rescale_slope)
            slope = 1.0
        intercept = float(spec.rescale_intercept)
        if not math.isfinite(intercept):
            logger.warning("Rescale Intercept %r is unusable; 0 used", spec.rescale_intercept)
            intercept = 0.0
        self._slope, self._intercept = slope, intercept
        self._entry_modality = self._modality(self._entry_stored)

        # --- padding and statistics -----------------------------------------------------
        self._padding_entries = np.zeros(entries, dtype=bool)
        padding = _padding_bounds(spec)
        if padding is not None:
            self._padding_entries = (self._entry_stored >= padding[0]) & (
                self._entry_stored <= padding[1]
            )
        counts = self._histogram_entries(entries)
        valid = np.where(self._padding_entries, 0, counts)
        if not valid.any():
            logger.warning("every pixel is Pixel Padding; statistics include the padding")
            valid = counts
        self._counts = valid
        present = valid > 0
        present_modality = self._entry_modality[present]
        self.modality_range: tuple[float, float] = (
            float(present_modality.min()),
            float(present_modality.max()),
        )
        self.full_window = _exact_window(*self.modality_range, explanation="Full range")
        self.auto_window = _exact_window(*self._percentiles(AUTO_PERCENTILES), "Automatic")

        # --- inversion (C.7.6.3.1.2, C.11.6.1) ------------------------------------------
        self._inverted = (
            spec.photometric.strip().upper() == "MONOCHROME1"
            or spec.presentation_lut_shape.strip().upper() == "INVERSE"
        )

        self._build_presets()

    # ------------------------------------------------------------------ set-up helpers

    def _modality(self, stored_values: np.ndarray) -> np.ndarray:
        """Modality LUT (PS3.3 C.11.1) of stored values, as float64.

        A Modality LUT Sequence, when present, takes precedence over Rescale Slope and
        Intercept: C.11.1 makes them mutually exclusive, and a file that carries both is
        taken to mean its LUT. Inputs outside the LUT map to its first/last entry
        (C.11.1.1.1).
        """
        values = np.asarray(stored_values, dtype=np.float64)
        lut = self._modality_lut
        if lut is None:
            return values * self._slope + self._intercept
        data = np.asarray(lut.data, dtype=np.float64).reshape(-1)
        index = np.clip(np.rint(values) - lut.first_mapped, 0, data.size - 1)
        return data[index.astype(np.intp)]

    def _histogram_entries(self, entries: int) -> np.ndarray:
        """Exact count of pixels per LUT entry (chunked so the intp copy stays small)."""
        flat = self._index.reshape(-1)
        counts = np.zeros(entries, dtype=np.int64)
        for start in range(0, flat.size, _GATHER_CHUNK):
            counts += np.bincount(flat[start : start + _GATHER_CHUNK], minlength=entries)
        return counts

    def _percentiles(self, percents: tuple[float, float]) -> tuple[float, float]:
        """Modality values at the given percentiles (in %) of the padding-free histogram.

        Entries are sorted by modality value first, so a non-monotonic Modality LUT (or a
        negative slope) is handled.
        """
        present = self._counts > 0
        values = self._entry_modality[present]
        counts = self._counts[present]
        order = np.argsort(values, kind="stable")
        values, cumulative = values[order], np.cumsum(counts[order])
        total = cumulative[-1]
        result = []
        for percent in percents:
            position = int(np.searchsorted(cumulative, total * percent / 100.0, side="left"))
            result.append(float(values[min(position, values.size - 1)]))
        return result[0], result[1]

    def _outside_data(self, window: Window) -> bool:
        """True when the window's ramp ``c ± w/2`` misses the modality range entirely."""
        low, high = self.modality_range
        center, half = float(window.center), float(window.width) / 2.0
        return center + half < low or center - half > high

    def _build_presets(self) -> None:
        spec = self.spec
        presets: list[Preset] = []
        identity: Preset | None = None
        if _is_plain_8bit(spec):
            identity = Preset("As saved", window=_exact_window(0, 255, "As saved"), kind="identity")
            presets.append(identity)
        file_presets: list[Preset] = []
        for number, window in enumerate(spec.windows, start=1):
            problem = window_problem(window)
            if problem is not None:
                logger.warning(
                    "file window %d (%s) %s; left out of the presets",
                    number,
                    _describe(window),
                    problem,
                )
                continue
            if (window.function or "LINEAR").strip().upper() not in VOI_FUNCTIONS:
                logger.warning(
                    "file window %d has unknown VOI LUT Function %r; LINEAR used",
                    number,
                    window.function,
                )
            file_presets.append(
                Preset(window.explanation or f"Window {number}", window=window, kind="file")
            )
        lut_presets = []
        for number, lut in enumerate(spec.voi_luts, start=1):
            if np.asarray(lut.data).size == 0:
                logger.warning("VOI LUT %d has no entries; left out of the presets", number)
                continue
            lut_presets.append(
                Preset(lut.explanation or f"VOI LUT {number}", voi_lut=lut, kind="lut")
            )
        auto = Preset("Automatic", window=self.auto_window, kind="auto")
        full = Preset("Full range", window=self.full_window, kind="full")
        presets += file_presets + lut_presets + [auto, full]
        self.presets: list[Preset] = presets

        self.default_reason: str | None = None
        fallback = lut_presets[0] if lut_presets else auto
        fallback_words = (
            f"VOI LUT {fallback.label!r} used" if lut_presets else "automatic window used"
        )
        if identity is not None:
            self.default_preset = identity
            return
        if spec.windows:
            first = spec.windows[0]
            problem = window_problem(first)
            if problem is None and self._outside_data(first):
                low, high = self.modality_range
                problem = f"lies outside the data ({low:g}..{high:g})"
            if problem is None:
                self.default_preset = file_presets[0]
                return
            self.default_preset = fallback
            self.default_reason = f"file window {_describe(first)} {problem}; {fallback_words}"
            logger.warning("%s", self.default_reason)
            return
        self.default_preset = fallback
        if not lut_presets:
            self.default_reason = "the file has no window or VOI LUT; automatic window used"
            logger.info("%s", self.default_reason)

    # ------------------------------------------------------------------------- public

    @property
    def lut_first(self) -> int:
        """Stored value of LUT entry 0 (entry ``k`` is stored value ``lut_first + k``)."""
        return self.present_range[0]

    def modality_value(self, stored_value: int | float) -> float:
        """Modality value (e.g. HU) of one stored value, for the status bar.

        Works for any stored value, present in the image or not.
        """
        return float(self._modality(np.asarray([stored_value], dtype=np.float64))[0])

    def build_lut(
        self,
        window: Window | None = None,
        voi_lut: LutData | None = None,
        invert: bool = False,
    ) -> np.ndarray:
        """Build the uint8 display LUT over the stored range present in the image.

        Parameters
        ----------
        window
            VOI window in modality units. Mutually exclusive with ``voi_lut``.
        voi_lut
            VOI LUT Sequence item, applied to modality values.
        invert
            The user's invert toggle, applied on top of MONOCHROME1 / Presentation LUT
            Shape INVERSE.

        Returns
        -------
        numpy.ndarray
            uint8 array; entry ``k`` is the display value (0 black .. 255 white) of stored
            value ``lut_first + k``. Pixel Padding entries are 0.

        Raises
        ------
        ValueError
            Both a window and a VOI LUT given, or a window that :func:`window_problem`
            rejects.

        Notes
        -----
        With neither ``window`` nor ``voi_lut`` the default preset is used. Cost is
        proportional to the number of entries (≤ 65 536 for 16-bit data), not to the image.
        """
        if window is None and voi_lut is None:
            window, voi_lut = self.default_preset.window, self.default_preset.voi_lut
        if window is not None and voi_lut is not None:
            raise ValueError("give a window or a VOI LUT, not both")
        if voi_lut is not None:
            display = _voi_lut_to_display(self._entry_modality, voi_lut)
        else:
            assert window is not None
            problem = window_problem(window)
            if problem is not None:
                raise ValueError(f"window {_describe(window)} {problem}")
            display = _window_to_display(self._entry_modality, window)
        lut = np.floor(display + 0.5).astype(np.uint8)  # round half up
        if self._inverted != bool(invert):
            np.subtract(255, lut, out=lut)
        lut[self._padding_entries] = 0
        return lut

    def apply_lut(self, lut: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Map the image through a LUT from :meth:`build_lut` (one gather, no float pass).

        Parameters
        ----------
        lut
            uint8 array with one entry per LUT entry of this pipeline.
        out
            Optional C-contiguous uint8 array of shape :attr:`shape` to write into; lets a
            caller that repaints continuously reuse one buffer. It is returned.

        Returns
        -------
        numpy.ndarray
            uint8, C-contiguous, shape :attr:`shape`. A new array unless ``out`` was
            given, so by default the caller may keep it.
        """
        lut = np.ascontiguousarray(lut, dtype=np.uint8)
        if lut.shape != (self._entry_stored.size,):
            raise ValueError(
                f"LUT has {lut.shape} entries, this image needs {self._entry_stored.size}"
            )
        if out is None:
            out = np.empty(self.shape, dtype=np.uint8)
        elif out.shape != self.shape or out.dtype != np.uint8 or not out.flags.c_contiguous:
            raise ValueError(f"out must be a C-contiguous uint8 array of shape {self.shape}")
        source, target = self._index.reshape(-1), out.reshape(-1)
        # Per-call scratch buffers: render may run in a worker thread and the GUI thread.
        pool = _helper_pool() if source.size >= _SPLIT_PIXELS else None
        if pool is None:
            _gather(lut, source, target)
        else:
            half = source.size // 2
            other = pool.submit(_gather, lut, source[half:], target[half:])
            _gather(lut, source[:half], target[:half])
            other.result()
        return out

    def render(
        self,
        window: Window | None = None,
        voi_lut: LutData | None = None,
        invert: bool = False,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """Display values of the whole image (uint8, 0 black .. 255 white).

        Parameters
        ----------
        window, voi_lut, invert
            As for :meth:`build_lut`; neither window nor VOI LUT means the default preset.
        out
            As for :meth:`apply_lut`.

        Returns
        -------
        numpy.ndarray
            uint8 2-D C-contiguous array of shape :attr:`shape`; a new array unless
            ``out`` is given.
        """
        return self.apply_lut(self.build_lut(window, voi_lut, invert), out=out)

    def render_preset(
        self, preset: Preset, invert: bool = False, out: np.ndarray | None = None
    ) -> np.ndarray:
        """:meth:`render` with a preset's window or VOI LUT."""
        if preset.window is None and preset.voi_lut is None:
            raise ValueError(f"preset {preset.label!r} has neither a window nor a VOI LUT")
        return self.render(preset.window, preset.voi_lut, invert=invert, out=out)

    # ------------------------------------------------------- reduced-resolution preview

    def reduced_index(self, factor: int) -> np.ndarray:
        """The index image reduced by ``factor`` in both directions (box means), cached.

        Used to preview a window/level drag at display resolution: a LUT applied to this
        image costs ``1 / factor**2`` of :meth:`apply_lut`. Each level is the 2 × 2 box mean
        (rounded half up) of the previous one, computed once per image and factor
        (~15 ms for 2500 × 2048 → 1250 × 1024); an odd last row or column is repeated.

        Parameters
        ----------
        factor
            A power of two ≥ 1; 1 returns the full-resolution index image itself.

        Returns
        -------
        numpy.ndarray
            Shape ``(ceil(rows / factor), ceil(columns / factor))``, the index dtype. Entry
            ``(i, j)`` covers image pixels ``i*factor .. (i+1)*factor - 1`` (rows) and the
            same for columns. Read only: it is shared between calls.

        Notes
        -----
        Averaged indices are averaged stored values: with a non-linear modality LUT or Pixel
        Padding at an edge, a reduced pixel may differ from the mean of the displayed
        values. It is a preview; the full-resolution :meth:`apply_lut` is exact.
        """
        if factor < 1 or factor & (factor - 1):
            raise ValueError(f"factor must be a power of two ≥ 1, got {factor}")
        levels: dict[int, np.ndarray] = self.__dict__.setdefault("_levels", {1: self._index})
        level = 1
        while level < factor:
            if level * 2 not in levels:
                levels[level * 2] = _box_halve(levels[level])
            level *= 2
        return levels[factor]

    def apply_lut_reduced(
        self,
        lut: np.ndarray,
        factor: int,
        region: tuple[int, int, int, int] | None = None,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """Map (part of) :meth:`reduced_index` through a LUT.

        Parameters
        ----------
        lut
            One entry per LUT entry of this pipeline, any dtype: the uint8 table of
            :meth:`build_lut`, or a caller's table derived from it (e.g. ``uint32`` RGB32
            pixels, so that a GUI toolkit draws the result without a format conversion).
        factor
            As for :meth:`reduced_index`.
        region
            ``(row_start, row_stop, col_start, col_stop)`` in reduced-image pixels, or None
            for the whole reduced image.
        out
            Optional C-contiguous array of the region's shape and the LUT's dtype.

        Returns
        -------
        numpy.ndarray
            ``lut[reduced_index(factor)[region]]``, C-contiguous.
        """
        lut = np.ascontiguousarray(lut)
        if lut.shape != (self._entry_stored.size,):
            raise ValueError(
                f"LUT has {lut.shape} entries, this image needs {self._entry_stored.size}"
            )
        source = self.reduced_index(factor)
        if region is not None:
            r0, r1, c0, c1 = region
            source = source[r0:r1, c0:c1]
        if out is None:
            out = np.empty(source.shape, dtype=lut.dtype)
        elif out.shape != source.shape or out.dtype != lut.dtype or not out.flags.c_contiguous:
            raise ValueError(f"out must be a C-contiguous {lut.dtype} array of {source.shape}")
        pool = _helper_pool() if source.size >= _SPLIT_PIXELS else None
        if pool is None:
            _gather_rows(lut, source, out)
        else:
            half = source.shape[0] // 2
            other = pool.submit(_gather_rows, lut, source[half:], out[half:])
            _gather_rows(lut, source[:half], out[:half])
            other.result()
        return out


def _box_halve(index: np.ndarray) -> np.ndarray:
    """2 × 2 box mean (rounded half up) of an index image; an odd last row/column repeats."""
    rows, cols = index.shape
    if rows % 2:
        index = np.concatenate([index, index[-1:]], axis=0)
    if cols % 2:
        index = np.concatenate([index, index[:, -1:]], axis=1)
    total = index[0::2, 0::2].astype(np.uint64 if index.dtype.itemsize > 2 else np.uint32)
    total += index[1::2, 0::2]
    total += index[0::2, 1::2]
    total += index[1::2, 1::2]
    total += 2
    total >>= 2
    return total.astype(index.dtype)


def _gather_rows(lut: np.ndarray, source: np.ndarray, target: np.ndarray) -> None:
    """``target = lut[source]`` for a 2-D (possibly strided) source, in row chunks."""
    if source.size == 0:
        return
    rows, cols = source.shape
    step = max(1, _GATHER_CHUNK // max(cols, 1))
    scratch = np.empty((min(step, rows), cols), dtype=np.intp)
    for start in range(0, rows, step):
        stop = min(start + step, rows)
        chunk = scratch[: stop - start]
        np.copyto(chunk, source[start:stop], casting="unsafe")
        np.take(lut, chunk, out=target[start:stop], mode="clip")


def _describe(window: Window) -> str:
    """``"40/400"`` (center/width), with the explanation in parentheses when there is one."""
    text = f"{float(window.center):g}/{float(window.width):g}"
    return f"{text} ({window.explanation})" if window.explanation else text


# ------------------------------------------------------------------------ view marks


def view_marks(ref: ImageRef, decoded: Any = None, frame: int = 0) -> list[str]:
    """Short marks the image view must draw over an image that is shown partially or
    altered, so that a reader cannot mistake it for the whole original (Qt-free).

    Parameters
    ----------
    ref
        The image, from :func:`viewer.loader.scan`.
    decoded
        Its :class:`viewer.pixels.DecodedImage` when decoded (its ``warnings`` say whether
        colour was really converted), or None.
    frame
        The 0-based frame (page) shown.

    Returns
    -------
    list[str]
        In this order, each when it applies:

        * ``"frame 1 of 12"`` (``"page 1 of 3"`` for a multi-page image file): only one
          frame of a multi-frame image is shown;
        * ``"LOSSY"``, ``"LOSSY 10:1"`` (Lossy Image Compression Ratio (0028,2112); several
          steps as ``"LOSSY 10:1, 2.5:1"``): the pixels went through lossy compression
          (``ImageRef.lossy``: Lossy Image Compression (0028,2110) ``01``, a lossy transfer
          syntax, or a JPEG file);
        * ``"colour shown as grey"``: a colour image (RGB, YBR, palette) is displayed as
          its luminance. After decoding, only when the channels really differed (an RGB
          file holding a grey image gets no mark).
    """
    marks: list[str] = []
    spec = getattr(decoded, "spec", None) or ref.spec
    frames = ref.spec.number_of_frames if ref.spec is not None else 1
    if spec is not None and spec.number_of_frames > frames:
        frames = spec.number_of_frames
    if frames > 1:
        word = "page" if ref.kind == "image" else "frame"
        marks.append(f"{word} {frame + 1} of {frames}")
    if ref.lossy:
        ratios = ", ".join(f"{r:.3g}:1" for r in ref.lossy_ratios)  # 17.401 → 17.4:1
        marks.append(f"LOSSY {ratios}" if ratios else "LOSSY")
    if decoded is not None:
        colour = any(str(w).startswith("colour (") for w in getattr(decoded, "warnings", []))
    else:
        colour = ref.spec is not None and ref.spec.photometric in COLOUR_PHOTOMETRICS
    if colour:
        marks.append("colour shown as grey")
    return marks


#: Photometric interpretations shown as luminance (:data:`viewer.pixels.COLOUR`).
COLOUR_PHOTOMETRICS = frozenset({"RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT",
                                 "YBR_PARTIAL_420", "PALETTE COLOR"})
