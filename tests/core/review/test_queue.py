"""The review queue: priorities from suggestions, doubtful pre-labels and model disagreement."""

from __future__ import annotations

import struct

import pytest
from helpers import model_row as add_model

from labeldesk.core.boxes import Box
from labeldesk.core.inference import predictions
from labeldesk.core.inference.predictions import Prediction
from labeldesk.core.review.queue import Params, clear_caches, priority, rank
from labeldesk.core.store.importer import add_images
from labeldesk.core.store.project import Project, now_iso
from labeldesk.core.store.sessions import ReviewSession
from labeldesk.core.store.versions import write_version

P = {"conf": 0.25, "iou": 0.7, "imgsz": 320}


def _image_row(db, sha: str, w: int, h: int, path: str, now: str) -> None:
    """An image row and its source, without a file (ranking reads rows only)."""
    db.execute(
        "INSERT INTO image VALUES (?, 'PNG', ?, ?, 1, ?, ?, 'RGB', 1, ?)", [sha, w, h, w, h, now]
    )
    db.execute(
        "INSERT INTO image_source (sha256, path, imported_at) VALUES (?, ?, ?)", [sha, path, now]
    )


def _first_version(project: Project, tree: str, classes: list, message: str) -> None:
    """Commit ``tree`` as the project's first version (inside the caller's transaction)."""
    write_version(
        project,
        tree=tree,
        classes=classes,
        parents=[],
        kind="import",
        message=message,
        provenance={},
        move_main_from=None,
    )


@pytest.fixture
def shas(project, images) -> list[str]:
    """Four images: 0 agrees with the model, 1 has a cat labelled dog, 2 misses a cat,
    3 is unlabelled with a doubtful pre-label."""
    shas = [a.sha256 for a in add_images(project, images[:4]).added]
    s = ReviewSession.start(project)
    cat, dog = s.add_class("cat"), s.add_class("dog")
    s.set_boxes(shas[0], [Box(cat, 0, 0, 20, 20, state="imported")])
    s.set_boxes(shas[1], [Box(dog, 0, 0, 20, 20, state="imported")])
    s.set_boxes(shas[2], [Box(cat, 0, 0, 20, 20, state="imported")])
    s.commit("labels")
    add_model(project, "m1", "first")
    cat0 = Prediction("cat", 0, 0, 20, 20, 0.9)
    predictions.store(
        project,
        "m1",
        P,
        [
            (shas[0], [cat0]),
            (shas[1], [cat0]),
            (shas[2], [cat0, Prediction("cat", 30, 30, 10, 10, 0.6)]),
            (shas[3], [Prediction("dog", 5, 5, 10, 10, 0.2)]),
        ],
    )
    return shas


def test_images_are_ranked_by_likely_error(project, shas) -> None:
    queue = rank(project)
    assert [q.image for q in queue] == [shas[1], shas[2], shas[3]]  # shas[0] agrees: left out
    (wrong,) = queue[0].reasons
    assert (wrong.kind, wrong.cls, wrong.box, wrong.score) == (
        "wrong_class",
        "cat",
        (0, 0, 20, 20),
        0.9,
    )
    assert queue[0].priority == pytest.approx(0.9)
    assert [r.kind for r in queue[1].reasons] == ["missing"]
    assert queue[1].priority == pytest.approx(0.6)
    (low,) = queue[2].reasons
    assert (low.kind, low.cls, low.score) == ("low_confidence", "dog", 0.2)
    assert queue[2].priority == pytest.approx(0.5 * 0.8)
    assert rank(project, limit=1) == queue[:1]
    assert len(rank(project, include_empty=True)) == 4
    # the user's thresholds: nothing is confident at 0.95
    assert [q.image for q in rank(project, params=Params(min_score=0.95))] == [shas[3]]


def test_session_edits_replace_the_labels(project, shas) -> None:
    fixed = [
        Box(2, 0, 0, 20, 20),
        Box(1, 0, 0, 20, 20, origin="model", state="rejected", score=0.9),
    ]
    assert shas[1] in [q.image for q in rank(project)]
    queue = rank(project, edits={shas[1]: fixed})
    assert shas[1] not in [q.image for q in queue]
    assert shas[1] in [q.image for q in rank(project)]  # the kept arrays are not changed


def test_two_models_disagreeing_raise_the_priority(project, shas) -> None:
    add_model(project, "m2", "second")
    predictions.store(project, "m2", P, [(shas[0], [Prediction("dog", 50, 50, 10, 10, 0.8)])])
    queue = rank(project, model="first")
    item = next(q for q in queue if q.image == shas[0])
    kinds = sorted((r.kind, r.model) for r in item.reasons)
    assert kinds == [("disagreement", "m1"), ("disagreement", "m2")]
    assert item.priority == pytest.approx(priority(item.reasons))


def _random_version(project, n: int, seed: int, settled: bool = True) -> None:
    """n images without files (ranking reads rows only) with random labels and predictions,
    crowded enough that every matching stage meets ties, duplicates and ambiguous overlaps."""
    import random

    from labeldesk.core.store.annotation_sets import put_annotation_set
    from labeldesk.core.store.manifest import Entry, ManifestStore

    rng = random.Random(seed)
    now = now_iso()
    results = []
    with project.transaction():
        db = project.db
        entries = {}
        for i in range(n):
            sha = f"{seed:08x}{i:056x}"
            _image_row(db, sha, 200, 100, f"/d/img{i:04d}.png", now)

            def xywh() -> tuple[float, float, float, float]:
                return (
                    rng.choice([0, 5, 10, rng.uniform(0, 60)]),
                    rng.choice([0, 5, rng.uniform(0, 40)]),
                    rng.choice([20, 25, rng.uniform(5, 40)]),
                    rng.choice([20, rng.uniform(5, 40)]),
                )

            labels = []
            for _ in range(rng.choice([0, 0, 1, 2, 3, 5])):
                kind = rng.random()
                if kind < 0.15 and settled:  # accepted from a model earlier, with a score
                    score = rng.choice([0.3, 0.6, 0.9])
                    labels.append(
                        Box(
                            rng.randint(1, 3),
                            *xywh(),
                            origin="model",
                            state="accepted",
                            score=score,
                            model="m1",
                        )
                    )
                elif kind < 0.25 and settled:
                    labels.append(Box(rng.randint(1, 3), *xywh(), state="accepted"))
                else:
                    labels.append(Box(rng.randint(1, 3), *xywh(), state="imported"))
            entries[sha] = Entry(put_annotation_set(db, labels))
            if rng.random() < 0.9:
                preds = [
                    Prediction(
                        rng.choice(["cat", "dog", "owl", "yak"]),
                        *xywh(),
                        rng.choice([0.3, 0.6, 0.9, round(rng.random(), 6)]),
                    )
                    for _ in range(rng.choice([0, 1, 2, 4, 6]))
                ]
                results.append((sha, preds))
        tree = ManifestStore(db).apply(None, entries)
        classes = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}, {"id": 3, "name": "owl"}]
        _first_version(project, tree, classes, "random")
    add_model(project, "m1", "first")
    predictions.store(project, "m1", P, results)


@pytest.mark.parametrize(("seed", "settled"), [(1, True), (2, True), (3, False), (4, False)])
def test_the_vectorised_ranking_equals_the_exact_one(project, seed, settled) -> None:
    # settled=False: only imported labels, read by the simpler number pattern
    _random_version(project, 400, seed, settled)
    for params in (Params(), Params(iou=0.3, min_score=0.3, low_score=0.7)):
        fast = rank(project, params=params)
        exact = rank(project, params=params, vectorised=False)
        assert len(exact) > 100
        assert fast == exact


def test_a_changed_run_is_read_again(project, shas) -> None:
    before = rank(project)
    assert rank(project) == before  # from the cached arrays
    # the model is run again on one image and finds nothing there now
    predictions.store(project, "m1", P, [(shas[1], [])])
    with project.transaction():  # stored later than the rest, whatever the clock's resolution
        project.db.execute(
            "UPDATE prediction SET created = '2999-01-01T00:00:00Z' WHERE image = ?", [shas[1]]
        )
    after = {q.image: [r.kind for r in q.reasons] for q in rank(project)}
    assert after[shas[1]] == ["spurious"]


def _scenes_with_errors(project, n: int, seed: int) -> set[str]:
    """The project's synthetic scenes (core.synth), labelled with their truth, one error
    injected into a third of them (a missing box, a swapped class, a box shifted by half its
    width), and one run whose predictions come from the truth (most objects found, jittered,
    plus doubtful false positives). Some images are unlabelled, one holds a crowd region and a
    few prediction rows have no packed copy (written outside LabelDesk): the paths the arrays
    hand to the per-image rule. Returns the images with an injected error."""
    import random

    import numpy as np

    from labeldesk.core.demo import synth
    from labeldesk.core.store.annotation_sets import put_annotation_set
    from labeldesk.core.store.manifest import Entry, ManifestStore

    rng = random.Random(seed)
    gen = np.random.default_rng(seed)
    names = ["cat", "dog", "owl", "yak"]  # synth's four classes, as the project names them
    now = now_iso()
    errors: set[str] = set()
    results = []
    with project.transaction():
        db = project.db
        entries = {}
        for i in range(n):
            sha = f"{seed:08x}{i:056x}"
            _image_row(db, sha, 160, 120, f"/d/scene{i:04d}.png", now)
            _, truth = synth.render_scene(gen, 160, 120, n_objects=(1, 5))
            boxes = [(b.cls + 1, b.x, b.y, b.w, b.h) for b in truth]
            labels = list(boxes)
            if labels and i % 10 != 9 and rng.random() < 1 / 3:
                errors.add(sha)
                k = rng.randrange(len(labels))
                c, x, y, w, h = labels[k]
                kind = rng.choice(["missing", "swap", "shift"])
                if kind == "missing":
                    del labels[k]
                elif kind == "swap":
                    labels[k] = (c % 4 + 1, x, y, w, h)
                else:
                    labels[k] = (c, x + w / 2, y, w, h)
            if i % 10 == 9:
                labels = []  # unlabelled: its predictions are pending pre-labels
            record = [Box(c, x, y, w, h, state="imported") for c, x, y, w, h in labels]
            if i == 4:
                record.append(Box(1, 0, 0, 30, 30, state="imported", crowd=True))
            entries[sha] = Entry(put_annotation_set(db, record))
            preds = [
                Prediction(
                    names[c - 1],
                    x + rng.uniform(-1, 1),
                    y + rng.uniform(-1, 1),
                    w,
                    h,
                    round(rng.uniform(0.5, 1.0), 6),
                )
                for c, x, y, w, h in boxes
                if rng.random() < 0.9
            ]
            if rng.random() < 0.3:
                preds.append(Prediction(rng.choice(names), 10, 10, 20, 20, rng.uniform(0.1, 0.45)))
            results.append((sha, preds))
        tree = ManifestStore(db).apply(None, entries)
        classes = [{"id": k + 1, "name": name} for k, name in enumerate(names[:3])]
        _first_version(project, tree, classes, "scenes")
    add_model(project, "m1", "first")
    predictions.store(project, "m1", P, results)
    with project.transaction():
        project.db.execute(
            "UPDATE prediction SET packed = NULL, packed_names = NULL WHERE image IN (?, ?, ?)",
            [results[1][0], results[2][0], results[9][0]],
        )
    return errors


@pytest.mark.parametrize("seed", [5, 6])
def test_the_packed_arrays_rank_generated_scenes_as_the_exact_rule(project, seed) -> None:
    """The vectorised path (packed copies, numpy) and the per-image rule (JSON, Box objects,
    suggestions.suggest) give the same queue on scenes with injected errors."""
    errors = _scenes_with_errors(project, 160, seed)
    clear_caches()
    for params in (Params(), Params(iou=0.3, min_score=0.6, low_score=0.7)):
        fast = rank(project, params=params, include_empty=True)
        exact = rank(project, params=params, include_empty=True, vectorised=False)
        assert fast == exact
    # the arrays did the work: all images but the one with a crowd region (rows without a
    # packed copy are derived from their JSON), and the exact rule only their leftovers
    from labeldesk.core.review import queue_arrays

    (arrays,) = queue_arrays._CACHE.values()
    assert len(arrays.shas) == 159 and len(arrays.unsure) == 1
    flagged = {q.image for q in rank(project)}
    assert len(errors) > 30
    # the errors are in the queue (a few missed: the model does not see every object either)
    assert len(errors & flagged) >= 0.8 * len(errors)


def test_a_damaged_packed_copy_shifts_no_other_image(project, shas) -> None:
    """A copy cut short by hand (fsck reports it) is derived again from its JSON, so it cannot
    shift the boxes of every image after it; a name index out of range drops only its box."""
    from labeldesk.core.store.fsck import fsck

    exact = rank(project, vectorised=False)
    with project.transaction():
        db = project.db
        annset = db.execute("SELECT hash FROM annotation_set WHERE n_boxes = 1").fetchone()[0]
        db.execute(
            "UPDATE annotation_set_packed SET packed = zeroblob(40) WHERE hash = ?", [annset]
        )
        db.execute("UPDATE prediction SET packed = zeroblob(47) WHERE image = ?", [shas[2]])
    clear_caches()
    assert rank(project) == exact
    with project.transaction():  # name 7 of a row with one name
        project.db.execute(
            "UPDATE prediction SET packed = ? WHERE image = ?",
            [struct.pack("<6d", 7, 0, 0, 20, 20, 0.9), shas[1]],
        )
    clear_caches()
    assert {q.image for q in rank(project)} >= {shas[2], shas[3]}
    assert len(fsck(project).by_check("packed_boxes")) == 3
