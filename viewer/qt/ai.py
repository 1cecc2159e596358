"""The AI worker: one thread owns the models; studies are analysed one at a time.

Grad-CAM hooks are not thread-safe and models are expensive to load, so a single worker
thread (its own pool of one) loads the bundle lazily, keeps the engine, and runs one study
at a time. Opening another study cancels the running job (checked between images) and any
result that arrives for a superseded request is dropped by its generation number.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

from viewer.qt.worker import Job, Worker, WorkerPool

if TYPE_CHECKING:  # inference imports torch: only in the worker thread at run time
    from inference.bundle import BundleInfo

log = logging.getLogger(__name__)


def bundle_title(info: BundleInfo) -> str:
    """"name version" of a discovered bundle."""
    return f"{info.name} {info.version}".strip()


class _EngineHolder:
    """Lives in the worker thread: the loaded engine, rebuilt when bundle/device change."""

    def __init__(self) -> None:
        self.engine = None
        self.key: tuple[str, str] | None = None

    def get(self, bundle_path: Path, device: str):
        key = (str(bundle_path), device)
        if self.engine is None or self.key != key:
            from inference.bundle import Bundle
            from inference.engine import Engine

            self.engine = Engine(Bundle.load(bundle_path), device=device)
            self.key = key
        return self.engine


def _discover_job(job: Job, extra: list[str]) -> list[BundleInfo]:
    from inference.bundle import discover_bundles

    return discover_bundles([Path(p) for p in extra])


def _analyze_job(job: Job, holder: _EngineHolder, bundle_path: Path, device: str,
                 inputs: list[tuple], override_part: str | None):
    # torch is imported here, in the worker, never on the GUI thread.
    from inference.engine import Cancelled, ImageInput

    engine = holder.get(bundle_path, device)
    inputs = [ImageInput(key=k, pixels=px, tag_part=tag, path_part=path)
              for k, px, tag, path in inputs]

    def progress(done: int, total: int, what: str) -> None:
        job.progress(done, total)
        job.yield_(what)

    try:
        return engine.analyze(inputs, override_part=override_part, cams=True,
                              progress=progress, cancelled=lambda: job.cancelled)
    except Cancelled:
        return None


class AiController(QObject):
    """Owns the AI worker. Signals are delivered on the GUI thread."""

    bundles_changed = Signal(list)  # list[BundleInfo]
    bundle_changed = Signal(object)  # BundleInfo or None
    started = Signal(object)  # the request token
    progress = Signal(int, int, str)
    result_ready = Signal(object, object)  # token, StudyResult
    failed = Signal(object, str)  # token, message

    def __init__(self, parent: QObject | None = None, device: str = "auto",
                 extra_bundles: list[str] | None = None) -> None:
        super().__init__(parent)
        self.pool = WorkerPool(self, threads=1)
        self.device = device
        self.extra = list(extra_bundles or [])
        self.bundles: list[BundleInfo] = []
        self.bundle: BundleInfo | None = None
        self.off_reason = "looking for model bundles…"
        self._holder = _EngineHolder()
        self._generation = 0
        self._current: Worker | None = None
        self.running = False
        self.discovering = False

    # -- bundles ------------------------------------------------------------------------
    def discover(self, prefer: str | None = None) -> None:
        """Find bundles in the background; select ``prefer`` (a path) or the first valid."""
        self.discovering = True
        worker = Worker(_discover_job, self.extra)
        worker.signals.returned.connect(lambda found: self._on_discovered(found, prefer))
        worker.signals.errored.connect(lambda e: self._on_discovered([], prefer, str(e)))
        self.pool.start(worker)

    def _on_discovered(self, found: list[BundleInfo], prefer: str | None,
                       error: str | None = None) -> None:
        self.discovering = False
        self.bundles = found
        self.bundles_changed.emit(found)
        valid = [b for b in found if b.error is None]
        choice = next((b for b in valid if prefer and Path(prefer) == b.path), None)
        if choice is None and valid:
            choice = valid[0]
        if choice is None:
            if error:
                self.off_reason = f"bundle search failed: {error}"
            elif found:
                self.off_reason = "no usable model bundle: " + "; ".join(
                    f"{b.path.name}: {b.error}" for b in found[:3])
            else:
                self.off_reason = ("no model bundle installed (resources/models, the user "
                                   "data folder, or --bundle DIR)")
        self.set_bundle(choice)

    def set_bundle(self, choice: BundleInfo | None) -> None:
        if choice is not None and choice.error:
            self.off_reason = f"{bundle_title(choice)}: {choice.error}"
            choice = None
        self.cancel()
        self.bundle = choice
        self.bundle_changed.emit(choice)

    @property
    def available(self) -> bool:
        return self.bundle is not None

    # -- analysis -----------------------------------------------------------------------
    def analyze(self, inputs: list[tuple], override_part: str | None = None) -> object | None:
        """Start analysing one study; returns a token identifying this request.

        ``inputs`` are ``(key, pixels, tag_part, path_part)`` tuples (see
        :class:`inference.engine.ImageInput`).
        """
        if self.bundle is None:
            return None
        self.cancel()
        self._generation += 1
        token = self._generation
        worker = Worker(_analyze_job, self._holder, self.bundle.path, self.device, inputs,
                        override_part)
        worker.signals.progress.connect(
            lambda d, t, g=token: self._on_progress(g, d, t))
        worker.signals.yielded.connect(lambda what, g=token: self._on_yield(g, what))
        worker.signals.returned.connect(lambda r, g=token: self._on_returned(g, r))
        worker.signals.errored.connect(lambda e, g=token: self._on_errored(g, e))
        worker.signals.finished.connect(lambda g=token: self._on_finished(g))
        self._current = worker
        self._last_total = len(inputs)
        self.running = True
        self.pool.start(worker)
        self.started.emit(token)
        return token

    def cancel(self) -> None:
        if self._current is not None:
            self._current.cancel()
            self._current = None
        self.running = False

    def _on_progress(self, token: int, done: int, total: int) -> None:
        if token == self._generation:
            self._last = (done, total)

    def _on_yield(self, token: int, what: str) -> None:
        if token == self._generation:
            done, total = getattr(self, "_last", (0, self._last_total))
            self.progress.emit(done, total, what)

    def _on_returned(self, token: int, result) -> None:
        if token != self._generation or result is None:
            return  # stale or cancelled
        self.result_ready.emit(token, result)

    def _on_errored(self, token: int, exc: Exception) -> None:
        if token != self._generation:
            return
        log.warning("AI analysis failed: %s", type(exc).__name__)
        self.failed.emit(token, str(exc) or type(exc).__name__)

    def _on_finished(self, token: int) -> None:
        if token == self._generation:
            self.running = False

    def shutdown(self) -> None:
        self.cancel()
        self.pool.cancel_all()
        self.pool.wait(30000)
