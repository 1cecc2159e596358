"""``radview info``: list what a scan finds (Qt-free; :mod:`viewer.cli` runs :func:`main`).

::

    radview info PATH... [--json]

Scans the paths like the viewer does (:func:`viewer.loader.scan`: files, folders,
DICOMDIRs, images, MURA trees; headers only) and prints what was found: patients,
studies, series, images and the files that could not be used, with the reason.
Exit status 0 when at least one image can be shown, 2 when none can (argument errors
also give 2).

With ``--json`` the output is one JSON object with these stable keys (values that are
absent in the file are ``""`` for text and ``null`` otherwise; non-finite numbers are
``null``)::

    {
      "schema": "radview-info/1",
      "patients": [{
        "id", "name", "sex", "birth_date",
        "studies": [{
          "uid", "date", "time", "description", "accession", "institution",
          "body_part",            # normalized (e.g. "WRIST") or null
          "body_part_source",     # "tag" (Body Part Examined), "path" (XR_<PART>) or null
          "label",                # "positive" / "negative" from a MURA folder, or null
          "source",               # folder the study was found in
          "series": [{
            "uid", "number", "description", "modality",
            "images": [{
              "path", "kind",     # kind: "dicom" or "image"
              "sop_instance_uid", "instance_number", "modality", "view_position",
              "laterality", "body_part", "body_part_source",
              "rows", "columns", "bits_allocated", "bits_stored", "signed",
              "photometric", "frames",
              "transfer_syntax_uid", "transfer_syntax_name",   # "" for plain images
              "windows": [{"center", "width", "explanation", "function"}],
              "usable",           # true when the image can be shown
              "warnings": [str],
              "error"             # why it cannot be shown, or null
            }]
          }]
        }]
      }],
      "errors": [{"path", "reason"}],   # files that could not be used at all
      "summary": {"patients", "studies", "series", "images", "usable_images", "errors"}
    }
"""

from __future__ import annotations

import argparse
import json
import math
import re
from typing import Any

from viewer import loader
from viewer.cli._common import start
from viewer.model import ImageRef, LoadResult

SCHEMA = "radview-info/1"


def _num(value: float | int | None) -> float | int | None:
    if value is None:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _image_json(ref: ImageRef) -> dict[str, Any]:
    spec = ref.spec
    return {
        "path": str(ref.path),
        "kind": ref.kind,
        "sop_instance_uid": ref.sop_instance_uid,
        "instance_number": ref.instance_number,
        "modality": ref.modality,
        "view_position": ref.view_position,
        "laterality": ref.laterality,
        "body_part": ref.body_part,
        "body_part_source": ref.body_part_source,
        "rows": spec.rows if spec else None,
        "columns": spec.columns if spec else None,
        "bits_allocated": spec.bits_allocated if spec else None,
        "bits_stored": spec.bits_stored if spec else None,
        "signed": spec.signed if spec else None,
        "photometric": spec.photometric if spec else None,
        "frames": spec.number_of_frames if spec else None,
        "transfer_syntax_uid": ref.transfer_syntax,
        "transfer_syntax_name": ref.transfer_syntax_name,
        "windows": [
            {"center": _num(w.center), "width": _num(w.width), "explanation": w.explanation,
             "function": w.function}
            for w in (spec.windows if spec else [])
        ],
        "usable": ref.ok,
        "warnings": list(ref.warnings),
        "error": ref.error,
    }


def result_json(result: LoadResult) -> dict[str, Any]:
    """The ``radview info --json`` object for a scan result (schema in the module notes)."""
    patients = []
    for patient in result.patients:
        studies = []
        for study in patient.studies:
            studies.append({
                "uid": study.uid,
                "date": study.date,
                "time": study.time,
                "description": study.description,
                "accession": study.accession,
                "institution": study.institution,
                "body_part": study.body_part,
                "body_part_source": study.body_part_source,
                "label": study.label,
                "source": str(study.source) if study.source else None,
                "series": [
                    {"uid": s.uid, "number": s.number, "description": s.description,
                     "modality": s.modality, "images": [_image_json(im) for im in s.images]}
                    for s in study.series
                ],
            })
        patients.append({"id": patient.id, "name": patient.name, "sex": patient.sex,
                         "birth_date": patient.birth_date, "studies": studies})
    images = result.images
    return {
        "schema": SCHEMA,
        "patients": patients,
        "errors": [{"path": str(e.path), "reason": e.reason} for e in result.errors],
        "summary": {
            "patients": len(result.patients),
            "studies": len(result.studies),
            "series": sum(len(st.series) for st in result.studies),
            "images": len(images),
            "usable_images": sum(1 for im in images if im.ok),
            "errors": len(result.errors),
        },
    }


def _date(value: str) -> str:
    if re.fullmatch(r"\d{8}", value):
        return f"{value[:4]}-{value[4:6]}-{value[6:]}"
    return value


def _time(value: str) -> str:
    if re.fullmatch(r"\d{6}(\.\d+)?", value):
        return f"{value[:2]}:{value[2:4]}:{value[4:6]}"
    return value


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def result_text(result: LoadResult) -> str:
    """The human-readable ``radview info`` report."""
    lines: list[str] = []
    for patient in result.patients:
        words = [f"Patient {patient.id or '(no ID)'}"]
        if patient.name:
            words.append(patient.name)
        if patient.sex:
            words.append(f"sex {patient.sex}")
        if patient.birth_date:
            words.append(f"born {_date(patient.birth_date)}")
        lines.append("  ".join(words))
        for study in patient.studies:
            words = [f"  Study {study.uid}"]
            when = " ".join(x for x in (_date(study.date), _time(study.time)) if x)
            if when:
                words.append(when)
            if study.description:
                words.append(f'"{study.description}"')
            if study.body_part:
                words.append(f"body part {study.body_part} ({study.body_part_source})")
            else:
                words.append("body part unknown")
            if study.label:
                words.append(f"label {study.label} (path)")
            lines.append("  ".join(words))
            for series in study.series:
                words = [f"    Series {series.uid}"]
                if series.number is not None:
                    words.append(f"#{series.number}")
                if series.description:
                    words.append(f'"{series.description}"')
                if series.modality:
                    words.append(series.modality)
                lines.append("  ".join(words))
                for im in series.images:
                    lines.append(f"      {im.path}")
                    lines.append(f"        {_image_summary(im)}")
                    lines += [f"        warning: {w}" for w in im.warnings]
                    if im.error:
                        lines.append(f"        ERROR: {im.error}")
    if result.errors:
        lines.append("Files not used:")
        lines += [f"  {e.path}: {e.reason}" for e in result.errors]
    images = result.images
    usable = sum(1 for im in images if im.ok)
    lines.append(
        f"{_plural(len(images), 'image')} ({usable} usable) in "
        f"{_plural(len(result.studies), 'study').replace('studys', 'studies')} of "
        f"{_plural(len(result.patients), 'patient')}; "
        f"{_plural(len(result.errors), 'file')} not used."
    )
    return "\n".join(lines)


def _image_summary(im: ImageRef) -> str:
    spec = im.spec
    parts = []
    if spec is not None:
        # width×height (Columns×Rows), the viewer's convention (corner text, report)
        parts.append(f"{spec.columns}×{spec.rows}")
        parts.append(f"{spec.bits_stored} bits stored{' signed' if spec.signed else ''}")
        parts.append(spec.photometric)
        parts.append(_plural(spec.number_of_frames, "frame"))
    if im.kind == "dicom":
        parts.append(f"{im.transfer_syntax_name} ({im.transfer_syntax})")
    else:
        parts.append("image file")
    if im.body_part:
        parts.append(f"body part {im.body_part} ({im.body_part_source})")
    return ", ".join(parts)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="radview info",
        description="List the studies, series and images found in files, folders, "
                    "DICOMDIRs and image trees (headers only), and the files that "
                    "cannot be used. Exit status 0 when at least one image can be shown, "
                    "2 otherwise.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="file, folder or DICOMDIR")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object (schema radview-info/1) instead of text")
    return p


def main(argv: list[str]) -> int:
    """Run ``radview info``; returns the exit status (0 something usable, 2 nothing)."""
    args = start(_parser(), argv)
    if isinstance(args, int):
        return args
    result = loader.scan(args.paths)
    if args.json:
        print(json.dumps(result_json(result), indent=2, ensure_ascii=False))
    else:
        print(result_text(result))
    return 0 if any(im.ok for im in result.images) else 2
