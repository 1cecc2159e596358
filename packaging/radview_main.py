"""Entry point of the frozen build (dist/radview/radview): the ``radview`` command.

``radview --build-selftest`` (only here, not in the source command) runs
:mod:`packaging.selftest` instead: torch, torchvision, Grad-CAM, DICOM codecs and resources,
inside the build, printing JSON.
"""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    if sys.argv[1:2] == ["--build-selftest"]:
        from radview_selftest import main as selftest

        sys.exit(selftest(sys.argv[2:]))
    from viewer.cli import main

    sys.exit(main())
