"""Qt item models over the review workspace: images, boxes, classes, versions, records.

They are thin views of plain Python lists owned elsewhere; a change is announced by exactly the
rows that changed so views stay fast with 100,000 images.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
)
from PySide6.QtGui import QBrush, QColor

from labeldesk.app.review import CONFLICT, EDITED, REVIEWED, TODO, ImageRow
from labeldesk.app.words import minute_text
from labeldesk.core.boxes import Box

from .canvas import CROWD_COLOR
from .colors import class_color

STATE_COLORS = {TODO: "#9aa0a6", REVIEWED: "#34a853", EDITED: "#fbbc04", CONFLICT: "#ea4335"}
STATE_MARKS = {TODO: "○", REVIEWED: "●", EDITED: "◆", CONFLICT: "✖"}
FAIL_COLOR = "#d93025"
RowRole = Qt.ItemDataRole.UserRole + 1


class ImageListModel(QAbstractListModel):
    """The images of the session, filtered (by state, pre-labels below a confidence, a class,
    needing review) and in an order (by name, or by review priority).

    ``rows`` holds every image (``ReviewWorkspace.rows``, indexed by *source row*); the model
    shows ``visible``, the source rows that pass the filters, in the order of ``rank`` (by
    source row when no sort is set). It filters itself rather than through a
    QSortFilterProxyModel's ``filterAcceptsRow``, which the proxy calls once per row through
    the binding: about a second per filter change at 100,000 images, on the GUI thread, against
    tens of milliseconds for one list comprehension here. Views show it through
    :class:`ViewCache`.

    One row is *pinned*: the image under review. It shows whatever the filters say, so an
    image that leaves the filter because it was just reviewed neither vanishes under the
    reviewer nor moves the cursor onto (and then past) its neighbour; it leaves the list once
    the cursor moves on (:meth:`pin`).
    """

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.rows: list[ImageRow] = []
        self.visible: list[int] = []  # source rows shown, in rank order
        self.state: str | None = None
        self.below: float | None = None
        self.cls: int | None = None
        self.needs_review = False
        self.pinned: int | None = None
        # sha -> (priority, reason): the review queue, from core's ranking (set_priorities)
        self.priorities: dict[str, tuple[float, str]] = {}
        self.rank: list[int] | None = None  # source row -> its position in the sort order
        self.order: list[int] | None = None  # the sort order itself: source rows (rank's inverse)

    # -- filtering -----------------------------------------------------------------------------
    def accepts(self, row: ImageRow) -> bool:
        if self.state is not None and row.state != self.state:
            return False
        if self.below is not None and (row.min_score is None or row.min_score >= self.below):
            return False
        if self.needs_review and row.sha not in self.priorities:
            return False
        return self.cls is None or self.cls in row.classes

    def _shows(self, source_row: int) -> bool:
        return source_row == self.pinned or self.accepts(self.rows[source_row])

    def _order(self) -> list[int]:
        """Every source row, in the order the list shows them."""
        if self.order is None:
            return list(range(len(self.rows)))
        return list(self.order)

    def _compute(self) -> list[int]:
        order = self._order()
        if self.state is None and self.below is None and self.cls is None and not self.needs_review:
            return order
        accepts, rows, pinned = self.accepts, self.rows, self.pinned
        return [i for i in order if i == pinned or accepts(rows[i])]

    def set_rows(self, rows: list[ImageRow]) -> None:
        self.beginResetModel()
        self.rows = rows
        self.pinned = None
        self.rank = self.order = None  # by name until the window sorts the new rows
        self.visible = self._compute()
        self.endResetModel()

    def _relayout(self) -> None:
        """Recompute ``visible``; the view's current and selected rows follow their images."""
        self.layoutAboutToBeChanged.emit()
        old = self.persistentIndexList()  # the view's current and selected rows: a handful
        sources = [self.visible[i.row()] for i in old]
        self.visible = self._compute()
        self.changePersistentIndexList(old, [self.view_index(s) for s in sources])
        self.layoutChanged.emit()

    def set_filter(
        self,
        state: str | None = None,
        below: float | None = None,
        cls: int | None = None,
        needs_review: bool = False,
    ) -> None:
        """Apply new filters; the current and selected images stay so if they still show.

        The pin is dropped: a reviewer choosing a filter wants exactly what it passes (the
        window then moves the cursor to a shown image)."""
        self.state, self.below, self.cls = state, below, cls
        self.needs_review = needs_review
        self.pinned = None
        self._relayout()

    def set_sort(self, order: Sequence[int] | None) -> None:
        """Show the rows in ``order`` (every source row once), or by source row for None."""
        if order is None:
            self.rank = self.order = None
        else:
            rank = [0] * len(self.rows)
            for position, source in enumerate(order):
                rank[source] = position
            self.rank, self.order = rank, list(order)
        self._relayout()

    def set_priorities(self, priorities: dict[str, tuple[float, str]]) -> None:
        """The review queue: sha -> (priority, reason) of every image that needs review."""
        self.priorities = dict(priorities)
        if self.needs_review:
            self._relayout()
        elif self.visible:
            self.dataChanged.emit(
                self.index(0), self.index(len(self.visible) - 1), list(self.CHANGED_ROLES)
            )

    def priority_order(self) -> list[int]:
        """Source rows by priority, highest first; ties (and images without one) by name."""
        # one list of plain float keys, sorted by index: no Python call per comparison or row
        get = self.priorities.get
        keys = [-p[0] if (p := get(row.sha)) is not None else 1.0 for row in self.rows]
        return sorted(range(len(keys)), key=keys.__getitem__)

    def pin(self, source_row: int | None) -> None:
        """Pin the image under review; the one pinned before leaves if the filters hide it."""
        old, self.pinned = self.pinned, source_row
        if old is not None and old != source_row and 0 <= old < len(self.rows):
            self.row_changed(old)

    # -- source rows and shown rows ------------------------------------------------------------
    def place(self, source_row: int) -> tuple[int, bool]:
        """The row ``source_row`` shows at, or would be inserted at, and whether it shows."""
        if self.rank is None:
            i = bisect_left(self.visible, source_row)
        else:
            rank = self.rank
            i = bisect_left(self.visible, rank[source_row], key=rank.__getitem__)
        return i, i < len(self.visible) and self.visible[i] == source_row

    def view_index(self, source_row: int) -> QModelIndex:
        """Where source row ``source_row`` shows; invalid when the filters hide it."""
        i, shown = self.place(source_row)
        return self.index(i) if shown else QModelIndex()

    def nearest_row(self, source_row: int) -> int:
        """The shown row at ``source_row``'s place (the next one when it is hidden), or the
        last row; -1 when nothing shows."""
        if not self.visible:
            return -1
        i, _ = self.place(source_row)
        return min(i, len(self.visible) - 1)

    def source_row(self, view_row: int) -> int:
        return self.visible[view_row]

    #: what an edit can change (naming them spares other views a full refresh)
    CHANGED_ROLES = (
        Qt.ItemDataRole.DisplayRole,
        Qt.ItemDataRole.ToolTipRole,
        Qt.ItemDataRole.ForegroundRole,
        RowRole,
    )

    def row_changed(self, source_row: int) -> None:
        """Source row ``source_row`` changed: repaint it, or show or hide it per the filters."""
        i, shown = self.place(source_row)
        wanted = self._shows(source_row)
        if shown and wanted:
            idx = self.index(i)
            self.dataChanged.emit(idx, idx, list(self.CHANGED_ROLES))
        elif shown:
            self.beginRemoveRows(QModelIndex(), i, i)
            del self.visible[i]
            self.endRemoveRows()
        elif wanted:
            self.beginInsertRows(QModelIndex(), i, i)
            self.visible.insert(i, source_row)
            self.endInsertRows()

    # -- the model -----------------------------------------------------------------------------
    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.visible)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not 0 <= index.row() < len(self.visible):
            return None
        row = self.rows[self.visible[index.row()]]
        if role == Qt.ItemDataRole.DisplayRole:
            badge = self.priorities.get(row.sha)
            if badge is None:
                return f"{STATE_MARKS[row.state]}  {row.name}"
            return f"{STATE_MARKS[row.state]}  {row.name}   ⚑ {badge[0]:.2f} {badge[1]}"
        if role == Qt.ItemDataRole.ToolTipRole:
            score = f", lowest pre-label {row.min_score:.2f}" if row.min_score is not None else ""
            badge = self.priorities.get(row.sha)
            why = f"\nreview priority {badge[0]:.2f}: {badge[1]}" if badge else ""
            return (
                f"{row.name}\n{row.width}x{row.height}, {row.n_boxes} boxes, {row.state}{score}"
                f"{why}"
            )
        if role == Qt.ItemDataRole.ForegroundRole:
            return QBrush(QColor(STATE_COLORS[row.state]))
        if role == RowRole:
            return row
        return None


class ViewCache(QSortFilterProxyModel):
    """Stands between a large Python list model and its QListView, and filters nothing.

    QListView lays out every row again when rows are inserted, removed or re-filtered (and, but
    for ``ImageListView``, after any change at all), asking the model for an index per row, and
    ``QAbstractListModel.index`` asks ``rowCount``. With ``rowCount`` in Python that is 200,000
    calls through the binding per layout at 100,000 images (about half a second); this proxy
    answers from its own C++ row mapping instead (about 20 ms), and passes every change
    through, rows inserted, removed and moved included.
    """

    def __init__(self, source: QAbstractListModel, parent=None) -> None:
        super().__init__(parent)
        self.setDynamicSortFilter(False)  # nothing to sort or filter: changes pass straight on
        self.setSourceModel(source)


class _RowsTable(QAbstractTableModel):
    """A table over a Python list: one row per item, the columns named by ``HEADERS``."""

    HEADERS: tuple[str, ...] = ()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.items: list = []

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.items)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(self, section: int, orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.HEADERS[section]
        return None

    def item(self, index: QModelIndex):
        if not index.isValid() or not 0 <= index.row() < len(self.items):
            return None
        return self.items[index.row()]


class BoxTableModel(_RowsTable):
    HEADERS = ("class", "score", "origin", "state")

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.names: dict[int, str] = {}

    @property
    def boxes(self) -> list[Box]:
        return self.items

    def set_boxes(self, boxes: list[Box], names: dict[int, str]) -> None:
        self.beginResetModel()
        self.items, self.names = list(boxes), dict(names)
        self.endResetModel()

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        box = self.item(index)
        if box is None:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            col = index.column()
            if col == 0:
                return self.names.get(box.cls, str(box.cls))
            if col == 1:
                return "" if box.score is None else f"{box.score:.2f}"
            if col == 2:
                return box.origin
            return "crowd region" if box.crowd else box.state
        if role == Qt.ItemDataRole.ForegroundRole and box.crowd:
            return QBrush(CROWD_COLOR)  # grey, as the canvas draws it: not an object box
        if role == Qt.ItemDataRole.DecorationRole and index.column() == 0 and not box.crowd:
            # A swatch, and the name in the table's own text colour: a light class colour as
            # text was unreadable on the table's white.
            return class_color(box.cls)
        return None

    def flags(self, index: QModelIndex | QPersistentModelIndex) -> Qt.ItemFlag:
        row = index.row() if index.isValid() else -1
        if 0 <= row < len(self.items) and self.items[row].crowd:
            return Qt.ItemFlag.ItemIsEnabled  # shown, not selectable: it cannot be edited
        return super().flags(index)


class ClassListModel(QAbstractListModel):
    """The class palette: id, name, colour swatch and its number key."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.classes: list[tuple[int, str]] = []

    def set_classes(self, classes: dict[int, str]) -> None:
        self.beginResetModel()
        self.classes = sorted(classes.items(), key=lambda kv: (kv[0] < 0, abs(kv[0])))
        self.endResetModel()

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.classes)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not 0 <= index.row() < len(self.classes):
            return None
        cid, name = self.classes[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            key = f"[{index.row() + 1}] " if index.row() < 9 else "    "
            return f"{key}{name}"
        if role == Qt.ItemDataRole.DecorationRole:
            return class_color(cid)
        if role == RowRole:
            return cid
        return None

    def class_for_key(self, number: int) -> int | None:
        return self.classes[number - 1][0] if 1 <= number <= len(self.classes) else None


def _fmt_figure(value: float) -> str:
    return "n/a" if value < 0 else f"{value:.3f}"


def watch_text(rows: Sequence[Any]) -> str:
    """A version's watched-model figures in a few words: ``demo 0.412`` per model, and
    ``▼ demo −0.031`` (the drop) for a regression; ``rows`` are ``evaluation.Evaluation``s."""
    parts = []
    for e in rows:
        if e.passed is False and e.metric_drop is not None:
            parts.append(f"▼ {e.source_name} −{e.metric_drop:.3f}")
        else:
            parts.append(f"{e.source_name} {_fmt_figure(e.value)}")
    return "; ".join(parts)


def watch_tooltip(rows: Sequence[Any]) -> str:
    """Every figure behind :func:`watch_text`: value, previous value, drop and limit."""
    lines = []
    for e in rows:
        line = f"{e.source_name}: {e.metric} {_fmt_figure(e.value)}"
        if e.baseline_value is None:
            line += ", first evaluation (nothing to compare with)"
        elif e.metric_drop is None:
            line += ", not comparable (no labels)"
        else:
            verdict = "REGRESSION" if e.passed is False else "ok"
            line += (
                f", previously {_fmt_figure(e.baseline_value)}: {-e.metric_drop:+.4f} "
                f"(limit −{e.max_drop or 0.0:.4f}) {verdict}"
            )
        lines.append(f"{line}\nevaluated {minute_text(e.created)} by {e.author}")
    return "\n".join(lines)


class VersionTableModel(_RowsTable):
    HEADERS = (
        "version",
        "created",
        "author",
        "kind",
        "status",
        "images",
        "boxes",
        "tags",
        "watch",
        "trained",
        "message",
    )
    WATCH_COLUMN = 8
    TRAINED_COLUMN = 9

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        # version id -> the newest watched-model evaluation rows on it (core.watch.watch_status)
        self.watch: dict[str, list[Any]] = {}
        # version id -> names of the models trained on it (core.training.runs)
        self.trained: dict[str, list[str]] = {}

    @property
    def versions(self) -> list:
        return self.items

    def set_versions(self, versions: list, trained: dict[str, list[str]] | None = None) -> None:
        self.beginResetModel()
        self.items = list(versions)
        if trained is not None:
            self.trained = dict(trained)
        self.endResetModel()

    def set_watch(self, status: dict[str, list[Any]]) -> None:
        """Show new watched-model figures; only the watch column changes."""
        self.watch = dict(status)
        if self.items:
            col = self.WATCH_COLUMN
            self.dataChanged.emit(self.index(0, col), self.index(len(self.items) - 1, col))

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        v = self.item(index)
        if v is None:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return (
                v.short,
                minute_text(v.created),
                v.author,
                v.kind,
                v.status,
                v.n_images,
                v.n_boxes,
                ", ".join(v.tags),
                watch_text(self.watch.get(v.id, ())),
                ", ".join(self.trained.get(v.id, ())),
                v.message.splitlines()[0] if v.message else "",
            )[index.column()]
        if index.column() == self.WATCH_COLUMN and v.id in self.watch:
            rows = self.watch[v.id]
            if role == Qt.ItemDataRole.ToolTipRole:
                return watch_tooltip(rows)
            if role == Qt.ItemDataRole.ForegroundRole and any(e.passed is False for e in rows):
                return QBrush(QColor(FAIL_COLOR))
        if role == Qt.ItemDataRole.ForegroundRole and index.column() == 4:
            return QBrush(
                QColor({"approved": "#34a853", "rejected": "#ea4335"}.get(v.status, "#9aa0a6"))
            )
        if role == RowRole:
            return v
        return None


@dataclass(frozen=True)
class Column:
    """One column of a :class:`RecordTableModel`: its header and how a record shows in it."""

    header: str
    text: Callable[[Any], Any]
    numeric: bool = False  # right-aligned, so figures line up
    tooltip: Callable[[Any], str | None] | None = None
    color: Callable[[Any], str | None] | None = None


class RecordTableModel(_RowsTable):
    """A read-only table of records (dataclasses, dicts) whose columns are :class:`Column`s.

    The validation panel shows several such tables; describing each by its columns keeps them
    one class instead of one model subclass per table.
    """

    def __init__(self, columns: Sequence[Column], parent=None) -> None:
        super().__init__(parent)
        self.columns = tuple(columns)
        self.HEADERS = tuple(c.header for c in self.columns)

    def set_items(self, items: Sequence[Any]) -> None:
        self.beginResetModel()
        self.items = list(items)
        self.endResetModel()

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        item = self.item(index)
        if item is None or not 0 <= index.column() < len(self.columns):
            return None
        col = self.columns[index.column()]
        if role == Qt.ItemDataRole.DisplayRole:
            value = col.text(item)
            return "" if value is None else value
        if role == Qt.ItemDataRole.TextAlignmentRole and col.numeric:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ToolTipRole and col.tooltip is not None:
            return col.tooltip(item)
        if role == Qt.ItemDataRole.ForegroundRole and col.color is not None:
            color = col.color(item)
            return QBrush(QColor(color)) if color else None
        if role == RowRole:
            return item
        return None
