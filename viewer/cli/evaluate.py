"""``radview evaluate``: a bundle's metrics on a data set (see ``docs/training.md``).

::

    radview evaluate --bundle DIR --data PATH --format mura|csv|fracatlas --out DIR

:mod:`viewer.cli` runs :func:`main` (also as ``python -m viewer.cli evaluate …``, e.g.
under ``torchrun``). The evaluation code (:mod:`inference.training`) is imported inside
:func:`main`, when the command runs.

Exit status: 0 done, 2 refused (bad option, data or bundle: the message says which).
"""

from __future__ import annotations

import argparse
import os
import sys

from viewer.cli._common import start
from viewer.cli.train import data_options, fraction, headline, positive_int


def parser() -> argparse.ArgumentParser:
    """The ``radview evaluate`` argument parser."""
    p = argparse.ArgumentParser(
        prog="radview evaluate",
        description="Score a dataset split with a bundle's models: image- and study-level "
                    "AUROC, sensitivity, specificity and kappa per body part with bootstrap "
                    "intervals, router confusion; writes metrics.json and PNG plots.")
    p.add_argument("--bundle", required=True, metavar="DIR", help="the model bundle")
    data_options(p)
    p.add_argument("--out", required=True, metavar="DIR", help="folder for metrics.json and "
                                                                "the plots")
    p.add_argument("--model", action="append", dest="models", metavar="NAME",
                   help="evaluate only this model (router for the router); repeatable")
    p.add_argument("--split", choices=("valid", "select", "train", "all"), default="valid",
                   help="which split to score (default valid)")
    p.add_argument("--seed", type=int, help="split seed (default: as trained)")
    p.add_argument("--val-fraction", type=fraction, help="default: as trained")
    p.add_argument("--holdout", type=fraction, help="default: as trained")
    p.add_argument("--block-size", type=positive_int, help="default: as trained")
    p.add_argument("--batch-size", type=positive_int, default=32, help="default 32")
    p.add_argument("--bootstrap", type=positive_int, default=1000,
                   help="bootstrap resamples (default 1000)")
    return p


def main(argv: list[str]) -> int:
    """``radview evaluate``: returns the exit status (see the module notes)."""
    args = start(parser(), argv, progress_logger="inference")
    if isinstance(args, int):
        return args
    from inference.errors import InferenceError
    from inference.training.data import parse_parts
    from inference.training.evaluate import evaluate_bundle
    from viewer.training_input import read_model_input

    try:
        result = evaluate_bundle(
            args.bundle, args.data, args.format, args.out, models=args.models,
            split=args.split, parts=parse_parts(args.parts), limit=args.limit,
            cache_dir=args.cache_dir, device=args.device, batch_size=args.batch_size,
            resamples=args.bootstrap, seed=args.seed, val_fraction=args.val_fraction,
            holdout=args.holdout, block_size=args.block_size, progress=args.progress,
            reader=read_model_input)
    except InferenceError as exc:
        print(f"radview evaluate: {exc}", file=sys.stderr)
        return 2
    for key, report in result["models"].items():
        print(f"{key}: {headline(report)}")
    print(f"metrics: {os.path.join(args.out, 'metrics.json')}")
    return 0
