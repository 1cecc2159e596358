"""Benchmark: window/level update through the LUT pipeline vs. pydicom's float pipeline.

Run ``python bench/window_level.py``; it prints one JSON object:

``lut_ms``
    Median time of one :meth:`viewer.display.DisplayPipeline.render` call (LUT build +
    gather) over a sequence of different windows, as a mouse drag produces them.
``pydicom_ms``
    Median time of the "naive" per-update path on the same windows:
    ``pydicom.pixels.apply_modality_lut`` + ``apply_voi_lut`` (float64 per pixel), then
    scaling to uint8.
``speedup``
    ``pydicom_ms / lut_ms``.
``setup_ms``
    One-off cost of constructing the pipeline (index image, histogram, presets).

Also: the frame's shape and dtype, repeat counts, min times, the pydicom VOI step alone
(modality LUT done once, outside the timing) and the largest difference between the two
paths' 8-bit outputs (rounding only; should be ≤ 1).

The frame is a synthetic radiograph: 2500 × 2048 uint16, BitsStored 12, smooth
gradients plus Gaussian noise (seeded), with Rescale Slope 1 / Intercept -1024.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from pydicom import Dataset
from pydicom.pixels import apply_modality_lut, apply_voi_lut

from viewer.display import DisplayPipeline, window_for_drag
from viewer.model import PixelSpec, Window

SLOPE, INTERCEPT = 1.0, -1024.0


def synthetic_frame(rows: int, columns: int, bits_stored: int, seed: int = 0) -> np.ndarray:
    """Radiograph-like stored values: a smooth body and background, plus noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:rows, 0:columns].astype(np.float32)
    y /= rows
    x /= columns
    top = (1 << bits_stored) - 1
    body = np.exp(-(((x - 0.5) / 0.28) ** 2) - ((y - 0.55) / 0.4) ** 2)
    smooth = 0.15 + 0.6 * body + 0.1 * np.sin(9 * x) * np.cos(5 * y)
    noisy = smooth * top + rng.normal(0, 0.015 * top, (rows, columns)).astype(np.float32)
    return np.clip(np.rint(noisy), 0, top).astype(np.uint16)


def drag_windows(start: Window, modality_range: tuple[float, float], count: int) -> list[Window]:
    """Windows a diagonal mouse drag produces, one per mouse-move event."""
    windows, window = [], start
    for step in range(count):
        dx = 3.0 if step % 2 else -2.0
        window = window_for_drag(window, dx, 1.5, modality_range)
        windows.append(window)
    return windows


def make_dataset(spec: PixelSpec) -> Dataset:
    """A pydicom Dataset carrying the same Image Pixel / Modality LUT / VOI LUT tags."""
    ds = Dataset()
    ds.Rows, ds.Columns = spec.rows, spec.columns
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = spec.photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = (
        spec.bits_allocated,
        spec.bits_stored,
        spec.high_bit,
    )
    ds.PixelRepresentation = spec.pixel_representation
    ds.RescaleSlope, ds.RescaleIntercept = spec.rescale_slope, spec.rescale_intercept
    ds.WindowCenter, ds.WindowWidth = spec.windows[0].center, spec.windows[0].width
    ds.VOILUTFunction = "LINEAR"
    return ds


def pydicom_to_uint8(windowed: np.ndarray, ds: Dataset) -> np.ndarray:
    """Scale pydicom's windowed float output (y_min..y_max, as apply_windowing picks them
    for rescaled unsigned data) to 0..255."""
    y_min = 0 * ds.RescaleSlope + ds.RescaleIntercept
    y_max = ((1 << ds.BitsStored) - 1) * ds.RescaleSlope + ds.RescaleIntercept
    scaled = (windowed - y_min) * (255.0 / (y_max - y_min))
    return np.rint(scaled).astype(np.uint8)


def timed(function, repeats: int) -> list[float]:
    """Wall times in ms of ``function(i)`` for i in range(repeats), after one warm-up."""
    function(0)
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        function(i)
        times.append((time.perf_counter() - start) * 1e3)
    return times


def run(rows: int, columns: int, bits_stored: int, repeats: int, pydicom_repeats: int) -> dict:
    stored = synthetic_frame(rows, columns, bits_stored)
    top = (1 << bits_stored) - 1
    # A window over the middle of the data, as a file's default window would be.
    first = Window(
        center=0.4 * top * SLOPE + INTERCEPT, width=0.5 * top * SLOPE, explanation="FILE"
    )
    spec = PixelSpec(
        rows=rows,
        columns=columns,
        bits_allocated=16,
        bits_stored=bits_stored,
        high_bit=bits_stored - 1,
        rescale_slope=SLOPE,
        rescale_intercept=INTERCEPT,
        windows=[first],
    )

    start = time.perf_counter()
    pipeline = DisplayPipeline(stored, spec)
    setup_ms = (time.perf_counter() - start) * 1e3
    windows = drag_windows(first, pipeline.modality_range, repeats + 1)
    lut_times = timed(lambda i: pipeline.render(windows[i + 1]), repeats)

    ds = make_dataset(spec)

    def naive(i: int, modality: np.ndarray | None = None) -> np.ndarray:
        ds.WindowCenter, ds.WindowWidth = windows[i + 1].center, windows[i + 1].width
        values = apply_modality_lut(stored, ds) if modality is None else modality
        return pydicom_to_uint8(apply_voi_lut(values, ds), ds)

    pydicom_times = timed(naive, pydicom_repeats)
    modality = apply_modality_lut(stored, ds)
    voi_only_times = timed(lambda i: naive(i, modality), pydicom_repeats)

    largest_difference = max(
        int(
            np.abs(
                pipeline.render(windows[i + 1]).astype(np.int16) - naive(i).astype(np.int16)
            ).max()
        )
        for i in range(3)
    )
    lut_ms = float(np.median(lut_times))
    pydicom_ms = float(np.median(pydicom_times))
    return {
        "shape": list(stored.shape),
        "dtype": str(stored.dtype),
        "bits_stored": bits_stored,
        "lut_entries": int(pipeline.build_lut(first).size),
        "setup_ms": round(setup_ms, 2),
        "repeats": repeats,
        "lut_ms": round(lut_ms, 3),
        "lut_median_ms": round(lut_ms, 3),
        "lut_min_ms": round(min(lut_times), 3),
        "pydicom_repeats": pydicom_repeats,
        "pydicom_ms": round(pydicom_ms, 2),
        "pydicom_median_ms": round(pydicom_ms, 2),
        "pydicom_min_ms": round(min(pydicom_times), 2),
        "pydicom_voi_only_ms": round(float(np.median(voi_only_times)), 2),
        "speedup": round(pydicom_ms / lut_ms, 1),
        "max_abs_diff_vs_pydicom": largest_difference,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2500)
    parser.add_argument("--columns", type=int, default=2048)
    parser.add_argument("--bits-stored", type=int, default=12, choices=range(9, 17))
    parser.add_argument("--repeats", type=int, default=30, help="LUT renders (>= 20)")
    parser.add_argument("--pydicom-repeats", type=int, default=9, help="pydicom runs (>= 5)")
    args = parser.parse_args(argv)
    result = run(args.rows, args.columns, args.bits_stored, args.repeats, args.pydicom_repeats)
    print(json.dumps(result))  # the benchmark's output is this one JSON line


if __name__ == "__main__":
    main()
