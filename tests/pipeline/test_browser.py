"""What people see, in a real browser (headless Chromium): a scripted reader completes the human-study sheet
and saves answers that score as expected; the HTML report loads cleanly; the MLflow UI compares two runs."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from browser import chromium, console_errors, full_page_screenshot
from human_fixture import at_random, make_study_repo, read_key, right, run

from devagen.core import paths
from devagen.core.io import read_json

ITEMS = 40  # items on the browser's sheet: enough for the scores, few enough to click through quickly


def _wait(condition: Callable[[], Any], seconds: float, what: str) -> Any:
    """condition()'s first truthy value, polled until `seconds` have passed (then the test fails naming `what`)."""
    deadline = time.time() + seconds
    while True:
        try:
            value = condition()
        except Exception:  # noqa: BLE001 - the page may not be there yet
            value = None
        if value:
            return value
        assert time.time() < deadline, f"waited {seconds} s for {what}"
        time.sleep(0.25)


def _answer_item(driver: Any, answer: dict) -> None:
    """One item as a person does it: tap the glyph's tile, then keys P/M for who wrote it, 1-3 for how sure, N."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, f'input[name="cls"][value="{answer["class"]}"]').find_element(
        By.XPATH, "..").click()
    keys = ("p" if answer["origin"] == "person" else "m") + str(answer["confidence"]) + "n"
    ActionChains(driver).send_keys(keys).perform()  # to whatever has the focus, as a keyboard would


def _complete_sheet(driver: Any, sheet: Path, reader: str, answers: list[dict], downloads: Path) -> Path:
    """Fill the sheet like a reader (closing and reopening it half way), save, and return the downloaded file."""
    from selenium.webdriver.common.by import By

    driver.get(sheet.as_uri())
    driver.find_element(By.ID, "reader").send_keys(reader)
    half = len(answers) // 2
    for answer in answers[:half]:
        _answer_item(driver, answer)
    driver.get("about:blank")
    driver.get(sheet.as_uri())  # stopped and resumed: the answers so far come back from localStorage
    assert driver.find_element(By.ID, "status").text == f"{half} of {len(answers)} answered"
    assert driver.find_element(By.ID, "counter").text == f"Item {half + 1} of {len(answers)}"
    for answer in answers[half:]:
        _answer_item(driver, answer)
    assert driver.find_element(By.ID, "left").text == "Every item is answered."
    driver.find_element(By.ID, "save").click()
    driver.find_element(By.ID, "restart").click()  # the next reader starts on a blank sheet
    return _wait(lambda: [p for p in downloads.glob("answers-*.json") if reader in p.name], 20, "the download")[0]


@pytest.mark.slow
def test_a_scripted_reader_completes_the_sheet_and_the_answers_score(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_study_repo(tmp_path / "repo", items=ITEMS)
    monkeypatch.chdir(root)
    assert run("human-study").exit_code == 0
    key, sheet, downloads = read_key(root), root / paths.HUMAN_DIR / "sheet.html", tmp_path / "downloads"
    rng = np.random.default_rng(7)
    policies = {"AB": [right(t, rng) for t in key["items"]], "CD": [at_random(t, rng) for t in key["items"]]}
    driver = chromium(tmp_path / "profile", downloads)
    try:
        saved = [_complete_sheet(driver, sheet, reader, answers, downloads) for reader, answers in policies.items()]
        assert console_errors(driver) == []
        driver.get(sheet.as_uri())
        full_page_screenshot(driver, tmp_path / "human_sheet.png", width=480)  # a phone-width view
    finally:
        driver.quit()
    for path in saved:
        body = json.loads(path.read_text(encoding="utf-8"))
        assert body["sheet_id"] == key["sheet_id"] and len(body["answers"]) == ITEMS
    result = run("human-score", *map(str, saved))
    assert result.exit_code == 0, result.output
    details = read_json(paths.DETAILS_DIR / "human.json")
    assert details["per_reader"]["AB"]["origin"]["share"] == 1.0
    assert details["per_reader"]["AB"]["read_generated"]["share"] == details["per_reader"]["AB"]["read_real"]["share"] == 1.0
    guesser = details["per_reader"]["CD"]["origin"]
    assert abs(guesser["share"] - 0.5) <= 0.2 and guesser["low"] <= 0.5 <= guesser["high"]


@pytest.mark.slow
def test_the_html_report_opens_without_errors_and_every_image_loads(tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from test_report import PARAMS, RUNS, make_report_root

    from devagen.core.io import write_json, write_text
    from devagen.report.inputs import load_report_inputs
    from devagen.report.pages import build_report

    root = make_report_root(tmp_path / "repo")
    write_json(HUMAN, root / paths.DETAILS_DIR / "human.json")
    html, _ = build_report(load_report_inputs(root, PARAMS, RUNS, "exp-b"))
    page = root / paths.REPORT_HTML
    write_text(html, page)
    driver = chromium(tmp_path / "profile")
    try:
        driver.get(page.as_uri())
        _wait(lambda: driver.execute_script("return document.readyState") == "complete", 20, "the report to load")
        images = driver.find_elements(By.TAG_NAME, "img")
        assert len(images) >= 10
        broken = [i.get_attribute("alt") for i in images
                  if not driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", i)]
        assert broken == []
        assert console_errors(driver) == []
        assert "Human study" in driver.find_element(By.TAG_NAME, "body").text
        full_page_screenshot(driver, tmp_path / "report.png")
    finally:
        driver.quit()


def _share(share: float, n: int) -> dict:
    return {"share": share, "low": share - 0.1, "high": min(1.0, share + 0.1), "hits": round(share * n), "n": n}


READER = {"origin": _share(0.62, 92), "generated_passed_as_person": _share(0.4, 46), "read_generated": _share(0.8, 46),
          "read_real": _share(0.95, 46)}
HUMAN = {"sheet_id": "0123456789abcdef", "items": 92, "readers": 1, "judgements": 92, "origin_accuracy": 0.62,
         "origin_ci_low": 0.52, "origin_ci_high": 0.72, "origin_kappa": None, "pooled": READER,
         "per_reader": {"AB": READER}}


@pytest.mark.slow
def test_the_mlflow_ui_lists_both_runs_and_compares_their_params_and_metrics(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from selenium.webdriver.common.by import By
    from test_mlflow_server import _log_two_runs, _serve

    from devagen.core.config import TrackingConfig

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    _log_two_runs(TrackingConfig(experiment="devagen", uri=store), monkeypatch)
    import mlflow

    client = mlflow.MlflowClient(store)
    experiment = client.get_experiment_by_name("devagen").experiment_id
    run_ids = {r.info.run_name: r.info.run_id for r in client.search_runs([experiment])}
    server, port = _serve(store, tmp_path / "server.log")  # the port the server bound (no race for a free one)
    driver = chromium(tmp_path / "profile")
    try:
        base = f"http://127.0.0.1:{port}"
        runs_page = f"{base}/#/experiments/{experiment}/runs?workflowType=machine_learning"
        text = lambda: driver.find_element(By.TAG_NAME, "body").text  # noqa: E731
        def answers() -> bool:
            assert server.poll() is None, "mlflow server exited"
            with urllib.request.urlopen(f"{base}/health", timeout=5) as response:
                return response.status == 200
        _wait(answers, 150, "mlflow server to answer")
        driver.get(runs_page)
        _wait(lambda: {"baseline", "exp-lr5e5"} <= set(text().split()), 90, "the MLflow UI to list both runs")
        full_page_screenshot(driver, tmp_path / "mlflow_runs.png")
        ids = ",".join(f'"{run_ids[n]}"' for n in ("baseline", "exp-lr5e5"))
        driver.get(f'{base}/#/compare-runs?runs=[{ids}]&experiments=["{experiment}"]')
        _wait(lambda: "train.lr" in text() and "ocr_accuracy" in text(), 60, "the compare view's params and metrics")
        shown = text()
        for value in ("0.001", "5e-05", "0.91", "0.74"):
            assert value in shown, value
        full_page_screenshot(driver, tmp_path / "mlflow_compare.png")
    finally:
        driver.quit()
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
