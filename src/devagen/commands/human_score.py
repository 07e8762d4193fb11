"""`devagen human-score ANSWERS...`: score readers' answer files against the sheet's key into
reports/metrics/human.json (headline) and reports/details/human.json (everything), and log them to MLflow."""

from __future__ import annotations

from pathlib import Path

import click

from ..core import paths
from ..core.errors import DevagenError
from .common import finish, load, start_run, write_metrics
from .options import PARAMS_OPTION
from .human_study import KEY, OUT


@click.command()
@click.argument("answers", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--key", "key_path", default=str(OUT / KEY), show_default=True,
              type=click.Path(dir_okay=False, path_type=Path), help="the sheet's answer key")
@PARAMS_OPTION
def human_score(answers: tuple[Path, ...], key_path: Path, params_path: str) -> None:
    """Score answer files saved from the human-study sheet: can readers tell the model from people?"""
    from ..judges.human_scoring import HEADLINE_KEYS, score
    from ..judges.human_study import judgements, read_answers, read_key

    key = read_key(key_path)
    by_reader: dict[str, list[dict]] = {}
    for path in answers:
        read = read_answers(path, key)
        if read["reader"] in by_reader:
            raise DevagenError(f"{path}: a second answer file of reader {read['reader']!r}; "
                               "score one file per reader")
        by_reader[read["reader"]] = judgements(read["answers"], key)
    result = {"sheet_id": key["sheet_id"], "items": len(key["items"]), **score(by_reader)}
    tracker = start_run(load(params_path), "human_score")
    write_metrics("human", result, HEADLINE_KEYS)
    tracker.log_metrics_files({"human": paths.METRICS_DIR / "human.json"})
    tracker.log_artifact(paths.DETAILS_DIR / "human.json", "human")
    finish(tracker)
    share, low, high = result["origin_accuracy"], result["origin_ci_low"], result["origin_ci_high"]
    told = "no origin answered" if share is None else f"{share:.1%} (95 % CI {low:.1%}-{high:.1%}; 50 % = cannot tell)"
    click.echo(f"human-score: {len(by_reader)} reader(s), told generated from real {told}; "
               f"{paths.METRICS_DIR / 'human.json'}, {paths.DETAILS_DIR / 'human.json'}")
