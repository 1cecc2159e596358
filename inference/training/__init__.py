"""Training, data sets, evaluation and bundle export (``radview train`` / ``evaluate``).

Never imported by the runtime engine (``inference``), the viewer or ``radview predict``:
an import-linter contract in ``pyproject.toml`` enforces it.
"""
