"""radview: the desktop application (study loading, display, GUI).

``viewer.model``, ``viewer.loader``, ``viewer.pixels``, ``viewer.display`` and
``viewer.viewstate`` are Qt-free; every widget lives in ``viewer.qt``.
"""

__version__ = "0.1.0"
