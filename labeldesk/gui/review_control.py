"""Review control: what the reviewer does to the shown image, and the session behind it.

Every edit is an undo command; applying one updates the view at once and hands the image's new
boxes to the writer lane, which saves them to the review session before anything else runs.
The review rules themselves (accept, reject, draw, suggestions) are :mod:`labeldesk.app.rules`;
this module turns keys and mouse gestures into those rules, and their results into the view.

:class:`ReviewControl` is mixed into :class:`~labeldesk.gui.main_window.MainWindow` (the
shortcut table and the tests address review actions on the window); it expects the window's
widgets (``canvas``, ``image_dock``, ``box_model``, ``class_model``, ...) and its lanes.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QRectF
from PySide6.QtGui import QUndoCommand

from labeldesk.app import review, rules
from labeldesk.app.review import TODO, Workspace
from labeldesk.core.boxes import Box
from labeldesk.core.errors import LabelDeskError, MergeConflictError

from .operations import run_op

if TYPE_CHECKING:
    from .main_window import MainWindow


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


class ReviewControl:
    """The review actions and the session's life on the window (a mixin of MainWindow)."""

    ws: Workspace | None
    overlay: dict[str, list[Box]]
    _current: str | None = None

    @property
    def current(self) -> str | None:
        """The image the canvas shows (its sha)."""
        return self._current

    @current.setter
    def current(self, sha: str | None) -> None:
        self._current = sha
        self.image_dock.current = sha

    # -- the session -----------------------------------------------------------------------------
    def start_session(self) -> None:
        """Open the reviewer's session (or start one on main) on the writer, then load it."""
        if self.lanes is None:
            return
        self.undo_stack.clear()
        self.overlay.clear()
        self.current = None
        # No session until the writer has opened the new one: nothing can be edited meanwhile
        # (an edit would go to the session just committed).
        self.ws = None
        self._session_generation += 1
        generation = self._session_generation
        root = self.project.root

        def failed(error: BaseException) -> None:
            if generation != self._session_generation:
                return
            if isinstance(error, LabelDeskError):  # an empty project has no version yet
                self.ws = None
                self.image_dock.set_rows([], {})
                self.status_label.setText(f"{root}: {error}")
                self.noSession.emit(str(error))
                return
            self.show_error(error)

        run_op(
            self,
            review.start_session,
            lane=self.lanes.writer,
            on_done=lambda sid: self._session_started(generation, sid),
            on_error=failed,
        )

    def _session_started(self, generation: int, session_id: int) -> None:
        if generation != self._session_generation or self.project is None:
            return
        self.ws = review.open_workspace(self.project, session_id)
        self.state.set_session(session_id, self.ws.session.base_id)
        self.status_label.setText("Loading images…")
        self._reload_workspace()

    def _reload_workspace(self) -> None:
        """Read the session again on the reader (after its source changed, say)."""
        assert self.ws is not None and self.lanes is not None
        run_op(
            self,
            lambda p, sid=self.ws.session.id: review.load_session(p, sid),
            lane=self.lanes.reader,
            on_done=self._workspace_loaded,
            on_error=self.show_error,
        )

    def _workspace_loaded(self, session: review.LoadedSession) -> None:
        ws, loaded = self.ws, session.workspace
        if ws is None or ws.session.id != loaded.session.id:
            return  # the project was closed or another session started meanwhile
        current = self.current
        ws.rows, ws.index, ws.classes = loaded.rows, loaded.index, loaded.classes
        ws.prelabel_model, ws.prelabel_params = loaded.prelabel_model, loaded.prelabel_params
        self.image_dock.set_rows(ws.rows, ws.index)
        self._classes_changed()
        if current is not None and current in ws.index:
            self.show_row(ws.index[current])  # a reload keeps the image in view
        elif ws.rows:
            self.show_row(self._start_row())
        self._fill_runs(session.runs)
        self.refresh_queue()
        self._update_title()
        self._update_status()
        self.sessionLoaded.emit()

    def _classes_changed(self) -> None:
        assert self.ws is not None
        self.class_model.set_classes(self.ws.classes)
        self.image_dock.set_classes(self.ws.classes)
        self.state.set_classes(self.ws.classes)

    # -- navigation ------------------------------------------------------------------------------
    def show_row(self, source_row: int) -> None:
        self.image_dock.show_row(source_row)

    def _show_image(self, sha: str) -> None:
        if self.ws is None or sha not in self.ws.index:
            return
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

    def next_image(self) -> None:
        if self.ws is not None and self.ws.rows:
            self.image_dock.step(+1)

    def previous_image(self) -> None:
        if self.ws is not None and self.ws.rows:
            self.image_dock.step(-1)

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

    # -- boxes -----------------------------------------------------------------------------------
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
        badge = self.image_dock.image_model.priorities.get(self.current)
        self.priority_label.setText(
            f"⚑ review priority {badge[0]:.2f}: {badge[1]}" if badge else "no review reason"
        )

    def _draw_suggestions(self, boxes: list[Box]) -> None:
        """Where the model disagrees with this image's labels (labelled images only): read on
        the lookup lane, drawn when it comes (:meth:`settle_suggestions` waits for it)."""
        assert self.ws is not None and self.current is not None and self.lanes is not None
        for item in self.suggestion_items:
            self.canvas.scene().removeItem(item)
        self.suggestions, self.suggestion_items, self.canvas.overlays = [], [], []
        self._suggest_generation += 1
        generation, sha, sid = self._suggest_generation, self.current, self.ws.session.id
        ask = {
            "source": (self.ws.prelabel_model, self.ws.prelabel_params),
            "classes": dict(self.ws.classes),
            "params": self.ws.suggestion_params,
            "matched": self.show_matched.isChecked(),
        }
        shown = list(boxes)
        cache = self._lookup_workspaces  # session id -> its workspace on the lookup thread

        def lookup(p: Any) -> review.ImageSuggestions:
            ws = cache.get(sid)
            if ws is None:
                ws = cache[sid] = review.open_workspace(p, sid)
            return review.image_suggestions(ws, sha, shown, **ask)

        def failed(error: BaseException) -> None:
            if not isinstance(error, (LabelDeskError, ValueError)):
                self.show_error(error)
            elif generation == self._suggest_generation:  # no run for this image: none
                self.statusBar().showMessage(f"no suggestions: {error}", 5000)

        self._suggest_op = run_op(
            self,
            lookup,
            lane=self.lanes.lookup,
            on_done=lambda found: self._suggestions_ready(generation, sha, found),
            on_error=failed,
        )

    def _suggestions_ready(self, generation: int, sha: str, found: Any) -> None:
        from .suggestion_items import MatchedItem, SuggestionItem

        if generation != self._suggest_generation or sha != self.current or self.ws is None:
            return  # another image, or the same one redrawn since: a newer lookup is coming
        self.suggestions = found.suggestions
        for i, s in enumerate(self.suggestions):
            item = SuggestionItem(i, s, self.ws.classes)
            self.canvas.scene().addItem(item)
            self.suggestion_items.append(item)
        for p in found.matched:  # agree with a label: the same class, IoU ≥ threshold
            item = MatchedItem(p)
            self.canvas.scene().addItem(item)
            self.suggestion_items.append(item)
        self.canvas.overlays = [i for i in self.suggestion_items if isinstance(i, SuggestionItem)]
        self.canvas.place_labels()  # their labels clear of the boxes' labels, and of each other
        self.suggestionsShown.emit(sha)

    def settle_suggestions(self) -> None:
        """Wait for the shown image's suggestions (milliseconds): before a key acts on them."""
        if self._suggest_op is not None:
            self._suggest_op.wait()

    def selected_suggestion(self) -> Any:
        self.settle_suggestions()
        return next(
            (it.suggestion for it in self.suggestion_items if it.isSelected() and it.suggestion),
            None,
        )

    def apply_boxes(self, sha: str, boxes: list[Box], select: int = -1) -> None:
        """Show and save new boxes for ``sha`` (called by undo commands only)."""
        assert self.ws is not None and self.lanes is not None
        self.overlay[sha] = list(boxes)
        self.ws.refresh_row(sha, boxes)
        self.image_dock.image_model.row_changed(self.ws.index[sha])
        self._unsaved += 1
        self.save_label.setText("saving…")
        sid = self.ws.session.id
        saved = list(boxes)
        run_op(
            self,
            lambda p: review.save_edit(p, sid, sha, saved),
            lane=self.lanes.writer,
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
        self.settle_suggestions()  # Space takes every suggestion shown: they must be there
        if self.current is not None and self.ws is not None:
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
        """Add a class to the session (it joins the class list when the session commits).

        The writer stores it, in order before any edit drawn with it; the window uses the id
        the session will give it at once, as it shows an edit before it is saved."""
        if self.ws is None or self.lanes is None:
            return None
        try:
            cid = review.next_class_id(self.ws.classes, name)
        except LabelDeskError as e:
            self.show_error(e)
            return None
        if cid not in self.ws.classes:
            self.ws.classes = {**self.ws.classes, cid: name.strip()}
            ws, sid = self.ws, self.ws.session.id
            run_op(
                self,
                lambda p: review.add_class(p, sid, name),
                lane=self.lanes.writer,
                on_done=lambda changed: self._class_added(ws, cid, changed),
                on_error=self.show_error,
            )
            self._classes_changed()
        self.draw_class = cid
        self._update_status()
        return cid

    def _class_added(self, ws: Workspace, cid: int, changed: Any) -> None:
        if changed.report != cid and ws is self.ws:  # another window added one meanwhile
            ws.classes = ws.session.classes()
            self._classes_changed()

    # -- the review queue and the model run --------------------------------------------------------
    def _iou_changed(self, value: float) -> None:
        """A new matching threshold: this image's suggestions now, the queue on the reader."""
        if self.ws is None:
            return
        self.ws.suggestion_params = dataclasses.replace(self.ws.suggestion_params, iou=value)
        self._redraw_boxes()
        self._queue_timer.start()

    def refresh_queue(self) -> None:
        """Rank the session's images by likely error on the reader (it reads every label and
        prediction of the version); the list shows the result when it comes."""
        if self.ws is None or self.lanes is None:
            return
        self._queue_generation += 1
        generation = self._queue_generation
        sid = self.ws.session.id
        overlay = {sha: list(boxes) for sha, boxes in self.overlay.items()}
        params = review.queue_params(self.ws.suggestion_params.iou)
        run_op(
            self,
            lambda p: review.review_queue(p, sid, overlay, params),
            lane=self.lanes.reader,
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
        self.image_dock.set_priorities(priorities)
        self._redraw_boxes(self.canvas.selected_index())  # the boxes panel's badge
        self.queueReady.emit()

    def _fill_runs(self, runs: list) -> None:
        """The stored prediction runs of the version under review (read with the session, on
        the reader), the session's chosen."""
        from labeldesk.app.words import params_text

        self.run_chooser.clear()
        if self.ws is None:
            return
        self.run_chooser.addItem("no model", None)
        for run in runs:
            self.run_chooser.addItem(
                f"{run.model_name} ({params_text(run.params)}) · {run.images} images",
                (run.model, run.params),
            )
            if run.model == self.ws.prelabel_model and run.params == self.ws.prelabel_params:
                self.run_chooser.setCurrentIndex(self.run_chooser.count() - 1)
        self.state.set_runs(runs)

    def _run_chosen(self, index: int) -> None:
        assert self.ws is not None
        choice = self.run_chooser.itemData(index)
        model, params = choice if choice else (None, None)
        if (model, params) == (self.ws.prelabel_model, self.ws.prelabel_params):
            return
        self.set_source(model, params)

    def set_source(self, model: str | None, params: dict | None) -> None:
        """Show another stored run's boxes: record it in the session (writer), then reload."""
        assert self.ws is not None and self.lanes is not None
        sid = self.ws.session.id

        def reload(changed: Any) -> None:  # only once the writer has recorded the source
            if self.ws is not None and self.ws.session.id == sid:
                self.state.apply(changed)
                self._reload_workspace()

        run_op(
            self,
            lambda p: review.set_source(p, sid, model, params),
            lane=self.lanes.writer,
            on_done=reload,
            on_error=self.show_error,
        )

    # -- commit ----------------------------------------------------------------------------------
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

    def make_commit_dialog(self) -> Any:
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
        assert self.ws is not None and self.lanes is not None
        sid, provenance = self.ws.session.id, self.provenance()
        run_op(
            self,
            lambda p: review.commit_session(p, sid, message, provenance, resolutions),
            lane=self.lanes.writer,
            on_done=self._committed,
            on_error=lambda e: self._commit_failed(e, message),
        )

    def _committed(self, changed: Any) -> None:
        version = changed.version
        self.statusBar().showMessage(f"Committed version {version.short}: {version.message}", 10000)
        self.state.apply(changed)  # a new version: the window's one handler takes it from here

    def _commit_failed(self, error: BaseException, message: str) -> None:
        if isinstance(error, MergeConflictError) and self.ws is not None:
            self.ws.conflicts = {c.image for c in error.conflicts}
            for c in error.conflicts:
                if c.image in self.ws.index:
                    self.ws.refresh_row(c.image, self.boxes_of(c.image))
                    self.image_dock.image_model.row_changed(self.ws.index[c.image])
            from .conflicts import ConflictDialog

            dialog = ConflictDialog(self, error.conflicts)
            dialog.accepted.connect(lambda: self.commit_version(message, dialog.resolutions()))
            self.conflict_dialog = dialog
            dialog.open()  # window-modal, without a nested event loop
            return
        self.show_error(error)
