"""The CLI verbs. Each takes the parsed arguments, calls core and prints; no logic of its own."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from labeldesk.core.errors import InputError, LabelDeskError, MergeConflictError
from labeldesk.core.store.db import named
from labeldesk.core.store.project import Project
from labeldesk.core.timestamps import format_time

from .output import ProgressBar, emit_json, error, table


def run(args: argparse.Namespace) -> int:
    handler = getattr(args, "handler", None) or globals()[f"cmd_{args.command}"]
    try:
        return handler(args) or 0
    except InputError as e:
        error(e.summary)
        for p in e.problems:
            sys.stderr.write(f"  - {p}\n")
        return 1
    except MergeConflictError as e:
        error(str(e))
        return 1
    except LabelDeskError as e:
        error(str(e))
        return e.exit_code  # 2 for a full or read-only disk, a file that is no project
    except KeyboardInterrupt:
        sys.stderr.write("\ncancelled; the project is unchanged\n")
        return 130


def _open(args: argparse.Namespace) -> Project:
    return Project.open(Path(args.project))


def image_names(project: Project, shas: list[str]) -> dict[str, str]:
    """The first source path each image was imported from: what a person recognises."""
    out: dict[str, str] = {}
    for i in range(0, len(shas), 500):
        chunk = shas[i : i + 500]
        marks = ",".join("?" * len(chunk))
        for sha, path in project.db.execute(
            f"SELECT sha256, path FROM image_source WHERE sha256 IN ({marks}) ORDER BY id DESC",
            chunk,
        ):
            out[sha] = path
    return out


def _after_commit(args: argparse.Namespace, version) -> None:
    """Start evaluating the watched models on a version just committed (see app/background)."""
    if version is None:
        return
    from labeldesk.app.background import evaluate_watched_later

    with _open(args) as project:
        note = evaluate_watched_later(project, version)
    if note:  # on stderr under --json: stdout stays one JSON document
        (sys.stderr if getattr(args, "json", False) else sys.stdout).write(note + "\n")


# -- verbs -------------------------------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    root = Path(args.path or args.project)
    with Project.init(root) as project:
        print(f"Initialised empty LabelDesk project in {project.root} (lead: {project.user})")
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    from labeldesk.core.store.importer import add_images

    with _open(args) as project, ProgressBar() as bar:
        report = add_images(
            project,
            args.paths,
            message=args.message,
            progress=bar,
            follow_links=args.follow_links,
        )
    if args.json:
        emit_json(report.to_json())
    else:
        n_add, n_dup, n_skip = len(report.added), len(report.duplicates), len(report.skipped)
        print(f"added {n_add}, duplicates {n_dup}, skipped {n_skip}")
        if report.duplicates:
            print("duplicates (stored once):")
            for d in report.duplicates:
                print(f"  {d.path}  (same content as {d.of})")
        if report.skipped:
            print("skipped:")
            for p in report.skipped:
                print(f"  {p.where}: {p.reason}")
        if report.version:
            v = report.version
            print(f'committed version {v.short} "{v.message}" ({v.n_images} images)')
        else:
            print("nothing new to commit")
    _after_commit(args, report.version)
    return 1 if not report.added and report.skipped else 0


def cmd_log(args: argparse.Namespace) -> int:
    from labeldesk.core.store.versions import log
    from labeldesk.core.training.trained import trained_per_version
    from labeldesk.core.validation.watch_status import status_text, watch_status

    with _open(args) as project:
        versions = list(log(project.db, args.ref, args.limit))
        watch = watch_status(project)
        trained = trained_per_version(project.db)
    if args.json:
        emit_json(
            [
                v.to_json()
                | {
                    "trained": trained.get(v.id, []),
                    "watch": [
                        {
                            "model": e.source_name,
                            "model_id": e.source_hash,
                            "evaluation": e.id,
                            "metric": e.metric,
                            "value": e.value,
                            "baseline_value": e.baseline_value,
                            "drop": e.metric_drop,
                            "regression": e.passed is False,
                        }
                        for e in watch.get(v.id, [])
                    ],
                }
                for v in versions
            ]
        )
        return 0
    headers = ["version", "created", "author", "kind", "status", "images", "boxes", "tags"]
    headers.append("message")
    if watch:  # the column only once some model is watched: most projects have none
        headers.append("watched models")
    if trained:  # likewise once a model has been trained here
        headers.append("models trained on it")
    rows = []
    for v in versions:
        row = [
            v.short,
            format_time(v.created),
            v.author,
            v.kind,
            v.status,
            v.n_images,
            v.n_boxes,
            ",".join(v.tags),
            v.message.splitlines()[0] if v.message else "",
        ]
        if watch:
            row.append(status_text(watch.get(v.id, [])))
        if trained:
            row.append(", ".join(trained.get(v.id, [])))
        rows.append(row)
    table(headers, rows)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from labeldesk.app.words import provenance_lines
    from labeldesk.core.store.versions import resolve

    with _open(args) as project:
        v = resolve(project.db, args.ref)
        decisions = project.db.execute(
            "SELECT decision, by, at, note FROM decision WHERE version = ? ORDER BY id", [v.id]
        ).fetchall()
        said = provenance_lines(project.db, v.provenance)  # the model by name, no None
    if args.json:
        data = v.to_json()
        data["decisions"] = [
            dict(zip(("decision", "by", "at", "note"), d, strict=True)) for d in decisions
        ]
        emit_json(data)
        return 0
    print(f"version   {v.id}")
    print(f"kind      {v.kind}")
    print(f"parents   {' '.join(p[:12] for p in v.parents) or '(none)'}")
    print(f"author    {v.author}")
    print(f"created   {format_time(v.created)}")
    when = format_time(v.status_at)
    print(f"status    {v.status}" + (f" by {v.status_by} at {when}" if v.status_by else ""))
    if v.status_note:
        print(f"note      {v.status_note}")
    if v.tags:
        print(f"tags      {', '.join(v.tags)}")
    print(f"images    {v.n_images}")
    print(f"boxes     {v.n_boxes}")
    classes = ", ".join(f"{c['id']}:{c['name']}" for c in v.classes) or "(none)"
    print(f"classes   {classes}")
    for label, text in said:
        print(f"  {label}: {text}")
    print()
    print(f"    {v.message}")
    for d in decisions:
        print(f"  {d[0]} by {d[1]} at {d[2]}" + (f": {d[3]}" if d[3] else ""))
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    from labeldesk.core.store.version_diff import diff

    with _open(args) as project:
        d = diff(project, args.ref_a, args.ref_b)
        names = image_names(
            project,
            [i.image for i in d.images[: max(args.limit, 0)]]
            if not args.json
            else [i.image for i in d.images],
        )
    counts = d.counts()
    if args.json:
        emit_json(
            {
                "a": d.a.id,
                "b": d.b.id,
                **counts,
                "classes_added": d.classes_added,
                "classes_removed": d.classes_removed,
                "images": [
                    {
                        "image": i.image,
                        "path": names.get(i.image),
                        "change": i.kind,
                        "boxes_added": i.boxes_added,
                        "boxes_removed": i.boxes_removed,
                        "split_changed": i.split_changed,
                        "tags_changed": i.tags_changed,
                        "meta_changed": list(i.meta_changed),
                    }
                    for i in d.images
                ],
            }
        )
        return 0
    print(f"{d.a.short} -> {d.b.short}")
    print(
        f"images: +{counts['images_added']} -{counts['images_removed']} "
        f"~{counts['images_changed']}   boxes: +{counts['boxes_added']} -{counts['boxes_removed']}"
    )
    if d.classes_added or d.classes_removed:
        print(f"classes: {d.classes_text()}")
    marks = {"added": "+", "removed": "-", "changed": "~"}
    for i in d.images[: args.limit]:
        extra = ", ".join(i.what_changed())
        print(f"  {marks[i.kind]} {i.image[:12]}  {names.get(i.image, '')}  {extra}")
    if len(d.images) > args.limit:
        print(f"  … and {len(d.images) - args.limit} more (use --json for all)")
    return 0


def cmd_tag(args: argparse.Namespace) -> int:
    from labeldesk.core.store.versions import SHORT, delete_tag, tag

    if args.delete:
        if args.name is None:
            error("tag -d needs the NAME of the tag to delete")
            return 1
        with _open(args) as project:
            was = delete_tag(project, args.name)
        print(f"deleted tag {args.name} (was {was[:SHORT]})")
        return 0
    with _open(args) as project:
        if args.name is None:
            rows = named(
                project.db,
                "SELECT r.name AS tag, r.version, v.status, r.updated_at AS at, "
                "r.updated_by AS by FROM ref r "
                "JOIN version v ON v.id = r.version WHERE r.kind = 'tag' ORDER BY r.name",
            ).fetchall()
            if args.json:
                emit_json([dict(zip(r.keys(), r, strict=True)) for r in rows])
            else:
                table(
                    ("tag", "version", "status", "tagged", "by"),
                    [
                        (r["tag"], r["version"][:12], r["status"], format_time(r["at"]), r["by"])
                        for r in rows
                    ],
                )
            return 0
        v = tag(project, args.name, args.ref, force=args.force)
    print(f"tagged {v.short} as {args.name}")
    return 0


def cmd_approve(args: argparse.Namespace) -> int:
    from labeldesk.core.store.versions import decide

    with _open(args) as project:
        v = decide(project, args.ref, "approved", args.note)
    print(f"approved {v.short} by {v.status_by}")
    return 0


def cmd_reject(args: argparse.Namespace) -> int:
    from labeldesk.core.store.versions import decide

    with _open(args) as project:
        v = decide(project, args.ref, "rejected", args.note)
    print(f"rejected {v.short} by {v.status_by}: {v.status_note}")
    return 0


def cmd_revert(args: argparse.Namespace) -> int:
    from labeldesk.core.store.versions import revert

    with _open(args) as project:
        v = revert(project, args.ref, args.message)
    print(f'committed version {v.short} "{v.message}" ({v.n_images} images, {v.n_boxes} boxes)')
    _after_commit(args, v)
    return 0


def cmd_fsck(args: argparse.Namespace) -> int:
    from labeldesk.core.store.fsck import fsck

    with _open(args) as project, ProgressBar() as bar:
        report = fsck(project, progress=bar)
    if args.json:
        emit_json(report.to_json())
        return 0 if report.ok else 1
    for line in report.errors:
        print(f"error: {line}")
    for line in report.notes:
        print(f"note: {line}")
    mb = report.bytes_checked / 1e6
    if report.ok:
        print(
            f"OK: re-hashed {report.objects_checked} objects ({mb:.1f} MB), "
            f"checked {report.versions_checked} versions"
        )
        return 0
    print(f"{len(report.errors)} problem(s) found")
    return 1


def cmd_member(args: argparse.Namespace) -> int:
    with _open(args) as project:
        if args.user and args.role:
            project.set_member(args.user, args.role)
            print(f"{args.user} is now {args.role}")
        elif args.user:
            print(f"{args.user}: {project.role_of(args.user)}")
        else:
            table(("user", "role"), project.members())
    return 0


def _has_display() -> bool:
    """Whether a window can be shown: a desktop session, or a Qt platform chosen explicitly."""
    if sys.platform in ("darwin", "win32"):
        return True
    return any(os.environ.get(v) for v in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"))


def cmd_demo(args: argparse.Namespace) -> int:
    from labeldesk.core.demo.build import build_demo

    bar = ProgressBar()
    try:
        project = build_demo(
            Path(args.path), n_images=args.images, force=args.force, progress=bar, say=print
        )
    finally:
        bar.close()
    root = project.root
    project.close()
    if args.no_gui:
        return 0
    if not _has_display():
        print(
            "\nNo display here, so the review window was not opened; on a desktop run:\n"
            f"  labeldesk gui {root}"
        )
        return 0
    print("\nOpening the review window…")
    from labeldesk.gui.launcher import run as run_gui

    return run_gui(root)


def cmd_gui(args: argparse.Namespace) -> int:
    from labeldesk.gui.launcher import run as run_gui

    path = args.path
    if path is None and (Path(args.project) / "labeldesk.db").exists():
        path = args.project
    return run_gui(
        Path(path) if path else None, screenshot=Path(args.screenshot) if args.screenshot else None
    )
