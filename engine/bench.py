"""``hdm bench``: training-step time, sampling time, quality per network evaluation and peak memory (JSON).

Every figure comes with its ratio to a baseline measured in the same run on the same device:

- training: the eager fp32 step read back after every step (``Trainer.step``); the variants
  run in TF32 (CUDA only; skipped elsewhere) or bf16 autocast and/or compiled (``train.precision``,
  ``train.compile``; compile time reported apart), each also reading the loss back every ``readout_every`` steps
  (``Trainer.step_async`` + ``flush``), the mode without a host synchronisation per step; with
  bf16, how far its loss and gradient lie from fp32's (:func:`bf16_agreement`);
- sampling: fp32 eager Euler-Maruyama with 1000 steps (the reference recipe), then each
  ``sampler:steps`` asked for, all in the model's default batches for the device
  (:meth:`engine.pipeline.HDMModel.default_batch_size`; the batch is reported);
- quality (with a checkpoint), for each sampler at each budget of network evaluations, next to
  the same figure of the Euler-Maruyama 1000-step baseline: for curves the two-sample power (%)
  at ``block`` vs ``block`` curves against held-out curves (lower = closer to the data), for
  images the Frechet distance in the bundled classifier's features of ``image_samples`` samples
  (500 by default, CPU-sized) against held-out images (lower = closer), for motions what
  ``hdm evaluate`` reports (two-sample power on trajectories and joint velocities, jerk, foot
  skating, bone-length error) of ``motion_samples`` clips against held-out clips.

Peak memory: ``torch.cuda.max_memory_allocated`` per section on CUDA; on CPU the process's
peak resident set (``resource.getrusage``, monotone over the run, so a section's figure is an
upper bound). Timings use ``time.perf_counter`` around ``torch.cuda.synchronize`` on CUDA.
This is a benchmark: the test suite checks its schema, never its timings.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import platform
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from engine.errors import ConfigError

BASELINE_SAMPLER = ("euler_maruyama", 1000)
SECTIONS = ("training", "sampling", "quality")
SCHEMA_VERSION = 2
TRAIN_VARIANTS: dict[str, dict[str, Any]] = {  # name: the train settings of how its steps run
    "eager_fp32": {"precision": "fp32", "compile": False},
    "eager_tf32": {"precision": "tf32", "compile": False},
    "eager_bf16": {"precision": "bf16", "compile": False},
    "compiled_fp32": {"precision": "fp32", "compile": True},
    "compiled_tf32": {"precision": "tf32", "compile": True},
    "compiled_bf16": {"precision": "bf16", "compile": True},
    "compiled_tf32_cudagraphs": {"precision": "tf32", "compile": True, "cuda_graphs": True},
}


@dataclass
class BenchOptions:
    """What ``hdm bench`` measures (defaults: the HDM paper's Quadratic reference configuration)."""

    device: str = "cpu"
    data: str = "quadratic"
    width: int = 256
    modes: int = 16
    layers: int = 4
    n_points: int = 100
    batch_size: int = 100
    train_steps: int = 30
    warmup_steps: int = 5
    readout_every: int = 10
    train_variants: tuple[str, ...] = tuple(TRAIN_VARIANTS)
    num_samples: int = 1000
    samplers: tuple[tuple[str, int], ...] = (("ddim", 25), ("exponential", 30), ("dpm2m", 20))
    baseline_steps: int = BASELINE_SAMPLER[1]
    checkpoint: str | None = None
    quality_samplers: tuple[str, ...] = ("ddim", "exponential", "dpm2m", "dpm2m_sde")
    quality_evals: tuple[int, ...] = (10, 25, 50, 100)
    quality_samples: int = 1000
    power_block: int = 100
    power_repeats: int = 30
    power_permutations: int = 1000
    image_samples: int = 500  # images: samples per FD figure (CPU-sized; FD is biased upward at small sizes)
    image_reference: int = 1000  # images: held-out images FD compares with
    motion_samples: int = 200  # motions: samples (and held-out clips, where the split has them) per figure
    motion_block: int = 10  # motions: clips per two-sample test (``hdm evaluate``'s default)
    seed: int = 0
    sections: tuple[str, ...] = SECTIONS  # which parts to run (quality needs ``checkpoint``)


def parse_samplers(text: str) -> tuple[tuple[str, int], ...]:
    """``"ddim:25,exponential:30"`` -> ``(("ddim", 25), ("exponential", 30))``."""
    from engine.samplers import SAMPLERS

    out = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, steps = item.partition(":")
        if name not in SAMPLERS or not steps.isdigit() or int(steps) < 1:
            raise ConfigError(f"--samplers: {item!r} is not NAME:STEPS with NAME one of {', '.join(SAMPLERS)}")
        out.append((name, int(steps)))
    return tuple(out)


class Clock:
    """Wall time of a section, synchronised with the device, and its peak memory (bytes)."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.device = device

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def reset_peak(self) -> None:
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)

    def peak_bytes(self) -> int:
        if self.cuda:
            return int(torch.cuda.max_memory_allocated(self.device))
        import resource

        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
        return int(rss if sys.platform == "darwin" else rss * 1024)

    def time(self, fn: Callable[[], Any]) -> float:
        self.sync()
        started = time.perf_counter()
        fn()
        self.sync()
        return time.perf_counter() - started


def environment(device: torch.device) -> dict[str, Any]:
    """Device, library versions and thread count: what the figures depend on."""
    info: dict[str, Any] = {"device": str(device), "torch": torch.__version__, "numpy": np.__version__,
                            "python": platform.python_version(), "platform": platform.platform(),
                            "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info


def _ratio(value: float, baseline: float) -> float:
    return round(value / baseline, 4) if baseline > 0 else float("nan")


def _time_steps(trainer, opts: BenchOptions, clock: Clock) -> tuple[float, float, float, float]:
    """Median seconds per step: read back after each step, and read back every ``readout_every`` steps.

    Also the median host time of a step in each: from a synchronised start until ``step_async`` returns
    (the work is queued, not necessarily done; for ``readout_every`` steps, until the last is queued, per step).
    Where it is close to the step time, the host bounds the step (a small network on a GPU); where it is far
    below, the device does. Returns ``(per_step, deferred, host, deferred_host)``.
    """
    per_step, host = [], []
    for _ in range(opts.train_steps):
        clock.sync()
        started = time.perf_counter()
        trainer.step_async()
        host.append(time.perf_counter() - started)
        trainer.flush()
        clock.sync()
        per_step.append(time.perf_counter() - started)
    k = max(1, opts.readout_every)
    deferred, deferred_host = [], []
    for _ in range(max(1, opts.train_steps // k)):
        clock.sync()
        started = time.perf_counter()
        for _ in range(k):
            trainer.step_async()
        queued = time.perf_counter()
        trainer.flush()
        clock.sync()
        deferred.append((time.perf_counter() - started) / k)
        deferred_host.append((queued - started) / k)
    return tuple(float(np.median(v)) for v in (per_step, deferred, host, deferred_host))


def bench_training(opts: BenchOptions, clock: Clock):
    """Median step time (ms) and throughput (items/s) per execution variant, against eager fp32.

    Each variant (:data:`TRAIN_VARIANTS`) is a fresh trainer with the same seed (so the same
    batches and sub-grids), timed after ``warmup_steps`` (at least 2 when compiled) read back per
    step, then read back every ``readout_every`` steps (``NAME_readout_every_K``); ``host_ms_median``
    is the host's share of a step (:func:`_time_steps`). Compiled variants report their warm-up
    separately (``compile``: its seconds, the share above the timed step time, the graphs compiled
    during the warm-up and during the timed steps, and whether the steps still ran compiled, and
    as CUDA graphs, at the end). Variants the device cannot run are listed in ``skipped`` with the
    reason; a variant other than the baseline that raises is listed in ``failed`` with the error,
    and the others still run. With a bf16 variant, ``bf16_agreement`` (:func:`bf16_agreement`)
    says what bf16 costs in accuracy, measured on the baseline's weights after its timed steps.
    Returns the section and the baseline trainer (whose model the sampling section uses).
    """
    from torch._dynamo.utils import counters

    from engine.config import RunConfig
    from engine.training import Trainer

    cfg = RunConfig().replace(data={"spec": opts.data, "n_points": opts.n_points},
                              model={"width": opts.width, "modes": opts.modes, "layers": opts.layers},
                              train={"steps": 10 ** 9, "batch_size": opts.batch_size, "seed": opts.seed})
    k = max(1, opts.readout_every)
    names = ["eager_fp32", *(v for v in opts.train_variants if v != "eager_fp32")]
    times: dict[str, float] = {}
    hosts: dict[str, float] = {}
    peaks: dict[str, int] = {}
    compiled: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    failed: dict[str, str] = {}
    baseline = None
    for name in names:
        execution = {"cuda_graphs": False, **TRAIN_VARIANTS[name]}
        try:
            trainer = Trainer(cfg.replace(train=execution), device=opts.device)
        except ConfigError as exc:  # e.g. bf16 on a GPU without it: the other variants still run
            if name == "eager_fp32":
                raise
            skipped[name] = str(exc)
            continue
        clock.reset_peak()
        graphs = counters["stats"]["unique_graphs"]
        try:
            warm = [clock.time(trainer.step) for _ in range(max(opts.warmup_steps, 2 if execution["compile"] else 0))]
            graphs_warm = counters["stats"]["unique_graphs"]
            (times[name], times[f"{name}_readout_every_{k}"], hosts[name],
             hosts[f"{name}_readout_every_{k}"]) = _time_steps(trainer, opts, clock)
        except Exception as exc:  # noqa: BLE001  (a variant's failure is a finding; the baseline's is not)
            if name == "eager_fp32":
                raise
            failed[name] = f"{type(exc).__name__}: {exc}"
            times.pop(name, None)
            del trainer
            continue
        peaks[name] = peaks[f"{name}_readout_every_{k}"] = clock.peak_bytes()
        if execution["compile"]:
            compiled[name] = {"warmup_steps": len(warm), "warmup_s": round(sum(warm), 3),
                              "compile_s": round(max(0.0, sum(warm) - len(warm) * times[name]), 3),
                              "graphs_compiled_in_warmup": graphs_warm - graphs,
                              "graphs_compiled_while_timed": counters["stats"]["unique_graphs"] - graphs_warm,
                              "compiled": trainer.compiled}
            if execution["cuda_graphs"]:  # graphs asked for, and how many inductor declined to record (0: all ran)
                compiled[name]["cuda_graphs"] = trainer.cuda_graphs
                compiled[name]["cudagraph_skips"] = trainer.cudagraph_skips
        if baseline is None:
            baseline = trainer
        else:
            del trainer
    base = times["eager_fp32"]
    resolved = baseline.config  # what the data chose: the network, and for images and motions their own size
    shape = {**({"modes": opts.modes, "layers": opts.layers} if resolved.model.name == "fno1d" else {}),
             **({"points": opts.n_points} if resolved.data.modality == "functions" else {})}
    section = {"config": {"data": opts.data, "modality": resolved.data.modality, "model": resolved.model.name,
                          "width": opts.width, **shape, "batch": opts.batch_size, "timed_steps": opts.train_steps,
                          "warmup_steps": opts.warmup_steps, "readout_every": k},
               "baseline": "eager_fp32",
               "variants": {name: {"step_ms_median": round(1000 * v, 3),
                                   "host_ms_median": round(1000 * hosts[name], 3),
                                   "items_per_s": round(opts.batch_size / v, 1),
                                   "ratio_to_baseline": _ratio(v, base),
                                   "peak_memory_bytes": peaks[name]} for name, v in times.items()},
               "compile": compiled,
               "skipped": skipped,
               "failed": failed,
               "peak_memory_bytes": max(peaks.values())}
    if any(TRAIN_VARIANTS[n]["precision"] == "bf16" for n in names if n in times):
        section["bf16_agreement"] = {"after_steps": baseline.step_count, **bf16_agreement(baseline)}
    return section, baseline


@contextlib.contextmanager
def spectral_layers_in_bf16() -> Iterator[None]:
    """Within: the FNO-1D spectral layers follow autocast (bf16 bases and mode products), for comparison.

    The shipped layers leave autocast and compute in float32; this restores what autocast alone
    would do, to measure what the float32 island buys. (The FNO-2D has no such variant: torch's
    FFTs do not take bf16.)
    """
    from engine.models.fno import SpectralConv1d

    shipped = SpectralConv1d.forward
    SpectralConv1d.forward = SpectralConv1d.mix  # type: ignore[method-assign]
    try:
        yield
    finally:
        SpectralConv1d.forward = shipped  # type: ignore[method-assign]


def bf16_agreement(trainer, batches: int = 3) -> dict[str, Any]:
    """How far bf16 autocast moves the DSM loss and its gradient from float32, on fixed batches.

    For each of ``batches`` batches drawn by ``trainer`` (its generator advances), with the
    trainer's current weights: the relative loss difference ``|L_bf16 - L_fp32| / L_fp32``, the
    relative gradient difference ``|g_bf16 - g_fp32| / |g_fp32|`` (all weights as one vector) and
    their cosine, as the mean over batches; next to the same gradient difference between two
    float32 batches (the minibatch noise SGD already lives with: bf16 is harmless when its error
    is far below it). ``bf16`` is the shipped autocast (FNO spectral layers in float32);
    ``bf16_spectral_bf16`` (FNO-1D only) lets the spectral layers run in bf16 too. Leaves the
    weights unchanged and their gradients cleared.
    """
    from engine.models.fno import SpectralConv1d
    from engine.training import DenoisingLoss

    net = trainer.network
    net.train()
    param = trainer.config.model.parameterization

    def loss_and_grad(batch, bf16: bool, spectral_bf16: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        net.zero_grad(set_to_none=True)
        with spectral_layers_in_bf16() if spectral_bf16 else contextlib.nullcontext():
            loss = DenoisingLoss(net, trainer.equation, param, bf16=bf16)(*batch)
        loss.backward()
        grad = torch.cat([p.grad.flatten() for p in net.parameters() if p.grad is not None])
        return loss.detach().double().cpu(), grad.double().cpu()

    variants = {"bf16": {"spectral_bf16": False}}
    if any(isinstance(m, SpectralConv1d) for m in net.modules()):
        variants["bf16_spectral_bf16"] = {"spectral_bf16": True}
    sums: dict[str, dict[str, float]] = {v: {"loss": 0.0, "grad": 0.0, "cos": 0.0} for v in variants}
    spread = 0.0
    previous = None
    draws = [trainer.draw_batch() for _ in range(batches + 1)]
    for i, batch in enumerate(draws):
        loss32, grad32 = loss_and_grad(batch, False)
        if previous is not None:
            spread += float((grad32 - previous).norm() / previous.norm()) / batches
        previous = grad32
        if i == batches:  # the last draw only completes the batch-to-batch spread
            break
        for name, kw in variants.items():
            loss16, grad16 = loss_and_grad(batch, True, **kw)
            sums[name]["loss"] += float((loss16 - loss32).abs() / loss32.abs()) / batches
            sums[name]["grad"] += float((grad16 - grad32).norm() / grad32.norm()) / batches
            sums[name]["cos"] += float(torch.nn.functional.cosine_similarity(grad16, grad32, dim=0)) / batches
    net.zero_grad(set_to_none=True)
    out: dict[str, Any] = {"batches": batches, "fp32_batch_to_batch_grad_rel_diff": round(spread, 5)}
    for name, v in sums.items():
        out[name] = {"loss_rel_diff": float(f"{v['loss']:.3g}"), "grad_rel_diff": float(f"{v['grad']:.3g}"),
                     "grad_cosine": round(v["cos"], 6)}
    return out


def baseline_sampler(model, steps: int) -> tuple[str, str | None]:
    """The baseline's sampler for ``model`` at ``steps``: Euler-Maruyama (the reference recipe), or the exponential
    integrator where explicit steps blow up on the model's equation (IHDM), with the reason."""
    from engine.samplers import check_explicit_stability, default_spacing, time_grid

    equation = model.equation_on()
    try:
        check_explicit_stability(equation, time_grid(equation, steps, default_spacing(BASELINE_SAMPLER[0])))
    except ConfigError as exc:
        return "exponential", f"{BASELINE_SAMPLER[0]} refused: {exc}"
    return BASELINE_SAMPLER[0], None


def bench_sampling(model, opts: BenchOptions, clock: Clock) -> dict[str, Any]:
    """Seconds to draw ``num_samples`` items per sampler and step count, with the EM-1000 baseline first
    (:func:`baseline_sampler`)."""
    name, note = baseline_sampler(model, opts.baseline_steps)
    runs = [(name, opts.baseline_steps), *opts.samplers]
    out: dict[str, Any] = {"num_samples": opts.num_samples, "baseline": f"{name}:{opts.baseline_steps}", "runs": []}
    if note:
        out["baseline_note"] = note
    base = None
    for name, steps in runs:
        model.sample(2, steps=steps, sampler=name)  # warm-up (allocations, bases; as many steps: EM needs them)
        clock.reset_peak()
        holder: dict[str, Any] = {}

        def draw(name=name, steps=steps, holder=holder) -> None:
            holder["result"] = model.sample(opts.num_samples, steps=steps, sampler=name, seed=opts.seed)

        seconds = clock.time(draw)
        base = seconds if base is None else base
        out["runs"].append({"sampler": name, "steps": steps,
                            "network_evaluations": holder["result"].settings["network_evaluations"],
                            "batch_size": holder["result"].settings["batch_size"], "seconds": round(seconds, 4),
                            "items_per_s": round(opts.num_samples / seconds, 1),
                            "ratio_to_baseline": _ratio(seconds, base), "peak_memory_bytes": clock.peak_bytes()})
    return out


def steps_for_budget(sampler: str, evaluations: int) -> int:
    """The most steps whose network evaluations (``steps * per_step + 1``) fit in ``evaluations``."""
    from engine.samplers import EVALS_PER_STEP

    return max(1, (evaluations - 1) // EVALS_PER_STEP[sampler])


def _power_metric(model, opts: BenchOptions) -> tuple[int, Callable[[np.ndarray], dict[str, Any]], dict[str, Any]]:
    """Curves: two-sample power (%) of ``quality_samples`` samples against as many held-out curves.

    Beside it, ``mmd2``: the unbiased MMD^2 of all the samples against all the held-out curves, at one
    bandwidth for every row (the held-out curves' median heuristic). Power at ``block`` vs ``block``
    rests on ``quality_samples / block`` blocks and moves by several points between repeats; MMD^2
    uses every pair. Its noise is reported too, as ``mmd2_floor``: the MMD^2 of as many curves of the
    data's own law (its training split, or fresh draws of a generated set) against the same held-out
    curves, 10 times (:func:`engine.metrics.mmd2_floor`). Rows closer than that spread do not differ;
    ``mmd2_at_floor`` says whether a row is within it (at most its mean + 2 sd). ``perfect_generator``: one
    draw of as many curves of the data's own law scored like a row (its power is what about 5 % looks like
    at this size; None where the data have no second sample).
    """
    from engine.api import perfect_generator_floor, reference_data
    from engine.metrics import mmd_power
    from engine.metrics.twosample import median_heuristic, mmd2_unbiased

    spec, grid = model.config.data.spec, np.asarray(model.geometry.grid)
    real = reference_data(spec, grid, split="test", num=opts.quality_samples).values
    if len(real) < opts.power_block:  # before the sampling: mmd_power would refuse it after
        raise ConfigError(f"--power-block {opts.power_block}: {spec} has {len(real)} held-out curves, fewer than one "
                          "block; lower --power-block")
    bandwidth = median_heuristic(real)
    floor = perfect_generator_floor(spec, grid, real, len(real), bandwidth=bandwidth, seed=opts.seed)

    def measure(samples: np.ndarray) -> dict[str, Any]:
        res = mmd_power(samples, real, block_size=opts.power_block, repeats=opts.power_repeats,
                        permutations=opts.power_permutations, seed=opts.seed)
        mmd2 = mmd2_unbiased(samples, real, bandwidth)
        return {"power": round(res.power, 2), "power_std": round(res.std, 2), "mmd2": float(f"{mmd2:.4g}"),
                "mmd2_at_floor": None if floor is None else floor.within(mmd2)}

    perfect = None  # one draw of the data's own law (seed + 2: apart from the floor's draws), scored like a row
    if floor is not None:
        pool = reference_data(spec, grid, split="train", seed=opts.seed + 2, num=opts.quality_samples).values
        if len(pool) >= len(real):
            perfect = {"curves": len(real), **measure(pool[: len(real)])}
    return opts.quality_samples, measure, {"metric": "power", "held_out": len(real), "block": opts.power_block,
                                           "mmd2_bandwidth": round(bandwidth, 6),
                                           "mmd2_floor": None if floor is None else floor.to_dict(),
                                           "perfect_generator": perfect}


def _fd_metric(model, opts: BenchOptions) -> tuple[int, Callable[[np.ndarray], dict[str, Any]], dict[str, Any]]:
    """Images: Frechet distance in the bundled classifier's features, ``image_samples`` samples vs held-out images.

    FD is biased upward at small sample sizes, so rows compare only at equal size; ``fd_real_floor``
    is the FD of as many *training* images against the same held-out set (a perfect generator's
    score at this size).
    """
    from engine.api import image_classifier
    from engine.data.select import load_dataset
    from engine.metrics.images import frechet_distance

    data = model.config.data
    held_out = load_dataset(dataclasses.replace(data, num=opts.image_reference), "test")[0].values
    train = load_dataset(dataclasses.replace(data, num=opts.image_samples), "train")[0].values
    classifier, source = image_classifier(model.config.data.spec)
    reference = classifier.features(held_out)

    def measure(samples: np.ndarray) -> dict[str, Any]:
        return {"fd": round(frechet_distance(classifier.features(np.clip(samples, 0.0, 1.0)), reference), 4)}

    info = {"metric": "fd", "held_out": len(held_out), "samples": opts.image_samples,
            "fd_real_floor": round(frechet_distance(classifier.features(train), reference), 4),
            "classifier": source,
            "note": f"FD of {opts.image_samples} samples vs {len(held_out)} held-out images in classifier "
                    "features: biased upward at small sizes, compare rows only at equal size"}
    return opts.image_samples, measure, info


def _motion_metric(model, opts: BenchOptions) -> tuple[int, Callable[[np.ndarray], dict[str, Any]], dict[str, Any]]:
    """Motions: ``hdm evaluate``'s figures of ``motion_samples`` clips against the held-out clips.

    ``power``: the two-sample power (%) on whole trajectories, ``velocity_power`` on joint velocities (lower
    is closer; about 5 % when indistinguishable), then jerk, foot skating and bone-length error
    (:func:`engine.motion.evaluate_motion_samples`). ``held_out_stats`` gives the held-out clips' own jerk,
    skating and bone error, and ``training_clips`` what as many *training* clips (real motions) score against
    the held-out ones: the floor a perfect generator reaches here (None for a BVH file or folder, its own
    held-out set).
    """
    from engine.data.select import names_a_path
    from engine.metrics.twosample import min_block_size
    from engine.motion import channels_to_positions, evaluate_motion_samples, load_motion_dataset, motion_statistics

    spec = model.config.data.spec
    fps = model.motion_fps
    frames = len(model.training_grid)
    path = names_a_path(spec)
    reference = load_motion_dataset(spec, "train" if path else "test", fps=fps, frames=frames,
                                    num=opts.motion_samples, seed=opts.seed)
    block = min(opts.motion_block, len(reference), opts.motion_samples)
    if block < (need := min_block_size()):  # before the sampling, not after it
        raise ConfigError(f"--motion-samples {opts.motion_samples} against {len(reference)} held-out clips of {spec}: "
                          f"a {block} vs {block} two-sample test can never reject; use at least {need} of each")
    skeleton, real = reference.skeleton, reference.to_positions()

    def measure(positions: np.ndarray) -> dict[str, Any]:
        """``positions`` [N, T, J, 3] (or channels [N, 3J, T], what the samplers return)."""
        if positions.ndim == 3:
            positions = channels_to_positions(positions)
        r = evaluate_motion_samples(positions, real, skeleton, fps, seed=opts.seed, block_size=block,
                                    repeats=opts.power_repeats, permutations=opts.power_permutations)
        traj, vel = r["power_trajectory"], r["power_velocity"]
        return {"power": round(traj["power"], 2), "power_std": round(traj["std"], 2),
                "velocity_power": round(vel["power"], 2),
                **{k: float(f"{v:.4g}") for k, v in r["samples"].items()}}

    training = None
    if not path:
        clips = load_motion_dataset(spec, "train", fps=fps, frames=frames, num=len(reference), seed=opts.seed + 1)
        training = {"clips": min(len(clips), len(reference)), **measure(clips.to_positions()[: len(reference)])}
    held = motion_statistics(real, skeleton, fps)
    info = {"metric": "power", "modality": "motions", "held_out": len(reference), "block": block, "fps": fps,
            "frames": frames, "held_out_stats": {k: float(f"{v:.4g}") for k, v in held.items()},
            "training_clips": training,
            "note": "power: two-sample power (%) on trajectories, velocity_power on joint velocities; jerk and "
                    "foot skating read against held_out_stats (the data's own), not as lower-is-better"}
    return opts.motion_samples, measure, info


def bench_quality(opts: BenchOptions, clock: Clock) -> dict[str, Any]:
    """Quality per sampler and network-evaluation budget, next to the Euler-Maruyama ``baseline_steps`` baseline.

    Curves: two-sample power (%) at ``power_block`` vs ``power_block`` (lower: closer to the data).
    Images: Frechet distance in classifier features (lower: closer), see :func:`_fd_metric`.
    Motions: trajectory power beside velocity power, jerk, foot skating and bone error, see :func:`_motion_metric`.
    """
    from engine.api import load_model

    model = load_model(opts.checkpoint, device=opts.device)
    if model.modality == "functions":
        num, measure, info = _power_metric(model, opts)
    elif model.modality == "images":
        num, measure, info = _fd_metric(model, opts)
    else:
        num, measure, info = _motion_metric(model, opts)
    metric = info["metric"]

    def run(name: str, steps: int) -> dict[str, Any]:
        holder: dict[str, Any] = {}

        def draw() -> None:
            holder["r"] = model.sample(num, steps=steps, sampler=name, seed=opts.seed)

        seconds = clock.time(draw)
        return {"sampler": name, "steps": steps, "network_evaluations": holder["r"].settings["network_evaluations"],
                **measure(holder["r"].samples), "seconds": round(seconds, 4)}

    name, note = baseline_sampler(model, opts.baseline_steps)
    base = run(name, opts.baseline_steps)
    if note:
        base["note"] = note
    rows = []
    for name in opts.quality_samplers:
        for budget in opts.quality_evals:
            row = run(name, steps_for_budget(name, budget))
            row["budget"] = budget
            row[f"{metric}_minus_baseline"] = round(row[metric] - base[metric], 4)
            row["time_ratio_to_baseline"] = _ratio(row["seconds"], base["seconds"])
            rows.append(row)
    return {"checkpoint": str(opts.checkpoint), "data": model.config.data.spec, **info, "baseline": base,
            "rows": rows}


def run_bench(opts: BenchOptions) -> dict[str, Any]:
    """All sections; the JSON-ready report (``schema``, ``environment``, ``training``, ``sampling``, ``quality``)."""
    from engine.device import resolve_device

    device = resolve_device(opts.device)
    opts.device = str(device)
    clock = Clock(device)
    report: dict[str, Any] = {"schema": SCHEMA_VERSION, "environment": environment(device),
                              "training": None, "sampling": None, "quality": None}
    if "training" in opts.sections or "sampling" in opts.sections:
        # sampling alone still trains the baseline briefly: its model is what the sampling section draws from
        training, trainer = bench_training(opts if "training" in opts.sections
                                           else dataclasses.replace(opts, train_variants=("eager_fp32",)), clock)
        if "training" in opts.sections:
            report["training"] = training
        if "sampling" in opts.sections:
            report["sampling"] = bench_sampling(trainer.model(), opts, clock)
    if "quality" in opts.sections and opts.checkpoint:
        report["quality"] = bench_quality(opts, clock)
    return report


def _motion_quality_table(quality: dict[str, Any]) -> str:
    """Motions: trajectory and velocity power, jerk, foot skating and bone error per sampler and budget."""
    base, held, block = quality["baseline"], quality["held_out_stats"], quality["block"]
    head = [f"motions: two-sample power at {block} vs {block} clips on trajectories and joint velocities "
            f"({quality['held_out']} held-out clips, {quality['frames']} frames at {quality['fps']:g} fps); "
            f"held-out clips' own jerk {held['jerk']:.4g}, foot skating {held['foot_skating']:.4g}, "
            f"bone error {held['bone_length_error']:.3g}"]
    train = quality.get("training_clips")
    if train:
        head.append(f"{train['clips']} training clips (real motions) score: trajectory {train['power']:.1f} %, "
                    f"velocity {train['velocity_power']:.1f} %, jerk {train['jerk']:.4g}, skating "
                    f"{train['foot_skating']:.4g}")
    cols = (f"{'sampler':15s} {'budget':>6s} {'steps':>5s} {'NFE':>5s} {'traj %':>7s} {'vel %':>6s} {'jerk':>9s} "
            f"{'skating':>8s} {'bone':>7s} {'time x':>7s}")

    def line(r: dict[str, Any], budget: str, ratio: str) -> str:
        return (f"{r['sampler']:15s} {budget:>6s} {r['steps']:5d} {r['network_evaluations']:5d} {r['power']:7.1f} "
                f"{r['velocity_power']:6.1f} {r['jerk']:9.4g} {r['foot_skating']:8.4g} {r['bone_length_error']:7.3g} "
                f"{ratio:>7s}")

    rows = [line(base, "base", "1"), *(line(r, str(r["budget"]), f"{r['time_ratio_to_baseline']:.3f}")
                                       for r in quality["rows"])]
    return "\n".join([*head, cols, *rows])


def quality_table(quality: dict[str, Any]) -> str:
    """The quality section as a text table (power, FD or the motion figures per sampler and evaluation budget)."""
    if quality.get("modality") == "motions":
        return _motion_quality_table(quality)
    base = quality["baseline"]
    if quality["metric"] == "power":
        head = (f"power at {quality['block']} vs {quality['block']} ({quality['held_out']} held-out curves); "
                f"baseline {base['sampler']}-{base['steps']}: {base['power']:.1f} % ± {base['power_std']:.1f}")
        label, fmt = "power %", "{:8.1f} {:+6.1f}"
    else:
        head = (f"FD of {quality['samples']} samples vs {quality['held_out']} held-out images (real floor "
                f"{quality['fd_real_floor']:.2f}); baseline {base['sampler']}-{base['steps']}: {base['fd']:.2f}")
        label, fmt = "FD", "{:8.2f} {:+6.2f}"
    metric = quality["metric"]
    curves = metric == "power"
    if curves:
        head += f"; MMD^2 of all samples {base['mmd2']:.2e}"
        perfect = quality.get("perfect_generator")
        if perfect:
            head += (f"\n{perfect['curves']} curves of the data's own law (a perfect generator) score "
                     f"{perfect['power']:.1f} % ± {perfect['power_std']:.1f}, MMD^2 {perfect['mmd2']:.2e}")
        floor = quality.get("mmd2_floor")
        if floor:
            head += (f"\nMMD^2 of {floor['size']} curves of the data's own law (a perfect generator), {floor['draws']} "
                     f"draws: {floor['mean']:.2e} ± {floor['std']:.2e} (from {floor['low']:.2e} to {floor['high']:.2e}"
                     f"{'' if floor['disjoint'] else '; overlapping draws: spread understated'}); "
                     f"'floor': the row's MMD^2 is at most their mean + 2 sd ({floor['bar']:.2e})")
    floor_column = curves and bool(quality.get("mmd2_floor"))
    lines = [head, f"{'sampler':15s} {'budget':>6s} {'steps':>5s} {'NFE':>5s} {label:>8s} {'diff':>6s} {'time x':>7s}"
             + (f" {'MMD^2':>9s}" if curves else "") + (f" {'floor':>5s}" if floor_column else "")]
    for r in quality["rows"]:
        lines.append(f"{r['sampler']:15s} {r['budget']:6d} {r['steps']:5d} {r['network_evaluations']:5d} "
                     + fmt.format(r[metric], r[f"{metric}_minus_baseline"]) + f" {r['time_ratio_to_baseline']:7.3f}"
                     + (f" {r['mmd2']:9.2e}" if curves else "")
                     + (f" {'yes' if r['mmd2_at_floor'] else 'no':>5s}" if floor_column else ""))
    if floor_column and quality["rows"] and all(r["mmd2_at_floor"] for r in quality["rows"]):
        lines.append(f"every row is within a perfect generator's spread at {quality['held_out']} curves: more "
                     "--quality-samples narrow it (about as 1 / their number) where rows must be told apart")
    return "\n".join(lines)


def add_bench_arguments(p: argparse.ArgumentParser) -> None:
    """The ``hdm bench`` options (including ``--json`` and ``--quiet``)."""
    d = BenchOptions()
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--data", default=d.data, help="functions dataset of the training benchmark")
    p.add_argument("--width", type=int, default=d.width, help="training benchmark: FNO channels")
    p.add_argument("--modes", type=int, default=d.modes, help="training benchmark: FNO Fourier modes")
    p.add_argument("--layers", type=int, default=d.layers, help="training benchmark: FNO layers")
    p.add_argument("--n-points", type=int, default=d.n_points, help="training benchmark: points per curve")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="training benchmark: curves per step")
    p.add_argument("--train-steps", type=int, default=d.train_steps, help="timed training steps")
    p.add_argument("--warmup-steps", type=int, default=d.warmup_steps,
                   help="untimed training steps first (compilation, caches)")
    p.add_argument("--readout-every", type=int, default=d.readout_every,
                   help="the asynchronous variants read the loss back every k steps")
    p.add_argument("--train-variants", default=",".join(d.train_variants),
                   help=f"training variants timed against eager_fp32, from {', '.join(TRAIN_VARIANTS)}")
    p.add_argument("--num-samples", type=int, default=d.num_samples, help="items per timed sampling run")
    p.add_argument("--samplers", default=",".join(f"{n}:{k}" for n, k in d.samplers),
                   help="NAME:STEPS,... timed against EM-1000")
    p.add_argument("--baseline-steps", type=int, default=d.baseline_steps,
                   help="Euler-Maruyama steps of the baseline (1000: the reference recipe)")
    p.add_argument("--checkpoint", default=None,
                   help="measure quality per evaluation budget for this model (curves: power; images: FD; motions: "
                        "power, jerk, foot skating)")
    p.add_argument("--quality-samplers", default=",".join(d.quality_samplers),
                   help="quality: the samplers compared, NAME,...")
    p.add_argument("--quality-evals", default=",".join(map(str, d.quality_evals)),
                   help="quality: network-evaluation budgets, N,... (each sampler takes the most steps that fit)")
    p.add_argument("--quality-samples", type=int, default=d.quality_samples,
                   help="quality, curves: samples (and held-out curves) per figure; at least --power-block")
    p.add_argument("--power-block", type=int, default=d.power_block,
                   help="quality, curves: block size m of the m vs m two-sample power test")
    p.add_argument("--power-repeats", type=int, default=d.power_repeats,
                   help="quality, curves and motions: power test repeats")
    p.add_argument("--power-permutations", type=int, default=d.power_permutations,
                   help="quality, curves and motions: permutations per test")
    p.add_argument("--image-samples", type=int, default=d.image_samples,
                   help="images: samples per FD figure (CPU-sized default; FD is biased upward at small sizes)")
    p.add_argument("--image-reference", type=int, default=d.image_reference, help="images: held-out images for FD")
    p.add_argument("--motion-samples", type=int, default=d.motion_samples,
                   help="motions: samples per figure, against as many held-out clips (fewer where the split has fewer)")
    p.add_argument("--motion-block", type=int, default=d.motion_block,
                   help="motions: clips per two-sample test (hdm evaluate's --block-size)")
    p.add_argument("--seed", type=int, default=0, help="seed of the benchmark's data, samples and tests")
    p.add_argument("--sections", default=",".join(SECTIONS),
                   help=f"which parts to run, from {', '.join(SECTIONS)} (quality needs --checkpoint)")
    p.add_argument("--json", default=None, metavar="PATH", help="write the report to PATH (stdout gets it too)")
    p.add_argument("--quiet", action="store_true", help="JSON only, no table")


def options_from_args(args: argparse.Namespace) -> BenchOptions:
    """Validated options from the parsed command line."""
    from engine.samplers import SAMPLERS

    for name in ("width", "modes", "layers", "n_points", "batch_size", "train_steps", "readout_every",
                 "num_samples", "baseline_steps", "quality_samples", "power_block", "image_samples",
                 "image_reference", "motion_samples"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")
    samplers = tuple(s.strip() for s in args.quality_samplers.split(",") if s.strip())
    unknown = [s for s in samplers if s not in SAMPLERS]
    if unknown:
        raise ConfigError(f"--quality-samplers: unknown {', '.join(unknown)}; choose from {', '.join(SAMPLERS)}")
    try:
        evals = tuple(int(v) for v in args.quality_evals.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"--quality-evals must be integers separated by commas, got {args.quality_evals!r}") from None
    if not evals or min(evals) < 2:
        raise ConfigError("--quality-evals: each budget must be at least 2 network evaluations")
    sections = tuple(v.strip() for v in args.sections.split(",") if v.strip())
    if not sections or set(sections) - set(SECTIONS):
        raise ConfigError(f"--sections: choose from {', '.join(SECTIONS)}, got {args.sections!r}")
    if sections == ("quality",) and not args.checkpoint:
        raise ConfigError("--sections quality measures a model: give --checkpoint")
    if args.power_repeats < 1:
        raise ConfigError(f"--power-repeats must be a positive integer, got {args.power_repeats}")
    from engine.metrics.twosample import min_block_size

    need = min_block_size(0.05)
    for flag, block, what in (("--power-block", args.power_block, "curves"), ("--motion-block", args.motion_block,
                                                                            "clips")):
        if block < need:
            raise ConfigError(f"{flag} {block}: a {block} vs {block} two-sample test can never reject at the 5% level; "
                              f"use blocks of at least {need} {what}")
    if 1.0 / (1.0 + args.power_permutations) > 0.05:
        raise ConfigError(f"--power-permutations {args.power_permutations} can never reach the 5% level: use at "
                          "least 19")
    variants = tuple(v.strip() for v in args.train_variants.split(",") if v.strip())
    unknown = [v for v in variants if v not in TRAIN_VARIANTS]
    if unknown:
        raise ConfigError(f"--train-variants: unknown {', '.join(unknown)}; choose from {', '.join(TRAIN_VARIANTS)}")
    return BenchOptions(device=args.device, data=args.data, width=args.width, modes=args.modes, layers=args.layers,
                        n_points=args.n_points, batch_size=args.batch_size, train_steps=args.train_steps,
                        warmup_steps=max(0, args.warmup_steps), readout_every=args.readout_every,
                        train_variants=variants, num_samples=args.num_samples, samplers=parse_samplers(args.samplers),
                        baseline_steps=args.baseline_steps, checkpoint=args.checkpoint, quality_samplers=samplers,
                        quality_evals=evals, quality_samples=args.quality_samples, power_block=args.power_block,
                        power_repeats=args.power_repeats, power_permutations=args.power_permutations,
                        image_samples=args.image_samples, image_reference=args.image_reference,
                        motion_samples=args.motion_samples, motion_block=args.motion_block, seed=args.seed,
                        sections=sections)


def check_quality_options(opts: BenchOptions) -> None:
    """Before any work: the quality section's sizes fit the checkpoint's modality (curves: ``quality_samples``
    samples hold at least one ``power_block`` block; it failed after the sampling, minutes in)."""
    from engine.api import resolve_checkpoint
    from engine.io import load_model

    modality = load_model(resolve_checkpoint(opts.checkpoint)).meta.get("modality", "functions")
    if modality == "functions" and opts.quality_samples < opts.power_block:
        raise ConfigError(f"--quality-samples {opts.quality_samples} is fewer than --power-block {opts.power_block}: "
                          "the power test needs at least one block of samples (and of held-out curves); raise "
                          "--quality-samples or lower --power-block")


def run_bench_command(args: argparse.Namespace) -> int:
    """``hdm bench``: print the JSON report (and the quality table unless ``--quiet``)."""
    from engine.api import dumps
    from engine.cli import check_outputs, checkpoint_inputs, path_input

    opts = options_from_args(args)
    quality = "quality" in opts.sections and opts.checkpoint
    # before the benchmark, not after it: --json can be written and is none of the inputs
    check_outputs({"--json": args.json}, {**(checkpoint_inputs(opts.checkpoint) if quality else {}),
                                     "--data": path_input(opts.data)})
    if quality:
        check_quality_options(opts)
    report = run_bench(opts)
    if report["quality"] is not None and not args.quiet:
        print(quality_table(report["quality"]), file=sys.stderr)
    text = dumps(report)
    print(text)
    if args.json:
        from pathlib import Path

        from engine.io import atomic_write_text

        atomic_write_text(Path(args.json), text + "\n")
    return 0
