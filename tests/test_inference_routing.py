"""Body-part routing: tag over folder over router, majority per study, explicit refusals."""

from __future__ import annotations

import pytest

from inference.bodyparts import MURA_PARTS
from inference.routing import (
    PartVote,
    StudyPart,
    is_vague,
    part_probabilities,
    router_vote,
    scoring_model,
    study_part,
    support,
    tag_or_path,
)

ROUTING = {part: "mura" for part in MURA_PARTS}


@pytest.mark.parametrize("tag,path,expected", [
    # The DICOM tag wins over the folder name.
    ("WRIST", "HAND", PartVote("WRIST", "tag")),
    # Synonyms are normalized: a thumb is a finger, an upper arm a humerus.
    ("THUMB", None, PartVote("FINGER", "tag")),
    ("Upper_Arm", None, PartVote("HUMERUS", "tag")),
    ("ARM", None, PartVote("HUMERUS", "tag")),
    # A vague tag says nothing: the MURA folder decides.
    ("EXTREMITY", "ELBOW", PartVote("ELBOW", "path")),
    # No tag: the folder.
    (None, "SHOULDER", PartVote("SHOULDER", "path")),
    ("", "SHOULDER", PartVote("SHOULDER", "path")),
    # A non-MURA tag is kept as it is (and will be refused later, not re-guessed).
    ("CHEST", "WRIST", PartVote("CHEST", "tag")),
    # Nothing known: the router must decide.
    (None, None, PartVote(None, None)),
])
def test_tag_over_path(tag, path, expected):
    assert tag_or_path(tag, path) == expected


def test_router_classes_naming_one_part_share_a_vote():
    # ARM (DICOM's upper arm) and HUMERUS are one part: 0.3 + 0.3 beats SHOULDER's 0.4;
    # they used to split the vote and hand humerus films to the shoulder model.
    assert router_vote({"ARM": 0.3, "HUMERUS": 0.3, "SHOULDER": 0.4}) == PartVote(
        "HUMERUS", "router", pytest.approx(0.6))
    assert part_probabilities({"ARM": 0.3, "HUMERUS": 0.3, "OTHER": 0.4}) == {
        "HUMERUS": pytest.approx(0.6), "OTHER": 0.4}


@pytest.mark.parametrize("tag", [
    # Spellings of "no particular part" must not block routing, whatever the separators.
    "UPPER_EXTREMITY", "UPPER-LIMB", "Upper Extremity", "upper_limb", "EXTREMITY", "N/A",
    "  ", "unknown",
])
def test_vague_tags_in_any_spelling_defer_to_the_folder(tag):
    assert tag_or_path(tag, "WRIST") == PartVote("WRIST", "path")
    assert is_vague(tag)


def test_router_vote_takes_the_most_probable_class():
    vote = router_vote({"HAND": 0.2, "wrist": 0.7, "OTHER": 0.1})
    assert vote == PartVote("WRIST", "router", 0.7)
    # Ties: alphabetical, so the result never depends on dict order.
    assert router_vote({"HAND": 0.5, "ELBOW": 0.5}).part == "ELBOW"


T, P, R = "tag", "path", "router"


@pytest.mark.parametrize("votes,expected_part,expected_source,flags", [
    # All agree: no flag.
    ([("WRIST", P), ("WRIST", P)], "WRIST", P, []),
    # Majority wins and the disagreement is flagged.
    ([("WRIST", R), ("WRIST", R), ("HAND", T)], "WRIST", R,
     ["images disagree: WRIST ×2, HAND ×1; WRIST used"]),
    # A tie goes to the part a DICOM tag backs ...
    ([("HAND", R), ("WRIST", T)], "WRIST", T, ["images disagree: HAND ×1, WRIST ×1; WRIST used"]),
    # ... then to the alphabetically first.
    ([("WRIST", P), ("HAND", P)], "HAND", P, ["images disagree: HAND ×1, WRIST ×1; HAND used"]),
    # The study's source is the strongest one behind its part.
    ([("ELBOW", R), ("ELBOW", T)], "ELBOW", T, []),
    # Images that say nothing do not vote.
    ([(None, None), ("FOREARM", P)], "FOREARM", P, []),
    ([(None, None)], None, None, []),
])
def test_study_part(votes, expected_part, expected_source, flags):
    result = study_part([PartVote(p, s) for p, s in votes])
    assert (result.part, result.source, result.flags) == (expected_part, expected_source, flags)


@pytest.mark.parametrize("confidences,flag", [
    # Below the bundle's threshold: flagged with the lowest confidence.
    ([0.42, 0.9], "low router confidence (0.42)"),
    # At the threshold is enough.
    ([0.5], None),
    ([0.95], None),
])
def test_low_router_confidence(confidences, flag):
    votes = [PartVote("HAND", "router", c) for c in confidences]
    result = study_part(votes, router_threshold=0.5)
    assert result.flags == ([flag] if flag else [])


def test_low_confidence_only_counts_for_the_chosen_part():
    # A shaky router guess that lost the vote does not flag the study.
    votes = [PartVote("HAND", "tag"), PartVote("HAND", "tag"), PartVote("WRIST", "router", 0.2)]
    assert not any("low router" in f for f in study_part(votes, router_threshold=0.5).flags)


def test_override_replaces_everything():
    votes = [PartVote("WRIST", "tag"), PartVote("HAND", "router", 0.1)]
    result = study_part(votes, router_threshold=0.5, override="thumb")
    assert (result.part, result.source, result.flags) == ("FINGER", "override", [])
    with pytest.raises(ValueError, match="empty"):
        study_part(votes, override=" ")


@pytest.mark.parametrize("part,model,reason", [
    ("WRIST", "mura", None),
    # Parts outside the bundle are refused with the list of what it covers.
    ("CHEST", None, "not supported by this model: CHEST (this bundle covers: ELBOW, FINGER, "
                    "FOREARM, HAND, HUMERUS, SHOULDER, WRIST)"),
    ("KNEE", None, "not supported by this model: KNEE"),
    # The router's "not a radiograph / not an upper extremity" class.
    ("OTHER", None, "not supported by this model: OTHER"),
    # Nothing known at all.
    (None, None, "body part unknown"),
])
def test_support(part, model, reason):
    got_model, got_reason = support(part, ROUTING)
    assert got_model == model
    if reason is None:
        assert got_reason is None
    else:
        assert got_reason.startswith(reason)


def test_unknown_part_without_router_says_so():
    _, reason = support(None, {"WRIST": "w"}, has_router=False)
    assert "no router model" in reason and "covers: WRIST" in reason


# ----------------------------------------------------------- with router probabilities

HAND_SURE = {"HAND": 0.9, "WRIST": 0.05, "OTHER": 0.05}
OTHER_SURE = {"OTHER": 0.95, "HAND": 0.05}
OTHER_WEAK = {"OTHER": 0.55, "WRIST": 0.3, "HAND": 0.15}
SPLIT = {"HAND": 0.45, "WRIST": 0.4, "OTHER": 0.15}


@pytest.mark.parametrize("votes,probs,part,source,uncertain,flag", [
    # Router alone and sure: its part, no flag.
    ([(None, None)], [HAND_SURE], "HAND", R, False, None),
    # Router sure of OTHER (≥ other_threshold 0.8): refused later as OTHER.
    ([(None, None)], [OTHER_SURE], "OTHER", R, False, None),
    # A weak OTHER never drops an upper-limb film: best upper part, uncertain.
    ([(None, None)], [OTHER_WEAK], "WRIST", R, True, "body part uncertain: OTHER 0.55"),
    # Upper limb for sure but hand/wrist split: uncertain, best guess HAND.
    ([(None, None)], [SPLIT], "HAND", R, True, "body part uncertain: HAND 0.45, WRIST 0.40"),
    # Study mean over images: one sure HAND film outweighs a weak OTHER film.
    ([(None, None), (None, None)], [HAND_SURE, OTHER_WEAK], "HAND", R, False, None),
    # The folder speaks and the router confidently disagrees (a knee in XR_SHOULDER):
    # the folder's part is kept, both are shown.
    ([("SHOULDER", P)], [OTHER_SURE], "SHOULDER", P, False,
     "body part disputed: the folder says SHOULDER, the router says OTHER (0.95)"),
    # A weak router disagreement is not worth a flag.
    ([("WRIST", T)], [SPLIT], "WRIST", T, False, None),
])
def test_study_part_with_router(votes, probs, part, source, uncertain, flag):
    result = study_part([PartVote(p, s) for p, s in votes], router_threshold=0.5,
                        other_threshold=0.8, router_probs=probs)
    assert (result.part, result.source, result.uncertain) == (part, source, uncertain)
    if flag is None:
        assert result.flags == []
    else:
        assert len(result.flags) == 1 and result.flags[0].startswith(flag)


SCORING = [
    # (decided part, uncertain, fallback entry, expected model, reason fragment)
    ("HAND", False, "fracture-upper", "mura-hand", None),       # sure: the part's entry
    ("HAND", True, "fracture-upper", "fracture-upper", None),   # unsure: the general entry
    ("HAND", True, None, "mura-hand", None),                    # no general entry: best guess
    ("OTHER", False, "fracture-upper", None, "not supported"),  # refused, fallback or not
    ("KNEE", True, "fracture-upper", "fracture-upper", None),   # unsure beats a missing entry
    (None, False, None, None, "body part unknown"),             # nothing known
]


@pytest.mark.parametrize(("part", "uncertain", "fallback", "model", "reason"), SCORING)
def test_scoring_model_is_the_entry_the_engine_uses(part, uncertain, fallback, model, reason):
    decided = StudyPart(part, "router" if part else None, uncertain=uncertain)
    name, why = scoring_model(decided, {"HAND": "mura-hand"}, fallback)
    assert name == model
    assert (why is None) if reason is None else (reason in why)
