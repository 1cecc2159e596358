"""Mutation fuzzing of radview's file reading: scan, decode and display mangled real files.

::

    python bench/fuzz_files.py [--cases 10000] [--seed 0] [--case-timeout 30] [--cases-out FILE]

Sources are real files the test suite already reads: pydicom's and pydicom-data's test
files (native, RLE, JPEG baseline/lossless/12-bit, JPEG 2000, big endian, palette,
multi-frame, an SR document), radview's sample DICOM and PNG files, and a JPEG made from
a sample PNG. Each case applies one seeded mutation (:data:`MUTATIONS`): bit flips,
"interesting" byte values, truncation, a corrupted VR code, a corrupted length field,
codec-stream (pixel data) corruption, or a spliced/duplicated chunk. The case is written
to a temporary file and put through :func:`viewer.loader.scan`, :func:`viewer.pixels.decode`
and :class:`viewer.display.DisplayPipeline`, as the viewer and ``radview info``/``render``
do, with radview's logging set up as the command line sets it up.

Per case the outcome is ``image`` (decoded and rendered), ``image-error`` (found, not
shown, with a reason), ``file-error`` (a :class:`~viewer.model.FileError`) or ``crash``
(an exception escaped radview, or the file was not accounted for). A case that runs longer
than ``--case-timeout`` seconds is a hang: :mod:`faulthandler` dumps the stack and exits
the process with status 1 (the case being run is the last ``--cases-out`` line).

Prints one JSON object: cases, outcomes, crashes (with the case, mutation and exception),
slowest case (seconds), peak RSS (MB) and wall time. Exit status 0 when nothing crashed.
The test suite runs a few hundred cases of it (``tests/test_fuzz.py``); the figures of a
10,000-case run are in ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import faulthandler
import io
import json
import os
import random
import re
import resource
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

#: pydicom / pydicom-data test files (small ones: a case must take well under a second).
DICOM_SOURCES = (
    "CT_small.dcm",               # signed CT, rescale
    "MR_small.dcm",               # native MR
    "MR_small_RLE.dcm",           # RLE Lossless
    "emri_small_RLE.dcm",         # RLE, 10 frames
    "SC_rgb_rle.dcm",             # RLE, RGB
    "SC_rgb_rle_16bit.dcm",       # RLE, 16-bit RGB (made pylibjpeg-rle panic)
    "SC_rgb_jpeg_dcmtk.dcm",      # JPEG Baseline, YBR
    "SC_rgb_dcmtk_+eb+cy+np.dcm",  # JPEG Baseline, RGB
    "JPEG-lossy.dcm",             # 12-bit JPEG Extended (no installed decoder reads it)
    "JPEG2000.dcm",               # JPEG 2000
    "MR_small_jp2klossless.dcm",  # JPEG 2000 lossless
    "emri_small_big_endian.dcm",  # Explicit VR Big Endian, multi-frame
    "SC_rgb.dcm",                 # native RGB
    "test-SR.dcm",                # no pixel data
)
#: radview's own samples (repository paths).
SAMPLE_SOURCES = (
    "resources/samples/upper_limb_dicom/IM0001.dcm",
    "resources/samples/upper_limb_images/image1.png",
)

#: Explicit-VR codes looked for by the VR and length mutations.
_VR = re.compile(rb"(AE|AS|AT|CS|DA|DS|DT|FD|FL|IS|LO|LT|OB|OD|OF|OL|OV|"
                 rb"OW|PN|SH|SL|SQ|SS|ST|SV|TM|UC|UI|UL|UN|UR|US|UT|UV)")
_INTERESTING = (0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF)
_LENGTHS = (0, 1, 0xFFFF, 0xFFFFFFFF, 0x7FFFFFFF, 0x10000, 0xFFFFFFFE)


def _pixel_start(data: bytes) -> int:
    """Offset just past the pixel data tag (DICOM), past the first chunk header (PNG), or
    past the SOI marker (JPEG); 0 when none is found."""
    for marker, skip in ((b"\xe0\x7f\x10\x00", 4), (b"\x7f\xe0\x00\x10", 4),
                         (b"IDAT", 4), (b"\xff\xda", 2)):
        at = data.rfind(marker)
        if at >= 0:
            return at + skip
    return 0


def flip_bits(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 16)):
        at = rng.randrange(len(out))
        out[at] ^= 1 << rng.randrange(8)
    return bytes(out)


def interesting_bytes(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        out[rng.randrange(len(out))] = rng.choice(_INTERESTING)
    return bytes(out)


def truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(len(data))]


def corrupt_vr(data: bytes, rng: random.Random) -> bytes:
    found = [m.start() for m in _VR.finditer(data[:20_000]) if m.start() >= 4]
    if not found:
        return flip_bits(data, rng)
    at = rng.choice(found)
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    vr = (rng.choice(letters) + rng.choice(letters)).encode() if rng.random() < 0.7 else \
        bytes([rng.randrange(256), rng.randrange(256)])
    return data[:at] + vr + data[at + 2:]


def corrupt_length(data: bytes, rng: random.Random) -> bytes:
    found = [m.start() for m in _VR.finditer(data[:20_000]) if m.start() >= 4]
    if not found:
        return interesting_bytes(data, rng)
    at = rng.choice(found)
    vr = data[at:at + 2]
    value = rng.choice(_LENGTHS)
    if vr in (b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR",
              b"UT", b"UV"):
        field = (value & 0xFFFFFFFF).to_bytes(4, "little")
        return data[:at + 4] + field + data[at + 8:]
    field = (value & 0xFFFF).to_bytes(2, "little")
    return data[:at + 2] + field + data[at + 4:]


def corrupt_stream(data: bytes, rng: random.Random) -> bytes:
    start = _pixel_start(data)
    if start >= len(data) - 1:
        return flip_bits(data, rng)
    out = bytearray(data)
    for _ in range(rng.randint(1, 24)):
        at = rng.randrange(start, len(out))
        out[at] = rng.randrange(256)
    return bytes(out)


def splice(data: bytes, rng: random.Random) -> bytes:
    a = rng.randrange(len(data))
    b = min(len(data), a + rng.randint(1, 512))
    if rng.random() < 0.5:
        return data[:a] + data[b:]  # delete a chunk
    at = rng.randrange(len(data))
    return data[:at] + data[a:b] + data[at:]  # duplicate a chunk elsewhere


#: Name → mutation; each takes the source bytes and a seeded RNG.
MUTATIONS: dict[str, Callable[[bytes, random.Random], bytes]] = {
    "bit-flip": flip_bits,
    "interesting-bytes": interesting_bytes,
    "truncate": truncate,
    "vr": corrupt_vr,
    "length": corrupt_length,
    "codec-stream": corrupt_stream,
    "splice": splice,
}


def sources() -> list[tuple[str, bytes]]:
    """``(name, bytes)`` of every source file; fails when one is missing (no downloads)."""
    from PIL import Image
    from pydicom.data import get_testdata_file

    out = []
    for name in DICOM_SOURCES:
        path = get_testdata_file(name, download=False)
        if path is None:
            raise SystemExit(f"{name} is not available locally: pip install pydicom-data")
        out.append((name, Path(path).read_bytes()))
    for rel in SAMPLE_SOURCES:
        out.append((Path(rel).name, (REPO / rel).read_bytes()))
    with Image.open(REPO / SAMPLE_SOURCES[1]) as im:
        buf = io.BytesIO()
        im.convert("L").save(buf, format="JPEG", quality=85)
    out.append(("image1.jpg", buf.getvalue()))
    return out


def make_case(index: int, seed: int, srcs: list[tuple[str, bytes]]) -> tuple[str, str, bytes]:
    """``(source name, mutation name, mutated bytes)`` of case ``index`` (deterministic)."""
    rng = random.Random(f"{seed}:{index}")
    name, data = srcs[index % len(srcs)]
    mutation = rng.choice(sorted(MUTATIONS))
    return name, mutation, MUTATIONS[mutation](data, rng)


def run_case(path: Path) -> tuple[str, str]:
    """``(outcome, detail)`` of reading one file as the viewer does (see the module notes).

    Raises whatever escapes radview (the caller records it as a crash).
    """
    from viewer.display import DisplayPipeline
    from viewer.loader import scan
    from viewer.pixels import PixelError, decode

    result = scan([path])
    if not result.images and not result.errors:
        return "crash", "not accounted for: no image and no error"
    outcome, detail = "file-error", result.errors[0].reason if result.errors else ""
    for ref in result.images:
        if ref.error:
            outcome, detail = "image-error", ref.error
            continue
        try:
            decoded = decode(ref)
        except PixelError as exc:
            outcome, detail = "image-error", exc.reason
            continue
        try:
            DisplayPipeline(decoded.stored, decoded.spec).render(None)
        except ValueError as exc:  # refused values: the viewer shows this as the error
            outcome, detail = "image-error", f"cannot be displayed ({exc})"
            continue
        outcome, detail = "image", ""
    return outcome, detail


def _peak_rss_kb() -> int:
    """This process's peak resident memory (KiB): VmHWM, which exec resets. (ru_maxrss
    keeps the high-water mark of the forked parent's copy: a fuzz run started from a
    pytest that had loaded torch would report the parent's 1.4 GB.)"""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def fuzz(cases: int, seed: int, case_timeout: float, cases_out: Path | None = None) -> dict:
    """Run ``cases`` cases; the summary object printed by :func:`main`."""
    import viewer.display
    import viewer.loader
    import viewer.pixels  # noqa: F401 - imported before the clock starts on case 0
    from viewer.logs import setup_logging

    srcs = sources()
    setup_logging(verbose=False)  # as `radview` sets it up: pydicom's records dropped
    outcomes: Counter[str] = Counter()
    by_mutation: Counter[str] = Counter()
    crashes: list[dict] = []
    slowest = (0.0, -1)
    started = time.perf_counter()
    log = cases_out.open("w", encoding="utf-8") if cases_out else None
    with tempfile.TemporaryDirectory(prefix="radview-fuzz-") as tmp:
        for index in range(cases):
            name, mutation, data = make_case(index, seed, srcs)
            path = Path(tmp) / f"case{index}{Path(name).suffix}"
            path.write_bytes(data)
            if log:
                log.write(json.dumps({"case": index, "source": name, "mutation": mutation})
                          + "\n")
                log.flush()
            faulthandler.dump_traceback_later(case_timeout, exit=True)
            t0 = time.perf_counter()
            try:
                outcome, detail = run_case(path)
            except BaseException as exc:  # a crash is what is being counted
                if isinstance(exc, KeyboardInterrupt):
                    raise
                outcome, detail = "crash", f"{type(exc).__module__}.{type(exc).__name__}: {exc}"
            finally:
                faulthandler.cancel_dump_traceback_later()
            seconds = time.perf_counter() - t0
            slowest = max(slowest, (seconds, index))
            outcomes[outcome] += 1
            by_mutation[mutation] += 1
            if outcome == "crash":
                crashes.append({"case": index, "source": name, "mutation": mutation,
                                "error": detail[:300]})
            path.unlink()
    if log:
        log.close()
    peak_kb = _peak_rss_kb()
    return {
        "benchmark": "fuzz_files",
        "cases": cases,
        "seed": seed,
        "sources": len(srcs),
        "outcomes": dict(sorted(outcomes.items())),
        "mutations": dict(sorted(by_mutation.items())),
        "crashes": crashes,
        "slowest_case_s": round(slowest[0], 3),
        "slowest_case": slowest[1],
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "wall_s": round(time.perf_counter() - started, 1),
        "cpu_count": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--case-timeout", type=float, default=30.0,
                   help="seconds after which one case counts as a hang (the run stops)")
    p.add_argument("--cases-out", type=Path, help="write one JSON line per case started")
    args = p.parse_args(argv)
    summary = fuzz(args.cases, args.seed, args.case_timeout, args.cases_out)
    print(json.dumps(summary, indent=2))
    return 1 if summary["crashes"] else 0


if __name__ == "__main__":
    sys.exit(main())
