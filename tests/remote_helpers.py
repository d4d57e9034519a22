"""Helpers of the remote tests: small projects, reviews, and a walk of a remote's refs."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import write_image

from labeldesk.core.boxes import Box
from labeldesk.core.remote import layout as L
from labeldesk.core.remote.client import Bucket
from labeldesk.core.remote.packs import RecordReader
from labeldesk.core.store.importer import add_images
from labeldesk.core.store.manifest import ManifestStore
from labeldesk.core.store.project import Project
from labeldesk.core.store.sessions import ReviewSession
from labeldesk.core.store.versions import get_version, head


def make_project(tmp: Path, name: str, n: int = 6, seed: int = 0) -> Project:
    src = tmp / f"src-{name}"
    for i in range(n):
        write_image(src / f"img{i:02d}.png", seed=seed * 1000 + i)
    p = Project.init(tmp / name, user="lead")
    add_images(p, [src])
    return p


def images_of(project: Project) -> list[str]:
    store = ManifestStore(project.db)
    tree = store.tree(get_version(project.db, head(project.db)).tree)
    return sorted(i for i, _ in store.entries(tree))


def review(project: Project, images: list[str], x: float, message: str = "review") -> str:
    s = ReviewSession.start(project)
    names = {v: k for k, v in s.classes().items()}
    cid = names["cat"] if "cat" in names else s.add_class("cat")
    for img in images:
        s.set_boxes(img, [Box(cid, x, 1.0, 5.0, 5.0)])
    return s.commit(message).id


def remote_problems(bucket: Bucket, checked: set[str] | None = None) -> list[str]:
    """Every key the remote's refs lead to (records, parents, objects) that it does not hold.

    ``checked`` carries the records found whole by an earlier call: they are immutable, so a
    loop need not walk them again.
    """
    checked = set() if checked is None else checked
    keys = set(bucket.list(""))
    packs = RecordReader(bucket)  # records are in packs, or loose (a remote from before packs)
    problems: list[str] = []
    got = bucket.get(L.MAIN_REF)
    if got is None:
        return problems

    def record(key: str) -> dict | None:
        if not packs.has(key, keys):
            problems.append(key)
            return None
        return packs.read([key])[key]  # verified against its name too

    todo = [json.loads(got[0])["version"]]
    while todo:
        vkey = L.version_key(todo.pop())
        if vkey in checked or (rec := record(vkey)) is None:
            continue
        ok = len(problems)
        todo.extend(rec["parents"])
        tkey = L.tree_key(rec["tree"])
        if tkey not in checked and (tree := record(tkey)) is not None:
            for b in json.loads(tree["text"]).values():
                bkey = L.bucket_key(b)
                if bkey in checked or (bucket_rec := record(bkey)) is None:
                    continue
                for image, entry in json.loads(bucket_rec["text"]).items():
                    for k in (L.object_key(image), L.annset_key(entry[0])):
                        if not packs.has(k, keys):
                            problems.append(k)
                    if image not in bucket_rec["images"]:
                        problems.append(f"{bkey}: row of {image}")
                checked.add(bkey)
            checked.add(tkey)
        if len(problems) == ok:
            checked.add(vkey)
    return problems
