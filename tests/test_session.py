"""The Qt-free session: the sequences that used to go wrong, driven step by step.

Every scenario runs the session with :class:`ManualExecutor`\\ s, so the test decides when
each background job runs and in what order (a late decode of the previous study, an AI
result after a switch…). Each asserts the final state and that ``study_loaded`` fired
exactly once, when every image of the study was decoded or failed.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from dicom_factory import make_dicom
from pydicom.uid import generate_uid

from viewer import loader, pixels
from viewer.session import (
    CANCELLED,
    DECODED,
    DONE,
    ERROR,
    FAILED,
    IDLE,
    RUNNING,
    ManualExecutor,
    Session,
)

# ----------------------------------------------------------------------------- fixtures


def _study(folder: Path, n: int, tag: str) -> list[Path]:
    uid = generate_uid(entropy_srcs=[tag])
    out = []
    for i in range(n):
        ramp = np.tile(np.linspace(0, 4095, 48).astype(np.uint16), (32, 1))
        out.append(make_dicom(folder / f"{tag}_{i}.dcm", rows=32, cols=48, pixels=ramp,
                              study_uid=uid, series_uid=generate_uid(entropy_srcs=[tag, "s"]),
                              sop_uid=generate_uid(), instance_number=i + 1, modality="DX",
                              patient_id=f"P-{tag}", body_part="HAND"))
    return out


@pytest.fixture
def two_studies(tmp_path):
    """Study A (3 images) and study B (2 images), scanned."""
    _study(tmp_path, 3, "A")
    _study(tmp_path, 2, "B")
    result = loader.scan([tmp_path])
    studies = sorted(result.studies, key=lambda s: len(s.images), reverse=True)
    assert [len(s.images) for s in studies] == [3, 2]  # precondition
    return result, studies[0], studies[1]


@dataclass
class FakeBundle:
    path: Path = Path("/fake/bundle")
    name: str = "fake"
    version: str = "1"
    error: str | None = None


@dataclass
class FakeResult:
    keys: list[str]
    supported: bool = True


@dataclass
class Recorder:
    """Counts every event the session emits, with its arguments."""

    calls: dict[str, list[tuple]] = field(default_factory=dict)

    def attach(self, session: Session) -> Recorder:
        for name in session.events.NAMES:
            getattr(session.events, name).connect(
                lambda *a, n=name: self.calls.setdefault(n, []).append(a))
        return self

    def count(self, name: str) -> int:
        return len(self.calls.get(name, []))


def fake_analyzer(raises: BaseException | None = None):
    """An analyzer that records what it scored (or raises)."""
    seen: list[list[str]] = []

    def analyzer(holder, bundle_path, device, inputs, override, token, progress):
        if raises is not None:
            raise raises
        keys = [k for k, *_ in inputs]
        seen.append(keys)
        progress(len(keys), len(keys), "done")
        return FakeResult(keys)

    analyzer.seen = seen
    return analyzer


def make_session(*, analyzer=None, decode=pixels.decode, auto=True, with_bundle=True):
    dec, ai = ManualExecutor(), ManualExecutor()
    s = Session(dec, ai, auto_analyze=auto, decode=decode,
                analyzer=analyzer or fake_analyzer(),
                discoverer=lambda extra: [FakeBundle()])
    rec = Recorder().attach(s)
    if with_bundle:
        s.set_bundle(FakeBundle(), rescore=False)
    return s, dec, ai, rec


def failing_decode(bad_name: str):
    def decode(ref):
        if ref.path.name == bad_name:
            raise pixels.PixelError(ref.path, "corrupt pixel data (test)")
        return pixels.decode(ref)
    return decode


# ----------------------------------------------------------------------------- scenarios


def test_switch_study_during_decode_drops_the_old_studys_late_results(two_studies):
    # The reported defect: B opened while A was decoding; A's workers finishing later were
    # counted against B, which became "loaded" with no image shown.
    result, a, b = two_studies
    s, dec, ai, rec = make_session()
    s.set_result(result)
    if s.study is not a:
        s.open_study(a)
    dec.run_next()  # one of A's three images decodes
    s.open_study(b)  # the user switches while A still decodes
    assert s.study is b and s.pending == 2
    dec.run_all()  # A's remaining jobs were cancelled; B's run
    assert s.loaded and [im.status for im in s.images] == [DECODED, DECODED]
    loaded = rec.calls["study_loaded"]
    assert loaded == [(b,)]  # exactly once, for B, and never for A
    assert s.summary().startswith("Study open: 2 of 2 image(s) shown")
    ai.run_all()
    assert s.ai.status == DONE and len(s.ai.result.keys) == 2  # every view scored


def test_late_results_of_a_cancelled_study_arrive_after_the_new_one_loaded(two_studies):
    # Worker threads do not stop at once: A's decode may report after B is fully loaded.
    result, a, b = two_studies
    s, dec, ai, rec = make_session(auto=False)
    s.set_result(result)
    s.open_study(a)
    a_jobs = list(dec.jobs)
    dec.jobs.clear()
    s.open_study(b)
    dec.run_all()
    for job in a_jobs:  # late deliveries, bypassing the cancelled-token check
        job.on_result(job.fn(job.token, lambda *x: None))
    assert s.study is b and len(s.images) == 2 and rec.count("study_loaded") == 1
    assert all(im.status == DECODED for im in s.images)


def test_switch_during_ai_drops_the_old_result(two_studies):
    # A scored, the user switches to B before the result arrives: A's result must not be
    # shown on B's views.
    result, a, b = two_studies
    s, dec, ai, rec = make_session()
    s.set_result(result)
    s.open_study(a)
    dec.run_all()
    assert s.ai.status == RUNNING
    a_job = ai.jobs.pop(0)
    s.open_study(b)
    dec.run_all()
    a_job.on_result(FakeResult(["from A"]))  # delivered late anyway
    ai.run_all()
    assert s.ai.status == DONE and s.ai.result.keys != ["from A"]
    assert len(s.ai.result.keys) == 2
    assert rec.count("ai_finished") == 1
    assert [c[0] for c in rec.calls["study_loaded"]] == [a, b]  # once per study


def test_same_study_opened_twice_quickly_loads_once(two_studies):
    # A double-click delivers two activations: the second must not restart decoding.
    result, a, _b = two_studies
    s, dec, ai, rec = make_session()
    s.set_result(result)
    s.open_study(a)
    s.open_study(a)
    dec.run_all()
    assert s.loaded and rec.count("study_loaded") == 1 and rec.count("study_opened") == 1
    assert all(im.status == DECODED for im in s.images)


def test_open_while_the_bundle_is_still_being_found(two_studies):
    # The study loads first; scoring starts when discovery selects a bundle.
    result, a, _b = two_studies
    s, dec, ai, rec = make_session(with_bundle=False)
    s.discover_bundles()
    s.set_result(result)
    s.open_study(a)
    dec.run_all()
    assert s.loaded and s.ai.status == IDLE  # no bundle yet: nothing started
    ai.run_next()  # discovery finishes
    assert s.bundle is not None and s.ai.status == RUNNING
    ai.run_all()
    assert s.ai.status == DONE and rec.count("study_loaded") == 1


def test_a_decode_that_fails_still_loads_the_study(two_studies):
    # A corrupt image must not block loading; the others are scored, the failure kept.
    result, a, _b = two_studies
    bad = a.images[1].path.name
    analyzer = fake_analyzer()
    s, dec, ai, rec = make_session(decode=failing_decode(bad), analyzer=analyzer)
    s.set_result(result)
    s.open_study(a)
    dec.run_all()
    assert s.loaded and rec.count("study_loaded") == 1
    assert [im.status for im in s.images] == [DECODED, FAILED, DECODED]
    assert "corrupt pixel data" in s.images[1].reason
    ai.run_all()
    assert len(analyzer.seen[-1]) == 2
    assert "1 could not be shown" in s.summary()


def test_a_model_that_raises_is_an_ai_error_not_a_crash(two_studies):
    result, a, _b = two_studies
    s, dec, ai, rec = make_session(analyzer=fake_analyzer(RuntimeError("CUDA out of memory")))
    s.set_result(result)
    s.open_study(a)
    dec.run_all()
    ai.run_all()
    assert s.ai.status == ERROR and "out of memory" in s.ai.error
    assert rec.count("ai_failed") == 1 and rec.count("ai_finished") == 0


def test_cancel_drops_the_result(two_studies):
    result, a, _b = two_studies
    s, dec, ai, rec = make_session()
    s.set_result(result)
    s.open_study(a)
    dec.run_all()
    job = ai.jobs.pop(0)
    s.cancel_analysis()
    job.on_result(FakeResult(["late"]))
    assert s.ai.status == CANCELLED and s.ai.result is None
    assert rec.count("ai_cancelled") == 1 and rec.count("ai_finished") == 0


def test_close_during_decode_and_ai_leaves_nothing_behind(two_studies):
    result, a, _b = two_studies
    s, dec, ai, rec = make_session()
    s.set_result(result)
    s.open_study(a)
    dec.run_next()
    s.close_study()
    dec.run_all()
    ai.run_all()
    assert s.study is None and s.images == [] and not s.loaded
    assert rec.count("study_loaded") == 0 and rec.count("ai_started") == 0
    assert rec.count("study_closed") == 1


def test_rescore_with_an_override_replaces_the_running_analysis(two_studies):
    # Choosing a body part while the first analysis runs: only the second result counts.
    result, a, _b = two_studies
    s, dec, ai, rec = make_session()
    s.set_result(result)
    s.open_study(a)
    dec.run_all()
    first = ai.jobs.pop(0)
    s.set_override_part("WRIST")
    first.on_result(FakeResult(["stale"]))
    ai.run_all()
    assert s.ai.status == DONE and s.ai.result.keys != ["stale"]
    assert s.override_part == "WRIST"


def test_analysis_is_refused_until_the_study_is_loaded(two_studies):
    # The old window scored only the views decoded so far.
    result, a, _b = two_studies
    s, dec, ai, rec = make_session()
    s.set_result(result)
    s.open_study(a)
    assert s.analyze() is None and s.ai.status == IDLE
    assert any("Still decoding" in m for (m,) in rec.calls["message"])


def test_a_study_whose_images_all_failed_at_scan_time_loads_at_once(tmp_path):
    # Nothing to decode (e.g. every file has an unsupported transfer syntax): "loaded"
    # fires at once, and the AI says there is nothing to score instead of running.
    _study(tmp_path, 2, "C")
    result = loader.scan([tmp_path])
    for ref in result.studies[0].images:
        ref.error = "JPEG-LS is not supported (test)"
    s, dec, ai, rec = make_session()
    s.set_result(result)
    assert dec.jobs == [] and s.loaded and rec.count("study_loaded") == 1
    assert [im.status for im in s.images] == [FAILED, FAILED]
    assert s.ai.status == ERROR and "nothing to score" in s.ai.error
    assert ai.jobs == []


def test_open_paths_scans_in_the_background_and_newer_scan_wins(tmp_path):
    # Two opens in a row: only the second scan's result is taken.
    first, second = tmp_path / "one", tmp_path / "two"
    first.mkdir()
    second.mkdir()
    _study(first, 1, "X")
    _study(second, 2, "Y")
    s, dec, ai, rec = make_session(auto=False)
    s.open_paths([first])
    s.open_paths([second])
    dec.run_all()
    assert rec.count("scan_finished") == 1
    assert s.study is not None and len(s.images) == 2 and s.loaded


def test_reviewer_input_is_kept_per_study(two_studies):
    result, a, b = two_studies
    s, dec, ai, rec = make_session(auto=False)
    s.set_result(result)
    s.open_study(a)
    s.review.impression = "distal radius fracture"
    s.open_study(b)
    assert s.review.impression == ""
    s.open_study(a)
    assert s.review.impression == "distal radius fracture"


def test_session_module_imports_without_qt():
    # The session is the Qt-free model: importing it must not pull in PySide6.
    import subprocess

    code = ("import sys, viewer.session; "
            "assert not any(m.startswith('PySide6') for m in sys.modules), 'Qt imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])
