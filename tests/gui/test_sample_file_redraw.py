"""Provenance audit, finding 2: "Sample this seed" on an opened sample file redraws exactly that file's sample,
with every setting the file records (the sampler's spacing, its grid, even a non-uniform one), and only with the
model the file records (its checkpoint sha256): a different model now at the checkpoint's path is refused."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from tests.gui.helpers import wait_idle

pytestmark = pytest.mark.gui


def _sample_file(checkpoint, path, *, sampler: str, spacing: str | None = None, grid: str | None = None):
    """Five curves drawn through the API (seeds 0..4, batches of 3), written as `hdm sample` writes them."""
    import torch

    from engine import api

    model = api.load_model(checkpoint)
    points = None
    if grid == "uneven":  # an API user's grid= of the training domain, denser at its start
        a, b = model.geometry.domain
        points = a + (b - a) * np.linspace(0.0, 1.0, 40) ** 2
    with torch.inference_mode():
        result = model.sample(5, steps=8, sampler=sampler, spacing=spacing, seed=0, batch_size=3, grid=points)
    return api.write_sample_file(path, result, model)


def _open(qtbot, window, path):
    window.open_path(str(path))
    qtbot.waitUntil(lambda: window.workspace.opened is not None, timeout=15_000)
    wait_idle(qtbot, window)  # the file's checkpoint is read to compare its digest
    return window.workspace.opened


@pytest.mark.parametrize("sampler,spacing,grid", [("dpm2m", "edm", None), ("ddim", "uniform", None),
                                                  ("ddim", None, "uneven")],
                         ids=["dpm2m-edm", "ddim-uniform", "uneven-grid"])
def test_sample_this_seed_redraws_the_files_sample_with_its_spacing_and_grid(
        window, qtbot, tmp_path, tiny_checkpoint, sampler, spacing, grid):
    w, panel = window, window.sampling_panel
    sf = _open(qtbot, w, _sample_file(tiny_checkpoint, tmp_path / "s.h5", sampler=sampler, spacing=spacing,
                                      grid=grid))
    assert panel.resample_button.isEnabled(), panel.resample_button.toolTip()
    opened_text = panel.result.text()
    panel.recall_seed.setValue(3)
    panel.resample_button.click()
    wait_idle(qtbot, w, timeout=60_000)
    assert not w.error_box.isVisible(), w.error_box.text()
    single = w.workspace.outcome.result
    assert list(single.seeds) == [3] and single.samples.shape == sf.samples[3:4].shape
    diff, scale = float(np.abs(single.samples[0] - sf.samples[3]).max()), float(np.abs(sf.samples[3]).max())
    assert diff < 1e-4 * scale, f"redrawn with {single.settings}: max |diff| {diff:.3g} (scale {scale:.3g})"
    recorded = sf.config["sampling"]["spacing"]
    assert single.settings["spacing"] == recorded
    np.testing.assert_array_equal(single.grid, sf.grid)  # the file's own points, not a uniform grid of that size
    if spacing is not None:
        assert recorded == spacing and f"({spacing} spacing)" in opened_text
    # the redrawn sample's own "Sample this seed" keeps the file's settings
    assert panel.resample_button.isEnabled()
    panel.resample_button.click()
    wait_idle(qtbot, w, timeout=60_000)
    np.testing.assert_array_equal(w.workspace.outcome.result.samples, single.samples)


def _replace_weights(path) -> None:
    """Another model at ``path``: the same metadata, one weight changed (a retrained run saved over it)."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    tensors = load_file(str(path))
    name = next(k for k, v in tensors.items() if v.is_floating_point() and v.numel() > 1)
    tensors[name] = tensors[name] + 0.5
    save_file(tensors, str(path), metadata=meta)


def test_sample_this_seed_refuses_another_model_at_the_files_checkpoint(window, qtbot, tmp_path, tiny_checkpoint):
    w, panel = window, window.sampling_panel
    run = tmp_path / "run"
    shutil.copytree(tiny_checkpoint.parent, run)
    path = _sample_file(run / "model.safetensors", tmp_path / "s.h5", sampler="ddim")
    _replace_weights(run / "model.safetensors")
    sf = _open(qtbot, w, path)
    assert w.workspace.opened is sf and w.workspace.outcome is None
    assert not panel.resample_button.isEnabled()
    tip = panel.resample_button.toolTip()
    assert "another model" in tip and "sha256" in tip and sf.checkpoint_sha256[:12] in tip, tip
    assert any("Sample this seed is off" in line for line in w.log_panel.lines())


def test_sample_this_seed_refuses_at_sampling_time_a_model_of_another_digest(
        window, qtbot, tmp_path, tiny_checkpoint):
    """The sampling job checks the digest too (the model it uses may have been read after the file was opened)."""
    w, panel = window, window.sampling_panel
    sf = _open(qtbot, w, _sample_file(tiny_checkpoint, tmp_path / "s.h5", sampler="ddim"))
    assert panel.resample_button.isEnabled()
    panel._sample_settings["checkpoint_sha256"] = "f" * 64  # as if the file recorded another model
    panel.resample_button.click()
    wait_idle(qtbot, w, timeout=60_000)
    assert w.error_box.isVisible() and "another model" in w.error_box.text()
    w.error_box.hide()
    assert w.workspace.opened is sf and w.workspace.outcome is None  # the file's samples stay shown
    assert not panel.resample_button.isEnabled() and "another model" in panel.resample_button.toolTip()


def test_the_studio_names_exports_as_hdm_does(window, qtbot, tmp_path):
    """Regression review: the studio wrote an HDF5 sample file named .tsv (read back as curve data) and PNG files
    into a folder named x.png, names `hdm` refuses; it refuses them too, in words, writing nothing."""
    w = window
    w.sampling_panel.steps.setValue(2)
    w.sampling_panel.num.setValue(3)
    w.controller.start_sampling()
    wait_idle(qtbot, w, timeout=60_000)
    for name, fmt, words in (("s.tsv", "h5", "*.h5 or *.hdf5"), ("c.h5", "csv", "*.csv or *.txt")):
        assert not w.controller.export_to(str(tmp_path / name), fmt)
        assert words in w.error_box.text()
        w.error_box.hide()
    assert list(tmp_path.iterdir()) == []
    assert w.controller.export_to(str(tmp_path / "s.H5"), "h5")
    wait_idle(qtbot, w)
    assert (tmp_path / "s.H5").is_file()
