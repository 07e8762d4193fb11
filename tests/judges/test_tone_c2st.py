"""The tone C2ST on hand-made grey levels: the same levels ~ 50 %, other levels ~ 100 %, shapes unseen."""

from __future__ import annotations

import numpy as np
import pytest

from devagen.core.config import C2stConfig
from devagen.core.errors import DevagenError
from devagen.judges.tone_c2st import cross_validated_accuracy, fit_logistic, tone_c2st_metrics

CFG = C2stConfig(repeats=1)


def glyphs(n: int, seed: int, white: int = 255, square: bool = False, lying: bool = False) -> np.ndarray:
    """uint8 (n, 8, 8): a random upright bar (lying: on its side; square: 3x3) of grey `white` with a soft grey end,
    on black."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 8, 8), np.uint8)
    for image in images:
        r, c = rng.integers(1, 5, size=2)
        image[r:r + 3, c:c + (3 if square else 1)] = white
        image[r + 3, c] = rng.integers(20, 200)
    return images.transpose(0, 2, 1).copy() if lying else images


def test_logistic_regression_separates_separable_features_and_knows_chance() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    y = (x[:, 0] > 0).astype(float)
    w = fit_logistic(x, y, l2=0.0)
    assert ((x @ w[:-1] + w[-1] > 0) == (y == 1)).mean() > 0.97
    assert cross_validated_accuracy(x, y, folds=5, l2=0.01, seed=0) > 0.95
    assert abs(cross_validated_accuracy(x, rng.integers(0, 2, 200).astype(float), 5, 0.01, seed=0) - 0.5) < 0.12


def test_tone_tells_grey_levels_and_ink_amounts_apart_but_not_shapes() -> None:
    labels = np.repeat(np.arange(2), 60)
    real, other = glyphs(120, seed=1), glyphs(120, seed=2)
    dim = tone_c2st_metrics(glyphs(120, seed=3, white=240), labels, other, labels, real, labels, CFG)
    squares = tone_c2st_metrics(glyphs(120, seed=4, square=True), labels, other, labels, real, labels, CFG)
    same = tone_c2st_metrics(glyphs(120, seed=5), labels, other, labels, real, labels, CFG)
    lying = tone_c2st_metrics(glyphs(120, seed=6, lying=True), labels, other, labels, real, labels, CFG)
    assert dim["accuracy"] > 0.95 and abs(dim["floor_accuracy"] - 0.5) < 0.15
    assert squares["accuracy"] > 0.9  # three times the white pixels: the histogram sees the amount of ink
    assert abs(same["accuracy"] - 0.5) < 0.15 and len(same["accuracies"]) == 1
    assert abs(lying["accuracy"] - 0.5) < 0.15  # the same pixels turned on their side: nothing to read


def test_tone_settings_are_checked() -> None:
    with pytest.raises(DevagenError, match="c2st.tone_folds"):
        C2stConfig(tone_folds=1)
    with pytest.raises(DevagenError, match="c2st.tone_l2"):
        C2stConfig(tone_l2=-1.0)
