"""The synthetic scene generator: determinism, honest ground truth, Ultralytics layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from labeldesk.core.demo.synth import (
    CLASSES,
    SynthBox,
    render_scene,
    render_scene_detailed,
    write_images,
    write_yolo_dataset,
)

W, H = 320, 240


def _scenes(n: int, seed: int = 0):
    return [render_scene_detailed(np.random.default_rng([seed, i]), W, H) for i in range(n)]


def test_same_rng_state_gives_identical_scene():
    img_a, boxes_a = render_scene(np.random.default_rng(42), W, H)
    img_b, boxes_b = render_scene(np.random.default_rng(42), W, H)
    assert boxes_a == boxes_b
    assert np.array_equal(np.asarray(img_a), np.asarray(img_b))

    img_c, _ = render_scene(np.random.default_rng(43), W, H)
    assert not np.array_equal(np.asarray(img_a), np.asarray(img_c))


def test_detailed_render_draws_the_same_scene():
    img, boxes = render_scene(np.random.default_rng(7), W, H)
    scene = render_scene_detailed(np.random.default_rng(7), W, H)
    assert scene.boxes == boxes
    assert np.array_equal(np.asarray(scene.image), np.asarray(img))
    assert scene.background.shape == (H, W, 3)
    assert scene.instance_map.shape == (H, W)


def test_image_size_mode_and_object_count():
    for scene in _scenes(20):
        assert scene.image.size == (W, H)
        assert scene.image.mode == "RGB"
        assert 1 <= len(scene.boxes) <= 6
    img, boxes = render_scene(np.random.default_rng(1), W, H, n_objects=(0, 0))
    assert boxes == []
    assert img.size == (W, H)


def test_boxes_are_inside_the_image_and_not_degenerate():
    seen_classes = set()
    for scene in _scenes(40):
        for b in scene.boxes:
            assert isinstance(b, SynthBox)
            assert 0 <= b.cls < len(CLASSES)
            assert b.x >= 0 and b.y >= 0
            assert b.x + b.w <= W and b.y + b.h <= H
            assert b.w >= 4 and b.h >= 4
            seen_classes.add(b.cls)
    assert seen_classes == set(range(len(CLASSES)))


def test_boxes_are_tight_around_visible_shape_pixels():
    for scene in _scenes(30):
        image = np.asarray(scene.image).astype(np.float32)
        background = scene.background.astype(np.float32)
        for k, b in enumerate(scene.boxes):
            ys, xs = np.nonzero(scene.instance_map == k + 1)
            # The box is exactly the extent of the object's visible pixels...
            assert (xs.min(), ys.min()) == (b.x, b.y)
            assert (xs.max() + 1, ys.max() + 1) == (b.x + b.w, b.y + b.h)
            # ...and those pixels really show something that is not the background.
            diff = np.linalg.norm(image[ys, xs] - background[ys, xs], axis=1)
            assert diff.mean() > 20, (k, b, diff.mean())


def test_scale_range_is_wide():
    sides = [max(b.w, b.h) / H for scene in _scenes(40) for b in scene.boxes]
    assert min(sides) < 0.1
    assert max(sides) > 0.25


@pytest.mark.parametrize("size", [(96, 64), (64, 96), (16, 12), (1000, 200)])
def test_odd_and_tiny_sizes_give_valid_boxes(size: tuple[int, int]):
    w, h = size
    for i in range(5):
        scene = render_scene_detailed(np.random.default_rng(i), w, h)
        assert scene.image.size == (w, h)
        for k, b in enumerate(scene.boxes):
            assert b.x >= 0 and b.y >= 0
            assert b.x + b.w <= w and b.y + b.h <= h
            assert b.w >= 4 and b.h >= 4
            assert (scene.instance_map == k + 1).any()


def test_too_many_objects_is_rejected():
    with pytest.raises(ValueError):
        render_scene(np.random.default_rng(0), W, H, n_objects=(1, 300))


def test_write_images_names_files_and_is_prefix_stable(tmp_path: Path):
    written = write_images(tmp_path / "a", 3, seed=5, size=(W, H))
    assert [p.name for p, _ in written] == ["img_00000.jpg", "img_00001.jpg", "img_00002.jpg"]
    for path, boxes in written:
        with Image.open(path) as im:
            assert im.format == "JPEG"
            assert im.size == (W, H)
        assert boxes
    # Image i depends only on (seed, i): a shorter run is a prefix of a longer one.
    shorter = write_images(tmp_path / "b", 2, seed=5, size=(W, H))
    assert [b for _, b in shorter] == [b for _, b in written[:2]]
    assert (tmp_path / "b" / "img_00000.jpg").read_bytes() == written[0][0].read_bytes()

    png = write_images(tmp_path / "c", 1, seed=5, size=(W, H), fmt="PNG")
    assert png[0][0].name == "img_00000.png"


def test_write_yolo_dataset_layout(tmp_path: Path):
    data_yaml = write_yolo_dataset(tmp_path / "ds", n_train=4, n_val=2, seed=3, size=(W, H))
    root = (tmp_path / "ds").resolve()
    assert data_yaml == root / "data.yaml"

    yaml = pytest.importorskip("yaml")
    data = yaml.safe_load(data_yaml.read_text())
    assert Path(data["path"]) == root and Path(data["path"]).is_absolute()
    assert data["train"] == "images/train" and data["val"] == "images/val"
    assert data["names"] == dict(enumerate(CLASSES))

    for split, n in (("train", 4), ("val", 2)):
        images = sorted((root / "images" / split).glob("*.jpg"))
        labels = sorted((root / "labels" / split).glob("*.txt"))
        assert len(images) == n
        assert [p.stem for p in images] == [p.stem for p in labels]
        for label in labels:
            lines = label.read_text().splitlines()
            assert lines
            for line in lines:
                parts = line.split()
                assert len(parts) == 5
                assert 0 <= int(parts[0]) < len(CLASSES)
                cx, cy, w, h = map(float, parts[1:])
                assert 0 < w <= 1 and 0 < h <= 1
                assert cx - w / 2 >= -1e-6 and cx + w / 2 <= 1 + 1e-6
                assert cy - h / 2 >= -1e-6 and cy + h / 2 <= 1 + 1e-6

    # Train and val never share an image.
    train0 = (root / "images" / "train" / "img_00000.jpg").read_bytes()
    val0 = (root / "images" / "val" / "img_00000.jpg").read_bytes()
    assert train0 != val0
