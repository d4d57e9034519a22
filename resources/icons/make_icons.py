"""Draw LabelDesk's icon set: PNGs for the freedesktop hicolor sizes, .ico, .icns and an SVG.

Run from the repository root (``python resources/icons/make_icons.py``); the outputs are
committed, so a build needs nothing but Pillow. The motif: a dark tile with a dashed
pre-label box (amber) and an accepted label box (green) over a shape, as the review window
draws them.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
BG, FG, AMBER, GREEN = (35, 41, 56), (120, 160, 230), (245, 176, 66), (88, 200, 120)
SVG = f"""<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64" width="64" height="64">
  <rect x="2" y="2" width="60" height="60" rx="12" fill="rgb{BG}"/>
  <circle cx="29" cy="33" r="13" fill="rgb{FG}"/>
  <rect x="13" y="17" width="32" height="32" fill="none" stroke="rgb{GREEN}" stroke-width="4"/>
  <rect x="21" y="10" width="34" height="34" fill="none" stroke="rgb{AMBER}" stroke-width="3"
        stroke-dasharray="6 4"/>
</svg>
"""


def draw(size: int) -> Image.Image:
    """The icon at ``size`` pixels, drawn at 4× and scaled down for smooth edges."""
    big = size * 4
    u = big / 64
    im = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    d = ImageDraw.Draw(im)
    d.rounded_rectangle([2 * u, 2 * u, 62 * u, 62 * u], radius=12 * u, fill=BG)
    d.ellipse([16 * u, 20 * u, 42 * u, 46 * u], fill=FG)
    d.rectangle([13 * u, 17 * u, 45 * u, 49 * u], outline=GREEN, width=max(1, round(4 * u)))
    # dashed amber box: the model's pending pre-label
    x0, y0, x1, y1, w = 21 * u, 10 * u, 55 * u, 44 * u, max(1, round(3 * u))
    dash, gap = 6 * u, 4 * u
    for a, b, fixed, horizontal in (
        (x0, x1, y0, True),
        (x0, x1, y1, True),
        (y0, y1, x0, False),
        (y0, y1, x1, False),
    ):
        t = a
        while t < b:
            e = min(t + dash, b)
            box = (
                [t, fixed - w / 2, e, fixed + w / 2]
                if horizontal
                else [fixed - w / 2, t, fixed + w / 2, e]
            )
            d.rectangle(box, fill=AMBER)
            t = e + gap
    return im.resize((size, size), Image.Resampling.LANCZOS)


def main() -> None:
    images = {s: draw(s) for s in SIZES}
    for s, im in images.items():
        im.save(HERE / f"labeldesk-{s}.png", optimize=True)
    images[256].save(HERE / "labeldesk.ico", sizes=[(s, s) for s in (16, 24, 32, 48, 64, 128, 256)])
    images[512].save(HERE / "labeldesk.icns")
    (HERE / "labeldesk.svg").write_text(SVG, encoding="utf-8")


if __name__ == "__main__":
    main()
