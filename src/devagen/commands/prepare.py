"""`devagen prepare` (DVC stage prepare): prepared arrays, data metrics and the dataset/augmentation figures."""

from __future__ import annotations

import click

from ..core import paths
from .common import load, write_metrics
from .failure import StageCommand
from .options import PARAMS_OPTION


@click.command(cls=StageCommand)
@PARAMS_OPTION
def prepare(params_path: str) -> None:
    """Decode the archive into data/prepared/{train,test}.npz, metrics and figures."""
    import numpy as np

    from ..core.classes import CLASS_NAMES, glyphs
    from ..data import prepared as data
    from ..data.archive import NATIVE_SIZE
    from ..data.augment import augment_preview
    from ..data.fetch import ARCHIVE_NAME
    from ..report import figures

    params = load(params_path)
    prepared = measured(data.prepare(paths.RAW_DIR / ARCHIVE_NAME, NATIVE_SIZE, params.prepare.dedupe, progress=True))
    data.save_split(prepared.train, paths.TRAIN_NPZ)
    data.save_split(prepared.test, paths.TEST_NPZ)
    stats = data.data_stats(prepared)
    write_metrics("data", stats)
    rows = figures.class_rows(prepared.train.images, prepared.train.labels, glyphs(), per_class=12)
    figures.save_image(figures.labelled_rows(rows, title="DHCD train images, one row per class"),
                       paths.FIGURES_DIR / "dataset.png")
    originals = [images[0] for _, images in rows]
    copies = augment_preview(np.stack(originals), params.augment, copies=8, seed=0)
    aug_rows = [(g, np.concatenate([o[None], c])) for g, o, c in zip(glyphs(), originals, copies)]
    figures.save_image(figures.labelled_rows(aug_rows, title="original | 8 augmented copies"),
                       paths.FIGURES_DIR / "augment.png")
    click.echo(f"prepare: {stats['train']} train, {stats['test']} test, {len(CLASS_NAMES)} classes, "
               f"{stats['duplicates_removed']} duplicates removed from train")


def measured(prepared):  # type: ignore[no-untyped-def]
    """The prepared splits with each image's pen (stroke width px, slant degrees) measured, float32 (N, 2)."""
    from dataclasses import replace

    from ..pen.conditions import measure_pen

    return replace(prepared, train=replace(prepared.train, pen=measure_pen(prepared.train.images)),
                   test=replace(prepared.test, pen=measure_pen(prepared.test.images)))
