"""Exceptions of the AI engine, one hierarchy so the viewer can show any of them once.

::

    InferenceError                 anything the engine reports to the user
    ├── BundleError                a model bundle is refused (which field, which file, why)
    │   └── NoBundleError          no usable bundle was found (lists where it looked)
    ├── UnknownArchitectureError   an architecture name the registry does not know
    └── LayerNotFoundError         a Grad-CAM target layer path that does not exist
    Cancelled                      the caller asked to stop (not an error)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


class InferenceError(Exception):
    """Something in the AI engine failed; ``str(err)`` is a message for the user."""


class BundleError(InferenceError):
    """A model bundle cannot be used.

    Parameters
    ----------
    path
        The bundle folder (or the file inside it) concerned.
    problems
        One phrase per problem, each naming the field or file (e.g.
        ``"manifest.json: router.channels: must be 1 or 3, got 2"``).
    """

    def __init__(self, path: str | Path, problems: str | Sequence[str]) -> None:
        self.path = Path(path)
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        if len(self.problems) == 1:
            text = f"model bundle {self.path} refused: {self.problems[0]}"
        else:
            lines = "\n".join(f"  - {p}" for p in self.problems)
            text = f"model bundle {self.path} refused ({len(self.problems)} problems):\n{lines}"
        super().__init__(text)


class NoBundleError(BundleError):
    """No usable bundle in any search folder.

    Parameters
    ----------
    searched
        The folders looked in, in order.
    refused
        ``(folder, reason)`` for each bundle found but refused.
    """

    def __init__(self, searched: Sequence[Path], refused: Sequence[tuple[Path, str]] = ()):
        self.searched = list(searched)
        self.refused = list(refused)
        where = ", ".join(str(p) for p in self.searched) or "nowhere"
        problem = f"no model bundle found; pass --bundle DIR (searched: {where})"
        if self.refused:
            problem += "; refused: " + "; ".join(f"{p}: {r}" for p, r in self.refused)
        InferenceError.__init__(self, problem)
        self.path = self.searched[0] if self.searched else Path()
        self.problems = [problem]


class UnknownArchitectureError(InferenceError, ValueError):
    """An architecture name that :data:`inference.models.ARCHITECTURES` does not know."""


class LayerNotFoundError(InferenceError, ValueError):
    """A module path (e.g. ``"features.denseblock4"``) that does not exist in a model."""


class Cancelled(Exception):  # noqa: N818 - a request, not an error
    """Raised by :meth:`inference.engine.Engine.analyze` when ``cancelled()`` turned true."""
