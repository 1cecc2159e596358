"""The application's state, without Qt: what is open, what is decoded, what the AI said.

Modelled on napari's ``ViewerModel``: a :class:`Session` owns the scan result, the active
study, the decode state of each of its images (pending / decoded / failed with a reason),
the study's AI state (idle / running with a token / done / failed / cancelled), the model
bundle in use and the reader's input. It emits :class:`Event`\\ s; the Qt main window only
reflects them and turns user actions into session calls.

Background work
---------------
All background work goes through an :class:`Executor` (one idiom for scanning, decoding,
bundle discovery and scoring). Every request carries a :class:`Token`; opening another
study, closing, cancelling or re-scoring cancels the old token, and a result that arrives
with a token that is no longer current is dropped. Nothing is counted from "finished"
notifications: a study is *loaded* when each of its images is decoded or failed, which
makes the sequence "switch study while the previous one is still decoding" safe.

Executors deliver callbacks on the session's thread (the GUI thread in the app; the
calling thread in :class:`ManualExecutor`, which tests drive step by step).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from viewer import loader, pixels
from viewer.analysis import input_fields
from viewer.display import DisplayPipeline
from viewer.measure import ReadingStore
from viewer.model import ImageRef, LoadResult, Patient, Study

if TYPE_CHECKING:  # inference imports torch: only in the AI worker at run time
    from inference.bundle import BundleInfo

log = logging.getLogger(__name__)

THUMB = 64  # thumbnail side, pixels

PENDING, DECODED, FAILED = "pending", "decoded", "failed"
IDLE, RUNNING, DONE, ERROR, CANCELLED = "idle", "running", "done", "failed", "cancelled"


# ============================================================================ plumbing


class Event:
    """A list of callbacks (``connect``/``disconnect``/``emit``), called in order.

    A callback that raises is logged and does not stop the others: a broken view must not
    wedge the session.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._callbacks: list[Callable[..., Any]] = []

    def connect(self, callback: Callable[..., Any]) -> None:
        self._callbacks.append(callback)

    def disconnect(self, callback: Callable[..., Any]) -> None:
        if callback in self._callbacks:
            self._callbacks.remove(callback)

    def emit(self, *args: Any) -> None:
        for cb in list(self._callbacks):
            try:
                cb(*args)
            except Exception:
                log.exception("handler of %s failed", self.name)


class Events:
    """The session's events (arguments in brackets).

    ``scan_started`` (paths), ``scan_finished`` (LoadResult), ``scan_failed`` (message),
    ``study_opened`` (Study), ``image_decoded`` (ImageState), ``image_failed``
    (ImageState), ``decode_progress`` (done, total), ``study_loaded`` (Study), ``study_closed``
    (), ``ai_started`` (AiState), ``ai_progress`` (done, total, what), ``ai_finished``
    (AiState), ``ai_failed`` (AiState), ``ai_cancelled`` (AiState), ``bundles_changed``
    (list of BundleInfo), ``bundle_changed`` (BundleInfo or None), ``override_changed``
    (part or None), ``message`` (text), ``error`` (text).
    """

    NAMES = ("scan_started", "scan_finished", "scan_failed", "study_opened", "image_decoded",
             "image_failed", "decode_progress", "study_loaded", "study_closed", "ai_started",
             "ai_progress", "ai_finished", "ai_failed", "ai_cancelled", "bundles_changed",
             "bundle_changed", "override_changed", "message", "error")

    def __init__(self) -> None:
        for name in self.NAMES:
            setattr(self, name, Event(name))


class Token:
    """A cancellation token for one request. Thread-safe; cancelling is final."""

    _counter = 0
    _lock = threading.Lock()

    def __init__(self, kind: str) -> None:
        with Token._lock:
            Token._counter += 1
            self.id = Token._counter
        self.kind = kind
        self._event = threading.Event()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def cancel(self) -> None:
        self._event.set()

    def __repr__(self) -> str:
        return f"Token({self.kind} #{self.id}{', cancelled' if self.cancelled else ''})"


Progress = Callable[..., None]


class Executor(Protocol):
    """Runs ``fn(token, progress)`` in the background.

    ``on_result(value)`` or ``on_error(exception)`` is called on the session's thread,
    unless the token was cancelled by then (nothing is called). ``progress(*args)`` from
    the job reaches ``on_progress(*args)`` on the session's thread.
    """

    def submit(self, fn: Callable[[Token, Progress], Any], token: Token, *,
               on_result: Callable[[Any], None], on_error: Callable[[BaseException], None],
               on_progress: Callable[..., None] | None = None, priority: int = 0) -> None: ...


@dataclass
class Job:
    """A job waiting in a :class:`ManualExecutor`."""

    fn: Callable[[Token, Progress], Any]
    token: Token
    on_result: Callable[[Any], None]
    on_error: Callable[[BaseException], None]
    on_progress: Callable[..., None] | None
    priority: int = 0
    label: str = ""

    def run(self) -> None:
        """Run the job now, on this thread, and deliver its outcome as an executor would."""
        if self.token.cancelled:
            return

        def progress(*args: Any) -> None:
            if self.on_progress is not None and not self.token.cancelled:
                self.on_progress(*args)

        try:
            value = self.fn(self.token, progress)
        except BaseException as exc:  # a decoder panic (pyo3) derives from BaseException
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            if not self.token.cancelled:
                self.on_error(exc)
            return
        if not self.token.cancelled:
            self.on_result(value)


class ManualExecutor:
    """Queues jobs; the caller runs them when and in the order it wants (tests, scripts).

    ``immediate=True`` runs each job as soon as it is submitted.
    """

    def __init__(self, immediate: bool = False) -> None:
        self.immediate = immediate
        self.jobs: list[Job] = []

    def submit(self, fn: Callable[[Token, Progress], Any], token: Token, *,
               on_result: Callable[[Any], None], on_error: Callable[[BaseException], None],
               on_progress: Callable[..., None] | None = None, priority: int = 0) -> None:
        job = Job(fn, token, on_result, on_error, on_progress, priority,
                  getattr(fn, "__name__", "job"))
        if self.immediate:
            job.run()
        else:
            self.jobs.append(job)

    def run_next(self, index: int = 0) -> Job:
        """Run the queued job at ``index`` (0: the oldest)."""
        job = self.jobs.pop(index)
        job.run()
        return job

    def run_all(self) -> int:
        """Run queued jobs (and those they queue) until none is left; returns how many."""
        n = 0
        while self.jobs:
            self.run_next()
            n += 1
        return n


# ======================================================================= state objects


@dataclass
class DecodedView:
    """What decoding one image gives the viewer (Qt-free, built in the worker)."""

    decoded: pixels.DecodedImage
    pipeline: DisplayPipeline
    thumbnail: np.ndarray  # uint8 (h, w), longest side ≤ THUMB


@dataclass
class ImageState:
    """Decode state of one image of the active study."""

    index: int
    ref: ImageRef
    status: str = PENDING  # PENDING, DECODED or FAILED
    reason: str = ""  # why it failed
    view: DecodedView | None = None

    @property
    def done(self) -> bool:
        return self.status != PENDING


@dataclass
class AiState:
    """The active study's analysis: ``status`` IDLE, RUNNING (``token`` set), DONE
    (``result``), ERROR (``error``) or CANCELLED."""

    status: str = IDLE
    token: Token | None = None
    result: Any = None  # inference.engine.StudyResult
    error: str = ""
    inputs: int = 0  # images sent to the model


@dataclass
class Review:
    """The reader's input for one study (kept while other studies are looked at)."""

    impression: str = ""
    agreement: str = ""


def study_key(study: Study) -> str:
    return study.uid or (str(study.source) if study.source is not None else str(id(study)))


# ============================================================================ the jobs


def decode_view(ref: ImageRef,
                decode: Callable[[ImageRef], pixels.DecodedImage] | None = None) -> DecodedView:
    """Decode one image and build its display pipeline and thumbnail (runs in a worker)."""
    decoded = (decode or pixels.decode)(ref)
    pipeline = DisplayPipeline(decoded.stored, decoded.spec)
    out = pipeline.render()
    h, w = out.shape
    step = max(1, int(np.ceil(max(h, w) / THUMB)))
    return DecodedView(decoded, pipeline, np.ascontiguousarray(out[::step, ::step]))


class EngineHolder:
    """Lives with the AI executor's single thread: the loaded engine, rebuilt when the
    bundle or device changes. Loading is lazy: torch is imported only there."""

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


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason or exc) or type(exc).__name__


# ============================================================================ session


class Session:
    """Everything the main window shows, and the only place that changes it.

    Parameters
    ----------
    decode_executor
        Runs scanning and decoding (several threads are fine).
    ai_executor
        Runs bundle discovery and scoring; must run one job at a time (the engine and
        Grad-CAM hooks are not thread-safe).
    device
        ``auto``, ``cpu`` or ``cuda`` for the models.
    extra_bundles
        Bundle folders to look at besides the default places.
    auto_analyze
        Score a study as soon as it is loaded (and a bundle is ready).
    decode
        The decoder (tests inject slow or failing ones).
    analyzer
        ``analyzer(holder, bundle_path, device, inputs, override_part, token, progress)``
        → StudyResult or None when cancelled (tests inject fakes); default runs the
        engine.
    discoverer
        ``discoverer(extra_paths)`` → list of BundleInfo (default
        :func:`inference.bundle.discover_bundles`).
    """

    def __init__(self, decode_executor: Executor, ai_executor: Executor, *,
                 device: str = "auto", extra_bundles: Sequence[str] = (),
                 auto_analyze: bool = True,
                 decode: Callable[[ImageRef], pixels.DecodedImage] | None = None,
                 analyzer: Callable[..., Any] | None = None,
                 discoverer: Callable[[list[Path]], list[BundleInfo]] | None = None) -> None:
        self.events = Events()
        self.decode_executor = decode_executor
        self.ai_executor = ai_executor
        self.device = device
        self.extra_bundles: list[str] = list(extra_bundles)
        self.auto_analyze = auto_analyze
        self._decode = decode or (lambda ref: pixels.decode(ref))
        self._analyzer = analyzer or _run_engine
        self._discoverer = discoverer or _discover
        self._holder = EngineHolder()

        self.result = LoadResult()
        self.study: Study | None = None
        self.patient: Patient | None = None
        self.images: list[ImageState] = []
        self.ai = AiState()
        self.override_part: str | None = None
        self.reviews: dict[str, Review] = {}
        #: The reader's measurements, annotations and key images, per image (issue 16).
        self.reading = ReadingStore()

        self.bundles: list[BundleInfo] = []
        self.bundle: BundleInfo | None = None
        self.off_reason = "looking for model bundles…"
        self.discovering = False

        self._scan_token: Token | None = None
        self._study_token: Token | None = None
        self._discover_token: Token | None = None
        self._loaded = False
        self._closed = False

    # ------------------------------------------------------------------ derived state
    @property
    def loaded(self) -> bool:
        """The active study is open and each of its images is decoded or failed."""
        return self.study is not None and self._loaded

    @property
    def decoding(self) -> bool:
        return self.study is not None and not self._loaded

    @property
    def scanning(self) -> bool:
        return self._scan_token is not None

    @property
    def pending(self) -> int:
        return sum(1 for im in self.images if im.status == PENDING)

    @property
    def decoded(self) -> list[ImageState]:
        return [im for im in self.images if im.status == DECODED]

    @property
    def failed(self) -> list[ImageState]:
        return [im for im in self.images if im.status == FAILED]

    @property
    def review(self) -> Review:
        """The reader's input for the active study (an empty one when none is open)."""
        if self.study is None:
            return Review()
        return self.reviews.setdefault(study_key(self.study), Review())

    @property
    def available(self) -> bool:
        """A usable model bundle is selected."""
        return self.bundle is not None

    @property
    def busy(self) -> bool:
        """Something is still running for the current state (scan, decode, AI, discovery)."""
        return (self.scanning or self.decoding or self.ai.status == RUNNING
                or self.discovering)

    def summary(self) -> str:
        """The status-bar line for the active study."""
        if self.study is None:
            return "No study open"
        n = len(self.images)
        if not self._loaded:
            return f"Decoding {n - self.pending} of {n} image(s)…"
        shown = len(self.decoded)
        msg = f"Study open: {shown} of {n} image(s) shown"
        if self.failed:
            msg += f"; {len(self.failed)} could not be shown — the study browser says why"
        if self.result.errors:
            msg += f"; {len(self.result.errors)} other file(s) could not be read"
        return msg

    # --------------------------------------------------------------------- opening
    def open_paths(self, paths: Sequence[str | Path]) -> Token | None:
        """Scan ``paths`` in the background, then open the first usable study."""
        paths = [str(p) for p in paths]
        if not paths:
            return None
        self._closed = False
        if self._scan_token is not None:
            self._scan_token.cancel()
        token = self._scan_token = Token("scan")
        self.events.scan_started.emit(paths)

        def job(tok: Token, progress: Progress) -> LoadResult:
            return loader.scan(paths, progress=progress, cancelled=lambda: tok.cancelled)

        self.decode_executor.submit(
            job, token, on_result=lambda r: self._on_scanned(token, r),
            on_error=lambda e: self._on_scan_failed(token, e),
            on_progress=lambda d, t: self.events.decode_progress.emit(d, t) if (
                token is self._scan_token) else None)
        return token

    def _on_scan_failed(self, token: Token, exc: BaseException) -> None:
        if token is not self._scan_token:
            return
        self._scan_token = None
        message = f"Could not scan: {_reason(exc)}"
        self.events.scan_failed.emit(message)
        self.events.error.emit(message)

    def _on_scanned(self, token: Token, result: LoadResult) -> None:
        if token is not self._scan_token:
            return  # a newer open superseded this one
        self._scan_token = None
        self.set_result(result)

    def set_result(self, result: LoadResult) -> None:
        """Take a scan result (from :meth:`open_paths` or a caller that scanned itself) and
        open its first usable study."""
        self.close_study(emit=self.study is not None)
        self.result = result
        self.events.scan_finished.emit(result)
        study = next((st for st in result.studies if any(im.ok for im in st.images)),
                     result.studies[0] if result.studies else None)
        if study is None:
            reasons = "; ".join(f"{e.path.name}: {e.reason}" for e in result.errors[:3])
            self.events.error.emit(f"Nothing could be opened. {reasons}".strip())
            return
        self.open_study(study)

    def add_paths(self, paths: Sequence[str | Path]) -> Token | None:
        """Scan ``paths`` in the background and add their studies to the open ones (the
        DICOM inbox: a received study appears in the browser; the active study stays).
        Opens the first new study when none is open."""
        paths = [str(p) for p in paths]
        if not paths:
            return None
        token = Token("add")

        def job(tok: Token, progress: Progress) -> LoadResult:
            return loader.scan(paths, progress=progress, cancelled=lambda: tok.cancelled)

        job.__name__ = "scan"
        self.decode_executor.submit(job, token, on_result=self._merge,
                                    on_error=lambda e: self.events.error.emit(
                                        f"Could not scan: {_reason(e)}"))
        return token

    def _merge(self, new: LoadResult) -> None:
        known = {st.uid for st in self.result.studies}
        added: list[Study] = []
        for patient in new.patients:
            fresh = [st for st in patient.studies if st.uid not in known]
            if not fresh:
                continue
            target = next((q for q in self.result.patients
                           if (q.id, q.name) == (patient.id, patient.name)), None)
            if target is None:
                patient.studies = fresh
                self.result.patients.append(patient)
            else:
                target.studies.extend(fresh)
            added += fresh
        self.result.errors.extend(new.errors)
        for name in ("ai_reports", "presentation_states"):
            if hasattr(new, name) and hasattr(self.result, name):
                getattr(self.result, name).extend(getattr(new, name))
        self.events.scan_finished.emit(self.result)
        if self.study is None and added:
            self.open_study(added[0])

    def find_patient(self, study: Study) -> Patient | None:
        return next((p for p in self.result.patients if study in p.studies), None)

    def open_study(self, study: Study) -> None:
        """Make ``study`` the active study and decode its images, first first.

        Opening the study that is already active does nothing (a double-click delivers
        two activations); any other study starts a new generation: the old decode and
        analysis tokens are cancelled and their late results dropped.
        """
        if study is self.study and not self._closed:
            return
        self._cancel_study_work()
        self._closed = False
        token = self._study_token = Token("study")
        self.study = study
        self.patient = self.find_patient(study)
        self.images = [ImageState(i, ref) for i, ref in enumerate(study.images)]
        self.ai = AiState()
        self._loaded = False
        if self.override_part is not None:
            self.override_part = None
            self.events.override_changed.emit(None)
        self.events.study_opened.emit(study)
        for im in self.images:
            if not im.ref.ok:
                im.status, im.reason = FAILED, im.ref.error or "cannot be read"
                self.events.image_failed.emit(im)
        todo = [im for im in self.images if im.status == PENDING]
        for order, im in enumerate(todo):
            self.decode_executor.submit(
                self._decode_job(im.ref), token,
                on_result=lambda v, s=im: self._on_decoded(token, s, v),
                on_error=lambda e, s=im: self._on_decode_failed(token, s, e),
                priority=len(todo) - order)
        self._check_loaded()

    def _decode_job(self, ref: ImageRef) -> Callable[[Token, Progress], DecodedView | None]:
        decode = self._decode

        def job(tok: Token, _progress: Progress) -> DecodedView | None:
            if tok.cancelled:
                return None
            return decode_view(ref, decode)

        job.__name__ = "decode"
        return job

    def _on_decoded(self, token: Token, im: ImageState, view: DecodedView | None) -> None:
        if token is not self._study_token or im.done:
            return
        if view is None:  # cancelled inside the job
            return
        im.status, im.view = DECODED, view
        self.events.image_decoded.emit(im)
        self._after_decode()

    def _on_decode_failed(self, token: Token, im: ImageState, exc: BaseException) -> None:
        if token is not self._study_token or im.done:
            return
        im.status, im.reason = FAILED, _reason(exc)
        self.events.image_failed.emit(im)
        self._after_decode()

    def _after_decode(self) -> None:
        n = len(self.images)
        self.events.decode_progress.emit(n - self.pending, n)
        self._check_loaded()

    def _check_loaded(self) -> None:
        if self._loaded or self.study is None or self.pending:
            return
        self._loaded = True
        self.events.study_loaded.emit(self.study)
        self.events.message.emit(self.summary())
        if self.auto_analyze and self.bundle is not None:
            self.analyze()

    def close_study(self, emit: bool = True) -> None:
        """Close the active study: cancel its decoding and analysis; late results are
        dropped."""
        self._cancel_study_work()
        self.study, self.patient, self.images = None, None, []
        self.ai = AiState()
        self._loaded = False
        self._closed = True
        if emit:
            self.events.study_closed.emit()

    def _cancel_study_work(self) -> None:
        if self._study_token is not None:
            self._study_token.cancel()
            self._study_token = None
        if self.ai.status == RUNNING and self.ai.token is not None:
            self.ai.token.cancel()

    def shutdown(self) -> None:
        """Cancel everything (the window is closing)."""
        for tok in (self._scan_token, self._discover_token):
            if tok is not None:
                tok.cancel()
        self._scan_token = self._discover_token = None
        self.close_study(emit=False)

    # ---------------------------------------------------------------------- bundles
    def discover_bundles(self, prefer: str | None = None) -> None:
        """Find bundles in the background; select ``prefer`` (a path) or the first valid."""
        if self._discover_token is not None:
            self._discover_token.cancel()
        token = self._discover_token = Token("discover")
        self.discovering = True
        extra = [Path(p) for p in self.extra_bundles]
        discoverer = self._discoverer

        def job(_tok: Token, _progress: Progress) -> list[BundleInfo]:
            return discoverer(extra)

        job.__name__ = "discover"
        self.ai_executor.submit(
            job, token, on_result=lambda found: self._on_discovered(token, found, prefer),
            on_error=lambda e: self._on_discovered(token, [], prefer, _reason(e)))

    def _on_discovered(self, token: Token, found: list[BundleInfo], prefer: str | None,
                       error: str | None = None) -> None:
        if token is not self._discover_token:
            return
        self._discover_token = None
        self.discovering = False
        self.bundles = list(found)
        self.events.bundles_changed.emit(self.bundles)
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
        self.set_bundle(choice, rescore=False)
        # a study that finished loading while bundles were still being looked for
        if (self.bundle is not None and self.loaded and self.ai.status == IDLE
                and self.auto_analyze):
            self.analyze()

    def add_bundle_folder(self, folder: str) -> None:
        self.extra_bundles.append(folder)
        self.discover_bundles(prefer=folder)

    def set_bundle(self, choice: BundleInfo | None, rescore: bool = True) -> None:
        """Use ``choice`` (None: AI off). Re-scores a loaded study when ``rescore``."""
        if choice is not None and choice.error:
            self.off_reason = f"{choice.name} {choice.version}: {choice.error}".strip()
            choice = None
        self.cancel_analysis(quiet=True)
        self.bundle = choice
        self.events.bundle_changed.emit(choice)
        if rescore and choice is not None and self.loaded:
            self.analyze()

    # ------------------------------------------------------------------------- AI
    def model_inputs(self) -> list[tuple]:
        """One input per decoded image, ``(key, pixels, tag_part, path_part)``: the image
        in its DEFAULT window (:func:`viewer.analysis.input_fields`), never the reader's."""
        return [input_fields(im.ref, im.view.pipeline) for im in self.decoded
                if im.view is not None]

    def analyze(self) -> Token | None:
        """Score the active study (cancels a running analysis). Returns its token, or None
        with an ``error``/``message`` event saying why nothing started."""
        if self.study is None:
            return None
        if self.bundle is None:
            self.events.error.emit(f"AI is off: {self.off_reason}")
            return None
        if not self._loaded:
            self.events.message.emit("Still decoding; analysis starts when done")
            return None
        inputs = self.model_inputs()
        if not inputs:
            self.ai = AiState(status=ERROR, error="No image of this study could be decoded: "
                                                  "nothing to score")
            self.events.ai_failed.emit(self.ai)
            return None
        self.cancel_analysis(quiet=True)
        token = Token("ai")
        self.ai = AiState(status=RUNNING, token=token, inputs=len(inputs))
        bundle_path, device, override = self.bundle.path, self.device, self.override_part
        holder, analyzer = self._holder, self._analyzer

        def job(tok: Token, progress: Progress):
            return analyzer(holder, bundle_path, device, inputs, override, tok, progress)

        job.__name__ = "analyze"
        self.events.ai_started.emit(self.ai)
        self.ai_executor.submit(
            job, token, on_result=lambda r: self._on_ai_result(token, r),
            on_error=lambda e: self._on_ai_error(token, e),
            on_progress=lambda d, t, w: self._on_ai_progress(token, d, t, w))
        return token

    def _on_ai_progress(self, token: Token, done: int, total: int, what: str) -> None:
        if token is self.ai.token and self.ai.status == RUNNING:
            self.events.ai_progress.emit(done, total, what)

    def _on_ai_result(self, token: Token, result: Any) -> None:
        if token is not self.ai.token or self.ai.status != RUNNING:
            return  # stale: another study, bundle, override or a cancel since
        if result is None:  # the engine noticed the cancellation
            return
        self.ai.status, self.ai.result = DONE, result
        self.events.ai_finished.emit(self.ai)

    def _on_ai_error(self, token: Token, exc: BaseException) -> None:
        if token is not self.ai.token or self.ai.status != RUNNING:
            return
        log.warning("AI analysis failed: %s", type(exc).__name__)
        self.ai.status, self.ai.error = ERROR, _reason(exc)
        self.events.ai_failed.emit(self.ai)

    def cancel_analysis(self, quiet: bool = False) -> None:
        """Cancel a running analysis (its result, if it still comes, is dropped)."""
        if self.ai.status != RUNNING:
            return
        if self.ai.token is not None:
            self.ai.token.cancel()
        self.ai.status = CANCELLED
        if not quiet:
            self.events.ai_cancelled.emit(self.ai)

    def set_override_part(self, part: str | None, rescore: bool = True) -> None:
        """Override the study's body part (None = automatic); re-scores a loaded study."""
        changed = part != self.override_part
        self.override_part = part
        if changed:
            self.events.override_changed.emit(part)
        if rescore and self.loaded and self.bundle is not None:
            self.analyze()


# ===================================================================== default workers


def _discover(extra: list[Path]) -> list[BundleInfo]:
    from inference.bundle import discover_bundles

    return discover_bundles(extra)


def _run_engine(holder: EngineHolder, bundle_path: Path, device: str, inputs: list[tuple],
                override_part: str | None, token: Token, progress: Progress):
    """Score one study with the engine (in the AI executor's thread); None if cancelled."""
    from inference.engine import Cancelled, ImageInput

    engine = holder.get(bundle_path, device)
    images = [ImageInput(key=k, pixels=px, tag_part=tag, path_part=path)
              for k, px, tag, path in inputs]
    try:
        return engine.analyze(images, override_part=override_part, cams=True,
                              progress=progress, cancelled=lambda: token.cancelled)
    except Cancelled:
        return None
