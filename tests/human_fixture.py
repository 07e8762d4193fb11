"""A tiny repository for the human study: test.npz prepared from the tiny DHCD archive, a fake samples.npz,
params.yaml with the study on and tracking off; the sheet it makes; answer files a scripted reader writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
import yaml
from click.testing import CliRunner, Result
from dhcd_fixture import make_archive

from devagen.cli import cli
from devagen.core import paths
from devagen.data import prepared as data
from devagen.judges.human_study import ANSWERS_FORMAT

ITEMS = 92


def make_study_repo(root: Path, items: int = ITEMS, seed: int = 0, tracking_uri: str | None = None) -> Path:
    """root/ with data/prepared/test.npz (46 classes x 4), samples/samples.npz (46 x 3) and params.yaml."""
    root.mkdir(parents=True, exist_ok=True)
    archive = make_archive(root / "dhcd.zip", train=1, test=4)
    data.save_split(data.prepare(archive, 32).test, root / paths.TEST_NPZ)
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(46), 3)
    (root / paths.SAMPLES_NPZ).parent.mkdir(parents=True, exist_ok=True)
    np.savez(root / paths.SAMPLES_NPZ, images=rng.integers(0, 256, (len(labels), 32, 32), dtype=np.uint8),
             labels=labels)
    tracking = {"enabled": True, "uri": tracking_uri} if tracking_uri else {"enabled": False}
    (root / "params.yaml").write_text(yaml.safe_dump({"human_study": {"enabled": True, "items": items, "seed": seed},
                                                      "tracking": tracking}))
    return root


def run(*args: str) -> Result:
    """`devagen ARGS` in the working directory, exceptions kept for the test to see."""
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def read_key(root: Path) -> dict:
    return json.loads((root / paths.HUMAN_DIR / "key.json").read_text(encoding="utf-8"))


def right(truth: dict, rng: np.random.Generator) -> dict:
    """The answer of a reader who is always right, and sure."""
    return {"class": truth["label"], "origin": "person" if truth["origin"] == "real" else "model", "confidence": 3}


def at_random(truth: dict, rng: np.random.Generator) -> dict:
    """The answer of a reader who guesses everything."""
    return {"class": int(rng.integers(46)), "origin": str(rng.choice(["person", "model"])), "confidence": 1}


def write_answers(key: dict, reader: str, policy: Callable[[dict, np.random.Generator], dict], path: Path,
                  seed: int = 0) -> Path:
    """An answer file like the sheet saves, answered by `policy`."""
    rng = np.random.default_rng(seed)
    answers = [{"item": t["item"], **policy(t, rng)} for t in key["items"]]
    path.write_text(json.dumps({"format": ANSWERS_FORMAT, "sheet_id": key["sheet_id"], "reader": reader,
                                "answers": answers}), encoding="utf-8")
    return path
