"""Every file chooser opens a non-modal dialog whose selection reaches its handler."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import QFileDialog

pytestmark = pytest.mark.gui


def _open_and_check(owner, chooser, *, save: bool = False, folder: bool = False) -> None:
    chooser()
    dialog = owner._dialog
    assert isinstance(dialog, QFileDialog) and dialog.isVisible()
    expected = QFileDialog.AcceptMode.AcceptSave if save else QFileDialog.AcceptMode.AcceptOpen
    assert dialog.acceptMode() == expected
    if folder:
        assert dialog.fileMode() == QFileDialog.FileMode.Directory
    elif not save:
        assert dialog.fileMode() == QFileDialog.FileMode.ExistingFile
    dialog.reject()


def test_file_choosers(window):
    _open_and_check(window, window.choose_open)
    _open_and_check(window, window.choose_project_path, save=True)
    _open_and_check(window.data_panel, window.data_panel.choose_file)
    _open_and_check(window.sampling_panel, window.sampling_panel._choose_checkpoint)
    _open_and_check(window.training_panel, window.training_panel._choose_checkpoint)
    _open_and_check(window.training_panel, window.training_panel._choose_save_dir, folder=True)


def test_dialog_selection_reaches_the_handler(themed_app, qtbot):
    from PySide6.QtWidgets import QWidget

    from studio.dialogs import file_dialog

    parent = QWidget()
    qtbot.addWidget(parent)
    got = []
    dialog = file_dialog(parent, "t", got.append, save_suffix="h5")
    assert dialog.defaultSuffix() == "h5"
    dialog.fileSelected.emit("/tmp/x.h5")
    assert got == ["/tmp/x.h5"]
    dialog.reject()
