"""README's `dvc exp run` commands, end to end through DVC on the tiny DHCD-shaped archive.

Each line is parsed from README.md and run with its own -S keys; only sizes are overridden (tiny
UNet, 2 sampling steps, at most 6 steps of at most 128 images; the judge and the sample counts shrink in
the committed params.yaml), plus fp16 -> auto and compile -> off on a machine without CUDA, where
neither can run. Then the trained folder loads with
plain diffusers the way the model card says.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from pathlib import Path

import pytest
import torch
from dvc_repo import TINY, make_repo, run

from devagen.core import tracking
from devagen.core.config import TrackingConfig

REPO = Path(__file__).parents[2]
# Sizes only: every README key keeps its value unless it is listed here.
SIZE_OVERRIDES = {"model.preset": "tiny", "sample.steps": "2"}
# The rest of the tiny sizes, for keys README's lines do not set (they set the model and most of train).
TINY_PARAMS = {"train_ocr": TINY["train_ocr"], "train": {"checkpoint_every": 1000, "log_every": 2},
               "sample": TINY["sample"], "evaluate": TINY["evaluate"]}
LOAD_UNCONDITIONAL = r'''
import sys, torch
from diffusers import DDPMPipeline, DPMSolverMultistepScheduler
pipeline = DDPMPipeline.from_pretrained("models/diffusion")
pipeline.scheduler = DPMSolverMultistepScheduler()
images = pipeline(batch_size=4, generator=torch.Generator().manual_seed(0), num_inference_steps=10).images
assert len(images) == 4 and images[0].size == (32, 32), images
'''
LOAD_CONDITIONAL = r'''
import torch
from diffusers import DiffusionPipeline
pipeline = DiffusionPipeline.from_pretrained("models/diffusion", trust_remote_code=True).use_sampler("dpmpp")
images = pipeline(labels=[0, 1, 2], guidance_scale=3.0, num_inference_steps=2, generator=torch.manual_seed(0))
assert type(pipeline).__name__ == "DevagenPipeline" and images.shape == (3, 32, 32), images.shape
'''


def readme_commands() -> list[list[str]]:
    """Every `dvc exp run` line of README.md's GPU section, split into arguments."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    text = text[text.index("## On a GPU"):]
    text = text[:text.find("\n## ")]
    return [shlex.split(line) for line in re.findall(r"^dvc exp run .*$", text, flags=re.MULTILINE)]


def tiny(args: list[str]) -> list[str]:
    """The same command with sizes overridden (and fp16 -> auto, compile -> off without CUDA); -S keys unchanged."""
    out = []
    cuda = torch.cuda.is_available()
    for arg in args:
        key, eq, value = arg.partition("=")
        if eq and key in SIZE_OVERRIDES:
            value = SIZE_OVERRIDES[key]
        if eq and key == "train.batch_size":
            value = str(min(int(value), 128))
        if eq and key == "train.max_steps" and value != "0":
            value = "6"
        if eq and key == "train.mixed_precision" and value == "fp16" and not cuda:
            value = "auto"
        if eq and key == "train.compile" and not cuda:
            value = "off"
        out.append(f"{key}={value}" if eq else arg)
    return out


def _set_keys(args: list[str]) -> list[str]:
    return [a.partition("=")[0] for a, prev in zip(args[1:], args) if prev == "-S"]


def test_readme_has_the_seed_and_recommended_commands() -> None:
    commands = readme_commands()
    names = [c[c.index("-n") + 1] for c in commands]
    assert names == ["seed-gpu", "gpu-recommended", "gpu-fast"]
    seed = dict(a.partition("=")[::2] for a in tiny(commands[0]) if "=" in a)
    assert seed["model.conditional"] == "false" and seed["model.preset"] == "tiny"
    assert _set_keys(tiny(commands[1])) == _set_keys(commands[1])


@pytest.mark.slow
def test_readme_dvc_exp_run_lines_run_end_to_end(tmp_path: Path) -> None:
    repo, env = make_repo(tmp_path, TINY_PARAMS, tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    loads = {"seed-gpu": LOAD_UNCONDITIONAL, "gpu-recommended": LOAD_CONDITIONAL, "gpu-fast": LOAD_CONDITIONAL}
    for args in readme_commands():
        name = args[args.index("-n") + 1]
        run(tiny(args), repo, env)
        ev = json.loads((repo / "reports/details/eval.json").read_text())
        conditional = name != "seed-gpu"
        assert ev["conditional"] is conditional and ev["n_generated"] == 92
        assert ("per_class_accuracy" if conditional else "per_class_read_share") in ev
        for out in ("reports/figures/confusion.png", "reports/eval/per_class.csv", "reports/figures/per_class.png",
                    "reports/report.html", "models/diffusion/README.md", "models/diffusion/samples.png"):
            assert (repo / out).is_file(), f"{name}: {out}"
        card = (repo / "models/diffusion/README.md").read_text(encoding="utf-8")
        assert ("class-conditional" in card) is conditional and "library_name: diffusers" in card
        run([sys.executable, "-c", loads[name]], repo, env)
    listed = run(["dvc", "exp", "list", "--name-only"], repo, env).split()
    assert {"seed-gpu", "gpu-recommended", "gpu-fast"} <= set(listed)
    runs = tracking.recent_runs(TrackingConfig(uri=f"sqlite:///{tmp_path / 'mlflow.db'}"), 10)
    assert sorted(r["name"] for r in runs) == ["gpu-fast", "gpu-recommended", "seed-gpu"]  # one run per experiment
