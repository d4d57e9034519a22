"""Class colours: distinct, stable per class id, readable over photos.

Colour *n* is a fixed walk through OKLCH, a perceptually uniform space: the hue turns by the
golden angle (137.5°) each step, so neighbouring ids sit far apart on the hue circle and any
number of classes spreads evenly, and the lightness cycles over four levels, so ids whose hues
come round close together (21, 34, 55 steps apart) still differ in lightness. Each colour is
converted to sRGB, with its chroma reduced until it fits the gamut. The arithmetic is plain
Python (Björn Ottosson's OKLab matrices), so it is testable without Qt: the tests measure the
CIELAB ΔE between neighbours.

Classes added during a session have provisional negative ids (``-1``, ``-2``, …) until it
commits; they walk from index :data:`PROVISIONAL_START`, clear of the ids a project has.
"""

from __future__ import annotations

import math
from functools import lru_cache

from PySide6.QtGui import QColor

GOLDEN_ANGLE = 137.50776405003785  # degrees: 360 * (1 - 1/φ)
LIGHTNESS = (0.72, 0.58, 0.80, 0.65)  # OKLab L, cycled; all readable as a line over a photo
CHROMA = 0.16
HUE_START = 25.0  # degrees; colour 0 is a warm red-orange
PROVISIONAL_START = 276  # far (ΔE ≥ 20) from the first 20 colours for 3 new classes


def _oklch_to_linear_srgb(lightness: float, chroma: float, hue: float) -> tuple[float, ...]:
    a = chroma * math.cos(math.radians(hue))
    b = chroma * math.sin(math.radians(hue))
    l_ = (lightness + 0.3963377774 * a + 0.2158037573 * b) ** 3
    m_ = (lightness - 0.1055613458 * a - 0.0638541728 * b) ** 3
    s_ = (lightness - 0.0894841775 * a - 1.2914855480 * b) ** 3
    return (
        4.0767416621 * l_ - 3.3077115913 * m_ + 0.2309699292 * s_,
        -1.2684380046 * l_ + 2.6097574011 * m_ - 0.3413193965 * s_,
        -0.0041960863 * l_ - 0.7034186147 * m_ + 1.7076147010 * s_,
    )


def _encode(c: float) -> float:
    """Linear light to the sRGB transfer curve."""
    return 12.92 * c if c <= 0.0031308 else 1.055 * c ** (1 / 2.4) - 0.055


def _decode(c: float) -> float:
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


@lru_cache(maxsize=4096)
def palette_rgb(n: int) -> tuple[int, int, int]:
    """Colour ``n`` of the walk as 8-bit sRGB."""
    lightness = LIGHTNESS[n % len(LIGHTNESS)]
    hue = (HUE_START + n * GOLDEN_ANGLE) % 360.0
    chroma = CHROMA
    while True:  # the most saturated colour of this lightness and hue that sRGB can show
        rgb = _oklch_to_linear_srgb(lightness, chroma, hue)
        if all(-1e-6 <= c <= 1 + 1e-6 for c in rgb) or chroma <= 0:
            break
        chroma -= 0.005
    return tuple(round(255 * _encode(min(1.0, max(0.0, c)))) for c in rgb)  # type: ignore[return-value]


def palette_index(cls: int) -> int:
    """Where class id ``cls`` walks: ids 1, 2, … from 0; provisional ids after the rest."""
    return cls - 1 if cls > 0 else PROVISIONAL_START + (-cls - 1)


def class_rgb(cls: int) -> tuple[int, int, int]:
    return palette_rgb(palette_index(cls))


def class_color(cls: int) -> QColor:
    return QColor(*class_rgb(cls))


def halo_color(color: QColor) -> QColor:
    """The outline's halo: dark under a light colour, light under a dark one, so a box shows on
    white, on black and on everything between."""
    return QColor(0, 0, 0, 200) if relative_luminance(color) > 0.3 else QColor(255, 255, 255, 200)


def text_color(color: QColor) -> QColor:
    """Black or white, whichever reads better on ``color`` (WCAG contrast)."""
    return QColor("#000000") if relative_luminance(color) > 0.179 else QColor("#ffffff")


def relative_luminance(color: QColor) -> float:
    r, g, b = (_decode(c / 255) for c in (color.red(), color.green(), color.blue()))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def srgb_to_lab(rgb: tuple[int, int, int]) -> tuple[float, float, float]:
    """8-bit sRGB to CIELAB (D65), to measure ΔE."""
    r, g, b = (_decode(c / 255) for c in rgb)
    x = (0.4124564 * r + 0.3575761 * g + 0.1804375 * b) / 0.95047
    y = 0.2126729 * r + 0.7151522 * g + 0.0721750 * b
    z = (0.0193339 * r + 0.1191920 * g + 0.9503041 * b) / 1.08883

    def f(t: float) -> float:
        return t ** (1 / 3) if t > (6 / 29) ** 3 else t / (3 * (6 / 29) ** 2) + 4 / 29

    fx, fy, fz = f(x), f(y), f(z)
    return 116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)


def delta_e(rgb1: tuple[int, int, int], rgb2: tuple[int, int, int]) -> float:
    """CIE76 colour difference; about 2.3 is just noticeable, over 20 clearly different."""
    return math.dist(srgb_to_lab(rgb1), srgb_to_lab(rgb2))
