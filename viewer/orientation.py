"""Orientation letters at the edges of a view, from Patient Orientation (Qt-free).

Patient Orientation (0020,0020, PS3.3 C.7.6.1.1.1) names the patient direction of the
rows (towards increasing column index: the image's right edge) and of the columns
(towards increasing row index: the bottom edge) with the letters L/R, A/P, H/F (e.g.
``"R\\F"``, or ``"FL"`` for an oblique direction). The opposite edges get the opposite
letters. After the reader rotates or flips the view, each screen edge shows the direction
that now lies there (:func:`edge_letters`).
"""

from __future__ import annotations

import numpy as np

from viewer.viewstate import _orientation_matrix

_OPPOSITE = {"L": "R", "R": "L", "A": "P", "P": "A", "H": "F", "F": "H"}


def opposite(direction: str) -> str:
    """``"FL"`` → ``"HR"``."""
    return "".join(_OPPOSITE.get(c, c) for c in direction)


def edge_letters(orientation: tuple[str, ...], rotation: int = 0, flip_h: bool = False,
                 flip_v: bool = False) -> dict[str, str]:
    """Letters for the ``"left"``, ``"right"``, ``"top"`` and ``"bottom"`` screen edges.

    Parameters
    ----------
    orientation
        (row direction, column direction) as in :attr:`viewer.model.ImageRef.
        patient_orientation`; empty gives no letters.
    rotation, flip_h, flip_v
        The view's transform (:class:`viewer.viewstate.ViewState`: flip in image space,
        then rotate clockwise).
    """
    if len(orientation) != 2 or not all(orientation):
        return {}
    row_dir, col_dir = orientation
    inv = np.linalg.inv(_orientation_matrix(rotation, flip_h, flip_v))
    out = {}
    for edge, screen in (("right", (1, 0)), ("left", (-1, 0)), ("bottom", (0, 1)),
                         ("top", (0, -1))):
        x, y = np.rint(inv @ np.array(screen, dtype=float)).astype(int)
        if x:
            out[edge] = row_dir if x > 0 else opposite(row_dir)
        else:
            out[edge] = col_dir if y > 0 else opposite(col_dir)
    return out
