"""``python -m viewer.cli …``: the ``radview`` command (``torchrun -m viewer.cli train …``)."""

import sys

from viewer.cli import main

sys.exit(main())
