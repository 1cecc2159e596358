"""Which body part a study shows, and whether the bundle has a model for it.

Pure logic on strings and numbers (no torch), so the viewer can use it as well.

Per image, the first of these that says something wins:

1. ``tag``: DICOM Body Part Examined (0018,0015), normalized with
   :func:`inference.bodyparts.normalize_body_part` (``THUMB`` → ``FINGER``, ``UPPER ARM``
   → ``HUMERUS``). Vague values (:data:`VAGUE_TAGS`, e.g. ``EXTREMITY``) say nothing about
   the part and are skipped;
2. ``path``: the MURA folder ``XR_<PART>``;
3. ``router``: the bundle's router model (the class with the highest probability).

Router classes that name the same part are one vote: their probabilities are summed
before the argmax (``ARM`` + ``HUMERUS`` → ``HUMERUS``; :func:`part_probabilities`).

Per study (:func:`study_part`), when the router's probabilities are given (the engine
always asks the router, whatever the tag or folder says, to cross-check them):

* images with a tag or folder decide by majority (a tie goes to the part backed by a
  ``tag``, then to the alphabetically first; flagged ``"images disagree: WRIST ×2, HAND
  ×1"``). When the router, averaged over the study's images, *confidently* names another
  part (``OTHER`` at or above ``other_threshold``, a part at or above
  ``confidence_threshold``), both are kept and the study is flagged ``"body part
  disputed: folder says SHOULDER, router says OTHER (0.97)"``;
* otherwise the router decides on the study-mean probabilities. ``OTHER`` needs
  ``other_threshold``: an upper-limb film is never dropped on a weak OTHER. An upper-limb
  part needs ``confidence_threshold``; below it the study is still scored (with the
  bundle's ``fallback_model``, a general upper-limb threshold, when it has one) under the
  most probable upper-limb part, and flagged ``"body part uncertain: HAND 0.41, WRIST
  0.32, OTHER 0.20"`` (``StudyPart.uncertain``).

Without router probabilities (older callers) the image votes decide by majority as above
and a router-chosen part below ``confidence_threshold`` is flagged ``"low router
confidence (0.42)"``. A user override replaces all of this (source ``"override"``).

A part with no model in the bundle's routing table (CHEST, KNEE, the router's OTHER, …)
is not supported: :func:`support` gives the reason ``"not supported by this model: CHEST
(this bundle covers: ELBOW, …)"`` and the engine returns no score at all.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from inference.bodyparts import normalize_body_part

#: Source strength, strongest first (used to break ties and to name a study's source).
SOURCES = ("override", "tag", "path", "router")

#: Body Part Examined values that name no part (ignored; the path or router decides).
#: Compared after :func:`vague_key` (case, spaces, underscores, hyphens, slashes ignored),
#: so ``UPPER_EXTREMITY``, ``Upper-Limb`` and ``N/A`` are vague too.
VAGUE_TAGS = frozenset({"EXTREMITY", "EXTREMITIES", "UPPER EXTREMITY", "UPPER LIMB",
                        "LIMB", "ARM AND HAND", "UNKNOWN", "OTHER", "NONE", "N/A", "NA",
                        "-", "SKELETON", "BONE", "BONES", "XR", "MSK"})

#: The router's class for anything that is not an upper-limb part.
OTHER = "OTHER"


def vague_key(text: str) -> str:
    """``"Upper_Extremity"`` → ``"UPPEREXTREMITY"``: the key vague tags are compared by."""
    return "".join(ch for ch in str(text).upper() if ch.isalnum())


_VAGUE_KEYS = frozenset(vague_key(t) for t in VAGUE_TAGS) | {""}


def is_vague(tag: str | None) -> bool:
    """Whether a Body Part Examined value names no part (see :data:`VAGUE_TAGS`)."""
    return tag is None or vague_key(tag) in _VAGUE_KEYS


@dataclass(frozen=True)
class PartVote:
    """What one image says about its body part.

    Attributes
    ----------
    part
        Normalized body part, or None when nothing is known.
    source
        ``"tag"``, ``"path"``, ``"router"`` or ``"override"``; None with ``part``.
    confidence
        The router's probability for ``part`` (``source == "router"`` only).
    """

    part: str | None
    source: str | None
    confidence: float | None = None


@dataclass(frozen=True)
class StudyPart:
    """The body part decided for a study, and why it may deserve a second look.

    Attributes
    ----------
    part, source
        The part (normalized) and where it came from; None when nothing is known.
    flags
        Reasons for a second look, in words.
    uncertain
        The router placed the study on the upper limb without being sure of the part:
        score it with the bundle's general upper-limb model (``fallback_model``).
    router_part, router_confidence
        The router's own opinion for the study (summed, study-mean probabilities), shown
        beside the decision; None when the router did not run.
    """

    part: str | None
    source: str | None
    flags: list[str] = field(default_factory=list)
    uncertain: bool = False
    router_part: str | None = None
    router_confidence: float | None = None


def tag_or_path(tag_part: str | None, path_part: str | None) -> PartVote:
    """Steps 1–2: the part from the DICOM tag, else from the MURA folder.

    Returns
    -------
    PartVote
        ``PartVote(None, None)`` when neither says anything (the router must decide).
    """
    tag = normalize_body_part(tag_part)
    if tag and not is_vague(tag):
        return PartVote(tag, "tag")
    path = normalize_body_part(path_part)
    if path:
        return PartVote(path, "path")
    return PartVote(None, None)


def part_probabilities(probabilities: Mapping[str, float]) -> dict[str, float]:
    """Router class probabilities summed by normalized part (``ARM`` and ``HUMERUS`` are
    both ``HUMERUS``; ``OTHER`` stays ``OTHER``)."""
    out: dict[str, float] = {}
    for name, prob in probabilities.items():
        part = normalize_body_part(name) or name
        out[part] = out.get(part, 0.0) + float(prob)
    return out


def _argmax(probs: Mapping[str, float]) -> tuple[str, float]:
    # Ties: the alphabetically first name wins, so dict order never matters.
    name, prob = max(probs.items(), key=lambda kv: (kv[1], _neg(kv[0])))
    return name, float(prob)


def router_vote(probabilities: Mapping[str, float]) -> PartVote:
    """Step 3 for one image: the most probable part after summing the classes that name
    the same part (:func:`part_probabilities`)."""
    if not probabilities:
        return PartVote(None, None)
    name, prob = _argmax(part_probabilities(probabilities))
    return PartVote(name, "router", prob)


def mean_part_probabilities(per_image: Sequence[Mapping[str, float] | None]
                            ) -> dict[str, float]:
    """The study's router opinion: :func:`part_probabilities` averaged over the images the
    router saw (empty when it saw none)."""
    seen = [part_probabilities(p) for p in per_image if p]
    if not seen:
        return {}
    parts = sorted({k for p in seen for k in p})
    return {k: sum(p.get(k, 0.0) for p in seen) / len(seen) for k in parts}


def _listing(probs: Mapping[str, float], n: int = 3) -> str:
    top = sorted(probs.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
    return ", ".join(f"{k} {v:.2f}" for k, v in top)


def _neg(text: str) -> tuple[int, ...]:
    # Ties in max(): the alphabetically first name wins.
    return tuple(-ord(c) for c in text)


def study_part(votes: Sequence[PartVote], *, router_threshold: float | None = None,
               override: str | None = None,
               router_probs: Sequence[Mapping[str, float] | None] | None = None,
               other_threshold: float | None = None) -> StudyPart:
    """Decide a study's body part from its images' votes (see the module notes).

    Parameters
    ----------
    votes
        One per image: its tag or folder (:func:`tag_or_path`), or a router vote.
    router_threshold
        The bundle router's ``confidence_threshold`` (0–1) for an upper-limb part; None:
        never uncertain.
    override
        A part chosen by the user; replaces everything (source ``"override"``).
    router_probs
        The router's class probabilities per image (None where it did not run); when
        given, the router cross-checks tags and folders and decides where they are silent.
    other_threshold
        The study-mean probability ``OTHER`` needs to refuse a study (default: the
        ``router_threshold``, else 0.5).

    Returns
    -------
    StudyPart
        ``part`` None when nothing says anything and there is no override.
    """
    mean = mean_part_probabilities(router_probs or [])
    r_part, r_conf = _argmax(mean) if mean else (None, None)
    if override is not None:
        part = normalize_body_part(override)
        if not part:
            raise ValueError("the body part override is empty")
        return StudyPart(part, "override", router_part=r_part, router_confidence=r_conf)
    if router_probs is None:
        return _by_votes(votes, router_threshold)
    part_thr = 0.5 if router_threshold is None else router_threshold
    other_thr = part_thr if other_threshold is None else other_threshold
    stated = [v for v in votes if v.part and v.source in ("tag", "path")]
    if stated:
        decided = _by_votes(stated, None)
        flags = list(decided.flags)
        if r_part is not None and r_part != decided.part and r_conf >= (
                other_thr if r_part == OTHER else part_thr):
            said = "the DICOM tag" if decided.source == "tag" else "the folder"
            flags.append(f"body part disputed: {said} says {decided.part}, the router says "
                         f"{r_part} ({r_conf:.2f})")
        return StudyPart(decided.part, decided.source, flags, router_part=r_part,
                         router_confidence=r_conf)
    if not mean:
        return StudyPart(None, None)
    if r_part == OTHER and r_conf >= other_thr:
        return StudyPart(OTHER, "router", [], router_part=r_part, router_confidence=r_conf)
    upper = {k: v for k, v in mean.items() if k != OTHER}
    if not upper:  # a router with OTHER only cannot place anything
        return StudyPart(OTHER, "router", [f"body part uncertain: {_listing(mean)}"],
                         router_part=r_part, router_confidence=r_conf)
    best, best_p = _argmax(upper)
    if r_part == best and best_p >= part_thr:
        return StudyPart(best, "router", [], router_part=r_part, router_confidence=r_conf)
    return StudyPart(best, "router", [f"body part uncertain: {_listing(mean)}"],
                     uncertain=True, router_part=r_part, router_confidence=r_conf)


def _by_votes(votes: Sequence[PartVote], router_threshold: float | None) -> StudyPart:
    """Majority of the image votes (ties: tag, then path, then alphabetical)."""
    known = [v for v in votes if v.part]
    if not known:
        return StudyPart(None, None)
    counts = Counter(v.part for v in known)
    best_source = {}
    for v in known:
        rank = SOURCES.index(v.source) if v.source in SOURCES else len(SOURCES)
        best_source[v.part] = min(best_source.get(v.part, len(SOURCES)), rank)
    # Majority; ties → the part with a tag behind it (then path), then alphabetical.
    part = min(counts, key=lambda p: (-counts[p], best_source[p], p))
    source = SOURCES[best_source[part]] if best_source[part] < len(SOURCES) else None
    flags = []
    if len(counts) > 1:
        listing = ", ".join(f"{p} ×{n}" for p, n in
                            sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
        flags.append(f"images disagree: {listing}; {part} used")
    if router_threshold is not None:
        low = [v.confidence for v in known if v.source == "router" and v.part == part
               and v.confidence is not None and v.confidence < router_threshold]
        if low:
            flags.append(f"low router confidence ({min(low):.2f})")
    return StudyPart(part, source, flags)


def support(part: str | None, routing: Mapping[str, str],
            *, has_router: bool = True) -> tuple[str | None, str | None]:
    """The model for ``part``, or why there is none.

    Parameters
    ----------
    part
        The study's normalized body part, or None when unknown.
    routing
        The bundle's routing table (normalized part → model name).
    has_router
        Whether the bundle has a router (only changes the wording for an unknown part).

    Returns
    -------
    tuple
        ``(model name, None)`` when supported, ``(None, reason)`` otherwise.
    """
    covers = ", ".join(sorted(routing)) or "nothing"
    if part is None:
        how = ("" if has_router else " and this bundle has no router model")
        return None, (f"body part unknown: no Body Part Examined, no MURA XR_<PART> "
                      f"folder{how}; choose the body part (this bundle covers: {covers})")
    model = routing.get(part)
    if model is None:
        return None, f"not supported by this model: {part} (this bundle covers: {covers})"
    return model, None


def scoring_model(decided: StudyPart, routing: Mapping[str, str],
                  fallback_model: str | None = None,
                  *, has_router: bool = True) -> tuple[str | None, str | None]:
    """The model entry that scores a study with the part ``decided``, or why none does:
    :func:`support`, except that an uncertain study goes to ``fallback_model`` (the
    bundle's general upper-limb entry) when the bundle has one."""
    if decided.uncertain and fallback_model is not None:
        return fallback_model, None
    return support(decided.part, routing, has_router=has_router)
