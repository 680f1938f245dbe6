"""A trained function model: network + equation + normalisation, and sampling on any grid.

:class:`HDMModel` is what a checkpoint holds and what the CLI, the Python API and the studio
sample from. Sampling is resolution-free: the equation is re-bound to Q on the requested
grid (exact kernel covariance there) and the FNO evaluates its spectral layers at the new
coordinates.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from engine.config import RunConfig
from engine.equations.base import Equation, make_equation
from engine.errors import CheckpointError, ConfigError
from engine.models.fno import FNO1d
from engine.operators.covariance import covariance_from_config
from engine.rng import SampleRNG
from engine.samplers import EVALS_PER_STEP, StepInfo, get_sampler, time_grid


@dataclass(frozen=True)
class ModelGeometry:
    """What the network must know of the training grid to read other grids."""

    grid: tuple[float, ...]  # the training grid
    channels: int
    length_scale: float  # the resolved kernel length scale

    @property
    def domain(self) -> tuple[float, float]:
        return (self.grid[0], self.grid[-1])

    @property
    def period(self) -> float:
        """Fourier period: the domain plus one mean spacing (exact DFT on a uniform training grid)."""
        n = len(self.grid)
        a, b = self.domain
        return (b - a) * n / (n - 1) if n > 1 else 1.0


def build_network(config: RunConfig, geometry: ModelGeometry) -> FNO1d:
    m = config.model
    return FNO1d(channels=geometry.channels, width=m.width, modes=m.modes, layers=m.layers,
                 domain=geometry.domain, period=geometry.period, emb_dim=m.emb_dim)


def build_equation(config: RunConfig, geometry: ModelGeometry, grid: np.ndarray) -> Equation:
    n = config.noise
    Q = covariance_from_config(n.kernel, geometry.length_scale, n.gain, n.period, n.jitter).on_grid(grid)
    e = config.equation
    return make_equation(e.name, Q, schedule=e.schedule, T=e.T, eps=e.eps, beta_min=e.beta_min,
                         beta_max=e.beta_max, eta_min=e.eta_min, eta_max=e.eta_max)


@dataclass
class SampleResult:
    """Samples in data units, with what is needed to reproduce them."""

    samples: np.ndarray  # [N, C, n], denormalised
    grid: np.ndarray  # [n]
    seeds: np.ndarray  # [N] int64
    settings: dict[str, Any]
    trajectory: np.ndarray | None = None  # [S, N, C, n] denormalised states, T -> 0
    trajectory_times: np.ndarray | None = None  # [S]


def uniform_grid(geometry: ModelGeometry, n_points: int) -> np.ndarray:
    """A uniform grid of ``n_points`` over the training domain."""
    if not isinstance(n_points, int) or n_points < 2:
        raise ConfigError(f"--grid-size must be an integer >= 2, got {n_points!r}")
    a, b = geometry.domain
    return np.linspace(a, b, n_points)


class HDMModel:
    """A trained Hilbert diffusion model of functions.

    Args:
        config: the run configuration it was trained with (length scale resolved).
        geometry: training grid and channels.
        normalizer: ``engine.data.Normalizer`` as a dict (applied to data, inverted on output).
        network: the noise predictor (EMA weights).
    """

    def __init__(self, config: RunConfig, geometry: ModelGeometry, normalizer: dict[str, Any],
                 network: FNO1d, *, sha256: str = "", source: str = "") -> None:
        from engine.data import Normalizer

        self.config = config
        self.geometry = geometry
        self.normalizer = Normalizer.from_dict(normalizer)
        self.network = network.eval()
        self.sha256 = sha256
        self.source = source

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    def to(self, device: torch.device | str) -> HDMModel:
        self.network.to(device)
        return self

    @property
    def training_grid(self) -> np.ndarray:
        return np.asarray(self.geometry.grid, dtype=np.float64)

    def equation_on(self, grid: np.ndarray | None = None) -> Equation:
        """The forward equation bound to Q on ``grid`` (the training grid by default)."""
        return build_equation(self.config, self.geometry, self.training_grid if grid is None else grid)

    def noise_predictor(self, grid: np.ndarray, equation: Equation | None = None
                        ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """``e_hat(x, t)`` on ``grid``: the backbone wrapped by its parameterisation."""
        from engine.objectives import noise_predictor

        g = torch.as_tensor(grid, dtype=torch.float32, device=self.device)
        net = self.network
        equation = self.equation_on(grid) if equation is None else equation
        return noise_predictor(lambda x, t: net(x, t, g), equation, self.config.model.parameterization)

    def sample(self, num: int, *, steps: int = 50, sampler: str = "ddim", grid: np.ndarray | None = None,
               seeds: Sequence[int] | None = None, seed: int = 0, batch_size: int = 1000,
               spacing: str | None = None, callback: Callable[[StepInfo], None] | None = None,
               should_stop: Callable[[], bool] | None = None, trajectory_every: int = 0) -> SampleResult:
        """Draw ``num`` curves on ``grid`` (any grid, default the training grid).

        Args:
            seeds: one seed per sample; default ``seed, seed+1, ...``. Sample k depends only on
                its seed, not on the batch size.
            trajectory_every: keep every k-th state of the reverse trajectory (0: none).
            callback: receives each step's :class:`StepInfo` (batch-local; ``x`` normalised).
        """
        if not isinstance(num, int) or num < 1:
            raise ConfigError(f"--num-samples must be a positive integer, got {num!r}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch size must be a positive integer, got {batch_size!r}")
        grid = self.training_grid if grid is None else np.asarray(grid, dtype=np.float64)
        seeds = np.arange(seed, seed + num, dtype=np.int64) if seeds is None else np.asarray(seeds, np.int64)
        if seeds.shape != (num,):
            raise ConfigError(f"expected {num} seeds, got {seeds.size}")
        fn = get_sampler(sampler)
        equation = self.equation_on(grid)
        spacing = spacing or ("logsnr" if sampler in ("ddim", "ode_heun") else "uniform")
        ts = time_grid(equation, steps, spacing)
        predict = self.noise_predictor(grid, equation)
        shape = (self.geometry.channels, grid.size)
        outs, trajs, traj_times = [], [], []
        for start in range(0, num, batch_size):
            rng = SampleRNG(seeds[start:start + batch_size].tolist(), self.device)
            x_T = equation.prior_sample(rng, shape)
            states: list[torch.Tensor] = [x_T.cpu()] if trajectory_every else []
            times = [float(ts[0])]

            def on_step(info: StepInfo, states=states, times=times) -> None:
                if trajectory_every and (info.step % trajectory_every == 0 or info.step == info.total):
                    states.append(info.x.detach().cpu())
                    times.append(info.t)
                if callback is not None:
                    callback(info)

            with torch.inference_mode():
                x0 = fn(predict, equation, x_T, ts, rng=rng, callback=on_step, should_stop=should_stop)
            outs.append(self.normalizer.denormalize(x0.cpu().numpy()))
            if trajectory_every:
                trajs.append(np.stack([self.normalizer.denormalize(s.numpy()) for s in states]))
                traj_times = times
        settings = {"sampler": sampler, "steps": steps, "spacing": spacing, "grid_size": int(grid.size),
                    "network_evaluations": steps * EVALS_PER_STEP[sampler] + 1, "batch_size": batch_size}
        return SampleResult(
            samples=np.concatenate(outs).astype(np.float32), grid=grid, seeds=seeds, settings=settings,
            trajectory=np.concatenate(trajs, axis=1).astype(np.float32) if trajs else None,
            trajectory_times=np.asarray(traj_times) if trajs else None)

    # -- persistence -----------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        return {"geometry": {"grid": list(self.geometry.grid), "channels": self.geometry.channels,
                             "length_scale": self.geometry.length_scale},
                "normalizer": self.normalizer.to_dict(), "modality": "functions"}

    @classmethod
    def from_parts(cls, state_dict: dict[str, torch.Tensor], config: dict[str, Any], meta: dict[str, Any],
                   *, sha256: str = "", source: str = "") -> HDMModel:
        """Rebuild from a checkpoint's weights, config and metadata; mismatches raise CheckpointError."""
        try:
            run = RunConfig.from_dict(config)
            geo = meta["geometry"]
            geometry = ModelGeometry(tuple(float(v) for v in geo["grid"]), int(geo["channels"]),
                                     float(geo["length_scale"]))
            normalizer = meta["normalizer"]
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{source or 'checkpoint'}: its metadata is incomplete ({exc}); "
                                  "is it a functions checkpoint of HDM Studio?") from None
        network = build_network(run, geometry)
        expected = network.state_dict()
        missing = set(expected) - set(state_dict)
        unexpected = set(state_dict) - set(expected)
        wrong = [k for k in expected if k in state_dict and state_dict[k].shape != expected[k].shape]
        if missing or unexpected or wrong:
            raise CheckpointError(f"{source or 'checkpoint'}: its weights do not match its config "
                                  f"({len(missing)} missing, {len(unexpected)} unexpected, {len(wrong)} "
                                  "mis-shaped tensors); it belongs to another model")
        network.load_state_dict(state_dict)
        return cls(run, geometry, normalizer, network, sha256=sha256, source=source)
