"""Operations the GUI runs: one plain, Qt-free function per user action, and the state.

Each operation takes the project (and its arguments) and returns what changed
(:class:`~labeldesk.app.changes.Changed`): :mod:`.review` (the review session: start, load,
save an edit, add a class, choose the source, commit, pre-label, the queue), :mod:`.versions`
(tag, approve/reject, revert, history, diff), :mod:`.exchange` (COCO/YOLO import and export),
:mod:`.validation` (evaluate, watched models, drift, the panel's figures), :mod:`.training`
(train, promote), :mod:`.remote` (push, pull), :mod:`.project` (open, create, add images, the
demo). :mod:`.state` is the project state the window's panels are built on; :mod:`.rules` the
review rules as pure functions. Nothing here imports Qt; the GUI runs these on its lanes
(``labeldesk.gui.operations.run_op``) and shows what they return.
"""
