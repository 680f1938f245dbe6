"""One stream of messages for the log panel: the studio's, the engine's and Qt's own warnings.

Python ``logging`` records (any thread) and Qt's messages (``qInstallMessageHandler``) are
re-emitted by :class:`LogBridge` as a signal, queued to the GUI thread when they come from a
worker.
"""

from __future__ import annotations

import logging
import time

from PySide6.QtCore import QMessageLogContext, QObject, QtMsgType, Signal, qInstallMessageHandler

_QT_LEVELS = {
    QtMsgType.QtDebugMsg: "debug",
    QtMsgType.QtInfoMsg: "info",
    QtMsgType.QtWarningMsg: "warning",
    QtMsgType.QtCriticalMsg: "error",
    QtMsgType.QtFatalMsg: "error",
}
LOGGERS = ("engine", "studio", "py.warnings")


class LogBridge(QObject):
    """Emits ``message(level, source, text)`` for every log line, on the receiver's thread."""

    message = Signal(str, str, str)

    def post(self, level: str, source: str, text: str) -> None:
        self.message.emit(level, source, text)


class _Handler(logging.Handler):
    def __init__(self, bridge: LogBridge) -> None:
        super().__init__(logging.INFO)
        self.bridge = bridge

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.bridge.post(record.levelname.lower(), record.name.split(".")[0], record.getMessage())
        except RuntimeError:  # the bridge was deleted at shutdown
            pass


_active: list[tuple[LogBridge, _Handler]] = []
# What Qt's headless platform plugins (offscreen, minimal) say about every window: nothing a user can act on
QT_PLATFORM_NOISE = frozenset({"This plugin does not support propagateSizeHints()"})


def install(bridge: LogBridge) -> None:
    """Route Python logging (engine, studio, warnings) and Qt's messages to ``bridge``."""
    uninstall()
    handler = _Handler(bridge)
    for name in LOGGERS:
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        if logger.level == logging.NOTSET or logger.level > logging.INFO:
            logger.setLevel(logging.INFO)
    logging.captureWarnings(True)

    def on_qt_message(kind: QtMsgType, context: QMessageLogContext, text: str) -> None:
        if text in QT_PLATFORM_NOISE:
            return
        try:
            bridge.post(_QT_LEVELS.get(kind, "info"), "qt", text)
        except RuntimeError:
            pass

    qInstallMessageHandler(on_qt_message)
    _active.append((bridge, handler))


def uninstall() -> None:
    """Detach the current bridge (at shutdown, and before installing another one)."""
    while _active:
        _, handler = _active.pop()
        for name in LOGGERS:
            logging.getLogger(name).removeHandler(handler)
        qInstallMessageHandler(None)
    logging.captureWarnings(False)


def stamp() -> str:
    return time.strftime("%H:%M:%S")


def install_excepthook(on_error) -> None:
    """Exceptions escaping a Qt slot go to the log (with their traceback) and to ``on_error(line)``
    instead of only to a terminal the user may not have."""
    import sys
    import traceback

    from studio.jobs import describe_error

    def hook(kind, value, tb) -> None:
        logging.getLogger("studio").error("".join(traceback.format_exception(kind, value, tb)).rstrip())
        try:
            on_error(describe_error(value))
        except Exception:  # the error display itself failed: the log has it
            pass

    sys.excepthook = hook
