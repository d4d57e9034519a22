"""Benchmark: the review window's image list at 100,000 images, on the GUI thread.

    python bench/image_list.py [--images 100000] [--repeat 20]

Measures, with the window's own list view (``ImageListView``, offscreen) over its own models
(``ImageListModel`` behind ``ViewCache``):
  * a filter change (by state, by pre-label confidence, by class, back to all), from the call
    to the repainted list;
  * one edited image (``row_changed``) with no filter, and with a filter the edit takes the
    image out of, median of ``--repeat``;
  * the review queue's list work (ours only): the *needs review* filter, sorting by priority
    (computing the order included), and a filter change under that sort;
and, in the same run, the same work through the design it replaced: a plain QListView over a
QSortFilterProxyModel whose Python ``filterAcceptsRow`` is called per row. Everything here
runs on the GUI thread, so these are the times the window cannot respond. Last line: one JSON
object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PySide6.QtCore import QModelIndex, QSortFilterProxyModel
from PySide6.QtWidgets import QApplication, QListView

from labeldesk.app.review import EDITED, REVIEWED, TODO, ImageRow
from labeldesk.gui.image_list import ImageListView
from labeldesk.gui.item_models import ImageListModel, ViewCache

FILTERS = {
    "state": {"state": TODO},
    "below": {"below": 0.5},
    "class": {"cls": 2},
    "all": {},
}


def make_rows(n: int) -> list[ImageRow]:
    return [
        ImageRow(
            f"{i:064x}",
            f"batch_{i // 1000:03d}/img_{i:06d}.jpg",
            4000,
            3000,
            state=TODO if i % 3 else REVIEWED,
            n_boxes=i % 12,
            min_score=(i % 100) / 100 if i % 2 else None,
            classes=frozenset({i % 5, (i // 5) % 7}),
        )
        for i in range(n)
    ]


class PeerFilter(QSortFilterProxyModel):
    """The design before: the filter asked per row, from C++, through the binding."""

    def __init__(self) -> None:
        super().__init__()
        self.state: str | None = None
        self.below: float | None = None
        self.cls: int | None = None
        self.needs_review = False  # the window's rule reads these too
        self.priorities: dict = {}
        self.pinned = None

    def set_filter(self, state=None, below=None, cls=None) -> None:
        self.beginFilterChange()
        self.state, self.below, self.cls = state, below, cls
        self.endFilterChange()

    def filterAcceptsRow(self, source_row: int, source_parent: QModelIndex) -> bool:
        # the same rule as the window's (it reads only state, below and cls)
        return ImageListModel.accepts(self, self.sourceModel().rows[source_row])


class PeerList(ImageListModel):
    """Every row, no filtering of its own (the filtering is the proxy's)."""

    def accepts(self, row: ImageRow) -> bool:
        return True


def measure(app: QApplication, rows: list[ImageRow], peer: bool, repeat: int) -> dict:
    if peer:
        model: ImageListModel = PeerList()
        front = PeerFilter()
        front.setSourceModel(model)
        set_filter = front.set_filter
    else:
        model = ImageListModel()
        front = ViewCache(model)
        set_filter = model.set_filter
    view = QListView() if peer else ImageListView()
    view.setUniformItemSizes(True)
    view.setModel(front)
    view.resize(300, 900)
    view.show()

    def timed(fn, *args, **kwargs) -> float:
        t = time.perf_counter()
        fn(*args, **kwargs)
        app.processEvents()  # the relayout and repaint happen here
        return (time.perf_counter() - t) * 1000

    out: dict = {"load_ms": round(timed(model.set_rows, rows), 1)}
    view.setCurrentIndex(front.index(10, 0))
    for name, kwargs in FILTERS.items():
        out[f"filter_{name}_ms"] = round(timed(set_filter, **kwargs), 1)
    if not peer:
        # The review queue: a priority on every third image, as the worker hands it over.
        model.set_priorities(
            {
                r.sha: ((i * 7919 % 1000) / 1000, "possibly missing")
                for i, r in enumerate(rows)
                if i % 3 == 0
            }
        )
        app.processEvents()
        out["filter_needs_review_ms"] = round(timed(model.set_filter, needs_review=True), 1)
        model.set_filter()
        app.processEvents()
        out["sort_priority_ms"] = round(timed(lambda: model.set_sort(model.priority_order())), 1)
        out["filter_under_sort_ms"] = round(timed(model.set_filter, state=TODO), 1)
        model.set_sort(None)
        model.set_filter()
        app.processEvents()
    rng = random.Random(0)
    edits = [timed(model.row_changed, rng.randrange(len(rows))) for _ in range(repeat)]
    out["edit_ms"] = round(statistics.median(edits), 2)
    set_filter(state=TODO)
    app.processEvents()
    todo = [i for i, r in enumerate(rows) if r.state == TODO]
    leaving = []
    for i in rng.sample(todo, repeat):
        rows[i].state = EDITED
        leaving.append(timed(model.row_changed, i))
    out["edit_leaves_filter_ms"] = round(statistics.median(leaving), 2)
    out["shown_after"] = front.rowCount()
    view.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    app = QApplication.instance() or QApplication(sys.argv[:1])
    ours = measure(app, make_rows(args.images), peer=False, repeat=args.repeat)
    peer = measure(app, make_rows(args.images), peer=True, repeat=args.repeat)
    assert ours["shown_after"] == peer["shown_after"], (ours, peer)
    print(f"{args.images} images; milliseconds on the GUI thread")
    print(f"{'':24}{'LabelDesk':>12}{'proxy filter':>14}")
    for key in ours:
        if key.endswith("_ms"):
            print(f"{key:24}{ours[key]:>12}{peer.get(key, '-'):>14}")
    worst = max(ours[f"filter_{n}_ms"] for n in FILTERS)
    worst_peer = max(peer[f"filter_{n}_ms"] for n in FILTERS)
    print(
        json.dumps(
            {
                "images": args.images,
                "labeldesk": ours,
                "proxy_filter": peer,
                "worst_filter_ratio": round(worst / worst_peer, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
