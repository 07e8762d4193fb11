"""benchmarks/style_space.py: the pen change is exact at 0 and moves ink the right way; draws are disjoint."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from test_benchmarks import _load_script
from test_c2st import blobs


@pytest.fixture(scope="module")
def bench():
    """benchmarks/style_space.py as a module."""
    yield _load_script("style_space")
    del sys.modules["style_space"]


def test_pen_change_is_the_identity_at_zero_and_moves_ink(bench) -> None:
    images = blobs(20, seed=0)
    ink = images.astype(np.float64).sum()
    assert np.array_equal(bench.pen(images, 0), images)
    bolder, thinner = bench.pen(images, 1), bench.pen(images, -1)
    assert 1.05 < bolder.astype(np.float64).sum() / ink < 1.6 and 0.5 < thinner.astype(np.float64).sum() / ink < 0.95
    assert (bolder.astype(int) >= images).all() and (thinner.astype(int) <= images).all()


def test_disjoint_draws_have_the_same_classes(bench) -> None:
    labels = np.repeat(np.arange(3), 10)
    a, b = bench.disjoint_draws(labels, per_class=4, seed=0)
    assert not set(a.tolist()) & set(b.tolist())
    assert labels[a].tolist() == labels[b].tolist() == [0] * 4 + [1] * 4 + [2] * 4
