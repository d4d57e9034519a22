"""The PySide6 desktop app. Widgets and Qt models only; all work goes through labeldesk.app."""
