"""radview's Qt-free AI engine: bundles, models, routing, scoring, Grad-CAM, training.

It never imports ``viewer`` or PySide6 (checked by ``lint-imports`` and
``tests/test_architecture.py``).
"""
