"""Faithfulness and in-word spread measures of benchmarks/control.py (the style_control study's maths)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
from control import faithfulness, pooled_spread  # noqa: E402


def test_faithfulness_of_a_perfect_and_a_deaf_model() -> None:
    asked = np.repeat([0.6, 1.0, 1.4], 10)
    rng = np.random.default_rng(0)
    good = faithfulness(asked, asked * 1.1 + rng.normal(0, 0.01, 30), relative=True)
    assert good["r_images"] > 0.99 and good["r_medians"] > 0.99
    assert good["median_error"] == pytest.approx(0.1, abs=0.02) and good["levels"] == [0.6, 1.0, 1.4]
    deaf = faithfulness(asked, rng.normal(1.0, 0.2, 30))
    assert abs(deaf["r_images"]) < 0.5
    assert np.isnan(faithfulness(asked, np.ones(30))["r_images"])  # a constant answer has no correlation


def test_pooled_spread_ignores_differences_between_groups() -> None:
    values = np.array([1.0, 1.0, 5.0, 5.0, 9.0, 9.0])
    assert pooled_spread(values, np.array([0, 0, 1, 1, 2, 2])) == 0.0
    assert pooled_spread(values, np.zeros(6)) == pytest.approx(np.std(values, ddof=1))
    assert np.isnan(pooled_spread(values, np.arange(6)))  # no group of two
