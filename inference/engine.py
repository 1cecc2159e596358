"""The inference engine: one study in, a routed, scored and explained result out.

::

    engine = Engine(Bundle.load(path))            # models load lazily, once, and stay
    result = engine.analyze([ImageInput(key, pixels, tag_part, path_part), ...])
    result.supported, result.score, result.label, result.images[0].cam

Steps of :meth:`Engine.analyze` (``progress`` is called before each, ``cancelled`` is
polled between them and :class:`~inference.errors.Cancelled` raised when it turns true):

1. **route**: each image's body part from its tag, its MURA folder, else the router model
   (one batched forward pass over the images that need it); the study's part by majority
   (:mod:`inference.routing`). A user override skips all of this.
2. **support**: a part without a model in the bundle's routing table gives
   ``supported=False`` and a reason, and no score at all.
3. **load**: the abnormality model for the part (first use only).
4. **score**: the study's images in batches of at most :attr:`Engine.max_batch`, one
   forward pass per batch; with CAMs, the same pass also gives Grad-CAM maps
   (:class:`inference.gradcam.CamRunner`: one backward pass through the head only).
   ``probability = sigmoid(logit / temperature)``, where a model with a box head whose
   manifest gives score terms has the head's peak in its logit
   (:func:`inference.boxes.attach_box_head`), so the maps explain that logit too.
5. **map**: each CAM back onto its image's own pixel grid
   (:func:`inference.preprocess.cam_to_image`), and each box-head heatmap into boxes in
   image pixels (:func:`inference.boxes.heat_boxes`).

The study score aggregates its images' probabilities as the bundle says (``mean``, the
MURA protocol of Rajpurkar et al. 2017, by default; ``max``; ``noisy_or``: see
:mod:`inference.aggregate`). The study **flag** is ``"positive"`` when the score or any
view is ``>= threshold`` (a value exactly at the threshold is positive), else ``"doubt"``
when the score or any view is ``>= doubt_threshold``, else ``"negative"``; the label is
``positive_label`` for a positive flag and ``negative_label`` otherwise, so one clearly
fractured view is never averaged away.

Maps are honest about how sure the model is: a CAM keeps its shape (scaled to its own
maximum by pytorch-grad-cam) but is multiplied by the view's probability, so a view at
p = 0.27 gets a map of at most 0.27, and it is dropped (``cam`` None) for a view below
the doubt threshold (the threshold when the bundle has no doubt band). Boxes are given
only for views at or above that level too.

Threads
-------
:class:`Engine` sets ``torch.set_num_threads(max(1, os.cpu_count() - 1))`` when created,
so that intra-op parallelism leaves one core to the GUI thread. The engine is meant to be
used from one worker thread (Grad-CAM hooks keep per-call state); a lock serialises calls
anyway.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from inference.aggregate import aggregate, decision_statistic, flag_text, level
from inference.bodyparts import normalize_body_part
from inference.bundle import Bundle, ModelSpec
from inference.errors import Cancelled, InferenceError
from inference.gradcam import CamRunner
from inference.models import optimize_for_inference
from inference.preprocess import cam_to_image, prepare_batch
from inference.routing import router_vote, scoring_model, study_part, tag_or_path

log = logging.getLogger(__name__)

#: Images per forward pass; a longer study is scored in several batches.
MAX_BATCH = 8


@dataclass
class ImageInput:
    """One image of a study, as the engine needs it.

    Attributes
    ----------
    key
        Identifies the image in the result (the file path, as a string).
    pixels
        ``uint8`` (rows, columns): the image rendered in its **default** display window
        (never the user's current window/level), 0 black.
    tag_part
        Body Part Examined (0018,0015), normalized, or None.
    path_part
        The part from a MURA ``XR_<PART>`` folder, or None.
    """

    key: str
    pixels: np.ndarray
    tag_part: str | None = None
    path_part: str | None = None


@dataclass
class ImageResult:
    """The engine's result for one image.

    Attributes
    ----------
    body_part, body_part_source
        What this image says about its part (``"tag"``, ``"path"``, ``"router"``,
        ``"override"``), or None.
    router_probs
        Router class → probability (0–1), when the router ran for this image.
    probability
        Temperature-scaled probability of the positive label (0–1); None when the study
        is not supported.
    cam
        float32 (rows, columns) in [0, 1] on the image's own pixel grid (same shape as
        its ``pixels``); None without CAMs or when not supported.
    """

    key: str
    body_part: str | None
    body_part_source: str | None
    router_probs: dict[str, float] | None
    probability: float | None
    cam: np.ndarray | None
    #: ``"positive"``, ``"doubt"`` or ``"negative"`` of this view's probability (None
    #: when not scored); see :func:`inference.aggregate.level`.
    level: str | None = None
    #: Boxes from the model's box head, ``{x0, y0, x1, y1, score, level}`` in this image's
    #: pixels, best first (``level`` ``"fracture"`` or ``"doubt"``); None when the model
    #: has no box head or the view was not scored.
    boxes: list[dict] | None = None


@dataclass
class StudyResult:
    """The engine's result for one study.

    Attributes
    ----------
    body_part, body_part_source
        The study's part and where it came from (see :mod:`inference.routing`).
    supported
        Whether the bundle has a model for the part; when False, ``reason`` says why and
        ``score``, ``label`` and every image probability are None.
    model
        The abnormality model's name in the bundle.
    score
        The image probabilities aggregated as the bundle says (0–1; :attr:`aggregation`).
    label
        ``positive_label`` when :attr:`flag` is ``"positive"`` (the score or any view
        ``>= threshold``), else ``negative_label``.
    threshold
        The model's decision threshold, on the score and on each view.
    flags
        Reasons for a second look (``"images disagree: …"``, ``"body part uncertain: …"``,
        ``"body part disputed: …"``).
    images
        One :class:`ImageResult` per input image, in input order.
    part_uncertain
        The router placed the study on the upper limb without being sure of the part; it
        was scored with the bundle's general upper-limb model when it has one.
    router_part, router_confidence
        The router's own study-level opinion (None without a router or with an override).
    flag
        ``"positive"``, ``"doubt"`` or ``"negative"`` (see the module notes); None when
        not supported. :attr:`flag_text` says it in words (``FRACTURE`` …).
    doubt_threshold
        Lower edge of the DOUBT band (None: the model has none).
    aggregation
        How ``score`` was computed (``"mean"``, ``"max"``, ``"noisy_or"``).
    positive_label, negative_label
        The model's labels (for :attr:`flag_text`).
    """

    body_part: str | None
    body_part_source: str | None
    supported: bool
    reason: str | None
    model: str | None
    score: float | None
    label: str | None
    threshold: float | None
    flags: list[str] = field(default_factory=list)
    images: list[ImageResult] = field(default_factory=list)
    part_uncertain: bool = False
    router_part: str | None = None
    router_confidence: float | None = None
    flag: str | None = None
    doubt_threshold: float | None = None
    aggregation: str | None = None
    positive_label: str | None = None
    negative_label: str | None = None

    @property
    def flag_text(self) -> str | None:
        """``FRACTURE`` / ``DOUBT`` / ``NO FRACTURE`` (the model's labels, upper case)."""
        if self.flag is None:
            return None
        return flag_text(self.flag, self.positive_label or "positive",
                         self.negative_label or "negative")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; ``"cuda"`` without CUDA → an error.

    Raises
    ------
    InferenceError
        When CUDA is asked for and not available, naming the torch build.
    ValueError
        For a device string torch does not know.
    """
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise InferenceError(f"device {str(device)!r} requested but no CUDA device is "
                             f"available (torch {torch.__version__}, {build}); use "
                             f"--device cpu or auto")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise InferenceError(f"device {str(device)!r} requested but only "
                             f"{torch.cuda.device_count()} CUDA device(s) exist")
    return dev


def configure_threads() -> int:
    """Leave one core to the GUI: ``torch.set_num_threads(max(1, cpu_count - 1))``."""
    threads = max(1, (os.cpu_count() or 2) - 1)
    torch.set_num_threads(threads)
    return threads


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


class Engine:
    """Routes, scores and explains studies with one bundle's models.

    Parameters
    ----------
    bundle
        A validated :class:`~inference.bundle.Bundle`.
    device
        ``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    max_batch
        Images per forward pass.

    Raises
    ------
    InferenceError
        When ``device`` asks for CUDA and none is available.
    """

    def __init__(self, bundle: Bundle, device: str = "auto", *, max_batch: int = MAX_BATCH):
        self.bundle = bundle
        self.device = resolve_device(device)
        self.max_batch = max(1, int(max_batch))
        self.threads = configure_threads()
        self._lock = threading.Lock()
        self._models: dict[str, nn.Module] = {}
        # Per-part entries of one trained model share a weights file: one network (and one
        # Grad-CAM runner) per distinct (architecture, weights, sha256), not per entry.
        self._networks: dict[tuple[str, str, str], nn.Module] = {}
        self._runners: dict[tuple, CamRunner] = {}
        self._router: nn.Module | None = None
        log.info("engine: bundle %s %s on %s, %d threads", bundle.manifest.name,
                 bundle.manifest.version, self.device, self.threads)

    # -------------------------------------------------------------------- models

    @property
    def loaded(self) -> list[str]:
        """Names of the models loaded so far (``"router"`` for the router)."""
        return (["router"] if self._router is not None else []) + list(self._models)

    def model(self, name: str) -> nn.Module:
        """The abnormality model ``name``, loaded on first use and kept."""
        if name not in self._models:
            spec = self.bundle.manifest.abnormality_models[name]
            box = spec.box_head
            key = (spec.architecture, spec.weights, spec.sha256, box)
            if key not in self._networks:
                start = time.perf_counter()
                # With a box head, load_model attaches it (and its score terms).
                network = self.bundle.load_model(spec, self.device)
                # Every CAM layer of the entries sharing this network stays as trained.
                keep = tuple({s.cam_target_layer for s in
                              self.bundle.manifest.abnormality_models.values()
                              if (s.architecture, s.weights, s.sha256, s.box_head) == key}
                             | ({box.layer} if box is not None else set()))
                optimize_for_inference(network, keep)
                self._networks[key] = network
                log.info("loaded model %s (%s) in %.0f ms", name, spec.architecture,
                         (time.perf_counter() - start) * 1000)
            self._models[name] = self._networks[key]
        return self._models[name]

    def router(self) -> nn.Module | None:
        """The router model, loaded on first use; None when the bundle has none."""
        spec = self.bundle.manifest.router
        if spec is None:
            return None
        if self._router is None:
            router = self.bundle.load_model(spec, self.device)
            optimize_for_inference(router)
            self._router = router
        return self._router

    def _runner(self, name: str, spec: ModelSpec) -> CamRunner:
        key = (spec.architecture, spec.weights, spec.sha256, spec.cam_target_layer,
               spec.cam_method, spec.box_head)
        if key not in self._runners:
            self._runners[key] = CamRunner(self.model(name), spec.cam_target_layer,
                                           method=spec.cam_method)
        return self._runners[key]

    def close(self) -> None:
        """Remove Grad-CAM hooks and drop the loaded models."""
        for runner in self._runners.values():
            runner.close()
        self._runners.clear()
        self._models.clear()
        self._networks.clear()
        self._router = None

    # ------------------------------------------------------------------ analysis

    def analyze(
        self,
        images: Sequence[ImageInput],
        *,
        override_part: str | None = None,
        cams: bool = True,
        progress: Callable[[int, int, str], None] | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> StudyResult:
        """Route, score and (optionally) explain one study.

        Parameters
        ----------
        images
            The study's images (see :class:`ImageInput`).
        override_part
            A body part chosen by the user; replaces routing (source ``"override"``).
        cams
            Compute Grad-CAM maps.
        progress
            Called as ``progress(done, total, message)`` before each step and once at the
            end with ``done == total``.
        cancelled
            Polled between steps.

        Returns
        -------
        StudyResult

        Raises
        ------
        Cancelled
            When ``cancelled()`` returned True.
        InferenceError
            When a model fails (the message names the model and the images); a
            :class:`~inference.errors.BundleError` (a subclass) when a weights file fails
            its check at load time.
        ValueError
            When an image is not a 2-D ``uint8`` array.
        """
        with self._lock:
            return self._analyze(list(images), override_part, cams, progress, cancelled)

    def _analyze(self, images: list[ImageInput], override_part: str | None, cams: bool,
                 progress: Callable[[int, int, str], None] | None,
                 cancelled: Callable[[], bool] | None) -> StudyResult:
        manifest = self.bundle.manifest
        for im in images:
            if not (isinstance(im.pixels, np.ndarray) and im.pixels.dtype == np.uint8
                    and im.pixels.ndim == 2 and im.pixels.size):
                raise ValueError(f"{im.key}: pixels must be a non-empty 2-D uint8 array")
        n = len(images)
        batches = [images[i:i + self.max_batch] for i in range(0, n, self.max_batch)]
        total = 2 + len(batches) + (n if cams else 0)
        done = 0

        def step(message: str) -> None:
            nonlocal done
            if cancelled is not None and cancelled():
                log.info("analysis cancelled at step %d/%d (%s)", done, total, message)
                raise Cancelled(message)
            if progress is not None:
                progress(done, total, message)
            done += 1

        step("finding the body part")
        results = [ImageResult(im.key, None, None, None, None, None) for im in images]
        if not images:
            return self._finish(StudyResult(None, None, False, "no images to analyze", None,
                                            None, None, None, [], results), total, progress)
        if override_part is not None:
            part = normalize_body_part(override_part)
            for r in results:
                r.body_part, r.body_part_source = part, "override"
            decided = study_part([], override=override_part)
        else:
            votes = [tag_or_path(im.tag_part, im.path_part) for im in images]
            probs: list[dict[str, float]] | None = None
            if manifest.router is not None:
                # The router sees every image: it decides where tag and folder are silent
                # and cross-checks them where they are not.
                probs = self._route(images)
                for i, p in enumerate(probs):
                    results[i].router_probs = p
                    if votes[i].part is None:
                        votes[i] = router_vote(p)
            for r, v in zip(results, votes, strict=True):
                r.body_part, r.body_part_source = v.part, v.source
            router = manifest.router
            decided = study_part(
                votes, router_threshold=router.confidence_threshold if router else None,
                other_threshold=router.other_threshold if router else None,
                router_probs=probs)

        name, reason = scoring_model(decided, manifest.routing, manifest.fallback_model,
                                     has_router=manifest.router is not None)
        flags = list(decided.flags)
        if decided.uncertain and name is not None:
            flags.append("scored with the general upper-limb threshold"
                         if manifest.fallback_model is not None
                         else f"scored with the {decided.part} threshold (best guess)")
        extra = {"part_uncertain": decided.uncertain, "router_part": decided.router_part,
                 "router_confidence": decided.router_confidence}
        if name is None:
            log.info("study not scored: %s", reason)
            return self._finish(StudyResult(decided.part, decided.source, False, reason, None,
                                            None, None, None, flags, results, **extra),
                                total, progress)
        spec = manifest.abnormality_models[name]

        step(f"loading model {name}")
        model = self.model(name)
        runner = self._runner(name, spec) if cams else None

        start = 0
        heats: list[np.ndarray | None] = [None] * n
        for b, batch in enumerate(batches, start=1):
            step(f"scoring images {start + 1}–{start + len(batch)} of {n}"
                 if len(batches) > 1 else f"scoring {n} image{'s' if n > 1 else ''}")
            logits, maps, heat = self._score(name, spec, model, runner, batch)
            for j in range(len(batch)):
                r = results[start + j]
                r.probability = _sigmoid(float(logits[j]) / spec.temperature)
                r.level = level(r.probability, spec.threshold, spec.doubt_threshold)
                if maps is not None:
                    r.cam = maps[j]
                if heat is not None:
                    heats[start + j] = heat[j]
            start += len(batch)
            log.debug("batch %d/%d scored", b, len(batches))

        # A map or a box only where the view reaches the doubt band (the threshold when
        # the model has none); a map's intensity is the view's probability.
        shown = spec.threshold if spec.doubt_threshold is None else spec.doubt_threshold
        if cams:
            for i, (im, r) in enumerate(zip(images, results, strict=True), start=1):
                step(f"mapping heat map {i} of {n}")
                if r.probability < shown:
                    r.cam = None
                else:
                    r.cam = cam_to_image(r.cam, spec.input, im.pixels.shape) * np.float32(
                        r.probability)
        if spec.box_head is not None:
            from inference.boxes import heat_boxes

            for im, r, hm in zip(images, results, heats, strict=True):
                r.boxes = [] if hm is None or r.probability < shown else heat_boxes(
                    hm, spec.input, im.pixels.shape, threshold=spec.box_head.threshold,
                    doubt_threshold=spec.box_head.doubt_threshold)

        probabilities = [r.probability for r in results]
        method = manifest.aggregation_of(spec)
        score = aggregate(probabilities, method)
        flag = level(decision_statistic(probabilities, method), spec.threshold,
                     spec.doubt_threshold)
        label = spec.positive_label if flag == "positive" else spec.negative_label
        return self._finish(StudyResult(
            decided.part, decided.source, True, None, name, score, label, spec.threshold,
            flags, results, **extra, flag=flag, doubt_threshold=spec.doubt_threshold,
            aggregation=method, positive_label=spec.positive_label,
            negative_label=spec.negative_label), total, progress)

    @staticmethod
    def _finish(result: StudyResult, total: int,
                progress: Callable[[int, int, str], None] | None) -> StudyResult:
        if progress is not None:
            progress(total, total, "done")
        return result

    def _route(self, images: list[ImageInput]) -> list[dict[str, float]]:
        spec = self.bundle.manifest.router
        router = self.router()
        out: list[dict[str, float]] = []
        for i in range(0, len(images), self.max_batch):
            chunk = images[i:i + self.max_batch]
            batch = prepare_batch([im.pixels for im in chunk], spec.input).to(
                self.device, memory_format=torch.channels_last)
            try:
                with torch.inference_mode():
                    logits = router(batch)
                probs = torch.softmax(spec.adjust_logits(logits.float()), dim=1).cpu().numpy()
            except Exception as exc:
                raise InferenceError(
                    f"router model ({spec.architecture}) failed on "
                    f"{_names(chunk)}: {type(exc).__name__}: {exc}") from exc
            if probs.shape != (len(chunk), len(spec.class_names)):
                raise InferenceError(f"router model gave outputs of shape {probs.shape}, "
                                     f"expected {(len(chunk), len(spec.class_names))}")
            if not np.isfinite(probs).all():
                raise InferenceError(f"router model gave non-finite outputs for "
                                     f"{_names(chunk)}")
            out += [dict(zip(spec.class_names, map(float, row), strict=True)) for row in probs]
        return out

    def _score(self, name: str, spec: ModelSpec, model: nn.Module, runner: CamRunner | None,
               batch: list[ImageInput]
               ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        x = prepare_batch([im.pixels for im in batch], spec.input).to(
            self.device, memory_format=torch.channels_last)
        heat = None
        try:
            if runner is not None:
                logits, maps = runner(x)
            else:
                with torch.inference_mode():
                    logits, maps = model(x).detach().cpu(), None
            if spec.box_head is not None:
                raw = getattr(model, "box_heat", None)
                if raw is None:
                    raise InferenceError(f"model {name!r}: the box head on "
                                         f"{spec.box_head.layer!r} did not run")
                heat = torch.sigmoid(raw.detach().float())[:, 0].cpu().numpy()
                model.box_heat = None
        except InferenceError:
            raise
        except Exception as exc:
            raise InferenceError(
                f"model {name!r} ({spec.architecture}) failed on {_names(batch)}: "
                f"{type(exc).__name__}: {exc}") from exc
        values = logits.float().numpy().reshape(len(batch), -1)
        if values.shape[1] != 1:
            raise InferenceError(f"model {name!r} gave {values.shape[1]} outputs per image; "
                                 f"abnormality models must give one logit")
        if not np.isfinite(values).all():
            raise InferenceError(f"model {name!r} gave a non-finite output for "
                                 f"{_names(batch)}")
        return values[:, 0], maps, heat


def _names(images: Sequence[ImageInput]) -> str:
    names = [os.path.basename(im.key) or im.key for im in images[:3]]
    more = f" and {len(images) - 3} more" if len(images) > 3 else ""
    return ", ".join(names) + more
