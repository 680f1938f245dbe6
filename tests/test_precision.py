"""Execution settings of training: bf16 autocast, torch.compile, and their configuration.

bf16 tolerances were measured on this suite's tiny networks (8 steps from the same seed, CPU):
the largest relative loss difference from fp32 was 2.8e-4 (FNO-1D), 3.3e-5 (UNet) and 1.4e-5
(FNO-2D; both image networks start from a zero output layer); the tests allow 2e-3.

Tests that run the compiler are skipped unless ``HDM_TEST_COMPILE=1``: a first compilation on
a fresh machine takes about a minute on 2 CPU cores (inductor builds its C++ kernels), too slow
for every CI run. The eager fallback is tested without the compiler.
"""

from __future__ import annotations

import json
import logging
import os

import numpy as np
import pytest
import torch

from engine import api
from engine.bench import bf16_agreement
from engine.cli import main as cli
from engine.config import RunConfig
from engine.errors import ConfigError
from engine.io import load_model as read_checkpoint
from engine.io import load_train_state
from engine.models.fno import FNO1d, SpectralConv1d, fourier_bases
from engine.models.fno2d import SpectralConv2d
from engine.paths import ASSETS_DIR
from engine.training import STATE_FILE, Trainer, check_precision, matmul_precision

FNO = RunConfig().replace(data={"spec": "quadratic", "n_points": 32, "num": 200},
                          model={"width": 8, "modes": 4, "layers": 1, "emb_dim": 16},
                          train={"steps": 6, "batch_size": 16, "warmup": 2, "checkpoint_every": 0})
UNET = RunConfig().replace(data={"spec": "glyphs", "num": 64, "image_size": 16},
                           model={"name": "unet", "width": 8, "channel_mult": [1, 1], "num_res_blocks": 1,
                                  "attention_levels": [1], "emb_dim": 16},
                           train={"steps": 6, "batch_size": 8, "warmup": 2})
FNO2D = RunConfig().replace(data={"spec": "glyphs", "num": 64, "image_size": 16},
                            model={"name": "fno2d", "width": 8, "modes": 4, "layers": 1, "emb_dim": 16},
                            train={"steps": 6, "batch_size": 8, "warmup": 2})
BF16_LOSS_RTOL = 2e-3

needs_compiler = pytest.mark.skipif(os.environ.get("HDM_TEST_COMPILE") != "1",
                                    reason="torch.compile tests take about a minute cold; set HDM_TEST_COMPILE=1")


# -- configuration -----------------------------------------------------------------------------

def test_execution_settings_round_trip_and_default_to_fp32_eager():
    default = RunConfig()
    assert (default.train.precision, default.train.compile) == ("fp32", False)
    cfg = RunConfig().replace(train={"precision": "bf16", "compile": True})
    again = RunConfig.from_dict(json.loads(cfg.to_json()))
    assert again == cfg and (again.train.precision, again.train.compile) == ("bf16", True)


@pytest.mark.parametrize("key,value,match", [("precision", "fp16", "unknown precision 'fp16'"),
                                             ("precision", "BF16", "unknown precision"),
                                             ("compile", "yes", "compile must be true or false"),
                                             ("compile", 1, "compile must be true or false"),
                                             ("cuda_graphs", "on", "cuda_graphs must be true or false"),
                                             ("cuda_graphs", True, "replays the compiled step: set compile too")])
def test_bad_execution_settings_are_config_errors(key, value, match):
    with pytest.raises(ConfigError, match=match):
        RunConfig().replace(train={key: value})


@pytest.mark.parametrize("name", ["mnist_hdm", "mnist_ddpm"])  # bundled before these settings existed
def test_checkpoints_without_execution_settings_still_load(name):
    from safetensors import safe_open

    path = ASSETS_DIR / "checkpoints" / f"{name}.safetensors"
    with safe_open(str(path), framework="pt") as f:
        stored = json.loads(f.metadata()["config"])
    assert "precision" not in stored["train"] and "compile" not in stored["train"]  # an old checkpoint
    model = api.load_model(name)
    assert (model.config.train.precision, model.config.train.compile) == ("fp32", False)


def test_bf16_on_a_gpu_without_it_is_a_config_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla V100")
    with pytest.raises(ConfigError, match="Tesla V100 is 7.0: use --precision fp32"):
        check_precision("bf16", torch.device("cuda", 0))
    check_precision("fp32", torch.device("cuda", 0))
    check_precision("bf16", torch.device("cpu"))  # runs on any CPU (slowly where it is emulated)


def test_tf32_is_a_cuda_mode_and_needs_ampere(monkeypatch):
    with pytest.raises(ConfigError, match="tf32 is the TF32 tensor-core mode of CUDA GPUs; on cpu use"):
        check_precision("tf32", torch.device("cpu"))
    with pytest.raises(ConfigError, match="tf32 is the TF32"):
        Trainer(FNO.replace(train={"precision": "tf32"}))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")
    with pytest.raises(ConfigError, match="tf32 needs a GPU with native tf32 .* Tesla T4 is 7.5"):
        check_precision("tf32", torch.device("cuda", 0))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    check_precision("tf32", torch.device("cuda", 0))


def test_tf32_holds_for_the_step_only(monkeypatch):
    """The TF32 matmul setting is on while the step's forward and backward run, and restored after it
    (sampling and other threads keep float32), also when the step fails."""
    assert torch.get_float32_matmul_precision() == "highest"
    with pytest.raises(RuntimeError, match="inside"), matmul_precision("tf32"):
        assert torch.get_float32_matmul_precision() == "high"
        raise RuntimeError("inside")
    assert torch.get_float32_matmul_precision() == "highest"
    with matmul_precision("fp32"):
        assert torch.get_float32_matmul_precision() == "highest"

    monkeypatch.setattr("engine.training.check_precision", lambda precision, device: None)  # as on a GPU
    trainer = Trainer(FNO.replace(train={"precision": "tf32"}))
    seen: list[str] = []
    trainer.network.register_forward_hook(lambda *_: seen.append(torch.get_float32_matmul_precision()))
    trainer.network.lift.weight.register_hook(lambda _: seen.append(torch.get_float32_matmul_precision()))
    trainer.step()
    assert seen == ["high", "high"]
    assert torch.get_float32_matmul_precision() == "highest"
    trainer.model().sample(2, steps=2, sampler="ddim")
    assert torch.get_float32_matmul_precision() == "highest"


def test_cli_flags_reach_the_checkpoint(tmp_path):
    out = tmp_path / "run"
    code = cli(["train", "--data", "quadratic", "--n-points", "32", "--num-items", "100", "--width", "8", "--modes",
                "4", "--layers", "1", "--emb-dim", "16", "--batch-size", "8", "--steps", "2", "--precision", "bf16",
                "--out", str(out), "--quiet"])
    assert code == 0
    model = api.load_model(out)
    assert model.config.train.precision == "bf16" and model.config.train.compile is False
    training = read_checkpoint(out / "model.safetensors").meta["training"]
    assert training["precision"] == "bf16" and training["compiled"] is False
    with pytest.raises(SystemExit):
        cli(["train", "--out", str(out), "--precision", "fp16"])


def test_a_resumed_run_may_change_how_it_executes(tmp_path):
    Trainer(FNO.replace(train={"steps": 2})).run(out_dir=tmp_path)
    resumed = Trainer.resume(tmp_path, steps=4, execution={"precision": "bf16"})
    assert resumed.config.train.precision == "bf16" and resumed.step_count == 2
    resumed.run(out_dir=tmp_path)
    assert resumed.step_count == 4 and all(np.isfinite(resumed.losses))
    with pytest.raises(ConfigError, match="only change precision, compile, cuda_graphs, not lr"):
        Trainer.resume(tmp_path, execution={"lr": 1.0})
    with pytest.raises(ConfigError, match="unknown precision"):
        Trainer.resume(tmp_path, execution={"precision": "fp8"})


# -- bf16 --------------------------------------------------------------------------------------

def test_spectral_layers_compute_in_fp32_under_autocast():
    torch.manual_seed(0)
    conv1 = SpectralConv1d(8, 4)
    fwd, inv = fourier_bases(torch.linspace(0, 1, 32), 4, 0.0, 32 / 31)
    fwd, inv = fwd.float(), inv.float()
    h1 = torch.randn(3, 32, 8).to(torch.bfloat16)
    conv2 = SpectralConv2d(8, 8, 4)
    h2 = torch.randn(3, 8, 12, 12).to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y1, y2 = conv1(h1, fwd, inv), conv2(h2)
        assert torch.nn.functional.linear(h1, torch.randn(8, 8)).dtype == torch.bfloat16  # autocast is on
    assert y1.dtype == torch.float32 and y2.dtype == torch.float32
    torch.testing.assert_close(y1, conv1(h1.float(), fwd, inv), rtol=0, atol=0)  # the fp32 computation
    torch.testing.assert_close(y2, conv2(h2.float()), rtol=0, atol=0)


def test_the_fno_under_autocast_stays_close_to_fp32():
    torch.manual_seed(0)
    net = FNO1d(channels=1, width=16, modes=6, layers=2, emb_dim=16)
    grid = torch.linspace(0, 1, 40)
    x, t = torch.randn(4, 1, 40), torch.rand(4)
    with torch.no_grad():
        ref = net(x, t, grid)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = net(x, t, grid)
    assert low.dtype == torch.bfloat16 and torch.isfinite(low).all()
    assert float((low.float() - ref).norm() / ref.norm()) < 0.03  # measured 0.0064


@pytest.mark.parametrize("config", [FNO, UNET, FNO2D], ids=["fno1d", "unet", "fno2d"])
def test_bf16_training_tracks_fp32(config):
    fp32, bf16 = Trainer(config), Trainer(config.replace(train={"precision": "bf16"}))
    a = np.array([fp32.step() for _ in range(4)])
    b = np.array([bf16.step() for _ in range(4)])
    assert np.isfinite(b).all()
    np.testing.assert_allclose(b, a, rtol=BF16_LOSS_RTOL)
    for p, e in zip(bf16.network.parameters(), bf16.ema.parameters(), strict=True):
        assert p.dtype == torch.float32 and e.dtype == torch.float32  # autocast, not .half()
        assert p.grad is None or p.grad.dtype == torch.float32


def test_bf16_agreement_is_far_below_the_minibatch_noise():
    trainer = Trainer(FNO)
    trainer.run()
    report = bf16_agreement(trainer, batches=2)
    assert set(report) == {"batches", "fp32_batch_to_batch_grad_rel_diff", "bf16", "bf16_spectral_bf16"}
    for variant in ("bf16", "bf16_spectral_bf16"):
        fig = report[variant]
        assert 0 < fig["loss_rel_diff"] < 0.01 and 0 < fig["grad_rel_diff"] < 0.1 and fig["grad_cosine"] > 0.99
        assert fig["grad_rel_diff"] < 0.2 * report["fp32_batch_to_batch_grad_rel_diff"]
    assert all(p.grad is None for p in trainer.network.parameters())
    assert type(SpectralConv1d.forward) is type(SpectralConv1d.mix) and SpectralConv1d.forward is not SpectralConv1d.mix


# -- torch.compile -----------------------------------------------------------------------------

def test_a_failing_compiled_step_falls_back_to_eager(caplog):
    eager = Trainer(FNO)
    trainer = Trainer(FNO.replace(train={"compile": True}))

    def broken(*args):
        raise RuntimeError("no C++ compiler found\nsecond line")

    trainer._compiled = broken  # what a machine without a working compiler does at the first step
    with caplog.at_level(logging.WARNING, logger="engine.training"):
        losses = [trainer.step() for _ in range(3)]
    assert not trainer.compiled
    assert "torch.compile failed at step 1 (RuntimeError: no C++ compiler found); training goes on in eager mode" \
        in caplog.text
    assert caplog.text.count("torch.compile failed") == 1
    assert losses == [eager.step() for _ in range(3)]  # the failed attempt left no trace


def test_compiling_fills_the_operators_caches_before_the_first_step(monkeypatch):
    """Filled inside the first compiled step, the DCT's factors and the SPDE's rates were graph outputs kept in
    caches, and the loss compiled again at step 2. A compiling Trainer fills them eagerly, without touching the
    random numbers training draws (dropout included)."""
    import engine.operators.dct as dct

    monkeypatch.setattr(dct, "_TWIDDLES", {})
    config = UNET.replace(model={"dropout": 0.2}, train={"steps": 3})
    torch.manual_seed(0)  # dropout draws from torch's global generator
    trainer = Trainer(config.replace(train={"compile": True}))
    assert (16, torch.device("cpu"), torch.float32) in dct._TWIDDLES
    assert torch.device("cpu") in trainer.equation.__dict__["_rates"]
    assert trainer.network.training
    trainer._compiled = trainer._loss  # runs the compiled path's code without a compiler
    losses = [trainer.step() for _ in range(3)]
    torch.manual_seed(0)
    eager = Trainer(config)
    assert losses == [eager.step() for _ in range(3)]


def test_cuda_graphs_that_inductor_did_not_record_are_counted(monkeypatch, caplog):
    """``reduce-overhead`` runs a step, or part of it, without a CUDA graph when inductor finds a reason to skip,
    and says so only in its logs: the skips are counted (``cudagraph_skips``, reported by ``hdm bench`` beside
    ``cuda_graphs``) and warned about once."""
    import engine.training as training

    config = FNO.replace(train={"steps": 4, "subgrid_prob": 0.0, "compile": True})
    trainer = Trainer(config)
    skips = [0]

    def graphed(*args):
        skips[0] += 1  # what inductor counts when it skips recording
        return trainer._loss(*args)

    monkeypatch.setattr(training, "_cudagraph_skips", lambda: skips[0])
    monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin", lambda: None)
    trainer._compiled, trainer._graphed = trainer._loss, graphed
    with caplog.at_level(logging.WARNING, logger="engine.training"):
        losses = [trainer.step() for _ in range(3)]
    assert trainer.cudagraph_skips == 3 and trainer.cuda_graphs
    assert caplog.text.count("did not record a CUDA graph") == 1
    eager = Trainer(config.replace(train={"compile": False}))
    assert losses == [eager.step() for _ in range(3)]


def test_the_time_embedding_is_the_same_on_every_device():
    """Its frequencies are float64 values rounded once to float32: no device's float32 exp enters (CUDA's and
    the CPU's can differ by an ulp, which 1000 t magnifies past test_cuda_matches_cpu's tolerance)."""
    import math

    from engine.models.fno import timestep_embedding

    half = 64
    freqs = np.exp(-math.log(10_000.0) * np.arange(half, dtype=np.float64) / half).astype(np.float32)
    t = torch.tensor([0.0, 0.25, 1.0])
    arg = (1000.0 * t[:, None].float()) * torch.from_numpy(freqs)[None, :]
    torch.testing.assert_close(timestep_embedding(t, 2 * half), torch.cat([arg.sin(), arg.cos()], 1), rtol=0, atol=0)


def test_cuda_graphs_need_one_process_on_a_cuda_device():
    with pytest.raises(ConfigError, match=r"needs a CUDA device and no distributed run \(here: cpu\); leave it off"):
        Trainer(FNO.replace(train={"compile": True, "cuda_graphs": True}))


def test_full_grid_steps_replay_the_graphs_and_sub_grid_steps_the_dynamic_compilation(monkeypatch):
    """The dispatch of ``cuda_graphs`` without a GPU: both compiled callables stand in for the eager loss."""
    config = FNO.replace(train={"steps": 12, "subgrid_prob": 0.5, "compile": True})
    eager = Trainer(config.replace(train={"compile": False}))
    trainer = Trainer(config)
    calls: list[tuple[str, int]] = []
    outputs: list[torch.Tensor] = []

    def recorder(name):
        def call(x0, t, e, grid):
            calls.append((name, grid.numel()))
            loss = trainer._loss(x0, t, e, grid)
            outputs.append(loss)
            return loss
        return call

    marks = []
    monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin", lambda: marks.append(len(calls)))
    trainer._compiled, trainer._graphed = recorder("dynamic"), recorder("graphed")
    losses = [trainer.step() for _ in range(12)]
    n = trainer.grid.numel()
    assert {name for name, size in calls if size == n} == {"graphed"}
    assert {name for name, size in calls if size < n} == {"dynamic"}  # this seed draws both kinds
    assert marks == [i for i, (name, _) in enumerate(calls) if name == "graphed"]  # before each replay
    assert trainer.cuda_graphs and trainer.compiled
    np.testing.assert_allclose(losses, [eager.step() for _ in range(12)], rtol=1e-6)
    trainer._graphed = recorder("graphed")
    trainer.config = trainer.config.replace(train={"subgrid_prob": 0.0})
    pending = trainer.step_async()  # what the read-out keeps must not be the graph's output (the next replay's)
    assert calls[-1][0] == "graphed" and pending.data_ptr() != outputs[-1].data_ptr()
    assert pending.item() == outputs[-1].item()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@needs_compiler
def test_cuda_graph_training_matches_compiled_training_on_a_gpu():
    config = FNO.replace(train={"steps": 16, "subgrid_prob": 0.5, "compile": True})
    compiled = Trainer(config, device="cuda")
    graphed = Trainer(config.replace(train={"cuda_graphs": True}), device="cuda")
    for _ in range(16):  # the losses are read back in a batch: copies out of the graph pool, not overwritten
        compiled.step_async()
        graphed.step_async()
    compiled.flush()
    graphed.flush()
    assert graphed.compiled and graphed.cuda_graphs
    assert graphed.cudagraph_skips == 0, "inductor recorded no CUDA graph for some steps: TORCH_LOGS=perf_hints"
    np.testing.assert_allclose(graphed.losses, compiled.losses, rtol=1e-5)
    weights = dict(graphed.network.named_parameters())
    for name, p in compiled.network.named_parameters():
        torch.testing.assert_close(weights[name], p, rtol=1e-4, atol=1e-6)


@needs_compiler
def test_compiled_training_matches_eager_and_saves_plain_weights(tmp_path):
    from torch._dynamo.utils import counters

    config = FNO.replace(train={"steps": 10, "subgrid_prob": 0.5})  # sub-grids of varying size
    eager = Trainer(config)
    eager.run()
    graphs = counters["stats"]["unique_graphs"]
    trainer = Trainer(config.replace(train={"compile": True}))
    trainer.run(out_dir=tmp_path)
    assert trainer.compiled
    assert counters["stats"]["unique_graphs"] - graphs <= 2  # a static graph, then one with a dynamic size
    np.testing.assert_allclose(trainer.losses, eager.losses, rtol=1e-4)

    checkpoint = read_checkpoint(tmp_path / "model.safetensors")
    keys = list(checkpoint.state_dict)
    state = load_train_state(tmp_path / STATE_FILE)
    for names in (keys, list(state["network"]), list(state["ema"])):
        assert names and not any("_orig_mod" in k for k in names)
    model = api.load_model(tmp_path)  # an uncompiled network
    assert (checkpoint.meta["training"]["compiled"], model.config.train.compile) == (True, True)
    grid = trainer.grid
    x, t = torch.randn(4, 1, grid.numel()), torch.rand(4)
    with torch.no_grad():
        torch.testing.assert_close(model.network(x, t, grid), trainer.ema(x, t, grid), rtol=0, atol=0)
    resumed = Trainer.resume(tmp_path, steps=12, execution={"compile": False})
    resumed.run()
    assert resumed.step_count == 12


@needs_compiler
def test_compiled_bf16_image_training_runs():
    trainer = Trainer(UNET.replace(train={"compile": True, "precision": "bf16"}))
    losses = [trainer.step() for _ in range(3)]
    assert trainer.compiled and np.isfinite(losses).all()


@needs_compiler
def test_reaching_the_recompile_limit_falls_back_to_eager_and_says_so(caplog):
    # Every Trainer compiles the same DenoisingLoss.forward; past torch's recompile limit (8 graphs a
    # process; 1 here) torch would run it eager without a word while `compiled` still read True.
    first = Trainer(FNO.replace(train={"compile": True, "subgrid_prob": 0.0}))
    second_config = FNO.replace(model={"width": 12}, train={"compile": True, "subgrid_prob": 0.0})
    eager = Trainer(second_config.replace(train={"compile": False}))
    second = Trainer(second_config)
    with torch._dynamo.config.patch(recompile_limit=1), caplog.at_level(logging.WARNING, logger="engine.training"):
        first.step()
        losses = [second.step() for _ in range(3)]
    assert not second.compiled
    assert "recompile limit (1 compiled graphs of the loss)" in caplog.text
    np.testing.assert_allclose(losses, [eager.step() for _ in range(3)], rtol=1e-6)
