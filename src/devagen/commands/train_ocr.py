"""`devagen train-ocr` (DVC stage train_ocr): the OCR judge, its real-feature statistics and its test accuracy."""

from __future__ import annotations

import click

from ..core import paths
from ..core.io import write_csv
from .common import load, write_metrics
from .failure import StageCommand
from .options import PARAMS_OPTION


@click.command("train-ocr", cls=StageCommand)
@PARAMS_OPTION
def train_ocr(params_path: str) -> None:
    """Train the OCR judge on real train images (+ its real-feature statistics); test accuracy into ocr.json."""
    from ..data import prepared as data
    from ..judges import legibility, ocr
    from ..judges.metrics import per_class_rows

    params = load(params_path)
    train, test = data.load_split(paths.TRAIN_NPZ), data.load_split(paths.TEST_NPZ)
    judge, result = ocr.train_judge(params.train_ocr, params.augment, train.images, train.labels,
                                    test.images, test.labels)
    legibility.save_ood(legibility.fit_judge_ood(judge, train.images, train.labels, params.train_ocr.ood_holdout,
                                                 params.train_ocr.seed), paths.OCR_DIR)
    ocr.save_judge(judge, paths.OCR_DIR, params.train_ocr, train.images.shape[-1])  # its manifest covers both
    write_metrics("ocr", result)
    write_csv(per_class_rows(result["per_class_accuracy"]), paths.OCR_PER_CLASS)
    click.echo(f"train-ocr: judge test accuracy {result['test_accuracy']:.4f} in {result['train_seconds']:.0f} s")
