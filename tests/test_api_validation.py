"""Bad input to the Python API (and the CLI on top of it) ends in one HDMError line that says what to do."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine import api
from engine.errors import CheckpointError, ConfigError, DataError
from engine.io import load_model as load_weights
from engine.io import save_model, write_samples
from engine.paths import CHECKPOINTS_DIR
from engine.pipeline import uniform_grid

QUADRATIC = CHECKPOINTS_DIR / "quadratic.safetensors"


@pytest.fixture(scope="module")
def model():
    return api.load_model("quadratic")


def test_seeds_must_fit_int64(model):
    """Seeds are int64 (sample files, SampleRNG takes any): seed + num - 1 overflowed np.arange with a traceback."""
    top = 2**63 - 1
    for seed in (top, 2**64 - 1, -(2**63) - 1, 1.5):
        with pytest.raises(ConfigError, match=r"seed \(--seed\) must be an integer in \[-2\^63, 2\^63 - num_samples\]"):
            model.sample(2, steps=1, seed=seed)
    assert model.sample(2, steps=1, seed=top - 1).seeds.tolist() == [top - 1, top]
    assert model.sample(1, steps=1, seed=-(2**63)).seeds.tolist() == [-(2**63)]
    for seeds in ([2**70, 1], [1.5, 2.5], [True, False], np.array([2**64 - 1, 1], dtype=np.uint64), ["a", "b"]):
        with pytest.raises(ConfigError, match=r"seeds must be integers in \[-2\^63, 2\^63 - 1\]"):
            model.sample(2, steps=1, seeds=seeds)
    with pytest.raises(ConfigError, match="flat list"):
        model.sample(2, steps=1, seeds=[[1], [2, 3]])
    ok = model.sample(2, steps=1, seeds=np.array([7, top], dtype=np.uint64))  # numpy integers are fine
    assert ok.seeds.dtype == np.int64 and ok.seeds.tolist() == [7, top]
    same = model.sample(2, steps=1, seeds=[np.int32(7), top])
    np.testing.assert_array_equal(same.samples, ok.samples)


@pytest.mark.parametrize("seed", ["9223372036854775807", "18446744073709551615"])
def test_cli_seed_past_int64_is_one_line(seed, tmp_path, capsys):
    from engine.cli import main

    out = tmp_path / "s.h5"
    assert main(["sample", "--checkpoint", "quadratic", "--num-samples", "2", "--steps", "1", "--seed", seed,
                 "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: seed (--seed) must be an integer") and "\n" not in err
    assert not out.exists()


def test_counts_accept_numpy_integers_and_reject_the_rest(model):
    r = model.sample(np.int64(3), steps=np.int32(2), batch_size=np.int64(2), seed=np.int64(4),
                     trajectory_every=np.int64(1))
    assert r.samples.shape == (3, 1, 100) and r.seeds.tolist() == [4, 5, 6]
    assert r.trajectory.shape[:2] == (3, 3) and r.settings["steps"] == 2 and type(r.settings["steps"]) is int
    assert uniform_grid(model.geometry, np.int64(5)).shape == (5,)
    for key, value in (("trajectory_every", -1), ("trajectory_every", 2.5), ("steps", 2.0), ("batch_size", 0),
                       ("batch_size", 1.5)):
        with pytest.raises(ConfigError, match=rf"^{key} \(--{key.replace('_', '-')}"):
            model.sample(2, **{"steps": 1, key: value})
    with pytest.raises(ConfigError, match=r"^num_samples \(--num-samples\) must be a positive integer"):
        model.sample(2.0, steps=1)
    with pytest.raises(ConfigError, match="a sampling grid must be a strictly increasing 1D array"):
        model.sample(2, steps=1, grid="abc")
    with pytest.raises(ConfigError, match=r"grid size \(--grid-size\) must be an integer >= 2"):
        uniform_grid(model.geometry, 2.5)


def test_image_size_accepts_numpy_integers_and_rejects_fractions():
    images = api.load_model("mnist_hdm")
    assert images.default_batch_size(size=np.int64(28)) >= 1
    assert images.default_batch_size(size=(np.int32(28), 28)) >= 1
    for size in ((28.5, 28.5), "abc", (28,)):
        with pytest.raises(ConfigError, match="image size"):
            images.default_batch_size(size=size)


@pytest.mark.parametrize("spec", [None, 5, 2.5, ""])
def test_load_model_needs_a_name_or_a_path(spec):
    with pytest.raises(ConfigError, match="a checkpoint is a bundled name, a .safetensors file or a run directory"):
        api.load_model(spec)


def _edited(tmp_path, name, *, geometry=None, normalizer=None, config=None):
    loaded = load_weights(QUADRATIC)
    meta = {k: v for k, v in loaded.meta.items() if k != "format"}
    cfg = json.loads(json.dumps(loaded.config))
    if geometry:
        meta["geometry"] = {**meta["geometry"], **geometry}
    if normalizer:
        meta["normalizer"] = normalizer
    for section, values in (config or {}).items():
        cfg[section] = {**cfg[section], **values}
    return save_model(tmp_path / name, loaded.state_dict, config=cfg, meta=meta)


@pytest.mark.parametrize("edit,reason", [
    ({"geometry": {"grid": []}}, "training grid"),
    ({"geometry": {"grid": [1.0] * 100}}, "training grid"),
    ({"geometry": {"length_scale": 0.0}}, "length scale must be a positive number"),
    ({"normalizer": {"kind": "standard", "mean": [float("nan")], "std": [1.0]}}, "means must be finite"),
    ({"normalizer": {"kind": "standard", "mean": [0.0, 0.0], "std": [1.0, 1.0]}}, "2 channel"),
    ({"config": {"equation": {"T": 5}}}, "0 < T < 1"),
    ({"config": {"noise": {"jitter": -1}}}, "jitter must be >= 0"),
])
def test_invalid_checkpoint_metadata_names_the_file(tmp_path, edit, reason):
    path = _edited(tmp_path, "edited.safetensors", **edit)
    with pytest.raises(CheckpointError) as info:
        api.load_model(path)  # at load, not at the first sample
    message = str(info.value)
    assert message.startswith(f"{path}: the checkpoint's metadata is invalid (") and reason in message
    assert "\n" not in message


def _curves_file(path):
    grid = np.linspace(-10, 10, 100)
    return write_samples(path, np.zeros((4, 1, 100), np.float32), seeds=range(4), config={}, grid=grid)


def test_evaluate_names_a_dataset_of_another_modality(tmp_path):
    curves = _curves_file(tmp_path / "curves.h5")
    for spec, other in (("walk", "a motion"), ("mnist", "an image"), ("cmu07", "a motion")):
        with pytest.raises(DataError, match=f"the samples are functions but {spec} is {other} dataset; evaluate "
                                            "against a function dataset such as quadratic"):
            api.evaluate(curves, spec)
    images = write_samples(tmp_path / "images.h5", np.full((3, 1, 28, 28), 0.5, np.float32), seeds=range(3),
                           config={}, modality="images")
    with pytest.raises(DataError, match="the samples are images but quadratic is a function dataset; evaluate "
                                        "against an image dataset such as .*glyphs"):
        api.evaluate(images, "quadratic")
    with pytest.raises(DataError, match="unknown dataset 'bogus'"):  # unknown names: the loader lists its choices
        api.evaluate(curves, "bogus")


def _motion_file(path, *, fps=30.0, frames=60, samples_fps=None, grid=None):
    """Walk clips at ``samples_fps`` (default 30), stored as if sampled from a model trained at ``fps``."""
    from engine.motion import load_motion_dataset

    clips = load_motion_dataset("walk", "train", fps=samples_fps or 30.0, frames=frames, num=12, seed=3)
    config = {"motion": {"skeleton": clips.skeleton.to_dict(), "fps": fps}}
    return write_samples(path, clips.values, seeds=range(12), config=config, modality="motions",
                         grid=clips.grid if grid is None else grid)


def test_motion_evaluation_takes_the_frame_rate_from_the_samples_grid(tmp_path):
    """60 frames drawn over a 120-frame, 30 fps training grid (--grid-size 60) are 4 s at ~14.9 fps: they are
    compared with 4 s reference clips at that rate, not with 2 s clips at 30 fps (foot skating doubled)."""
    train_grid = np.arange(120) / 30.0
    grid = np.linspace(train_grid[0], train_grid[-1], 60)
    fps = 1.0 / (grid[1] - grid[0])
    path = _motion_file(tmp_path / "walk60.h5", samples_fps=fps, grid=grid)
    report = api.evaluate(path, "walk", block_size=4, permutations=50)
    assert report["fps"] == pytest.approx(fps) and report["fps"] < 15
    gen, ref = report["generated"]["foot_skating"], report["reference"]["foot_skating"]
    assert gen == pytest.approx(ref, rel=0.5)  # the same law at the same rate
    real = report["real_clips"]  # as many real training walks, at the samples' rate, scored like them
    assert real["num"] == 12 and real["foot_skating"] == pytest.approx(ref, rel=0.5)
    assert real["jerk"] == pytest.approx(report["reference"]["jerk"], rel=0.5) and real["bone_length_error"] < 1e-6
    assert 0.0 <= real["power_trajectory"]["power"] <= 100.0 and real["power_velocity"]["block_size"] == 4
    at_training_rate = api.evaluate(_motion_file(tmp_path / "walk120.h5", frames=120), "walk", block_size=4,
                                    permutations=50)
    assert at_training_rate["fps"] == 30.0  # the stored rate, exactly, where the grid agrees with it
    on_training = api.evaluate(_motion_file(tmp_path / "walk120.h5", frames=120), "walk", block_size=4,
                               permutations=50, split="train")
    assert on_training["real_clips"] is None  # no second sample of real clips to compare with


def test_an_evaluation_stops_when_asked(tmp_path):
    """Evaluation had no cancel token: the studio's Cancel waited for it, and closing the window froze for the
    rest of it (11.9 s measured)."""
    from engine.errors import Cancelled
    from engine.metrics import evaluate_function_samples

    asked = []

    def after(n):
        return lambda: asked.append(1) or len(asked) > n

    with pytest.raises(Cancelled):
        api.evaluate(_motion_file(tmp_path / "walk.h5"), "walk", block_size=4, permutations=50, should_stop=after(3))
    rng = np.random.default_rng(0)
    with pytest.raises(Cancelled):
        evaluate_function_samples(rng.normal(size=(40, 8)), rng.normal(size=(40, 8)), repeats=5, permutations=50,
                                  should_stop=after(len(asked) + 2))


def test_motion_evaluation_refuses_too_few_motions_to_reject(tmp_path):
    """3 motions made a 3 vs 3 test, which can never reject: its 0 % read as "indistinguishable"."""
    from engine.io import read_samples

    full = read_samples(_motion_file(tmp_path / "walk.h5"))
    three = write_samples(tmp_path / "three.h5", full.samples[:3], seeds=range(3), config=full.config,
                          modality="motions", grid=full.grid)
    with pytest.raises(DataError, match="3 motions against .* can never reject .* draw at least 4"):
        api.evaluate(three, "walk")


def test_motion_evaluation_refuses_a_bad_frame_rate_or_grid(tmp_path):
    bad_fps = _motion_file(tmp_path / "abc.h5", fps="abc")
    with pytest.raises(DataError, match=f"{bad_fps}: its motion frame rate 'abc' is not a positive number"):
        api.evaluate(bad_fps, "walk")
    uneven = np.sort(np.random.default_rng(0).uniform(0, 2, 60))
    bumpy = _motion_file(tmp_path / "uneven.h5", grid=uneven)
    with pytest.raises(DataError, match=f"{bumpy}: motion metrics need at least 2 frames evenly spaced in time"):
        api.evaluate(bumpy, "walk")


def test_distributed_hint_names_the_command_run(monkeypatch, tmp_path, capsys):
    from engine.cli import main
    from engine.distributed import init_distributed

    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(ConfigError, match="--no-python hdm sample ..."):
        init_distributed("cpu", "sample")
    argv = ["sample", "--distributed", "--num-samples", "2", "--out", str(tmp_path / "s.h5"), "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --distributed needs the torchrun environment") and "hdm sample ..." in err
    assert "hdm train" not in err and not (tmp_path / "s.h5").exists()


def test_distributed_sampling_checks_seeds_before_any_collective(model):
    from engine.distributed import DistContext, sample_distributed

    ctx = DistContext(rank=0, world_size=1, local_rank=0, backend="gloo")  # no process group: must fail first
    with pytest.raises(ConfigError, match=r"seed \(--seed\) must be an integer"):
        sample_distributed(model, 2, ctx, seed=2**63 - 1, steps=1)
    with pytest.raises(ConfigError, match="seeds must be integers"):
        sample_distributed(model, 2, ctx, seeds=[2**70, 1], steps=1)
    with pytest.raises(ConfigError, match=r"num_samples \(--num-samples\)"):
        sample_distributed(model, 0, ctx, steps=1)


def test_motion_samples_on_another_grid_store_its_frame_rate(tmp_path):
    """Sampled at --grid-size 16 over a 32-frame, 30 fps clip, the motions play at 16 / (31 / 30) fps: the file says
    so (BVH export and evaluation read the grid; other readers the stored rate)."""
    from engine.config import RunConfig
    from engine.io import read_samples
    from engine.pipeline import uniform_grid
    from engine.training import Trainer

    cfg = RunConfig().replace(data={"spec": "walk", "num": 16, "frames": 32},
                              model={"width": 8, "modes": 4, "layers": 1, "emb_dim": 16},
                              train={"steps": 1, "batch_size": 4, "warmup": 1})
    model = Trainer(cfg).model()
    for size, fps in ((None, 30.0), (16, 15 * 30 / 31)):
        grid = None if size is None else uniform_grid(model.geometry, size)
        result = model.sample(2, steps=2, grid=grid)
        path = api.write_sample_file(tmp_path / f"m{size}.h5", result, model)
        assert read_samples(path).config["motion"]["fps"] == pytest.approx(fps, rel=1e-9)


def test_each_modality_samples_with_its_default_sampler(tmp_path, capsys):
    """Motions: the exponential sampler (engine.samplers.MODALITY_DEFAULT_SAMPLERS); curves: dpm2m_sde. The API,
    `hdm sample` and the sample file's provenance say which ran; a named sampler is used as named."""
    from engine.cli import main
    from engine.config import RunConfig
    from engine.io import read_samples
    from engine.training import Trainer

    tiny = {"width": 8, "modes": 4, "layers": 1, "emb_dim": 16}
    walk = Trainer(RunConfig().replace(data={"spec": "walk", "num": 16, "frames": 32}, model=tiny,
                                       train={"steps": 1, "batch_size": 4, "warmup": 1}))
    curves = Trainer(RunConfig().replace(data={"spec": "quadratic", "n_points": 16, "num": 32}, model=tiny,
                                         train={"steps": 1, "batch_size": 4, "warmup": 1}))
    assert walk.model().sample(2, steps=2).settings["sampler"] == "exponential"
    assert walk.model().sample(2, steps=2, sampler="ddim").settings["sampler"] == "ddim"
    assert curves.model().sample(2, steps=2).settings["sampler"] == "dpm2m_sde"
    walk.save(tmp_path / "walk")
    out = tmp_path / "w.h5"
    assert main(["sample", "--checkpoint", str(tmp_path / "walk"), "--num-samples", "2", "--steps", "2",
                 "--out", str(out), "--quiet"]) == 0
    assert "with exponential (2 steps)" in capsys.readouterr().out
    assert read_samples(out).config["sampling"]["sampler"] == "exponential"


def test_a_grid_outside_the_training_domain_is_refused(model):
    """Before: [-20, 20] was sampled without a word, and the curves reached about 105 where the data reach 400
    (the FNO's Fourier layers wrap around the training domain)."""
    with pytest.raises(ConfigError, match=r"spans \[-20, 20\].*trained on \[-10, 10\]"):
        model.sample(2, steps=3, grid=np.linspace(-20, 20, 50))
    assert model.sample(2, steps=3, grid=np.linspace(-5, 10, 33)).samples.shape == (2, 1, 33)  # inside: any grid


def test_loading_a_model_leaves_torchs_random_state_alone():
    import torch

    torch.manual_seed(0)
    expected = torch.randn(3)
    torch.manual_seed(0)
    api.load_model("quadratic")
    torch.testing.assert_close(torch.randn(3), expected, rtol=0, atol=0)


def test_a_sampler_registered_without_its_evaluation_count_is_refused_before_sampling(model, monkeypatch):
    """Before: a KeyError, raised after the whole sampling had run."""
    from engine import samplers

    monkeypatch.setitem(samplers.SAMPLERS, "mine", samplers.ddim)
    calls = []
    with pytest.raises(ConfigError, match="EVALS_PER_STEP"):
        model.sample(2, steps=3, sampler="mine", callback=calls.append)
    assert not calls
    monkeypatch.setitem(samplers.EVALS_PER_STEP, "mine", 1)
    assert model.sample(2, steps=3, sampler="mine").settings["network_evaluations"] == 4


def test_a_float64_state_runs_through_a_float32_network(model):
    """restore_items(dtype=torch.float64), documented for exact-score experiments, failed with a raw
    'mat1 and mat2 must have the same dtype' on every real model."""
    import torch

    from engine.restoration import restore_items

    items = api.reference_data("quadratic", model.training_grid, num=2).values
    result = restore_items(model, items, "impute", num_restorations=1, steps=4, dtype=torch.float64)
    assert np.isfinite(result.restored).all()


def test_a_white_prior_on_a_curve_model_names_its_kernel(model):
    with pytest.raises(ConfigError, match="Q is the squared_exponential kernel, not white.*use the hdm prior$"):
        model.sample(2, steps=3, prior="white")


def test_counts_are_integers_of_any_kind_and_images_are_in_the_unit_range(model):
    """numpy integers passed HDMModel.sample but not restore_items or time_grid ("must be a positive integer, got
    10"), and 0..255 images were restored as garbage although the image metrics refuse them."""
    import torch

    from engine.restoration import restore_items
    from engine.samplers import time_grid

    assert time_grid(model.equation_on(), np.int64(10)).shape == (11,)
    items = api.reference_data("quadratic", model.training_grid, num=2).values
    result = restore_items(model, items, "impute", num_restorations=np.int64(1), steps=np.int32(3))
    assert result.restored.shape[:2] == (2, 1)
    with pytest.raises(ConfigError, match="positive integer, got True"):
        time_grid(model.equation_on(), True)

    from engine.data import Normalizer

    class ImageModel:  # the check comes before any other use of the model
        modality = "images"
        normalizer = Normalizer.unit_range(1)

    pixels = np.full((2, 1, 8, 8), 200.0)
    with pytest.raises(DataError, match=r"values in \[0, 1\].*divide 8-bit images by 255"):
        restore_items(ImageModel(), pixels, "inpaint-mask", dtype=torch.float32)
    signed = np.linspace(-1.0, 1.0, 128).reshape(2, 1, 8, 8)  # [-1, 1] images (second review: let through)
    with pytest.raises(DataError, match=r"map \[-1, 1\] images with \(x \+ 1\) / 2"):
        restore_items(ImageModel(), signed, "inpaint-mask", dtype=torch.float32)


def test_fresh_samples_are_evaluated_without_a_file_of_the_users(model):
    """api.evaluate took only a path: a SampleResult failed with a raw TypeError."""
    result = model.sample(20, steps=3, seed=5)
    with pytest.raises(ConfigError, match="needs the model that drew it"):
        api.evaluate(result, "quadratic")
    report = api.evaluate(result, "quadratic", model=model, block_size=10, repeats=2, permutations=19,
                          balanced_sizes=(10,))
    assert report["samples"]["path"] is None and report["samples"]["unsaved"] is True
    assert report["samples"]["seeds"] == [5, 24] and report["checkpoint_sha256"] == model.sha256
    assert report["data"]["held_out"] is True and "10" in report["power"]


def test_a_float32_copy_of_the_training_grid_is_inside_the_domain():
    """Regression review M2: the domain check's slack (1e-9 of the domain) was below float32 rounding, so a model's
    own grid as float32 (torch.linspace's default) was refused as 'spans [0, 0.3] but trained on [0, 0.3]'."""
    from engine.config import RunConfig
    from engine.pipeline import FunctionDomain, ModelGeometry

    for a, b in ((0.0, 0.3), (0.0, 2 * np.pi), (-0.7, 0.3)):
        grid = np.linspace(a, b, 31)
        domain = FunctionDomain(RunConfig(), ModelGeometry(tuple(grid), 1, 0.1))
        assert domain.check(grid.astype(np.float32)).size == 31
        with pytest.raises(ConfigError, match="spans"):
            domain.check(np.linspace(a, b + 1e-4 * (b - a), 31))
