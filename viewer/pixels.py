"""Pixel specs from image headers, and lazy, thread-safe pixel decoding (Qt-free).

Two jobs:

* :func:`spec_from_dataset` / :func:`spec_for_image` collect every header value the
  display pipeline (:mod:`viewer.display`) needs into a :class:`viewer.model.PixelSpec`.
* :func:`decode` reads the stored values of one frame of an :class:`ImageRef` found by
  :func:`viewer.loader.scan`, on demand.

Stored values
-------------
:func:`decode` returns *stored* values (PS3.5 8.1.1): no Modality LUT, rescale, VOI or
presentation transform is applied. The bits outside Bits Stored are cleared and the
value is shifted down when High Bit is not ``BitsStored - 1``; signed data (Pixel
Representation 1, PS3.3 C.7.6.3.1.3) is sign-extended from its Bits Stored, whatever the
transfer syntax and whatever pydicom did. The dtype follows Bits Stored: ``uint8`` (≤ 8),
``uint16`` (≤ 16), ``uint32`` (> 16); signed: ``int16`` (≤ 16) or ``int32``.

Colour images (RGB, YBR_*, PALETTE COLOR; PS3.3 C.7.6.3.1.2) are shown as grayscale:
decoded to RGB by pydicom (YBR → RGB, palette applied), then converted to 8-bit luminance
``Y = 0.299 R + 0.587 G + 0.114 B`` (ITU-R BT.601, the Y of YBR_FULL); the returned spec
is then MONOCHROME2, 8 bits, with no windows or LUTs. An RGB image whose three channels
are identical is a grayscale image stored as colour: one channel is used and no warning
is given.

Plain image files (PNG, JPEG, TIFF, BMP) are read with Pillow: 8-bit gray stays
``uint8``; 16-bit gray (``I;16``) stays ``uint16`` with Bits Stored 16; palette images
are expanded; colour images follow the rule above (Pillow's ITU-R 601-2 luma); alpha is
ignored. The EXIF Orientation tag (0x0112) is applied, so the matrix is the one a photo
viewer shows, and :func:`spec_for_image` reports rows/columns after that rotation.

Refusals
--------
Failures raise :class:`PixelError`, whose message names the file and the reason:

* pixel data shorter than the header declares (a truncated file, or Rows/Columns/Number of
  Frames larger than the data): refused with ``"pixel data is N bytes, expected M for
  R×C×B-bit"``; partial images are never shown padded, since a silently incomplete
  radiograph could be misread;
* a transfer syntax that no installed plugin decodes: the message gives the transfer
  syntax name and UID and what to install (pydicom's decoder registry, e.g. ``python-gdcm``
  for 12-bit JPEG Extended, which Pillow cannot read and pylibjpeg-libjpeg fails on);
* a frame index outside ``0 .. NumberOfFrames - 1``;
* anything a decoder raises on corrupt data, including a Rust panic in a pyo3-based
  codec (``pyo3_runtime.PanicException`` derives from ``BaseException``, not
  ``Exception``; see :func:`is_recoverable`): the message says the data is corrupt when
  every installed plugin failed on the data itself, and names what to install only when
  one refused the variant as unsupported.

RLE Lossless is decoded with pydicom's own (numpy) RLE plugin: pylibjpeg-rle panics
("index out of bounds") on a segment that decodes longer than the frame, and a Rust
panic prints its message and backtrace to stderr before Python sees it. pydicom's plugin
raises an ordinary error instead (about 0.15 s for a 5-megapixel 16-bit frame).

Warnings
--------
pydicom and Pillow report header oddities with :mod:`warnings`. Calls into them are made
inside :func:`capture_warnings`, which records those warnings so that they become
``ImageRef.warnings`` / ``DecodedImage.warnings`` (and never print to the console or fail
the test suite). :func:`warnings.catch_warnings` swaps process-wide state, so every such
block holds one module lock: pydicom/Pillow calls from different threads are serialized
(decoding work on numpy arrays after the call is not). Deprecation warnings are re-issued,
not recorded, so that API misuse still surfaces. Recorded messages go through
:func:`clean_warning`, which drops values of VRs that can hold patient data. (pydicom also
logs these messages on its ``"pydicom"`` logger; the application decides that logger's
level.)

Thread safety
-------------
No module state besides that lock: :func:`decode` and :func:`spec_from_dataset` may be
called from any number of worker threads.
"""

from __future__ import annotations

import logging
import math
import os
import re
import struct
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from pydicom import dcmread
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.pixels import apply_color_lut, get_decoder, pixel_array
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RLELossless,
)

from viewer.logs import file_ref
from viewer.model import ImageRef, LutData, PixelSpec, Window

log = logging.getLogger(__name__)

#: Pillow formats accepted as plain images.
IMAGE_FORMATS = frozenset({"PNG", "JPEG", "TIFF", "BMP"})

#: Pixel Data (7FE0,0010), Float Pixel Data (7FE0,0008), Double Float Pixel Data
#: (7FE0,0009), PS3.3 C.7.6.3.
PIXEL_DATA_TAGS = {0x7FE00010: "Pixel Data", 0x7FE00008: "Float Pixel Data",
                   0x7FE00009: "Double Float Pixel Data"}

#: VOI LUT Function (0028,1056) enumerated values, PS3.3 C.11.2.1.3.
VOI_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")

#: Photometric interpretations shown directly as grayscale.
MONOCHROME = ("MONOCHROME1", "MONOCHROME2")
#: Colour photometric interpretations converted to luminance (PS3.3 C.7.6.3.1.2).
COLOUR = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "YBR_PARTIAL_420",
          "PALETTE COLOR")

#: What to install for each pydicom decoding plugin (pydicom's plugin names).
PLUGIN_PACKAGES = {
    "gdcm": "python-gdcm",
    "pylibjpeg": "pylibjpeg",
    "pyjpegls": "pyjpegls",
    "pillow": "pillow",
}

#: The pydicom plugin that decodes RLE Lossless (see the module notes); "" lets pydicom
#: choose (pylibjpeg-rle first when installed).
RLE_PLUGIN = "pydicom"

_WARNINGS_LOCK = threading.RLock()


def is_recoverable(exc: BaseException) -> bool:
    """True for a failure that belongs to one file: any ``Exception``, and the
    ``PanicException`` of pyo3-based decoders (a Rust panic; it derives from
    ``BaseException``). False for ``KeyboardInterrupt``, ``SystemExit`` and
    ``GeneratorExit``, which must propagate."""
    if isinstance(exc, Exception):
        return True
    kind = type(exc)
    return kind.__name__ == "PanicException" and kind.__module__ == "pyo3_runtime"


def failure_text(exc: BaseException) -> str:
    """An unexpected failure for one file in words: a decoder panic is named as such
    (the data is corrupt), other exceptions by type and (shortened) message."""
    if isinstance(exc, PixelError):
        return exc.reason
    if type(exc).__name__ == "PanicException":
        return f"a decoder crashed on the data, which is corrupt ({_short(exc)})"
    return f"{type(exc).__name__}: {_short(exc)}"


class PixelError(Exception):
    """Pixels of a file cannot be read; ``str(err)`` names the file and the reason.

    Parameters
    ----------
    path
        The file.
    reason
        Why, in words a user understands (without the file name).
    """

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass
class DecodedImage:
    """One decoded frame.

    Attributes
    ----------
    stored
        2-D stored values (rows, columns), masked to Bits Stored and sign-extended
        (``uint8``, ``uint16``, ``uint32``, ``int16`` or ``int32``; see the module notes).
    spec
        The header values for this frame; for colour input, a MONOCHROME2 8-bit spec.
    warnings
        Notes about what is shown (e.g. colour converted to luminance).
    """

    stored: np.ndarray
    spec: PixelSpec
    warnings: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- warnings


@contextmanager
def capture_warnings() -> Iterator[list[str]]:
    """Record warnings raised in the block; the yielded list is filled when it exits.

    Deprecation warnings (``DeprecationWarning``, ``PendingDeprecationWarning``,
    ``FutureWarning``) are re-issued instead, so that they still reach the developer.
    Messages are de-duplicated, in order. Holds a module lock for the duration (see the
    module notes on thread safety).
    """
    messages: list[str] = []
    with _WARNINGS_LOCK:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                yield messages
            finally:
                recorded = list(caught)
        for w in recorded:
            if issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning,
                                       FutureWarning)):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
                continue
            text = clean_warning(str(w.message))
            if text and text not in messages:
                messages.append(text)


#: VRs whose values may carry patient data (names, IDs, dates, free text).
_TEXT_VRS = frozenset({"AE", "AS", "DA", "DT", "LO", "LT", "PN", "SH", "ST", "TM", "UC",
                       "UR", "UT"})
_INVALID_VALUE = re.compile(r"^Invalid value for VR (\w\w): '(.*)'\.", re.DOTALL)


def clean_warning(message: str) -> str:
    """Shorten pydicom's "Invalid value for VR …" warnings (no link to the standard) and
    drop the offending value when its VR can hold patient data (PN, LO, DA, …), so that
    warnings shown to users or written anywhere never carry names or IDs."""
    text = " ".join(message.split())
    match = _INVALID_VALUE.match(text)
    if match:
        vr, value = match.groups()
        shown = "(value not shown)" if vr in _TEXT_VRS else f"'{value}'"
        return f"Invalid value for VR {vr}: {shown}"
    return text


# ------------------------------------------------------------------------ header values


def _element_value(ds: Dataset, tag: int) -> Any:
    """Value of ``tag`` in ``ds``, or None; raw bytes when pydicom cannot convert it."""
    if tag not in ds:
        return None
    try:
        return ds[tag].value
    except Exception as exc:  # the message may quote the value: log its type only
        log.debug("element %08X not convertible (%s); using raw bytes", tag,
                  type(exc).__name__)
        raw = ds.get_item(tag, keep_deferred=True)
        return raw.value if isinstance(raw, RawDataElement | DataElement) else None


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, bytes | bytearray):
        text = bytes(value).decode("latin-1").strip(" \0")
        return [] if text == "" else text.split("\\")
    if isinstance(value, MultiValue | list | tuple):
        return [bytes(v).decode("latin-1").strip(" \0") if isinstance(v, bytes | bytearray)
                else v for v in value]
    if isinstance(value, str) and value.strip() == "":
        return []
    return [value]


def _floats(ds: Dataset, tag: int) -> list[float]:
    """Decimal-string values (DS, or UN bytes holding DS text), PS3.5 6.2.

    Unparsable entries become NaN (logged at DEBUG) so that multi-valued pairs stay
    aligned; an element that is absent or empty gives ``[]``.
    """
    value = _element_value(ds, tag)
    if isinstance(value, str) and "\\" in value:
        value = value.split("\\")
    out = []
    for item in _as_list(value):
        try:
            number = float(str(item).strip(" \0"))
        except ValueError:
            log.debug("unparsable numeric value %r in %08X", item, tag)
            number = math.nan
        out.append(number)
    return out


def _float(ds: Dataset, tag: int, default: float) -> float:
    values = [v for v in _floats(ds, tag) if math.isfinite(v)]
    return values[0] if values else default


def _ints16(ds: Dataset, tag: int, little_endian: bool = True) -> list[int]:
    """US/SS values as given (US 0..65535, SS may be negative); UN/OB bytes are unpacked
    as 16-bit words in the data set's byte order."""
    value = _element_value(ds, tag)
    if isinstance(value, bytes | bytearray):
        count = len(value) // 2
        return list(struct.unpack(("<" if little_endian else ">") + "H" * count,
                                  bytes(value)[: 2 * count]))
    out = []
    for item in _as_list(value):
        try:
            out.append(int(item))
        except (TypeError, ValueError):
            log.debug("unparsable integer value %r in %08X", item, tag)
    return out


def int_value(ds: Dataset, keyword_or_tag: str | int, default: int | None = None) -> int | None:
    """An integer value (US, IS, or IS text that holds e.g. ``"1.0"``)."""
    tag = keyword_or_tag if isinstance(keyword_or_tag, int) else _tag(keyword_or_tag)
    value = _element_value(ds, tag)
    items = _as_list(value)
    if not items:
        return default
    item = items[0]
    if isinstance(item, bytes | bytearray):
        return default
    try:
        return int(item)
    except (TypeError, ValueError):
        try:
            return int(float(str(item).strip()))
        except ValueError:
            log.debug("unparsable integer %r in %s", item, keyword_or_tag)
            return default


def text(ds: Dataset, keyword: str) -> str:
    """A value as stripped text (multi-valued: joined with ``\\``); ``""`` when absent."""
    value = _element_value(ds, _tag(keyword))
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("latin-1").strip(" \0")
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(str(v) for v in value).strip()
    return str(value).strip(" \0")


_TAGS: dict[str, int] = {}


def _tag(keyword: str) -> int:
    from pydicom.datadict import tag_for_keyword

    tag = _TAGS.get(keyword)
    if tag is None:
        tag = tag_for_keyword(keyword)
        if tag is None:
            raise KeyError(keyword)
        _TAGS[keyword] = tag  # idempotent cache of a constant table: thread-safe
    return tag


def _first_item(ds: Dataset | None, keyword: str) -> Dataset | None:
    if ds is None:
        return None
    value = _element_value(ds, _tag(keyword))
    if isinstance(value, list | tuple) or hasattr(value, "__getitem__"):
        try:
            item = value[0]
        except (IndexError, TypeError, KeyError):
            return None
        return item if isinstance(item, Dataset) else None
    return None


def _functional_groups(ds: Dataset, frame: int) -> list[Dataset]:
    """Shared and this frame's Per-Frame Functional Groups items (PS3.3 C.7.6.16)."""
    groups = []
    shared = _first_item(ds, "SharedFunctionalGroupsSequence")
    if shared is not None:
        groups.append(shared)
    per_frame = _element_value(ds, _tag("PerFrameFunctionalGroupsSequence"))
    if per_frame is not None:
        try:
            item = per_frame[frame]
        except (IndexError, TypeError):
            item = None
        if isinstance(item, Dataset):
            groups.append(item)
    return groups


def _little_endian(ds: Dataset) -> bool:
    try:
        encoding = ds.original_encoding
    except AttributeError:
        return True
    return True if encoding[1] is None else bool(encoding[1])


def _signed16(value: int, signed: bool) -> int:
    """A US/SS value interpreted per Pixel Representation: the 16-bit word is read as
    two's complement when ``signed`` (so US 63536 → -2000), unsigned otherwise."""
    word = value & 0xFFFF
    if signed and word >= 0x8000:
        return word - 0x10000
    return word


def _parse_lut(item: Dataset, *, signed: bool, little_endian: bool,
               what: str) -> LutData | None:
    """A Modality or VOI LUT Sequence item (PS3.3 C.11.1.1.1, C.11.2.1.1) as LutData.

    LUT Descriptor: number of entries (0 means 65536), first stored value mapped (US or
    SS after Pixel Representation), bits per entry. LUT Data is US (a list of values)
    or OW (16-bit words in the data set's byte order); an 8-bit LUT packed two entries
    per word (seen in the wild) is recognised when its byte length equals the number of
    entries. Returns None (logged at DEBUG) for an unusable item.
    """
    desc = _ints16(item, 0x00283002, little_endian)
    if len(desc) != 3:
        log.debug("%s: LUT Descriptor has %d values, not 3; LUT ignored", what, len(desc))
        return None
    entries = (desc[0] & 0xFFFF) or 65536
    first = _signed16(desc[1], signed)
    bits = desc[2] & 0xFFFF
    value = _element_value(item, 0x00283006)
    if isinstance(value, bytes | bytearray):
        raw = bytes(value)
        if bits <= 8 and len(raw) in (entries, entries + 1) and len(raw) < 2 * entries:
            data = np.frombuffer(raw[:entries], dtype=np.uint8).astype(np.uint16)
        else:
            dtype = np.dtype("<u2" if little_endian else ">u2")
            data = np.frombuffer(raw[: len(raw) // 2 * 2], dtype=dtype).astype(np.uint16)
    else:
        values = [int(v) & 0xFFFF for v in _as_list(value)]
        data = np.asarray(values, dtype=np.uint16)
    if data.size == 0:
        log.debug("%s: LUT Data is empty; LUT ignored", what)
        return None
    if data.size != entries:
        log.debug("%s: LUT Data has %d entries, descriptor says %d", what, data.size,
                  entries)
        data = data[:entries]
    return LutData(
        first_mapped=first,
        bits=bits,
        data=data,
        explanation=text(item, "LUTExplanation"),
        lut_type=text(item, "ModalityLUTType"),
    )


def _windows(source: Dataset) -> list[Window]:
    """Window Center/Width pairs of one data set (PS3.3 C.11.2.1.2), with explanations
    and the VOI LUT Function (C.11.2.1.3; one function for all windows)."""
    centers = _floats(source, 0x00281050)
    widths = _floats(source, 0x00281051)
    if not centers or 0x00281051 not in source:
        if centers or widths:
            log.debug("window center without width (or vice versa); no window")
        return []
    if not widths:
        widths = [math.nan]  # present but empty: kept, display falls back
    count = max(len(centers), len(widths))
    if len(centers) != len(widths):
        log.debug("%d window centers but %d widths", len(centers), len(widths))
    centers += [math.nan] * (count - len(centers))
    widths += [math.nan] * (count - len(widths))
    explanations = [str(e).strip() for e in _as_list(_element_value(source, 0x00281055))]
    explanations += [""] * (count - len(explanations))
    function = text(source, "VOILUTFunction").upper() or "LINEAR"
    if function not in VOI_FUNCTIONS:
        log.debug("unknown VOI LUT Function %r kept as given", function)
    return [Window(c, w, e, function) for c, w, e in zip(centers, widths, explanations,
                                                          strict=False)]


def spec_from_dataset(ds: Dataset, frame: int = 0) -> PixelSpec:
    """Collect the display-relevant header values of a DICOM data set.

    Parameters
    ----------
    ds
        A data set, typically read with ``stop_before_pixels=True``.
    frame
        0-based frame whose Per-Frame Functional Groups item is used for values that
        only exist there (Enhanced objects, PS3.3 C.7.6.16).

    Returns
    -------
    PixelSpec

    Raises
    ------
    ValueError
        When Rows or Columns (0028,0010/0011) are missing or not positive.

    Notes
    -----
    * Image Pixel module, PS3.3 C.7.6.3: Bits Stored defaults to Bits Allocated, High Bit
      to ``BitsStored - 1``; a missing Photometric Interpretation to MONOCHROME2 (RGB for
      three samples).
    * Rescale Slope/Intercept/Type (C.11.1) and Window Center/Width/Explanation plus VOI LUT
      Function (C.11.2): the top-level elements, else the Pixel Value Transformation and
      Frame VOI LUT functional groups (C.7.6.16.2.9, C.7.6.16.2.10), Shared first, then
      this frame's Per-Frame item.
    * Values with VR UN (pydicom hands over bytes) are decoded as the dictionary VR would
      be. Unparsable window values become NaN in their Window (kept so that pairs stay
      aligned; :mod:`viewer.display` leaves such windows out), a missing or unparsable
      rescale falls back to 1/0. WindowWidth 0 is kept as is.
    * Modality LUT Sequence (C.11.1) and Rescale may both be present in a faulty file;
      both are reported, and the display pipeline gives the LUT precedence like pydicom's
      ``apply_modality_lut``.
    * Pixel Padding Value / Range Limit (C.7.5.1.1.2, C.7.6.3.1.7) are US or SS after
      Pixel Representation; they are returned as signed numbers when it is 1, whichever
      VR the file used.
    * Pixel Spacing (0028,0030), else the Pixel Measures functional group, else Imager
      Pixel Spacing (0018,1164: at the detector, not corrected for magnification).

    pydicom converts element values lazily and may warn about invalid ones here; callers
    that must not emit warnings wrap the call in :func:`capture_warnings` (the loader and
    :func:`decode` do).
    """
    rows = int_value(ds, "Rows")
    columns = int_value(ds, "Columns")
    if not rows or not columns or rows <= 0 or columns <= 0:
        raise ValueError("the header has no usable Rows/Columns (0028,0010/0011)")
    bits_allocated = int_value(ds, "BitsAllocated", 16) or 16
    bits_stored = int_value(ds, "BitsStored", bits_allocated) or bits_allocated
    high_bit = int_value(ds, "HighBit", bits_stored - 1)
    if high_bit is None or high_bit < 0:
        high_bit = bits_stored - 1
    pixel_representation = 1 if int_value(ds, "PixelRepresentation", 0) == 1 else 0
    samples = int_value(ds, "SamplesPerPixel", 1) or 1
    photometric = text(ds, "PhotometricInterpretation").upper()
    if not photometric:
        photometric = "RGB" if samples == 3 else "MONOCHROME2"
    frames = int_value(ds, "NumberOfFrames", 1)
    frames = 1 if frames is None or frames < 1 else frames
    signed = pixel_representation == 1
    little = _little_endian(ds)
    groups = _functional_groups(ds, frame)

    rescale_source: Dataset = ds
    if 0x00281053 not in ds and 0x00281052 not in ds:
        for group in groups:
            item = _first_item(group, "PixelValueTransformationSequence")
            if item is not None:
                rescale_source = item
                break
    voi_source: Dataset = ds
    if 0x00281050 not in ds:
        for group in groups:
            item = _first_item(group, "FrameVOILUTSequence")
            if item is not None:
                voi_source = item
                break

    modality_lut = None
    item = _first_item(ds, "ModalityLUTSequence")
    if item is not None:
        modality_lut = _parse_lut(item, signed=signed, little_endian=little,
                                  what="Modality LUT")
    voi_luts = []
    voi_seq = _element_value(ds, _tag("VOILUTSequence"))
    for number, voi_item in enumerate(voi_seq or [], start=1):
        if isinstance(voi_item, Dataset):
            lut = _parse_lut(voi_item, signed=signed, little_endian=little,
                             what=f"VOI LUT {number}")
            if lut is not None:
                voi_luts.append(lut)

    padding = _ints16(ds, 0x00280120, little)
    padding_limit = _ints16(ds, 0x00280121, little)

    spacing = _spacing(ds, groups)
    return PixelSpec(
        rows=rows,
        columns=columns,
        bits_allocated=bits_allocated,
        bits_stored=bits_stored,
        high_bit=high_bit,
        pixel_representation=pixel_representation,
        samples_per_pixel=samples,
        photometric=photometric,
        number_of_frames=frames,
        rescale_slope=_float(rescale_source, 0x00281053, 1.0),
        rescale_intercept=_float(rescale_source, 0x00281052, 0.0),
        rescale_type=text(rescale_source, "RescaleType"),
        modality_lut=modality_lut,
        windows=_windows(voi_source),
        voi_luts=voi_luts,
        presentation_lut_shape=text(ds, "PresentationLUTShape").upper(),
        padding_value=_signed16(padding[0], signed) if padding else None,
        padding_range_limit=_signed16(padding_limit[0], signed) if padding_limit else None,
        pixel_spacing=spacing,
    )


def _spacing(ds: Dataset, groups: list[Dataset]) -> tuple[float, float] | None:
    sources: list[Dataset] = [ds]
    for group in groups:
        item = _first_item(group, "PixelMeasuresSequence")
        if item is not None:
            sources.append(item)
    for source, tag in [(s, 0x00280030) for s in sources] + [(ds, 0x00181164)]:
        values = _floats(source, tag)
        if len(values) >= 2 and all(math.isfinite(v) and v > 0 for v in values[:2]):
            return values[0], values[1]
    return None


# --------------------------------------------------------------------- reading headers


@dataclass
class PixelDataInfo:
    """Where the pixel data element of a file is, found without reading its value.

    Attributes
    ----------
    tag
        0x7FE00010 (Pixel Data), 0x7FE00008 (Float) or 0x7FE00009 (Double Float).
    length
        Declared value length in bytes; None for undefined length (encapsulated).
    offset
        File offset of the value; -1 when unknown (deflated data sets).
    available
        Bytes in the file from ``offset`` to its end (None when unknown).
    """

    tag: int
    length: int | None
    offset: int
    available: int | None


@dataclass
class DicomHeader:
    """A DICOM file's header, read without its pixel data.

    Attributes
    ----------
    ds
        The data set up to (not including) the pixel data.
    transfer_syntax
        From the File Meta Information, or deduced from the encoding pydicom found.
    transfer_syntax_from_meta
        False when the file has no (0002,0010) Transfer Syntax UID.
    has_preamble
        True when the file starts with the 128-byte preamble and ``DICM``.
    pixel
        The pixel data element, or None when the file has none.
    """

    ds: Dataset
    transfer_syntax: UID
    transfer_syntax_from_meta: bool
    has_preamble: bool
    pixel: PixelDataInfo | None


#: Even groups a bare (no preamble) data set plausibly starts with.
_FIRST_GROUPS = {0x0002, 0x0004, 0x0008, 0x0010, 0x0018, 0x0020, 0x0028}


def sniff_dicom(head: bytes) -> bool:
    """True when ``head`` (the first 132+ bytes of a file) looks like DICOM.

    Either the DICOM File Format prefix ``DICM`` at offset 128 (PS3.10 7.1), or a bare
    data set whose first tag is in a group such files start with (0002 File Meta, 0008
    Identifying, ...), little or big endian.
    """
    if len(head) >= 132 and head[128:132] == b"DICM":
        return True
    if len(head) < 8:
        return False
    for order in ("<", ">"):
        group, element = struct.unpack(order + "HH", head[:4])
        if group in _FIRST_GROUPS and element < 0x1000:
            return True
    return False


def _deduced_transfer_syntax(ds: Dataset) -> UID:
    implicit, little = ds.original_encoding
    if implicit:
        return ImplicitVRLittleEndian
    return ExplicitVRLittleEndian if little in (True, None) else ExplicitVRBigEndian


def read_dicom_header(path: str | os.PathLike[str]) -> DicomHeader:
    """Read a DICOM file's header and locate its pixel data without reading it.

    pydicom's ``stop_before_pixels`` leaves the file positioned at the pixel data
    element's tag; its 8–12 byte header is then parsed here (PS3.5 7.1) to learn the
    declared length. Deflated data sets (PS3.5 A.5) are inflated whole instead.

    Raises
    ------
    PixelError
        When the file is not DICOM (no ``DICM`` prefix and no recognisable elements),
        is empty or truncated before any data element, or pydicom cannot parse it.
    """
    path = Path(path)
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(132)
        if not head:
            raise PixelError(path, "empty file")
        if not sniff_dicom(head):
            raise PixelError(path, "not a DICOM file (no DICM prefix, no DICOM elements)")
        has_preamble = len(head) >= 132 and head[128:132] == b"DICM"
        f.seek(0)
        try:
            ds = dcmread(f, stop_before_pixels=True, force=True)
        except Exception as exc:
            raise PixelError(path, f"DICOM header cannot be read ({_short(exc)})") from exc
        position = f.tell()
        meta_ts = text(ds.file_meta, "TransferSyntaxUID") if ds.file_meta else ""
        ts = UID(meta_ts) if meta_ts else _deduced_transfer_syntax(ds)
        if len(ds) == 0:
            what = "only a File Meta Information header" if ds.file_meta else "no data"
            raise PixelError(path, f"truncated or empty DICOM file: {what}, no data set")
        if not any(int(tag) >> 16 in (0x0008, 0x0010, 0x0020, 0x0028) for tag in ds.keys()):
            raise PixelError(path, "not a DICOM image: no elements of groups 0008, 0010, 0020 "
                                   "or 0028 found")
        if ts == DeflatedExplicitVRLittleEndian:
            pixel = _deflated_pixel_info(f)
        else:
            pixel = _pixel_info(f, position, size, ts, ds)
    return DicomHeader(ds, ts, bool(meta_ts), has_preamble, pixel)


def _pixel_info(f: Any, position: int, size: int, ts: UID, ds: Dataset) -> PixelDataInfo | None:
    implicit, little = ds.original_encoding
    if implicit is None:
        implicit, little = ts.is_implicit_VR, ts.is_little_endian
    order = "<" if little in (True, None) else ">"
    f.seek(position)
    raw = f.read(12)
    if len(raw) < 4:
        return None
    group, element = struct.unpack(order + "HH", raw[:4])
    tag = (group << 16) | element
    if tag not in PIXEL_DATA_TAGS:
        return None
    if len(raw) < 8:
        return PixelDataInfo(tag, 0, size, 0)
    if not implicit and not (raw[4:6].isalpha() and raw[4:6].isupper()):
        implicit = True  # an implicit VR element in an explicit VR file (pydicom copes)
    if implicit:
        (length,) = struct.unpack(order + "I", raw[4:8])
        offset = position + 8
    elif raw[4:6] in (b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"UN"):
        if len(raw) < 12:
            return PixelDataInfo(tag, 0, size, 0)
        (length,) = struct.unpack(order + "I", raw[8:12])
        offset = position + 12
    else:
        (length,) = struct.unpack(order + "H", raw[6:8])
        offset = position + 8
    return PixelDataInfo(tag, None if length == 0xFFFFFFFF else length, offset,
                         max(size - offset, 0))


def _deflated_pixel_info(f: Any) -> PixelDataInfo | None:
    f.seek(0)
    full = dcmread(f, force=True)
    for tag in PIXEL_DATA_TAGS:
        if tag in full:
            elem = full.get_item(tag, keep_deferred=True)
            value = elem.value if elem is not None else None
            undefined = bool(getattr(elem, "is_undefined_length", False))
            length = None if undefined else len(value or b"")
            return PixelDataInfo(tag, length, -1, None)
    return None


def _short(exc: BaseException) -> str:
    text_ = " ".join(str(exc).split())
    return (text_[:200] + "…") if len(text_) > 200 else (text_ or type(exc).__name__)


# ------------------------------------------------------------------------ pixel checks


def expected_pixel_bytes(spec: PixelSpec) -> int:
    """Bytes of natively encoded pixel data for ``spec`` (PS3.5 8.1.1, 8.2), without
    the padding byte that makes an odd length even. YBR_FULL_422 holds two samples
    per pixel (PS3.3 C.7.6.3.1.2); Bits Allocated 1 is bit-packed."""
    pixels = spec.rows * spec.columns * spec.number_of_frames
    samples = spec.samples_per_pixel
    if spec.photometric == "YBR_FULL_422" and samples == 3:
        return pixels * 2 * max(spec.bits_allocated // 8, 1)
    if spec.bits_allocated == 1:
        return (pixels * samples + 7) // 8
    return pixels * samples * (spec.bits_allocated // 8)


def describe_matrix(spec: PixelSpec) -> str:
    """``"512×512×16-bit"`` with ``×3 samples`` / ``×N frames`` when relevant."""
    words = f"{spec.rows}×{spec.columns}×{spec.bits_allocated}-bit"
    if spec.samples_per_pixel > 1:
        words += f"×{spec.samples_per_pixel} samples"
    if spec.number_of_frames > 1:
        words += f"×{spec.number_of_frames} frames"
    return words


def codec_problem(ts: UID) -> str | None:
    """Why pixel data in transfer syntax ``ts`` cannot be decoded here, or None.

    Uses pydicom's decoder registry: an unknown or unsupported syntax, or one whose
    plugins all miss dependencies (the message says what to install).
    """
    try:
        decoder = get_decoder(ts)
    except NotImplementedError:
        return f"unsupported transfer syntax {_ts_words(ts)}: pydicom has no decoder for it"
    if decoder.is_available:
        return None
    return (f"no decoder installed for {_ts_words(ts)}; "
            f"{_install_hint(decoder.missing_dependencies)}")


def _ts_words(ts: UID) -> str:
    """``"JPEG Baseline (Process 1) (1.2.840.10008.1.2.4.50)"``."""
    if ts.name == str(ts):
        return f"{ts} (not a known transfer syntax)"
    return f"{ts.name} ({ts})"


def _install_hint(missing: list[str]) -> str:
    """'install python-gdcm (pydicom plugin gdcm, requires gdcm>=3.0.10)' from pydicom's
    ``missing_dependencies``."""
    choices = []
    for entry in missing:
        plugin, _, needs = entry.partition(" - ")
        plugin = plugin.strip()
        package = PLUGIN_PACKAGES.get(plugin, plugin)
        words = f"pydicom plugin {plugin!r}" + (f", {needs.strip()}" if needs else "")
        choices.append(f"{package} ({words})")
    if not choices:
        return "no other decoding plugin is known to pydicom"
    return "install " + " or ".join(choices)


def check_pixel_data(header: DicomHeader, spec: PixelSpec) -> tuple[str | None, list[str]]:
    """Compare the pixel data element with what the header declares.

    Returns
    -------
    (error, warnings)
        ``error`` is the reason the pixels cannot be shown (None when they can);
        ``warnings`` note oddities that do not prevent showing them.

    Notes
    -----
    Native transfer syntaxes: the declared length must hold ``Rows × Columns × Number of
    Frames × Samples × BitsAllocated/8`` bytes (:func:`expected_pixel_bytes`) and the file
    must hold the declared length; shorter data is refused (never padded). Extra bytes
    beyond the even-length padding are ignored with a warning. Encapsulated syntaxes
    (PS3.5 A.4) can only be checked for a codec and for data being present; corruption
    is found when decoding.
    """
    info = header.pixel
    warns: list[str] = []
    if info is None:
        return "no pixel data", warns
    if info.tag != 0x7FE00010:
        return (f"{PIXEL_DATA_TAGS[info.tag]} (floating-point pixels) is not supported",
                warns)
    ts = header.transfer_syntax
    problem = codec_problem(ts)
    if problem:
        return problem, warns
    if info.available is not None and info.length is not None and info.length > info.available:
        return (f"file is truncated: Pixel Data declares {info.length} bytes but only "
                f"{info.available} remain in the file"), warns
    if ts.is_encapsulated:
        if info.available == 0:
            return "file is truncated: no encapsulated pixel data after the header", warns
        return None, warns
    if info.length is None:
        return (f"Pixel Data has undefined length, which {_ts_words(ts)} does not allow "
                f"(encapsulated data with a wrong transfer syntax?)"), warns
    expected = expected_pixel_bytes(spec)
    if info.length < expected:
        return (f"pixel data is {info.length} bytes, expected {expected} for "
                f"{describe_matrix(spec)}"), warns
    if info.length > expected + (expected % 2):
        warns.append(f"pixel data is {info.length} bytes, {info.length - expected} more "
                     f"than the {expected} expected; the extra bytes are ignored")
    return None, warns


def header_problem(spec: PixelSpec) -> str | None:
    """A reason why pixels described by ``spec`` cannot be shown, or None."""
    if spec.photometric not in MONOCHROME + COLOUR:
        return f"Photometric Interpretation {spec.photometric!r} is not supported"
    if spec.bits_allocated not in (1, 8, 16, 32):
        return f"Bits Allocated {spec.bits_allocated} is not supported (1, 8, 16 or 32)"
    if not 1 <= spec.bits_stored <= spec.bits_allocated:
        return (f"Bits Stored {spec.bits_stored} does not fit Bits Allocated "
                f"{spec.bits_allocated}")
    if spec.high_bit >= spec.bits_allocated or spec.high_bit + 1 < spec.bits_stored:
        return (f"High Bit {spec.high_bit} is inconsistent with Bits Stored "
                f"{spec.bits_stored} / Bits Allocated {spec.bits_allocated}")
    if spec.photometric in MONOCHROME and spec.samples_per_pixel != 1:
        return f"{spec.photometric} with {spec.samples_per_pixel} samples per pixel"
    if spec.photometric in COLOUR and spec.photometric != "PALETTE COLOR" and \
            spec.samples_per_pixel != 3:
        return f"{spec.photometric} with {spec.samples_per_pixel} samples per pixel"
    return None


# ------------------------------------------------------------------------- conversion


def to_stored(arr: np.ndarray, spec: PixelSpec) -> np.ndarray:
    """Mask ``arr`` to Bits Stored (honouring High Bit) and sign-extend signed data.

    Parameters
    ----------
    arr
        Integer pixel values as decoded (any integer dtype; bits above High Bit may hold
        garbage, e.g. overlays in retired files, PS3.5 8.1.1).
    spec
        Bits Stored, High Bit and Pixel Representation.

    Returns
    -------
    numpy.ndarray
        ``uint8``/``uint16``/``uint32`` or ``int16``/``int32`` (see the module notes).
    """
    if arr.dtype.kind not in "iub":
        raise TypeError(f"integer pixel values expected, got {arr.dtype}")
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if arr.dtype.kind == "b":
        arr = arr.astype(np.uint8)
    bits = spec.bits_stored
    unsigned = arr.view(np.dtype(f"u{arr.dtype.itemsize}")) if arr.dtype.kind == "i" else arr
    shift = spec.high_bit + 1 - bits
    work = unsigned.astype(np.uint64 if bits > 31 else np.uint32)
    if shift > 0:
        work >>= shift
    work &= (1 << bits) - 1
    if spec.signed:
        wide = work.astype(np.int64)
        sign = 1 << (bits - 1)
        wide = (wide ^ sign) - sign
        return wide.astype(np.int16 if bits <= 16 else np.int32)
    if bits <= 8:
        return work.astype(np.uint8)
    if bits <= 16:
        return work.astype(np.uint16)
    return work.astype(np.uint32)


def luminance(rgb: np.ndarray, max_value: int) -> tuple[np.ndarray, bool]:
    """8-bit luminance of an RGB array (ITU-R BT.601 weights).

    Returns
    -------
    (uint8 array, converted)
        ``converted`` is False when the channels were identical (one is used).
    """
    rgb = np.asarray(rgb)
    scale = 255.0 / max_value if max_value != 255 else 1.0
    if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
        gray = rgb[..., 0]
        if scale == 1.0 and gray.dtype == np.uint8:
            return np.ascontiguousarray(gray), False
        return np.clip(np.rint(gray * scale), 0, 255).astype(np.uint8), False
    y = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
    return np.clip(np.rint(y * scale), 0, 255).astype(np.uint8), True


def _gray_spec(spec: PixelSpec) -> PixelSpec:
    return replace(
        spec, bits_allocated=8, bits_stored=8, high_bit=7, pixel_representation=0,
        samples_per_pixel=1, photometric="MONOCHROME2", rescale_slope=1.0,
        rescale_intercept=0.0, rescale_type="", modality_lut=None, windows=[], voi_luts=[],
        presentation_lut_shape="", padding_value=None, padding_range_limit=None,
    )


# ---------------------------------------------------------------------------- decoding


def decode(ref: ImageRef, frame: int = 0) -> DecodedImage:
    """Decode one frame of an image found by :func:`viewer.loader.scan`.

    Parameters
    ----------
    ref
        The image (DICOM or plain image file).
    frame
        0-based frame (multi-frame DICOM, multi-page TIFF).

    Returns
    -------
    DecodedImage

    Raises
    ------
    PixelError
        When ``ref.error`` is set, or the file cannot be decoded (see the module notes).
    """
    if ref.error:
        raise PixelError(ref.path, ref.error)
    try:
        if ref.kind == "image":
            return decode_image_file(ref.path, frame)
        return decode_dicom(ref.path, frame)
    except PixelError:
        raise
    except BaseException as exc:
        if not is_recoverable(exc):
            raise
        raise PixelError(ref.path, failure_text(exc)) from exc


def decode_dicom(path: str | os.PathLike[str], frame: int = 0) -> DecodedImage:
    """Decode one frame of a DICOM file to stored values (see :func:`decode`)."""
    path = Path(path)
    with capture_warnings() as caught:
        try:
            header = read_dicom_header(path)
        except OSError as exc:
            raise PixelError(path, f"cannot read the file ({_short(exc)})") from exc
        try:
            spec = spec_from_dataset(header.ds, frame=max(frame, 0))
        except ValueError as exc:
            raise PixelError(path, str(exc)) from exc
        problem = header_problem(spec)
        length_notes: list[str] = []
        if problem is None:
            problem, length_notes = check_pixel_data(header, spec)
        if problem:
            raise PixelError(path, problem)
        if not 0 <= frame < spec.number_of_frames:
            raise PixelError(path, f"frame {frame} requested, the file has frames 0.."
                                   f"{spec.number_of_frames - 1}")
        problem = codestream_problem(path, header, spec)
        if problem:
            raise PixelError(path, problem)
        colour = spec.photometric in COLOUR
        arr = _pixel_array(path, header, spec, frame,
                           raw=not colour or spec.photometric == "PALETTE COLOR")
        if spec.photometric == "PALETTE COLOR":
            try:
                arr = apply_color_lut(to_stored(arr, spec), header.ds)
            except BaseException as exc:
                if not is_recoverable(exc):
                    raise
                raise PixelError(path, f"palette colour lookup failed ({_short(exc)})") from exc
    notes = list(length_notes) + [f"pydicom: {m}" for m in caught]
    if arr.ndim == 3 and not colour:
        arr = arr[..., 0] if arr.shape[-1] == 1 else arr
    if colour:
        if spec.photometric == "PALETTE COLOR":
            max_value = 65535 if arr.dtype.itemsize > 1 else 255
        else:
            max_value = (1 << spec.bits_stored) - 1
            arr = to_stored(arr, replace(spec, pixel_representation=0))
        gray, converted = luminance(arr, max_value)
        if converted:
            notes.append(f"colour ({spec.photometric}) shown as grayscale luminance")
        return DecodedImage(gray, _gray_spec(spec), notes)
    if arr.ndim != 2:
        raise PixelError(path, f"decoded pixels have shape {arr.shape}, expected 2-D")
    return DecodedImage(to_stored(arr, spec), spec, notes)


def _pixel_array(path: Path, header: DicomHeader, spec: PixelSpec, frame: int, *,
                 raw: bool) -> np.ndarray:
    """One frame via pydicom.

    First from the open file (pydicom then reads only that frame's data) when the file's
    meta information and encoding agree; otherwise, or when that fails, from a fully
    read data set, where pydicom's per-element VR detection copes with files that mix
    encodings and the frame count is the one in ``spec``. pydicom's own clearing of
    unused bits is turned off (``correct_unused_bits=False``): it assumes High Bit =
    Bits Stored - 1, and :func:`to_stored` does the masking with High Bit honoured.
    """
    ts = header.transfer_syntax
    implicit, little = header.ds.original_encoding
    first_error: BaseException | None = None
    options: dict[str, Any] = {"raw": raw, "correct_unused_bits": False}
    if ts == RLELossless and RLE_PLUGIN:
        options["decoding_plugin"] = RLE_PLUGIN
    if (header.transfer_syntax_from_meta and ts != DeflatedExplicitVRLittleEndian
            and (implicit, little) == (ts.is_implicit_VR, ts.is_little_endian)):
        try:
            with path.open("rb") as f:
                return pixel_array(f, index=frame, **options)
        except BaseException as exc:
            if not is_recoverable(exc):
                raise
            log.debug("%s: direct decoding failed (%s); retrying from the data set",
                      file_ref(path), type(exc).__name__)
            first_error = exc
    try:
        with path.open("rb") as f:
            ds = dcmread(f, force=True)
        ds.file_meta.TransferSyntaxUID = ts
        if "NumberOfFrames" in ds or spec.number_of_frames > 1:
            ds.NumberOfFrames = spec.number_of_frames
        return pixel_array(ds, index=frame, **options)
    except BaseException as exc:
        if not is_recoverable(exc):
            raise
        raise PixelError(path, _decode_failure(ts, first_error or exc)) from exc


#: Transfer syntaxes whose fragments are JPEG 2000 codestreams (PS3.5 A.4.4, A.4.11).
_J2K_SYNTAXES = frozenset({"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91",
                           "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202",
                           "1.2.840.10008.1.2.4.203"})
#: Transfer syntaxes whose fragments are JPEG / JPEG-LS streams (PS3.5 A.4.1 – A.4.3).
_JPEG_SYNTAXES = frozenset({"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51",
                            "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70",
                            "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"})
#: JPEG start-of-frame markers (ITU-T T.81 B.1.1.3; SOF55 of JPEG-LS, T.87).
_SOF_MARKERS = frozenset({*range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xC9, 0xCC),
                          *range(0xCD, 0xD0), 0xF7})
#: Most tiles a JPEG 2000 codestream may have (Isot is 16 bits, ITU-T T.800 A.4.2).
_MAX_TILES = 65535


def _first_fragment_head(path: Path, header: DicomHeader, size: int = 8192) -> bytes:
    """The first ``size`` bytes of the first fragment of encapsulated pixel data (after
    the Basic Offset Table item, PS3.5 A.4), or b"" when it cannot be located."""
    info = header.pixel
    if info is None or info.offset < 0 or info.length is not None:
        return b""
    with path.open("rb") as f:
        f.seek(info.offset)
        item = f.read(8)
        if len(item) < 8 or item[:4] != b"\xfe\xff\x00\xe0":
            return b""
        f.seek(struct.unpack("<I", item[4:])[0], os.SEEK_CUR)  # skip the offset table
        item = f.read(8)
        if len(item) < 8 or item[:4] != b"\xfe\xff\x00\xe0":
            return b""
        return f.read(min(size, struct.unpack("<I", item[4:])[0]))


def _j2k_size(head: bytes) -> tuple[int, int, int] | None:
    """(columns, rows, tiles) from a JPEG 2000 SIZ marker segment (T.800 A.5.1)."""
    at = head.find(b"\xff\x4f\xff\x51")
    if at < 0 or len(head) < at + 4 + 36:
        return None
    (xsiz, ysiz, xosiz, yosiz, xtsiz, ytsiz, xtosiz, ytosiz) = struct.unpack(
        ">8I", head[at + 8:at + 40])
    if xtsiz == 0 or ytsiz == 0 or xsiz <= xosiz or ysiz <= yosiz:
        return (0, 0, 0)
    tiles = -(-(xsiz - xtosiz) // xtsiz) * -(-(ysiz - ytosiz) // ytsiz)
    return xsiz - xosiz, ysiz - yosiz, tiles


def _jpeg_size(head: bytes) -> tuple[int, int] | None:
    """(columns, rows) from the first JPEG start-of-frame marker (T.81 B.2.2); rows 0
    means "defined by a DNL marker"."""
    if head[:2] != b"\xff\xd8":
        return None
    at = 2
    while at + 4 <= len(head):
        if head[at] != 0xFF:
            return None
        marker = head[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        (length,) = struct.unpack(">H", head[at + 2:at + 4])
        if marker in _SOF_MARKERS:
            if at + 9 > len(head):
                return None
            rows, cols = struct.unpack(">HH", head[at + 5:at + 9])
            return cols, rows
        at += 2 + length
    return None


def codestream_problem(path: Path, header: DicomHeader, spec: PixelSpec) -> str | None:
    """Why the first compressed frame must not be handed to a decoder, or None.

    A JPEG 2000 or JPEG stream whose own header declares a larger image than Rows ×
    Columns (a corrupt SIZ/SOF marker: 256 × 15,533,056 in a 256 × 1024 file), or a JPEG
    2000 stream with more than 65,535 tiles, made openjpeg run for minutes (the fuzzer's
    one hang); such a stream is corrupt and is refused before decoding. Streams that
    cannot be parsed here are left to the decoder.
    """
    ts = str(header.transfer_syntax)
    if ts not in _J2K_SYNTAXES and ts not in _JPEG_SYNTAXES:
        return None
    try:
        head = _first_fragment_head(path, header)
    except (OSError, struct.error):
        return None
    if ts in _J2K_SYNTAXES:
        found = _j2k_size(head)
        if found is None:
            return None
        cols, rows, tiles = found
        what = "the JPEG 2000 codestream's SIZ marker"
        if tiles == 0 or tiles > _MAX_TILES:
            return _corrupt(header.transfer_syntax,
                            f"{what} declares an impossible tiling ({tiles} tiles)")
    else:
        found_jpeg = _jpeg_size(head)
        if found_jpeg is None:
            return None
        cols, rows = found_jpeg
        what = "the JPEG frame header"
    if cols > spec.columns or rows > spec.rows:
        return _corrupt(header.transfer_syntax,
                        f"{what} declares {cols}×{rows} pixels (width×height), the DICOM "
                        f"header {spec.columns}×{spec.rows}")
    return None


def _corrupt(ts: UID, reason: str) -> str:
    return (f"{_ts_words(ts)} pixel data could not be decoded ({reason}); the compressed "
            f"data is corrupt")


def _decode_failure(ts: UID, exc: BaseException) -> str:
    """A decode failure in words: transfer syntax, the plugins' reasons, what else
    would decode it."""
    reason = _plugin_reasons(exc)
    if type(exc).__name__ == "PanicException":
        reason = f"the decoder crashed: {reason}"
    if not ts.is_encapsulated:
        return f"{_ts_words(ts)} pixel data could not be read ({reason})"
    try:
        missing = get_decoder(ts).missing_dependencies
    except NotImplementedError:
        missing = []
    if not _UNSUPPORTED.search(reason):
        # Every installed plugin failed on the data itself: another one would not help.
        hint = "the compressed data is corrupt"
    elif missing:
        hint = f"another decoder may read it: {_install_hint(missing)}"
    else:
        hint = "it uses a variant the installed plugins do not support"
    return f"{_ts_words(ts)} pixel data could not be decoded ({reason}); {hint}"


#: A plugin's reason that says it does not handle the variant (then another plugin may),
#: as opposed to failing on the data (Pillow: "does not support 'JPEG Extended' for
#: samples with 12-bit precision").
_UNSUPPORTED = re.compile(r"not support|unsupported|not available|not implemented",
                          re.IGNORECASE)


def _plugin_reasons(exc: BaseException) -> str:
    """pydicom's "all plugins failed" RuntimeError condensed to ``plugin: reason; …``."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].startswith("Unable to decode"):
        parts = []
        for line in lines[1:]:
            line = " ".join(line.split())
            parts.append(line if len(line) <= 140 else line[:139] + "…")
        return "; ".join(parts)
    return _short(exc)


# ------------------------------------------------------------------------ image files


def _orientation(im: Image.Image) -> int:
    try:
        value = im.getexif().get(0x0112, 1)
        return int(value) if value else 1
    except Exception:
        return 1


def _image_bits(mode: str) -> int:
    return 16 if mode.startswith("I") or mode == "F" else 8


def spec_for_image(src: str | os.PathLike[str] | Image.Image) -> PixelSpec:
    """The PixelSpec of a plain image file (header only; pixels are not decoded).

    Rows/columns are those after the EXIF orientation is applied; 16-bit gray modes
    (``I;16*``, ``I``, ``F``) give Bits Stored 16, all others 8; MONOCHROME2, unsigned,
    no windows; Number of Frames is the page count of multi-page files.
    """
    if isinstance(src, Image.Image):
        return _spec_for_pil(src)
    with capture_warnings(), Image.open(src) as im:
        return _spec_for_pil(im)


def _spec_for_pil(im: Image.Image) -> PixelSpec:
    cols, rows = im.size
    if _orientation(im) in (5, 6, 7, 8):
        rows, cols = cols, rows
    bits = _image_bits(im.mode)
    return PixelSpec(rows=rows, columns=cols, bits_allocated=bits, bits_stored=bits,
                     high_bit=bits - 1, number_of_frames=int(getattr(im, "n_frames", 1)))


def decode_image_file(path: str | os.PathLike[str], frame: int = 0) -> DecodedImage:
    """Decode a PNG/JPEG/TIFF/BMP to grayscale stored values (see the module notes)."""
    path = Path(path)
    notes: list[str] = []
    with capture_warnings() as caught:
        try:
            with Image.open(path) as im:
                frames = int(getattr(im, "n_frames", 1))
                if not 0 <= frame < frames:
                    raise PixelError(path, f"page {frame} requested, the file has pages "
                                           f"0..{frames - 1}")
                if frame:
                    im.seek(frame)
                im.load()
                im = ImageOps.exif_transpose(im)
                stored, bits, notes = _pil_to_gray(im)
        except PixelError:
            raise
        except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError,
                SyntaxError) as exc:
            raise PixelError(path, f"image cannot be decoded ({_short(exc)})") from exc
    notes += [f"Pillow: {m}" for m in caught]
    rows, cols = stored.shape
    spec = PixelSpec(rows=rows, columns=cols, bits_allocated=bits, bits_stored=bits,
                     high_bit=bits - 1, number_of_frames=frames)
    return DecodedImage(np.ascontiguousarray(stored), spec, notes)


_GRAY16 = re.compile(r"^I;16[BLN]?$")


def _pil_to_gray(im: Image.Image) -> tuple[np.ndarray, int, list[str]]:
    """(stored array, bits, warnings) for a loaded Pillow image."""
    mode = im.mode
    if mode == "L":
        return np.asarray(im, dtype=np.uint8), 8, []
    if mode == "1":
        return np.asarray(im.convert("L"), dtype=np.uint8), 8, []
    if mode in ("LA", "La"):
        return np.asarray(im.getchannel("L"), dtype=np.uint8), 8, []
    if _GRAY16.match(mode):
        return np.asarray(im).astype(np.uint16), 16, []
    if mode == "I":
        arr = np.asarray(im)
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            return (np.clip(arr, 0, 65535).astype(np.uint16), 16,
                    ["32-bit integer image clipped to 0..65535"])
        return arr.astype(np.uint16), 16, []
    if mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        finite = arr[np.isfinite(arr)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        span = hi - lo or 1.0
        scaled = np.nan_to_num((arr - lo) / span * 65535.0, nan=0.0)
        return (np.clip(np.rint(scaled), 0, 65535).astype(np.uint16), 16,
                [f"floating-point image rescaled from {lo:g}..{hi:g} to 16 bits"])
    if mode in ("P", "PA"):
        im = im.convert("RGBA")  # RGB directly warns about transparency in palettes
    rgb_image = im.convert("RGB")
    rgb = np.asarray(rgb_image)
    if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
        return np.ascontiguousarray(rgb[..., 0]), 8, []
    gray = np.asarray(rgb_image.convert("L"), dtype=np.uint8)  # ITU-R 601-2 luma
    return gray, 8, [f"colour ({mode}) shown as grayscale luminance"]
