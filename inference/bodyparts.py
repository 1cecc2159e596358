"""Body parts: the seven MURA upper-extremity parts and the synonyms that map onto them."""

from __future__ import annotations

import re

#: The seven MURA upper-extremity body parts.
MURA_PARTS = ("ELBOW", "FINGER", "FOREARM", "HAND", "HUMERUS", "SHOULDER", "WRIST")

#: Synonyms of the MURA parts (keys: upper case, spaces/underscores/hyphens removed).
#: "ARM" is the DICOM Body Part Examined term for the upper arm (PS3.16 Annex L).
PART_SYNONYMS = {
    **{part: part for part in MURA_PARTS},
    "ELBOWS": "ELBOW",
    "FINGERS": "FINGER", "THUMB": "FINGER", "THUMBS": "FINGER",
    "FOREARMS": "FOREARM", "LOWERARM": "FOREARM", "LOWERARMS": "FOREARM",
    "HANDS": "HAND",
    "UPPERARM": "HUMERUS", "UPPERARMS": "HUMERUS", "ARM": "HUMERUS",
    "SHOULDERS": "SHOULDER",
    "WRISTS": "WRIST",
}


def normalize_body_part(value: str | None) -> str | None:
    """Map a body part text to a MURA part where it is one.

    Parameters
    ----------
    value
        Body Part Examined (0018,0015), a folder name part (``WRIST`` of ``XR_WRIST``) or
        any text.

    Returns
    -------
    str or None
        One of :data:`MURA_PARTS` for the parts and their synonyms (case, spaces,
        underscores and hyphens ignored: ``"upper_arm"`` → ``"HUMERUS"``, ``"Thumb"`` →
        ``"FINGER"``); any other text upper-cased as given (e.g. ``"CHEST"``, ``"KNEE"``)
        so callers see a non-MURA part; None when empty.
    """
    if value is None:
        return None
    cleaned = " ".join(str(value).replace("\0", " ").split()).upper()
    if not cleaned:
        return None
    key = re.sub(r"[\s_\-]+", "", cleaned)
    return PART_SYNONYMS.get(key, cleaned)
