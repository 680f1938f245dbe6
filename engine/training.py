"""Step-wise training for every modality: the GUI can drive it one step at a time, the CLI in a loop.

AdamW with linear warm-up then cosine decay, gradient clipping, an exponential moving
average of the weights (used for sampling), explicit generators (deterministic given the
seed on one device), and atomic checkpoints: ``model.safetensors`` (EMA weights + config +
metadata; what sampling loads) and ``train_state.pt`` (raw weights, optimiser, EMA, RNG
state and the loss curve, loaded with ``weights_only=True``), so a resumed run continues
the same loss curve.

Resolution augmentation: on a share ``subgrid_prob`` of the steps the batch is restricted to
a random subset of the grid points (at least ``subgrid_min_fraction`` of them, so uniform
coarser grids and non-uniform grids are both seen). The restriction of a draw from N(0, Q)
to a subset of points is exactly a draw from N(0, Q) on that subset (Gaussian
marginalisation), so no new eigendecomposition is needed and the target stays exact. Without
it a network trained on n = 100 points transfers well to n = 200 but measurably worse to
n = 50 (see the functions benchmark).

No host synchronisation inside a step: the loss stays on the device until it is read out
(:meth:`Trainer.flush`), after every step by :meth:`Trainer.step` and every ``readout_every``
steps by :meth:`Trainer.run` (by default :func:`default_readout_every`: 1 on a CPU, 10 on a
GPU), which is where a diverged (non-finite) loss is detected.

Data parallel (``dist``, see :mod:`engine.distributed`): every rank draws the global batch
from the shared generator and trains on its slice; gradients are averaged by
DistributedDataParallel, so the loss curve is that of one process with the same global batch.

Execution (``config.train``; neither changes the model, and a resumed run may change them):

- ``precision="tf32"`` (CUDA GPUs of compute capability 8.0 or newer only): float32 matrix products
  of the step (forward and backward) run on TF32 tensor cores: inputs rounded to a 10-bit mantissa,
  float32 range and accumulation; everything else as fp32. It is set for the step only
  (:func:`matmul_precision`) and restored after it, so sampling keeps float32. The setting is
  process-wide: work on another thread during a step would get TF32 too (the studio runs one
  compute job at a time). (cuDNN convolutions use TF32 in every mode: that is torch's own default.)
- ``precision="bf16"``: the network's forward runs under ``torch.autocast(dtype=bfloat16)``; the
  weights, their gradients, AdamW, the EMA, the perturbation and the DSM loss stay float32, and the
  spectral layers of the FNOs leave autocast (float32 FFTs and mode products). On a CUDA GPU
  without native bf16 (compute capability < 8.0) it is a ConfigError; on a CPU it runs (usually
  slower than float32: it is there for testing).
- ``compile=True``: :class:`DenoisingLoss` (network and loss, or its DDP wrapper) goes through
  ``torch.compile`` (automatic dynamic shapes, so the training sub-grids of varying size cost one
  more compilation, not one per size). If compiling is impossible here, or a compiled step fails
  where the same step in eager mode succeeds, training goes on in eager mode and a warning is
  logged (``Trainer.compiled`` then reads False). That includes torch's recompile limit (8 graphs
  per code object and process): every Trainer compiles the same ``DenoisingLoss.forward``, so a
  process (the studio) that trains a ninth architecture would otherwise run it eager without a
  word, with ``compiled`` still True. Checkpoints always hold the plain module's weights.
- ``cuda_graphs=True`` (with ``compile``, one process on a CUDA device): the steps on the full
  training grid (every image step) run a second compilation of the loss, with static shapes, in
  torch.compile's ``"reduce-overhead"`` mode, which records the forward and backward as CUDA graphs
  and then replays them: one launch per graph instead of one per kernel, for small networks whose
  step is bound by the host. Sub-grid steps (varying sizes) keep the dynamic compilation. The loss
  is copied out of the graphs' memory before the next replay overwrites it. Failures fall back to
  eager as above.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import math
import platform
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from engine.config import RunConfig
from engine.device import resolve_device
from engine.errors import Cancelled, CheckpointError, ConfigError, DataError
from engine.io.atomic import interrupts_deferred
from engine.objectives import dsm_loss, sample_times
from engine.operators import kernel_length_scale
from engine.pipeline import HDMModel, ImageGeometry, ModelGeometry, build_network, make_domain, prior_bank

if TYPE_CHECKING:
    from engine.distributed import DistContext

MODEL_FILE = "model.safetensors"
STATE_FILE = "train_state.pt"
EXECUTION = ("precision", "compile", "cuda_graphs")  # train settings that say how steps run, not what is learnt

log = logging.getLogger(__name__)


def run_files(folder: str | Path) -> list[str]:
    """The names of a run's files (``model.safetensors``, ``train_state.pt``) that ``folder`` holds."""
    return [name for name in (MODEL_FILE, STATE_FILE) if (Path(folder) / name).exists()]


@dataclass
class TrainProgress:
    """What the trainer reports after each step."""

    step: int
    total: int
    loss: float
    lr: float
    elapsed: float
    losses: list[float] = field(repr=False, default_factory=list)


def default_readout_every(device: torch.device | str) -> int:
    """Steps between loss read-outs when the caller does not say: 1 on a CPU, 10 on a GPU.

    A CPU runs the step's kernels as the host issues them, so reading the loss costs nothing and
    progress is shown per step. On a GPU a read-out waits for every queued kernel, so the host
    cannot queue the next step while the GPU runs this one; every 10 steps keeps progress live
    (a few times a second for the networks here) while the host stays ahead.
    """
    return 1 if torch.device(device).type == "cpu" else 10


def _modality_of(dataset) -> str:
    """The modality of a dataset object (images are 4D; motions carry a skeleton)."""
    if np.asarray(dataset.values).ndim == 4:
        return "images"
    return "motions" if getattr(dataset, "skeleton", None) is not None else "functions"


def lr_at(step: int, cfg) -> float:
    """Linear warm-up to ``lr`` then cosine decay to ``min_lr_ratio * lr`` at ``steps``."""
    if cfg.warmup and step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    span = max(1, cfg.steps - cfg.warmup)
    progress = min(1.0, (step - cfg.warmup) / span)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


class DenoisingLoss(torch.nn.Module):
    """The DSM loss of ``network`` (:func:`engine.objectives.dsm_loss`) as a module.

    What DDP wraps and what ``torch.compile`` compiles.

    ``forward(x0 [B, C, ...], t [B], e [B, C, ...], grid [n] or None) -> loss`` (0-d, float32).
    With ``bf16`` only the network's forward runs under bf16 autocast; its output is cast back to
    float32 before the loss, so the target, the preconditioning and the mean stay float32.
    """

    def __init__(self, network: torch.nn.Module, equation, parameterization: str, *, bf16: bool = False) -> None:
        super().__init__()
        self.network = network
        self.equation = equation
        self.parameterization = parameterization
        self.bf16 = bf16

    def forward(self, x0: torch.Tensor, t: torch.Tensor, e: torch.Tensor, grid: torch.Tensor | None = None
                ) -> torch.Tensor:
        def backbone(x: torch.Tensor, tt: torch.Tensor) -> torch.Tensor:
            with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.bf16):
                out = self.network(x, tt) if grid is None else self.network(x, tt, grid)
            return out.float()

        return dsm_loss(backbone, self.equation, x0, t, e, self.parameterization)


def make_optimizer(params: list[torch.nn.Parameter], lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW, fused (one pass over all the weights) where this torch has a fused kernel for their device.

    Otherwise the multi-tensor (``foreach``) implementation. Both are the same algorithm; torch's
    default on a CPU is a Python loop over the weights, which cost about 3 ms of host time a step
    for the FNO-1D (54 weight tensors), more than its arithmetic at small widths.
    """
    try:
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, ValueError):  # no fused kernel for this device or torch version
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, foreach=True)


def check_precision(precision: str, device: torch.device) -> None:
    """ConfigError where ``precision`` cannot run natively on ``device``.

    bf16 and tf32 need a GPU of compute capability 8.0 or newer; tf32 exists on CUDA GPUs only (a
    CPU would silently compute in fp32). bf16 runs on a CPU (slowly where it is emulated).
    """
    if precision == "tf32" and device.type != "cuda":
        raise ConfigError(f"--precision tf32 is the TF32 tensor-core mode of CUDA GPUs; on {device.type} "
                          "use --precision fp32 (or bf16)")
    if precision in ("bf16", "tf32") and device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        if major < 8:
            raise ConfigError(f"--precision {precision} needs a GPU with native {precision} (compute capability 8.0 "
                              f"or newer); {torch.cuda.get_device_name(device)} is {major}.{minor}: "
                              "use --precision fp32")


@contextlib.contextmanager
def matmul_precision(precision: str) -> Iterator[None]:
    """Within: float32 matmuls in TF32 when ``precision == "tf32"`` (torch's ``"high"``); restored after."""
    if precision != "tf32":
        yield
        return
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)


def _cudagraph_skips() -> int:
    """How many times inductor has run a ``reduce-overhead`` graph without recording a CUDA graph in this process."""
    from torch._dynamo.utils import counters

    return int(counters["inductor"]["cudagraph_skips"])


def _loud_recompile_limit() -> contextlib.AbstractContextManager[None]:
    """Within: reaching torch's recompile limit raises (FailOnRecompileLimitHit) instead of silently running eager.

    Scoped to the compiled call, so other compiled code of the process keeps torch's default.
    A no-op where this torch has no such setting.
    """
    config = torch._dynamo.config
    if not hasattr(config, "fail_on_recompile_limit_hit"):
        return contextlib.nullcontext()
    return config.patch(fail_on_recompile_limit_hit=True)


def resume_conflicts(requested: RunConfig, stored: RunConfig) -> list[str]:
    """The settings ``requested`` gives another value than both the default and the run's ``stored`` one
    (``section.key: asked X, the run has Y``), except ``train.steps`` and :data:`EXECUTION`, which a resumed run may
    change, and ``data.spec``: where the data are, checked by their SHA-256 (:meth:`Trainer.resume`)."""
    default = RunConfig().to_dict()
    asked, has = requested.to_dict(), stored.to_dict()
    out = []
    for section, values in asked.items():
        for key, value in values.items():
            if section == "train" and key in ("steps", *EXECUTION):
                continue
            run_value = has.get(section, {}).get(key)
            if (section, key) == ("data", "spec"):  # where the data are: checked by their SHA-256 (_asked_data)
                continue
            if value != default[section].get(key) and value != run_value:
                out.append(f"{section}.{key}: asked {value!r}, the run has {run_value!r}")
    return out


def _asked_data(requested: RunConfig | None, stored: RunConfig) -> str | None:
    """The data spec ``requested`` gives for a resumed run, where it is neither the default nor the run's own
    (nor the run's file by another name): the run's data at another place, to be checked by their SHA-256."""
    from engine.io import same_file

    if requested is None:
        return None
    asked, has = str(requested.data.spec), str(stored.data.spec)
    if asked in (RunConfig().data.spec, has):
        return None
    pa, pb = Path(asked).expanduser(), Path(has).expanduser()
    if pa.exists() and pb.exists() and same_file(pa, pb):
        return None
    return asked


class Trainer:
    """Denoising score matching on a dataset of functions, motions or images.

    Args:
        config: the run configuration (validated here; ``auto`` settings resolved for the data).
        dataset: a FunctionDataset, MotionDataset or ImageDataset; loaded from ``config.data`` when omitted.
            One that ``config.data.spec`` does not name (an array of the caller's,
            :func:`engine.data.loaders.array_dataset`) is recorded as ``in-memory:NAME``; every run records
            the SHA-256 of its data (:func:`engine.data.dataset.data_sha256`), and a resumed run must get the same.
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``.
        dist: the process group of a data-parallel run (:mod:`engine.distributed`); None for one process.
    """

    def __init__(self, config: RunConfig, dataset=None, device: str = "cpu", *,
                 dist: DistContext | None = None) -> None:
        from engine.config import IN_MEMORY_PREFIX
        from engine.data import Normalizer
        from engine.data.dataset import data_sha256
        from engine.data.select import load_dataset, loaded_from, names_a_path, names_dataset

        config.validate()
        self.device = resolve_device(device)
        if dataset is None:
            dataset, modality = load_dataset(config.data, "train")
            if names_a_path(config.data.spec):  # recorded as a path naming the data from any folder (not a name)
                config = config.replace(data={"spec": str(Path(str(config.data.spec)).expanduser().resolve())})
        else:
            modality = _modality_of(dataset)
            read = loaded_from(dataset)
            if read is not None:  # what load_dataset read them from describes them: split, size, seed and all
                config = config.replace(data=dataclasses.asdict(read))
            elif not names_dataset(config.data.spec, dataset):  # the config would name other data than these
                config = config.replace(data={"spec": f"{IN_MEMORY_PREFIX}{dataset.name}"})
            if names_a_path(config.data.spec):
                config = config.replace(data={"spec": str(Path(str(config.data.spec)).expanduser().resolve())})
        self.data_sha256 = data_sha256(dataset)
        if len(dataset) < 2:
            raise DataError(f"{dataset.name}: training needs at least 2 items, got {len(dataset)}")
        config = config.resolve(modality)
        self.extra_meta: dict[str, Any] = {}
        if modality == "images":
            self.config = config
            _, C, H, W = dataset.values.shape
            self.geometry: ModelGeometry | ImageGeometry = ImageGeometry(H, W, C)
            self.normalizer = Normalizer.unit_range(C)
        else:
            length_scale = config.noise.length_scale or kernel_length_scale(
                config.noise.kernel, float(dataset.default_length_scale), config.noise.period)
            self.config = config.replace(noise={"length_scale": length_scale})
            self.geometry = ModelGeometry(tuple(float(v) for v in dataset.grid), int(dataset.values.shape[1]),
                                          length_scale)
            self.normalizer = Normalizer.fit(dataset.values, cap=self.config.data.channel_scale == "capped")
            if modality == "motions":  # what sampling needs to turn channels back into skeleton motions
                self.extra_meta = {"motion": {"skeleton": dataset.skeleton.to_dict(), "fps": float(dataset.fps)}}
        self.modality = modality
        self.dataset = dataset
        self.domain = make_domain(self.config, self.geometry)
        self.data = torch.as_tensor(self.normalizer.normalize(dataset.values), dtype=torch.float32,
                                    device=self.device)
        self.equation = self.domain.equation(self.domain.default())
        self.grid = (torch.as_tensor(dataset.grid, dtype=torch.float32, device=self.device)
                     if modality != "images" else None)
        self.tensors = prior_bank(self.equation, self.data.cpu(), seed=config.train.seed) \
            if modality == "images" else {}

        tc = self.config.train
        if tc.batch_size >= 2 * len(dataset) and (dist is None or dist.is_main):
            # allowed: items are drawn with replacement, each time with new noise and time; but the step's
            # cost grows with the batch, and a batch of many copies of the data is rarely what was meant
            times = tc.batch_size / len(dataset)
            log.warning("batch %d is %.0f times the %d items of %s: items are drawn with replacement, so a step "
                        "uses each about %.0f times (with other noise) and costs as much as %.0f passes over the data; "
                        "a batch of at most %d makes steps far cheaper", tc.batch_size, times, len(dataset),
                        dataset.name, times, times, len(dataset))
        if self.config.model.parameterization == "noise" and self.config.equation.name in ("hdm_spde", "ihdm") \
                and (dist is None or dist.is_main):
            log.warning("parameterization 'noise' on %s: samplers estimate x0 = (x_t - s e_hat) / m per DCT mode, "
                        "and m_k(t) falls to 1e-43 (0 for ihdm at T) in the high modes, so the network's error is "
                        "multiplied by up to 3000 there (modes further down are set to the data mean); the default "
                        "'v' predicts x0 without dividing by m", self.config.equation.name)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(tc.seed)
            self.network = build_network(self.config, self.geometry).to(self.device)
        self.ema = copy.deepcopy(self.network).eval().requires_grad_(False)
        self.dist = dist
        self._slice = dist.batch_slice(tc.batch_size) if dist is not None else slice(None)
        check_precision(tc.precision, self.device)
        self._loss: torch.nn.Module = DenoisingLoss(self.network, self.equation, self.config.model.parameterization,
                                                    bf16=tc.precision == "bf16")
        if tc.compile:
            self._warm_caches()
        if dist is not None:  # averages the gradients over the ranks during backward()
            from torch.nn.parallel import DistributedDataParallel

            self._loss = DistributedDataParallel(
                self._loss, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if tc.cuda_graphs and (self.device.type != "cuda" or dist is not None):
            raise ConfigError("cuda_graphs replays CUDA graphs of one process: it needs a CUDA device and no "
                              f"distributed run (here: {self.device}{', distributed' if dist else ''}); leave it off")
        self._compiled: Callable[..., torch.Tensor] | None = None
        self._graphed: Callable[..., torch.Tensor] | None = None  # full-grid steps, as CUDA graphs
        # graphs inductor declined to record in this run's graphed steps (a process-wide counter read around each
        # step: another thread's compilation in that window would be counted too)
        self.cudagraph_skips = 0
        if tc.compile:
            if torch._dynamo.is_dynamo_supported():
                self._compiled = torch.compile(self._loss)
                if tc.cuda_graphs:
                    self._graphed = torch.compile(self._loss, mode="reduce-overhead", dynamic=False)
            else:
                log.warning("torch.compile is not supported here (Python %s, torch %s): training in eager mode",
                            platform.python_version(), torch.__version__)
        # Parameter lists built once: walking the module tree for them every step cost about 1 ms of host time.
        self._params = list(self.network.parameters())
        self._ema_params = list(self.ema.parameters())
        self.optimizer = make_optimizer(self._params, tc.lr, tc.weight_decay)
        self.generator = torch.Generator().manual_seed(tc.seed + 1)
        self.step_count = 0
        self.losses: list[float] = []
        self._pending: list[torch.Tensor] = []  # losses of steps not read out yet (on the device)
        self.elapsed = 0.0
        self.saved_dirs: set[Path] = set()  # folders (resolved) holding this run's checkpoint: see check_save_folder
        # (step, model file, its SHA-256 once asked for) of the last save: the file model() names
        self._saved: tuple[int, Path, str | None] | None = None
        # how the run was trained, a segment per start or resume: enough to repeat a resumed run
        self.history: list[dict[str, Any]] = [self._segment(0)]

    def _warm_caches(self) -> None:
        """One eager evaluation of the loss on a batch of zeros, before it is compiled.

        The operators cache what they derive per device (the DCT's factors, the SPDE's mode rates, Q's
        square root). Filled inside the first compiled step, those caches held the graph's outputs, and the
        loss was compiled again at step 2 (its guard saw the cache filled), which spent one of torch's 8
        recompilations per image run. Drawn with a generator of its own and in eval mode (no dropout draws):
        training's random numbers are unchanged.
        """
        x = torch.zeros((1, *self.data.shape[1:]), device=self.device)
        t = sample_times(1, self.equation, torch.Generator().manual_seed(0), self.device)
        self.network.eval()
        try:
            with torch.no_grad(), matmul_precision(self.config.train.precision):
                self._loss(x, t, x, self.grid)
        finally:
            self.network.train()

    # -- one step --------------------------------------------------------------------------
    def _subgrid(self) -> torch.Tensor | None:
        """Sorted indices of a random sub-grid for this step, or None for the full grid (always for images)."""
        tc = self.config.train
        if self.grid is None:
            return None
        n = self.grid.numel()
        if tc.subgrid_prob <= 0 or torch.rand((), generator=self.generator) >= tc.subgrid_prob:
            return None
        low = max(2, int(np.ceil(tc.subgrid_min_fraction * n)))
        k = int(torch.randint(low, n + 1, (), generator=self.generator))
        return torch.sort(torch.randperm(n, generator=self.generator)[:k]).values

    def step(self) -> float:
        """One optimisation step; returns the (global) batch loss."""
        self.step_async()
        self.flush()
        return self.losses[-1]

    def step_async(self) -> torch.Tensor:
        """One optimisation step without reading the loss back: returns it as a 0-d device tensor.

        The global batch (indices, times, noise ``z ~ N(0, I)``, sub-grid) is drawn on the CPU
        from ``self.generator``, identically on every rank; this rank keeps its slice. The loss
        joins the pending read-out (:meth:`flush`), averaged over the ranks when distributed.
        """
        tc = self.config.train
        started = time.perf_counter()
        if not self.network.training:  # train() walks every module: only when something switched it off
            self.network.train()
        x0, t, e, grid = self.draw_batch()
        lr = lr_at(self.step_count, tc)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        loss = self._backward(x0, t, e, grid)
        torch.nn.utils.clip_grad_norm_(self._params, tc.grad_clip)
        self.optimizer.step()
        self._update_ema()
        self.step_count += 1
        value = loss.detach() if self.dist is None else self.dist.mean(loss)
        self._pending.append(value)
        self.elapsed += time.perf_counter() - started
        return value

    def draw_batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """This rank's share of the next global batch: ``(x0, t, e, grid)`` on the device.

        Clean items ``x0`` [b, C, ...], times ``t`` [b], coloured noise ``e ~ N(0, Q)`` like ``x0``,
        and the grid [n] they lie on (a random sub-grid on some steps; None for images). Advances
        ``self.generator``.

        On a GPU the draws go through pinned host memory and are copied without waiting: a copy
        from ordinary (pageable) memory, or a blocking one, first waits for every kernel already
        queued, so each step would wait for the previous one to finish before queueing its own.
        """
        tc = self.config.train
        idx = torch.randint(len(self.data), (tc.batch_size,), generator=self.generator)
        t = sample_times(tc.batch_size, self.equation, self.generator, law=tc.time_law)
        z = torch.randn((tc.batch_size, *self.data.shape[1:]), generator=self.generator)
        sub = self._subgrid()
        x0 = self.data[self._to_device(idx[self._slice])]
        t = self._to_device(t[self._slice])
        e = self.equation.Q.sqrt_apply(self._to_device(z[self._slice]))
        grid = self.grid
        if sub is not None:  # N(0, Q) restricted to a subset of points is N(0, Q) there
            sub = self._to_device(sub)
            x0, e, grid = x0[..., sub], e[..., sub], self.grid[sub]
        return x0, t, e, grid

    def _to_device(self, host: torch.Tensor) -> torch.Tensor:
        """A CPU tensor on the training device, without a host synchronisation on CUDA.

        The pinned copy comes from torch's caching host allocator, which does not hand the block
        out again before the copy from it has run.
        """
        if self.device.type != "cuda":
            return host.to(self.device)
        return host.pin_memory().to(self.device, non_blocking=True)

    @property
    def compiled(self) -> bool:
        """Whether the steps run compiled (False when ``compile`` is off or fell back to eager)."""
        return self._compiled is not None

    @property
    def cuda_graphs(self) -> bool:
        """Whether the full-grid steps replay CUDA graphs (False when off or fallen back to eager)."""
        return self._graphed is not None

    def _backward(self, x0: torch.Tensor, t: torch.Tensor, e: torch.Tensor, grid: torch.Tensor | None
                  ) -> torch.Tensor:
        """The batch loss, with the gradients of the weights accumulated from zero.

        A compiled step that fails is run again in eager mode; if that succeeds, the compiler was
        at fault: a warning is logged and the following steps stay eager. (If eager fails too,
        its error is the one raised.)
        """
        self.optimizer.zero_grad(set_to_none=True)
        precision = self.config.train.precision
        if self._compiled is not None:
            graphed = self._graphed is not None and (grid is None or grid.numel() == self.grid.numel())
            try:
                with matmul_precision(precision), _loud_recompile_limit():
                    if graphed:
                        skips = _cudagraph_skips()
                        torch.compiler.cudagraph_mark_step_begin()  # the previous step's outputs are dead
                        loss = self._graphed(x0, t, e, grid)
                        loss.backward()
                        skipped = _cudagraph_skips() - skips
                        if skipped > 0:  # inductor ran (part of) the step without a CUDA graph and says so in
                            # its logs only: counted, so `cudagraph_skips` tells whether the graphs claimed ran
                            if not self.cudagraph_skips:
                                log.warning("torch.compile did not record a CUDA graph for (part of) the step "
                                            "(TORCH_LOGS=perf_hints says why); those parts run without graphs")
                            self.cudagraph_skips += skipped
                        return loss.detach().clone()  # the next replay overwrites the graph's output
                    loss = self._compiled(x0, t, e, grid)
                    loss.backward()
                return loss
            except Exception as exc:  # noqa: BLE001  (decided below: eager either succeeds or raises)
                self.optimizer.zero_grad(set_to_none=True)
                failure = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        with matmul_precision(precision):
            loss = self._loss(x0, t, e, grid)
            loss.backward()
        if self._compiled is not None:
            if failure.startswith("FailOnRecompileLimitHit"):
                failure = (f"this process reached torch's recompile limit "
                           f"({torch._dynamo.config.recompile_limit} compiled graphs of the loss); "
                           "a new process compiles again")
            log.warning("torch.compile failed at step %d (%s); training goes on in eager mode",
                        self.step_count + 1, failure)
            self._compiled = self._graphed = None
        return loss

    def flush(self) -> list[float]:
        """Read the pending losses back to the host (one synchronisation) and append them to ``losses``.

        Returns the losses read. Raises DataError at the first non-finite one (training diverged).
        """
        if not self._pending:
            return []
        started = time.perf_counter()
        values = torch.stack(self._pending).cpu().tolist()
        first = self.step_count - len(values) + 1
        self._pending.clear()
        self.elapsed += time.perf_counter() - started
        for i, value in enumerate(values):
            if not math.isfinite(value):
                raise DataError(f"training diverged at step {first + i} (loss {value}); "
                                "lower --lr or check the data for extreme values")
        self.losses.extend(values)
        return values

    @torch.no_grad()
    def _update_ema(self) -> None:
        decay = min(self.config.train.ema_decay, (1 + self.step_count) / (10 + self.step_count))
        torch._foreach_lerp_(self._ema_params, self._params, 1 - decay)

    def run(self, *, callback: Callable[[TrainProgress], None] | None = None,
            should_stop: Callable[[], bool] | None = None, out_dir: str | Path | None = None,
            readout_every: int | None = None) -> None:
        """Train until ``config.train.steps``; checkpoint every ``checkpoint_every`` steps and at the end.

        Losses are read back every ``readout_every`` steps (1: after each step; larger values
        keep the GPU busy; None: :func:`default_readout_every` of the device); ``callback`` then
        fires once per step read, in order, and ``should_stop`` is polled at read-outs. In a
        distributed run ``should_stop`` must answer the same on every rank.

        Stopped by ``should_stop``, Ctrl+C or SIGTERM (the CLI turns it into a ``KeyboardInterrupt``), the
        run is saved to ``out_dir`` at the last whole step before the exception goes on, so ``--resume``
        continues it (it saved nothing before the first periodic checkpoint, 500 steps by default). On the
        main thread an interrupt waits for the step under way to end.
        """
        tc = self.config.train
        readout_every = max(1, int(readout_every or default_readout_every(self.device)))
        start = self.step_count
        try:
            with interrupts_deferred() as deliver:  # between steps only: a saved state is one step's, whole
                while self.step_count < tc.steps:
                    if should_stop is not None and should_stop():
                        if out_dir is not None:
                            self.save(out_dir)
                        raise Cancelled(f"training cancelled at step {self.step_count}", partial=self)
                    for _ in range(min(readout_every, tc.steps - self.step_count)):
                        self.step_async()
                        deliver()
                        if out_dir is not None and tc.checkpoint_every and self.step_count % tc.checkpoint_every == 0:
                            self._report(self.flush(), callback)
                            self.save(out_dir)
                    self._report(self.flush(), callback)
        except KeyboardInterrupt:
            if out_dir is not None and self.step_count > start:
                try:  # the steps saved are the steps reported (the progress file, the studio's status)
                    self._report(self.flush(), callback)
                except Exception:  # noqa: BLE001 - a diverged loss or a failing callback: save what there is
                    pass
                self.save(out_dir, wait=False)  # no barrier: the other ranks may be gone already
            raise
        if out_dir is not None:
            self.save(out_dir)

    def _report(self, values: list[float], callback: Callable[[TrainProgress], None] | None) -> None:
        """Call ``callback`` for each of the steps whose losses were just read out."""
        if callback is None:
            return
        tc = self.config.train
        for i, loss in enumerate(values):
            step = self.step_count - len(values) + 1 + i
            callback(TrainProgress(step, tc.steps, loss, lr_at(step - 1, tc), self.elapsed, self.losses))

    # -- results and persistence -----------------------------------------------------------
    def model(self) -> HDMModel:
        """The EMA model, ready to sample (shares no parameters with the trainer)."""
        return self._ema_model(copy.deepcopy(self.ema).eval(), named=True)

    def _ema_model(self, network: torch.nn.Module | None = None, *, named: bool = False) -> HDMModel:
        """An HDMModel around ``network`` (default: the live EMA itself, for saving without a copy); ``named``:
        its ``source`` and ``sha256`` are those of :meth:`saved_file` (sample files then record them)."""
        source, sha256 = self.saved_file() if named else ("", "")
        return HDMModel(self.config, self.geometry, self.normalizer.to_dict(), self.ema if network is None else network,
                        source=source, sha256=sha256, tensors=self.tensors, extra_meta=self.extra_meta)

    def saved_file(self) -> tuple[str, str]:
        """``(path, SHA-256)`` of the checkpoint file holding the weights now (the run was saved at this step),
        else ``("", "")``: a model no file holds. The file is hashed when first asked for, not at every save."""
        if self._saved is None or self._saved[0] != self.step_count:
            return "", ""
        step, path, sha256 = self._saved
        if sha256 is None:
            from engine.io import file_sha256

            sha256 = file_sha256(path)
            self._saved = (step, path, sha256)
        return str(path), sha256

    def save(self, out_dir: str | Path, *, wait: bool = True) -> Path:
        """Write ``model.safetensors`` and ``train_state.pt`` atomically; returns the model path.

        Distributed: rank 0 writes, and every rank waits until the files are complete (unless ``wait`` is
        False: an interrupted run, whose other ranks may be gone).
        """
        from engine.io import save_model, save_train_state

        self.flush()
        out = Path(out_dir)
        if self.dist is not None and not self.dist.is_main:
            if wait:
                self.dist.barrier()
            return out / MODEL_FILE
        out.mkdir(parents=True, exist_ok=True)
        self.saved_dirs.add(out.resolve())
        meta = self.model_metadata()
        with interrupts_deferred():  # Ctrl+C or SIGTERM waits until both files are at this step
            path = save_model(out / MODEL_FILE, self._ema_model().state_tensors(), config=self.config.to_dict(),
                              meta=meta)
            save_train_state(out / STATE_FILE, {
                "step": self.step_count,
                "network": {k: v.detach().cpu() for k, v in self.network.state_dict().items()},
                "ema": {k: v.detach().cpu() for k, v in self.ema.state_dict().items()},
                "optimizer": self.optimizer.state_dict(),
                "generator": self.generator.get_state(),
                "losses": torch.tensor(self.losses, dtype=torch.float64),
                "elapsed": self.elapsed,
                "config": self.config.to_json(),
                "data_sha256": self.data_sha256,
                "history": self.history,
            })
        model_path = Path(path) if path is not None else out / MODEL_FILE
        self._saved = (self.step_count, model_path.resolve(), None)
        if self.dist is not None and wait:
            self.dist.barrier()
        return model_path

    def check_save_folder(self, out_dir: str | Path) -> None:
        """ConfigError when :meth:`save` into ``out_dir`` would replace another run's checkpoint.

        :meth:`save` writes unconditionally (checkpoints during a run update its own files); a caller that
        lets a user pick the folder asks here first, as ``hdm train --out`` refuses a folder holding a run.
        A folder this run was saved to or resumed from holds its own checkpoint: saving again updates it.
        """
        out = Path(out_dir).expanduser()
        if out.resolve() in self.saved_dirs:
            return
        existing = run_files(out)
        if existing:
            raise ConfigError(f"{out} already holds another run ({', '.join(existing)}), which saving would "
                              "replace: choose an empty or new folder")

    def model_metadata(self) -> dict[str, Any]:
        meta = self._ema_model().metadata()
        meta["training"] = {"step": self.step_count, "dataset": self.dataset.name,
                            "dataset_source": self.dataset.source, "dataset_sha256": self.data_sha256,
                            "num_items": len(self.dataset),
                            "final_loss": float(np.mean(self.losses[-50:])) if self.losses else None,
                            "elapsed_s": round(self.elapsed, 3), "precision": self.config.train.precision,
                            "compiled": self.compiled, "cuda_graphs": self.cuda_graphs,
                            "resumed": len(self.history) > 1, "history": self.history}
        return meta

    def _segment(self, start: int) -> dict[str, Any]:
        """One start or resume of this run, for :attr:`history`: from which step, to which total (the learning
        rate's schedule spans it), how the steps ran, where, when, with which software."""
        from datetime import UTC, datetime

        from engine.io.samples import software_versions

        device = str(self.device)
        if self.device.type == "cuda":
            device += f" ({torch.cuda.get_device_name(self.device)})"
        return {"from_step": start, "steps": self.config.train.steps, "data": self.config.data.spec,
                **{key: getattr(self.config.train, key) for key in EXECUTION},
                "device": device, "processes": 1 if self.dist is None else self.dist.world_size,
                "started": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "versions": software_versions()}

    @classmethod
    def resume(cls, out_dir: str | Path, *, steps: int | None = None, device: str = "cpu",
               dataset=None, dist: DistContext | None = None, execution: dict[str, Any] | None = None,
               requested: RunConfig | None = None, data_spec: str | None = None,
               continue_run: bool = True) -> Trainer:
        """Continue a run from ``out_dir/train_state.pt`` (optionally to a new total of steps, on ``dist``).

        ``execution`` replaces how the steps run, e.g. ``{"precision": "bf16", "compile": True}``
        (keys :data:`EXECUTION` only: they do not change the model). ``dataset``: the run's data when no name
        or file holds them (an ``in-memory:`` run); the data must be the run's own (same SHA-256).
        ``requested``: the configuration the caller asked for; a setting it gives another value than the
        default and the run's is refused (it would be ignored), as ``hdm train --resume`` refuses typed options;
        its data spec, like ``data_spec``, says where the run's data are now (a moved file): accepted when they
        are the run's (same SHA-256). ``continue_run=False`` loads the run as it is (the studio reading a run
        its child process trained): no segment is added to :attr:`history`, and its model names the run's file.

        Raises ConfigError for ``steps`` fewer than the run has trained, other data, or a requested setting
        the run does not have; the segment of the resume is added to :attr:`history`.
        """
        import json

        from engine.config import IN_MEMORY_PREFIX
        from engine.io import load_train_state

        unknown = set(execution or {}) - set(EXECUTION)
        if unknown:
            raise ConfigError(f"a resumed run can only change {', '.join(EXECUTION)}, not {', '.join(sorted(unknown))}")
        RunConfig().replace(train=dict(execution or {}))  # bad values: a ConfigError here, not a CheckpointError
        state = load_train_state(Path(out_dir) / STATE_FILE)
        try:
            config = RunConfig.from_dict(json.loads(state["config"]), stored=True)
            done = int(state["step"])
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            raise CheckpointError(f"{Path(out_dir) / STATE_FILE}: cannot resume from it ({exc})") from None
        if steps is not None and steps < done:
            raise ConfigError(f"steps {steps}: the run in {out_dir} has trained {done} steps already; give at least "
                              f"{done} (more continues it)")
        if requested is not None and (conflicts := resume_conflicts(requested, config)):
            raise ConfigError(f"the run in {out_dir} was trained with other settings than those asked for "
                              f"({'; '.join(conflicts)}): a resumed run keeps its own; leave them at their defaults "
                              "or start a new run in another folder")
        if steps is not None:
            config = config.replace(train={"steps": steps})
        if execution:
            config = config.replace(train=dict(execution))
        moved = data_spec if data_spec is not None else _asked_data(requested, config)
        if moved is not None and dataset is None:  # the run's data, elsewhere now: checked by their SHA-256 below
            if state.get("data_sha256") is None:
                raise ConfigError(f"the run in {out_dir} recorded no digest of its data (it was trained before runs "
                                  f"did), so data at {moved} cannot be checked to be its own: put them back at "
                                  f"{config.data.spec}, or resume without naming the data")
            config = config.replace(data={"spec": str(moved)})
        try:
            trainer = cls(config, dataset=dataset, device=device, dist=dist)  # its own errors say what is wrong
        except DataError as exc:
            from engine.data.select import is_dataset_name

            if moved is not None or dataset is not None or is_dataset_name(config.data.spec) \
                    or str(config.data.spec).startswith(IN_MEMORY_PREFIX):
                raise
            raise DataError(f"{exc} (if the run's data moved, name their new place: hdm train --resume --data "
                            "NEWPATH, or data_spec= in Python; they must be the same data)") from None
        stored_data = state.get("data_sha256")
        if stored_data is not None and stored_data != trainer.data_sha256:
            given = f"the data given ({trainer.dataset.name})" if dataset is not None else \
                f"{config.data.spec} as loaded now"
            raise ConfigError(f"{given} differ from the data the run in {out_dir} was trained on (SHA-256 "
                              f"{trainer.data_sha256[:12]}... against {stored_data[:12]}...): resuming would train on "
                              "other data; pass the run's own data, unchanged")
        try:
            trainer.history = [*state.get("history", [{"from_step": 0, "recorded": False}])]
            if continue_run:
                trainer.history.append(trainer._segment(done))
            trainer.network.load_state_dict(state["network"])
            trainer.ema.load_state_dict(state["ema"])
            trainer.optimizer.load_state_dict(state["optimizer"])
            trainer.generator.set_state(state["generator"])
            trainer.step_count = done
            trainer.losses = [float(v) for v in state["losses"]]
            trainer.elapsed = float(state["elapsed"])
            trainer.saved_dirs.add(Path(out_dir).expanduser().resolve())
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            raise CheckpointError(f"{Path(out_dir) / STATE_FILE}: cannot resume from it ({exc})") from None
        model_file = Path(out_dir).expanduser() / MODEL_FILE
        if not continue_run and model_file.is_file():  # saved with the state: it holds these weights
            trainer._saved = (done, model_file.resolve(), None)
        return trainer
