"""Assert that pipeline outputs exist and hold sane values (used by .ci/run after each stage)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from PIL import Image


def check_prepare() -> None:
    data = json.loads(Path("reports/metrics/data.json").read_text())
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

if __name__ == "__main__":
    for name in sys.argv[1:]:
        CHECKS[name]()
        print(f"check {name}: ok")
