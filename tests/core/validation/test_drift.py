"""Drift between versions: a shifted distribution is caught, an identical one passes, and the
pixel statistics are measured once per image."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from labeldesk.core.boxes import Box
from labeldesk.core.demo.synth import CLASSES, render_scene
from labeldesk.core.store.importer import Staging
from labeldesk.core.store.manifest import Entry
from labeldesk.core.validation import drift as drift_mod
from labeldesk.core.validation.drift import EDGES, drift, histogram, psi

SIZE = (160, 120)


def scenes(folder: Path, n: int, seed: int, dark: bool = False) -> list[tuple[Path, list]]:
    """Synthetic scenes (``dark``: at a sixth of the brightness, boxes all of the last class)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        image, boxes = render_scene(np.random.default_rng([seed, i]), *SIZE, n_objects=(2, 5))
        if dark:
            image = Image.eval(image, lambda v: v // 6)
            boxes = [b.__class__(len(CLASSES) - 1, b.x, b.y, b.w, b.h) for b in boxes]
        path = folder / f"{'dark' if dark else 'day'}_{i:03d}.png"
        image.save(path)
        out.append((path, boxes))
    return out


def commit(project, items: list[tuple[Path, list]], message: str):
    with Staging(project) as st:
        staged = st.stage_files([p for p, _ in items])
        truth = dict(items)
        return st.commit(
            entries={sha: Entry("") for _, sha, _ in staged},
            annsets={
                sha: [Box(b.cls + 1, b.x, b.y, b.w, b.h) for b in truth[p]] for p, sha, _ in staged
            },
            classes=[{"id": i + 1, "name": n} for i, n in enumerate(CLASSES)],
            message=message,
            provenance={},
        )


def test_identical_versions_do_not_drift(project, tmp_path) -> None:
    v = commit(project, scenes(tmp_path / "a", 10, seed=1), "day")
    report = drift(project, v.id, "main")
    assert not report.drifted and report.score == 0
    assert [f.name for f in report.features] == ["classes", *EDGES]
    assert all(f.score == 0 for f in report.features)
    assert report.verdict() == "no drift: every feature at or below 0.2"


def test_a_shifted_distribution_is_caught_and_pixels_are_cached(project, tmp_path, monkeypatch):
    day = scenes(tmp_path / "a", 30, seed=1)
    v1 = commit(project, day, "day")
    # More of the same scenes: a similar distribution, below the threshold.
    v2 = commit(project, scenes(tmp_path / "b", 30, seed=2), "more days")
    similar = drift(project, v1.id, v2.id)
    assert not similar.drifted, similar.to_json()
    # Dark scenes whose objects are all stars: brightness, contrast and classes move.
    v3 = commit(project, scenes(tmp_path / "c", 40, seed=3, dark=True), "nights")
    report = drift(project, v1.id, v3.id, threshold=0.2)
    scores = {f.name: f.score for f in report.features}
    assert report.drifted and report.score == max(scores.values())
    # ~40% of these small scenes already have a grey std under 16 (the first contrast bin),
    # so darkening moves contrast less than brightness; it must still register.
    assert scores["brightness"] > 1 and scores["classes"] > 0.2 and scores["contrast"] > 0.1
    assert scores["image_size"] == 0
    assert "brightness" in report.verdict() and report.verdict().startswith("drift:")
    by_name = {f.name: f for f in report.features}
    assert sum(by_name["classes"].a) == sum(len(b) for _, b in day)
    assert sum(by_name["brightness"].b) == 100 and not report.unreadable
    js = report.to_json()
    assert js["drifted"] and js["features"][0]["bins"] == sorted(CLASSES)

    # every image measured once, kept in image_stats; a second run decodes nothing
    n = project.db.execute("SELECT COUNT(*) FROM image_stats").fetchone()[0]
    assert n == 100

    def boom(path: str):
        raise AssertionError("measured again")

    monkeypatch.setattr(drift_mod, "_measure", boom)
    again = drift(project, v1.id, v3.id)
    assert [f.score for f in again.features] == [f.score for f in report.features]


def test_psi_and_fixed_bins() -> None:
    assert psi([50, 50], [50, 50]) == 0
    assert psi([90, 10], [10, 90]) == pytest.approx(2 * 0.8 * math.log(9))
    assert psi([0, 0], [1, 2]) is None
    # an empty bin is floored at 1e-4, so the score stays finite
    assert psi([100, 0], [50, 50]) == pytest.approx(
        (0.5 - 1) * math.log(0.5) + (0.5 - 1e-4) * math.log(0.5 / 1e-4)
    )
    # bins are left-closed: a value on an edge goes to the bin that starts there
    counts = histogram([0, 1, 4, 5, 6, 7, 100], EDGES["boxes_per_image"])
    assert counts == [1, 1, 0, 0, 1, 2, 1, 0, 0, 1]
