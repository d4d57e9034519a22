"""The review window: image list, canvas, boxes, class palette, versions, status.

Every edit is an undo command; applying one updates the view at once and hands the image's new
boxes to the writer thread, which saves them to the review session before anything else runs.
Reads for display are small and done here; anything that scans the project runs on the worker.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QModelIndex, QRectF, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence, QUndoCommand, QUndoStack
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDockWidget,
    QDoubleSpinBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListView,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QSlider,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from labeldesk.app import rules
from labeldesk.app.review import CONFLICT, EDITED, REVIEWED, TODO, Workspace, open_or_start_session
from labeldesk.core.boxes import Box
from labeldesk.core.errors import LabelDeskError, MergeConflictError
from labeldesk.core.flavour import FULL_ONLY, is_full
from labeldesk.core.project import Project
from labeldesk.core.sessions import ReviewSession

from .canvas import Canvas
from .help import HelpOverlay
from .image_list import ImageListView
from .item_models import BoxTableModel, ClassListModel, ImageListModel, RowRole, ViewCache
from .loader import ImageLoader
from .shortcuts import SHORTCUTS
from .tasks import ProjectRunner


class EditCommand(QUndoCommand):
    """Replace the boxes of one image; undo puts the old ones back."""

    def __init__(
        self,
        window: MainWindow,
        sha: str,
        before: list[Box],
        after: list[Box],
        text: str,
        select: int = -1,
    ) -> None:
        super().__init__(text)
        self.window, self.sha, self.before, self.after = window, sha, before, after
        self.select = select

    def redo(self) -> None:
        self.window.apply_boxes(self.sha, self.after, self.select)

    def undo(self) -> None:
        self.window.apply_boxes(self.sha, self.before)


def _load_workspace(project: Project, session_id: int) -> Workspace:
    ws = Workspace(project, ReviewSession(project, session_id))
    ws.load()
    return ws


def _save_edit(project: Project, session_id: int, sha: str, boxes: list[Box]) -> str:
    ReviewSession(project, session_id).set_boxes(sha, boxes)
    return sha


def _commit(
    project: Project, session_id: int, message: str, provenance: dict, resolutions: dict | None
):
    return ReviewSession(project, session_id).commit(
        message, provenance=provenance, resolutions=resolutions
    )


class MainWindow(QMainWindow):
    """One project, one review session at a time."""

    sessionLoaded = Signal()
    queueReady = Signal()  # the review queue was ranked (again)
    editSaved = Signal(str)
    #: a new version made from this window: a review commit, an import, added images, a revert
    #: (watched models are evaluated on each)
    committed = Signal(object)

    def __init__(self, project_root: Path | None = None, user: str | None = None) -> None:
        super().__init__()
        self.setWindowTitle("LabelDesk")
        self.resize(1400, 900)
        self.user = user
        self.project: Project | None = None
        self.ws: Workspace | None = None
        self.writer: ProjectRunner | None = None
        self.worker: ProjectRunner | None = None
        self.current: str | None = None
        self.overlay: dict[str, list[Box]] = {}  # boxes edited here, newest first to be read
        self.suggestions: list = []  # the shown image's undecided suggestions
        self.suggestion_items: list = []
        self.draw_class: int | None = None
        self.undo_stack = QUndoStack(self)
        self.undo_stack.cleanChanged.connect(self._update_title)
        self.settings = QSettings("LabelDesk", "LabelDesk")
        self._queue_timer = QTimer(self)
        self._queue_timer.setSingleShot(True)
        self._queue_timer.setInterval(300)
        self._queue_timer.timeout.connect(self.refresh_queue)
        self._queue_generation = 0
        self._build_ui()
        self._build_actions()
        self.help = HelpOverlay(self)
        if project_root is not None:
            self.open_project(project_root)
        else:
            from .welcome import WelcomeWidget

            self.setCentralWidget(WelcomeWidget(self))

    # -- layout ------------------------------------------------------------------------------
    def _build_ui(self) -> None:
        self.canvas = Canvas(self)
        self.canvas.boxEdited.connect(self._box_edited)
        self.canvas.boxDrawn.connect(self._box_drawn)
        self.canvas.selectionChangedTo.connect(self._canvas_selection)
        self.canvas.zoomChanged.connect(lambda _z: self._update_status())

        self.image_model = ImageListModel(self)  # every image; shows those the filters pass
        self.image_rows = ViewCache(self.image_model, self)  # same rows, C++ indexes for the view
        self.image_list = ImageListView()
        self.image_list.setModel(self.image_rows)
        self.image_list.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.image_list.selectionModel().currentChanged.connect(self._list_current_changed)
        self.state_filter = QComboBox()
        self.state_filter.addItems(["all images", TODO, REVIEWED, EDITED, CONFLICT])
        self.state_filter.currentIndexChanged.connect(self._apply_filter)
        self.below_check = QCheckBox("pre-labels below")
        self.below_spin = QDoubleSpinBox()
        self.below_spin.setRange(0.0, 1.0)
        self.below_spin.setSingleStep(0.05)
        self.below_spin.setValue(0.5)
        self.below_check.toggled.connect(self._apply_filter)
        self.below_spin.valueChanged.connect(self._apply_filter)
        self.class_filter = QComboBox()
        self.class_filter.currentIndexChanged.connect(self._apply_filter)
        self.needs_review = QCheckBox("needs review")
        self.needs_review.setToolTip("Only images where the model and the labels disagree")
        self.needs_review.toggled.connect(self._apply_filter)
        self.sort_order = QComboBox()
        self.sort_order.addItems(["by name", "by priority"])
        self.sort_order.currentIndexChanged.connect(self._apply_sort)
        left = QWidget()
        lay = QVBoxLayout(left)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.state_filter)
        row = QHBoxLayout()
        row.addWidget(self.below_check)
        row.addWidget(self.below_spin)
        lay.addLayout(row)
        lay.addWidget(self.class_filter)
        row = QHBoxLayout()
        row.addWidget(self.needs_review)
        row.addWidget(self.sort_order)
        lay.addLayout(row)
        lay.addWidget(self.image_list)
        self.images_dock = self._dock("Images", left, Qt.DockWidgetArea.LeftDockWidgetArea)

        self.box_model = BoxTableModel(self)
        self.box_table = QTableView()
        self.box_table.setModel(self.box_model)
        self.box_table.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
        self.box_table.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.box_table.verticalHeader().setVisible(False)
        self.box_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.box_table.clicked.connect(lambda idx: self.canvas.select_index(idx.row()))
        boxes_panel = QWidget()
        lay = QVBoxLayout(boxes_panel)
        lay.setContentsMargins(4, 4, 4, 4)
        self.priority_label = QLabel()  # the image's review priority and why
        self.priority_label.setWordWrap(True)
        lay.addWidget(self.priority_label)
        lay.addWidget(self.box_table)
        self._dock("Boxes", boxes_panel, Qt.DockWidgetArea.RightDockWidgetArea)

        self.class_model = ClassListModel(self)
        self.class_list = QListView()
        self.class_list.setModel(self.class_model)
        self.class_list.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.class_list.clicked.connect(lambda idx: self.set_class_key(idx.row() + 1))
        classes = QWidget()
        lay = QVBoxLayout(classes)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.class_list)
        add_class = QPushButton("Add class…")
        add_class.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        add_class.clicked.connect(self.add_class_dialog)
        lay.addWidget(add_class)
        self._dock("Classes", classes, Qt.DockWidgetArea.RightDockWidgetArea)

        from .versions_panel import VersionsPanel

        self.versions = VersionsPanel(self)
        self.versions_dock = self._dock(
            "Versions", self.versions, Qt.DockWidgetArea.BottomDockWidgetArea
        )
        from .validation_panel import ValidationPanel
        from .watch_jobs import WatchedEvaluations

        # Tabbed behind Versions: it loads (and imports matplotlib) only once it is shown.
        self.validation = ValidationPanel(self)
        self.validation_dock = self._dock(
            "Validation", self.validation, Qt.DockWidgetArea.BottomDockWidgetArea
        )
        self.validation_dock.visibilityChanged.connect(self.validation.set_on_screen)
        self.validation_dock.visibilityChanged.connect(self._validation_visible)
        self.tabifyDockWidget(self.versions_dock, self.validation_dock)
        self.versions_dock.show()
        self.versions_dock.raise_()  # Versions in front
        self.watched = WatchedEvaluations(self)
        self.committed.connect(self.watched.version_committed)

        toolbar = self.addToolBar("Review")
        toolbar.setObjectName("review-toolbar")
        toolbar.addWidget(QLabel(" Model run "))
        self.run_chooser = QComboBox()
        self.run_chooser.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.run_chooser.setToolTip("Whose stored predictions show as pre-labels and suggestions")
        self.run_chooser.activated.connect(self._run_chosen)
        toolbar.addWidget(self.run_chooser)
        toolbar.addWidget(QLabel(" Match IoU "))
        self.iou_spin = QDoubleSpinBox()
        self.iou_spin.setRange(0.10, 0.95)
        self.iou_spin.setSingleStep(0.05)
        self.iou_spin.setDecimals(2)
        self.iou_spin.setValue(0.50)
        self.iou_spin.setToolTip(
            "How much a prediction must overlap a label of its class to agree with it: below "
            "this a label is a 'loose box' and the prediction 'possibly missing'"
        )
        self.iou_spin.valueChanged.connect(self._iou_changed)
        toolbar.addWidget(self.iou_spin)
        toolbar.addWidget(QLabel(" Hide pre-labels below "))
        self.conf_slider = QSlider(Qt.Orientation.Horizontal)
        self.conf_slider.setRange(0, 100)
        self.conf_slider.setFixedWidth(160)
        self.conf_slider.valueChanged.connect(self._conf_changed)
        toolbar.addWidget(self.conf_slider)
        self.conf_label = QLabel(" 0.00 ")
        toolbar.addWidget(self.conf_label)
        from .status_bar import StatusBar

        self.setStatusBar(StatusBar(self))  # messages stay readable while jobs come and go
        self.status_label = QLabel()
        self.statusBar().addWidget(self.status_label, 1)
        self.save_label = QLabel()
        self._unsaved = 0  # edits handed to the writer and not yet written
        self.statusBar().addPermanentWidget(self.save_label)

    def _dock(self, title: str, widget: QWidget, area) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(title.lower())
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _build_actions(self) -> None:
        menu_file = self.menuBar().addMenu("&File")
        for text, slot, keys in (
            ("&New project…", self.new_project_dialog, QKeySequence.StandardKey.New),
            ("&Open project…", self.open_project_dialog, QKeySequence.StandardKey.Open),
            ("Open &demo project", self.open_demo, None),
            ("&Add images…", self.add_images_dialog, None),
            ("Import &COCO…", lambda: self._exchange("import_dataset", "coco"), None),
            ("Import &YOLO…", lambda: self._exchange("import_dataset", "yolo"), None),
            ("Export main as COCO…", lambda: self._exchange("export_dataset", "coco"), None),
            ("Export main as YOLO…", lambda: self._exchange("export_dataset", "yolo"), None),
            ("&Quit", self.close, QKeySequence.StandardKey.Quit),
        ):
            act = QAction(text, self)
            if keys is not None:
                act.setShortcut(keys)
            act.triggered.connect(slot)
            menu_file.addAction(act)
            if text.startswith(("&Add", "Export main as YOLO")):
                menu_file.addSeparator()
        menus = {}
        self.actions_by_name: dict[str, QAction] = {}
        for sc in SHORTCUTS:
            menu = menus.get(sc.group) or self.menuBar().addMenu(f"&{sc.group}")
            menus[sc.group] = menu
            act = QAction(sc.text, self)
            act.setShortcuts([QKeySequence(k) for k in sc.keys])
            act.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            act.triggered.connect(getattr(self, sc.action))
            menu.addAction(act)
            self.addAction(act)
            self.actions_by_name[sc.action] = act
        act = QAction("&Pre-label with a model…", self)
        act.triggered.connect(self.prelabel_dialog)
        menus["Review"].addSeparator()
        menus["Review"].addAction(act)
        models_menu = self.menuBar().addMenu("&Models")
        for text, slot in (
            ("&Train a model…", self.train_dialog),
            ("&Models and promotion…", self.models_dialog),
        ):
            act = QAction(text, self)
            act.triggered.connect(slot)
            models_menu.addAction(act)
            if slot == self.train_dialog:
                self.train_action = act
        if not is_full():
            # The review flavour has no torch: training is offered where it can run.
            train = self.train_action
            train.setEnabled(False)
            train.setText("&Train a model… (full flavour only)")
            train.setStatusTip(f"Training {FULL_ONLY}")
            train.setToolTip(f"Training {FULL_ONLY}")

        from .remote_actions import RemoteActions

        self.remote_actions = RemoteActions(self)  # the Remote menu, ahead/behind
        menus["View"].addSeparator()
        self.show_matched = QAction("Show &matched predictions (faint)", self)
        self.show_matched.setCheckable(True)
        self.show_matched.toggled.connect(lambda _on: self._redraw_boxes())
        menus["View"].addAction(self.show_matched)
        act = QAction("&Validation panel", self)
        act.triggered.connect(self.show_validation)
        menus["View"].addAction(act)
        panels = menus["View"].addMenu("&Panels")
        for dock in self.findChildren(QDockWidget):
            panels.addAction(dock.toggleViewAction())
        for n in range(1, 10):
            act = QAction(f"Class {n}", self)
            act.setShortcut(QKeySequence(str(n)))
            act.triggered.connect(lambda _=False, n=n: self.set_class_key(n))
            self.addAction(act)

    # -- opening -----------------------------------------------------------------------------
    def open_project(self, root: Path) -> None:
        self.close_project()
        try:
            project = Project.open(root, user=self.user)
        except LabelDeskError as e:
            QMessageBox.warning(self, "Cannot open project", str(e))
            return
        self.project = project
        self.user = project.user
        self.settings.setValue("last_project", str(project.root))
        self.writer = ProjectRunner(project.root, project.user, "labeldesk-writer", self)
        self.worker = ProjectRunner(project.root, project.user, "labeldesk-worker", self)
        self.loader = ImageLoader(lambda sha: project.objects.path(sha), self)
        self.loader.imageReady.connect(self._image_ready)
        if self.centralWidget() is not self.canvas:
            self.setCentralWidget(self.canvas)
        self.versions.set_project(project)
        self.validation.set_project(project)
        self.remote_actions.refresh()
        self.start_session()

    def start_session(self) -> None:
        assert self.project is not None and self.worker is not None
        self.undo_stack.clear()
        self.overlay.clear()
        self.current = None
        try:
            session = open_or_start_session(self.project)
        except LabelDeskError as e:  # an empty project has no version to review yet
            self.ws = None
            self.image_model.set_rows([])
            self.status_label.setText(f"{self.project.root}: {e}")
            return
        self.ws = Workspace(self.project, session)
        self.status_label.setText("Loading images…")
        self.worker.submit(
            _load_workspace, session.id, on_done=self._workspace_loaded, on_error=self.show_error
        )

    def _workspace_loaded(self, loaded: Workspace) -> None:
        ws = self.ws
        if ws is None or ws.session.id != loaded.session.id:
            return  # the project was closed or another session started meanwhile
        ws.rows, ws.index, ws.classes = loaded.rows, loaded.index, loaded.classes
        ws.prelabel_model, ws.prelabel_params = loaded.prelabel_model, loaded.prelabel_params
        self.image_model.set_rows(ws.rows)
        self.class_model.set_classes(ws.classes)
        self._fill_class_filter()
        if ws.rows:
            self.show_row(self._start_row())
        self._fill_runs()
        self.refresh_queue()
        self._update_title()
        self._update_status()
        self.sessionLoaded.emit()

    def close_project(self) -> None:
        self.watched.close_project()
        self.validation.close_project()
        for runner in (self.writer, self.worker):
            if runner is not None:
                runner.shutdown()
        if getattr(self, "loader", None) is not None:
            self.loader.shutdown()
        if self.project is not None:
            self.project.close()
        self.project = self.ws = self.writer = self.worker = None

    def closeEvent(self, event) -> None:
        self.close_project()  # waits for the writer: every edit is saved before we go
        super().closeEvent(event)

    # -- navigation ----------------------------------------------------------------------------
    def show_row(self, source_row: int) -> None:
        """Select source row ``source_row`` in the list and show it, whatever the filters say
        (it is pinned: the list always holds the image the canvas shows)."""
        self.image_model.pin(source_row)
        shown = self.image_rows.mapFromSource(self.image_model.view_index(source_row))
        if shown.isValid():
            self.image_list.setCurrentIndex(shown)
            self.image_list.scrollTo(shown)

    def _list_current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if current.isValid():
            row = current.data(RowRole)
            # Pin before anything moves: the image left behind may now leave the list, which
            # must not move the cursor again.
            self.image_model.pin(self.ws.index[row.sha] if self.ws is not None else None)
            self._show_image(row.sha)

    def _keep_list_and_canvas_in_step(self) -> None:
        """After a filter or sort change: the image shown is the list's current row."""
        if self.ws is None or self.current not in self.ws.index:
            return
        idx = self.image_list.currentIndex()
        if idx.isValid():
            self.image_model.pin(
                self.image_model.source_row(self.image_rows.mapToSource(idx).row())
            )
            self.image_list.scrollTo(idx)
            return
        row = self.image_model.nearest_row(self.ws.index[self.current])
        if row >= 0:
            self.image_list.setCurrentIndex(self.image_rows.index(row, 0))

    def _position_key(self) -> str:
        import hashlib

        assert self.project is not None
        return "last_image/" + hashlib.sha256(str(self.project.root).encode()).hexdigest()[:16]

    def _start_row(self) -> int:
        """Where a session opens: the image the reviewer was on last time in this project,
        else the first image with pre-labels waiting, else the first not reviewed."""
        assert self.ws is not None
        last = self.settings.value(self._position_key())
        if isinstance(last, str) and last in self.ws.index:
            return self.ws.index[last]
        rows = self.ws.rows
        for i, r in enumerate(rows):
            if r.min_score is not None and r.state == TODO:
                return i
        return next((i for i, r in enumerate(rows) if r.state == TODO), 0)

    def _show_image(self, sha: str) -> None:
        assert self.ws is not None
        self.current = sha
        self.canvas.shown = sha
        self.settings.setValue(self._position_key(), sha)
        row = self.ws.rows[self.ws.index[sha]]
        image = self.loader.request(sha)
        self.canvas.set_image(image, (row.width, row.height))
        self._redraw_boxes()
        if image is not None:
            self._prefetch_around(sha)  # else once it is decoded: it must not wait for them
        self._update_status()

    def _prefetch_around(self, sha: str) -> None:
        """Decode the neighbours, starting just after this frame is painted: decoding them
        while the current image is drawn would slow the frame the reviewer is waiting for."""
        QTimer.singleShot(40, lambda: self._prefetch_now(sha))

    def _prefetch_now(self, sha: str) -> None:
        if self.ws is None or sha != self.current:
            return  # moved on meanwhile: the new position prefetches its own neighbours
        # The neighbours in the list as shown (filtered and sorted), where Space goes next.
        model = self.image_model
        i, shown = model.place(self.ws.index[sha])
        if not shown:
            return
        rows, visible = model.rows, model.visible
        ahead = [
            rows[visible[j]].sha for j in (i + 1, i + 2, i + 3, i - 1) if 0 <= j < len(visible)
        ]
        self.loader.prefetch(ahead)

    def _image_ready(self, sha: str, image, full: bool) -> None:
        if sha == self.current and self.ws is not None:
            row = self.ws.rows[self.ws.index[sha]]
            self.canvas.set_image(image, (row.width, row.height))
            if not full:
                self._prefetch_around(sha)

    def _step(self, delta: int) -> None:
        if self.ws is None or not self.ws.rows:
            return
        idx = self.image_list.currentIndex()
        n = self.image_rows.rowCount()
        if n == 0:
            return
        target = 0 if not idx.isValid() else max(0, min(n - 1, idx.row() + delta))
        self.image_list.setCurrentIndex(self.image_rows.index(target, 0))

    def next_image(self) -> None:
        self._step(+1)

    def previous_image(self) -> None:
        self._step(-1)

    def next_todo(self) -> None:
        if self.ws is None or self.current is None:
            return
        start = self.ws.index[self.current]
        rows = self.ws.rows
        for k in range(1, len(rows) + 1):
            j = (start + k) % len(rows)
            if rows[j].state == TODO:
                self.show_row(j)
                return

    # -- boxes ---------------------------------------------------------------------------------
    def boxes_of(self, sha: str) -> list[Box]:
        if sha in self.overlay:
            return list(self.overlay[sha])
        assert self.ws is not None
        return self.ws.boxes(sha)

    def _redraw_boxes(self, select: int = -1) -> None:
        if self.current is None or self.ws is None:
            return
        boxes = self.boxes_of(self.current)
        self.canvas.set_boxes(boxes, self.ws.classes, select)
        self.box_model.set_boxes(boxes, self.ws.classes)
        self._draw_suggestions(boxes)
        badge = self.image_model.priorities.get(self.current)
        self.priority_label.setText(
            f"⚑ review priority {badge[0]:.2f}: {badge[1]}" if badge else "no review reason"
        )

    def _draw_suggestions(self, boxes: list[Box]) -> None:
        """Where the model disagrees with this image's labels (labelled images only)."""
        from .suggestion_items import SuggestionItem

        assert self.ws is not None and self.current is not None
        for item in self.suggestion_items:
            self.canvas.scene().removeItem(item)
        try:
            found = self.ws.suggestions(self.current, boxes)
        except (LabelDeskError, ValueError) as e:  # no run for this image: nothing to say
            self.statusBar().showMessage(f"no suggestions: {e}", 5000)
            found = []
        self.suggestions = [s for s in found if not rules.is_decided(boxes, s)]
        self.suggestion_items = []
        for i, s in enumerate(self.suggestions):
            item = SuggestionItem(i, s, self.ws.classes)
            self.canvas.scene().addItem(item)
            self.suggestion_items.append(item)
        if self.show_matched.isChecked() and self.ws.base_boxes(self.current):
            # the run's other predictions: those that agree with a label
            from labeldesk.core.suggestions import match

            from .suggestion_items import MatchedItem

            labels = [b for b in boxes if b.state != "rejected"]
            preds = self.ws.predictions(self.current)
            matched = match(labels, preds, self.ws.suggestion_params.iou)
            for p, label in zip(preds, matched, strict=True):
                if label is not None:  # agrees with a label: the same class, IoU ≥ threshold
                    item = MatchedItem(p)
                    self.canvas.scene().addItem(item)
                    self.suggestion_items.append(item)
        self.suggestion_items.sort(key=lambda it: not isinstance(it, SuggestionItem))
        self.canvas.overlays = [i for i in self.suggestion_items if isinstance(i, SuggestionItem)]
        self.canvas.place_labels()  # their labels clear of the boxes' labels, and of each other

    def selected_suggestion(self):
        return next(
            (it.suggestion for it in self.suggestion_items if it.isSelected() and it.suggestion),
            None,
        )

    def apply_boxes(self, sha: str, boxes: list[Box], select: int = -1) -> None:
        """Show and save new boxes for ``sha`` (called by undo commands only)."""
        assert self.ws is not None and self.writer is not None
        self.overlay[sha] = list(boxes)
        row = self.ws.refresh_row(sha, boxes)
        self.image_model.row_changed(self.ws.index[sha])
        del row
        self._unsaved += 1
        self.save_label.setText("saving…")
        self.writer.submit(
            _save_edit,
            self.ws.session.id,
            sha,
            list(boxes),
            on_done=self._saved,
            on_error=self._save_failed,
        )
        if sha != self.current:
            self.show_row(self.ws.index[sha])
        self._redraw_boxes(select)
        self._update_status()
        self._queue_timer.start()  # re-rank once the reviewer pauses

    def _saved(self, sha: str) -> None:
        # Counted here, not by the writer's queue: a commit queued behind the last edit must
        # not leave "saving…" up for good.
        self._unsaved = max(0, self._unsaved - 1)
        if self._unsaved == 0:
            self.save_label.setText("all edits saved")
        self.editSaved.emit(sha)

    def _save_failed(self, error: BaseException) -> None:
        self._unsaved = max(0, self._unsaved - 1)
        self.save_label.setText("an edit was NOT saved")
        self.show_error(error)

    def edit(self, after: list[Box], text: str, select: int = -1) -> None:
        if self.current is None:
            return
        before = self.boxes_of(self.current)
        if before == after:
            return
        self.undo_stack.push(EditCommand(self, self.current, before, after, text, select))

    def _box_edited(self, index: int, rect: QRectF) -> None:
        boxes = self.boxes_of(self.current) if self.current else []
        if not 0 <= index < len(boxes):
            return
        rect_xywh = (rect.x(), rect.y(), rect.width(), rect.height())
        self.edit(rules.move(boxes, index, rect_xywh, self.user), "Move/resize box", select=index)

    def _box_drawn(self, rect: QRectF) -> None:
        if self.current is None or self.ws is None:
            return
        cls = self.draw_class
        if cls is None:
            cls = self.class_model.class_for_key(1)
        if cls is None:
            self.show_error(LabelDeskError("add a class first (Classes panel)"))
            return
        rect_xywh = (rect.x(), rect.y(), rect.width(), rect.height())
        boxes = rules.draw(self.boxes_of(self.current), cls, rect_xywh, self.user)
        self.edit(boxes, "Draw box", select=len(boxes) - 1)

    def _canvas_selection(self, index: int) -> None:
        sel = self.box_table.selectionModel()
        sel.clearSelection()
        if index >= 0:
            self.box_table.selectRow(index)

    def accept_all_and_next(self) -> None:
        if self.current is not None:
            boxes = self.boxes_of(self.current)
            accepted = rules.accept_all(boxes, self.user)
            # As with pre-labels, Space takes what the model proposes: every suggestion shown.
            for sg in self.suggestions:
                if not rules.is_decided(accepted, sg):
                    accepted = rules.accept_suggestion(accepted, sg, self.user)
            if accepted != boxes or self.ws.rows[self.ws.index[self.current]].state == TODO:
                # Even with nothing to accept, record that a person looked: reviewed.
                self.undo_stack.push(EditCommand(self, self.current, boxes, accepted, "Accept all"))
        self.next_image()

    def accept_selected(self) -> None:
        sg = self.selected_suggestion()
        if sg is not None and self.current is not None:
            boxes = rules.accept_suggestion(self.boxes_of(self.current), sg, self.user)
            self.edit(boxes, "Accept suggestion")
            return
        i = self.canvas.selected_index()
        if i < 0 or self.current is None:
            return
        self.edit(rules.accept(self.boxes_of(self.current), i, self.user), "Accept box", select=i)

    def reject_selected(self) -> None:
        sg = self.selected_suggestion()
        if sg is not None and self.current is not None:
            boxes = rules.dismiss_suggestion(self.boxes_of(self.current), sg, self.user)
            self.edit(boxes, "Dismiss suggestion")
            return
        i = self.canvas.selected_index()
        if i < 0 or self.current is None:
            return
        self.edit(rules.reject(self.boxes_of(self.current), i, self.user), "Reject/delete box")

    def reject_all(self) -> None:
        if self.current is None:
            return
        boxes = rules.reject_all(self.boxes_of(self.current), self.user)
        self.edit(boxes, "Reject all pre-labels")

    def set_class_key(self, number: int) -> None:
        cls = self.class_model.class_for_key(number)
        if cls is None:
            return
        i = self.canvas.selected_index()
        if i >= 0 and self.current is not None:
            # rules.reclass returns the boxes unchanged for the same class; edit() skips that
            boxes = rules.reclass(self.boxes_of(self.current), i, cls, self.user)
            self.edit(boxes, "Change class", select=i)
        else:
            self.draw_class = cls
            self._update_status()

    def add_class_dialog(self) -> None:
        from PySide6.QtWidgets import QInputDialog

        name, ok = QInputDialog.getText(self, "Add class", "Class name:")
        if ok and name.strip():
            self.add_class(name.strip())

    def add_class(self, name: str) -> int | None:
        """Add a class to the session (it joins the class list when the session commits)."""
        if self.ws is None:
            return None
        try:
            cid = self.ws.session.add_class(name)
        except LabelDeskError as e:
            self.show_error(e)
            return None
        self.ws.classes = self.ws.session.classes()
        self.class_model.set_classes(self.ws.classes)
        self._fill_class_filter()
        self.draw_class = cid
        self._update_status()
        return cid

    def start_drawing(self) -> None:
        self.canvas.start_drawing()

    def escape(self) -> None:
        self.canvas.stop_drawing()
        self.canvas.scene().clearSelection()

    def _cycle(self, delta: int) -> None:
        items = self.canvas.visible_items()
        if not items:
            return
        current = self.canvas.selected_index()
        order = [it.index for it in items]
        pos = order.index(current) if current in order else (-1 if delta > 0 else 0)
        self.canvas.select_index(order[(pos + delta) % len(order)])

    def next_box(self) -> None:
        self._cycle(+1)

    def previous_box(self) -> None:
        self._cycle(-1)

    def zoom_in(self) -> None:
        self.canvas.zoom(1.25)
        self._maybe_full_resolution()

    def zoom_out(self) -> None:
        self.canvas.zoom(0.8)

    def fit(self) -> None:
        self.canvas.fit()

    def _maybe_full_resolution(self) -> None:
        """Past screen resolution, swap in the full-resolution decode (done off-thread)."""
        if self.current is None:
            return
        shown = self.canvas.pixmap_item.pixmap()
        if shown.isNull() or self.canvas.image_size[0] <= shown.width():
            return
        on_screen = self.canvas.transform().m11() * self.canvas.image_size[0]
        if on_screen > shown.width():
            full = self.loader.request(self.current, full=True)
            if full is not None:
                self.canvas.set_image(full, self.canvas.image_size)

    def undo(self) -> None:
        self.undo_stack.undo()

    def redo(self) -> None:
        self.undo_stack.redo()

    def toggle_help(self) -> None:
        self.help.toggle()

    def _conf_changed(self, value: int) -> None:
        self.conf_label.setText(f" {value / 100:.2f} ")
        self.canvas.set_min_score(value / 100)

    # -- the review queue and the model run ------------------------------------------------------
    def _iou_changed(self, value: float) -> None:
        """A new matching threshold: this image's suggestions now, the queue on the worker."""
        if self.ws is None:
            return
        import dataclasses

        self.ws.suggestion_params = dataclasses.replace(self.ws.suggestion_params, iou=value)
        self._redraw_boxes()
        self._queue_timer.start()

    def refresh_queue(self) -> None:
        """Rank the session's images by likely error on the worker (it reads every label and
        prediction of the version); the list shows the result when it comes."""
        if self.ws is None or self.worker is None:
            return
        from labeldesk.app.review import review_queue

        self._queue_generation += 1
        generation = self._queue_generation
        sid = self.ws.session.id
        overlay = {sha: list(boxes) for sha, boxes in self.overlay.items()}
        from labeldesk.core.queue import Params as QueueParams

        params = QueueParams(iou=self.ws.suggestion_params.iou)
        self.worker.submit(
            review_queue,
            sid,
            overlay,
            params,
            on_done=lambda items: self._queue_ready(sid, generation, items),
            on_error=self.show_error,
        )

    def _queue_ready(self, session_id: int, generation: int, items: list) -> None:
        if self.ws is None or self.ws.session.id != session_id:
            return
        if generation != self._queue_generation:
            return  # a newer ranking is on its way
        self.queue = items
        priorities = {}
        for item in items:
            if item.priority <= 0 or not item.reasons:
                continue
            top = max(item.reasons, key=lambda r: r.weight)
            more = f" (+{len(item.reasons) - 1})" if len(item.reasons) > 1 else ""
            priorities[item.image] = (item.priority, f"{top.text}{more}")
        self.image_model.set_priorities(priorities)
        if self.sort_order.currentIndex() == 1:
            self._apply_sort()
        elif self.needs_review.isChecked():
            self._keep_list_and_canvas_in_step()
        self._redraw_boxes(self.canvas.selected_index())  # the boxes panel's badge
        self.queueReady.emit()

    def _apply_sort(self) -> None:
        by_priority = self.sort_order.currentIndex() == 1
        self.image_model.set_sort(self.image_model.priority_order() if by_priority else None)
        self._keep_list_and_canvas_in_step()

    def _fill_runs(self) -> None:
        """The stored prediction runs of the version under review, the session's chosen."""
        from labeldesk.app.words import params_text

        self.run_chooser.clear()
        if self.ws is None:
            return
        self.run_chooser.addItem("no model", None)
        try:
            runs = self.ws.runs()
        except LabelDeskError:
            runs = []
        for run in runs:
            self.run_chooser.addItem(
                f"{run.model_name} ({params_text(run.params)}) · {run.images} images",
                (run.model, run.params),
            )
            if run.model == self.ws.prelabel_model and run.params == self.ws.prelabel_params:
                self.run_chooser.setCurrentIndex(self.run_chooser.count() - 1)

    def _run_chosen(self, index: int) -> None:
        assert self.ws is not None and self.writer is not None
        choice = self.run_chooser.itemData(index)
        model, params = choice if choice else (None, None)
        if (model, params) == (self.ws.prelabel_model, self.ws.prelabel_params):
            return
        self._set_source(model, params)

    def _set_source(self, model: str | None, params: dict | None) -> None:
        """Show another stored run's boxes: record it in the session, then reload."""
        assert self.ws is not None and self.writer is not None
        from labeldesk.app.review import set_prelabel_source

        sid = self.ws.session.id

        def reload(_: object) -> None:  # only once the writer has recorded the source
            if self.worker is not None:
                self.worker.submit(
                    _load_workspace, sid, on_done=self._workspace_reloaded, on_error=self.show_error
                )

        self.writer.submit(
            set_prelabel_source, sid, model, params, on_done=reload, on_error=self.show_error
        )

    # -- filters -------------------------------------------------------------------------------
    def _fill_class_filter(self) -> None:
        self.class_filter.blockSignals(True)
        self.class_filter.clear()
        self.class_filter.addItem("any class", None)
        if self.ws is not None:
            for cid, name in sorted(self.ws.classes.items()):
                self.class_filter.addItem(f"with {name}", cid)
        self.class_filter.blockSignals(False)

    def _apply_filter(self) -> None:
        state = self.state_filter.currentText()
        self.image_model.set_filter(
            state=None if state == "all images" else state,
            below=self.below_spin.value() if self.below_check.isChecked() else None,
            cls=self.class_filter.currentData(),
            needs_review=self.needs_review.isChecked(),
        )
        self._keep_list_and_canvas_in_step()

    # -- commit --------------------------------------------------------------------------------
    def provenance(self) -> dict:
        assert self.ws is not None
        prov: dict = {"reviewer": self.user}
        if self.ws.prelabel_model:
            prov["method"] = "semi-automatic"
            prov["model"] = self.ws.prelabel_model
            prov["model_params"] = self.ws.prelabel_params
        else:
            prov["method"] = "manual"
        return prov

    def make_commit_dialog(self):
        from labeldesk.app.words import provenance_lines

        from .commit_dialog import CommitDialog

        assert self.ws is not None and self.project is not None
        lines = provenance_lines(self.project.db, self.provenance())
        return CommitDialog(self, self.ws.counts(), lines)

    def commit_dialog(self) -> None:
        if self.ws is None:
            return
        dialog = self.make_commit_dialog()
        if dialog.exec():
            self.commit_version(dialog.message())

    def commit_version(self, message: str, resolutions: dict | None = None) -> None:
        """Commit on the writer (after every queued edit); conflicts open the chooser."""
        assert self.ws is not None and self.writer is not None
        self.writer.submit(
            _commit,
            self.ws.session.id,
            message,
            self.provenance(),
            resolutions,
            on_done=self._committed,
            on_error=lambda e: self._commit_failed(e, message),
        )

    def _committed(self, version) -> None:
        self.statusBar().showMessage(f"Committed version {version.short}: {version.message}", 10000)
        self.versions.refresh()
        self.committed.emit(version)
        self.start_session()

    def _commit_failed(self, error: BaseException, message: str) -> None:
        if isinstance(error, MergeConflictError) and self.ws is not None:
            self.ws.conflicts = {c.image for c in error.conflicts}
            for c in error.conflicts:
                if c.image in self.ws.index:
                    self.ws.refresh_row(c.image, self.boxes_of(c.image))
                    self.image_model.row_changed(self.ws.index[c.image])
            from .conflicts import ConflictDialog

            dialog = ConflictDialog(self, error.conflicts)
            dialog.accepted.connect(lambda: self.commit_version(message, dialog.resolutions()))
            self.conflict_dialog = dialog
            dialog.open()  # window-modal, without a nested event loop
            return
        self.show_error(error)

    # -- project dialogs -------------------------------------------------------------------------
    def new_project_dialog(self) -> None:
        from PySide6.QtWidgets import QFileDialog

        path = QFileDialog.getExistingDirectory(self, "Folder for the new project")
        if path:
            try:
                Project.init(Path(path), user=self.user).close()
            except LabelDeskError as e:
                self.show_error(e)
                return
            self.open_project(Path(path))

    def open_project_dialog(self) -> None:
        from PySide6.QtWidgets import QFileDialog

        path = QFileDialog.getExistingDirectory(self, "Open a LabelDesk project")
        if path:
            self.open_project(Path(path))

    def open_demo(self) -> None:
        from .jobs import run_job

        target = Path.home() / "labeldesk-demo"

        def build(progress, cancel):
            from labeldesk.core.demo import build_demo

            if (target / "project" / "labeldesk.db").exists():
                return target / "project"
            build_demo(target, progress=progress, say=lambda _s: None)
            return target / "project"

        run_job(self, "Building the demo project", build, on_done=self.open_project)

    def prelabel_dialog(self) -> None:
        from labeldesk.app.review import last_prelabel_params
        from labeldesk.core.models import list_models

        from .prelabel_dialog import PrelabelDialog, start_prelabel

        if self.project is None or self.ws is None:
            return
        db = self.project.db
        dialog = PrelabelDialog(self, list_models(db), last_prelabel_params(self.project))
        if dialog.exec():
            start_prelabel(self, *dialog.choice())

    def train_dialog(self) -> None:
        """Train from a version in the background (non-modal: reviewing goes on)."""
        from .train_dialog import TrainDialog

        if self.project is None:
            return
        dialog = TrainDialog(self, self.project.root, self.project.user, self.project)
        dialog.trained.connect(lambda _name: self.versions.refresh())
        self.train_window = dialog
        dialog.show()

    def models_dialog(self) -> None:
        """The registered models, their lineage, and Promote (the champion/challenger gate)."""
        from .train_dialog import ModelsDialog

        if self.project is None:
            return
        dialog = ModelsDialog(self, self.project.root, self.project.user, self.project)
        self.models_window = dialog
        dialog.show()

    def prelabels_ready(self, report) -> None:
        """Point the session at the model's boxes, then reload the list with them."""
        assert self.ws is not None and self.writer is not None and self.worker is not None
        from labeldesk.app.review import set_prelabel_source

        sid = self.ws.session.id
        self.statusBar().showMessage(
            f"Pre-labelled {report.predicted} images ({report.cached} were cached) with "
            f"{report.model.name}",
            10000,
        )

        def reload(_: object) -> None:  # only once the writer has recorded the source
            if self.worker is not None:
                self.worker.submit(
                    _load_workspace,
                    sid,
                    on_done=self._workspace_reloaded,
                    on_error=self.show_error,
                )

        self.writer.submit(
            set_prelabel_source,
            sid,
            report.model.id,
            report.params,
            on_done=reload,
            on_error=self.show_error,
        )

    def _workspace_reloaded(self, loaded: Workspace) -> None:
        current = self.current
        self._workspace_loaded(loaded)
        if current is not None and self.ws is not None and current in self.ws.index:
            self.show_row(self.ws.index[current])

    def show_validation(self) -> None:
        """Bring the validation panel forward (it is tabbed behind Versions at start)."""
        dock = self.validation_dock
        dock.show()
        dock.raise_()
        self._grow_validation()

    #: the height the validation dock gets when it comes forward: chart, per-class table and
    #: evaluations table each get a readable share (the Versions list needs far less)
    VALIDATION_HEIGHT = 460

    def _validation_visible(self, visible: bool) -> None:
        if visible:  # its tab clicked, or the menu: after the dock's own layout settles
            QTimer.singleShot(0, self._grow_validation)

    def _grow_validation(self) -> None:
        dock = self.validation_dock
        if dock.isVisible() and not dock.isFloating() and dock.height() < self.VALIDATION_HEIGHT:
            # never more than half the window: the image stays the main thing
            want = min(self.VALIDATION_HEIGHT, max(dock.height(), self.height() // 2))
            self.resizeDocks([dock], [want], Qt.Orientation.Vertical)

    def _exchange(self, what: str, fmt: str) -> None:
        from . import exchange

        getattr(exchange, what)(self, fmt)

    def add_images_dialog(self) -> None:
        from PySide6.QtWidgets import QFileDialog

        from .jobs import run_job

        if self.project is None:
            return
        folder = QFileDialog.getExistingDirectory(self, "Add a folder of images")
        if not folder:
            return
        root, user = self.project.root, self.project.user

        def add(progress, cancel):
            from labeldesk.core.importer import add_images

            with Project.open(root, user=user) as p:
                return add_images(p, [folder], progress=progress, cancel=cancel)

        def done(report) -> None:
            lines = [
                f"added {len(report.added)}, duplicates {len(report.duplicates)}, "
                f"skipped {len(report.skipped)}"
            ]
            lines += [f"• {p.where}: {p.reason}" for p in report.skipped[:30]]
            QMessageBox.information(self, "Images added", "\n".join(lines))
            self.versions.refresh()
            if report.version is not None:
                self.committed.emit(report.version)
            self.start_session()

        run_job(self, "Adding images", add, on_done=done)

    # -- status ----------------------------------------------------------------------------------
    def _update_title(self) -> None:
        name = self.project.root.name if self.project else "no project"
        dirty = "" if self.undo_stack.isClean() else " •"
        self.setWindowTitle(f"LabelDesk — {name}{dirty}")

    def _update_status(self) -> None:
        if self.ws is None:
            return
        c = self.ws.counts()
        done = c[REVIEWED] + c[EDITED]
        total = len(self.ws.rows)
        zoom = int(self.canvas.transform().m11() * 100)
        cls = self.ws.classes.get(self.draw_class, "-") if self.draw_class else "-"
        role = self.project.role_of() if self.project else ""
        self.status_label.setText(
            f"{self.user} ({role}) · session #{self.ws.session.id} on "
            f"{self.ws.session.base_id[:12]} · {done}/{total} reviewed · {c[EDITED]} edited · "
            f"{c[CONFLICT]} conflicts · draw class: {cls} · zoom {zoom}%"
        )

    def show_error(self, error: BaseException) -> None:
        from .jobs import show_error

        if not isinstance(error, LabelDeskError):
            import traceback

            traceback.print_exception(error)
        show_error(self, "LabelDesk", error)
