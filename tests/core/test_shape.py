"""The network's shape in params.yaml (devagen.core.shape, resolved by devagen.core.presets): null keys keep the preset's network, overrides build
the UNet asked for (patch presets too), impossible shapes are refused at load naming the key, DVC's list values load,
and the shape built is what training records."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from dvc.utils.hydra import apply_overrides

from devagen.core.shape import ModelConfig
from devagen.core.errors import DevagenError
from devagen.core.params import load_params, params_from_dict
from devagen.core.presets import PRESETS, model_downsample, model_shape, unet_shape
from devagen.diffusion.unet import build_unet, built_shape

REPO = Path(__file__).parents[2]


@pytest.mark.parametrize("preset", PRESETS)
def test_null_overrides_build_the_presets_own_network(preset: str) -> None:
    assert model_shape(ModelConfig(preset=preset)) == unet_shape(preset)


def test_overrides_build_the_unet_asked_for() -> None:
    cfg = ModelConfig(preset="tiny", conditional=False, block_out_channels=[16, 32, 48], attention_levels=[2],
                      layers_per_block=2, mid_block="plain", norm_num_groups=4, dropout=0.1, attention_head_dim=4)
    unet = build_unet(cfg, 16)
    assert built_shape(unet, 1) == {"block_out_channels": [16, 32, 48], "attention_levels": [2], "layers_per_block": 2,
                                    "mid_block": "plain", "norm_num_groups": 4, "dropout": 0.1,
                                    "attention_head_dim": 4, "sample_size": 16, "in_channels": 1, "patch_size": 1}
    assert unet.config.up_block_types == ("AttnUpBlock2D", "UpBlock2D", "UpBlock2D")  # up block 0 serves level 2
    assert len(unet.down_blocks[0].resnets) == 2 and list(unet.mid_block.attentions) == [None]
    assert unet(torch.randn(2, 1, 16, 16), torch.tensor([3, 900])).sample.shape == (2, 1, 16, 16)


def test_more_levels_keep_attention_at_the_presets_resolutions_and_a_patch_preset_keeps_its_patches() -> None:
    deeper = ModelConfig(preset="cpu_small", block_out_channels=(32, 64, 128, 128))
    assert model_shape(deeper)["down_block_types"] == ("DownBlock2D", "DownBlock2D", "AttnDownBlock2D", "DownBlock2D")
    assert model_downsample(deeper) == 8
    patched = ModelConfig(preset="tiny_patch", conditional=False, block_out_channels=(16, 32, 32), mid_block="attention")
    unet = build_unet(patched, 16)
    assert built_shape(unet, 2)["patch_size"] == 2 and unet.config.in_channels == 4
    assert model_downsample(patched) == 8 and unet.config.sample_size == 8
    assert unet(torch.randn(1, 4, 8, 8), torch.tensor([10])).sample.shape == (1, 4, 8, 8)


@pytest.mark.parametrize("model, extra, key", [
    ({"preset": "cpu_patch", "block_out_channels": [64, 100]}, {}, "model.norm_num_groups"),
    ({"preset": "cpu_small", "block_out_channels": [32, 64]}, {}, "model.attention_levels: preset 'cpu_small'"),
    ({"attention_levels": [0, 0]}, {}, "model.attention_levels"),
    ({"preset": "cpu_small", "attention_head_dim": 48}, {}, "model.attention_head_dim"),
    ({"block_out_channels": []}, {}, "model.block_out_channels"),
    ({"block_out_channels": "wide"}, {}, "model.block_out_channels: expected a list"),
    ({"block_out_channels": [64, "x"]}, {}, r"model.block_out_channels\[1\]"),
    ({"mid_block": "attn"}, {}, "model.mid_block"),
    ({"layers_per_block": 0}, {}, "model.layers_per_block"),
    ({"dropout": 1.0}, {}, "model.dropout"),
    ({"preset": "cpu_patch", "block_out_channels": [64, 128, 128, 128, 128, 128]}, {"prepare": {"image_size": 32}},
     "prepare.image_size: 32 is not a multiple of 64"),
])
def test_shapes_that_cannot_be_built_are_refused_in_one_line(model: dict, extra: dict, key: str) -> None:
    with pytest.raises(DevagenError, match=f"^params.yaml: {key}") as caught:
        params_from_dict({"model": model, **extra})
    assert "\n" not in str(caught.value)


def test_a_list_value_loads_as_dvc_exp_run_writes_it(tmp_path: Path) -> None:
    path = shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    apply_overrides(path, ["model.block_out_channels=[64,128,192,256]", "model.attention_levels=[]",
                           "model.mid_block=attention"])  # what `dvc exp run -S ...` does to params.yaml
    model = load_params(path).model
    assert model.block_out_channels == (64, 128, 192, 256) and model.attention_levels == ()
    assert model_shape(model)["mid_block_type"] == "UNetMidBlock2D" and model_downsample(model) == 16
    assert params_from_dict({"model": {"preset": "tiny", "block_out_channels": "[32, 64]"}}).model.block_out_channels == (32, 64)


def test_training_records_the_shape_it_built(tmp_path: Path, cpu_one_thread: None) -> None:
    from devagen.core.config import AugmentConfig, DiffusionConfig, TrainConfig
    from devagen.training.loop import train_diffusion

    cfg = ModelConfig(preset="tiny_patch", block_out_channels=(8, 16), norm_num_groups=8, dropout=0.2)
    images = np.random.default_rng(0).integers(0, 256, (4, 16, 16), dtype=np.uint8)
    result = train_diffusion(TrainConfig(max_steps=1, batch_size=2, warmup_steps=0, augment=False), cfg,
                             DiffusionConfig(), AugmentConfig(), images, np.arange(4), tmp_path / "out",
                             tmp_path / "ck", progress=False)
    assert result["unet"]["block_out_channels"] == [8, 16] and result["unet"]["patch_size"] == 2
    assert result["unet"]["dropout"] == 0.2 and result["unet"]["mid_block"] == "attention"  # the preset's
