"""Small helpers of the AI's Qt side.

The AI's state and requests live in :class:`viewer.session.Session`; the main window runs
them on a one-thread :class:`~viewer.qt.worker.WorkerPool` (one thread owns the models:
Grad-CAM hooks are not thread-safe and models are expensive to load).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # inference imports torch: only in the worker thread at run time
    from inference.bundle import BundleInfo

log = logging.getLogger(__name__)


def bundle_title(info: BundleInfo) -> str:
    """"name version" of a discovered bundle."""
    return f"{info.name} {info.version}".strip()
