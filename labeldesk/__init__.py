"""LabelDesk: keep computer-vision datasets accurate as they grow."""

__version__ = "0.1.0"
