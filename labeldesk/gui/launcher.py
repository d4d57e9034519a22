"""Starting the desktop app."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication


def run(project: Path | None = None, *, screenshot: Path | None = None) -> int:
    """Open ``project`` (or the last one, or the welcome screen) and run the event loop.

    With ``screenshot``, save the window to that PNG once the session has loaded and quit:
    how the README's screenshots are made, and a smoke test of a real window.
    """
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("LabelDesk")
    app.setOrganizationName("LabelDesk")
    # The desktop entry's name (resources/linux/): how Wayland docks match the window to it.
    app.setDesktopFileName("io.github.labeldesk.LabelDesk")
    icon = Path(__file__).resolve().parents[2] / "resources" / "icons" / "labeldesk-256.png"
    if icon.is_file():  # a source checkout or the desktop bundle; not in the wheel
        from PySide6.QtGui import QIcon

        app.setWindowIcon(QIcon(str(icon)))
    from .main_window import MainWindow

    if project is None:
        last = QSettings("LabelDesk", "LabelDesk").value("last_project")
        if last and (Path(str(last)) / "labeldesk.db").exists():
            project = Path(str(last))
    window = MainWindow(project)
    window.show()
    if os.environ.get("LABELDESK_EXIT_ON_PAINT") == "1":
        # bench/bundle.py: time to the first painted window, the same for the frozen app and
        # the virtual environment (a synchronous paint, then say so and leave).
        window.repaint()
        print("PAINTED", flush=True)
        return 0
    if screenshot is not None:
        from PySide6.QtCore import QTimer

        def shoot() -> None:
            window.grab().save(str(screenshot))
            window.close()
            app.quit()

        if window.project is not None:  # once the session has loaded, or there is none
            window.sessionLoaded.connect(lambda: QTimer.singleShot(800, shoot))
            window.noSession.connect(lambda _why: QTimer.singleShot(800, shoot))
        else:
            QTimer.singleShot(800, shoot)
    return app.exec()
