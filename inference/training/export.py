"""Export a trained model as a bundle the viewer loads as is, with a model card.

Bundle folder
-------------
::

    my-bundle/
        manifest.json               validated by inference.bundle (schema radview-bundle/1)
        <model>.safetensors         weights (fp16 with --fp16)
        router.safetensors          when a router was trained or kept
        MODEL_CARD.md               every model: data, recipe, metrics, plots, licenses
        card/<model>.md             the card section of each model (kept across merges)
        plots/<model>/*.png         loss, AUROC/accuracy, ROC, reliability, confusion
        metrics/<model>.json        the full evaluation report

The bundle is written by :func:`inference.bundle.write_bundle` (manifest validated,
sha256 filled in) into a hidden staging folder; the card, plots and reports are added
there and the folder is renamed into place, so a reader never sees half a bundle.

Per-part thresholds
-------------------
A manifest model has one ``threshold``. When thresholds were fitted per body part, the
model appears once per such part (``fracture-wrist``, ``fracture-hand`` …), every entry
naming the same weights file with its own threshold, and ``routing`` sends each part to
its entry; the entry named after the model keeps the overall threshold and serves the
parts without their own. The engine therefore applies exactly the thresholds reported.

Merging (``merge_into``)
------------------------
A router and abnormality models trained separately end up in one bundle: the existing
bundle is validated, its weights are kept (byte for byte in dtype, sha256 checked), and
the new model is added or replaces the one of the same name (the router, or the
abnormality model whose weights file is ``<name>.safetensors`` with its per-part
entries). Routing for the new model's parts is set to it; entries left with no route and
no routed sibling are dropped. Name, version and license are kept unless given.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from inference.bundle import MANIFEST, Bundle, load_manifest, replace_folder, write_bundle
from inference.errors import BundleError
from inference.models import ARCHITECTURES
from inference.preprocess import InputSpec
from inference.training.data import LoadedData

log = logging.getLogger(__name__)

INTENDED_USE = ("Research use only. Not for diagnosis. Not a medical device; outputs must "
                "not guide clinical decisions.")
CARD = "MODEL_CARD.md"
RADVIEW_CITATION = "radview: a desktop radiograph viewer with built-in AI (research use only)."


@dataclass
class TrainedModel:
    """A trained, calibrated model and everything its card reports."""

    key: str
    task: str
    architecture: str
    input: InputSpec
    state_dict: dict[str, torch.Tensor]
    report: dict[str, Any]
    data: LoadedData
    init: dict[str, str]
    class_names: list[str] = field(default_factory=list)
    temperature: float = 1.0
    threshold: float = 0.5
    part_thresholds: dict[str, float] = field(default_factory=dict)
    routing_parts: list[str] = field(default_factory=list)
    positive_label: str = "abnormal"
    history: list[dict[str, Any]] = field(default_factory=list)
    plots: list[Path] = field(default_factory=list)
    command: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    world_size: int = 1
    #: DOUBT band lower edge (each entry's is capped at its threshold); None: none.
    doubt_threshold: float | None = None
    aggregation: str = "mean"
    cam_method: str = "gradcam"
    cam_layer: str | None = None      #: None: the architecture's usual Grad-CAM layer
    #: The manifest's ``box_head`` without ``weights``/``sha256``, and its tensors.
    box_head: dict[str, Any] | None = None
    box_state: dict[str, torch.Tensor] | None = None

    @property
    def box_weights(self) -> str:
        return f"{self.key}-boxes.safetensors"


def _input_fields(arch: str, spec: InputSpec) -> dict[str, Any]:
    h, w = spec.size
    return {"architecture": arch, "input_size": h if h == w else [h, w],
            "normalization": {"mean": list(spec.mean), "std": list(spec.std)},
            "channels": spec.channels, "resize": spec.resize}


def _metric_value(entry: dict[str, Any] | None) -> Any:
    return None if entry is None else {"value": entry["value"], "ci": entry["ci"]}


def abnormality_figures(r: dict[str, Any]) -> dict[str, Any]:
    """The headline figures of an abnormality report
    (:func:`inference.training.evaluate.abnormality_report`) as the manifest carries them."""
    o = r["overall"]
    return {
        "study_auroc": _metric_value(o["study"]["auroc"]),
        "image_auroc": _metric_value(o["image"]["auroc"]),
        "study_sensitivity": _metric_value(o["study"]["sensitivity"]),
        "study_specificity": _metric_value(o["study"]["specificity"]),
        "study_kappa": _metric_value(o["study"]["kappa"]),
        "temperature": r.get("temperature"), "threshold": r.get("threshold"),
        "part_thresholds": r.get("part_thresholds", {}),
        "ece_before": r["calibration"]["ece_before"],
        "ece_after": r["calibration"]["ece_after"],
        "parts": {p: {"study_auroc": _metric_value(e["study"]["auroc"]),
                      "study_kappa": _metric_value(e["study"]["kappa"]),
                      "n_studies": e["n_studies"], "threshold": e["threshold"]}
                  for p, e in r["parts"].items()},
    }


def summary(model: TrainedModel) -> dict[str, Any]:
    """The compact metrics the manifest carries for ``model`` (full report: ``metrics/``)."""
    r = model.report
    cfg = model.config
    out: dict[str, Any] = {
        "task": model.task, "evaluated_on": r.get("split"),
        "selection_split": r.get("selection_split"),
        "n_images": r.get("n_images"), "n_studies": r.get("n_studies"),
        "skipped_images": len(r.get("skipped_images", [])),
        "best_epoch": r.get("best_epoch"), "epochs": r.get("epochs"),
        "init": model.init,
        "data": {"format": model.data.format, "description": model.data.description,
                 "citation": model.data.citation, "license": model.data.license},
        "split": {k: cfg.get(k) for k in ("seed", "val_fraction", "holdout", "block_size",
                                          "parts", "limit", "other")},
        "command": model.command,
        "trained": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if model.task == "abnormality":
        out.update(abnormality_figures(r))
    else:
        out.update({"accuracy": r["accuracy"], "kappa": r["kappa"], "recall": r["recall"],
                    "class_names": r["class_names"],
                    "accuracy_confidence_hm": r.get("accuracy_confidence_hm"),
                    "temperature": model.temperature})
    return out


# ------------------------------------------------------------------ manifest edits


def _new_manifest(model: TrainedModel, name: str | None, version: str | None,
                  license_: str | None) -> dict[str, Any]:
    return {
        "name": name or f"{model.key}-{model.architecture}",
        "version": version or "0.1.0",
        "intended_use": INTENDED_USE,
        "license": license_ or model.data.license or "unspecified (see MODEL_CARD.md)",
        "training_data": {"description": "", "citation": ""},
        "description": f"Trained with radview train ({model.task}); see {CARD}.",
        "metrics": {},
        "abnormality_models": {},
        "routing": {},
    }


def _existing(bundle_dir: Path) -> tuple[dict[str, Any], dict[str, dict[str, torch.Tensor]]]:
    """The raw manifest of a valid bundle and its weights (stored dtype kept, sha256
    checked on the bytes read)."""
    from safetensors.torch import load

    manifest = load_manifest(bundle_dir)
    raw = json.loads((bundle_dir / MANIFEST).read_text(encoding="utf-8"))
    states = {}
    for name, sha in manifest.weights_files:
        if name in states:
            continue
        data = (bundle_dir / name).read_bytes()
        if hashlib.sha256(data).hexdigest() != sha:
            raise BundleError(bundle_dir, f"{name}: changed since it was validated")
        states[name] = load(data)
    return raw, states


def _abnormality_entries(model: TrainedModel) -> tuple[dict[str, Any], dict[str, str]]:
    """Entries (base + per part) and routing for a binary model (see the module notes)."""
    weights = f"{model.key}.safetensors"
    base = {**_input_fields(model.architecture, model.input), "weights": weights,
            "sha256": "0" * 64, "threshold": model.threshold,
            "temperature": model.temperature,
            "cam_target_layer": model.cam_layer or ARCHITECTURES[model.architecture].cam_layer,
            "positive_label": model.positive_label,
            "description": f"{model.architecture} trained by radview on "
                           f"{model.data.description}; overall threshold",
            "aggregation": model.aggregation, "cam_method": model.cam_method}
    if model.doubt_threshold is not None:
        base["doubt_threshold"] = min(model.doubt_threshold, model.threshold)
    if model.box_head is not None:
        base["box_head"] = {**model.box_head, "weights": model.box_weights,
                            "sha256": "0" * 64}
    entries = {model.key: base}
    routing = {}
    for part in model.routing_parts:
        if part in model.part_thresholds:
            key = f"{model.key}-{part.lower()}"
            entries[key] = {**base, "threshold": model.part_thresholds[part],
                            "description": f"{model.key} with the threshold fitted on "
                                           f"{part} studies"}
            if model.doubt_threshold is not None:
                entries[key]["doubt_threshold"] = min(model.doubt_threshold,
                                                      model.part_thresholds[part])
            routing[part] = key
        else:
            routing[part] = model.key
    return entries, routing


def merge_model(manifest: dict[str, Any], states: dict[str, dict[str, torch.Tensor]],
                model: TrainedModel, router_confidence: float = 0.5) -> None:
    """Add or replace ``model`` in a raw manifest and its weights (in place)."""
    if model.task == "router":
        manifest["router"] = {**_input_fields(model.architecture, model.input),
                              "class_names": list(model.class_names),
                              "weights": "router.safetensors", "sha256": "0" * 64,
                              "confidence_threshold": router_confidence}
        states["router.safetensors"] = model.state_dict
    else:
        weights = f"{model.key}.safetensors"
        models = manifest.setdefault("abnormality_models", {})
        gone = {k for k, e in models.items() if e.get("weights") == weights}
        for k in gone:
            del models[k]
        routing = {p: m for p, m in manifest.get("routing", {}).items() if m not in gone}
        entries, routes = _abnormality_entries(model)
        clash = set(entries) & set(models)
        if clash:
            raise BundleError(Path(weights), f"model name(s) {sorted(clash)} already used by "
                                             f"other weights in the bundle: choose another "
                                             f"--model-name")
        models.update(entries)
        from inference.bodyparts import normalize_body_part

        for part in list(routing):
            if (normalize_body_part(part) or part) in routes:
                del routing[part]
        routing.update(routes)
        manifest["routing"] = routing
        states[weights] = model.state_dict
        if model.box_state is not None:
            states[model.box_weights] = model.box_state
        # Drop entries nothing routes to, unless a sibling on the same weights is routed.
        routed_weights = {models[m]["weights"] for m in routing.values()}
        for k in [k for k, e in models.items() if e["weights"] not in routed_weights]:
            log.info("dropping model %s: no body part routes to it any more", k)
            del models[k]
    used = {e["weights"] for e in manifest.get("abnormality_models", {}).values()}
    used |= {e["box_head"]["weights"] for e in manifest.get("abnormality_models", {}).values()
             if isinstance(e.get("box_head"), dict)}
    if manifest.get("router"):
        used.add(manifest["router"]["weights"])
    for name in list(states):
        if name not in used:
            del states[name]


def _combine_top(manifest: dict[str, Any], model: TrainedModel) -> None:
    """Training data, citation and init of the bundle from its models' metrics."""
    metrics = manifest.setdefault("metrics", {})
    present = set(manifest.get("abnormality_models", {})) | (
        {"router"} if manifest.get("router") else set())
    known = {k: v for k, v in metrics.items() if k in present and isinstance(v, dict)
             and "data" in v}
    for k in [k for k in metrics if k not in present and isinstance(metrics[k], dict)
              and "data" in metrics[k]]:
        del metrics[k]  # metrics of a model that was replaced under another name
    descriptions = [f"{k}: {v['data']['description']}" for k, v in sorted(known.items())]
    td = manifest.setdefault("training_data", {"description": "", "citation": ""})
    old = td.get("description", "")
    # Text from a bundle not written by radview train is kept in front.
    foreign = "" if not old or any(old.startswith(f"{k}: ") for k in known) else old
    td["description"] = "; ".join([d for d in [foreign, *descriptions] if d])
    citations = []
    for v in [*known.values()]:
        c = v["data"].get("citation")
        if c and c not in citations:
            citations.append(c)
    if foreign and td.get("citation") and td["citation"] not in citations:
        citations.insert(0, td["citation"])
    td["citation"] = "; ".join(citations)
    inits = {k: v["init"] for k, v in known.items() if "init" in v}
    if inits:
        manifest["init"] = {
            "weights": "imagenet" if any(i["weights"] == "imagenet" for i in inits.values())
            else "scratch",
            "license": "; ".join(f"{k}: {i['license']}" for k, i in sorted(inits.items())),
            "source": "; ".join(f"{k}: {i['source']}" for k, i in sorted(inits.items())),
        }


# ------------------------------------------------------------------------ the card


def _fmt(entry: dict[str, Any] | None) -> str:
    if not entry or entry.get("value") is None:
        return "n/a"
    lo, hi = entry.get("ci") or (None, None)
    ci = f" ({lo:.3f}–{hi:.3f})" if lo is not None and hi is not None else ""
    return f"{entry['value']:.3f}{ci}"


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _numbers(values: tuple[float, ...]) -> str:
    return "[" + ", ".join(f"{v:.4g}" for v in values) + "]"


def metrics_table(r: dict[str, Any], threshold: float) -> list[str]:
    """The card's per-part table of an abnormality report (``threshold``: the overall one,
    for rows whose own is None)."""
    lines = ["| part | studies (abnormal) | study AUROC | image AUROC | sensitivity | "
             "specificity | kappa | threshold |",
             "|---|---|---|---|---|---|---|---|"]
    for name, e in [("overall", r["overall"]), *sorted(r["parts"].items())]:
        lines.append(
            f"| {name} | {e['n_studies']} ({e['n_abnormal_studies']}) | "
            f"{_fmt(e['study']['auroc'])} | {_fmt(e['image']['auroc'])} | "
            f"{_fmt(e['study']['sensitivity'])} | {_fmt(e['study']['specificity'])} | "
            f"{_fmt(e['study']['kappa'])} | "
            f"{threshold if e['threshold'] is None else e['threshold']:.3f} |")
    return lines


def model_section(model: TrainedModel, plot_dir: str) -> str:
    """The markdown card section of one model."""
    r, cfg = model.report, model.config
    spec = model.input
    counts = r.get("counts", {})
    lines = [
        f"## {model.key} ({'body-part router' if model.task == 'router' else 'abnormality'})",
        "",
        f"- **Architecture**: {model.architecture}; input {spec.size[0]}×{spec.size[1]} px, "
        f"{spec.channels} channel(s) (gray replicated), resize {spec.resize}, normalization "
        f"mean {_numbers(spec.mean)} std {_numbers(spec.std)} (values 0–1).",
        f"- **Initialization**: {model.init.get('weights')} — {model.init.get('source')}; "
        f"license: {model.init.get('license')}.",
        f"- **Training data**: {model.data.description}"
        + (f" — license: {model.data.license}" if model.data.license else "") + ".",
    ]
    for name in ("train", "select", "valid"):
        c = counts.get(name)
        if c and not (name == "select" and r.get("selection_split") == "valid"):
            lines.append(f"  - {name}: {c['images']} images, {c['studies']} studies, "
                         f"{c['groups']} split groups")
    skipped = r.get("skipped_images", [])
    per_process = (f" per process × {model.world_size} processes" if model.world_size > 1
                   else "")
    lines += [
        f"  - unreadable images skipped: {len(skipped)}",
        f"- **Split**: by patient, else study, else block of {cfg.get('block_size')} "
        f"consecutive image ids (never by image); validation fraction "
        f"{cfg.get('val_fraction')} (fixed splits kept), seed {cfg.get('seed')}; model "
        f"selection, temperature and thresholds on: {r.get('selection_split')}"
        + (" — the reported metrics are therefore optimistic" if
           r.get("selection_split") == "valid" else "") + ".",
        f"- **Recipe**: {r.get('epochs')} epoch(s), best epoch {r.get('best_epoch')}; Adam "
        f"lr {cfg.get('lr')} betas {cfg.get('betas')}, batch {cfg.get('batch_size')}"
        f"{per_process}"
        f", lr ×{cfg.get('lr_factor')} after {cfg.get('lr_patience')} epoch(s) without "
        f"validation-loss improvement; flip p={cfg.get('hflip')}, rotation ±"
        f"{cfg.get('rotate')}°"
        + ("; per-body-part weighted BCE" if model.task == "abnormality" else
           f"; cross-entropy, label smoothing {cfg.get('label_smoothing')}")
        + (f"; confidence weights {cfg.get('confidence_weights')}"
           if cfg.get("confidence_weights") else "") + ".",
        "",
        "  ```",
        f"  {model.command}",
        "  ```",
        "",
    ]
    if model.task == "abnormality":
        lines += [
            f"- **Calibration**: temperature {model.temperature:.3f}"
            + (f" and a logit shift {r['calibration']['logit_shift']:+.3f} folded into the "
               f"classifier's bias (Platt scaling: undoes the class-weighted loss's pull "
               f"towards 0.5)" if r["calibration"].get("logit_shift") else "")
            + f" (NLL on the {r.get('selection_split', 'selection')} split); expected "
            f"calibration error on the validation split "
            f"{_number(r['calibration']['ece_before'])} before, "
            f"{_number(r['calibration']['ece_after'])} after"
            + (f"; mean predicted probability {_number(r['calibration']['mean_probability'])}"
               f" for a prevalence of {_number(r['calibration']['prevalence'])}"
               if r["calibration"].get("prevalence") is not None else "") + ".",
            f"- **Thresholds** (Youden's J on study scores of the selection split): overall "
            f"{model.threshold:.3f}"
            + "".join(f", {p} {t:.3f}" for p, t in sorted(model.part_thresholds.items()))
            + " (a part gets its own only with at least "
            f"{cfg.get('min_part_positives', 0)} positive selection studies). The threshold "
            "applies to the study score **and to every view**: one view at or above it "
            "flags the study, whatever the aggregate.",
            *_decision_lines(model),
            "",
            f"Metrics on the validation split ({r['n_studies']} studies, {r['n_images']} "
            f"images); 95 % percentile bootstrap intervals over studies "
            f"({r['bootstrap']['resamples']} resamples, seed {r['bootstrap']['seed']}):",
            "",
            *metrics_table(r, model.threshold),
        ]
    else:
        lines += [
            f"- **Calibration**: temperature {model.temperature:.3f}, folded into the final "
            f"layer (the router's probabilities are calibrated as stored).",
            "",
            f"Accuracy on the validation split: {_fmt(r['accuracy'])} ({r['n_images']} "
            f"images); Cohen's kappa {_number(r['kappa'])}"
            + (f"; on labels of confidence H/M: {_number(r['accuracy_confidence_hm'])} "
               f"({r['n_confidence_hm']} images)"
               if r.get("accuracy_confidence_hm") is not None else "") + ".",
            "",
            "| class | images | recall |", "|---|---|---|",
        ]
        for c in r["class_names"]:
            rec = r["recall"][c]
            lines.append(f"| {c} | {r['support'][c]} | "
                         f"{'n/a' if rec is None else format(rec, '.3f')} |")
    lines.append("")
    for p in model.plots:
        lines.append(f"![{p.stem}]({plot_dir}/{p.name})")
    if model.data.format == "fracatlas":
        lines += ["", "FracAtlas films often show casts and hardware: the model can learn "
                      "those shortcuts. Check the Grad-CAM maps, not only AUROC."]
    return "\n".join(lines) + "\n"


def _decision_lines(model: TrainedModel) -> list[str]:
    """Card lines on the study score, the DOUBT band and the box head (issue 14)."""
    r = model.report
    choice = r.get("aggregation_choice") or {}
    aucs = ", ".join(f"{k} {_number(v)}" for k, v in (choice.get("auroc") or {}).items())
    lines = [f"- **Study score**: {model.aggregation} of the view probabilities ("
             f"{choice.get('reason', 'given')}" + (f"; study AUROC {aucs}" if aucs else "")
             + ")."]
    doubt = r.get("doubt")
    if model.doubt_threshold is not None:
        lines.append(
            f"- **Study flag**: FRACTURE at the threshold; DOUBT from "
            f"{model.doubt_threshold:.3f} (the value at which "
            f"{model.config.get('doubt_sensitivity', 0.95):.0%} of the positive selection "
            f"studies are flagged); NO FRACTURE below."
            + (f" On the validation split: positive studies flagged at least DOUBT "
               f"{_number(doubt.get('sensitivity'))}, negative studies flagged at least "
               f"DOUBT {_number(doubt.get('flagged_negatives'))}." if doubt else ""))
    boxes = r.get("boxes")
    if boxes:
        lines.append(
            f"- **Boxes** (dense heatmap head on {boxes['layer']}, stride {boxes['stride']}, "
            f"trained on {boxes['source']}): fracture from peak heat "
            f"{boxes['threshold']:.3f}, doubt from {boxes['doubt_threshold']:.3f} (fitted on "
            f"the selection split). Validation: heat peak inside a fracture box on "
            f"{boxes['peak_in_box_count']} films; peak-heat AUROC boxed vs normal "
            f"{_number(boxes['peak_auroc'])}; boxes per normal film "
            f"{boxes['false_boxes_per_normal_image']}.")
    if model.cam_method != "gradcam":
        lines.append(f"- **Heat maps**: {model.cam_method} on {model.cam_layer}, scaled by the "
                     f"view's probability, hidden below the DOUBT threshold.")
    return lines


def render_card(manifest: dict[str, Any], sections: dict[str, str]) -> str:
    """``MODEL_CARD.md`` from the manifest and the models' sections."""
    td = manifest.get("training_data", {})
    init = manifest.get("init") or {}
    head = [
        f"# {manifest['name']} {manifest['version']}",
        "",
        "**Research use only — not for diagnosis.**",
        "",
        f"- **Intended use**: {manifest['intended_use']}",
        f"- **License of this bundle**: {manifest['license']}",
        f"- **Initialization weights**: {init.get('source', 'n/a')} — license "
        f"{init.get('license', 'n/a')}",
        f"- **Training data**: {td.get('description', '')}",
        "- **Routing**: " + ", ".join(f"{p} → {m}" for p, m in
                                       sorted(manifest.get("routing", {}).items())),
        "- **Router**: " + (", ".join(manifest["router"]["class_names"])
                             if manifest.get("router") else "none"),
        "",
        "Intended use: research and teaching on upper-extremity radiographs (the MURA body "
        "parts). Not validated for clinical use; performance on other populations, "
        "devices or body parts is unknown. The reported metrics come from the validation "
        "split named in each section.",
        "",
        "",
    ]
    body = [sections[k] for k in sorted(sections)]
    cite = ["## Citation", ""]
    if td.get("citation"):
        cite += [f"- Data: {c.strip()}" for c in td["citation"].split("; ") if c.strip()]
    cite += [f"- Software: {RADVIEW_CITATION}", ""]
    return "\n".join(head) + "\n".join(body) + "\n" + "\n".join(cite)


# ------------------------------------------------------------------------ writing


def export_bundle(out: str | os.PathLike[str], model: TrainedModel, *,
                  merge_into: str | os.PathLike[str] | None = None, name: str | None = None,
                  version: str | None = None, license: str | None = None,
                  fp16: bool = False, router_confidence: float = 0.5) -> Bundle:
    """Write ``model`` as a bundle at ``out`` (see the module notes).

    Parameters
    ----------
    out
        The bundle folder; replaced atomically when it exists.
    model
        The trained model.
    merge_into
        An existing bundle to add the model to (may be ``out`` itself).
    name, version, license
        Manifest fields (kept from ``merge_into`` when None).
    fp16
        Store floating weights as float16.
    router_confidence
        The router's ``confidence_threshold`` (0–1).

    Returns
    -------
    Bundle
        The written bundle, validated.

    Raises
    ------
    BundleError
        When ``merge_into`` is invalid, a router has no bundle to join, or the result does
        not validate.
    """
    out = Path(out)
    extras: dict[str, Path] = {}
    if merge_into:
        src = Path(merge_into)
        manifest, states = _existing(src)
        manifest.pop("schema", None)
        for sub in ("card", "plots", "metrics"):
            for f in sorted((src / sub).rglob("*")) if (src / sub).is_dir() else []:
                if f.is_file():
                    extras[f.relative_to(src).as_posix()] = f
        if (src / CARD).is_file() and not (src / "card").is_dir():
            extras["card/_earlier.md"] = src / CARD
        for k, v in {"name": name, "version": version, "license": license}.items():
            if v:
                manifest[k] = v
    else:
        if model.task == "router":
            raise BundleError(out, "a router alone is not a bundle (at least one "
                                   "abnormality model is required): pass --merge-into")
        manifest, states = _new_manifest(model, name, version, license), {}
    merge_model(manifest, states, model, router_confidence)
    manifest.setdefault("metrics", {})[model.key] = summary(model)
    _combine_top(manifest, model)
    plot_dir = f"plots/{model.key}"
    live = set(manifest["metrics"]) - {model.key}  # the new model's files are rewritten
    for rel in list(extras):
        top, rest = rel.split("/", 1)
        owner = rest.split("/")[0] if top == "plots" else Path(rest).stem
        if owner != "_earlier" and owner not in live:
            del extras[rel]
    section = model_section(model, plot_dir)

    parent = out.parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = parent / f".{out.name}.staging-{secrets.token_hex(4)}"
    try:
        write_bundle(staging, manifest, states, fp16=fp16)
        for rel, src_file in extras.items():
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src_file, staging / rel)
        (staging / plot_dir).mkdir(parents=True, exist_ok=True)
        for p in model.plots:
            shutil.copy2(p, staging / plot_dir / p.name)
        (staging / "metrics").mkdir(exist_ok=True)
        (staging / "metrics" / f"{model.key}.json").write_text(
            json.dumps(model.report, indent=2) + "\n", encoding="utf-8")
        (staging / "card").mkdir(exist_ok=True)
        (staging / "card" / f"{model.key}.md").write_text(section, encoding="utf-8")
        sections = {p.stem: p.read_text(encoding="utf-8")
                    for p in sorted((staging / "card").glob("*.md"))}
        final = json.loads((staging / MANIFEST).read_text(encoding="utf-8"))
        (staging / CARD).write_text(render_card(final, sections), encoding="utf-8")
        replace_folder(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    bundle = Bundle.load(out)
    log.info("bundle written: %s (%s)", out, ", ".join(
        [*(["router"] if bundle.manifest.router else []), *bundle.manifest.abnormality_models]))
    return bundle
