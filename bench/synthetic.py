"""Synthetic radiograph-like DICOM studies for the benchmarks (deterministic by seed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

ROWS, COLS = 2500, 2048


def radiograph_frame(seed: int, rows: int = ROWS, cols: int = COLS) -> np.ndarray:
    """A 12-bit frame: soft-tissue blob, a wavy 'bone' band and noise (uint16)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float32)
    body = np.exp(-(((x - cols / 2) / (cols / 4)) ** 2 + ((y - rows / 2) / (rows / 3)) ** 2))
    bone = (np.abs(x - cols / 2 - 100 * np.sin(y / 300)) < cols / 17).astype(np.float32)
    img = 300 + 2500 * body + 1000 * bone + rng.normal(0, 40, (rows, cols))
    return np.clip(img, 0, 4095).astype(np.uint16)


def write_study(folder: Path, count: int, *, body_part: str = "WRIST",
                compress: str | None = None, rows: int = ROWS, cols: int = COLS) -> Path:
    """Write ``count`` DX images of one study into ``folder`` (once; reused if present).

    ``compress`` is a transfer syntax UID to encode with (e.g. JPEG 2000 Lossless).
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import (
        DigitalXRayImageStorageForPresentation,
        ExplicitVRLittleEndian,
        generate_uid,
    )

    if len(list(folder.glob("*.dcm"))) == count:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    study = generate_uid()
    for i in range(count):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = DigitalXRayImageStorageForPresentation
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = meta.MediaStorageSOPClassUID
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.PatientName, ds.PatientID = "BENCH^STUDY", "BENCH"
        ds.StudyInstanceUID = study
        ds.SeriesInstanceUID = generate_uid(entropy_srcs=[study, "series"])
        ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "DX", 1, i + 1
        ds.BodyPartExamined = body_part
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows, ds.Columns = rows, cols
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.WindowCenter, ds.WindowWidth = "2048", "4096"
        ds.RescaleSlope, ds.RescaleIntercept = "1", "0"
        ds.PixelData = radiograph_frame(i, rows, cols).tobytes()
        if compress:
            ds.compress(compress)
        ds.save_as(folder / f"IM{i + 1:04d}.dcm", enforce_file_format=True)
    return folder
