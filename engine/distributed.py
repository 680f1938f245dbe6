"""Data-parallel training and sampling across processes started by ``torchrun`` (gloo on CPU, NCCL on CUDA).

Training: every rank draws the *global* batch (data indices, times, noise, sub-grid) from the
same seeded generator and keeps its contiguous slice ``[r B/W, (r+1) B/W)``. Each rank's loss is
the mean over its slice; DistributedDataParallel averages the gradients over the W ranks, so
the gradient is the mean over the global batch, exactly the one-process gradient up to the
order of floating-point sums. Gradient clipping, AdamW and the EMA then see identical
gradients on every rank, and the weights stay identical without further communication. Only
rank 0 writes checkpoints and logs; every rank can resume from them (same generator state).

Sampling: the single-process sampler splits ``num`` samples into batches of ``batch_size``
and sample k depends only on its seed (:mod:`engine.rng`). Here each rank takes a contiguous
run of *whole* batches, so every batch is computed with the same shapes and operations as in
one process, and the gathered result is bit-identical to single-process sampling.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.distributed as dist

from engine.errors import ConfigError

if TYPE_CHECKING:
    from engine.config import RunConfig
    from engine.pipeline import HDMModel, SampleResult
    from engine.training import Trainer, TrainProgress

ENV_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in a process group: ``rank`` of ``world_size``, GPU ``local_rank``."""

    rank: int
    world_size: int
    local_rank: int
    backend: str

    @property
    def is_main(self) -> bool:
        """True on rank 0, the only rank that writes files and logs."""
        return self.rank == 0

    def batch_slice(self, global_batch: int) -> slice:
        """This rank's contiguous share ``[r B/W, (r+1) B/W)`` of a global batch of ``B`` items."""
        if global_batch % self.world_size:
            raise ConfigError(f"--batch-size {global_batch} is not divisible by the {self.world_size} processes; "
                              f"use a multiple of {self.world_size}")
        share = global_batch // self.world_size
        return slice(self.rank * share, (self.rank + 1) * share)

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """The mean of a tensor over the ranks (a collective: every rank must call it)."""
        out = value.detach().clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out / self.world_size

    def barrier(self) -> None:
        """Wait for every rank (a collective)."""
        dist.barrier()


def launched_by_torchrun() -> bool:
    """True when ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` are set (torchrun and torch.distributed.run)."""
    return all(key in os.environ for key in ENV_KEYS)


def env_rank() -> int:
    """This process's global rank from the torchrun environment (0 outside torchrun)."""
    return int(os.environ.get("RANK", "0"))


def init_distributed(device: str = "cpu", command: str = "train") -> tuple[DistContext, str]:
    """Join the process group described by the torchrun environment; returns the context and this rank's device.

    On CUDA the backend is NCCL and rank r uses ``cuda:LOCAL_RANK``; on CPU it is gloo. Raises
    ConfigError outside torchrun, since the rendezvous address would be missing; its hint names the
    ``hdm`` command to launch (``train`` or ``sample``).
    """
    if not launched_by_torchrun():
        raise ConfigError("--distributed needs the torchrun environment (RANK, WORLD_SIZE, LOCAL_RANK); launch with "
                          f"`torchrun --standalone --nproc-per-node=N --no-python hdm {command} "
                          "...`")
    rank, world, local = (int(os.environ[key]) for key in ENV_KEYS)
    cuda = device.lower().startswith("cuda") or (device.lower() == "auto" and torch.cuda.is_available())
    if cuda:
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} requested but CUDA is not available here; use --device cpu")
        if local >= torch.cuda.device_count():
            raise ConfigError(f"LOCAL_RANK {local} has no GPU ({torch.cuda.device_count()} visible); lower "
                              "--nproc-per-node")
        torch.cuda.set_device(local)
        device, backend = f"cuda:{local}", "nccl"
    else:
        device, backend = "cpu", "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistContext(rank=rank, world_size=world, local_rank=local, backend=backend), device


def shutdown(*, clean: bool = True) -> None:
    """Leave the process group: after a final barrier when this rank finished its work (no rank exits while
    others still communicate), at once when it failed or was interrupted. The other ranks may then be in the
    middle of a step, where a barrier would wait for them until the group's timeout (30 minutes) or a SIGKILL:
    a SIGTERM from torchrun, which unwinds like Ctrl+C, left the launcher waiting its 30 s grace."""
    if dist.is_initialized():
        if clean:
            dist.barrier()
        dist.destroy_process_group()


def train_distributed(config: RunConfig, out_dir: str | Path, *, device: str = "cpu", resume: bool = False,
                      callback: Callable[[TrainProgress], None] | None = None,
                      readout_every: int | None = None) -> Trainer:
    """``engine.api.train`` across the torchrun processes; ``callback`` fires on rank 0 only.

    The process group is always torn down, also when training fails on this rank (without the final barrier).
    """
    from engine.training import EXECUTION, Trainer

    ctx, device = init_distributed(device, "train")
    try:
        if resume:
            trainer = Trainer.resume(out_dir, steps=config.train.steps, device=device, dist=ctx,
                                     execution={k: getattr(config.train, k) for k in EXECUTION})
        else:
            trainer = Trainer(config, device=device, dist=ctx)
        trainer.run(callback=callback if ctx.is_main else None, out_dir=out_dir, readout_every=readout_every)
    except BaseException:
        shutdown(clean=False)
        raise
    shutdown()
    return trainer


def batch_ranges(num: int, batch_size: int, world_size: int) -> list[tuple[int, int]]:
    """Per rank, the ``[start, stop)`` range of samples it draws: contiguous runs of whole batches.

    The ``ceil(num / batch_size)`` batches of the single-process sampler are dealt out in
    contiguous groups whose sizes differ by at most one batch; a rank may get none.
    """
    batches = -(-num // batch_size)
    per, extra = divmod(batches, world_size)
    out, first = [], 0
    for r in range(world_size):
        count = per + (1 if r < extra else 0)
        out.append((min(num, first * batch_size), min(num, (first + count) * batch_size)))
        first += count
    return out


def sample_distributed(model: HDMModel, num: int, ctx: DistContext, *, seeds: np.ndarray | None = None,
                       seed: int = 0, batch_size: int | None = None, **kwargs: Any) -> SampleResult:
    """``model.sample`` with the batches split over the ranks; every rank returns the full, gathered result.

    ``seeds`` defaults to ``seed, seed + 1, ...`` as in :meth:`HDMModel.sample`; the gathered
    samples equal the single-process call with the same ``batch_size`` (default: the model's,
    :meth:`HDMModel.default_batch_size`, as there) bit for bit. Trajectories are not gathered (ask for
    them in one process).
    """
    from engine.pipeline import SampleResult, as_count, sample_seeds

    if kwargs.get("trajectory_every"):
        raise ConfigError("trajectories are not gathered across processes; sample them in one process")
    num = as_count("num_samples (--num-samples)", num)
    all_seeds = sample_seeds(num, seeds, seed)
    if batch_size is not None:
        batch_size = as_count("batch_size (--batch-size)", batch_size)
    if batch_size is None:
        batch_size = min(num, model.default_batch_size(kwargs.get("grid"), kwargs.get("size")))
    start, stop = batch_ranges(num, batch_size, ctx.world_size)[ctx.rank]
    local = (model.sample(stop - start, seeds=all_seeds[start:stop], batch_size=batch_size, **kwargs)
             if stop > start else None)
    parts: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(parts, None if local is None else local.samples)
    samples = np.concatenate([p for p in parts if p is not None]).astype(np.float32)
    if local is None:  # this rank drew nothing: settings and grid come from a tiny local draw
        local = model.sample(1, seeds=all_seeds[:1], batch_size=batch_size, **kwargs)
    return SampleResult(samples=samples, grid=local.grid, seeds=all_seeds, settings=local.settings,
                        modality=local.modality, trajectory=None, trajectory_times=None)
