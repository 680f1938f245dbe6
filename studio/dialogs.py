"""Non-modal file dialogs (``open()``, never ``exec()``: no nested event loop under qasync)."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import QFileDialog, QWidget

CHECKPOINT_FILTER = "Checkpoints (*.safetensors);;All files (*)"


def file_dialog(parent: QWidget, title: str, on_selected: Callable[[str], object], *, directory: str = "",
                name_filter: str = "", save_suffix: str | None = None, folder: bool = False) -> QFileDialog:
    """Open a file dialog that calls ``on_selected(path)``; keep the returned dialog alive.

    Args:
        save_suffix: a save dialog with this default suffix (else an "open existing file" dialog).
        folder: choose a directory instead of a file.
    """
    dialog = QFileDialog(parent, title, directory, name_filter)
    if save_suffix is not None:
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.setDefaultSuffix(save_suffix)
    elif folder:
        dialog.setFileMode(QFileDialog.FileMode.Directory)
        dialog.setOption(QFileDialog.Option.ShowDirsOnly, True)
    else:
        dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
    dialog.fileSelected.connect(on_selected)
    dialog.open()
    return dialog
