"""The review window: where the docks and menus are assembled.

The parts live in modules of their own: the Images dock (:mod:`.image_dock`), review control
(:mod:`.review_control`: edits, suggestions, queue, commit), the menus' project actions
(:mod:`.project_actions`), the panels (versions, validation), the remote menu. They share a
Qt-free :class:`~labeldesk.app.state.ProjectState` and run their work through
:func:`~labeldesk.gui.operations.run_op` on the project's lanes (one writer, one reader, jobs).
Reads for display are small and done here; anything that scans the project runs on the reader.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence, QUndoStack
from PySide6.QtWidgets import (
    QComboBox,
    QDockWidget,
    QDoubleSpinBox,
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

from labeldesk.app import project as project_ops
from labeldesk.app.review import CONFLICT, EDITED, REVIEWED, TODO, Workspace
from labeldesk.app.state import VERSION, ProjectState
from labeldesk.core.boxes import Box
from labeldesk.core.errors import LabelDeskError

from .canvas import Canvas
from .help import HelpOverlay
from .image_dock import ImageDock
from .item_models import BoxTableModel, ClassListModel
from .loader import ImageLoader
from .operations import Lane, Lanes, Operations
from .project_actions import ProjectActions
from .review_control import EditCommand, ReviewControl
from .shortcuts import SHORTCUTS

__all__ = ["EditCommand", "MainWindow"]


class MainWindow(ReviewControl, QMainWindow):
    """One project, one review session at a time."""

    sessionLoaded = Signal()
    noSession = Signal(str)  # the project has no version to review yet (why)
    suggestionsShown = Signal(str)  # the image's suggestions are drawn (read off-thread)
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
        self.project: Any = None  # the GUI thread's own connection, for small reads
        self.state = ProjectState()
        self.ops = Operations()
        self.ws: Workspace | None = None
        self.overlay: dict[str, list[Box]] = {}  # boxes edited here, newest first to be read
        self.suggestions: list = []  # the shown image's undecided suggestions
        self.suggestion_items: list = []
        self.draw_class: int | None = None
        self.prelabel_job: Any = None
        self._session_generation = 0
        self._suggest_generation = 0
        self._suggest_op: Any = None
        self._lookup_workspaces: dict[int, Any] = {}  # only the lookup thread touches them
        self.undo_stack = QUndoStack(self)
        self.undo_stack.cleanChanged.connect(self._update_title)
        self.settings = QSettings("LabelDesk", "LabelDesk")
        self._queue_timer = QTimer(self)
        self._queue_timer.setSingleShot(True)
        self._queue_timer.setInterval(300)
        self._queue_timer.timeout.connect(self.refresh_queue)
        self._queue_generation = 0
        self.project_actions = ProjectActions(self)
        self._build_ui()
        self._build_actions()
        self.state.subscribe(self._state_changed)  # after the panels: they refresh first
        self.help = HelpOverlay(self)
        if project_root is not None:
            self.open_project(project_root)
        else:
            from .welcome import WelcomeWidget

            self.setCentralWidget(WelcomeWidget(self))

    # -- the project's lanes (tests wait on them) ----------------------------------------------
    @property
    def lanes(self) -> Lanes | None:
        return self.ops.lanes

    @property
    def writer(self) -> Lane | None:
        return self.ops.lanes.writer if self.ops.lanes is not None else None

    @property
    def worker(self) -> Lane | None:
        return self.ops.lanes.reader if self.ops.lanes is not None else None

    # -- layout ----------------------------------------------------------------------------------
    def _build_ui(self) -> None:
        self.canvas = Canvas(self)
        self.canvas.boxEdited.connect(self._box_edited)
        self.canvas.boxDrawn.connect(self._box_drawn)
        self.canvas.selectionChangedTo.connect(self._canvas_selection)
        self.canvas.zoomChanged.connect(lambda _z: self._update_status())

        self.image_dock = ImageDock()
        self.image_dock.imageChosen.connect(self._show_image)
        d = self.image_dock  # its parts by their old names (the tests and the docs use them)
        self.image_model, self.image_rows, self.image_list = (
            d.image_model,
            d.image_rows,
            d.image_list,
        )
        self.state_filter, self.below_check, self.below_spin = (
            d.state_filter,
            d.below_check,
            d.below_spin,
        )
        self.class_filter, self.needs_review, self.sort_order = (
            d.class_filter,
            d.needs_review,
            d.sort_order,
        )
        self.images_dock = self._dock("Images", d, Qt.DockWidgetArea.LeftDockWidgetArea)

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

        from .validation_panel import ValidationPanel
        from .versions_panel import VersionsPanel
        from .watch_jobs import WatchedEvaluations

        self.versions = VersionsPanel(self.state, self.ops, self)
        self.versions_dock = self._dock(
            "Versions", self.versions, Qt.DockWidgetArea.BottomDockWidgetArea
        )
        # Tabbed behind Versions: it loads (and imports matplotlib) only once it is shown.
        self.validation = ValidationPanel(self.state, self.ops, self)
        self.validation_dock = self._dock(
            "Validation", self.validation, Qt.DockWidgetArea.BottomDockWidgetArea
        )
        self.validation_dock.visibilityChanged.connect(self.validation.set_on_screen)
        self.validation_dock.visibilityChanged.connect(self._validation_visible)
        self.tabifyDockWidget(self.versions_dock, self.validation_dock)
        self.versions_dock.show()
        self.versions_dock.raise_()  # Versions in front
        self.watched = WatchedEvaluations(self.state, self.ops, self)
        self.committed.connect(self.watched.version_committed)
        self._build_toolbar()
        from .status_bar import StatusBar

        self.setStatusBar(StatusBar(self))  # messages stay readable while jobs come and go
        self.status_label = QLabel()
        self.statusBar().addWidget(self.status_label, 1)
        self.save_label = QLabel()
        self._unsaved = 0  # edits handed to the writer and not yet written
        self.statusBar().addPermanentWidget(self.save_label)

    def _build_toolbar(self) -> None:
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

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(title.lower())
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _build_actions(self) -> None:
        pa = self.project_actions
        menu_file = self.menuBar().addMenu("&File")
        for text, slot, keys in (
            ("&New project…", pa.new_project_dialog, QKeySequence.StandardKey.New),
            ("&Open project…", pa.open_project_dialog, QKeySequence.StandardKey.Open),
            ("Open &demo project", pa.open_demo, None),
            ("&Add images…", pa.add_images_dialog, None),
            ("Import &COCO…", lambda: pa.import_dataset("coco"), None),
            ("Import &YOLO…", lambda: pa.import_dataset("yolo"), None),
            ("Export main as COCO…", lambda: pa.export_dataset("coco"), None),
            ("Export main as YOLO…", lambda: pa.export_dataset("yolo"), None),
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
        act.triggered.connect(pa.prelabel_dialog)
        menus["Review"].addSeparator()
        menus["Review"].addAction(act)
        models_menu = self.menuBar().addMenu("&Models")
        self.train_action = QAction("&Train a model…", self)
        self.train_action.triggered.connect(pa.train_dialog)
        models_menu.addAction(self.train_action)
        act = QAction("&Models and promotion…", self)
        act.triggered.connect(pa.models_dialog)
        models_menu.addAction(act)
        info = project_ops.flavour_info()
        if not info.training:
            # The review flavour has no torch: training is offered where it can run.
            train = self.train_action
            train.setEnabled(False)
            train.setText("&Train a model… (full flavour only)")
            train.setStatusTip(f"Training {info.training_note}")
            train.setToolTip(f"Training {info.training_note}")

        from .remote_actions import RemoteActions

        self.remote_actions = RemoteActions(self.state, self.ops, self)  # the Remote menu
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

    # -- the menus' actions by their old names (the welcome screen and the tests use them) -----
    def new_project_dialog(self) -> None:
        self.project_actions.new_project_dialog()

    def open_project_dialog(self) -> None:
        self.project_actions.open_project_dialog()

    def open_demo(self) -> None:
        self.project_actions.open_demo()

    def train_dialog(self) -> None:
        self.project_actions.train_dialog()

    def models_dialog(self) -> None:
        self.project_actions.models_dialog()

    def prelabel_dialog(self) -> None:
        self.project_actions.prelabel_dialog()

    # -- opening -----------------------------------------------------------------------------
    def open_project(self, root: Path) -> None:
        self.close_project()
        try:
            project = project_ops.open_project(root, self.user)
        except LabelDeskError as e:
            QMessageBox.warning(self, "Cannot open project", str(e))
            return
        self.project = project
        info = project_ops.project_info(project)
        self.user = info.user
        self.settings.setValue("last_project", str(info.root))
        self.ops.open(info.root, info.user)
        self._lookup_workspaces = {}  # those of the lookup lane just closed are gone with it
        self.loader = ImageLoader(lambda sha: project.objects.path(sha), self)
        self.loader.imageReady.connect(self._image_ready)
        if self.centralWidget() is not self.canvas:
            self.setCentralWidget(self.canvas)
        self.state.opened(info.root, info.user, info.role)  # the panels load what they show
        self.start_session()

    def _state_changed(self, event: str, state: ProjectState) -> None:
        """The one handler for "a new version exists", wherever it came from (a review
        commit, an import, added images, a revert): the panels have refreshed already; the
        watched models are evaluated on it, and a new session starts on it."""
        if event == VERSION:
            self.committed.emit(state.version)
            self.start_session()

    def close_project(self) -> None:
        self.watched.close_project()
        self.validation.close_project()
        self.ops.close()  # waits for the writer: every edit is saved before we go
        if getattr(self, "loader", None) is not None:
            self.loader.shutdown()
        if self.project is not None:
            self.project.close()
        self.project = self.ws = None
        self._session_generation += 1  # late answers about the old session are dropped
        self.state.closed()

    def closeEvent(self, event: Any) -> None:
        self.close_project()
        super().closeEvent(event)

    # -- decoding (the loader decodes off-thread) --------------------------------------------
    def _prefetch_around(self, sha: str) -> None:
        """Decode the neighbours, starting just after this frame is painted: decoding them
        while the current image is drawn would slow the frame the reviewer is waiting for."""
        QTimer.singleShot(40, lambda: self._prefetch_now(sha))

    def _prefetch_now(self, sha: str) -> None:
        if self.ws is None or sha != self.current:
            return  # moved on meanwhile: the new position prefetches its own neighbours
        self.loader.prefetch(self.image_dock.neighbours(sha))

    def _image_ready(self, sha: str, image: Any, full: bool) -> None:
        if sha == self.current and self.ws is not None:
            row = self.ws.rows[self.ws.index[sha]]
            self.canvas.set_image(image, (row.width, row.height))
            if not full:
                self._prefetch_around(sha)

    # -- view ------------------------------------------------------------------------------------
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

    # -- where a session opens, and the status line ---------------------------------------------
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

    def _update_status(self) -> None:
        if self.ws is None:
            return
        c = self.ws.counts()
        done = c[REVIEWED] + c[EDITED]
        total = len(self.ws.rows)
        zoom = int(self.canvas.transform().m11() * 100)
        cls = self.ws.classes.get(self.draw_class, "-") if self.draw_class else "-"
        role = self.state.role or ""
        self.status_label.setText(
            f"{self.user} ({role}) · session #{self.ws.session.id} on "
            f"{self.ws.session.base_id[:12]} · {done}/{total} reviewed · {c[EDITED]} edited · "
            f"{c[CONFLICT]} conflicts · draw class: {cls} · zoom {zoom}%"
        )

    def _update_title(self) -> None:
        name = self.state.root.name if self.state.root is not None else "no project"
        dirty = "" if self.undo_stack.isClean() else " •"
        self.setWindowTitle(f"LabelDesk — {name}{dirty}")

    def show_error(self, error: BaseException) -> None:
        from .operations import show_error

        show_error(self, "LabelDesk", error)
