"""What the report reads: every stage's results (reports/details), the training log, params and recent runs."""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

from ..core import paths
from ..core.classes import CLASS_NAMES
from ..core.errors import DevagenError, one_line
from ..core.integrity import rerun
from ..core.io import read_json
from .sentences import as_float

STAGE_OF = {"data": "prepare", "ocr": "train_ocr", "train": "train", "sample": "sample", "eval": "evaluate"}
OPTIONAL_STAGE_OF = {"vae": "vae", "distill": "distill"}  # read when present; no section (not "not run") otherwise
HUMAN_SCORE = "`devagen human-score ANSWERS...`"  # writes reports/details/human.json (no DVC stage: people answer)


FIGURES = ("dataset", "augment", "loss_curve", "samples", "steps", "denoising", "process", "per_class", "confusion",
           "style", "telltale", "vae", "distill")


KEY_METRICS = ("ocr_accuracy", "legible_share", "fid", "space_fid", "c2st_accuracy", "tone_c2st_accuracy", "kid",
               "precision", "recall", "inception_fid", "final_loss", "img_per_s")


@dataclass(frozen=True)
class ReportInputs:
    """Everything the report shows; built by load_report_inputs or by hand in tests."""

    params: dict[str, Any]  # flattened params.yaml: "train.lr" -> 0.001
    metrics: dict[str, dict]  # "data" | "ocr" | "train" | "sample" | "eval" -> that stage's JSON, {} if not run
    train_log: list[dict]  # rows of reports/train/log.csv: step, loss, lr, img_per_s (str or float)
    figures: dict[str, Path]  # figure name -> existing .png/.gif
    runs: list[dict]  # tracking.recent_runs(...) output, newest first
    run_name: Optional[str]
    date: str = field(default_factory=lambda: time.strftime("%Y-%m-%d %H:%M"))
    report_dir: Path = paths.REPORT_MD.parent  # where report.md lives; its image links are relative to it
    compare_metrics: tuple[str, ...] = KEY_METRICS  # MLflow metric names in the runs table


def read_metrics(root: Path) -> dict[str, dict]:
    """reports/details/<stage>.json (a stage's whole result) under root for each stage; {} for a stage that has
    not run."""
    out: dict[str, dict] = {}
    for stage, writer in {**STAGE_OF, **OPTIONAL_STAGE_OF, "human": ""}.items():
        path = root / paths.DETAILS_DIR / f"{stage}.json"
        try:
            out[stage] = read_json(path) if path.is_file() else {}
        except ValueError as exc:  # JSONDecodeError; UnicodeDecodeError for binary garbage
            fix = rerun(writer) if writer else f"score the answers again: {HUMAN_SCORE}"
            raise DevagenError(f"{path}: not valid JSON ({one_line(exc)}); {fix}") from None
    return out


def read_train_log(root: Path) -> list[dict]:
    """Rows of reports/train/log.csv under root (values as strings); [] when training has not run."""
    path = root / paths.TRAIN_LOG
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def load_report_inputs(root: Path, params: dict, runs: list[dict], run_name: Optional[str]) -> ReportInputs:
    """Collect metrics, the train log and the figures that exist under root; missing files are tolerated."""
    figures: dict[str, Path] = {}
    for name in FIGURES:
        found = [p for p in (root / paths.FIGURES_DIR / f"{name}{ext}" for ext in (".png", ".gif")) if p.is_file()]
        if found:
            figures[name] = found[0]
    return ReportInputs(params=dict(params), metrics=read_metrics(root), train_log=read_train_log(root),
                        figures=figures, runs=list(runs), run_name=run_name, report_dir=root / paths.REPORT_MD.parent)


def per_class_values(raw: Any) -> dict[str, Optional[float]]:
    """per_class_accuracy as {class_name: float or None}, from a dict or a list in class order."""
    if isinstance(raw, Mapping):
        return {str(k): as_float(v) for k, v in raw.items()}
    if isinstance(raw, (list, tuple)) and len(raw) == len(CLASS_NAMES):
        return {name: as_float(v) for name, v in zip(CLASS_NAMES, raw)}
    return {}
