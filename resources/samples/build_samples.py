"""Rebuild the bundled sample studies from FracAtlas images.

Run from the repository root::

    python resources/samples/build_samples.py ../shared/datasets/fracatlas

Writes

- ``upper_limb_images/``: a hand study, two views, as PNG files;
- ``upper_limb_dicom/``: the same two views as DICOM DX (12-bit stored, two windows,
  BodyPartExamined HAND, a fictitious patient);
- ``out_of_scope_images/``: one knee film (not an upper extremity).

Source: FracAtlas (Abedeen et al., Scientific Data 10, 521, 2023), CC BY 4.0; images
converted to grayscale and re-encoded (PNG), DICOM files synthesized from them.
The files are deterministic: fixed UIDs, dates and times.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import DigitalXRayImageStorageForPresentation, ExplicitVRLittleEndian

HERE = Path(__file__).resolve().parent
# Validation-split images only (radview train's FracAtlas split, seed 0): the default model
# never saw them. Hand, two PA films of a fractured hand; a knee film out of scope.
UPPER = [("IMG0003396.jpg", "PA"), ("IMG0003397.jpg", "PA")]
OUT_OF_SCOPE = ["IMG0000051.jpg"]  # knee
ROOT_UID = "1.2.826.0.1.3680043.8.498.1245"  # under pydicom's UID root; fixed for determinism


def _gray(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"))


def _write_png(arr: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, optimize=True)


def _dicom(arr: np.ndarray, view: str, index: int, path: Path) -> None:
    stored = (arr.astype(np.uint16) * 16 + 8).astype(np.uint16)  # 8 → 12 bit
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DigitalXRayImageStorageForPresentation
    meta.MediaStorageSOPInstanceUID = f"{ROOT_UID}.3.{index}"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.PatientName = "DEMO^HAND"
    ds.PatientID = "RV-DEMO-0001"
    ds.PatientBirthDate = "19800101"
    ds.PatientSex = "O"
    ds.StudyInstanceUID = f"{ROOT_UID}.1"
    ds.SeriesInstanceUID = f"{ROOT_UID}.2"
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20260101"
    ds.StudyTime = ds.ContentTime = "090000"
    ds.StudyID = "1"
    ds.AccessionNumber = "DEMO0001"
    ds.StudyDescription = "XR HAND 2 VIEWS"
    ds.SeriesDescription = "HAND"
    ds.SeriesNumber = 1
    ds.InstanceNumber = index
    ds.InstitutionName = "radview demo (FracAtlas, CC BY 4.0)"
    ds.ReferringPhysicianName = ""
    ds.Manufacturer = "radview sample builder"
    ds.BodyPartExamined = "HAND"
    ds.ViewPosition = view
    ds.ImageLaterality = "U"
    ds.PatientOrientation = ""
    ds.ImageType = ["DERIVED", "PRIMARY"]
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.BurnedInAnnotation = "NO"
    ds.ImageComments = "Derived from FracAtlas (CC BY 4.0); research use only"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = stored.shape
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = 0
    ds.RescaleSlope = 1
    ds.RescaleType = "US"
    lo, hi = np.percentile(stored, [1, 99.5])
    ds.WindowCenter = [f"{(lo + hi) / 2:.0f}", "2048"]
    ds.WindowWidth = [f"{hi - lo:.0f}", "4096"]
    ds.WindowCenterWidthExplanation = ["BONE", "FULL"]
    ds.VOILUTFunction = "LINEAR"
    ds.PixelData = stored.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def main(src: str) -> None:
    images = Path(src) / "images"
    for i, (name, view) in enumerate(UPPER, start=1):
        arr = _gray(images / name)
        _write_png(arr, HERE / "upper_limb_images" / f"image{i}.png")
        _dicom(arr, view, i, HERE / "upper_limb_dicom" / f"IM{i:04d}.dcm")
    for i, name in enumerate(OUT_OF_SCOPE, start=1):
        _write_png(_gray(images / name), HERE / "out_of_scope_images" / f"image{i}.png")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/datasets/fracatlas")
