"""Synthetic DICOM, PNG, MURA and DICOMDIR fixtures for radview's tests.

Every helper writes real files with pydicom or Pillow and returns their path, so tests
exercise the same reading code as the application. The defaults produce a small, valid
DX image (64×64, 12 bits stored in 16 allocated, MONOCHROME2, Explicit VR Little
Endian, PS3.5 A.2) whose stored values are a known ramp (:func:`default_pixels`); each
keyword argument changes one header aspect so that a test states exactly the messy case
it is about.

Nothing here emits warnings (the test suite turns warnings into errors): values are
written with explicit VRs where pydicom would otherwise have to guess (ambiguous
``US or SS`` elements, PS3.5 6.2).

Examples
--------
>>> make_dicom(tmp_path / "a.dcm", bits_stored=10, windows=[(512, 1024, "FULL")])
>>> make_dicom(tmp_path / "b", preamble=False, file_meta=False,
...            transfer_syntax=ImplicitVRLittleEndian)
>>> make_dicom(tmp_path / "c.dcm", extra={"WindowCenter": un_element("WindowCenter", "40")})
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pydicom import config, dcmread
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.fileset import FileSet
from pydicom.filewriter import dcmwrite
from pydicom.pixels import pack_bits
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    generate_uid,
)

#: pydicom's UID root; the factory's UIDs are derived from it deterministically.
UID_ROOT = "1.2.826.0.1.3680043.8.498."
DEFAULT_PATIENT_ID = "RV-TEST-001"
DEFAULT_PATIENT_NAME = "Test^Radview"
DEFAULT_STUDY_UID = UID_ROOT + "7701.1"
DEFAULT_SERIES_UID = UID_ROOT + "7701.1.1"

#: SOP Classes used by the factory (PS3.4 B.5).
DX_PRESENTATION = UID("1.2.840.10008.5.1.4.1.1.1.1")
CR_IMAGE = UID("1.2.840.10008.5.1.4.1.1.1")
SECONDARY_CAPTURE = UID("1.2.840.10008.5.1.4.1.1.7")
ENHANCED_MR = UID("1.2.840.10008.5.1.4.1.1.4.1")
BASIC_TEXT_SR = UID("1.2.840.10008.5.1.4.1.1.88.11")


def uid_for(*parts: object) -> str:
    """A deterministic UID derived from ``parts`` (same parts → same UID)."""
    return generate_uid(prefix=UID_ROOT, entropy_srcs=[str(p) for p in parts])


@dataclass
class Lut:
    """A Modality or VOI LUT Sequence item to write (PS3.3 C.11.1, C.11.2).

    Parameters
    ----------
    first_mapped
        Second LUT Descriptor value (first stored value mapped).
    bits
        Third LUT Descriptor value (bits per entry).
    data
        The entries.
    explanation, lut_type
        LUT Explanation (0028,3003) and, for a modality LUT, Modality LUT Type (0028,3004).
    vr
        VR of LUT Data: ``"US"`` (a list of values) or ``"OW"`` (raw bytes).
    entries
        First LUT Descriptor value; default ``len(data)``, with 65536 written as 0
        (PS3.3 C.11.1.1.1).
    descriptor_vr
        VR of LUT Descriptor, ``"US"`` or ``"SS"``.
    """

    first_mapped: int
    bits: int
    data: Sequence[int] | np.ndarray
    explanation: str = ""
    lut_type: str = ""
    vr: str = "US"
    entries: int | None = None
    descriptor_vr: str = "US"

    def item(self, *, little_endian: bool = True) -> Dataset:
        data = np.asarray(self.data, dtype=np.uint16)
        entries = len(data) if self.entries is None else self.entries
        entries = 0 if entries == 65536 else entries
        first = self.first_mapped
        if self.descriptor_vr == "US":
            first &= 0xFFFF
        item = Dataset()
        item.add(DataElement(0x00283002, self.descriptor_vr, [entries, first, self.bits]))
        if self.explanation:
            item.LUTExplanation = self.explanation
        if self.lut_type:
            item.ModalityLUTType = self.lut_type
        if self.vr == "OW":
            raw = data.astype("<u2" if little_endian else ">u2").tobytes()
            item.add(DataElement(0x00283006, "OW", raw))
        else:
            item.add(DataElement(0x00283006, "US", [int(v) for v in data]))
        return item


def un_element(keyword: str, text: str | bytes) -> DataElement:
    """An element written with VR UN (PS3.5 6.2.2): pydicom reads its value back as bytes
    unless it replaces UN by the dictionary VR."""
    raw = text.encode("ascii") if isinstance(text, str) else text
    if len(raw) % 2:
        raw += b" "
    tag = tag_for_keyword(keyword)
    if tag is None:
        raise ValueError(f"unknown DICOM keyword {keyword!r}")
    return DataElement(tag, "UN", raw)


def default_pixels(
    rows: int = 64,
    cols: int = 64,
    *,
    bits_stored: int = 12,
    signed: bool = False,
    frames: int = 1,
    samples: int = 1,
) -> np.ndarray:
    """The factory's default stored values: a ramp ``(r * cols + c + 7 * frame) mod
    2**bits_stored`` (shifted down by ``2**(bits_stored-1)`` when signed); colour sample
    ``k`` is offset by ``50 * k`` so that channels differ.

    Returns an int64 array shaped ``(rows, cols)``, ``(frames, rows, cols)``,
    ``(rows, cols, samples)`` or ``(frames, rows, cols, samples)`` like pydicom's
    ``pixel_array``.
    """
    span = 1 << bits_stored
    base = np.arange(rows, dtype=np.int64)[:, None] * cols + np.arange(cols, dtype=np.int64)
    stack = []
    for f in range(frames):
        chans = [(base + 7 * f + 50 * k) % span for k in range(samples)]
        frame = np.stack(chans, axis=-1) if samples > 1 else chans[0]
        stack.append(frame)
    arr = np.stack(stack) if frames > 1 else stack[0]
    if signed:
        arr = arr - (span >> 1)
    return arr


def _pixel_bytes(
    arr: np.ndarray, *, bits_allocated: int, signed: bool, little_endian: bool
) -> bytes:
    if bits_allocated == 1:
        raw = pack_bits(arr.astype(np.uint8).ravel(), pad=False)
    else:
        kind = "i" if signed else "u"
        order = "<" if little_endian else ">"
        dtype = np.dtype(f"{order}{kind}{bits_allocated // 8}")
        raw = arr.astype(dtype).tobytes()
    if len(raw) % 2:
        raw += b"\0"
    return raw


def make_dicom(
    path: str | os.PathLike[str],
    *,
    rows: int = 64,
    cols: int = 64,
    bits_allocated: int | None = None,
    bits_stored: int = 12,
    high_bit: int | None = None,
    signed: bool = False,
    photometric: str | None = None,
    pixels: np.ndarray | None = None,
    pixel_bytes: bytes | None = None,
    encapsulated_frames: Sequence[bytes] | None = None,
    pixel_data: bool = True,
    patient_id: str | None = DEFAULT_PATIENT_ID,
    patient_name: str | None = DEFAULT_PATIENT_NAME,
    patient_sex: str = "O",
    patient_birth_date: str = "19700101",
    study_uid: str | None = DEFAULT_STUDY_UID,
    series_uid: str | None = DEFAULT_SERIES_UID,
    sop_uid: str | None = "",
    sop_class_uid: str | None = None,
    modality: str | None = None,
    instance_number: int | None = 1,
    series_number: int | None = 1,
    study_date: str = "20240102",
    study_time: str = "101500",
    study_description: str = "XR test study",
    series_description: str = "",
    accession: str = "ACC0001",
    body_part: str | None = None,
    view_position: str | None = None,
    laterality: str | None = None,
    windows: Iterable[tuple] | None = None,
    voi_function: str | None = None,
    rescale: tuple | None = None,
    modality_lut: Lut | None = None,
    voi_lut: Lut | Sequence[Lut] | None = None,
    padding: int | tuple[int, int] | None = None,
    padding_vr: str | None = None,
    presentation_lut_shape: str | None = None,
    pixel_spacing: tuple[float, float] | None = None,
    enhanced: str | None = None,
    frames: int = 1,
    samples: int = 1,
    planar_configuration: int = 0,
    transfer_syntax: str = ExplicitVRLittleEndian,
    preamble: bool = True,
    file_meta: bool = True,
    extra: Mapping[str | int, Any] | None = None,
    truncate: int = 0,
) -> Path:
    """Write one synthetic DICOM file and return its path.

    Parameters
    ----------
    path
        Where to write (parents are created). Any name, with or without extension.
    rows, cols, frames, samples
        Matrix size, Number of Frames (0028,0008; written only when > 1) and Samples per
        Pixel (0028,0002).
    bits_allocated, bits_stored, high_bit, signed
        Image Pixel module (PS3.3 C.7.6.3). ``bits_allocated`` defaults to 8 when
        ``bits_stored <= 8``, else 16; ``high_bit`` to ``bits_stored - 1``; ``signed``
        sets Pixel Representation 1.
    photometric
        Photometric Interpretation; default MONOCHROME2, or RGB when ``samples == 3``.
    pixels
        Stored values, shaped like pydicom's ``pixel_array`` (see
        :func:`default_pixels`, the default). Values are written as given: bits above
        ``bits_stored`` are not cleared, so a test can plant garbage in them.
    pixel_bytes
        Raw Pixel Data value, bypassing ``pixels`` (e.g. too short for the header).
    encapsulated_frames
        Raw compressed frames, encapsulated as-is (PS3.5 A.4) for a compressed
        ``transfer_syntax``: lets a test write corrupt data or a syntax pydicom cannot
        encode (MPEG-4, …).
    pixel_data
        False writes no Pixel Data element at all (an SR-like dataset).
    patient_id, patient_name, study_uid, series_uid
        Identity; ``None`` leaves the element out. ``sop_uid=""`` (default) derives a
        UID from the path; ``None`` leaves SOP Instance UID out.
    sop_class_uid, modality
        Defaults: Digital X-Ray Image Storage - For Presentation and ``"DX"`` (Enhanced
        MR Image Storage and ``"MR"`` when ``enhanced`` is set).
    windows
        ``(center, width)`` or ``(center, width, explanation)`` tuples, written as
        multi-valued Window Center/Width/Explanation (PS3.3 C.11.2.1.2).
    voi_function
        VOI LUT Function (0028,1056).
    rescale
        ``(slope, intercept)`` or ``(slope, intercept, type)`` (PS3.3 C.11.1).
    modality_lut, voi_lut
        :class:`Lut` items for the Modality LUT Sequence (0028,3000) and VOI LUT
        Sequence (0028,3010).
    padding, padding_vr
        Pixel Padding Value or ``(value, range_limit)`` (PS3.3 C.7.5.1.1.2); written
        with VR SS when ``signed`` else US unless ``padding_vr`` says otherwise
        (``"US"`` with a negative value writes its 16-bit two's complement).
    presentation_lut_shape, pixel_spacing
        Presentation LUT Shape (2050,0020) and Pixel Spacing (0028,0030).
    enhanced
        ``"shared"`` or ``"per-frame"``: put ``windows``/``voi_function`` in a Frame VOI
        LUT Sequence and ``rescale`` in a Pixel Value Transformation Sequence inside the
        Shared or Per-Frame Functional Groups Sequence (PS3.3 C.7.6.16) instead of the
        top level.
    transfer_syntax
        Native syntaxes are written directly (big endian byte-swapped); compressed ones
        through ``Dataset.compress`` (needs the matching encoder plugin).
    preamble, file_meta
        False leaves out the 128-byte preamble + ``DICM`` prefix, or the File Meta
        Information (PS3.10 7.1), writing a bare data set in ``transfer_syntax``.
    extra
        Keyword (or tag) → value, applied last, overriding anything above; values are
        not validated (a test may plant ``"abc"`` in a DS element); a
        :class:`~pydicom.dataelem.DataElement` value is inserted as-is (e.g.
        :func:`un_element`), ``None`` deletes the element.
    truncate
        Drop this many bytes from the end of the written file.

    Returns
    -------
    pathlib.Path
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ts = UID(transfer_syntax)
    if bits_allocated is None:
        bits_allocated = 8 if bits_stored <= 8 else (16 if bits_stored <= 16 else 32)
    if high_bit is None:
        high_bit = bits_stored - 1
    if photometric is None:
        photometric = "RGB" if samples == 3 else "MONOCHROME2"
    if enhanced is not None:
        sop_class_uid = sop_class_uid or ENHANCED_MR
        modality = modality or "MR"
    sop_class_uid = UID(sop_class_uid or DX_PRESENTATION)
    modality = modality or "DX"
    if sop_uid == "":
        sop_uid = uid_for("sop", path.resolve())

    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.SOPClassUID = sop_class_uid
    if sop_uid is not None:
        ds.SOPInstanceUID = sop_uid
    ds.StudyDate = study_date
    ds.StudyTime = study_time
    ds.AccessionNumber = accession
    ds.StudyID = "1"
    ds.Modality = modality
    ds.InstitutionName = "Radview Test Hospital"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = study_description
    if series_description:
        ds.SeriesDescription = series_description
    if patient_name is not None:
        ds.PatientName = patient_name
    if patient_id is not None:
        ds.PatientID = patient_id
    ds.PatientBirthDate = patient_birth_date
    ds.PatientSex = patient_sex
    if body_part is not None:  # CS forbids lower case, but real files have it
        ds.add(DataElement(0x00180015, "CS", body_part, validation_mode=config.IGNORE))
    if view_position is not None:
        ds.ViewPosition = view_position
    if study_uid is not None:
        ds.StudyInstanceUID = study_uid
    if series_uid is not None:
        ds.SeriesInstanceUID = series_uid
    if series_number is not None:
        ds.SeriesNumber = series_number
    if instance_number is not None:
        ds.InstanceNumber = instance_number
    if laterality is not None:
        ds.ImageLaterality = laterality

    if pixel_data:
        ds.SamplesPerPixel = samples
        ds.PhotometricInterpretation = photometric
        if samples > 1:
            ds.PlanarConfiguration = planar_configuration
        if frames > 1:
            ds.NumberOfFrames = frames
        ds.Rows = rows
        ds.Columns = cols
        if pixel_spacing is not None:
            ds.PixelSpacing = list(pixel_spacing)
        ds.BitsAllocated = bits_allocated
        ds.BitsStored = bits_stored
        ds.HighBit = high_bit
        ds.PixelRepresentation = 1 if signed else 0

    voi_items = None
    if windows is not None:
        wins = [tuple(w) for w in windows]
        voi_items = Dataset()
        voi_items.WindowCenter = [w[0] for w in wins]
        voi_items.WindowWidth = [w[1] for w in wins]
        if any(len(w) > 2 for w in wins):
            voi_items.WindowCenterWidthExplanation = [w[2] if len(w) > 2 else "" for w in wins]
    if voi_function is not None:
        voi_items = voi_items if voi_items is not None else Dataset()
        voi_items.VOILUTFunction = voi_function
    pvt = None
    if rescale is not None:
        pvt = Dataset()
        pvt.RescaleSlope = rescale[0]
        pvt.RescaleIntercept = rescale[1]
        if len(rescale) > 2:
            pvt.RescaleType = rescale[2]

    if enhanced is None:
        for group in (voi_items, pvt):
            if group is not None:
                for elem in group:
                    ds.add(elem)
    else:
        if enhanced not in ("shared", "per-frame"):
            raise ValueError(f"enhanced must be 'shared' or 'per-frame', not {enhanced!r}")

        def fg_item() -> Dataset:
            item = Dataset()
            if voi_items is not None:
                item.FrameVOILUTSequence = DicomSequence([_copy(voi_items)])
            if pvt is not None:
                item.PixelValueTransformationSequence = DicomSequence([_copy(pvt)])
            return item

        if enhanced == "shared":
            ds.SharedFunctionalGroupsSequence = DicomSequence([fg_item()])
        else:
            ds.SharedFunctionalGroupsSequence = DicomSequence([Dataset()])
            ds.PerFrameFunctionalGroupsSequence = DicomSequence(
                [fg_item() for _ in range(frames)]
            )

    little = ts.is_little_endian if ts.is_transfer_syntax else True
    if modality_lut is not None:
        ds.ModalityLUTSequence = DicomSequence([modality_lut.item(little_endian=little)])
    if voi_lut is not None:
        luts = [voi_lut] if isinstance(voi_lut, Lut) else list(voi_lut)
        ds.VOILUTSequence = DicomSequence([lut.item(little_endian=little) for lut in luts])
    if padding is not None:
        value, limit = padding if isinstance(padding, tuple) else (padding, None)
        vr = padding_vr or ("SS" if signed else "US")

        def fit(v: int) -> int:
            return v & 0xFFFF if vr == "US" else v

        ds.add(DataElement(0x00280120, vr, fit(value)))
        if limit is not None:
            ds.add(DataElement(0x00280121, vr, fit(limit)))
    if presentation_lut_shape is not None:  # unvalidated: lower case is met in the wild
        ds.add(DataElement(0x20500020, "CS", presentation_lut_shape,
                           validation_mode=config.IGNORE))

    if pixel_data and encapsulated_frames is not None:
        ds.add(DataElement(0x7FE00010, "OB", encapsulate(list(encapsulated_frames)),
                           is_undefined_length=True))
    elif pixel_data:
        if pixel_bytes is None:
            arr = pixels
            if arr is None:
                arr = default_pixels(
                    rows, cols, bits_stored=bits_stored, signed=signed, frames=frames,
                    samples=samples,
                )
            arr = np.asarray(arr)
            if samples > 1 and planar_configuration == 1:
                arr = np.moveaxis(arr, -1, -3)  # (…, samples, rows, cols)
            if ts.is_compressed:
                kind = "i" if signed else "u"
                dtype = np.dtype(f"{kind}{max(bits_allocated // 8, 1)}")
                ds.PixelData = b""
                ds.file_meta = FileMetaDataset()
                ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
                ds.compress(ts, arr.astype(dtype), generate_instance_uid=False)
            else:
                pixel_bytes = _pixel_bytes(
                    arr, bits_allocated=bits_allocated, signed=signed,
                    little_endian=ts != ExplicitVRBigEndian,
                )
        if pixel_bytes is not None:
            vr = "OW" if bits_allocated > 8 else "OB"
            ds.add(DataElement(0x7FE00010, vr, pixel_bytes))

    for key, value in (extra or {}).items():
        tag = key if isinstance(key, int) else tag_for_keyword(key)
        if tag is None:
            raise ValueError(f"unknown DICOM keyword {key!r}")
        if value is None:
            if tag in ds:
                del ds[tag]
        elif isinstance(value, DataElement):
            ds[tag] = value
        else:  # as given, even when invalid for the VR: tests plant messy values
            vr = dictionary_VR(tag)
            try:
                elem = DataElement(tag, vr, value, validation_mode=config.IGNORE)
            except ValueError:  # e.g. DS "abc": keep the text, skip conversion
                joined = "\\".join(map(str, value)) if isinstance(value, list) else value
                elem = DataElement(tag, vr, joined, already_converted=True)
            ds.add(elem)

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class_uid
    meta.MediaStorageSOPInstanceUID = sop_uid or uid_for("meta", path)
    meta.TransferSyntaxUID = ts
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    if preamble:
        ds.preamble = b"\0" * 128
    if not file_meta:
        ds.file_meta = FileMetaDataset()
    dcmwrite(
        path, ds, implicit_vr=ts.is_implicit_VR, little_endian=ts.is_little_endian,
        enforce_file_format=False,
    )
    if truncate:
        data = path.read_bytes()
        path.write_bytes(data[:-truncate])
    return path


def _copy(ds: Dataset) -> Dataset:
    out = Dataset()
    for elem in ds:
        out.add(DataElement(elem.tag, elem.VR, elem.value))
    return out


def make_png(
    path: str | os.PathLike[str],
    *,
    rows: int = 32,
    cols: int = 48,
    mode: str = "L",
    pixels: np.ndarray | None = None,
    gray_rgb: bool = False,
    exif_orientation: int | None = None,
) -> Path:
    """Write an image file (format from the suffix: .png, .jpg, .tif, .bmp).

    Parameters
    ----------
    rows, cols
        Size of the stored matrix (before any EXIF orientation is applied).
    mode
        ``"L"`` (8-bit), ``"I;16"`` (16-bit gray, PNG/TIFF), ``"RGB"``, ``"RGBA"``,
        ``"P"`` (palette) or ``"1"``.
    pixels
        Stored values (``(rows, cols)`` or ``(rows, cols, 3)``); default a ramp
        ``(r * cols + c) mod 256`` (``* 16 mod 65536`` for 16-bit), with colour channels
        offset by 50 per channel unless ``gray_rgb`` (``"P"``: that colour image
        quantized to a 256-colour palette).
    exif_orientation
        EXIF Orientation tag (0x0112) value, 1–8.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    base = np.arange(rows)[:, None] * cols + np.arange(cols)
    if pixels is None:
        if mode == "I;16":
            pixels = (base * 16) % 65536
        elif mode in ("RGB", "RGBA", "P"):
            off = (0, 0, 0) if gray_rgb else (0, 50, 100)
            pixels = np.stack([(base + o) % 256 for o in off], axis=-1)
        else:
            pixels = base % 256
    pixels = np.asarray(pixels)
    if mode == "I;16":
        im = Image.fromarray(pixels.astype(np.uint16))
    elif mode == "RGBA":
        im = Image.fromarray(pixels.astype(np.uint8)).convert("RGBA")
    elif mode == "P":
        im = Image.fromarray(pixels.astype(np.uint8)).convert("RGB").quantize(256)
    elif mode == "1":
        im = Image.fromarray((pixels > 127).astype(np.uint8) * 255).convert("1")
    else:
        im = Image.fromarray(pixels.astype(np.uint8))
        if im.mode != mode:
            im = im.convert(mode)
    kwargs: dict[str, Any] = {}
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        kwargs["exif"] = exif
    im.save(path, **kwargs)
    return path


#: A small MURA-like layout: relative study folder → number of images.
DEFAULT_MURA_LAYOUT: dict[str, int] = {
    "train/XR_WRIST/patient00001/study1_positive": 2,
    "train/XR_WRIST/patient00001/study2_negative": 1,
    "train/XR_HAND/patient00002/study1_negative": 1,
    "valid/XR_FINGER/patient11185/study1": 1,  # no suffix: unlabelled
}


def make_mura_tree(
    root: str | os.PathLike[str],
    layout: Mapping[str, int] | None = None,
    *,
    rows: int = 32,
    cols: int = 32,
    mode: str = "L",
) -> Path:
    """Write a MURA-style tree ``<split>/XR_<PART>/patientNNNNN/studyN_<label>/imageK.png``.

    Parameters
    ----------
    root
        The dataset root (created).
    layout
        Relative study folder → number of images ``image1.png`` … (default
        :data:`DEFAULT_MURA_LAYOUT`: labelled positive/negative and one unlabelled study).
    rows, cols, mode
        Passed to :func:`make_png`.

    Returns
    -------
    pathlib.Path
        ``root``.
    """
    root = Path(root)
    for study, count in (layout or DEFAULT_MURA_LAYOUT).items():
        for k in range(1, count + 1):
            make_png(root / study / f"image{k}.png", rows=rows, cols=cols, mode=mode)
    return root


def make_dicomdir(root: str | os.PathLike[str], sources: Iterable[str | os.PathLike[str]]) -> Path:
    """Write a DICOM File-set (PS3.10 8, PS3.3 F.3) under ``root`` with pydicom's
    :class:`~pydicom.fileset.FileSet`.

    The source files are copied to ``root`` as ``PT000000/ST000000/SE000000/IM000000``
    (pydicom's naming) and ``root/DICOMDIR`` lists them.

    Returns
    -------
    pathlib.Path
        The DICOMDIR path.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    fs = FileSet()
    try:
        for src in sources:
            fs.add(dcmread(src))
        fs.write(root)
    finally:
        # FileSet stages copies in a TemporaryDirectory that is otherwise removed only at
        # garbage collection, with a ResourceWarning (an error in the test suite).
        fs._stage["t"].cleanup()
    return root / "DICOMDIR"


def set_referenced_file_id(
    dicomdir: str | os.PathLike[str], record: int, components: Sequence[str]
) -> None:
    """Overwrite the Referenced File ID (0004,1500) of the ``record``-th directory record
    that has one (0-based), e.g. with ``["..", "OUTSIDE"]`` to plant a path escaping the
    file-set. Record offsets are left as they were, so only readers that walk the flat
    Directory Record Sequence (as radview does) see a consistent file."""
    dicomdir = Path(dicomdir)
    ds = dcmread(dicomdir)
    items = [it for it in ds.DirectoryRecordSequence if "ReferencedFileID" in it]
    # CS forbids '.', '/' … (PS3.5 6.2): bypass value validation on purpose.
    items[record][0x00041500] = DataElement(
        0x00041500, "CS", list(components), validation_mode=config.IGNORE
    )
    ds.save_as(dicomdir, enforce_file_format=True)
