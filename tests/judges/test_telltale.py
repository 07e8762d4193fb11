"""What gives the samples away: the surest samples, their nearest real images, the measure that separates them."""

from __future__ import annotations

import numpy as np

from devagen.judges.telltale import nearest_real, separation, telltale, telltale_figure


def strokes(n: int, width: int, seed: int, white: int = 255) -> np.ndarray:
    """uint8 (n, 16, 16): an upright stroke `width` px wide at a random column, on black."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 16, 16), np.uint8)
    for image, c in zip(images, rng.integers(3, 10, size=n)):
        image[3:13, c:c + width] = white
    return images


def test_nearest_real_stays_in_the_intended_class() -> None:
    real_feats = np.array([[0.0, 0.0], [10.0, 10.0], [1.0, 1.0], [9.0, 9.0]])
    real_labels = np.array([0, 0, 1, 1])
    gen_feats = np.array([[9.5, 9.5], [0.2, 0.2], [0.2, 0.2]])
    assert nearest_real(gen_feats, np.array([0, 1, -1]), real_feats, real_labels).tolist() == [1, 2, 0]


def test_separation_names_the_measure_the_surest_samples_differ_in() -> None:
    n = 40
    gen_m = {key: np.zeros(n) for key in ("stroke_width",)}
    real_m = {key: np.zeros(n) for key in gen_m}
    gen_m["stroke_width"] = np.r_[np.full(10, 3.0), np.full(30, 2.0)] + np.linspace(0, 0.1, n)
    real_m["stroke_width"] = np.full(n, 2.0) + np.linspace(0, 0.1, n)
    full = {key: np.zeros(n) for key in ("ink_mass", "white_share")}
    rows = separation({**full, **gen_m}, {**full, **real_m}, np.arange(10), ("ink_mass", "stroke_width", "white_share"))
    assert rows[0]["measure"] == "stroke_width" and rows[0]["generated"] > rows[0]["real"]
    assert rows[0]["effect"] > 1 and abs(rows[0]["all_effect"]) < rows[0]["effect"] / 2
    assert {r["effect"] for r in rows[1:]} == {0.0}


def test_telltale_pairs_the_surest_samples_with_real_ones_and_says_what_differs() -> None:
    labels = np.repeat(np.arange(2), 10)
    samples = np.concatenate([strokes(3, 5, seed=1), strokes(7, 2, seed=2), strokes(10, 2, seed=3)])
    real = strokes(20, 2, seed=4)
    scores = np.r_[0.99, 0.98, 0.97, np.full(16, 0.5), np.nan]
    feats = lambda x: np.stack([x.mean((1, 2)) * 0, x.argmax(2).max(1)], 1).astype(float)  # noqa: E731
    block = telltale(scores, feats(samples), labels, samples, feats(real), labels, real, count=3)
    assert block["samples"] == [0, 1, 2] and block["count"] == 3 and block["scores"] == [0.99, 0.98, 0.97]
    assert all(labels[j] == 0 for j in block["neighbours"])  # the same class
    assert block["measures"][0]["measure"] in ("stroke_width", "ink_mass", "ink_coverage", "glyph_width", "white_share")
    assert block["measures"][0]["effect"] > 1
    picture = telltale_figure(samples, real, block)
    assert picture.width > 3 * 2 * 16 * 4 and picture.height > 16 * 4
    never = telltale(np.full(20, np.nan), feats(samples), labels, samples, feats(real), labels, real)
    assert never["count"] == 0 and never["samples"] == []
