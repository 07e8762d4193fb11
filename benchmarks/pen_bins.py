"""Where samples fail, by pen: the legible share, OCR accuracy and share drawn in pieces of samples and of
class-matched real test images in bins of stroke width (the bins are quantiles of the real images' widths), legible
and OCR scored as the evaluate stage scores. "In pieces": the glyph's ink (>= INK) is more than one 8-connected
piece, what a broken hairline stroke looks like (most real glyphs are one piece).

    python benchmarks/pen_bins.py --samples default=samples/samples.npz --out benchmarks/results/c2st_scatter/pen_bins.md

Each --samples is NAME=PATH of a sample-stage file (samples.npz). Needs the judge (`dvc repro train_ocr`). The real
rows are --per-class random test images of each class (seed --seed), the size of the default's sample set.
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np
from scipy import ndimage

from devagen.core import paths
from devagen.core.io import write_text
from devagen.core.params import load_params
from devagen.data import prepared as data
from devagen.judges import legibility, ocr
from devagen.pen.measures import measure

QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)  # bin edges, as quantiles of the real images' stroke widths
INK = 128  # grey level from which a pixel counts as ink for "in pieces"


def emit_table(lines: list[str], out: Path | None) -> None:
    """Print the table's lines and, with `out`, write them there."""
    table = "\n".join(lines) + "\n"
    if out is not None:
        write_text(table, out)
    click.echo(table)


def in_pieces(images: np.ndarray) -> np.ndarray:
    """Per image: whether its ink (>= INK) is more than one 8-connected piece."""
    eight = np.ones((3, 3), bool)
    return np.array([ndimage.label(image >= INK, structure=eight)[1] > 1 for image in images], bool)


def scored(judge: ocr.Judge, ood: legibility.OodStats, images: np.ndarray, labels: np.ndarray,
           confidence: float, quantile: float) -> tuple[np.ndarray, np.ndarray]:
    """Per image: legible (confident and in distribution, as the evaluate stage counts it) and read as its class."""
    features, probs = ocr.predict_features(judge, images)
    legible = (probs.max(1) >= confidence) & legibility.in_distribution(features, probs, ood, quantile)
    return legible, probs.argmax(1) == labels


def rows(name: str, images: np.ndarray, labels: np.ndarray, edges: np.ndarray, judge: ocr.Judge,
         ood: legibility.OodStats, confidence: float, quantile: float) -> list[str]:
    """Markdown rows: one per width bin, share of the set, legible share, OCR accuracy, share in pieces."""
    legible, read = scored(judge, ood, images, labels, confidence, quantile)
    pieces = in_pieces(images)
    bins = np.digitize(measure(images)["stroke_width"], edges[1:-1])  # NaN (no ink) falls in the last bin
    out = []
    for k in range(len(edges) - 1):
        inside = bins == k
        share = f"{inside.mean():.1%}"
        if not inside.any():
            out.append(f"| {name} | {edges[k]:.2f}–{edges[k + 1]:.2f} | {share} | – | – | – |")
            continue
        out.append(f"| {name} | {edges[k]:.2f}–{edges[k + 1]:.2f} | {share} | {legible[inside].mean():.1%} "
                   f"| {read[inside].mean():.1%} | {pieces[inside].mean():.1%} |")
    out.append(f"| {name}, all | | 100% | {legible.mean():.1%} | {read.mean():.1%} | {pieces.mean():.1%} |")
    return out


@click.command()
@click.option("--samples", "specs", multiple=True, required=True, help="NAME=PATH of a samples.npz")
@click.option("--per-class", default=20, show_default=True, help="real test images per class")
@click.option("--seed", default=0, show_default=True, help="draw of the real images")
@click.option("--params", "params_path", default="params.yaml", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="write the table here")
def main(specs: tuple[str, ...], per_class: int, seed: int, params_path: str, out: Path | None) -> None:
    """Print (and with --out write) the table."""
    cfg = load_params(params_path).evaluate
    judge, ood = ocr.load_judge(paths.OCR_DIR), legibility.load_ood(paths.OCR_DIR)
    test = data.load_split(paths.TEST_NPZ)
    rng = np.random.default_rng(seed)
    pick = np.concatenate([rng.choice(np.flatnonzero(test.labels == c), per_class, replace=False)
                           for c in np.unique(test.labels)])
    real, real_labels = test.images[pick], test.labels[pick]
    widths = measure(real)["stroke_width"]
    edges = np.concatenate([[np.nanmin(widths)], np.nanquantile(widths, QUANTILES), [np.nanmax(widths)]])
    lines = ["| set | stroke width, px (real quantile bin) | share of the set | legible | OCR | in pieces |",
             "|---|---|---|---|---|---|"]
    lines += rows("real test", real, real_labels, edges, judge, ood, cfg.confidence, cfg.ood_quantile)
    for spec in specs:
        name, _, path = spec.partition("=")
        images, labels = data.read_labelled_images(Path(path), "sample")
        lines += rows(name, images, labels, edges, judge, ood, cfg.confidence, cfg.ood_quantile)
    emit_table(lines, out)


if __name__ == "__main__":
    main()
