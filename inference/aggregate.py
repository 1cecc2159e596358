"""Study scores from view probabilities, and the study flag (Qt-free, no torch).

A study has one or more views, each with a calibrated probability ``p_i``. Its **score**
aggregates them (the bundle's ``aggregation``, chosen at training on the selection
studies with several views):

=============  ================================  =====================================
aggregation    score                             note
=============  ================================  =====================================
``mean``       ``mean(p_i)``                     MURA's protocol; one fractured view
                                                 among normal ones is diluted
``max``        ``max(p_i)``                      the most suspicious view
``noisy_or``   ``1 - prod(1 - p_i)``             "at least one view is positive" for
                                                 independent views; grows with views
=============  ================================  =====================================

Whatever the aggregate, **a view above a threshold flags the study** (:func:`study_flag`):

* ``"positive"`` (FRACTURE) when the score or any view is ``>= threshold``;
* ``"doubt"`` (DOUBT) otherwise, when the score or any view is ``>= doubt_threshold``;
* ``"negative"`` (NO FRACTURE) otherwise.

So a study of one 0.93 view and two 0.15 views is flagged positive even though its mean
(0.41) is below the threshold. Training fits the thresholds on exactly this rule
(:func:`decision_statistic`), so what the report measures is what the viewer says.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Aggregations a manifest may name.
AGGREGATIONS = ("mean", "max", "noisy_or")
#: Flag values, strongest first.
FLAGS = ("positive", "doubt", "negative")


def aggregate(probabilities: Sequence[float], method: str = "mean") -> float:
    """The study score of view probabilities (0–1) by ``method`` (see the module table).

    Raises
    ------
    ValueError
        For an unknown method or no probabilities.
    """
    p = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    if p.size == 0:
        raise ValueError("a study score needs at least one view probability")
    if method == "mean":
        return float(p.mean())
    if method == "max":
        return float(p.max())
    if method == "noisy_or":
        return float(1.0 - np.prod(1.0 - np.clip(p, 0.0, 1.0)))
    raise ValueError(f"aggregation must be one of {', '.join(AGGREGATIONS)}, got {method!r}")


def decision_statistic(probabilities: Sequence[float], method: str = "mean") -> float:
    """``max(score, max view)``: the study is flagged at level ``t`` exactly when this is
    ``>= t`` (thresholds are fitted on it)."""
    p = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    return max(aggregate(p, method), float(p.max()))


def level(value: float, threshold: float, doubt_threshold: float | None) -> str:
    """``"positive"``, ``"doubt"`` or ``"negative"`` of one value (a view's probability or
    a decision statistic); ``doubt_threshold`` None means no doubt band."""
    if value >= threshold:
        return "positive"
    if doubt_threshold is not None and value >= doubt_threshold:
        return "doubt"
    return "negative"


def study_flag(probabilities: Sequence[float], threshold: float,
               doubt_threshold: float | None = None, method: str = "mean") -> tuple[float, str]:
    """``(score, flag)`` of a study (see the module notes)."""
    score = aggregate(probabilities, method)
    return score, level(decision_statistic(probabilities, method), threshold, doubt_threshold)


def flag_text(flag: str, positive_label: str, negative_label: str) -> str:
    """What the viewer writes for a flag: ``FRACTURE`` / ``DOUBT`` / ``NO FRACTURE``."""
    if flag == "positive":
        return positive_label.upper()
    if flag == "doubt":
        return "DOUBT"
    return negative_label.upper()
