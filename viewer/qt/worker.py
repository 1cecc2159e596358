"""One worker idiom for background work (loading, decoding; later inference).

Modelled on superqt's thread workers: a :class:`Worker` runs a function on a thread pool
and reports ``started``, ``progress``, ``returned``, ``errored`` and ``finished`` as Qt
signals delivered on the GUI thread. An exception never escapes: it becomes ``errored``
with the exception object, routed by the caller to one notification sink. Cancellation is
cooperative: the function receives a :class:`Job` and checks :attr:`Job.cancelled`
between steps.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from viewer.pixels import is_recoverable

log = logging.getLogger(__name__)


class Job:
    """Handle passed to the worker function: cancellation flag and progress reporting."""

    def __init__(self, signals: WorkerSignals) -> None:
        self._signals = signals
        self._cancelled = False

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> None:
        self._cancelled = True

    def progress(self, done: int, total: int) -> None:
        if not self._cancelled:
            self._signals.progress.emit(done, total)

    def yield_(self, value: Any) -> None:
        """Report an intermediate result (e.g. one decoded image of a study)."""
        if not self._cancelled:
            self._signals.yielded.emit(value)


class WorkerSignals(QObject):
    started = Signal()
    progress = Signal(int, int)
    yielded = Signal(object)
    returned = Signal(object)
    errored = Signal(object)
    finished = Signal()


class Worker(QRunnable):
    """Run ``fn(job, *args, **kwargs)`` on a thread pool.

    Keep a reference to the worker (``WorkerPool`` does) until ``finished``; connect to
    ``worker.signals`` before :meth:`WorkerPool.start`.
    """

    def __init__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self.setAutoDelete(False)
        self.signals = WorkerSignals()
        self.job = Job(self.signals)
        self._fn, self._args, self._kwargs = fn, args, kwargs

    def cancel(self) -> None:
        self.job.cancel()

    @property
    def cancelled(self) -> bool:
        return self.job.cancelled

    def run(self) -> None:
        if self.job.cancelled:  # cancelled while queued: skip the work, still finish
            self.signals.finished.emit()
            return
        self.signals.started.emit()
        try:
            result = self._fn(self.job, *self._args, **self._kwargs)
        except BaseException as exc:
            # A Rust decoder's panic (pyo3 PanicException) derives from BaseException: it is
            # one file's failure too. Only KeyboardInterrupt/SystemExit/... propagate.
            if not is_recoverable(exc):
                raise
            log.debug("worker %s failed", getattr(self._fn, "__name__", self._fn), exc_info=True)
            if not self.job.cancelled:
                self.signals.errored.emit(exc)
        else:
            if not self.job.cancelled:
                self.signals.returned.emit(result)
        finally:
            self.signals.finished.emit()


class WorkerPool(QObject):
    """A thread pool that keeps its workers alive until they finish.

    It uses all cores but one (at least one thread) so the GUI thread keeps a core.
    """

    def __init__(self, parent: QObject | None = None, threads: int | None = None) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        n = threads if threads is not None else max(1, (os.cpu_count() or 2) - 1)
        self._pool.setMaxThreadCount(n)
        self._active: set[Worker] = set()

    def start(self, worker: Worker, priority: int = 0) -> Worker:
        self._active.add(worker)
        worker.signals.finished.connect(lambda w=worker: self._active.discard(w))
        self._pool.start(worker, priority)
        return worker

    def cancel_all(self) -> None:
        for w in list(self._active):
            w.cancel()

    def active_count(self) -> int:
        return len(self._active)

    def wait(self, msecs: int = 10000) -> bool:
        return self._pool.waitForDone(msecs)


class _Progress(QObject):
    """Carries a job's progress calls from the worker thread to the GUI thread."""

    report = Signal(object)


class QtExecutor:
    """:class:`viewer.session.Executor` on a :class:`WorkerPool`: jobs run on the pool's
    threads; their results, errors and progress are delivered on the GUI thread (the
    worker's queued signals), and nothing is delivered once the job's token is cancelled."""

    def __init__(self, pool: WorkerPool) -> None:
        self.pool = pool

    def submit(self, fn: Callable[..., Any], token: Any, *, on_result: Callable[[Any], None],
               on_error: Callable[[BaseException], None],
               on_progress: Callable[..., None] | None = None, priority: int = 0) -> None:
        progress = _Progress()
        if on_progress is not None:
            progress.report.connect(lambda a: None if token.cancelled else on_progress(*a))

        def run(job: Job) -> Any:
            if token.cancelled:
                job.cancel()
                return None
            try:
                return fn(token, lambda *a: progress.report.emit(a))
            except BaseException as exc:  # a decoder's Rust panic derives from BaseException
                if isinstance(exc, KeyboardInterrupt | SystemExit):
                    raise
                raise _WrappedError(exc) from exc

        worker = Worker(run)
        worker.signals.returned.connect(lambda v: None if token.cancelled else on_result(v))
        worker.signals.errored.connect(lambda e: None if token.cancelled else on_error(
            e.exc if isinstance(e, _WrappedError) else e))
        worker.signals.finished.connect(progress.deleteLater)
        self.pool.start(worker, priority)


class _WrappedError(Exception):
    def __init__(self, exc: BaseException) -> None:
        super().__init__(str(exc))
        self.exc = exc
