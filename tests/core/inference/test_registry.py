"""The model registry with the real shipped demo model: bytes, not names; safe loading first."""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

import pytest

from labeldesk.core.inference import loading
from labeldesk.core.inference.model_files import (
    ModelChangedError,
    ModelError,
    UnsafeModelError,
    read_onnx_header,
    sniff_format,
)
from labeldesk.core.inference.registry import add_model, file_state, get_model, list_models
from labeldesk.core.store.importer import add_images
from labeldesk.core.store.project import now_iso
from labeldesk.core.store.sessions import ReviewSession

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "resources" / "models" / "demo-shapes.pt"
CLASSES = ["circle", "square", "triangle", "star"]


class Payload:
    """Unpickling this makes the folder ``path``: stands in for any code a hostile .pt runs."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (str(self.path),))


def malicious_pt(path: Path, marker: Path, *, legacy: bool = False) -> Path:
    import torch

    ckpt = {"model": Payload(marker), "train_args": {}, "date": "2024-01-01"}
    torch.save(ckpt, path, _use_new_zipfile_serialization=not legacy)
    return path


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number: int, payload: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def tiny_onnx(meta: dict[str, str]) -> bytes:
    """A ModelProto by hand: ir_version, producer, an empty graph, metadata_props."""
    body = varint(1 << 3) + varint(9) + field(2, b"pytorch") + field(7, b"")
    for k, v in meta.items():
        body += field(14, field(1, k.encode()) + field(2, v.encode()))
    return body


@pytest.fixture
def demo_copy(tmp_path: Path) -> Path:
    """The shipped model, copied: tests change or delete the registered file."""
    folder = tmp_path / "weights"
    folder.mkdir()
    return Path(shutil.copy(DEMO, folder / "demo.pt"))


def test_shipped_model_registers_with_format_task_classes_and_hash(project, demo_copy) -> None:
    report = add_model(project, demo_copy)
    m = report.model
    assert (m.name, m.format, m.task, m.class_names) == ("demo", "pt", "detect", CLASSES)
    import hashlib

    assert m.id == hashlib.sha256(demo_copy.read_bytes()).hexdigest()
    assert m.trusted is False and m.added_by == "lead-user"
    assert report.version is None  # empty project: nothing to compare classes with yet
    assert [x.name for x in list_models(project.db)] == ["demo"]
    assert get_model(project, "demo") == get_model(project, m.id[:8]) == m
    again = add_model(project, demo_copy, "demo")
    assert again.already and again.model == m
    with pytest.raises(ModelError, match="already registered as 'demo'"):
        add_model(project, demo_copy, "other-name")
    with pytest.raises(ModelError, match="no model 'nope'"):
        get_model(project, "nope")


def test_format_comes_from_the_bytes_not_the_extension(project, tmp_path, demo_copy) -> None:
    renamed = Path(shutil.copy(demo_copy, tmp_path / "weights" / "really-a-pt.onnx"))
    assert sniff_format(renamed) == "pt"
    assert add_model(project, renamed).model.format == "pt"
    onnx_named_pt = tmp_path / "weights" / "really-onnx.pt"
    onnx_named_pt.write_bytes(tiny_onnx({"names": "{0: 'a'}", "task": "detect"}))
    assert sniff_format(onnx_named_pt) == "onnx"
    m = add_model(project, onnx_named_pt).model
    assert (m.format, m.task, m.class_names) == ("onnx", "detect", ["a"])

    text = tmp_path / "notes.pt"
    text.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 12\n")
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    image = tmp_path / "photo.onnx"
    image.write_bytes(b"\xff\xd8\xff\xe0" + bytes(100))
    archive = tmp_path / "archive.pt"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("readme.txt", "hello")
    for bad in (text, empty, image):
        with pytest.raises(ModelError, match="not a model file"):
            add_model(project, bad)
    with pytest.raises(ModelError, match=r"no data\.pkl"):
        add_model(project, archive)
    with pytest.raises(ModelError, match="without Ultralytics metadata"):
        bare = tmp_path / "bare.onnx"
        bare.write_bytes(tiny_onnx({}))
        add_model(project, bare)
    assert len(list_models(project.db)) == 2  # only the two good ones


def test_onnx_header_parser_rejects_what_is_not_a_model_proto(tmp_path) -> None:
    good = tmp_path / "m.onnx"
    good.write_bytes(tiny_onnx({"task": "detect", "imgsz": "[320, 320]"}))
    assert read_onnx_header(good) == {"task": "detect", "imgsz": "[320, 320]"}
    for name, data in {
        "no-graph": varint(8) + varint(9),
        "truncated": tiny_onnx({"task": "detect"})[:-3],
        "wrong-wire": varint(1 << 3 | 2) + varint(1) + b"x" + field(7, b""),
        "text": b"hello world, this is text\n",
    }.items():
        (tmp_path / name).write_bytes(data)
        assert read_onnx_header(tmp_path / name) is None, name


def test_a_changed_file_is_refused_until_registered_again(project, tmp_path, demo_copy) -> None:
    import torch

    from labeldesk.core.inference.loading import safe_load_checkpoint

    first = add_model(project, demo_copy, "shapes").model
    # "retrain": same architecture, different bytes, written over the registered file
    ckpt = safe_load_checkpoint(demo_copy, demo_copy, trust=False)
    ckpt["date"] = "retrained"
    torch.save(ckpt, demo_copy)
    assert file_state(first) == "changed"
    with pytest.raises(ModelChangedError, match="changed since it was registered") as e:
        get_model(project, "shapes")
    assert "register it again" in str(e.value)
    with pytest.raises(ModelChangedError):
        loading.load_model(first)
    second = add_model(project, demo_copy, "shapes")
    assert second.replaced == first.id and second.model.id != first.id
    assert get_model(project, "shapes").id == second.model.id
    names = {m.name: m.id for m in list_models(project.db)}
    assert names == {"shapes": second.model.id, f"shapes@{first.short}": first.id}
    demo_copy.unlink()
    with pytest.raises(ModelChangedError, match="missing"):
        get_model(project, "shapes")


def test_malicious_pickle_never_runs_without_trust(project, tmp_path) -> None:
    marker = tmp_path / "pwned"
    for legacy in (False, True):
        evil = malicious_pt(tmp_path / f"evil-{legacy}.pt", marker, legacy=legacy)
        assert sniff_format(evil) == "pt"
        with pytest.raises(UnsafeModelError, match="--trust") as e:
            add_model(project, evil)
        assert "mkdir" in str(e.value) and "nothing in it was run" in str(e.value)
        assert not marker.exists()
    assert list_models(project.db) == []
    # The payload is real: with --trust it runs (and the file is still no model).
    with pytest.raises(ModelError, match="not an Ultralytics checkpoint"):
        add_model(project, tmp_path / "evil-False.pt", trust=True)
    assert marker.exists()
    assert list_models(project.db) == []


def test_a_registered_file_swapped_for_a_malicious_one_is_never_loaded(
    project, tmp_path, demo_copy
) -> None:
    info = add_model(project, demo_copy).model
    marker = tmp_path / "pwned"
    malicious_pt(demo_copy, marker)
    with pytest.raises(ModelChangedError):
        loading.load_model(info, trust=True)  # the hash check comes before any unpickling
    assert not marker.exists()


def test_load_refuses_an_untrusted_pickle_even_if_registered(project, tmp_path) -> None:
    import hashlib

    marker = tmp_path / "pwned"
    evil = malicious_pt(tmp_path / "evil.pt", marker)
    sha = hashlib.sha256(evil.read_bytes()).hexdigest()
    with project.transaction():  # as if registered with --trust elsewhere
        project.db.execute(
            "INSERT INTO model (id, name, path, format, task, class_names, trusted, added_at, "
            "added_by) VALUES (?, 'evil', ?, 'pt', 'detect', '[\"a\"]', 1, ?, 'x')",
            [sha, str(evil), now_iso()],
        )
    with pytest.raises(UnsafeModelError):
        loading.load_model(get_model(project, "evil"))
    assert not marker.exists()
    with pytest.raises(ModelError):
        loading.load_model(get_model(project, "evil"), trust=True)
    assert marker.exists()


def test_only_detection_and_segmentation_models_are_accepted(project, tmp_path) -> None:
    loading.ultralytics()
    from ultralytics import YOLO

    cls_path, seg_path = tmp_path / "cls.pt", tmp_path / "seg.pt"
    YOLO("yolov8n-cls.yaml").save(cls_path)
    YOLO("yolov8n-seg.yaml").save(seg_path)
    with pytest.raises(ModelError, match="'classify' model; pre-labelling needs boxes"):
        add_model(project, cls_path)
    assert add_model(project, seg_path).model.task == "segment"


def test_unknown_classes_are_reported_and_added_only_when_asked(
    project, tmp_path, demo_copy
) -> None:
    from helpers import write_image

    add_images(project, [write_image(tmp_path / "src" / "a.png")])
    s = ReviewSession.start(project)
    s.add_class("circle")
    s.set_boxes(_first_image(project), [])
    s.commit("classes: circle")
    report = add_model(project, demo_copy)
    assert report.unknown_classes == ["square", "triangle", "star"]
    assert report.added_classes == [] and report.session is None
    assert ReviewSession.open_sessions(project) == []
    report = add_model(project, demo_copy, add_classes=True)
    assert report.added_classes == ["square", "triangle", "star"]
    session = ReviewSession(project, report.session)
    assert sorted(session.classes().values()) == sorted(CLASSES)
    assert add_model(project, demo_copy, add_classes=True).session == session.id  # reused


def _first_image(project) -> str:
    return project.db.execute("SELECT sha256 FROM image LIMIT 1").fetchone()[0]


def test_the_ultralytics_internals_safe_loading_relies_on_exist() -> None:
    """Safe loading leans on Ultralytics internals; if an upgrade removes one, this fails loudly
    (and loading refuses untrusted files) instead of the protection quietly going away."""
    import inspect

    from ultralytics.nn import tasks

    assert hasattr(tasks, "SAFE_LOAD")
    assert "safe_only" in inspect.signature(tasks.torch_safe_load).parameters
    assert callable(tasks.guess_model_task)


def test_loading_refuses_when_the_weights_only_switch_is_gone(monkeypatch) -> None:
    from ultralytics.nn import tasks

    from labeldesk.core.inference.loading import safe_default
    from labeldesk.core.inference.model_files import ModelError

    monkeypatch.delattr(tasks, "SAFE_LOAD")
    with pytest.raises(ModelError, match="SAFE_LOAD"), safe_default(True):
        pass
    with safe_default(False):  # trusted files do not need it
        pass
