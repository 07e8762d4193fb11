"""The blind human study: what the sheet draws, that its page leaks no answer, how answers are read and scored."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from human_fixture import (
    at_random,
    make_study_repo,
    read_key,
    right,
    run,
    write_answers,
)
from PIL import Image

from devagen.core import paths
from devagen.core.classes import CLASS_NAMES, glyphs
from devagen.core.errors import DevagenError
from devagen.core.io import read_json
from devagen.judges.human_scoring import (
    fleiss_kappa,
    pairwise_agreement,
    summary,
    wilson,
)
from devagen.judges.human_sheet import sheet_html
from devagen.judges.human_study import (
    GENERATED,
    REAL,
    draw_sheet,
    judgements,
    read_answers,
)
from devagen.report.figures import font_file


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny repository after `devagen human-study`."""
    root = make_study_repo(tmp_path_factory.mktemp("study"))
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        assert run("human-study").exit_code == 0
    return root


def test_sheet_is_half_generated_half_real_of_the_same_classes_drawn_at_random() -> None:
    gen = np.arange(10, dtype=np.uint8)[:, None, None].repeat(4, 1).repeat(4, 2)
    real = (100 + np.arange(40, dtype=np.uint8))[:, None, None].repeat(4, 1).repeat(4, 2)
    gen_labels, real_labels = np.arange(10) % 5, np.arange(40) % 5
    sheet = draw_sheet(gen, gen_labels, real, real_labels, 8, seed=3)
    origins = np.array(sheet.origins)
    assert (origins == GENERATED).sum() == (origins == REAL).sum() == 4
    assert sorted(sheet.labels[origins == GENERATED]) == sorted(sheet.labels[origins == REAL])
    assert len(set(sheet.labels[origins == GENERATED])) == 4  # 4 of the 5 classes, none twice
    for image, label, origin, source in zip(sheet.images, sheet.labels, sheet.origins, sheet.sources):
        pool, labels = (gen, gen_labels) if origin == GENERATED else (real, real_labels)
        assert (image == pool[source]).all() and labels[source] == label
    assert set(sheet.sources[origins == REAL]) - set(range(5))  # not the first real images of each class
    again = draw_sheet(gen, gen_labels, real, real_labels, 8, seed=3)
    assert again.sheet_id == sheet.sheet_id and (again.images == sheet.images).all()
    assert draw_sheet(gen, gen_labels, real, real_labels, 8, seed=4).sheet_id != sheet.sheet_id
    assert origins.tolist() != sorted(origins.tolist()) or origins.tolist() != sorted(origins.tolist(), reverse=True)


def test_too_many_items_is_refused_with_the_param_to_change() -> None:
    images = np.zeros((4, 4, 4), np.uint8)
    with pytest.raises(DevagenError, match="human_study.items"):
        draw_sheet(images, np.zeros(4, int), images, np.zeros(4, int), 10, seed=0)


def test_off_stage_writes_only_a_note(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("params.yaml").write_text("human_study:\n  enabled: false\n")
    assert run("human-study").exit_code == 0
    assert [p.name for p in paths.HUMAN_DIR.iterdir()] == ["README.txt"]


def _page_items(html: str) -> list[str]:
    data = json.loads(re.search(r'<script type="application/json" id="sheet-data">(.*?)</script>', html, re.S)[1])
    assert set(data) == {"sheet", "format", "items"}  # nothing per item but its picture
    return data["items"]


def test_the_page_shows_each_item_and_leaks_no_class_or_origin(study: Path) -> None:
    html = (study / paths.HUMAN_DIR / "sheet.html").read_text(encoding="utf-8")
    key = read_key(study)
    items = _page_items(html)
    samples = np.load(study / paths.SAMPLES_NPZ)["images"]
    test = np.load(study / paths.TEST_NPZ)["images"]
    for uri, truth in zip(items, key["items"]):
        shown = np.array(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))))
        assert (shown == (samples if truth["origin"] == GENERATED else test)[truth["source_index"]]).all()
    assert len(items) == len(key["items"]) == 92 and key["sheet_id"] in html
    shown = np.stack([(samples if t["origin"] == GENERATED else test)[t["source_index"]] for t in key["items"]])
    assert html == sheet_html(shown, key["sheet_id"], glyphs(), CLASS_NAMES, font_file().read_bytes())  # made of the pictures alone
    for word in ('"label"', "source_index", f'"{GENERATED}"', '"real"', "key.json", "person wrote"):
        assert word not in html, word
    for name in CLASS_NAMES:  # each class appears once, as one of the 46 choices, never per item
        assert html.count(f'"{name}"') == 2  # title and aria-label of its choice
    assert all(ref.startswith("data:") for ref in re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', html))
    assert "http" not in re.sub(r"data:[^\"')]*", "", html).lower()  # nothing fetched: it works offline
    assert "url(data:font/ttf;base64," in html  # the glyphs' font travels with the page


def test_perfect_and_random_readers_score_as_expected(study: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(study)
    key = read_key(study)
    files = [write_answers(key, "AB", right, study / "ab.json"),
             write_answers(key, "CD", at_random, study / "cd.json", seed=5)]  # 1 guesser in 20 misses 50 %:
    # the next test checks how often over many seeds
    result = run("human-score", *map(str, files))
    assert result.exit_code == 0, result.output
    details, headline = read_json(paths.DETAILS_DIR / "human.json"), read_json(paths.METRICS_DIR / "human.json")
    right_reader, guesser = details["per_reader"]["AB"], details["per_reader"]["CD"]
    assert right_reader["origin"]["share"] == right_reader["read_generated"]["share"] == 1.0
    assert right_reader["read_real"]["share"] == 1.0 and right_reader["origin"]["n"] == 92
    assert abs(guesser["origin"]["share"] - 0.5) < 0.1 and guesser["origin"]["low"] < 0.5 < guesser["origin"]["high"]
    assert guesser["read_real"]["share"] < 0.2
    assert headline["readers"] == 2 and headline["judgements"] == 184
    assert headline["origin_ci_low"] < headline["origin_accuracy"] < headline["origin_ci_high"]
    assert set(headline) <= {"readers", "judgements", "origin_accuracy", "origin_ci_low", "origin_ci_high",
                             "read_generated", "read_real", "origin_kappa"}
    assert abs(details["agreement"]["origin"]["fleiss_kappa"]) < 0.3 and details["agreement"]["origin"]["items"] == 92
    assert len(details["per_class"]) == 46


def test_a_guessing_reader_s_interval_holds_50_percent_about_95_times_in_100(study: Path) -> None:
    key = read_key(study)
    covered = 0
    for seed in range(200):
        answers = [{"item": t["item"], **at_random(t, np.random.default_rng([seed, t["item"]]))} for t in key["items"]]
        origin = summary(judgements(answers, key))["origin"]
        covered += origin["low"] <= 0.5 <= origin["high"]
    assert 0.9 <= covered / 200 <= 0.99


def test_answers_for_another_sheet_or_malformed_are_refused_naming_the_file(study: Path, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    key = read_key(study)
    other = write_answers({**key, "sheet_id": "0123456789abcdef"}, "X", right, tmp_path / "other.json")
    with pytest.raises(DevagenError, match=r"other\.json: answers for sheet '0123456789abcdef'"):
        read_answers(other, key)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(DevagenError, match=r"broken\.json: not a readable answer file"):
        read_answers(broken, key)
    bad = write_answers(key, "X", lambda t, rng: {**right(t, rng), "class": 99}, tmp_path / "bad.json")
    with pytest.raises(DevagenError, match=r"bad\.json: malformed answer 0 \(class 99"):
        read_answers(bad, key)
    monkeypatch.chdir(study)
    from click.testing import CliRunner

    from devagen.cli import cli
    result = CliRunner().invoke(cli, ["human-score", str(other)])
    assert result.exit_code == 1 and result.output.count("\n") == 1 and "other.json" in result.output


def test_wilson_interval_matches_known_values() -> None:
    low, high = wilson(5, 10)
    assert low == pytest.approx(0.2366, abs=1e-4) and high == pytest.approx(0.7634, abs=1e-4)
    assert wilson(0, 10) == (0.0, pytest.approx(0.2775, abs=1e-4)) and wilson(0, 0) == (None, None)


def test_fleiss_kappa_matches_the_textbook_example() -> None:
    counts = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
              [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    ratings = [[c for c, n in enumerate(row) for _ in range(n)] for row in counts]  # Fleiss 1971 via Wikipedia
    assert fleiss_kappa(ratings) == pytest.approx(0.210, abs=1e-3)
    assert fleiss_kappa([["a", "a"], ["b", "b"]]) == 1.0 and fleiss_kappa([["a", "a"], ["a", "a"]]) is None
    assert pairwise_agreement([["a", "a", "b"], ["b", "b", "b"]]) == pytest.approx(4 / 6)
