"""`devagen ...`: the commands users type; each DVC stage (stages/<name>.py) runs one of them.

Each command: resolve paths -> load config -> one library call -> write outputs -> log.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from . import paths
from .config import Params, load_params
from .errors import DevagenError
from .io import write_json

PARAMS_OPTION = click.option("--params", "params_path", default="params.yaml", show_default=True,
                             type=click.Path(dir_okay=False), help="params.yaml to read")


class _Group(click.Group):
    """Turns DevagenError into one line on stderr and exit status 1 (no traceback)."""

    def invoke(self, ctx: click.Context):  # type: ignore[no-untyped-def]
        try:
            return super().invoke(ctx)
        except DevagenError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(1)


@click.group(cls=_Group)
@click.version_option(package_name="devagen")
def cli() -> None:
    """Train diffusion models that write handwritten Devanagari characters."""


def _params(path: str) -> Params:
    return load_params(Path(path))


@cli.command()
@click.option("--from", "local", type=click.Path(dir_okay=False), default=None,
              help="local copy of the DHCD zip (else $DHCD_ARCHIVE, else download)")
@PARAMS_OPTION
def fetch(local: str | None, params_path: str) -> None:
    """Put the validated DHCD archive at data/raw/."""
    from .fetch import fetch_archive

    params = _params(params_path)
    archive, counts = fetch_archive(params.fetch, paths.RAW_DIR, local=local)
    click.echo(f"fetch: {archive} ok ({counts['Train']} train + {counts['Test']} test images)")


@cli.command()
@PARAMS_OPTION
def prepare(params_path: str) -> None:
    """Decode the archive into data/prepared/{train,test}.npz, metrics and figures."""
    from . import data, figures
    from .augment import augment_preview
    from .classes import CLASS_NAMES, glyphs
    from .fetch import ARCHIVE_NAME

    params = _params(params_path)
    prepared = data.prepare(paths.RAW_DIR / ARCHIVE_NAME, params.data.image_size, params.data.dedupe, progress=True)
    data.save_split(prepared.train, paths.TRAIN_NPZ)
    data.save_split(prepared.test, paths.TEST_NPZ)
    stats = data.data_stats(prepared)
    write_json(stats, paths.METRICS_DIR / "data.json")
    rows = figures.class_rows(prepared.train.images, prepared.train.labels, glyphs(), per_class=12)
    figures.save_image(figures.labelled_rows(rows, title="DHCD train images, one row per class"),
                       paths.FIGURES_DIR / "dataset.png")
    originals = [images[0] for _, images in rows]
    import numpy as np

    copies = augment_preview(np.stack(originals), params.augment, copies=8, seed=0)
    aug_rows = [(g, np.concatenate([o[None], c])) for g, o, c in zip(glyphs(), originals, copies)]
    figures.save_image(figures.labelled_rows(aug_rows, title="original | 8 augmented copies"),
                       paths.FIGURES_DIR / "augment.png")
    click.echo(f"prepare: {stats['train']} train, {stats['test']} test, {len(CLASS_NAMES)} classes, "
               f"{stats['duplicates_removed']} duplicates removed from train")


data_group = click.Group("data", help="Dataset commands (aliases of the stage commands).")
data_group.add_command(fetch)
data_group.add_command(prepare)
cli.add_command(data_group)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    cli.main(args=argv, prog_name="devagen")


def run_stage(name: str) -> None:
    """Entry point of stages/<name>.py: the same command, named after the DVC stage."""
    main([name.replace("_", "-"), *sys.argv[1:]])
