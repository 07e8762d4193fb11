"""Each stage's DVC metrics file holds only its headline scalars (`dvc exp show` stays readable); its whole
result goes to reports/details/<stem>.json, which the report and MLflow read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from dvc_repo import make_repo, run

from devagen.commands.common import HEADLINE, headline, write_metrics
from devagen.core import paths
from devagen.core.io import read_json

REPO = Path(__file__).parents[2]
STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
COMMITTED = {p.stem: read_json(p) for p in sorted((REPO / "tests/fixtures/details").glob("*.json"))}  # a full run's
MAX_EVAL_KEYS = 14  # a person reads the eval row at a glance


def _names(entries: list) -> list[str]:
    return [next(iter(e)) if isinstance(e, dict) else e for e in entries]


def _scalar(value: object) -> bool:
    return isinstance(value, (bool, int, float))


def test_metrics_hold_only_headline_scalars_and_details_the_whole_result(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    ev = COMMITTED["eval"]
    assert any(isinstance(v, (dict, list)) for v in ev.values()) and len(ev) > 40  # the per-class dicts, lists...
    write_metrics("eval", ev)
    shown = read_json(paths.METRICS_DIR / "eval.json")
    assert read_json(paths.DETAILS_DIR / "eval.json") == ev
    assert all(_scalar(v) for v in shown.values()) and 8 <= len(shown) <= MAX_EVAL_KEYS
    assert list(shown) == list(HEADLINE["eval"]) and all(shown[k] == ev[k] for k in shown)


def test_missing_and_non_numeric_headline_keys_are_left_out() -> None:
    unconditional = {"conditional": False, "legible_share": 0.4, "class_coverage": 30, "fid": 2.0,
                     "style_stroke_width_ratio": None, "per_class_read_share": {"ka": 0.1}}
    assert headline("eval", unconditional) == {"legible_share": 0.4, "class_coverage": 30, "fid": 2.0}
    assert headline("vae", {"enabled": False}) == {"enabled": False}


def test_distill_headline_follows_the_students_that_ran() -> None:
    rows = [{"steps": n, "ocr_accuracy": 0.9, "fid": 1.0, "ms_per_image": 3.0} for n in (4, 1)]
    flat = {f"steps_{r['steps']}_{k}": r[k] for r in rows for k in ("ocr_accuracy", "fid", "ms_per_image")}
    assert list(headline("distill", {"enabled": True, **flat, "students": rows})) == [
        "enabled", "steps_4_ocr_accuracy", "steps_1_ocr_accuracy", "steps_4_fid", "steps_1_fid"]


def test_every_metrics_file_of_dvc_yaml_has_a_headline_and_a_cached_details_out() -> None:
    """Details are cached outs: a `cache: false` plain out would keep DVC from saving the stage to its run cache."""
    stems = set()
    for name, stage in STAGES.items():
        for metric in _names(stage.get("metrics", [])):
            stem = Path(metric).stem
            assert metric == str(paths.METRICS_DIR / f"{stem}.json") and stem in HEADLINE, name
            details = str(paths.DETAILS_DIR / f"{stem}.json")
            assert details in stage["outs"], f"{name}: no cached out {details}"
            stems.add(stem)
    assert stems == set(HEADLINE) and set(paths.DETAILS_FILES) <= stems
    report_deps = STAGES["report"]["deps"]
    assert not [d for d in report_deps if d.startswith(f"{paths.METRICS_DIR}/")]  # it reads the details


def test_dvc_metrics_show_lists_only_headline_keys(tmp_path: Path) -> None:
    """A tiny DVC repository of the pipeline, every stage's files written from the committed results:
    `dvc metrics show` lists exactly HEADLINE's keys (at most a dozen or so per file), nothing nested."""
    repo, env = make_repo(tmp_path, {})
    for stem, result in COMMITTED.items():
        for folder, values in ((paths.DETAILS_DIR, result), (paths.METRICS_DIR, headline(stem, result))):
            (repo / folder).mkdir(parents=True, exist_ok=True)
            (repo / folder / f"{stem}.json").write_text(json.dumps(values))
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], repo, env))
    files = next(iter(shown.values()))["data"]
    assert set(files) == {str(paths.METRICS_DIR / f"{stem}.json") for stem in HEADLINE}
    for file, content in files.items():
        values = content["data"]
        assert values == headline(Path(file).stem, COMMITTED[Path(file).stem]), file
        assert all(_scalar(v) for v in values.values()), file
    assert sum(len(c["data"]) for c in files.values()) <= 40
