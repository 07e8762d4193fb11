"""The style space: features that see pen style, for FID/KID/precision/recall beside the judge's.

The OCR judge is trained with stroke-width and contrast augmentation, so its penultimate features
are built to ignore pen width. The style net is the judge's architecture trained briefly on real
train images with no augmentation at all. Its style features are the per-channel means of EVERY
conv stage, not only the last: the first stages see stroke width, edges and ink, the last sees the
character. Each stage is scaled to unit total variance on real train images, so no stage drowns
the others in FID. `StyleSpace` has the judge's `features` interface, so it plugs into the same
torch-fidelity adapter (metrics.judge_feature_metrics / metrics.real_floor).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import nn

from ..core.config import AugmentConfig, OcrConfig, StyleNetConfig
from ..core.errors import DevagenError
from ..core.io import read_json, write_json
from ..data.prepared import to_model_range
from .ocr import EVAL_BATCH, Judge, LogFn, load_judge, save_judge, train_judge

STAGE = "style_net"  # the DVC stage that trains it (named in load errors)
SCALES_FILE = "style_space.json"
SCALE_IMAGES = 5000  # real train images that set the per-stage scales (a seeded draw)
TEST_IMAGES = 4600  # real test images (a seeded draw) for its test accuracy, a diagnostic: all 13,800 cost ~15 s


class StyleSpace(nn.Module):
    """A trained Judge read at every conv stage: (B, 1, S, S) in [-1, 1] -> (B, 13·width) scaled channel means."""

    def __init__(self, net: Judge, scales: Optional[torch.Tensor] = None) -> None:
        super().__init__()
        self.net = net
        self.stages = [i for i, m in enumerate(net.body) if isinstance(m, nn.ReLU)]  # each conv stage ends in a ReLU
        self.register_buffer("scales", torch.ones(len(self.stages)) if scales is None else scales.float())

    def stage_means(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, 1, S, S) in [-1, 1] -> one (B, channels) per-channel spatial mean for each conv stage, unscaled."""
        means = []
        for i, layer in enumerate(self.net.body[:self.stages[-1] + 1]):
            x = layer(x)
            if i in self.stages:
                means.append(x.mean((2, 3)))
        return means

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, S, S) in [-1, 1] -> (B, D) every stage's channel means times that stage's scale, concatenated."""
        return torch.cat([m * s for m, s in zip(self.stage_means(x), self.scales)], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Same as features (the torch-fidelity adapter calls features)."""
        return self.features(x)


@torch.no_grad()
def stage_scales(space: StyleSpace, images: np.ndarray) -> torch.Tensor:
    """(stages,) 1 / sqrt(total variance of each stage's channel means) over uint8 (N, S, S) real images."""
    x = torch.from_numpy(np.ascontiguousarray(images))
    batches = [space.stage_means(to_model_range(x[i:i + EVAL_BATCH])) for i in range(0, len(x), EVAL_BATCH)]
    per_stage = [torch.cat(stage).double() for stage in zip(*batches)]
    return torch.stack([1 / v.var(0).sum().clamp_min(1e-12).sqrt() for v in per_stage]).float()


def ocr_config(cfg: StyleNetConfig) -> OcrConfig:
    """The judge's training recipe with the style net's knobs and augmentation off."""
    return OcrConfig(seed=cfg.seed, epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, width=cfg.width,
                     augment=False)


def _subset(n: int, keep: int, seed: int) -> np.ndarray:
    """Sorted indices of `keep` of n rows drawn by a seeded RNG; all rows when keep is 0 or >= n."""
    if keep == 0 or keep >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, keep, replace=False))


def train_style_space(cfg: StyleNetConfig, train_images: np.ndarray, train_labels: np.ndarray,
                      test_images: np.ndarray, test_labels: np.ndarray, log_fn: Optional[LogFn] = None,
                      progress: bool = True) -> tuple[StyleSpace, dict]:
    """Train on a seeded subset of uint8 (N, S, S) train images, no augmentation, then set the stage scales.

    Returns (space in eval mode on CPU, train_judge's metrics on a seeded draw of the test images).
    """
    rows = _subset(len(train_images), cfg.train_images, cfg.seed)
    if len(rows) < cfg.batch_size:
        raise DevagenError(f"params.yaml: style_net.batch_size: {cfg.batch_size} exceeds the {len(rows)} "
                           "train images it trains on; lower it or raise style_net.train_images")
    test = _subset(len(test_images), TEST_IMAGES, cfg.seed + 2)
    net, result = train_judge(ocr_config(cfg), AugmentConfig(enabled=False), train_images[rows], train_labels[rows],
                              test_images[test], test_labels[test], log_fn=log_fn, progress=progress)
    space = StyleSpace(net)
    space.scales = stage_scales(space, train_images[rows[_subset(len(rows), SCALE_IMAGES, cfg.seed + 1)]])
    return space.eval(), {**result, "train_images": int(len(rows)), "test_images": int(len(test)),
                          "stage_scales": space.scales.tolist()}


def save_style_space(space: StyleSpace, directory: Path, cfg: StyleNetConfig, image_size: int) -> None:
    """The net as save_judge writes it, plus style_space.json with the stage scales and the style_net config."""
    save_judge(space.net, directory, ocr_config(cfg), image_size)
    write_json({"stage_scales": space.scales.tolist(), "style_net": dataclasses.asdict(cfg)},
               Path(directory) / SCALES_FILE)


def load_style_space(directory: Path) -> StyleSpace:
    """Read what save_style_space wrote, in eval mode on CPU; missing or corrupt says to rerun the stage."""
    net = load_judge(directory, stage=STAGE)
    path = Path(directory) / SCALES_FILE
    try:
        scales = torch.tensor([float(s) for s in read_json(path)["stage_scales"]])
    except Exception as exc:  # missing file, bad JSON, missing key, non-numbers
        raise DevagenError(f"{path}: unreadable ({type(exc).__name__}); run `dvc repro {STAGE}`") from None
    space = StyleSpace(net, scales)
    if len(scales) != len(space.stages):
        raise DevagenError(f"{path}: {len(scales)} stage scales for {len(space.stages)} stages; "
                           f"run `dvc repro {STAGE}`")
    return space.eval()
