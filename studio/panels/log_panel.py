"""The log panel: the studio's and the engine's messages and Qt's own warnings, newest last."""

from __future__ import annotations

import html

from PySide6.QtCore import Slot
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from studio.log import stamp

_COLORS = {"warning": "#c77700", "error": "#d32f2f", "critical": "#d32f2f"}


class LogPanel(QWidget):
    """Read-only, bounded log with a level colour per line."""

    def __init__(self, parent: QWidget | None = None, max_lines: int = 5000) -> None:
        super().__init__(parent)
        self.text = QPlainTextEdit(self)
        self.text.setReadOnly(True)
        self.text.setMaximumBlockCount(max_lines)
        self.text.setPlaceholderText("Messages from the studio, the engine and Qt appear here.")
        self.counts = {"info": 0, "warning": 0, "error": 0}
        self.summary = QLabel("", self)
        clear = QPushButton("Clear", self)
        clear.clicked.connect(self.clear)
        row = QHBoxLayout()
        row.addWidget(self.summary, 1)
        row.addWidget(clear)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.text, 1)
        layout.addLayout(row)

    @Slot(str, str, str)
    def append(self, level: str, source: str, text: str) -> None:
        level = level if level in ("debug", "info", "warning", "error", "critical") else "info"
        key = "error" if level == "critical" else level
        if key in self.counts:
            self.counts[key] += 1
        body = f"{stamp()} [{html.escape(source)}] " + html.escape(text).replace("\n", "<br>")
        color = _COLORS.get(level)  # plain lines keep the palette's text colour (light or dark)
        self.text.appendHtml(f'<span style="color:{color}">{body}</span>' if color else f"<span>{body}</span>")
        self.summary.setText(f"{self.counts['warning']} warnings, {self.counts['error']} errors")

    def lines(self) -> list[str]:
        return self.text.toPlainText().splitlines()

    @Slot()
    def clear(self) -> None:
        self.text.clear()
        self.counts = {k: 0 for k in self.counts}
        self.summary.setText("")
