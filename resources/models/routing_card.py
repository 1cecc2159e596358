"""Write the routing section of a bundle's model card from the router stress bench.

    python resources/models/routing_card.py BUNDLE_DIR STRESS.json FALLBACK.json [TRANSFORMS.json]

``STRESS.json`` is what ``bench/router_stress.py --fit`` printed, ``FALLBACK.json`` what
``resources/models/fit_fallback.py`` printed; ``TRANSFORMS.json``, when given, a later run
of the bench without ``--fit`` (e.g. all stress transforms on the finished bundle) whose
stress table replaces the first one's (its routing figures must be the same: same router,
same thresholds). Writes ``card/routing.md`` and replaces the
``## Routing`` section of ``MODEL_CARD.md`` (appended when absent).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

START = "<!-- routing:start -->"
END = "<!-- routing:end -->"


def _fmt(stat: dict) -> str:
    if not stat or stat.get("value") is None:
        return "n/a"
    lo, hi = stat["ci"]
    return f"{stat['value']:.3f} ({lo:.3f}–{hi:.3f}; n={stat['n']})"


def section(stress: dict, fallback: dict) -> str:
    v = stress["valid"]
    t = v["thresholds"]
    lines = [
        START,
        "## Routing (which films are scored, and with which threshold)",
        "",
        "The router sees every image, whatever its DICOM tag or MURA folder says. Its class "
        "probabilities are summed per part (ARM and HUMERUS are one vote) and averaged over a "
        "study's images. A study is refused (\"not supported\") only when OTHER reaches "
        f"**{t['other_threshold']:.3f}**; an upper-limb part is taken as sure at "
        f"**{t['confidence_threshold']:.3f}**. Below that the study is still scored — with "
        f"the general upper-limb threshold `{fallback['model']}` "
        f"({fallback['threshold']:.3f}) — and flagged **\"body part uncertain\"**, with the "
        "router's top guesses. When a tag or folder names a part and the router confidently "
        "names another (a knee in `XR_SHOULDER`), the tag/folder part is scored and the "
        "study is flagged **\"body part disputed\"** with both; the reader's override "
        "always wins.",
        "",
        *([("A per-class logit shift (`class_bias` in the manifest: "
            + ", ".join(f"{k} {b:+.2f}" for k, b in stress["class_bias"].items())
            + ") is added before the softmax: it undoes the prior the network learned from "
            "unequal, fuzzy classes (rare WRIST and SHOULDER films were called HAND and "
            "HUMERUS), chosen for the best mean recall over the parts with a penalty that "
            "keeps the shifts small."), ""] if stress.get("class_bias") else []),
        ("The shift and both thresholds were" if stress.get("class_bias") else
         "Both thresholds were") + " fitted on the selection split "
        f"({stress['fitted_on_select']['n_films']} "
        "films: a 15% holdout of the training groups, never trained on): OTHER at the lowest "
        "value refusing at most 1% of its upper-limb films, the part threshold at the lowest "
        "value whose sure decisions are right for ≥ 95% of its H/M-labelled upper-limb films. "
        f"Figures below are on the validation split ({v['n_films']} films, "
        f"{v['n_upper']} upper-limb), used for neither training, selection nor fitting; "
        "95% bootstrap CIs.",
        "",
        "| what | figure | target |",
        "|---|---|---|",
        f"| upper-limb films routed to OTHER (not scored) | {_fmt(v['upper_routed_to_other'])} "
        "| ≤ 0.02 |",
        f"| upper-limb accuracy, H/M labels | {_fmt(v['upper_accuracy_hm'])} | ≥ 0.92 |",
        f"| upper-limb accuracy, all labels | {_fmt(v['upper_accuracy_all'])} | |",
        f"| OTHER recall | {_fmt(v['other_recall'])} | ≥ 0.97 |",
        f"| \"body part uncertain\" on upper-limb films | {_fmt(v['upper_uncertain'])} | |",
    ]
    for part, stat in v["recall"].items():
        if part == "OTHER":
            continue
        target = "≥ 0.70" if stat["n"] >= 15 else "(< 15 films: no target)"
        lines.append(f"| recall {part} | {_fmt(stat)} | {target} |")
    s = stress["stress"]
    lines += [
        "",
        "Recall counts a film as right when the decided part is its label (an uncertain "
        "decision counts with its best guess). ARM films count as HUMERUS.",
        "",
    ]
    if not s["transforms"]:
        # `--transforms 0`: routing figures only. Say so instead of a vacuous "1.000".
        lines += ["### Stress test", "", "Not re-measured for this version: "
                  + stress.get("stress_note", "the stress bench was run without transforms.")]
    else:
        lines += [
            "### Stress test (validation films, transformed at the router's input)",
            "",
            f"Routing decision (refused / which part's model / uncertain → general model) "
            f"unchanged for **{s['upper_pairs_unchanged']:.3f}** of (upper-limb film, transform) "
            f"pairs (target ≥ 0.95); {s['upper_films_unchanged_under_all']:.3f} of the "
            f"{s['n_upper_films']} upper-limb films keep their decision under every transform. "
            "Transforms marked *held out* were never used in training."
            + (" " + stress["stress_note"] if stress.get("stress_note") else ""),
        ]
        scoring = "upper_pairs_scoring_unchanged" in s
        if scoring:
            lines += [
                "",
                f"**Scoring** unchanged (refused or not; when scored, the same weights, "
                f"calibration, threshold and DOUBT edge — parts that share an entry score a "
                f"film identically, so a HAND ↔ WRIST flip changes the part shown, not the "
                f"probability or the flag) for **{s['upper_pairs_scoring_unchanged']:.3f}** "
                f"of the pairs; {s['upper_films_scoring_unchanged_under_all']:.3f} of the "
                f"upper-limb films are scored the same under every transform."]
        lines += [
            "",
            "| transform | upper-limb unchanged | upper-limb newly refused | OTHER unchanged |"
            + (" upper-limb scoring unchanged |" if scoring else ""),
            "|---|---|---|---|" + ("---|" if scoring else ""),
        ]
        for row in s["transforms"]:
            name = row["transform"] + (" *(held out)*" if row["held_out"] else "")
            lines.append(f"| {name} | {row['upper_unchanged']:.3f} | "
                         f"{row['upper_newly_refused']:.3f} | {row['other_unchanged']:.3f} |"
                         + (f" {row['upper_scoring_unchanged']:.3f} |" if scoring else ""))
    lines += [
        "",
        f"General upper-limb threshold `{fallback['model']}`: {fallback['threshold']:.3f} "
        f"(Youden's J on the fracture model's {fallback['n_upper']} upper-limb "
        f"{'selection' if fallback.get('split') == 'select' else 'validation'} "
        f"films, {fallback['positives']} fractured; AUROC {fallback['auroc_upper']:.3f}, "
        f"sensitivity {fallback['sensitivity']:.3f}, specificity "
        f"{fallback['specificity']:.3f} there — fitted and measured on the same split, so "
        "optimistic).",
        "",
        "Commands: `python bench/router_stress.py --bundle BUNDLE --fit"
        + (" --fit-bias" if stress.get("class_bias") else "") + "` and "
        "`python resources/models/fit_fallback.py BUNDLE` (see train_default.sh).",
        END,
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    bundle, stress_path, fallback_path = (Path(a) for a in sys.argv[1:4])
    stress = json.loads(stress_path.read_text(encoding="utf-8"))
    if len(sys.argv) > 4:
        later = json.loads(Path(sys.argv[4]).read_text(encoding="utf-8"))
        if later["valid"]["recall"] != stress["valid"]["recall"]:
            print(f"{sys.argv[4]}: its routing figures differ from {stress_path}'s (another "
                  f"router or other thresholds)", file=sys.stderr)
            return 2
        stress = {**stress, "stress": later["stress"]}
        stress.pop("stress_note", None)
    fallback = json.loads(fallback_path.read_text(encoding="utf-8"))
    text = section(stress, fallback)
    (bundle / "card").mkdir(exist_ok=True)
    (bundle / "card" / "routing.md").write_text(text, encoding="utf-8")
    card = bundle / "MODEL_CARD.md"
    body = card.read_text(encoding="utf-8")
    if START in body and END in body:
        head, rest = body.split(START, 1)
        body = head + text.rstrip("\n") + rest.split(END, 1)[1]
    else:
        marker = "## Citation"
        body = body.replace(marker, text + "\n" + marker, 1) if marker in body else (
            body + "\n" + text)
    card.write_text(body, encoding="utf-8")
    print(card)
    return 0


if __name__ == "__main__":
    sys.exit(main())
