"""Per-sample random streams: sample k is the same whatever the batch size or split.

Like EDM's ``StackedRandomGenerator``: one ``torch.Generator`` per sample, seeded with that
sample's seed, drawn in a fixed order. The engine never touches global RNG state.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


class SampleRNG:
    """A stack of generators, one per sample.

    Args:
        seeds: one integer seed per sample (shape [B]).
        device: where the draws are returned (draws happen on the CPU so that a sample is
            bit-identical on every device).
    """

    def __init__(self, seeds: Sequence[int], device: torch.device | str = "cpu") -> None:
        self.seeds = [int(s) for s in seeds]
        self.device = torch.device(device)
        self._gens = []
        for s in self.seeds:
            g = torch.Generator()
            g.manual_seed(s & 0xFFFF_FFFF_FFFF_FFFF)
            self._gens.append(g)

    def __len__(self) -> int:
        return len(self._gens)

    def randn(self, *shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Standard normal draws of shape [B, *shape], row k from generator k."""
        out = torch.stack([torch.randn(shape, generator=g, dtype=dtype) for g in self._gens])
        return out.to(self.device)

    def randint(self, high: int) -> torch.Tensor:
        """One integer in ``[0, high)`` per sample, shape [B] (int64, on the CPU)."""
        return torch.stack([torch.randint(high, (), generator=g) for g in self._gens])

    def subset(self, index: slice) -> SampleRNG:
        """A view on some of the samples' generators (shares their state)."""
        sub = SampleRNG([], self.device)
        sub.seeds = self.seeds[index]
        sub._gens = self._gens[index]
        return sub
