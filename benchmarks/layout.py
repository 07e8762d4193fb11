"""What the CNN C2ST reads, by view and by layout: the evaluate stage's C2ST on the same images seen coarser (both
sets binarized, blurred, averaged to 16x16 or 8x8 blocks), and how varied each set's layout is within a class (ink
mass, ink centroid and spread, height and width of the ink's box), against class-matched real test images.

    python benchmarks/layout.py --samples default=samples/samples.npz --views --out benchmarks/results/c2st_scatter/layout.md
    python benchmarks/layout.py --samples default=samples/samples.npz --seeds 10   # the C2ST's own scatter

Each --samples is NAME=PATH of a sample-stage file (samples.npz). A view that keeps the C2ST where the full image has
it says the CNN does not need what that view removes. Layout: for each measure, the mean over classes of its
within-class standard deviation, the set's over real's (1.00 = as varied as DHCD; below 1 = samples more alike).
The real rows are as many random test images of each class as the set has (seed --seed). --seeds N: the evaluate
stage's C2ST of each set as drawn, over N classifier seeds (c2st.seed onwards) instead of c2st.repeats: how far one
classifier's verdict scatters around another's on the same images.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click
import numpy as np
import torch
import torch.nn.functional as F
from pen_bins import emit_table

from devagen.core import paths
from devagen.core.params import load_params
from devagen.data import prepared as data
from devagen.judges.c2st import c2st_metrics
from devagen.pen.conditions import layout_moments

INK = 128  # grey level from which a pixel counts as ink for the box
MEASURES = ("ink", "centroid y", "centroid x", "spread y", "spread x", "height", "width")


def binarized(images: np.ndarray) -> np.ndarray:
    """Ink (>= INK) white, the rest black: shapes without grey levels."""
    return np.where(images >= INK, 255, 0).astype(np.uint8)


def blurred(images: np.ndarray) -> np.ndarray:
    """A 5x5 binomial blur: no stroke edges, no single-pixel detail."""
    kernel = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])
    kernel = (kernel[:, None] * kernel[None]) / kernel.sum() ** 2
    x = F.pad(torch.from_numpy(images).float()[:, None], (2, 2, 2, 2))
    return F.conv2d(x, kernel[None, None])[:, 0].round().clamp(0, 255).byte().numpy()


def blocks(images: np.ndarray, size: int) -> np.ndarray:
    """Each size x size block replaced by its mean: only the coarse placement of ink is left."""
    x = F.avg_pool2d(torch.from_numpy(images).float()[:, None], size)
    return F.interpolate(x, scale_factor=size, mode="nearest")[:, 0].round().byte().numpy()


VIEWS = {"as drawn": lambda x: x, "binarized": binarized, "blurred": blurred,
         "16x16 blocks": lambda x: blocks(x, 2), "8x8 blocks": lambda x: blocks(x, 4)}


def layout(images: np.ndarray) -> dict[str, np.ndarray]:
    """Per image (N,): ink mass (grey sum / 255), ink centroid and spread (grey-weighted, px: the layout moments a
    layout-conditioned model reads, devagen.pen.conditions), height and width of the box around the ink (>= INK;
    0 without any)."""
    cy, cx, sy, sx = layout_moments(images).astype(np.float64).T
    ink = images >= INK

    def extent(any_ink: np.ndarray) -> np.ndarray:
        first, last = any_ink.argmax(axis=1), any_ink.shape[1] - 1 - any_ink[:, ::-1].argmax(axis=1)
        return np.where(any_ink.any(axis=1), last - first + 1, 0)

    return {"ink": images.astype(np.float64).sum(axis=(1, 2)) / 255, "centroid y": cy, "centroid x": cx,
            "spread y": sy, "spread x": sx, "height": extent(ink.any(axis=2)), "width": extent(ink.any(axis=1))}


def within_class_std(values: np.ndarray, labels: np.ndarray) -> float:
    """Mean over classes (with 2 or more images) of the values' standard deviation within the class."""
    return float(np.mean([values[labels == c].std() for c in np.unique(labels) if (labels == c).sum() > 1]))


def spread_ratios(images: np.ndarray, labels: np.ndarray, real: np.ndarray, real_labels: np.ndarray) -> dict[str, float]:
    """Per MEASURES: within-class standard deviation of the set over that of the real images."""
    mine, theirs = layout(images), layout(real)
    return {k: within_class_std(mine[k], labels) / within_class_std(theirs[k], real_labels) for k in MEASURES}


def seed_spread(accuracies: list[float]) -> str:
    """Cells 'median | mean | sd | min | max' of per-seed C2ST accuracies."""
    a = np.asarray(accuracies)
    return " | ".join(f"{v:.3f}" for v in (np.median(a), a.mean(), a.std(), a.min(), a.max()))


def matched_real(test: data.Split, labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """As many random test images of each class as `labels` holds."""
    rng = np.random.default_rng(seed)
    pick = np.concatenate([rng.choice(np.flatnonzero(test.labels == c), int((labels == c).sum()), replace=False)
                           for c in np.unique(labels)])
    return test.images[pick], test.labels[pick]


@click.command()
@click.option("--samples", "specs", multiple=True, required=True, help="NAME=PATH of a samples.npz")
@click.option("--views", is_flag=True, help="also the C2ST of every view (about a minute per view and set on 2 cores)")
@click.option("--seeds", default=0, show_default=True, help="also the C2ST as drawn over this many classifier seeds")
@click.option("--seed", default=0, show_default=True, help="draw of the real images")
@click.option("--params", "params_path", default="params.yaml", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="write the tables here")
def main(specs: tuple[str, ...], views: bool, seeds: int, seed: int, params_path: str, out: Path | None) -> None:
    """Print (and with --out write) the tables."""
    cfg = load_params(params_path).c2st
    train, test = data.load_split(paths.TRAIN_NPZ), data.load_split(paths.TEST_NPZ)
    sets = [(name, *data.read_labelled_images(Path(path), "sample"))
            for name, _, path in (spec.partition("=") for spec in specs)]
    lines = []
    if views:
        lines += ["| set | " + " | ".join(f"C2ST, {v}" for v in VIEWS) + " |", "|---|" + "---|" * len(VIEWS)]
        for name, images, labels in sets:
            cells = [c2st_metrics(view(images), labels, view(train.images), train.labels, view(test.images),
                                  test.labels, cfg, floor=False)["accuracy"] for view in VIEWS.values()]
            lines.append(f"| {name} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")
        lines.append("")
    if seeds:
        lines += [f"| set (C2ST as drawn, {seeds} classifier seeds) | median | mean | sd | min | max |",
                  "|---|---|---|---|---|---|"]
        for name, images, labels in sets:
            many = c2st_metrics(images, labels, train.images, train.labels, test.images, test.labels,
                                replace(cfg, repeats=seeds), floor=False)
            lines.append(f"| {name} | {seed_spread(many['accuracies'])} |")
        lines.append("")
    lines += ["| set | " + " | ".join(MEASURES) + " |", "|---|" + "---|" * len(MEASURES)]
    real, real_labels = matched_real(test, sets[0][2], seed)
    other, other_labels = matched_real(test, sets[0][2], seed + 1)
    for name, images, labels in [("real test, another draw", other, other_labels)] + sets:
        ratios = spread_ratios(images, labels, real, real_labels)
        lines.append(f"| {name} | " + " | ".join(f"{ratios[k]:.2f}" for k in MEASURES) + " |")
    emit_table(lines, out)


if __name__ == "__main__":
    main()
