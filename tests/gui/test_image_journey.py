"""The image journey: choose image data, sample a bundled image checkpoint live, export, reopen; priors; training."""

from __future__ import annotations

import numpy as np
import pytest

from engine.io import read_samples
from studio.panels.training_panel import UNET_PRESETS
from tests.gui.helpers import wait_idle

pytestmark = pytest.mark.gui


def _require(name: str) -> None:
    from engine import api

    if name not in api.list_checkpoints():
        pytest.skip(f"the bundled checkpoint {name} is not here")


def _choose_data(qtbot, window, name: str) -> None:
    window.data_panel.choose(name)
    qtbot.waitUntil(lambda: window.workspace.dataset_spec == name, timeout=20_000)


def test_tile_images_places_each_image_in_its_cell():
    from studio.views.media import tile_images

    x = np.arange(5 * 1 * 2 * 3, dtype=np.float32).reshape(5, 1, 2, 3)
    t = tile_images(x, columns=3, gap=1, fill=-1.0)
    assert t.shape == (2 * 3 - 1, 3 * 4 - 1)
    for k in range(5):
        r, c = divmod(k, 3)
        np.testing.assert_array_equal(t[r * 3: r * 3 + 2, c * 4: c * 4 + 3], x[k, 0])
    assert (t[2] == -1).all() and (t[3:, 8:] == -1).all()  # the gap row and the unused sixth cell
    rgb = tile_images(np.random.default_rng(0).random((4, 3, 5, 5)), gap=0)
    assert rgb.shape == (10, 10, 3)


def test_image_data_sample_live_scrub_export_reopen(window, qtbot, tmp_path, shot):
    _require("mnist_hdm")
    w, panel, view = window, window.sampling_panel, window.view
    _choose_data(qtbot, w, "glyphs")
    assert w.workspace.modality == "images" and w.data_panel.previews.currentWidget() is w.data_panel.image_preview
    picture = w.data_panel.image_preview.picture()
    assert picture is not None and picture.ndim == 2 and picture.std() > 0.1  # digits, not a blank grid

    assert panel.select_checkpoint("mnist_hdm") and panel.modality() == "images"
    assert panel.prior.isVisibleTo(panel) and not panel.custom_grid.isVisibleTo(panel)
    panel.sampler.setCurrentText("ddim")
    panel.steps.setValue(12)
    panel.num.setValue(4)
    panel.seed.setValue(3)
    panel.preview.setCurrentIndex(panel.preview.findData("x0"))
    frames: list[bytes] = []
    view.frame_drawn.connect(lambda n: frames.append(view.images.picture().tobytes()))
    mid: list = []
    view.frame_drawn.connect(lambda n: mid.append(shot(w, "images_live")) if n == 6 and not mid else None)
    w.actions_by_name["run"].trigger()
    wait_idle(qtbot, w, timeout=60_000)
    assert not w.error_box.isVisible(), w.error_box.text()

    result = w.workspace.outcome.result
    assert result.samples.shape == (4, 1, 28, 28) and list(result.seeds) == [3, 4, 5, 6]
    assert len(set(frames)) >= 10, f"only {len(set(frames))} distinct live frames"
    assert view.stack.currentWidget() is view.images
    final = view.images.picture()
    assert final.shape == (2 * 29 - 1, 2 * 29 - 1) and final.std() > 0.1
    shot(w, "images_done")

    # the scrubber replays the saved states as images; its first state is noise, unlike the samples
    assert view.positions == len(result.trajectory) + 1 > 5
    view.slider.setValue(0)
    noisy = view.images.picture().copy()
    assert not np.allclose(noisy, final)
    shot(view, "images_scrub_start")
    view.slider.setValue(view.slider.maximum())
    np.testing.assert_allclose(view.images.picture(), final)

    h5 = tmp_path / "digits.h5"
    assert w.controller.export_to(str(h5))
    wait_idle(qtbot, w)
    sf = read_samples(h5)
    assert sf.modality == "images" and sf.samples.shape == (4, 1, 28, 28)
    np.testing.assert_allclose(sf.samples, result.samples)

    pngs = tmp_path / "pngs"
    assert w.controller.export_to(str(pngs), "png")
    wait_idle(qtbot, w)
    assert not w.error_box.isVisible(), w.error_box.text()
    assert len(list(pngs.glob("*.png"))) >= 4

    # reopen: change everything, open the file, the settings come back
    panel.steps.setValue(99)
    panel.num.setValue(1)
    panel.seed.setValue(0)
    panel.select_checkpoint("quadratic")
    w.open_path(str(h5))
    qtbot.waitUntil(lambda: w.workspace.opened is not None, timeout=15_000)
    s = panel.settings()
    assert (s["checkpoint"], s["sampler"], s["steps"], s["num_samples"], s["seed"]) == ("mnist_hdm", "ddim", 12, 4, 3)
    assert s["prior"] is None or s["prior"] == "hdm"
    assert s["preview"] == "x0"
    np.testing.assert_allclose(view.images.picture(), final)


def test_invalid_prior_shows_the_engines_message_and_the_app_carries_on(window, qtbot):
    _require("mnist_ihdm")
    w, panel = window, window.sampling_panel
    assert panel.select_checkpoint("mnist_ihdm")
    panel.steps.setValue(3)
    panel.num.setValue(1)
    panel.prior.setCurrentIndex(panel.prior.findData("white"))
    w.actions_by_name["run"].trigger()
    wait_idle(qtbot, w, timeout=30_000)
    assert w.error_box.isVisible() and "white prior" in w.error_box.text()
    w.error_box.hide()
    panel.prior.setCurrentIndex(panel.prior.findData("ihdm"))
    w.actions_by_name["run"].trigger()
    wait_idle(qtbot, w, timeout=30_000)
    assert not w.error_box.isVisible(), w.error_box.text()
    assert w.workspace.outcome.result.settings["prior"] == "ihdm"


def test_train_a_tiny_unet_then_cancel_leaves_the_app_usable(window, qtbot, shot):
    w, tp = window, window.training_panel
    _choose_data(qtbot, w, "glyphs")
    assert tp.modality == "images" and tp.model_config()["name"] == "unet"
    tp.unet_size.setCurrentIndex(tp.unet_size.findData("tiny"))
    tp.steps_box.setValue(400)
    tp.batch_box.setValue(8)
    assert tp.preview_every() == 40
    w.actions_by_name["train"].trigger()
    # the first periodic preview (step 40): images sampled from the EMA model, in the panel's image grid
    qtbot.waitUntil(lambda: tp.sample_images.picture() is not None, timeout=60_000)
    assert tp.previews.currentWidget() is tp.sample_images and tp.loss.points >= 40
    assert tp.sample_images.picture().shape == (3 * 29 - 1, 3 * 29 - 1)  # 8 previews of 28 x 28, 3 per row
    shot(w, "images_training_preview")
    w.actions_by_name["cancel"].trigger()
    wait_idle(qtbot, w, timeout=30_000)
    trainer = w.workspace.training.trainer
    assert trainer is not None and 40 <= trainer.step_count < 400 and trainer.modality == "images"
    assert "cancelled" in tp.status.text().lower()
    shot(w, "images_training_cancelled")
    # usable: the model trained so far samples images
    panel = w.sampling_panel
    assert panel.modality() == "images"
    panel.steps.setValue(3)
    panel.num.setValue(2)
    w.actions_by_name["run"].trigger()
    wait_idle(qtbot, w, timeout=30_000)
    assert not w.error_box.isVisible(), w.error_box.text()
    assert w.workspace.outcome.result.samples.shape == (2, 1, 28, 28)


def test_prior_panel_for_images_draws_and_spectrum_follow_the_parameters(window, qtbot, shot):
    w, prior = window, window.prior_panel
    _choose_data(qtbot, w, "glyphs")
    qtbot.waitUntil(lambda: prior.image_size == (28, 28) and prior.image_draws.picture() is not None, timeout=5_000)
    assert prior.image_draws.isVisibleTo(prior) and not prior.draws.isVisibleTo(prior)
    lam = prior.spectrum.eigenvalues
    assert lam.size == 28 * 28 and np.all(np.diff(lam) <= 0)  # sorted, decreasing

    # gamma = 0: Q = (sigma I - Laplacian)^0 = I, a flat spectrum; gamma = 2 decays by over two orders of magnitude
    assert prior.image_equation.currentData() == "hdm_spde"

    def set_gamma(value: float) -> None:
        n = prior.updates
        prior.gamma.setValue(value)
        qtbot.waitUntil(lambda: prior.updates > n, timeout=5_000)

    set_gamma(2.0)
    steep = prior.spectrum.eigenvalues
    assert steep[0] / steep[-1] > 1e2
    smooth_draws = prior.image_draws.picture().copy()
    shot(prior, "images_prior_hdm_gamma2")
    set_gamma(0.0)
    flat = prior.spectrum.eigenvalues
    np.testing.assert_allclose(flat, flat[0], rtol=1e-9)
    white_draws = prior.image_draws.picture()
    # smoother draws: neighbouring pixels agree more than in white noise
    def roughness(p):
        return float(np.abs(np.diff(p, axis=1)).mean())
    assert roughness(smooth_draws) < 0.5 * roughness(white_draws)

    prior.image_equation.setCurrentIndex(prior.image_equation.findData("ihdm"))
    n = prior.updates
    qtbot.waitUntil(lambda: prior.updates > n, timeout=5_000)
    assert not prior.error.isVisible(), prior.error.text()
    assert prior.state()["images"]["equation"]["name"] == "ihdm"
    shot(prior, "images_prior_ihdm")


def test_project_file_recalls_image_settings(window, qtbot, tmp_path):
    _require("mnist_ddpm")
    w = window
    _choose_data(qtbot, w, "glyphs")
    sp, pp, tp = w.sampling_panel, w.prior_panel, w.training_panel
    assert sp.select_checkpoint("mnist_ddpm")
    sp.prior.setCurrentIndex(sp.prior.findData("white"))
    sp.preview.setCurrentIndex(sp.preview.findData("x0"))
    sp.steps.setValue(17)
    pp.image_equation.setCurrentIndex(pp.image_equation.findData("vp"))
    tp.unet_size.setCurrentIndex(tp.unet_size.findData("small"))
    project = tmp_path / "digits.json"
    w.files.save_project(str(project))

    _choose_data(qtbot, w, "quadratic")
    sp.select_checkpoint("quadratic")
    sp.steps.setValue(3)
    pp.image_equation.setCurrentIndex(pp.image_equation.findData("hdm_spde"))
    tp.unet_size.setCurrentIndex(tp.unet_size.findData("tiny"))

    w.open_path(str(project))
    qtbot.waitUntil(lambda: w.workspace.dataset_spec == "glyphs", timeout=20_000)
    s = sp.settings()
    assert (s["checkpoint"], s["prior"], s["preview"], s["steps"]) == ("mnist_ddpm", "white", "x0", 17)
    assert pp.image_config()["equation"]["name"] == "vp"
    assert tp.model_config() == {"name": "unet", **UNET_PRESETS["small"]}
    assert w.workspace.modality == "images"


def test_image_evaluation_summary_names_fd_kid_and_classes():
    from studio.engine_jobs import summarize_evaluation

    report = {"fd": 22.7, "kid": 13.7, "kid_std": 0.8, "sw1": 0.05, "classes_covered": 10, "nn_ratio": 1.02,
              "data": {"spec": "mnist", "split": "test", "num": 2000}}
    text = summarize_evaluation(report)
    assert text.startswith("vs mnist test split (2000 items): FD 22.7, KID 13.7 ± 0.8")
    assert "classes covered 10" in text and "\n" not in text
