"""Figures draw real DHCD images at random (seeded), never the first ones in file order."""

from __future__ import annotations

import numpy as np

from devagen.core.classes import glyphs
from devagen.report import figures
from devagen.sampling.generate import samples_figure

FIRST, LATER, GENERATED = 0, 200, 90  # pixel value of the first 10 real images per class / of the rest / of samples


def ordered_real(per_class: int = 40, classes: int = 3, first: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Real-like set in DHCD file order: each class's first `first` images are told apart by their pixel value,
    and every image's pixel (0, 0) holds its index within its class."""
    labels = np.repeat(np.arange(classes), per_class)
    within = np.tile(np.arange(per_class), classes)
    images = np.where(within < first, FIRST, LATER).astype(np.uint8)[:, None, None] * np.ones((1, 8, 8), np.uint8)
    images[:, 0, 0] = within
    return images, labels


def test_class_rows_draw_at_random_but_seeded():
    images, labels = ordered_real()
    rows = figures.class_rows(images, labels, ["a", "b", "c"], per_class=10, seed=0)
    assert [name for name, _ in rows] == ["a", "b", "c"]
    picked = np.stack([r[:, 0, 0] for _, r in rows])  # within-class indices, (3 classes, 10)
    assert (picked >= 10).any()  # not the first ten in file order (chance of that: 1 in 8e8 per class)
    assert all(len(set(p)) == 10 for p in picked)  # no image twice
    again = figures.class_rows(images, labels, ["a", "b", "c"], per_class=10, seed=0)
    other = figures.class_rows(images, labels, ["a", "b", "c"], per_class=10, seed=1)
    assert all((x == y).all() for (_, x), (_, y) in zip(rows, again))
    assert any((x != y).any() for (_, x), (_, y) in zip(rows, other))


def test_random_per_class_takes_all_of_a_small_class():
    labels = np.array([0, 1, 1, 1, 2, 2])
    pick = figures.random_per_class(labels, per_class=2, seed=3)
    assert labels[pick].tolist() == [0, 1, 1, 2, 2]


def test_samples_figure_real_half_is_random_but_seeded():
    real, real_labels = ordered_real()
    generated = np.full((30, 8, 8), GENERATED, np.uint8)
    labels = np.repeat(np.arange(3), 10)
    fig = np.asarray(samples_figure(generated, labels, glyphs(), per_row=10, real=(real, real_labels), seed=0))
    assert (fig == LATER).any()  # real images from beyond the first ten per class are shown
    same = np.asarray(samples_figure(generated, labels, glyphs(), per_row=10, real=(real, real_labels), seed=0))
    other = np.asarray(samples_figure(generated, labels, glyphs(), per_row=10, real=(real, real_labels), seed=5))
    assert (fig == same).all() and (fig != other).any()
    unlabelled = np.asarray(samples_figure(generated, np.full(30, -1), glyphs(), per_row=10, real=(real, real_labels)))
    assert (unlabelled == LATER).any()
