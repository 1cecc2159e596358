"""Which body part a study shows, and whether the bundle has a model for it.

Pure logic on strings and numbers (no torch), so the viewer can use it as well.

Per image, the first of these that says something wins:

1. ``tag``: DICOM Body Part Examined (0018,0015), normalized with
   :func:`inference.bodyparts.normalize_body_part` (``THUMB`` → ``FINGER``, ``UPPER ARM``
   → ``HUMERUS``). Vague values (:data:`VAGUE_TAGS`, e.g. ``EXTREMITY``) say nothing about
   the part and are skipped;
2. ``path``: the MURA folder ``XR_<PART>``;
3. ``router``: the bundle's router model (the class with the highest probability).

Per study (:func:`study_part`): the part most images show. When images disagree, the
majority wins; a tie goes to the part backed by a ``tag``, then to the alphabetically
first; the study is flagged ``"images disagree: WRIST ×2, HAND ×1"``. When a part chosen
by the router has a confidence below the bundle's ``confidence_threshold``, the study is
flagged ``"low router confidence (0.42)"`` (the lowest such confidence). A user override
replaces all of this (source ``"override"``).

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
VAGUE_TAGS = frozenset({"EXTREMITY", "UPPER EXTREMITY", "UPPEREXTREMITY", "UPPER LIMB",
                        "UNKNOWN", "OTHER", "NONE", "N/A", "NA", "-"})


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
    """The body part decided for a study, and why it may deserve a second look."""

    part: str | None
    source: str | None
    flags: list[str] = field(default_factory=list)


def tag_or_path(tag_part: str | None, path_part: str | None) -> PartVote:
    """Steps 1–2: the part from the DICOM tag, else from the MURA folder.

    Returns
    -------
    PartVote
        ``PartVote(None, None)`` when neither says anything (the router must decide).
    """
    tag = normalize_body_part(tag_part)
    if tag and tag not in VAGUE_TAGS:
        return PartVote(tag, "tag")
    path = normalize_body_part(path_part)
    if path:
        return PartVote(path, "path")
    return PartVote(None, None)


def router_vote(probabilities: Mapping[str, float]) -> PartVote:
    """Step 3: the router's most probable class, normalized (``OTHER`` stays ``OTHER``)."""
    if not probabilities:
        return PartVote(None, None)
    name, prob = max(probabilities.items(), key=lambda kv: (kv[1], _neg(kv[0])))
    return PartVote(normalize_body_part(name), "router", float(prob))


def _neg(text: str) -> tuple[int, ...]:
    # Ties in max(): the alphabetically first name wins.
    return tuple(-ord(c) for c in text)


def study_part(votes: Sequence[PartVote], *, router_threshold: float | None = None,
               override: str | None = None) -> StudyPart:
    """Decide a study's body part from its images' votes (see the module notes).

    Parameters
    ----------
    votes
        One per image.
    router_threshold
        The bundle router's ``confidence_threshold`` (0–1); None: never flag.
    override
        A part chosen by the user; replaces everything (source ``"override"``).

    Returns
    -------
    StudyPart
        ``part`` None when no image says anything and there is no override.
    """
    if override is not None:
        part = normalize_body_part(override)
        if not part:
            raise ValueError("the body part override is empty")
        return StudyPart(part, "override")
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
