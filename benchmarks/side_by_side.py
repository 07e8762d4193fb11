"""Generated characters at 4x beside randomly drawn real ones, for looking at: one panel per set, the
same classes in the same rows, real DHCD test images first.

    python benchmarks/side_by_side.py --samples default=samples/samples.npz --samples ssim=/path/samples.npz \
        --out benchmarks/results/aux_losses/side_by_side.png

Each --samples is NAME=PATH of a sample-stage file (samples.npz: uint8 images, int labels). Real and
generated images are drawn per class with seeded RNGs (devagen.report.figures.random_per_class), never the first
ones of a class (DHCD's file order is not random in style).
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from devagen.core.classes import glyphs
from devagen.data.archive import NATIVE_SIZE as REAL_SIDE
from devagen.report.figures import labelled_rows, random_per_class, save_image
from devagen.report.plots import stack_vertical, text_banner
from devagen.sampling.text import parse_text


def panel(images: np.ndarray, labels: np.ndarray, classes: list[int], per_class: int, seed: int, title: str):
    """Rows = classes, `per_class` random images of each, under `title`; every panel the same size on screen
    (DHCD's 32x32 at 4x, a 64x64 model's own pixels at 2x)."""
    pick = random_per_class(labels, per_class, seed)
    rows = [(glyphs()[c], images[pick[labels[pick] == c]]) for c in classes]
    grid = labelled_rows(rows, scale=max(1, 4 * REAL_SIDE // images.shape[-1]))
    return stack_vertical([text_banner(title, grid.width), grid], gap=0)


@click.command()
@click.option("--samples", "sample_sets", multiple=True, required=True, help="NAME=PATH of a samples.npz")
@click.option("--real", "real_path", default="data/prepared/test.npz", show_default=True)
@click.option("--classes", default="क,ख,ङ,झ,ठ,ढ,फ,ज्ञ,५,९", show_default=True, help="glyphs, comma-separated")
@click.option("--per-class", default=6, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--out", required=True, type=click.Path(dir_okay=False))
def main(sample_sets: tuple[str, ...], real_path: str, classes: str, per_class: int, seed: int, out: str) -> None:
    class_ids = [parse_text(g)[0] for g in classes.split(",")]
    real = np.load(real_path)
    panels = [panel(real["images"], real["labels"], class_ids, per_class, seed, "real (random test images)")]
    for spec in sample_sets:
        name, _, path = spec.partition("=")
        if not path:
            raise click.BadParameter(f"{spec!r}: expected NAME=PATH", param_hint="--samples")
        data = np.load(path)
        panels.append(panel(data["images"], data["labels"], class_ids, per_class, seed + 1, name))
    save_image(stack_vertical(panels, gap=16, horizontal=True), Path(out))
    click.echo(f"wrote {out}")


if __name__ == "__main__":
    main()
