"""Every keyboard shortcut of the review window, in one table.

The window builds its actions from this table and the help overlay prints it, so the two can
never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Shortcut:
    action: str  # MainWindow method name
    keys: tuple[str, ...]
    text: str
    group: str


SHORTCUTS: tuple[Shortcut, ...] = (
    Shortcut(
        "accept_all_and_next", ("Space", "Return"), "Accept all pre-labels, next image", "Review"
    ),
    Shortcut("accept_selected", ("A",), "Accept the selected pre-label", "Review"),
    Shortcut(
        "reject_selected",
        ("X", "Delete", "Backspace"),
        "Reject the selected pre-label / delete the selected box",
        "Review",
    ),
    Shortcut("reject_all", ("Shift+X",), "Reject all pre-labels of the image", "Review"),
    Shortcut("start_drawing", ("W",), "Draw a new box (drag on the image)", "Review"),
    Shortcut("next_box", ("Tab", "]"), "Select the next box", "Review"),
    Shortcut("previous_box", ("Shift+Tab", "["), "Select the previous box", "Review"),
    Shortcut("escape", ("Esc",), "Stop drawing / clear the selection", "Review"),
    Shortcut("next_image", ("Right", "D", "PgDown"), "Next image", "Navigate"),
    Shortcut("previous_image", ("Left", "S", "PgUp"), "Previous image", "Navigate"),
    Shortcut("next_todo", ("N",), "Next image not reviewed yet", "Navigate"),
    Shortcut("zoom_in", ("+", "="), "Zoom in (or the mouse wheel)", "View"),
    Shortcut("zoom_out", ("-",), "Zoom out", "View"),
    Shortcut("fit", ("F", "0"), "Fit the image to the window", "View"),
    Shortcut("undo", ("Ctrl+Z",), "Undo", "Edit"),
    Shortcut("redo", ("Ctrl+Shift+Z", "Ctrl+Y"), "Redo", "Edit"),
    Shortcut("commit_dialog", ("Ctrl+Return",), "Commit the session as a new version", "Edit"),
    Shortcut("toggle_help", ("F1", "?"), "Show or hide this help", "Help"),
)

EXTRA_HELP: tuple[tuple[str, str, str], ...] = (
    ("1 … 9", "Set the class of the selected box (or of the next box you draw)", "Review"),
    ("Drag a box / its handles", "Move / resize it (one drag is one undo step)", "Review"),
    ("Shift+drag, middle drag", "Pan", "View"),
)
