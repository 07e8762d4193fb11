"""Faint specks: grey levels 1..8 with no brighter neighbour, in real DHCD and in samples.

    python benchmarks/specks.py --samples default=samples/samples.npz --samples other=/tmp/other.npz

DHCD's faint halo (levels 1-8) lies beside its strokes; a halo pixel with none of its 8 neighbours above 8 is a
speck on the background. Prints, for the real train split (a seeded 5,000-image draw) and each samples.npz, the
specks per mille of all pixels and the share of images with at least one.
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np
import torch
import torch.nn.functional as F

from devagen.judges.telltale import FAINT


def specks(images: np.ndarray) -> tuple[float, float]:
    """uint8 (N, S, S) -> (specks per mille of pixels, share of images with a speck)."""
    x = torch.as_tensor(images)[:, None]
    beside = F.max_pool2d((x > FAINT[1]).float(), 3, stride=1, padding=1) > 0
    lone = (x >= FAINT[0]) & (x <= FAINT[1]) & ~beside
    return lone.sum().item() / x.numel() * 1e3, (lone.sum((1, 2, 3)) > 0).float().mean().item()


@click.command()
@click.option("--samples", "named", multiple=True, required=True, help="NAME=PATH of a samples.npz")
@click.option("--real", default="data/prepared/train.npz", show_default=True)
def main(named: tuple[str, ...], real: str) -> None:
    """A Markdown table: one row for the real split, one per samples file."""
    pool = np.load(real)["images"]
    rows = [("real train (5,000)", pool[np.random.default_rng(0).choice(len(pool), 5000, replace=False)])]
    rows += [(name, np.load(Path(path))["images"]) for name, _, path in (n.partition("=") for n in named)]
    click.echo("| set | specks, per mille of pixels | images with a speck |\n|---|---|---|")
    for name, images in rows:
        per_mille, share = specks(images)
        click.echo(f"| {name} | {per_mille:.2f} | {share:.1%} |")


if __name__ == "__main__":
    main()
