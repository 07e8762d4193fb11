"""train.lr_schedule: the one warm-up + schedule function (devagen.core.updates) at known steps, the default's
identity with diffusers' warm-up + cosine, and the training loop following the configured schedule."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from diffusers.optimization import get_cosine_schedule_with_warmup

from devagen.core.config import AugmentConfig, DiffusionConfig, TrainConfig

from devagen.core.shape import ModelConfig
from devagen.core.errors import DevagenError
from devagen.core.params import params_from_dict
from devagen.core.updates import lr_factor, warmup_schedule
from devagen.training.loop import _setup

pytestmark = pytest.mark.usefixtures("cpu_one_thread")


def _factors(schedule: torch.optim.lr_scheduler.LRScheduler, steps: int) -> list[float]:
    """The lr at steps 0 .. steps-1, as a share of the optimizer's base lr."""
    out = []
    for _ in range(steps):
        out.append(schedule.get_last_lr()[0] / schedule.base_lrs[0])
        schedule.optimizer.step()
        schedule.step()
    return out


def _optimizer() -> torch.optim.Optimizer:
    return torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=2e-3)


@pytest.mark.parametrize("warmup, total", [(100, 3400), (0, 7), (20, 250), (5, 3)])
def test_cosine_default_is_diffusers_warmup_cosine_to_the_bit(warmup: int, total: int) -> None:
    ours = _factors(warmup_schedule(_optimizer(), warmup, total), total + 3)
    theirs = _factors(get_cosine_schedule_with_warmup(_optimizer(), warmup, total), total + 3)
    assert ours == theirs  # exact: the default run's lr, hence its weights, are unchanged


def test_warmup_then_cosine_at_known_steps() -> None:
    assert [lr_factor(s, 10, 110) for s in (0, 5, 10)] == [0.0, 0.5, 1.0]
    assert lr_factor(60, 10, 110) == pytest.approx(0.5)  # half way through the cosine
    assert lr_factor(110, 10, 110) == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(60, 10, 110, floor=0.2) == pytest.approx(0.6)  # floor + (1 - floor) * 0.5
    assert lr_factor(110, 10, 110, floor=0.2) == pytest.approx(0.2)


def test_cyclic_is_a_triangle_between_floor_and_peak() -> None:
    at = lambda s: lr_factor(s, 10, 1000, "cyclic", cycle=40, floor=0.25)  # noqa: E731
    assert at(5) == 0.5  # warm-up first
    assert [at(10), at(20), at(30), at(40), at(50)] == pytest.approx([1.0, 0.625, 0.25, 0.625, 1.0])
    assert at(90) == pytest.approx(1.0) and at(70) == pytest.approx(0.25)  # every 40 steps again
    assert at(999) == pytest.approx(at(999 - 40 * 20))  # no decay over the run


def test_restarts_are_half_cosines_that_jump_back_to_the_peak() -> None:
    at = lambda s: lr_factor(s, 0, 1000, "restarts", cycle=100, floor=0.1)  # noqa: E731
    assert [at(0), at(50), at(100), at(150), at(200)] == pytest.approx([1.0, 0.55, 1.0, 0.55, 1.0])
    assert at(99) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.99)))
    assert at(99) < 0.11 < at(100)  # the restart


def test_unknown_schedule_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown lr schedule 'linear'"):
        lr_factor(50, 10, 100, "linear", 20)


@pytest.mark.parametrize("key, value", [("lr_schedule", "step"), ("lr_cycle_steps", 1), ("lr_min_ratio", 1.0),
                                        ("lr_min_ratio", -0.1)])
def test_bad_schedule_settings_are_refused_at_load(key: str, value: object) -> None:
    with pytest.raises(DevagenError, match=f"params.yaml: train.{key}: "):
        params_from_dict({"train": {key: value}})


def test_training_loop_runs_the_configured_schedule() -> None:
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (8, 16, 16), dtype=np.uint8), rng.integers(0, 46, 8)
    cfg = TrainConfig(batch_size=4, max_steps=50, warmup_steps=4, lr=1e-3, lr_schedule="restarts",
                      lr_cycle_steps=10, lr_min_ratio=0.1)
    run = _setup(cfg, ModelConfig(preset="tiny"), DiffusionConfig(), AugmentConfig(), images, labels, None)
    got = _factors(run.lr_scheduler.scheduler, 30)  # the LambdaLR inside accelerate's wrapper
    assert got == pytest.approx([lr_factor(s, 4, 50, "restarts", 10, 0.1) for s in range(30)])
