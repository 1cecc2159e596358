"""Qt-free data model of a loaded study set.

A scan of the paths the user opened yields a :class:`LoadResult`: patients → studies →
series → images, plus per-file errors. Everything here comes from headers only; pixel data
is decoded later, on demand, by :mod:`viewer.pixels`.

The :class:`PixelSpec` carries every header value that the display pipeline
(:mod:`viewer.display`) needs, so that the pipeline never touches a pydicom dataset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from inference.bodyparts import MURA_PARTS  # noqa: F401 - re-exported for viewer code


@dataclass(frozen=True)
class Window:
    """One VOI window (PS3.3 C.11.2.1.2), in modality (output of the modality LUT) units.

    Parameters
    ----------
    center, width
        Window Center (0028,1050) and Window Width (0028,1051).
    explanation
        Window Center & Width Explanation (0028,1055), or a generated name.
    function
        VOI LUT Function (0028,1056): ``"LINEAR"``, ``"LINEAR_EXACT"`` or ``"SIGMOID"``.
    """

    center: float
    width: float
    explanation: str = ""
    function: str = "LINEAR"


@dataclass(frozen=True, eq=False)
class LutData:
    """A lookup table from a Modality or VOI LUT Sequence item (PS3.3 C.11.1, C.11.2).

    Parameters
    ----------
    first_mapped
        First input value mapped (second value of LUT Descriptor); inputs below it map to
        ``data[0]``, inputs above the last entry map to ``data[-1]``.
    bits
        Bits per entry (third value of LUT Descriptor).
    data
        The table entries (1-D integer array).
    explanation
        LUT Explanation (0028,3003).
    lut_type
        Modality LUT Type (0028,3004) for a modality LUT; empty for VOI LUTs.
    """

    first_mapped: int
    bits: int
    data: np.ndarray
    explanation: str = ""
    lut_type: str = ""


@dataclass
class PixelSpec:
    """Everything the display pipeline needs from an image header.

    For a plain image file (PNG, JPEG, ...) the spec describes the decoded grayscale
    matrix: 8 or 16 bits, unsigned, MONOCHROME2, no windows.
    """

    rows: int
    columns: int
    bits_allocated: int = 8
    bits_stored: int = 8
    high_bit: int = 7
    pixel_representation: int = 0  # 0 unsigned, 1 two's complement
    samples_per_pixel: int = 1
    photometric: str = "MONOCHROME2"
    number_of_frames: int = 1
    rescale_slope: float = 1.0
    rescale_intercept: float = 0.0
    rescale_type: str = ""
    modality_lut: LutData | None = None
    windows: list[Window] = field(default_factory=list)
    voi_luts: list[LutData] = field(default_factory=list)
    presentation_lut_shape: str = ""  # "IDENTITY", "INVERSE" or "" (absent)
    padding_value: int | None = None  # Pixel Padding Value (0028,0120), stored units
    padding_range_limit: int | None = None  # Pixel Padding Range Limit (0028,0121)
    pixel_spacing: tuple[float, float] | None = None  # mm, (row, column)

    @property
    def signed(self) -> bool:
        return self.pixel_representation == 1

    @property
    def declared_range(self) -> tuple[int, int]:
        """Inclusive range of stored values the header declares possible: every value
        representable in ``bits_stored`` bits, signed or not after ``pixel_representation``
        (what the pixels actually hold is :attr:`viewer.display.DisplayPipeline.present_range`)."""
        if self.signed:
            return -(1 << (self.bits_stored - 1)), (1 << (self.bits_stored - 1)) - 1
        return 0, (1 << self.bits_stored) - 1


@dataclass(frozen=True)
class SpacingInfo:
    """The header values that say what one image pixel measures (PS3.3 10.7.1.3, C.8.11.4).

    :func:`viewer.measure.calibration_for` turns them into the unit and basis shown next
    to every measurement.

    Parameters
    ----------
    pixel_spacing
        Pixel Spacing (0028,0030) (or the Pixel Measures functional group's), mm, (row,
        column): between the centres of adjacent rows, adjacent columns.
    imager_pixel_spacing
        Imager Pixel Spacing (0018,1164), mm at the front plane of the detector.
    magnification
        Estimated Radiographic Magnification Factor (0018,1114).
    calibration_type
        Pixel Spacing Calibration Type (0028,0A02): ``"GEOMETRY"`` or ``"FIDUCIAL"``.
    calibration_description
        Pixel Spacing Calibration Description (0028,0A04).
    """

    pixel_spacing: tuple[float, float] | None = None
    imager_pixel_spacing: tuple[float, float] | None = None
    magnification: float | None = None
    calibration_type: str = ""
    calibration_description: str = ""


@dataclass
class ImageRef:
    """One image (one file) as found by a scan; pixels are not loaded.

    ``error`` is set when the image cannot be shown at all (the reason, in words a user
    understands); ``warnings`` hold notes about what is shown (e.g. "multi-frame: frame 1
    of 12 shown").
    """

    path: Path
    kind: str  # "dicom" or "image"
    sop_instance_uid: str = ""
    instance_number: int | None = None
    transfer_syntax: str = ""  # UID, DICOM only
    transfer_syntax_name: str = ""
    modality: str = ""
    view_position: str = ""
    laterality: str = ""
    image_comments: str = ""
    body_part: str | None = None  # normalized where possible
    body_part_source: str | None = None  # "tag" or "path"
    spec: PixelSpec | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    #: The pixels went through lossy compression: Lossy Image Compression (0028,2110) is
    #: "01", or the transfer syntax is lossy (see :func:`viewer.loader.scan`).
    lossy: bool = False
    #: Lossy Image Compression Ratio (0028,2112), one per compression step, when given.
    lossy_ratios: list[float] = field(default_factory=list)
    #: radview's own AI secondary capture (:func:`viewer.dicom_results.is_radview_capture`):
    #: shown, never given to the model as a view.
    ai_capture: bool = False
    #: What a pixel measures (:class:`SpacingInfo`); None for image files (pixels only).
    spacing: SpacingInfo | None = None
    #: Patient Orientation (0020,0020): the patient directions of the rows (towards the
    #: right edge) and of the columns (towards the bottom), e.g. ``("R", "F")``; empty
    #: when absent.
    patient_orientation: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class Series:
    uid: str
    number: int | None = None
    description: str = ""
    modality: str = ""
    images: list[ImageRef] = field(default_factory=list)


@dataclass
class Study:
    """One study. For image folders, ``uid`` is the folder path and ``label`` comes from a
    MURA ``studyN_positive|negative`` folder name (None when unlabelled)."""

    uid: str
    date: str = ""  # YYYYMMDD as stored
    time: str = ""
    description: str = ""
    accession: str = ""
    institution: str = ""
    referring_physician: str = ""
    body_part: str | None = None
    body_part_source: str | None = None  # "tag" or "path"
    label: str | None = None  # "positive", "negative" or None
    source: Path | None = None  # folder or file the study was found in
    series: list[Series] = field(default_factory=list)

    @property
    def images(self) -> list[ImageRef]:
        return [im for s in self.series for im in s.images]


@dataclass
class Patient:
    id: str = ""
    name: str = ""
    sex: str = ""
    birth_date: str = ""
    studies: list[Study] = field(default_factory=list)


@dataclass(frozen=True)
class FileError:
    """A file that could not be used, and why."""

    path: Path
    reason: str


@dataclass
class LoadResult:
    patients: list[Patient] = field(default_factory=list)
    errors: list[FileError] = field(default_factory=list)
    #: radview AI structured reports found by the scan (not errors); their findings are
    #: mapped onto the source images by :func:`viewer.dicom_results.findings_for`.
    ai_reports: list[Path] = field(default_factory=list)
    #: Grayscale Softcopy Presentation States found by the scan (not errors); applied by
    #: :mod:`viewer.gsps` to the images they reference.
    presentation_states: list[Path] = field(default_factory=list)

    @property
    def studies(self) -> list[Study]:
        return [st for p in self.patients for st in p.studies]

    @property
    def images(self) -> list[ImageRef]:
        return [im for st in self.studies for im in st.images]
