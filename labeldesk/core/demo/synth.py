"""Synthetic object-detection scenes: filled shapes on textured backgrounds.

Why this exists: tests, the demo project, benchmarks and the demo detector all need images
with *known* ground truth, and the project cannot ship or download real photographs. The
generator is pure numpy + Pillow (no Qt, no torch) so any layer may use it, and it is
deterministic for a given random generator so a failing test or a benchmark can be replayed.

The scenes are deliberately not trivial: textured backgrounds, lighting changes, a wide range
of object scales, occlusion and look-alike clutter make a small detector produce the misses
and false positives that a reviewer is supposed to find.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageStat

__all__ = [
    "CLASSES",
    "SynthBox",
    "SynthScene",
    "render_scene",
    "render_scene_detailed",
    "write_images",
    "write_yolo_dataset",
]

CLASSES: tuple[str, ...] = ("circle", "square", "triangle", "star")
"""Class names; a box's ``cls`` indexes this tuple."""

# Object size range as a fraction of the image's short side (the shape's bounding extent).
_SCALE_RANGE = (0.04, 0.35)
# An object less visible than this (occlusion or leaving the frame) is not drawn at all: a box
# around a sliver would be ground truth that no human labeller would agree with.
_MIN_VISIBLE_FRACTION = 0.45
_MIN_BOX_SIDE = 4.0
# Minimum colour distance (RGB Euclidean, 0..441) between an object and the background under
# it, so every labelled object is actually visible.
_MIN_CONTRAST = 60.0
_MAX_CLUTTER = 5  # distractors per scene; ids of objects + clutter must fit in one byte


@dataclass(frozen=True)
class SynthBox:
    """A ground-truth box in pixels, top-left origin, tight around the visible shape pixels."""

    cls: int
    x: float
    y: float
    w: float
    h: float


@dataclass(frozen=True)
class SynthScene:
    """A rendered scene with what tests need to check the labels against the pixels.

    ``background`` is the scene before any shape or clutter was drawn, with the same lighting
    applied, so ``image - background`` shows where things were drawn. ``instance_map`` holds,
    per pixel, ``k + 1`` where ``boxes[k]``'s object is visible and 0 elsewhere (clutter is 0).
    """

    image: Image.Image
    boxes: list[SynthBox]
    background: np.ndarray  # (H, W, 3) uint8
    instance_map: np.ndarray  # (H, W) int16


@dataclass
class _Item:
    """One drawable thing: a class object (``cls >= 0``) or clutter (``cls == -1``)."""

    cls: int
    kind: str  # "ellipse", "polygon" or "line"
    points: list[tuple[float, float]]
    width: int  # outline width for shapes, stroke width for lines
    area: float  # analytic area of the full shape, to judge how much stays visible
    fill: tuple[int, int, int] = (0, 0, 0)
    outline: tuple[int, int, int] | None = None


# ---------------------------------------------------------------------------------- backgrounds
#
# Everything full-resolution is done on single-channel uint8 planes or inside Pillow: numpy
# arithmetic on (H, W, 3) float arrays costs milliseconds per operation, and the generator
# has to stay well under 20 ms per 640x480 image so that tests and benchmarks can make
# hundreds of images on a laptop.


def _upsampled(
    rng: np.random.Generator, width: int, height: int, cell: int, bands: int
) -> Image.Image:
    """Smooth random field: a coarse random grid resized bilinearly to full size."""
    cell = max(1, cell)
    gw, gh = max(2, width // cell + 2), max(2, height // cell + 2)
    grid = rng.integers(0, 256, size=(gh, gw, bands), dtype=np.uint8)
    img = Image.fromarray(grid[:, :, 0] if bands == 1 else grid, mode="L" if bands == 1 else "RGB")
    return img.resize((width, height), Image.Resampling.BILINEAR)


def _gradient(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """A linear two-colour gradient at a random angle."""
    angle = rng.uniform(0, 2 * math.pi)
    xs = np.arange(width, dtype=np.float32)[None, :] * math.cos(angle)
    ys = np.arange(height, dtype=np.float32)[:, None] * math.sin(angle)
    t = xs + ys
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    c1 = rng.integers(0, 256, size=3).astype(np.float32)
    c2 = rng.integers(0, 256, size=3).astype(np.float32)
    return Image.fromarray((c1 + t[:, :, None] * (c2 - c1)).astype(np.uint8), mode="RGB")


def _texture_mask(rng: np.random.Generator, kind: str, width: int, height: int) -> Image.Image:
    """A single-channel 0..255 pattern used to blend a second colour into the background."""
    if kind == "noise":
        return _upsampled(rng, width, height, int(rng.integers(3, 24)), 1)
    if kind == "stripes":
        a = rng.uniform(0, math.pi)
        period = rng.uniform(8, 60)
        xs = np.arange(width, dtype=np.float32)[None, :] * (math.cos(a) * 256 / period)
        ys = np.arange(height, dtype=np.float32)[:, None] * (math.sin(a) * 256 / period)
        phase = (xs + ys).astype(np.int32) & 255
        profile = (np.sin(np.arange(256) * (2 * math.pi / 256)) + 1) * 127.5
        if rng.random() < 0.5:
            profile = (profile > 127.5) * 255.0
        return Image.fromarray(profile.astype(np.uint8)[phase], mode="L")
    if kind == "checker":
        cell = int(rng.integers(10, 60))
        cols = (np.arange(width) // cell) & 1
        rows = (np.arange(height) // cell) & 1
        return Image.fromarray(((rows[:, None] ^ cols[None, :]) * 255).astype(np.uint8), mode="L")
    # blobs (drawn at a quarter of the size; upscaling softens their edges)
    layer = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(layer)
    for _ in range(int(rng.integers(3, 12))):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        rx = rng.uniform(min(3, width / 4), width / 4)
        ry = rng.uniform(min(3, height / 4), height / 4)
        draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=int(rng.integers(80, 256)))
    return layer


def _background(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """A textured RGB background: a gradient plus one or two blended textures.

    Real backgrounds are rarely flat, and a detector trained on flat ones learns "anything
    that is not flat is an object". Smooth layers (gradient, noise, blobs) are composed at a
    quarter of the size and upscaled once; sharp ones (stripes, checker) at full size.
    """
    sw, sh = max(2, width // 4), max(2, height // 4)
    bg = _gradient(rng, sw, sh)
    textures = rng.choice(["noise", "stripes", "checker", "blobs", "none"], size=2, replace=False)
    sharp = [str(k) for k in textures if k in ("stripes", "checker")]
    for kind in textures:
        if kind in ("noise", "blobs"):
            bg = _blend(rng, bg, _texture_mask(rng, str(kind), sw, sh))
    bg = bg.resize((width, height), Image.Resampling.BILINEAR)
    for kind in sharp:
        bg = _blend(rng, bg, _texture_mask(rng, kind, width, height))
    return bg


def _blend(rng: np.random.Generator, bg: Image.Image, mask: Image.Image) -> Image.Image:
    """Blend a random solid colour into ``bg`` through ``mask`` at a random strength."""
    strength = float(rng.uniform(0.1, 0.5))
    mask = mask.point([int(v * strength) for v in range(256)])
    colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
    return Image.composite(Image.new("RGB", bg.size, colour), bg, mask)


# -------------------------------------------------------------------------------------- shapes


def _rotated(pts: np.ndarray, angle: float, cx: float, cy: float) -> list[tuple[float, float]]:
    c, s = math.cos(angle), math.sin(angle)
    x = pts[:, 0] * c - pts[:, 1] * s + cx
    y = pts[:, 0] * s + pts[:, 1] * c + cy
    return list(zip(x.tolist(), y.tolist(), strict=True))


def _polygon_area(pts: np.ndarray) -> float:
    x, y = pts[:, 0], pts[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def _make_object(rng: np.random.Generator, cls: int, cx: float, cy: float, size: float) -> _Item:
    """A class shape whose bounding extent is about ``size`` pixels, at a random rotation."""
    r = size / 2
    angle = rng.uniform(0, 2 * math.pi)
    width = int(rng.integers(1, max(2, int(size / 12)) + 1)) if rng.random() < 0.4 else 0
    name = CLASSES[cls]
    if name == "circle":
        return _Item(cls, "ellipse", [(cx - r, cy - r), (cx + r, cy + r)], width, math.pi * r * r)
    if name == "square":
        h = size / 2 / math.sqrt(2) * rng.uniform(1.0, 1.35)  # keep rotated extent near size
        pts = np.array([(-h, -h), (h, -h), (h, h), (-h, h)], dtype=np.float64)
    elif name == "triangle":
        ang = np.array([-90.0, 30.0, 150.0]) + rng.uniform(-12, 12, size=3)
        rad = r * rng.uniform(0.85, 1.0, size=3)
        pts = np.stack([rad * np.cos(np.radians(ang)), rad * np.sin(np.radians(ang))], axis=1)
    else:  # star
        n = 5
        inner = rng.uniform(0.38, 0.5)
        k = np.arange(2 * n)
        rad = np.where(k % 2 == 0, r, r * inner)
        ang = k * math.pi / n - math.pi / 2
        pts = np.stack([rad * np.cos(ang), rad * np.sin(ang)], axis=1)
    return _Item(cls, "polygon", _rotated(pts, angle, cx, cy), width, _polygon_area(pts))


def _place_object(rng: np.random.Generator, width: int, height: int, inside: bool) -> _Item:
    """A random class object at a random scale; ``inside`` keeps it wholly in the frame."""
    size = rng.uniform(*_SCALE_RANGE) * min(width, height)
    # Centres may sit a little outside the frame so that edge-clipped objects occur.
    margin = -size * 0.7 if inside else size * 0.25
    cx = rng.uniform(-margin, width + margin)
    cy = rng.uniform(-margin, height + margin)
    return _make_object(rng, int(rng.integers(len(CLASSES))), cx, cy, size)


def _make_clutter(rng: np.random.Generator, width: int, height: int, short: float) -> _Item:
    """Something that is none of the classes but could fool a detector."""
    cx, cy = rng.uniform(0, width), rng.uniform(0, height)
    kind = rng.choice(["line", "ellipse", "blob", "bar"])
    if kind == "line":
        length = rng.uniform(0.1, 0.6) * short
        a = rng.uniform(0, math.pi)
        dx, dy = math.cos(a) * length / 2, math.sin(a) * length / 2
        return _Item(
            -1, "line", [(cx - dx, cy - dy), (cx + dx, cy + dy)], int(rng.integers(1, 6)), 0
        )
    if kind == "ellipse":
        # Aspect ratio of at least 2.5 so it never passes for a circle.
        ra = rng.uniform(0.03, 0.15) * short
        rb = ra / rng.uniform(2.5, 6.0)
        t = np.linspace(0, 2 * math.pi, 32, endpoint=False)
        pts = np.stack([ra * np.cos(t), rb * np.sin(t)], axis=1)
    elif kind == "bar":
        # A long thin rectangle: square-ish corners, wrong proportions.
        a, b = rng.uniform(0.05, 0.25) * short, rng.uniform(0.008, 0.03) * short
        pts = np.array([(-a, -b), (a, -b), (a, b), (-a, b)], dtype=np.float64)
    else:
        # An irregular blob: many vertices with jittered radii.
        # Near-even vertex spacing keeps it lumpy rather than accidentally triangular.
        n = int(rng.integers(7, 12))
        t = (np.arange(n) + rng.uniform(-0.3, 0.3, n)) * (2 * math.pi / n)
        rad = rng.uniform(0.02, 0.08) * short * rng.uniform(0.6, 1.0, n)
        pts = np.stack([rad * np.cos(t), rad * np.sin(t)], axis=1)
    return _Item(-1, "polygon", _rotated(pts, rng.uniform(0, 2 * math.pi), cx, cy), 0, 0)


def _draw(
    draw: ImageDraw.ImageDraw,
    item: _Item,
    fill: int | tuple[int, ...],
    outline: int | tuple[int, ...] | None,
) -> None:
    # ints on the class-index mask ("L" image), RGB triples on the picture
    if item.kind == "line":
        draw.line(item.points, fill=fill, width=item.width)
    elif item.kind == "ellipse":
        (x0, y0), (x1, y1) = item.points
        if item.width:
            draw.ellipse((x0, y0, x1, y1), fill=fill, outline=outline, width=item.width)
        else:
            draw.ellipse((x0, y0, x1, y1), fill=fill)
    elif item.width:
        draw.polygon(item.points, fill=fill, outline=outline, width=item.width)
    else:
        draw.polygon(item.points, fill=fill)


def _extent(item: _Item, width: int, height: int) -> tuple[int, int, int, int]:
    """Pixel box (x0, y0, x1, y1) that holds every pixel the item can cover, clipped to the
    image and never empty; a margin covers outlines, line caps and rasterisation."""
    xs = [p[0] for p in item.points]
    ys = [p[1] for p in item.points]
    pad = item.width + 2
    x0 = min(max(math.floor(min(xs)) - pad, 0), width - 1)
    y0 = min(max(math.floor(min(ys)) - pad, 0), height - 1)
    x1 = max(x0 + 1, min(math.ceil(max(xs)) + pad + 1, width))
    y1 = max(y0 + 1, min(math.ceil(max(ys)) + pad + 1, height))
    return x0, y0, x1, y1


def _id_map(items: list[_Item], width: int, height: int) -> Image.Image:
    """An "L" image holding, per pixel, 1 + index of the topmost item drawn there (0 = none)."""
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for i, item in enumerate(items):
        _draw(draw, item, i + 1, i + 1)
    return canvas


def _tight_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Pixel box (x0, y0, x1, y1), end-exclusive, of the true pixels of a non-empty mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask[rows[0] : rows[-1] + 1].any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _pick_fill(rng: np.random.Generator, under: np.ndarray) -> tuple[int, int, int]:
    """A random colour that stands out from ``under`` (the mean background colour)."""
    for _ in range(8):
        colour = rng.integers(0, 256, size=3)
        if float(np.linalg.norm(colour - under)) >= _MIN_CONTRAST:
            break
    else:
        colour = np.where(under > 127, rng.integers(0, 60, 3), rng.integers(196, 256, 3))
    return (int(colour[0]), int(colour[1]), int(colour[2]))


def _visible(
    ids: Image.Image, count: int, i: int, item: _Item, width: int, height: int
) -> tuple[int, int, np.ndarray, tuple[int, int, int, int]] | None:
    """Where item ``i`` is visible, if enough of it is to label honestly, else None.

    Returns the crop origin, the visibility mask within the item's extent and the tight box
    (x0, y0, x1, y1) within that crop. Only the extent is searched: much cheaper than the
    whole id map.
    """
    if count == 0 or count < _MIN_VISIBLE_FRACTION * max(item.area, 1.0):
        return None
    ex0, ey0, ex1, ey1 = _extent(item, width, height)
    sel = np.asarray(ids.crop((ex0, ey0, ex1, ey1))) == i + 1
    x0, y0, x1, y1 = _tight_box(sel)
    if x1 - x0 < _MIN_BOX_SIDE or y1 - y0 < _MIN_BOX_SIDE:
        return None
    return ex0, ey0, sel, (x0, y0, x1, y1)


# -------------------------------------------------------------------------------------- scenes


def _render(
    rng: np.random.Generator, width: int, height: int, n_objects: tuple[int, int], detailed: bool
) -> SynthScene:
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if n_objects[1] + _MAX_CLUTTER > 254:
        raise ValueError(f"at most {254 - _MAX_CLUTTER} objects per scene")
    short = float(min(width, height))
    bg = _background(rng, width, height)

    # Plan the layout: class objects and clutter interleaved in a random z-order.
    lo, hi = n_objects
    items = [
        _place_object(rng, width, height, inside=False) for _ in range(rng.integers(lo, hi + 1))
    ]
    for _ in range(int(rng.integers(0, _MAX_CLUTTER + 1))):
        items.append(_make_clutter(rng, width, height, short))
    items = [items[i] for i in rng.permutation(len(items))]

    # Drop objects that end up barely visible (removing one only uncovers the others), and
    # top up to the minimum count with objects placed on top and wholly inside the frame.
    # The last two rounds only drop, so the loop always ends with every object labelable.
    for round_ in range(9):
        ids = _id_map(items, width, height)
        counts = ids.histogram()  # pixels per item id, counted in C
        visible = {
            i: _visible(ids, counts[i + 1], i, it, width, height)
            for i, it in enumerate(items)
            if it.cls >= 0
        }
        keep = [it for i, it in enumerate(items) if it.cls < 0 or visible[i] is not None]
        missing = lo - sum(it.cls >= 0 for it in keep)
        if len(keep) == len(items) and (missing <= 0 or round_ >= 7):
            break
        top_up = missing if round_ < 7 else 0
        items = keep + [_place_object(rng, width, height, inside=True) for _ in range(top_up)]

    # Colours are chosen against the background under each item so that labelled objects
    # are visible; clutter gets the same treatment so it is as distracting as real objects.
    for item in items:
        under = np.array(ImageStat.Stat(bg.crop(_extent(item, width, height))).mean)
        item.fill = _pick_fill(rng, under)
        if item.width:
            shade = rng.uniform(0.2, 0.6) if rng.random() < 0.7 else rng.uniform(1.4, 2.2)
            r, g, b = (int(min(255, c * shade)) for c in item.fill)
            item.outline = (r, g, b)

    canvas = bg.copy() if detailed else bg
    draw = ImageDraw.Draw(canvas)
    for item in items:
        _draw(draw, item, item.fill, item.outline)

    # Global lighting: often a soft light falloff and sensor noise (one multiply),
    # then contrast about mid-grey and a brightness offset (one lookup table), then sometimes
    # defocus. Everything here is a whole-image pass in C; see the note on backgrounds.
    contrast = float(rng.uniform(0.6, 1.3))
    brightness = float(rng.uniform(-50, 50))
    lut = [int(min(255, max(0, (v - 128) * contrast + 128 + brightness))) for v in range(256)]
    sigma = int(rng.integers(0, 9))
    plane: Image.Image | None = None
    if rng.random() < 0.6:
        plane = _upsampled(rng, width, height, max(width, height) // 2, 1)
        floor = int(rng.uniform(165, 255 - sigma))
        plane = plane.point([floor + (255 - sigma - floor) * v // 255 for v in range(256)])
    if sigma > 1:
        plane = plane or Image.new("L", (width, height), 255 - sigma)
        noise = rng.integers(0, 2 * sigma + 1, size=(height, width), dtype=np.uint8)
        plane = ImageChops.add(plane, Image.fromarray(noise, mode="L"), 1.0, -sigma)
    plane_rgb = Image.merge("RGB", (plane, plane, plane)) if plane else None

    def light(img: Image.Image) -> Image.Image:
        if plane_rgb is not None:
            img = ImageChops.multiply(img, plane_rgb)
        return img.point(lut * 3)

    image = light(canvas)
    if rng.random() < 0.15:
        # Slight defocus; a box blur is several times cheaper than a Gaussian.
        image = image.filter(ImageFilter.BoxBlur(float(rng.uniform(0.5, 1.2))))

    boxes: list[SynthBox] = []
    instance_map = np.zeros((height, width), dtype=np.int16) if detailed else np.zeros((0, 0))
    for i, item in enumerate(items):
        found = visible.get(i)
        if found is None:
            continue
        ex0, ey0, sel, (x0, y0, x1, y1) = found
        box = SynthBox(item.cls, float(ex0 + x0), float(ey0 + y0), float(x1 - x0), float(y1 - y0))
        boxes.append(box)
        if detailed:
            instance_map[ey0 : ey0 + sel.shape[0], ex0 : ex0 + sel.shape[1]][sel] = len(boxes)
    background = np.asarray(light(bg)) if detailed else np.zeros((0, 0, 3), dtype=np.uint8)
    return SynthScene(image, boxes, background, instance_map)


def render_scene_detailed(
    rng: np.random.Generator,
    width: int = 640,
    height: int = 480,
    n_objects: tuple[int, int] = (1, 6),
) -> SynthScene:
    """Render one scene and return it with its background and instance map (see SynthScene).

    Draws exactly what ``render_scene`` draws for the same rng state; the extras cost a few
    milliseconds, which is why ``render_scene`` does not compute them.
    """
    return _render(rng, width, height, n_objects, detailed=True)


def render_scene(
    rng: np.random.Generator,
    width: int = 640,
    height: int = 480,
    n_objects: tuple[int, int] = (1, 6),
) -> tuple[Image.Image, list[SynthBox]]:
    """Render one RGB scene and its ground-truth boxes; deterministic for a given rng state.

    ``n_objects`` is an inclusive range of objects to place; fewer may survive when one would
    be too occluded or too far outside the frame to label honestly.
    """
    scene = _render(rng, width, height, n_objects, detailed=False)
    return scene.image, scene.boxes


def _image_rng(seed: int, split: int, index: int) -> np.random.Generator:
    # One independent stream per image: image i is the same whatever n is, so a small test
    # set is a prefix of a large one and a single image can be regenerated on its own.
    return np.random.default_rng([seed, split, index])


_EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "BMP": ".bmp", "WEBP": ".webp", "TIFF": ".tif"}


def write_images(
    out_dir: Path,
    n: int,
    seed: int = 0,
    size: tuple[int, int] = (640, 480),
    fmt: str = "JPEG",
    quality: int = 90,
) -> list[tuple[Path, list[SynthBox]]]:
    """Write ``n`` scenes as ``img_00000.jpg``… into ``out_dir``; return paths with truth.

    ``size`` is (width, height). Image ``i`` depends only on ``seed`` and ``i``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fmt = fmt.upper()
    ext = _EXTENSIONS.get(fmt, "." + fmt.lower())
    save_kwargs: dict[str, object] = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    result: list[tuple[Path, list[SynthBox]]] = []
    for i in range(n):
        image, boxes = render_scene(_image_rng(seed, 0, i), size[0], size[1])
        path = out_dir / f"img_{i:05d}{ext}"
        image.save(path, format=fmt, **save_kwargs)
        result.append((path, boxes))
    return result


def _yolo_label(boxes: list[SynthBox], width: int, height: int) -> str:
    lines = []
    for b in boxes:
        cx, cy = (b.x + b.w / 2) / width, (b.y + b.h / 2) / height
        lines.append(f"{b.cls} {cx:.6f} {cy:.6f} {b.w / width:.6f} {b.h / height:.6f}")
    return "".join(line + "\n" for line in lines)


def write_yolo_dataset(
    out_dir: Path,
    n_train: int,
    n_val: int,
    seed: int = 0,
    size: tuple[int, int] = (640, 480),
) -> Path:
    """Write an Ultralytics-ready detection dataset and return its ``data.yaml`` path.

    Layout: ``images/{train,val}/*.jpg``, ``labels/{train,val}/*.txt`` (``cls cx cy w h``,
    normalised) and ``data.yaml`` with an absolute ``path`` so it works from any directory.
    Train and val come from separate random streams, so they never share an image.
    """
    root = Path(out_dir).resolve()
    width, height = size
    for split_id, (split, count) in enumerate((("train", n_train), ("val", n_val))):
        img_dir, lbl_dir = root / "images" / split, root / "labels" / split
        img_dir.mkdir(parents=True, exist_ok=True)
        lbl_dir.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            image, boxes = render_scene(_image_rng(seed, split_id + 1, i), width, height)
            image.save(img_dir / f"img_{i:05d}.jpg", format="JPEG", quality=90)
            (lbl_dir / f"img_{i:05d}.txt").write_text(_yolo_label(boxes, width, height))
    # JSON strings are valid YAML scalars, which keeps odd paths safe without a YAML library.
    names = "".join(f"  {i}: {json.dumps(name)}\n" for i, name in enumerate(CLASSES))
    yaml_text = (
        f"path: {json.dumps(str(root))}\n"
        "train: images/train\n"
        "val: images/val\n"
        f"nc: {len(CLASSES)}\n"
        f"names:\n{names}"
    )
    data_yaml = root / "data.yaml"
    data_yaml.write_text(yaml_text)
    return data_yaml
