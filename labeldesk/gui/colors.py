"""Class colours: distinct, stable per class id, readable over photos."""

from __future__ import annotations

from PySide6.QtGui import QColor

# Tableau-like palette, chosen to stay distinguishable for common colour-vision deficiencies.
_PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)


def class_color(cls: int) -> QColor:
    return QColor(_PALETTE[(cls - 1) % len(_PALETTE)] if cls > 0 else "#ffffff")
