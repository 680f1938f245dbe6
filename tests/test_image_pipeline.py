"""The image path end to end: config resolution, training, priors, sampling, checkpoints, CLI, evaluation."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch

from engine import api
from engine.cli import main as cli
from engine.config import RunConfig
from engine.errors import CheckpointError, ConfigError
from engine.training import Trainer

TINY = {"name": "unet", "width": 8, "channel_mult": [1, 1], "num_res_blocks": 1, "attention_levels": [], "emb_dim": 16}


def _config(equation: str = "auto", **train) -> RunConfig:
    return RunConfig().replace(data={"spec": "glyphs", "num": 64, "image_size": 16}, equation={"name": equation},
                               model=TINY, train={"steps": 4, "batch_size": 8, **train})


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, object]:
    out = {}
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    for eq in ("hdm_spde", "vp", "ihdm"):
        path = tmp_path_factory.mktemp(eq)
        Trainer(_config(eq)).run(out_dir=path)
        out[eq] = path
    torch.set_num_threads(n)
    return out


def test_auto_settings_resolve_per_modality():
    images = RunConfig().resolve("images")
    assert (images.equation.name, images.model.name, images.train.lr) == ("hdm_spde", "unet", 5e-4)
    functions = RunConfig().resolve("functions")
    assert (functions.equation.name, functions.model.name, functions.train.lr) == ("vp", "fno1d", 2e-3)
    with pytest.raises(ConfigError, match="not defined for functions"):
        RunConfig().replace(equation={"name": "ihdm"}).resolve("functions")
    with pytest.raises(ConfigError, match="not for images"):
        RunConfig().replace(model={"name": "fno1d"}).resolve("images")


def test_trainer_infers_images_and_stores_the_resolved_config(trained):
    model = api.load_model(trained["hdm_spde"])
    assert model.modality == "images"
    assert model.config.equation.name == "hdm_spde" and model.config.model.name == "unet"
    assert model.geometry.to_dict() == {"height": 16, "width": 16, "channels": 1}
    assert "prior.bank" in model.tensors and model.tensors["prior.bank"].shape[0] == 64


@pytest.mark.parametrize("eq,prior,ok", [
    ("hdm_spde", "hdm", True), ("hdm_spde", "ihdm", True), ("hdm_spde", "white", False),
    ("vp", "hdm", True), ("vp", "white", True), ("vp", "ihdm", True),
    ("ihdm", "ihdm", True), ("ihdm", "hdm", False), ("ihdm", "white", False),
])
def test_prior_rules(trained, eq, prior, ok):
    model = api.load_model(trained[eq])
    if not ok:
        with pytest.raises(ConfigError):
            model.sample(2, steps=2, prior=prior)
        return
    result = model.sample(2, steps=3, prior=prior, trajectory_every=1)
    assert result.samples.shape == (2, 1, 16, 16) and np.isfinite(result.samples).all()
    assert result.trajectory.shape == (4, 2, 1, 16, 16) and result.settings["prior"] == prior


def test_the_hdm_prior_warns_where_it_drops_a_sizeable_mean(tmp_path, caplog):
    """HDM-SPDE keeps alpha(T)^sigma of the image mean at T: 0.8 % at sigma 1, which the hdm prior may drop, but
    9 % at 0.5 and 62 % at 0.1; sampling then says so (once a model) and names the exact prior."""
    import logging

    Trainer(_config("hdm_spde", steps=1).replace(noise={"sigma": 0.1})).run(out_dir=tmp_path / "low")
    low = api.load_model(tmp_path / "low")
    with caplog.at_level(logging.WARNING, logger="engine.pipeline"):
        low.sample(2, steps=2, batch_size=1)
        assert caplog.text.count("keeps 62 % of the image's mean at T") == 1 and "--prior ihdm" in caplog.text
        caplog.clear()
        low.sample(2, steps=2)  # once a model
        api.load_model(tmp_path / "low").sample(2, steps=2, prior="ihdm")  # the exact prior: nothing to say
        assert "keeps" not in caplog.text
    Trainer(_config("hdm_spde", steps=1)).run(out_dir=tmp_path / "one")
    with caplog.at_level(logging.WARNING, logger="engine.pipeline"):
        api.load_model(tmp_path / "one").sample(2, steps=2)
    assert "keeps" not in caplog.text


def test_white_prior_equals_the_hdm_prior_for_ddpm(trained):
    model = api.load_model(trained["vp"])
    a = model.sample(3, steps=3, prior="white", seed=5).samples
    b = model.sample(3, steps=3, prior="hdm", seed=5).samples
    np.testing.assert_array_equal(a, b)


def test_ihdm_prior_is_blurred_training_data_plus_noise(trained):
    """At T the ihdm prior keeps the image mean of a training image (mode 0 never decays) and little else."""
    model = api.load_model(trained["ihdm"])
    eq = model.equation_on()
    from engine.rng import SampleRNG

    x_T = model.prior_sample("ihdm", eq, SampleRNG(range(200)), (1, 16, 16))
    bank = model.tensors["prior.bank"]
    means = x_T.mean(dim=(1, 2, 3))
    # the mean of every draw is (almost exactly) the normalised mean of one bank image
    bank_means = bank[:, 0, 0].double() / 16  # DCT mode 0 = 16 x the mean on a 16x16 image
    gap = (means.double()[:, None] - bank_means[None, :]).abs().min(dim=1).values
    assert float(gap.max()) < 0.02
    # within one draw the image is nearly flat: the blur has removed the digit
    assert float(x_T.std(dim=(2, 3)).max()) < 0.2


def test_samples_are_seed_deterministic_and_batch_independent(trained):
    model = api.load_model(trained["hdm_spde"])
    a = model.sample(4, steps=3, seed=7, batch_size=4).samples
    b = model.sample(4, steps=3, seed=7, batch_size=3).samples
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_unet_refuses_another_size_and_fno2d_samples_at_twice_the_size(tmp_path):
    with pytest.raises(ConfigError, match="training size"):
        Trainer(_config()).model().sample(1, steps=2, size=32)
    cfg = _config().replace(model={"name": "fno2d", "width": 8, "modes": 4, "layers": 1, "emb_dim": 16})
    model = Trainer(cfg).model()
    result = model.sample(2, steps=3, size=32, prior="ihdm")
    assert result.samples.shape == (2, 1, 32, 32) and np.isfinite(result.samples).all()
    assert result.settings["image_size"] == [32, 32]


def test_resume_continues_the_same_run(tmp_path):
    full = Trainer(_config(steps=6))
    full.run()
    part = Trainer(_config(steps=3))
    part.run(out_dir=tmp_path)
    resumed = Trainer.resume(tmp_path, steps=6)
    resumed.run()
    np.testing.assert_allclose(resumed.losses, full.losses, rtol=1e-5)


def test_cli_trains_samples_exports_png_and_evaluates(tmp_path, capsys):
    run = tmp_path / "run"
    assert cli(["train", "--data", "glyphs", "--num-items", "64", "--image-size", "16", "--steps", "3",
                "--batch-size", "8", "--width", "8", "--channel-mult", "1", "1", "--res-blocks", "1", "--attention",
                "--emb-dim", "16", "--out", str(run), "--quiet"]) == 0
    samples = tmp_path / "s.h5"
    assert cli(["sample", "--checkpoint", str(run), "--num-samples", "6", "--steps", "3", "--prior", "ihdm",
                "--out", str(samples), "--quiet"]) == 0
    with h5py.File(samples) as f:
        assert f.attrs["modality"] == "images" and f["samples"].shape == (6, 1, 16, 16)
        assert json.loads(f.attrs["config"])["sampling"]["prior"] == "ihdm"
    out = tmp_path / "png"
    assert cli(["export", "--samples", str(samples), "--format", "png", "--out", str(out)]) == 0
    from PIL import Image

    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == 7  # 6 samples and the grid
    with Image.open(pngs[0]) as im:
        assert json.loads(im.text["hdm-config"])["sampling"]["prior"] == "ihdm"
    report = tmp_path / "r.json"
    assert cli(["evaluate", "--samples", str(samples), "--data", "glyphs", "--json", str(report), "--quiet"]) == 0
    r = json.loads(report.read_text())
    assert r["fd"] > 0 and r["classifier_sha256"] and r["samples"]["path"] == str(samples.resolve())
    assert cli(["sample", "--checkpoint", str(run), "--grid-size", "10", "--out", str(tmp_path / "x.h5")]) == 2
    assert "image-size" in capsys.readouterr().err


def test_a_functions_checkpoint_is_not_an_image_one():
    with pytest.raises(CheckpointError, match="is a checkpoint of functions, not of images"):
        api.load_model("quadratic", modality="images")


def test_noise_prediction_on_the_heat_equations_is_warned_about(caplog):
    """The reference's noise prediction needs x0 = (x_t - s e_hat) / m: on HDM-SPDE and IHDM m_k is tiny in the high
    modes, so the network's error is magnified there (the samplers floor it; exact-score samples blew up before)."""
    import logging

    with caplog.at_level(logging.WARNING, logger="engine.training"):
        Trainer(_config("vp").replace(model={"parameterization": "noise"}))
        Trainer(_config("hdm_spde"))
        assert "parameterization 'noise'" not in caplog.text
        Trainer(_config("hdm_spde").replace(model={"parameterization": "noise"}))
    assert "parameterization 'noise' on hdm_spde" in caplog.text and "the default 'v'" in caplog.text
