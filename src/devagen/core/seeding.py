"""Seeded random streams: one generator per (seed, position...) key, so a resumed or re-run loop draws the same
numbers at the same step, whatever ran before it."""

from __future__ import annotations

import numpy as np
import torch


def seeded_generator(device: torch.device, *keys: int) -> torch.Generator:
    """A torch.Generator on `device` seeded from the integer keys (e.g. seed, step, rank) through numpy's
    SeedSequence: different keys give independent streams."""
    state = np.random.SeedSequence(list(keys)).generate_state(2, dtype=np.uint32)
    return torch.Generator(device=device).manual_seed(int(state[0]) << 32 | int(state[1]))
