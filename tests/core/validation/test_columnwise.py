"""``validate`` reads results files and annotation sets column-wise (core.validation.json_columns)
where their layout allows: the figures must be exactly json's, anything else must go to json, and
the derived packed copies of boxes must never be what an evaluation trusts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import write_image

from labeldesk.core.boxes import Box
from labeldesk.core.errors import InputError
from labeldesk.core.store.importer import Staging
from labeldesk.core.store.manifest import Entry
from labeldesk.core.validation import evaluation as ev
from labeldesk.core.validation import evaluation_index as ei
from labeldesk.core.validation import evaluation_sources as es
from labeldesk.core.validation import json_columns

CLASSES = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}, {"id": 7, "name": "owl"}]
W, H = 200, 150


def _json_columns(data: bytes) -> tuple[np.ndarray, ...]:
    """What json.loads and the list path make of a results file: ids, classes, boxes, scores."""
    results = json.loads(data)
    return (
        np.array([e["image_id"] for e in results], np.int64),
        np.array([e["category_id"] for e in results], np.int64),
        np.array([e["bbox"] for e in results], np.float64).reshape(-1, 4),
        np.array([e["score"] for e in results], np.float64),
    )


def _same(a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...]) -> None:
    """Equal to the bit: same dtypes, shapes and bytes (so -0.0 is not 0.0)."""
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.dtype == y.dtype and x.shape == y.shape
        assert x.tobytes() == y.tobytes()


def _results(rng: np.random.Generator, n: int, digits: int | None) -> list[dict]:
    """Detections with numbers of every kind json writes without an exponent: rounded and
    full-precision floats, integers, negatives, zeros of both signs."""
    out = []
    for _ in range(n):
        raw = rng.uniform(-50, 2000, 4)
        box = [round(float(v), digits) if digits is not None else float(v) for v in raw]
        kind = rng.integers(0, 6)
        if kind == 0:
            box[0] = int(box[0])
        elif kind == 1:
            box[1] = -0.0
        elif kind == 2:
            box[2] = 0
        score = round(float(rng.random()), 4) if kind != 3 else 1
        out.append(
            {
                "image_id": int(rng.integers(-3, 10**12)),
                "category_id": int(rng.integers(0, 90)),
                "bbox": box,
                "score": score,
            }
        )
    return out


@pytest.mark.parametrize("digits", [2, 4, 6, None])
@pytest.mark.parametrize("compact", [False, True])
def test_results_columns_are_jsons_to_the_bit(digits: int | None, compact: bool) -> None:
    rng = np.random.default_rng(digits or 99)
    results = _results(rng, 400, digits)
    seps = (",", ":") if compact else None
    data = json.dumps(results, separators=seps).encode()
    got = es._plain_results(data)
    if digits is not None and digits <= 4:
        assert got is not None  # the layout json.dumps writes is read column-wise
    if got is not None:
        _same(got, _json_columns(data))


def test_results_columns_of_every_number_json_writes() -> None:
    """Shortest reprs of random doubles of all magnitudes json writes without an exponent."""
    rng = np.random.default_rng(5)
    values = np.concatenate(
        [
            rng.uniform(0, 1, 200),
            rng.uniform(0, 1e6, 200) * rng.choice([-1, 1], 200),
            np.round(rng.uniform(0, 1e4, 200), 4),
            [0.0001, 0.1, 0.3, 1e15 - 1, 123456789012.25, -0.0, 0.0, 5e-4],
        ]
    )
    results = [
        {"image_id": 1, "category_id": 2, "bbox": [float(v), 1.5, 2.25, 0.5], "score": float(v)}
        for v in values
    ]
    data = json.dumps(results).encode()
    got = es._plain_results(data)
    if got is None:  # a number too long for the column-wise path sends the file to json
        data = json.dumps([r for r in results if len(repr(r["score"])) <= 15]).encode()
        got = es._plain_results(data)
    assert got is not None
    _same(got, _json_columns(data))


GOOD = b'[{"image_id": 1, "category_id": 2, "bbox": [10.5, 20, 30.25, 40.0], "score": 0.5}]'


@pytest.mark.parametrize(
    "bad",
    [
        b"01",  # a leading zero: not JSON
        b"-01",
        b"1.",  # a point with no digit after it
        b".5",
        b"-.5",
        b"-",
        b"--1",
        b"1-2",
        b"1.2.3",
        b"+1",  # json's number has no plus
        b"1e5",  # an exponent: json's float, left to json
        b"1E-5",
        b"NaN",
        b"Infinity",
        b"1 2",
        b"10.5, 7",  # a fifth number
        b'"10.5"',
        b"[10.5]",
        b"1234567890.123456",  # longer than 15 characters
    ],
)
def test_results_columns_refuse_anything_but_plain_numbers(bad: bytes) -> None:
    text = GOOD.replace(b"10.5", bad, 1)
    assert text != GOOD
    assert es._plain_results(text) is None


@pytest.mark.parametrize(
    "text",
    [
        GOOD.replace(b'"bbox"', b'"box"'),  # another key
        GOOD.replace(b'"score": 0.5', b'"score": 0.5, "extra": 1'),
        GOOD.replace(b'{"image_id": 1, "category_id": 2', b'{"category_id": 2, "image_id": 1'),
        GOOD.replace(b'"image_id": 1', b'"image_id": 1.0'),  # json's float id
        GOOD.replace(b'"image_id": 1', b'"image_id": "a.jpg"'),
        GOOD + b" x",  # trailing garbage
        GOOD.replace(b'"score": 0.5}', b'"score": 0.5}, '),
        GOOD.replace(b", ", b",  ", 1),  # other spacing
        GOOD.replace(b"[{", b"[ {"),
        GOOD.replace(b'"category_id', b'"categ5ory_id'),  # the skeleton's, but a run in a key
        GOOD.replace(b'"image_id": 1,', b'"image_id": ,', 1).replace(b"2,", b"2, 1,", 1),
        b"\xef\xbb\xbf" + GOOD,  # a byte-order mark
        b"[]",
        b"{}",
    ],
)
def test_results_columns_refuse_other_layouts(text: bytes) -> None:
    assert text != GOOD
    assert es._plain_results(text) is None


def test_numbers_need_every_run_in_a_value_slot() -> None:
    # check 2 of json_columns: a run after a byte that does not open a slot is refused
    assert json_columns.numbers(b"[1,2]", b"[,", b",]") is not None
    assert json_columns.numbers(b"[1,2]", b"[", b",]") is None
    assert json_columns.numbers(b"[1,2]", b"[,", b"]") is None
    assert json_columns.numbers(b"[1,a2]", b"[,", b",]") is None


def test_numbers_of_any_run_of_number_bytes_are_jsons_or_refused() -> None:
    """Random runs of ``0-9 . -`` in list slots: each text is read as json reads it, to the
    bit, or refused, and never with a warning (the suite turns warnings into errors: numpy
    warns when it cannot read a text to its end, which the checks must rule out)."""
    rng = np.random.default_rng(11)
    alphabet = np.frombuffer(json_columns.NUMBER_BYTES, np.uint8)
    read = 0
    for _ in range(10_000):
        runs = [
            rng.choice(alphabet, int(rng.integers(1, 7))).tobytes()
            for _ in range(int(rng.integers(1, 5)))
        ]
        text = b"[" + b",".join(runs) + b"]"
        got = json_columns.numbers(text, b"[,", b",]")
        if got is None:
            continue
        read += 1
        want = np.array(json.loads(text), np.float64)
        assert got[0].tobytes() == want.tobytes(), text  # -0.0 and 0.0 told apart
        assert got[1].tolist() == [b"." not in r for r in runs]
    assert read > 1_000  # the valid texts were read, not all refused


# --- on a project ----------------------------------------------------------------------------


def _build(project, tmp_path: Path, extras: bool) -> dict[str, str]:
    """Eight images with imported, added, edited and accepted boxes, one reaching outside its
    image (clipped), rejected pre-labels, empty sets; ``extras`` adds a crowd region, a given
    area and a model's scored box (keys the column-wise path leaves to the pattern)."""
    rng = np.random.default_rng(3)
    paths = [write_image(tmp_path / "src" / f"i{k}.png", seed=k, size=(W, H)) for k in range(8)]
    states = ["imported", "added", "edited", "accepted", "pending"]
    with Staging(project) as st:
        staged = st.stage_files(paths)
        entries, annsets = {}, {}
        for k, (_, sha, _) in enumerate(staged):
            entries[sha] = Entry("", ("train", "val", None)[k % 3])
            boxes = []
            for j in range(0 if k == 5 else int(rng.integers(1, 6))):
                x, y = (round(float(v), 4) for v in rng.uniform(0, 150, 2))
                w, h = (round(float(v), 4) for v in rng.uniform(2, 60, 2))
                boxes.append(
                    Box(int(rng.choice([1, 2, 7])), x, y, w, h, state=states[j % len(states)])
                )
            annsets[sha] = boxes
        first, second = staged[0][1], staged[1][1]
        annsets[first].append(Box(1, W - 10, 5, 20, 30))  # reaches outside: clipped
        annsets[first].append(Box(2, 4, 4, 30, 30, origin="model", state="rejected"))
        if extras:
            annsets[second].append(Box(1, 10, 10, 40, 40, crowd=True))
            annsets[second].append(Box(2, 20, 20, 10, 10, area=77.5))
            annsets[second].append(
                Box(7, 5, 5, 9, 9, origin="model", state="accepted", score=0.8, model="m1")
            )
        st.commit(entries=entries, annsets=annsets, classes=CLASSES, message="m", provenance={})
    return {p.name: sha for p, sha, _ in staged}


@pytest.mark.parametrize("extras", [False, True])
def test_ground_truth_columns_are_the_patterns(project, tmp_path: Path, extras: bool) -> None:
    _build(project, tmp_path, extras)
    index = ev.ImageIndex.build(project, "main")
    texts = [t for (t,) in project.db.execute("SELECT boxes FROM annotation_set ORDER BY hash")]
    counts = np.array([t.count('"class":') for t in texts], np.intp)
    joined = "\x1e".join(texts)
    plain = ei._plain_sets(joined, len(texts))
    pattern = ei._pattern_sets(texts, joined, counts)
    assert (plain is None) == extras  # the extras' set is not plain: the pattern reads all
    if plain is not None:
        _same(tuple(plain), tuple(pattern))
        assert not plain.live.all()  # the rejected pre-label is there, marked not a label
    # and the ground truth is the COCO export's whichever path read it
    gt = ev.ground_truth(project, index)
    assert gt.flat is not None
    for sha in index.shas:
        boxes, cls, area, crowd = gt[sha]
        assert len(boxes) == len(cls) == len(area) == len(crowd)


def _set_text(boxes: list[Box]) -> str:
    from labeldesk.core.boxes import annotation_set

    return annotation_set(boxes).text


@pytest.mark.parametrize(
    "kinds",
    [
        [("human", "imported")] * 5,  # one kind: the skeleton is rebuilt from the counts
        [("model", "rejected")] * 3,  # one kind, none of them labels
        [("human", "imported")] * 4 + [("model", "accepted")],  # a mix: boxes marked one by one
        [("model", "rejected"), ("human", "edited"), ("human", "edited")],
        [],  # only empty sets
    ],
)
def test_plain_set_columns_are_the_patterns_for_any_mix_of_boxes(kinds: list) -> None:
    rng = np.random.default_rng(len(kinds))
    sets: list[list[Box]] = [[], []]
    for origin, state in kinds:
        x, y, w, h = (round(float(v), 3) for v in rng.uniform(1, 90, 4))
        box = Box(int(rng.choice([1, 2])), x, y, w, h, origin=origin, state=state)
        sets[int(rng.integers(0, 2))].append(box)
    texts = [_set_text(b) for b in (*sets, [])]
    joined = "\x1e".join(texts)
    counts = np.array([t.count('"class":') for t in texts], np.intp)
    plain = ei._plain_sets(joined, len(texts))
    assert plain is not None
    _same(tuple(plain), tuple(ei._pattern_sets(texts, joined, counts)))
    one_kind = ei._one_kind(json_columns.skeleton(joined.encode()), len(texts))
    assert (one_kind is not None) == (len(set(kinds)) == 1)  # the path the mix should take
    # the same boxes in a frame that is not a list of sets are not read column-wise
    assert ei._plain_sets(joined.replace("]", "],", 1), len(texts)) is None
    assert ei._plain_sets(joined, len(texts) + 1) is None


def test_engine_columns_of_all_images_are_the_per_image_ones(project, tmp_path: Path) -> None:
    _build(project, tmp_path, extras=True)
    index = ev.ImageIndex.build(project, "main")
    gt = ev.ground_truth(project, index)
    plain_gt = dict(gt)  # the same boxes, without the flat columns
    images = tuple(index.shas)
    _same(tuple(ev._label_columns(gt, images)), tuple(ev._label_columns(plain_gt, images)))
    results = [
        {"image_id": index.coco_ids[s], "category_id": 1, "bbox": [1.0, 2.0, 30, 40.5], "score": 1}
        for s in index.shas[1:]
        for _ in range(2)
    ]
    path = tmp_path / "preds.json"
    path.write_text(json.dumps(results))
    dets = ev.predictions_source(path, index).detections(index)
    assert isinstance(dets, es.FlatDetections) and dets.flat is not None
    _same(
        tuple(ev._detection_columns(dets, images)),
        tuple(ev._detection_columns(dict(dets), images)),
    )


def test_validate_is_the_same_whichever_path_reads_the_file(project, tmp_path: Path) -> None:
    _build(project, tmp_path, extras=False)
    index = ev.ImageIndex.build(project, "main")
    rng = np.random.default_rng(8)
    gt = ev.ground_truth(project, index)
    results = []
    for sha in index.shas:
        for b, c in zip(gt[sha][0], gt[sha][1], strict=True):
            j = [round(float(v + rng.normal(0, 2)), 2) for v in b]
            j[2], j[3] = abs(j[2]) + 1, abs(j[3]) + 1
            results.append(
                {"image_id": index.coco_ids[sha], "category_id": int(c), "bbox": j, "score": 0.5}
            )
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps(results))
    indented = tmp_path / "indented.json"  # another layout: json reads it
    indented.write_text(json.dumps(results, indent=1))
    assert es._plain_results(plain.read_bytes()) is not None
    assert es._plain_results(indented.read_bytes()) is None

    def figures(path: Path) -> list:
        report = ev.validate(project, lambda i: ev.predictions_source(path, i), by_split=True)
        return [(r.subset, r.value, r.metrics) for r in report.rows]

    assert figures(plain) == figures(indented)
    # read ahead on its own thread while validate reads the labels (what the CLI passes), or
    # when asked for: the same source, the same figures
    for path in (plain, indented):
        ahead = es.PredictionsFile(path)
        report = ev.validate(project, ahead, by_split=True)
        assert [(r.subset, r.value, r.metrics) for r in report.rows] == figures(path)
        assert ahead._read is not None  # validate started the read before binding it
        asked = es.PredictionsFile(path)(index)
        assert asked.to_json() == ev.predictions_source(path, index).to_json()
        assert asked.params == {"detections": len(results)}


def test_a_predictions_file_read_ahead_reports_its_errors_when_bound(project, tmp_path) -> None:
    _build(project, tmp_path, extras=False)
    index = ev.ImageIndex.build(project, "main")
    missing = es.PredictionsFile(tmp_path / "nope.json")
    missing.prefetch()  # the read fails on its thread: nothing is raised yet
    with pytest.raises(InputError, match="cannot read predictions file") as info:
        missing(index)
    assert [p.where for p in info.value.problems] == [str(tmp_path / "nope.json")]
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps([{"image_id": 999, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1}])
    )
    with pytest.raises(InputError, match="not valid for version") as info:
        ev.validate(project, es.PredictionsFile(bad))
    assert "image_id 999 is not an image of this version" in str(info.value.problems)


def test_a_bad_entry_in_the_plain_layout_is_still_listed(project, tmp_path: Path) -> None:
    _build(project, tmp_path, extras=False)
    index = ev.ImageIndex.build(project, "main")
    good = {"image_id": index.coco_ids[index.shas[0]], "category_id": 1, "bbox": [1, 2, 3, 4]}
    results = [
        good | {"score": 0.5},
        good | {"category_id": 3, "score": 0.5},  # not a class of the version
        good | {"image_id": 10**6, "score": 0.5},  # not an image of it
        good | {"bbox": [1, 2, -3, 4], "score": 0.5},
    ]
    path = tmp_path / "preds.json"
    path.write_text(json.dumps(results))
    with pytest.raises(InputError) as e:
        ev.predictions_source(path, index)
    where = sorted(p.where for p in e.value.problems)
    assert where == [f"{path}[1]", f"{path}[2]", f"{path}[3]"]


def test_a_tampered_packed_copy_changes_no_figure(project, tmp_path: Path) -> None:
    """The packed copies of annotation sets (what the review queue ranks by) are derived data
    that nothing ties to a version's hash: an evaluation reads the verified JSON, so moving
    every packed box changes no figure."""
    _build(project, tmp_path, extras=False)
    index = ev.ImageIndex.build(project, "main")
    results = [
        {"image_id": index.coco_ids[s], "category_id": 1, "bbox": [5.0, 5.0, 40.0, 40.0]}
        | {"score": 0.9}
        for s in index.shas
    ]
    path = tmp_path / "preds.json"
    path.write_text(json.dumps(results))

    def figures() -> list:
        report = ev.validate(project, lambda i: ev.predictions_source(path, i))
        return [(r.subset, r.value, r.metrics) for r in report.rows]

    before = figures()
    rows = project.db.execute("SELECT hash, packed FROM annotation_set_packed").fetchall()
    assert any(blob for _, blob in rows)
    with project.transaction():
        for h, blob in rows:
            if blob:  # every box moved onto the detections: a perfect score if trusted
                a = np.frombuffer(blob, "<f8").copy().reshape(-1, 6)
                a[:, 0] = 4.0  # class 1, human, not accepted
                a[:, 1:5] = [5.0, 5.0, 40.0, 40.0]
                project.db.execute(
                    "UPDATE annotation_set_packed SET packed = ? WHERE hash = ?", [a.tobytes(), h]
                )
    assert figures() == before
    assert before[0][1] < 0.5  # so the tampered copies, had they been read, would show


@pytest.mark.parametrize(
    "value",
    [
        ["a" * 64, None, []],
        ["b" * 64, "val", []],
        ["c" * 64, "test", ["x"]],
        ["d" * 64, None, ["n", "m", "n"], {"z": 1, "a": 2}],
    ],
)
def test_manifest_entries_read_directly_are_the_constructors(value: list) -> None:
    meta = tuple(value[3].items()) if len(value) > 3 else ()
    assert Entry.from_json(value) == Entry(value[0], value[1], tuple(value[2]), meta)


def test_a_manifest_entry_with_an_unknown_split_is_refused() -> None:
    with pytest.raises(ValueError, match="split"):
        Entry.from_json(["a" * 64, "holdout", []])


def test_the_plan_of_a_small_version_reads_the_image_rows_by_key(project, tmp_path: Path) -> None:
    """load_plan scans the image tables for a version holding a good part of the project and
    looks rows up by key otherwise: both give the same images."""
    from labeldesk.core.formats.plan import load_plan

    names = _build(project, tmp_path, extras=False)
    full = load_plan(project, "main")  # 8 of 8 images: one pass over each table
    keep = sorted(names.values())[:1]
    with Staging(project) as st:
        st.stage_files([tmp_path / "src" / "i0.png"])
        st.commit(
            entries={sha: Entry("", None) for sha in keep},
            annsets={sha: [] for sha in keep},
            classes=CLASSES,
            message="one",
            provenance={},
            replace_all=True,
        )
    small = load_plan(project, "main")  # 1 of 8: by key
    assert [im.sha for im in small.images] == keep
    (im,) = small.images
    (same,) = [f for f in full.images if f.sha == im.sha]
    assert (im.width, im.height, im.orientation, im.format, im.byte_size, im.derived_name) == (
        same.width,
        same.height,
        same.orientation,
        same.format,
        same.byte_size,
        same.derived_name,
    )
