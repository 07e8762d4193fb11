"""`devagen report` (DVC stage report): the report pages, the model card and the MLflow model."""

from __future__ import annotations

from pathlib import Path

import click

from ..core import paths, tracking
from ..core.io import read_json, write_json, write_text
from ..core.params import flatten
from .common import finish, load, start_run
from .failure import StageCommand
from .options import PARAMS_OPTION


@click.command(cls=StageCommand)
@PARAMS_OPTION
def report(params_path: str) -> None:
    """Render reports/report.html and reports/report.md and log them to the MLflow run."""
    from ..report.charts import render_plots
    from ..report.inputs import load_report_inputs, read_metrics
    from ..report.modelcard import write_model_card
    from ..report.pages import build_report
    from ..serving.pyfunc_model import log_model

    params = load(params_path)
    tracker = start_run(params, "report")
    tracker.log_metrics_files(paths.DETAILS_FILES)  # this run's row in the comparison table has its numbers
    reused = reused_stages(tracker.tag(tracking.STAGES_TAG))
    tracker.set_tags({"devagen.reused_stages": ",".join(reused) or "none"})
    runs = tracking.recent_runs(params.tracking, params.report.recent_runs)
    current = next((r["name"] for r in runs if r["run_id"] == tracker.run_id), None)
    render_plots(Path("."))
    html, markdown = build_report(load_report_inputs(Path("."), flatten(params), runs, current))
    write_text(html, paths.REPORT_HTML)
    write_text(markdown, paths.REPORT_MD)
    card = write_model_card(paths.DIFFUSION_DIR, flatten(params), read_metrics(Path(".")),
                            paths.FIGURES_DIR / "samples.png", current or "devagen")
    for path in (paths.REPORT_HTML, paths.REPORT_MD, card):
        tracker.log_artifact(path, "report")
    tracker.log_artifact(paths.DETAILS_DIR, "results/details")  # every stage's whole result, per-class values included
    if params.tracking.log_model:
        sample_cfg = params.sample
        log_model(tracker, paths.DIFFUSION_DIR, sample_cfg.sampler, sample_cfg.use_ema,
                  {k: getattr(sample_cfg, k) for k in ("seed", "steps", "guidance_scale")})
    finish(tracker)
    write_json({"experiment": params.tracking.experiment, "run_name": tracker.name, "run_id": tracker.run_id,
                "reused_stages": reused} if tracker.active else {"tracking": "off"}, paths.RUN_RECORD)
    click.echo(f"report: {paths.REPORT_HTML}, {paths.REPORT_MD} and the model card {card}")


def reused_stages(ran: str) -> list[str]:
    """The tracked stages whose results this run reuses (DVC skipped them as unchanged or restored them
    from its run cache): those with results that did not run in this run; the optional stages only when on."""
    return [stage for stage, stem in TRACKED if stage not in ran.split(",") and _enabled(paths.DETAILS_FILES[stem])]


def _enabled(path: Path) -> bool:
    """Whether a stage's results exist and say it was on (unreadable ones count as on: the report names them)."""
    if not path.is_file():
        return False
    try:
        return read_json(path).get("enabled", True) is not False
    except (ValueError, AttributeError):
        return True


TRACKED = (("vae", "vae"), ("train", "train"), ("distill", "distill"), ("noisy_classifier", "noisy_classifier"),
           ("sample", "sample"), ("evaluate", "eval"))
