"""`devagen evaluate` (DVC stage evaluate): every quality metric of the samples, beside its real-data floor."""

from __future__ import annotations

from dataclasses import replace

import click

from ..core import paths
from ..core.io import read_json, write_csv
from .common import finish, load, start_run, write_metrics
from .failure import StageCommand
from .options import PARAMS_OPTION


@click.command(cls=StageCommand)
@PARAMS_OPTION
def evaluate(params_path: str) -> None:
    """FID/KID/precision/recall in judge features with the real-data floor, OCR accuracy, legibility, pen style,
    style-space FID, the CNN and tone C2STs and what gives the samples away -> reports/details/eval.json (its headline:
    reports/metrics/eval.json) and figures."""
    from ..core.classes import glyphs
    from ..data import prepared as data
    from ..judges import cas, legibility, metrics, ocr, style_space
    from ..judges.evaluation import (
        evaluate_samples,
        style_evaluation,
        style_space_metrics,
        telltale_block,
        two_sample_tests,
    )
    from ..judges.telltale import telltale_figure
    from ..report import figures

    params = load(params_path)
    tracker = start_run(params, "evaluate")  # first: a failure below is recorded in the run
    weights = metrics.inception_weights_file(params.evaluate.inception_weights)  # a download that fails stops here
    samples, intended = data.read_labelled_images(paths.SAMPLES_NPZ, "sample", unlabelled_ok=True)
    judge, ood = ocr.load_judge(paths.OCR_DIR), legibility.load_ood(paths.OCR_DIR)
    train, test = data.load_split(paths.TRAIN_NPZ), data.load_split(paths.TEST_NPZ)
    cfg, say = (replace(params.evaluate, inception_weights=None if weights is None else str(weights)),
                lambda msg: click.echo(f"evaluate: {msg}"))
    side = samples.shape[-1]
    if side != judge.image_size:  # a 64x64 model: every measure reads its samples at DHCD's side, as the real ones
        say(f"{side}x{side} samples resized (bicubic, antialiased) to the judge's {judge.image_size}x{judge.image_size}")
        samples = data.resize(samples, judge.image_size)
    result = evaluate_samples(judge, ood, samples, intended, train.images, test.images, cfg, say=say)
    result.metrics.update(cas.cas_metrics(params.train_ocr, params.augment, samples, intended, train, test,
                                          cfg.cas_epochs, cfg.cas_batch_size, cfg.seed, say) if cfg.cas
                          else {"cas_status": "off (evaluate.cas: false)"})
    say("pen style vs real test images (and the real-vs-real floor)")
    pen = style_evaluation(samples, intended, test.images, test.labels, glyphs(), cfg.seed)
    result.metrics.update(pen.metrics)
    figures.save_image(pen.figure, paths.FIGURES_DIR / "style.png")
    space = style_space.load_style_space(paths.STYLE_NET_DIR)
    result.metrics.update(style_space_metrics(space, samples, intended, train, test, cfg, say))
    tests = two_sample_tests(samples, intended, train, test, params.c2st, say)
    result.metrics.update(tests.metrics)
    result.metrics["c2st_telltale"] = telltale_block(judge, samples, intended, tests.scores, test, cfg.batch_size)
    figures.save_image(telltale_figure(samples, test.images, result.metrics["c2st_telltale"]),
                       paths.FIGURES_DIR / "telltale.png")
    result.metrics.update(sample_side=side, judged_side=int(judge.image_size))
    ocr_metrics = paths.METRICS_DIR / "ocr.json"
    if ocr_metrics.is_file():
        result.metrics["judge_test_accuracy"] = read_json(ocr_metrics)["test_accuracy"]
    write_metrics("eval", result.metrics)
    write_csv(result.per_class_rows, paths.EVAL_PER_CLASS)
    figures.save_image(metrics.confusion_figure(result.confusion, glyphs(), axes=result.confusion_axes),
                       paths.FIGURES_DIR / "confusion.png")
    tracker.log_artifact(paths.EVAL_PER_CLASS, "results")  # the per-class table, as dvc plots shows it
    finish(tracker, figures=("confusion.png", "style.png", "telltale.png"))
    click.echo(f"evaluate: {headline(result.metrics)}")


def headline(m: dict) -> str:
    """The one-line summary of the evaluation printed at the end of the stage."""
    first = (f"OCR {m['ocr_accuracy']:.4f}" if m["conditional"] else
             f"legible {m['legible_share']:.4f} (real {m['floor_legible_share']:.4f}), {m['class_coverage']}/46 classes")
    return (f"{first}, FID {m['fid']:.3f} (real floor {m['floor_fid']:.3f}), "
            f"stroke width {_times(m['style_stroke_width_ratio'])} real (floor {_times(m['style_stroke_width_floor_ratio'])}), "
            f"style-space FID {m['space_fid']:.3f} (floor {m['floor_space_fid']:.3f}), "
            f"C2ST {m['c2st_accuracy']:.3f} (floor {m['floor_c2st_accuracy']:.3f}), "
            f"tone C2ST {m['tone_c2st_accuracy']:.3f} (floor {m['floor_tone_c2st_accuracy']:.3f})")


def _times(ratio: float | None) -> str:
    """1.213 -> '1.21x'; None (undefined, e.g. blank samples) -> 'n/a'."""
    return "n/a" if ratio is None else f"{ratio:.2f}x"
