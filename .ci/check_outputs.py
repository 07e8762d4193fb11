"""Assert that pipeline outputs exist and hold sane values (used by .ci/run after each stage)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from PIL import Image


def _details(name: str) -> dict:
    """A stage's whole result; reports/metrics/<name>.json holds only its headline."""
    return json.loads(Path(f"reports/details/{name}.json").read_text())


def check_prepare() -> None:
    data = _details("data")
    assert data["classes"] == 46, data["classes"]
    assert data["test"] == 13_800, data["test"]
    assert data["train"] == 78_175, data["train"]
    assert (data["duplicates_within_train"], data["duplicates_of_test"]) == (20, 5)
    assert all(n > 1_600 for n in data["train_per_class"].values())
    assert 0.2 < data["pixel_mean"] < 0.3
    for name in ("dataset.png", "augment.png"):
        with Image.open(Path("reports/figures") / name) as img:
            assert img.width > 200 and img.height > 46 * 32, (name, img.size)
    for split in ("train", "test"):
        assert Path(f"data/prepared/{split}.npz").stat().st_size > 1_000_000


CHECKS = {"prepare": check_prepare}


def check_train_ocr() -> None:
    ocr = _details("ocr")
    assert ocr["test_accuracy"] >= 0.99, f"judge test accuracy {ocr['test_accuracy']:.4f} < 0.99"
    assert len(ocr["per_class_accuracy"]) == 46
    assert Path("models/ocr/ood.safetensors").is_file(), "the judge's legibility statistics are missing"


def check_train() -> None:
    train = _details("train")
    assert train["steps"] == 300 and train["final_loss"] == train["final_loss"] and train["final_loss"] < 1.0, train
    assert Path("models/diffusion/unet/config.json").is_file()
    assert len(Path("reports/train/log.csv").read_text().splitlines()) > 5


def check_sample() -> None:
    import numpy as np

    with np.load("samples/samples.npz") as npz:
        assert npz["images"].shape == (460, 32, 32), npz["images"].shape
    for name in ("samples.png", "steps.png", "process.png", "denoising.gif"):
        assert Path("reports/figures", name).stat().st_size > 1000, name


def check_evaluate() -> None:
    ev = _details("eval")
    for key in ("fid", "kid", "precision", "recall", "floor_fid", "floor_kid", "ocr_accuracy", "per_class_accuracy"):
        assert key in ev, key
    assert ev["floor_fid"] < ev["fid"], "a tiny 300-step model should be further from real data than real data is"
    assert 0.0 <= ev["ocr_accuracy"] <= 1.0 and len(ev["per_class_accuracy"]) == 46
    assert ev["floor_legible_share"] >= 0.9, f"only {ev['floor_legible_share']:.3f} of real test images legible"


def check_report() -> None:
    import re

    md = Path("reports/report.md").read_text()
    links = re.findall(r"\]\(([^)]+)\)", md)
    assert links, "report.md links no figure"
    for link in links:
        if not link.startswith(("http", "#")):
            assert (Path("reports") / link).is_file(), f"report.md links a missing file: {link}"
    html = Path("reports/report.html").read_text()
    assert html.count("data:image/") >= 8 and 'src="http' not in html


CHECKS.update(train_ocr=check_train_ocr, train=check_train, sample=check_sample,
              evaluate=check_evaluate, report=check_report)


if __name__ == "__main__":
    for name in sys.argv[1:]:
        CHECKS[name]()
        print(f"check {name}: ok")
