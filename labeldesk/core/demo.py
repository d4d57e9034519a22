"""``labeldesk demo``: build a self-contained demo project and walk through the workflow.

Everything is generated offline: images of simple shapes on textured backgrounds, with their
true boxes standing in for a first human labelling pass. The demo then plays a second review
that corrects some labels, tags and approves a release, diffs the two, and checks the store.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from .boxes import Box
from .fsck import fsck
from .importer import add_images
from .progress import ProgressFn
from .project import DB_NAME, Project
from .sessions import ReviewSession
from .synth import CLASSES, write_images
from .versions import decide, diff, log, tag

Say = Callable[[str], None]


def build_demo(
    root: Path,
    *,
    n_images: int = 48,
    seed: int = 7,
    force: bool = False,
    progress: ProgressFn | None = None,
    say: Say = print,
) -> Project:
    root = Path(root).absolute()
    if root.exists() and any(root.iterdir()):
        if not force:
            from .errors import LabelDeskError

            raise LabelDeskError(f"{root} exists and is not empty; use --force to replace it")
        if not (root / DB_NAME).exists():
            from .errors import LabelDeskError

            raise LabelDeskError(f"{root} is not a LabelDesk project; refusing to delete it")
        shutil.rmtree(root)
    source = root / "source-images"
    say(f"1. Generating {n_images} images of {', '.join(CLASSES)} in {source}")
    truth = write_images(source, n_images, seed=seed)
    project = Project.init(root / "project")
    say(f"2. Created project {project.root} (lead: {project.user})")

    report = add_images(project, [source], progress=progress)
    v_import = report.version
    assert v_import is not None
    say(f"3. labeldesk add: {len(report.added)} images imported -> version {v_import.short}")

    # First pass: a hasty labeller. The generator's truth stands in for them, with the kind of
    # mistakes QA finds: a missed object, a loose box, a wrong class.
    by_name = {Path(a.path).name: a.sha256 for a in report.added}
    session = ReviewSession.start(project)
    ids = {name: session.add_class(name) for name in CLASSES}
    truth_boxes = {
        by_name[path.name]: [
            Box(ids[CLASSES[b.cls]], b.x, b.y, b.w, b.h, author=project.user) for b in boxes
        ]
        for path, boxes in truth
    }
    flawed: dict[str, str] = {}
    for i, (sha, boxes) in enumerate(truth_boxes.items()):
        hasty = list(boxes)
        if boxes and i % 6 == 1:
            hasty = hasty[:-1]
            flawed[sha] = "missed object"
        elif boxes and i % 6 == 3:
            b = hasty[0]
            hasty[0] = b.with_(
                x=max(0.0, b.x - 0.15 * b.w), y=max(0.0, b.y - 0.15 * b.h), w=b.w * 1.3, h=b.h * 1.3
            )
            flawed[sha] = "loose box"
        elif boxes and i % 6 == 5:
            b = hasty[0]
            hasty[0] = b.with_(
                cls=ids[
                    CLASSES[
                        (CLASSES.index(next(n for n, c in ids.items() if c == b.cls)) + 1)
                        % len(CLASSES)
                    ]
                ]
            )
            flawed[sha] = "wrong class"
        session.set_boxes(sha, hasty)
    v1 = session.commit("First labelling pass", provenance={"method": "manual"})
    say(f"4. Review session 1 labelled {len(truth)} images: {v1.n_boxes} boxes -> {v1.short}")
    tag(project, "v1.0", v1.id)
    decide(project, "v1.0", "approved", "first complete labelling")
    say("5. Tagged it v1.0 and approved it as a release")

    # Second pass: QA finds and fixes the mistakes.
    session = ReviewSession.start(project)
    final = {old: session.add_class(name) for name, old in ids.items()}  # provisional -> real
    for sha in flawed:
        session.set_boxes(
            sha, [b.with_(cls=final[b.cls], state="edited") for b in truth_boxes[sha]]
        )
    v2 = session.commit(
        "QA: add missed objects, tighten loose boxes, fix classes", provenance={"method": "manual"}
    )
    kinds = ", ".join(
        f"{n} {k}"
        for k, n in sorted(
            {k: list(flawed.values()).count(k) for k in set(flawed.values())}.items()
        )
    )
    say(f"6. Review session 2 corrected {len(flawed)} images ({kinds}) -> {v2.short}")

    d = diff(project, "v1.0", "main")
    c = d.counts()
    say(
        f"7. labeldesk diff v1.0 main: {c['images_changed']} images changed, "
        f"+{c['boxes_added']} / -{c['boxes_removed']} boxes"
    )
    say("8. labeldesk log:")
    for v in log(project.db):
        tags = f" [{', '.join(v.tags)}]" if v.tags else ""
        say(
            f"     {v.short} {v.kind:<7} {v.status:<9} {v.n_images:>4} img {v.n_boxes:>5} box"
            f"  {v.message}{tags}"
        )
    report_fsck = fsck(project)
    say(
        f"9. labeldesk fsck: {'OK' if report_fsck.ok else 'PROBLEMS'} "
        f"({report_fsck.objects_checked} objects re-hashed)"
    )
    say(
        f"\nTry it yourself:\n  labeldesk -p {project.root} log\n"
        f"  labeldesk -p {project.root} diff v1.0 main\n  labeldesk -p {project.root} fsck"
    )
    return project
