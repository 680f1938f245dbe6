"""Fusion style with an explicit light or dark palette that follows the system's colour scheme."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

LIGHT = {
    "Window": "#f3f3f5", "WindowText": "#1d1d22", "Base": "#ffffff", "AlternateBase": "#ececf0",
    "ToolTipBase": "#ffffe8", "ToolTipText": "#1d1d22", "PlaceholderText": "#8a8a92", "Text": "#1d1d22",
    "Button": "#e9e9ee", "ButtonText": "#1d1d22", "BrightText": "#c62828", "Highlight": "#2f6fd6",
    "HighlightedText": "#ffffff", "Link": "#2f6fd6", "Mid": "#b9b9c2", "Dark": "#9a9aa3", "Light": "#ffffff",
}
DARK = {
    "Window": "#202126", "WindowText": "#e6e6ea", "Base": "#17181c", "AlternateBase": "#25262c",
    "ToolTipBase": "#2b2c33", "ToolTipText": "#e6e6ea", "PlaceholderText": "#7c7d86", "Text": "#e6e6ea",
    "Button": "#2b2c33", "ButtonText": "#e6e6ea", "BrightText": "#ff6b6b", "Highlight": "#4d8df0",
    "HighlightedText": "#ffffff", "Link": "#79a8ff", "Mid": "#45464f", "Dark": "#121316", "Light": "#3a3b43",
}


def is_dark(app: QApplication) -> bool:
    return app.styleHints().colorScheme() == Qt.ColorScheme.Dark


def make_palette(dark: bool) -> QPalette:
    colors = DARK if dark else LIGHT
    pal = QPalette()
    for role, value in colors.items():
        pal.setColor(getattr(QPalette.ColorRole, role), QColor(value))
    disabled = QColor("#6c6d75" if dark else "#a0a0a8")
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText, QPalette.ColorRole.WindowText):
        pal.setColor(QPalette.ColorGroup.Disabled, role, disabled)
    return pal


def apply_theme(app: QApplication, dark: bool | None = None) -> None:
    """Fusion + palette (``dark=None``: follow the system); plots pick the palette up."""
    app.setStyle("Fusion")
    dark = is_dark(app) if dark is None else dark
    pal = make_palette(dark)
    app.setPalette(pal)
    pg.setConfigOptions(background=pal.color(QPalette.ColorRole.Base),
                        foreground=pal.color(QPalette.ColorRole.Text))


def follow_system_theme(app: QApplication) -> None:
    """Apply the theme now and again whenever the system switches between light and dark."""
    apply_theme(app)
    app.styleHints().colorSchemeChanged.connect(lambda _scheme: apply_theme(app))


def configure_pyqtgraph() -> None:
    pg.setConfigOptions(imageAxisOrder="row-major", antialias=True)
