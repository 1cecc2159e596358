"""Bring a model's card section up to date after ``fit_stack.py``.

    python resources/models/stack_card.py BUNDLE_DIR [--model fracture]

``radview train`` wrote the model's section of ``MODEL_CARD.md`` (and ``card/<model>.md``)
from its own calibration. ``fit_stack.py`` refits the calibration, the threshold and the
DOUBT edge and measures the validation split again (``metrics/<model>-stack.json``); this
script replaces the section's calibration, threshold and study-flag lines and its metrics
table with those, in both files, and says where they come from.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from inference.training.export import metrics_table


def _lines(model: str, stack: dict, report: dict) -> dict[str, list[str]]:
    o = report["overall"]
    doubt = report.get("doubt") or {}
    cal = report["calibration"]
    new = {
        "- **Calibration**": [
            f"- **Calibration** (refitted by `resources/models/fit_stack.py`): the box head's "
            f"peak votes in the probability — logistic regression of the label on the "
            f"classifier's logit and the head's largest heat logit, fitted on the "
            f"{stack['n_images']} {stack['fitted_on']} films ({stack['n_positive']} "
            f"fractured): the model's logit is the classifier's + "
            f"{stack['score_weight']:.3f} × peak heat logit {stack['score_offset']:+.3f}, "
            f"temperature {stack['temperature']:.3f} (`box_head.score_weight`, "
            f"`score_offset` in manifest.json); the maps explain that logit. Expected "
            f"calibration error on the validation split {cal['ece_after']:.3f} (the "
            f"classifier alone with its own calibration, temperature "
            f"{stack['previous_temperature']:.3f}: {stack['valid_ece_previous']:.3f})."],
        "- **Thresholds**": [
            f"- **Thresholds** (Youden's J on the study scores of the same films): overall "
            f"{stack['threshold']:.3f} (a part gets its own only with at least 20 positive "
            f"selection studies). The threshold applies to the study score **and to every "
            f"view**: one view at or above it flags the study, whatever the aggregate."],
        "- **Study flag**": [
            f"- **Study flag**: FRACTURE at the threshold; DOUBT from "
            f"{stack['doubt_threshold']:.3f} (the value at which 95% of the positive "
            f"studies of those films are flagged); NO FRACTURE below. On the validation "
            f"split: positive studies flagged at least DOUBT "
            f"{doubt.get('sensitivity', float('nan')):.3f}, negative studies flagged at "
            f"least DOUBT {doubt.get('flagged_negatives', float('nan')):.3f}."],
    }
    table = [
        f"Metrics on the validation split with that calibration ({o['n_studies']}"
        f" studies, {o['n_images']} images; "
        f"`metrics/{model}-stack.json`); 95 % percentile bootstrap intervals over studies "
        f"({report['bootstrap']['resamples']} resamples, seed {report['bootstrap']['seed']}):",
        "",
        *metrics_table(report, stack["threshold"]),
    ]
    new["Metrics on the validation split"] = table
    return new


def _rewrite(text: str, heading: str, new: dict[str, list[str]]) -> str:
    lines = text.split("\n")
    try:
        start = lines.index(heading)
    except ValueError:
        raise SystemExit(f"no section {heading!r}") from None
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")),
               len(lines))
    section = lines[start:end]
    out: list[str] = []
    i = 0
    while i < len(section):
        line = section[i]
        key = next((k for k in new if line.startswith(k)), None)
        if key is None:
            out.append(line)
            i += 1
            continue
        out += new[key]
        i += 1
        if key.startswith("Metrics"):
            # the old intro's blank line, then its table rows
            i += 1
            while i < len(section) and section[i].startswith("|"):
                i += 1
    return "\n".join(lines[:start] + out + lines[end:])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("bundle")
    p.add_argument("--model", default="fracture")
    args = p.parse_args()
    root = Path(args.bundle)
    saved = json.loads((root / "metrics" / f"{args.model}-stack.json").read_text("utf-8"))
    new = _lines(args.model, saved["calibration_stack"], saved["valid"])
    heading = f"## {args.model} (abnormality)"
    manifest = json.loads((root / "manifest.json").read_text("utf-8"))
    for path in (root / "MODEL_CARD.md", root / "card" / f"{args.model}.md"):
        if path.is_file():
            text = _rewrite(path.read_text("utf-8"), heading, new)
            if path.name == "MODEL_CARD.md" and text.startswith("# "):
                # the title names the bundle's version (fit_stack.py --version may set it)
                first, _, rest = text.partition("\n")
                text = f"# {manifest['name']} {manifest['version']}\n{rest}"
            path.write_text(text, "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
