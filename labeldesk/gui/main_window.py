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

from labeldesk.app.review import CONFLICT, EDITED, REVIEWED, TODO, Workspace, open_or_start_session
from labeldesk.core.boxes import Box
from labeldesk.core.errors import LabelDeskError, MergeConflictError
from labeldesk.core.flavour import FULL_ONLY, is_full
from labeldesk.core.project import Project
from labeldesk.core.sessions import ReviewSession

from .canvas import Canvas
from .help import HelpOverlay
from .image_list import ImageListView
from .loader import ImageLoader
from .models import BoxTableModel, ClassListModel, ImageListModel, RowRole, ViewCache
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
        self.draw_class: int | None = None
        self.undo_stack = QUndoStack(self)
        self.undo_stack.cleanChanged.connect(self._update_title)
        self.settings = QSettings("LabelDesk", "LabelDesk")
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
        left = QWidget()
        lay = QVBoxLayout(left)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.state_filter)
        row = QHBoxLayout()
        row.addWidget(self.below_check)
        row.addWidget(self.below_spin)
        lay.addLayout(row)
        lay.addWidget(self.class_filter)
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
        self._dock("Boxes", self.box_table, Qt.DockWidgetArea.RightDockWidgetArea)

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
        self.tabifyDockWidget(self.versions_dock, self.validation_dock)
        self.versions_dock.show()
        self.versions_dock.raise_()  # Versions in front
        self.watched = WatchedEvaluations(self)
        self.committed.connect(self.watched.version_committed)

        toolbar = self.addToolBar("Review")
        toolbar.setObjectName("review-toolbar")
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
        menus["View"].addSeparator()
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
            self.show_row(0)
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
        shown = self.image_rows.mapFromSource(self.image_model.view_index(source_row))
        if shown.isValid():
            self.image_list.setCurrentIndex(shown)
        else:
            self._show_image(self.image_model.rows[source_row].sha)

    def _list_current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if current.isValid():
            self._show_image(current.data(RowRole).sha)

    def _show_image(self, sha: str) -> None:
        assert self.ws is not None
        self.current = sha
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
        i = self.ws.index[sha]
        rows = self.ws.rows
        ahead = [rows[j].sha for j in (i + 1, i + 2, i + 3, i - 1) if 0 <= j < len(rows)]
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
        b = boxes[index]
        state = b.state if b.state == "added" else "edited"
        boxes[index] = b.with_(
            x=rect.x(), y=rect.y(), w=rect.width(), h=rect.height(), state=state, author=self.user
        )
        self.edit(boxes, "Move/resize box", select=index)

    def _box_drawn(self, rect: QRectF) -> None:
        if self.current is None or self.ws is None:
            return
        cls = self.draw_class
        if cls is None:
            cls = self.class_model.class_for_key(1)
        if cls is None:
            self.show_error(LabelDeskError("add a class first (Classes panel)"))
            return
        boxes = self.boxes_of(self.current)
        boxes.append(
            Box(
                cls,
                rect.x(),
                rect.y(),
                rect.width(),
                rect.height(),
                origin="human",
                state="added",
                author=self.user,
            )
        )
        self.edit(boxes, "Draw box", select=len(boxes) - 1)

    def _canvas_selection(self, index: int) -> None:
        sel = self.box_table.selectionModel()
        sel.clearSelection()
        if index >= 0:
            self.box_table.selectRow(index)

    def _decided(self, b: Box) -> Box:
        return b.with_(state="accepted", author=self.user) if b.state == "pending" else b

    def accept_all_and_next(self) -> None:
        if self.current is not None:
            boxes = self.boxes_of(self.current)
            accepted = [self._decided(b) for b in boxes]
            if accepted != boxes or self.ws.rows[self.ws.index[self.current]].state == TODO:
                # Even with nothing to accept, record that a person looked: reviewed.
                self.undo_stack.push(EditCommand(self, self.current, boxes, accepted, "Accept all"))
        self.next_image()

    def accept_selected(self) -> None:
        i = self.canvas.selected_index()
        if i < 0 or self.current is None:
            return
        boxes = self.boxes_of(self.current)
        boxes[i] = self._decided(boxes[i])
        self.edit(boxes, "Accept box", select=i)

    def reject_selected(self) -> None:
        i = self.canvas.selected_index()
        if i < 0 or self.current is None:
            return
        boxes = self.boxes_of(self.current)
        b = boxes[i]
        if b.origin == "model":
            boxes[i] = b.with_(state="rejected", author=self.user)  # kept in the record
        else:
            del boxes[i]
        self.edit(boxes, "Reject/delete box")

    def reject_all(self) -> None:
        if self.current is None:
            return
        boxes = [
            b.with_(state="rejected", author=self.user) if b.state == "pending" else b
            for b in self.boxes_of(self.current)
        ]
        self.edit(boxes, "Reject all pre-labels")

    def set_class_key(self, number: int) -> None:
        cls = self.class_model.class_for_key(number)
        if cls is None:
            return
        i = self.canvas.selected_index()
        if i >= 0 and self.current is not None:
            boxes = self.boxes_of(self.current)
            b = boxes[i]
            if b.cls != cls:
                state = "added" if b.state == "added" else "edited"
                boxes[i] = b.with_(cls=cls, state=state, author=self.user)
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
        )

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

    def commit_dialog(self) -> None:
        from .commit_dialog import CommitDialog

        if self.ws is None:
            return
        dialog = CommitDialog(self, self.ws.counts(), self.provenance())
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
        if not dock.isFloating() and dock.height() < 360:
            self.resizeDocks([dock], [420], Qt.Orientation.Vertical)

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
