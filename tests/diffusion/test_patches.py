"""Patch presets: the UNet denoises 2x2 pixel patches as channels; everything outside it still sees pixels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline

from devagen.core.config import AugmentConfig, DiffusionConfig, TrainConfig

from devagen.core.shape import ModelConfig
from devagen.core.errors import DevagenError
from devagen.core.params import params_from_dict
from devagen.core.presets import downsample_factor, patch_size
from devagen.diffusion.patches import from_patches, to_patches
from devagen.diffusion.unet import build_unet
from devagen.sampling.folder import META_FILE, read_meta
from devagen.sampling.pipeline import load_pipeline
from devagen.training.loop import train_diffusion


def test_patches_round_trip_and_group_each_2x2_block() -> None:
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).reshape(2, 1, 4, 4)
    z = to_patches(x, 2)
    assert z.shape == (2, 4, 2, 2) and torch.equal(from_patches(z, 2), x)
    assert z[0, :, 0, 0].tolist() == [0.0, 1.0, 4.0, 5.0]  # the top-left 2x2 block, row by row
    assert to_patches(x, 1) is x and from_patches(x, 1) is x


def test_a_patch_preset_builds_a_unet_without_the_full_resolution_level() -> None:
    assert patch_size("cpu_patch") == 2 and patch_size("cpu_conv") == 1
    assert downsample_factor("cpu_patch") == 4  # 2x2 patches, then one halving
    unet = build_unet(ModelConfig(preset="cpu_patch", conditional=True), 32)
    assert unet.config.sample_size == 16 and unet.config.in_channels == unet.config.out_channels == 4
    assert "patch_size" not in unet.config
    with pytest.raises(DevagenError, match="multiple of 4"):
        build_unet(ModelConfig(preset="cpu_patch"), 30)


def test_params_refuse_latent_diffusion_for_a_patch_model_and_take_the_pixel_losses() -> None:
    with pytest.raises(DevagenError, match="vae.enabled: preset 'cpu_patch' works on pixel patches"):
        params_from_dict({"model": {"preset": "cpu_patch"}, "vae": {"enabled": True}})
    params = params_from_dict({"model": {"preset": "cpu_patch"}, "diffusion": {"ssim_weight": 0.1, "perceptual_weight": 0.1}})
    assert params.diffusion.ssim_weight == 0.1 and params.diffusion.needs_judge


def test_a_patch_model_trains_on_patches_and_every_loader_draws_pixels(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (12, 16, 16), dtype=np.uint8), np.arange(12) % 46
    cfg = TrainConfig(max_steps=2, batch_size=4, warmup_steps=0, checkpoint_every=100, log_every=1, augment=False,
                      mixed_precision="no")
    out = tmp_path / "model"
    train_diffusion(cfg, ModelConfig(preset="tiny_patch"), DiffusionConfig(), AugmentConfig(), images, labels, out,
                    tmp_path / "ck", progress=False)
    unet_config = json.loads((out / "unet" / "config.json").read_text())
    assert unet_config["in_channels"] == 4 and unet_config["sample_size"] == 8
    assert read_meta(out).patch_size == 2
    assert json.loads((out / "model_index.json").read_text())["patch_size"] == 2
    pipeline = load_pipeline(out, "sde-dpmpp", device="cpu")
    assert pipeline.image_shape == (16, 16) and pipeline.sample_shape == (8, 8) and not pipeline.latent
    drawn = pipeline(labels=[0, 3], num_inference_steps=2, guidance_scale=2.0, generator=torch.Generator().manual_seed(0))
    assert drawn.shape == (2, 16, 16) and drawn.dtype == np.uint8
    trajectory = pipeline.trajectory(0, 2, generator=torch.Generator().manual_seed(0))
    assert trajectory.xt.shape == (3, 16, 16) and trajectory.x0.shape == (2, 16, 16)  # pixels for the figures
    hub = DiffusionPipeline.from_pretrained(out, trust_remote_code=True)  # diffusers' own loader, offline
    assert hub.patch_size == 2
    again = hub.use_sampler("sde-dpmpp")(labels=[0, 3], num_inference_steps=2, guidance_scale=2.0,
                                         generator=torch.Generator().manual_seed(0))
    assert np.array_equal(again, drawn)
    # distillation: the students learn in the teacher's patch space and their folders say so
    from devagen.core.config import DistillConfig
    from devagen.sampling import students
    from devagen.training import distill

    teacher = load_pipeline(out, students.SAMPLER, device="cpu")
    data = distill.DistillData(torch.from_numpy(images), torch.from_numpy(labels), patch=2)
    x_t, *_ = distill.draw_batch(data, distill.transitions(2), teacher.scheduler.alphas_cumprod, 3, torch.Generator())
    assert x_t.shape == (3, 4, 8, 8)
    cfg = DistillConfig(enabled=True, start_steps=2, min_steps=1, steps_per_round=1, batch_size=4, lr=1e-3,
                        warmup_steps=0, precision="fp32")
    distill.distill(teacher.unet, teacher.scheduler, data, cfg, 46,
                    lambda steps, net: students.write_student(net, out, students.student_dir(tmp_path / "st", steps)),
                    progress=False)
    student = students.load_student(tmp_path / "st", 1, "cpu")
    assert json.loads((students.student_dir(tmp_path / "st", 1) / "model_index.json").read_text())["patch_size"] == 2
    assert student(labels=[4], num_inference_steps=1).shape == (1, 16, 16)


def test_a_model_folder_whose_patch_size_does_not_fit_its_unet_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    import shutil

    folder = Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))
    meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    assert read_meta(folder).patch_size == 1  # folders written before patch presets read as pixel models
    (folder / META_FILE).write_text(json.dumps({**meta, "patch_size": 2}), encoding="utf-8")
    with pytest.raises(DevagenError, match="patch_size 2 does not fit"):
        load_pipeline(folder, device="cpu")
