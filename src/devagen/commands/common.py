"""What the commands share: reading params.yaml, writing a stage's metrics and details,
and opening or ending a stage's MLflow run (with the prepared DHCD splits as its dataset inputs)."""

from __future__ import annotations

from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

from ..core import paths, tracking
from ..core.config import SampleConfig
from ..core.params import Params
from ..core.io import write_json
from ..core.params import flatten, load_params
from ..data import lineage
from .options import READ_FROM

# stem -> the keys of its result a person compares across experiments: reports/metrics/<stem>.json (DVC
# `metrics:`, the columns of `dvc exp show`) holds only these; reports/details/<stem>.json holds the whole result.
# fnmatch patterns, so distill's steps_<N>_* keys follow distill.student_steps. A key a run lacks is left out
# (an unconditional model has no ocr_accuracy; a switched-off stage writes only `enabled`).
HEADLINE: dict[str, tuple[str, ...]] = {
    "data": ("train", "test", "duplicates_removed"),
    "ocr": ("test_accuracy", "train_seconds"),
    "style_net": ("test_accuracy",),
    "vae": ("enabled", "psnr_db", "ocr_accuracy_reconstructed", "stroke_width_ratio", "ink_mass_ratio"),
    "train": ("final_loss", "img_per_s", "wall_s"),
    "distill": ("enabled", "student_params", "steps_*_ocr_accuracy", "steps_*_fid"),
    "noisy_classifier": ("enabled", "final_loss", "test_accuracy_t*"),
    "sample": ("images", "images_per_s", "nfe"),
    "eval": ("ocr_accuracy", "legible_share", "class_coverage", "fid", "floor_fid", "precision", "recall",
             "space_fid", "c2st_accuracy", "floor_c2st_accuracy", "tone_c2st_accuracy", "floor_tone_c2st_accuracy",
             "style_stroke_width_ratio", "style_ink_mass_ratio"),
}



def load(params_path: str) -> Params:
    """The validated params.yaml at `params_path`."""
    READ_FROM["path"] = params_path
    return load_params(Path(params_path))


def classifier_folder(cfg: SampleConfig) -> Optional[Path]:
    """The noisy_classifier stage's folder when sampling is guided by it (sample.guidance: classifier), else None."""
    return paths.NOISY_CLASSIFIER_DIR if cfg.guidance == "classifier" else None


def start_run(params: Params, stage: str, tags: dict | None = None) -> tracking.Tracker:
    """This experiment's MLflow run, opened (or joined) by `stage` with the whole params.yaml; call it
    before the stage's work, so that a failure is recorded in the run."""
    tracker = tracking.stage_run(params.tracking, flatten(params), stage, tags)
    log_splits(tracker, params.prepare.dedupe, params.fetch.url)
    return tracker


def log_splits(tracker: tracking.Tracker, dedupe: bool, source: str) -> None:
    """The prepared DHCD splits as the run's dataset inputs, logged by the stage that creates the run (hashing
    the archive once per experiment, not in every stage)."""
    if tracker.active and tracker.created:
        tracker.log_datasets(lineage.prepared_splits(paths.RAW_DIR, paths.PREPARED_DIR, dedupe, source))


def headline(stem: str, result: Mapping[str, Any], patterns: Iterable[str] = ()) -> dict[str, bool | int | float]:
    """The keys of `result` matching `patterns` (default HEADLINE[stem]) that hold a number or a bool (no None,
    text, list or dict), in the patterns' order."""
    keys = [k for pattern in (patterns or HEADLINE[stem]) for k in result if fnmatchcase(k, pattern)]
    return {k: result[k] for k in dict.fromkeys(keys)
            if isinstance(result[k], (bool, int, float))}


def write_metrics(stem: str, result: Mapping[str, Any], patterns: Iterable[str] = ()) -> None:
    """`result` whole into reports/details/<stem>.json, its headline (`patterns`, default HEADLINE[stem]) into
    reports/metrics/<stem>.json (in that order: a metrics file never stands beside older details)."""
    write_json(dict(result), paths.DETAILS_DIR / f"{stem}.json")
    write_json(headline(stem, result, patterns), paths.METRICS_DIR / f"{stem}.json")


def finish(tracker: tracking.Tracker, figures: Iterable[str] = ()) -> None:
    """Log these reports/figures/ files, every stage's details file (whole results), and mark the run FINISHED."""
    for name in figures:
        tracker.log_artifact(paths.FIGURES_DIR / name, "figures")
    tracker.end_stage(paths.DETAILS_FILES)
