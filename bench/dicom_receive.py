"""DICOM receiving: storescu → radview's Storage SCP, and C-MOVE from Orthanc.

Prints one JSON object:

* ``storescu``: 50 DX images of 2500×2048 (16-bit, 12 stored, ~10 MB each) sent by
  DCMTK's storescu in one association to :class:`viewer.dicomnet.StorageServer` on
  127.0.0.1: instances/s and MB/s (from storescu's start to the last file written);
* ``c_move``: the same 50 images stored in Orthanc (DCMTK storescu), then C-MOVE of the
  study to radview's SCP: seconds from the C-MOVE request to the first image written in
  the inbox, and to the last.

Needs dcmtk and orthanc (``.ci/run`` installs them). ``--n`` and ``--size`` change the
batch (e.g. ``--n 5 --size 256`` for a smoke run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def main() -> None:
    import numpy as np
    from dicom_factory import make_dicom
    from dicom_peers import free_port, start_orthanc, stop_orthanc

    from viewer.dicomnet import PacsNode, StorageServer, move_study

    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=50)
    p.add_argument("--size", type=int, nargs=2, default=(2500, 2048), metavar=("ROWS", "COLS"))
    args = p.parse_args()
    rows, cols = args.size
    study = "1.2.826.0.1.3680043.8.498.7701.777"
    work = Path(tempfile.mkdtemp(prefix="radview-bench-"))
    try:
        rng = np.random.default_rng(0)
        base = rng.integers(0, 4096, size=(rows, cols), dtype=np.uint16)
        files = [make_dicom(work / "src" / f"IM{i:03d}.dcm", rows=rows, cols=cols,
                            study_uid=study, series_uid=study + ".1", instance_number=i + 1,
                            pixels=(base + i) % 4096) for i in range(args.n)]
        megabytes = sum(f.stat().st_size for f in files) / 1e6

        # storescu → radview
        times: list[float] = []
        done = threading.Event()
        server = StorageServer(work / "inbox", port=0,
                               on_stored=lambda s: times.append(time.perf_counter()),
                               on_association=lambda a: done.set())
        server.start()
        started = time.perf_counter()
        out = subprocess.run(["storescu", "-aec", "RADVIEW", "127.0.0.1", str(server.port),
                              *map(str, files)], capture_output=True, text=True)
        done.wait(60)
        server.stop()
        assert out.returncode == 0, out.stderr
        assert len(times) == args.n
        seconds = times[-1] - started
        received = {"instances": args.n, "megabytes": round(megabytes, 1),
                    "seconds": round(seconds, 3),
                    "instances_per_s": round(args.n / seconds, 2),
                    "mb_per_s": round(megabytes / seconds, 1)}

        # Orthanc → C-MOVE → radview
        scp_port = free_port()
        orthanc = start_orthanc(work / "orthanc", {"radview": ("RADVIEW", "127.0.0.1",
                                                               scp_port)})
        try:
            fill = subprocess.run(["storescu", "-aec", "ORTHANC", "127.0.0.1",
                                   str(orthanc.dicom_port), *map(str, files)],
                                  capture_output=True, text=True)
            assert fill.returncode == 0, fill.stderr
            times.clear()
            node = PacsNode("orthanc", "ORTHANC", "127.0.0.1", orthanc.dicom_port)
            with StorageServer(work / "inbox2", port=scp_port,
                               on_stored=lambda s: times.append(time.perf_counter())):
                t0 = time.perf_counter()
                result = move_study(node, study, destination="RADVIEW", timeout=120)
            moved = {"instances": result.completed,
                     "first_image_s": round(times[0] - t0, 3),
                     "all_images_s": round(times[-1] - t0, 3)}
        finally:
            stop_orthanc(orthanc)
        print(json.dumps({
            "image": f"{rows}x{cols} 16-bit (12 stored), Explicit VR Little Endian",
            "storescu": received, "c_move": moved,
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                        "load_average_1min": round(os.getloadavg()[0], 2)},
        }, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
