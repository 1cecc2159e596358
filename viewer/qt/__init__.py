"""Every radview widget lives here; nothing outside this package imports PySide6."""
