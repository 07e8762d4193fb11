"""LossMeter: the device-side loss gives what a per-step read gave, and names the first non-finite step."""

from __future__ import annotations

import math

import pytest
import torch

from devagen.core.updates import SMOOTHING, LossMeter


def _scalar_smoothed(losses: list[float], start: float = math.nan) -> float:
    smoothed = start
    for loss in losses:
        smoothed = loss if math.isnan(smoothed) else SMOOTHING * smoothed + (1 - SMOOTHING) * loss
    return smoothed


def _meter(losses: list[float], start: float = math.nan) -> LossMeter:
    meter = LossMeter(torch.device("cpu"), start)
    for step, loss in enumerate(losses, 1):
        meter.add(torch.tensor(loss), step)
    return meter


def test_smoothed_loss_equals_the_per_step_formula() -> None:
    losses = [0.9, 0.5, 0.31, 0.2, 0.25, 0.18]
    reading = _meter(losses).read()
    assert reading.finite and reading.bad_step == 0
    assert reading.smoothed == pytest.approx(_scalar_smoothed(losses), rel=1e-6)
    assert _meter(losses, 0.4).read().smoothed == pytest.approx(_scalar_smoothed(losses, 0.4), rel=1e-6)  # resumed
    assert math.isnan(_meter([]).read().smoothed)


def test_first_non_finite_step_is_kept_and_later_ones_ignored() -> None:
    reading = _meter([0.5, 0.4, math.inf, math.nan, 0.3]).read()
    assert not reading.finite
    assert (reading.bad_step, reading.bad_loss) == (3, math.inf)
    assert reading.smoothed == pytest.approx(_scalar_smoothed([0.5, 0.4, 0.3]), rel=1e-6)  # finite losses only


def test_reading_twice_is_the_same_and_adding_goes_on() -> None:
    meter = _meter([0.5, 0.4])
    assert meter.read() == meter.read()
    meter.add(torch.tensor(0.1), 3)
    assert meter.read().smoothed == pytest.approx(_scalar_smoothed([0.5, 0.4, 0.1]), rel=1e-6)


def test_ranks_are_averaged_and_the_earliest_bad_step_wins() -> None:
    a, b = _meter([0.5, 0.4, math.nan]), _meter([0.3, math.nan, 0.2])
    theirs: list[torch.Tensor] = []
    b.read(lambda t: theirs.append(t) or t)  # what rank b puts into accelerate's gather
    reading = a.read(lambda mine: torch.cat([mine, theirs[0]]))
    assert reading.bad_step == 2 and math.isnan(reading.bad_loss)
    assert reading.smoothed == pytest.approx((_scalar_smoothed([0.5, 0.4]) + _scalar_smoothed([0.3, 0.2])) / 2)
    fine = _meter([0.5]).read(lambda mine: torch.cat([mine, mine]))
    assert fine.finite and fine.smoothed == pytest.approx(0.5)
