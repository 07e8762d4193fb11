"""Probe: the default recipe with a patch network of other widths, or for other step counts, against pixel models.

    .venv/bin/python benchmarks/patch_probe.py --out /tmp/patch2 --steps 3400       # ~9 min on 2 cores (bf16)
    .venv/bin/python benchmarks/patch_probe.py --out /tmp/patch2 --steps 2000 --compare /tmp/cpu_conv_model

Each 32x32 image becomes 4 x 16 x 16 (devagen.diffusion.patches, lossless) and a UNet with no 32x32 level (--channels per
level, default 64,128: the cpu_patch preset) learns the diffusion there; samples go back through pixel_shuffle.
This is how cpu_patch was chosen (benchmarks/results/cpu_patch/README.md; it first ran as a scratch script that fed the
patches through training's latent-diffusion hook, the same arithmetic). It measures like `recipe_probe.py` (OCR,
judge FID at --per-class x 46 images, stroke-width and ink-mass ratios, sampling seconds) and writes
<out>/probe.json and <out>/samples.npz for `side_by_side.py`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path

import click
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import recipe_probe  # noqa: E402  (benchmarks/ is not a package)

from devagen.core import (
    paths,
    presets,  # noqa: E402
)
from devagen.core.params import load_params  # noqa: E402
from devagen.data import prepared as data
from devagen.judges import ocr
from devagen.sampling.generate import generate  # noqa: E402
from devagen.sampling.pipeline import load_pipeline  # noqa: E402
from devagen.training.loop import train_diffusion  # noqa: E402

PRESET = "patch_probe"


def register_preset(channels: tuple[int, ...]) -> str:
    """cpu_patch with these channels per level (one down and one up block each)."""
    n = len(channels)
    presets.PRESETS[PRESET] = {**presets.PRESETS["cpu_patch"], "block_out_channels": channels,
                               "down_block_types": ("DownBlock2D",) * n, "up_block_types": ("UpBlock2D",) * n,
                               "norm_num_groups": math.gcd(32, *channels)}
    return PRESET


@click.command()
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--steps", default=3400, show_default=True, help="train.max_steps (cpu_patch's default; cpu_conv trained 2,000)")
@click.option("--seed", default=0, show_default=True, help="train.seed")
@click.option("--channels", default="64,128", show_default=True, help="UNet channels per level, from 16x16 down")
@click.option("--per-class", default=20, show_default=True, help="samples per class (20 = the evaluate stage's 920)")
@click.option("--compare", "compare", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="another model folder (e.g. a cpu_conv run's models/diffusion) measured on the same labels and seeds")
@click.option("--params", "params_path", default="params.yaml", show_default=True)
def main(out_dir: Path, steps: int, seed: int, channels: str, per_class: int, compare: tuple[Path, ...],
         params_path: str) -> None:
    params = load_params(params_path)
    model_cfg = dataclasses.replace(params.model, preset=register_preset(tuple(int(c) for c in channels.split(","))))
    train_cfg = dataclasses.replace(params.train, max_steps=steps, seed=seed)
    split = data.load_split(paths.TRAIN_NPZ)
    pen = data.read_pen(paths.TRAIN_NPZ, len(split.images)) if model_cfg.style_conditioning else None
    trained = train_diffusion(train_cfg, model_cfg, params.diffusion, params.augment, split.images, split.labels,
                              out_dir / "model", out_dir / "checkpoints", pen=pen)
    train = {k: trained[k] for k in ("steps", "final_loss", "img_per_s", "wall_s", "params", "mixed_precision", "cpu")}
    click.echo(f"train: {train}")
    judge, test = ocr.load_judge(paths.OCR_DIR), data.load_split(paths.TEST_NPZ)
    rows = []
    for name, model in [("patch 2", out_dir / "model")] + [(str(m), m) for m in compare]:
        rows.append({**recipe_probe.measure(model, {}, params, judge, test, per_class), "model": name})
    labels = np.repeat(np.arange(len(np.unique(test.labels)), dtype=np.int64), per_class)
    images = generate(load_pipeline(out_dir / "model", params.sample.sampler, True), labels, len(labels),
                      params.sample, progress=False)
    np.savez(out_dir / "samples.npz", images=images, labels=labels)
    (out_dir / "probe.json").write_text(json.dumps({"channels": channels, "seed": seed, "train": train,
                                                    "rows": rows}, indent=1, default=str))
    click.echo(recipe_probe.table(rows))


if __name__ == "__main__":
    main()
