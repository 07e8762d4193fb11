"""Probe: the default recipe learned in a 2x2 space-to-depth ("patch 2") space instead of on pixels.

    .venv/bin/python benchmarks/patch_probe.py --out /tmp/patch2 --steps 3400       # ~9 min on 2 cores (bf16)
    .venv/bin/python benchmarks/patch_probe.py --out /tmp/patch2 --steps 2000 --compare models/diffusion

Each 32x32 image becomes 4 x 16 x 16 (`pixel_unshuffle`, lossless) and a UNet with no 32x32 level
(--channels per level, default 64,128) learns the diffusion there; samples go back through `pixel_shuffle`.
With i.i.d. Gaussian noise this is the same diffusion as on pixels with a network whose first layer sees
2x2 patches, so nothing is lost in the representation: the probe asks whether the cheaper network is as good.

It reuses the latent-diffusion hooks: `training.train_diffusion(vae=...)` takes the space-to-depth as a
parameter-free "autoencoder", and the pipeline decodes with `pixel_shuffle`. Not a pipeline option yet: the
model folder it writes is read back only by this script. Measures like `recipe_probe.py` (OCR, judge FID at
--per-class x 46 images, stroke-width and ink-mass ratios, sampling seconds); writes <out>/probe.json and
<out>/samples.npz for `side_by_side.py`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import types
from pathlib import Path

import click
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import recipe_probe  # noqa: E402  (benchmarks/ is not a package)

from devagen import data, ocr, paths, presets  # noqa: E402
from devagen.config import load_params  # noqa: E402
from devagen.pipeline import load_pipeline  # noqa: E402
from devagen.sampling import generate  # noqa: E402
from devagen.training import train_diffusion  # noqa: E402

PATCH = 2
PRESET = "patch_probe"


class SpaceToDepth(torch.nn.Module):
    """A lossless, parameter-free stand-in for latent diffusion's autoencoder: (B, 1, S, S) <-> (B, 4, S/2, S/2)."""

    def __init__(self, image_size: int = 32) -> None:
        super().__init__()
        # latent.latent_downsample reads 2 ** (len(block_out_channels) - 1)
        self.config = types.SimpleNamespace(block_out_channels=(1, 1), latent_channels=PATCH * PATCH,
                                            scaling_factor=1.0, sample_size=image_size)
        self._anchor = torch.nn.Parameter(torch.zeros(1), requires_grad=False)  # so .parameters() names a device

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    def encode(self, x: torch.Tensor) -> types.SimpleNamespace:
        return types.SimpleNamespace(latent_dist=types.SimpleNamespace(mean=F.pixel_unshuffle(x, PATCH)))

    def decode(self, z: torch.Tensor) -> types.SimpleNamespace:
        return types.SimpleNamespace(sample=F.pixel_shuffle(z, PATCH))

    def save_pretrained(self, directory: Path) -> None:
        """Nothing to save: the model folder's vae/ stays empty, so load_pipeline sees a pixel model."""
        Path(directory).mkdir(parents=True, exist_ok=True)


def register_preset(channels: tuple[int, ...]) -> str:
    """A cpu_conv-like preset (one ResNet per block, no attention, no mid block) with these channels per level."""
    n = len(channels)
    presets.PRESETS[PRESET] = {"block_out_channels": channels, "down_block_types": ("DownBlock2D",) * n,
                               "up_block_types": ("UpBlock2D",) * n, "layers_per_block": 1, "mid_block_type": None,
                               "norm_num_groups": math.gcd(32, *channels)}
    return PRESET


def load_patch_pipeline(model: Path, sampler: str, with_guide: bool):  # type: ignore[no-untyped-def]
    """devagen's pipeline for a model folder this probe wrote: draws 4 x 16 x 16, returns 32 x 32 images."""
    pipe = load_pipeline(model, sampler, with_guide)

    class PatchPipeline(type(pipe)):  # type: ignore[misc, valid-type]
        latent = property(lambda self: True)
        image_shape = property(lambda self: tuple(PATCH * s for s in self.sample_shape))

        def decoded(self, x: torch.Tensor) -> torch.Tensor:
            return F.pixel_shuffle(x.float(), PATCH)

    pipe.__class__ = PatchPipeline
    return pipe


@click.command()
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--steps", default=3400, show_default=True, help="train.max_steps (the default trains 2,000 on pixels)")
@click.option("--seed", default=0, show_default=True, help="train.seed")
@click.option("--channels", default="64,128", show_default=True, help="UNet channels per level, from 16x16 down")
@click.option("--per-class", default=20, show_default=True, help="samples per class (20 = the evaluate stage's 920)")
@click.option("--compare", "compare", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="a pixel model folder (e.g. models/diffusion) measured on the same labels and seeds")
@click.option("--params", "params_path", default="params.yaml", show_default=True)
def main(out_dir: Path, steps: int, seed: int, channels: str, per_class: int, compare: tuple[Path, ...],
         params_path: str) -> None:
    params = load_params(params_path)
    model_cfg = dataclasses.replace(params.model, preset=register_preset(tuple(int(c) for c in channels.split(","))))
    train_cfg = dataclasses.replace(params.train, max_steps=steps, seed=seed)
    split = data.load_split(paths.TRAIN_NPZ)
    pen = data.read_pen(paths.TRAIN_NPZ, len(split.images)) if model_cfg.style_conditioning else None
    trained = train_diffusion(train_cfg, model_cfg, params.diffusion, params.augment, split.images, split.labels,
                              out_dir / "model", out_dir / "checkpoints", pen=pen, vae=SpaceToDepth())
    train = {k: trained[k] for k in ("steps", "final_loss", "img_per_s", "wall_s", "params", "mixed_precision", "cpu")}
    click.echo(f"train: {train}")
    judge, test = ocr.load_judge(paths.OCR_DIR), data.load_split(paths.TEST_NPZ)
    rows = []
    for name, model, loader in [("patch 2", out_dir / "model", load_patch_pipeline)] + \
                               [(str(m), m, load_pipeline) for m in compare]:
        recipe_probe.load_pipeline = loader  # measure() loads through this name
        rows.append({**recipe_probe.measure(model, {}, params, judge, test, per_class), "model": name})
    labels = np.repeat(np.arange(len(np.unique(test.labels)), dtype=np.int64), per_class)
    images = generate(load_patch_pipeline(out_dir / "model", params.sample.sampler, True), labels, len(labels),
                      params.sample, progress=False)
    np.savez(out_dir / "samples.npz", images=images, labels=labels)
    (out_dir / "probe.json").write_text(json.dumps({"channels": channels, "seed": seed, "train": train,
                                                    "rows": rows}, indent=1, default=str))
    click.echo(recipe_probe.table(rows))


if __name__ == "__main__":
    main()
