"""Frames of multi-frame images: background decoding, a bounded cache, cine (Qt-free).

The session decodes frame 1 of every image (the AI scores that frame). When the reader
moves to another frame, a :class:`FrameSet` decodes it — and then every other frame, in
order from the current one — on the session's decode executor, never on the GUI thread;
each frame gets its own :class:`~viewer.display.DisplayPipeline` built in the worker, so
the GUI only applies the window's lookup table (about 1 ms for 512 × 512).
:class:`Cine` is the play state (rate, looping); the Qt side owns the timer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from viewer import pixels
from viewer.display import DisplayPipeline
from viewer.model import ImageRef
from viewer.session import Token

#: Memory the decoded frames of one image may use (stored values plus the pipeline's
#: index image); frames farthest from the current one are dropped beyond it.
FRAME_BUDGET_BYTES = 768 * 1024 * 1024


@dataclass
class Frame:
    """One decoded frame."""

    index: int  # 0-based
    stored: np.ndarray
    pipeline: DisplayPipeline
    warnings: list[str]

    @property
    def nbytes(self) -> int:
        return int(self.stored.nbytes) * 2


def frame_count(ref: ImageRef) -> int:
    return ref.spec.number_of_frames if ref.spec is not None else 1


def decode_frame(ref: ImageRef, index: int,
                 decode: Callable[..., pixels.DecodedImage] | None = None) -> Frame:
    """Decode frame ``index`` and build its display pipeline (runs in a worker)."""
    decoded = (decode or pixels.decode)(ref, index)
    return Frame(index, decoded.stored, DisplayPipeline(decoded.stored, decoded.spec),
                 list(decoded.warnings))


def cine_rate(ds_values: dict[str, Any]) -> float | None:
    """Frames per second from Recommended Display Frame Rate (0008,2144), Cine Rate
    (0018,0040) or Frame Time (0018,1063, ms); None when none is usable."""
    for key in ("RecommendedDisplayFrameRate", "CineRate"):
        try:
            value = float(ds_values.get(key) or 0)
        except (TypeError, ValueError):
            value = 0
        if 0 < value <= 120:
            return value
    try:
        ms = float(ds_values.get("FrameTime") or 0)
    except (TypeError, ValueError):
        ms = 0
    return 1000.0 / ms if ms > 0 and 1000.0 / ms <= 120 else None


class FrameSet:
    """The frames of one image, decoded on request through an executor.

    Parameters
    ----------
    ref
        The image.
    executor
        A :class:`viewer.session.Executor` (callbacks on the GUI thread).
    on_ready
        ``on_ready(frame)`` when a frame is decoded (GUI thread).
    on_error
        ``on_error(index, message)`` when one cannot be decoded.
    first
        Frame 0 as the session decoded it (seeded, not decoded again).
    """

    def __init__(self, ref: ImageRef, executor: Any, *,
                 on_ready: Callable[[Frame], None] | None = None,
                 on_error: Callable[[int, str], None] | None = None,
                 first: Frame | None = None,
                 decode: Callable[..., pixels.DecodedImage] | None = None,
                 budget: int = FRAME_BUDGET_BYTES) -> None:
        self.ref = ref
        self.count = frame_count(ref)
        self.executor = executor
        self.on_ready = on_ready
        self.on_error = on_error
        self.decode = decode
        self.budget = budget
        self.frames: dict[int, Frame] = {}
        self.failed: dict[int, str] = {}
        self.pending: set[int] = set()
        self.current = 0
        self._token = Token("frames")
        if first is not None:
            self.frames[0] = first

    def get(self, index: int) -> Frame | None:
        return self.frames.get(index)

    def request(self, index: int, priority: int = 10) -> None:
        """Decode ``index`` unless it is cached, pending or known to fail."""
        if not (0 <= index < self.count) or index in self.frames or index in self.pending \
                or index in self.failed or self._token.cancelled:
            return
        self.pending.add(index)
        ref, decode = self.ref, self.decode

        def job(tok, _progress):
            return None if tok.cancelled else decode_frame(ref, index, decode)

        job.__name__ = "decode_frame"
        self.executor.submit(job, self._token, on_result=self._on_result,
                             on_error=lambda e, i=index: self._on_failed(i, e),
                             priority=priority)

    def prefetch(self, around: int | None = None) -> None:
        """Request every frame, in play order from ``around`` (default: current)."""
        start = self.current if around is None else around
        for k in range(min(self.count, max(1, self.capacity - 1))):
            self.request((start + k) % self.count, priority=max(0, 5 - k))

    @property
    def capacity(self) -> int:
        """How many frames fit the memory budget (frame 1, always kept, included)."""
        spec = self.ref.spec
        if spec is None:
            return self.count
        per = spec.rows * spec.columns * max(1, (spec.bits_allocated + 7) // 8) * 2
        return max(2, self.budget // max(1, per))

    def _on_result(self, frame: Frame | None) -> None:
        if frame is None:
            return
        self.pending.discard(frame.index)
        self.frames[frame.index] = frame
        self._evict()
        if self.on_ready is not None:
            self.on_ready(frame)

    def _on_failed(self, index: int, exc: BaseException) -> None:
        self.pending.discard(index)
        reason = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
        self.failed[index] = reason
        if self.on_error is not None:
            self.on_error(index, reason)

    def _evict(self) -> None:
        total = sum(f.nbytes for f in self.frames.values())
        if total <= self.budget:
            return
        n = self.count

        def distance(i: int) -> int:
            d = (i - self.current) % n  # frames ahead in play order are kept first
            return d

        for i in sorted(self.frames, key=distance, reverse=True):
            if total <= self.budget or i in (0, self.current):
                continue
            total -= self.frames.pop(i).nbytes

    def cancel(self) -> None:
        self._token.cancel()
        self.pending.clear()


class Cine:
    """Play state: ``fps`` (1–60), looping; :meth:`next_index` is what the timer shows."""

    def __init__(self, count: int, fps: float = 15.0) -> None:
        self.count = max(1, count)
        self.fps = fps
        self.playing = False

    @property
    def interval_ms(self) -> int:
        return max(1, round(1000.0 / max(1.0, min(60.0, self.fps))))

    def next_index(self, current: int, step: int = 1) -> int:
        return (current + step) % self.count
