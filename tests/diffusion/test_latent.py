"""Latent diffusion: the autoencoder (devagen.diffusion.autoencoder), training the UNet on its latents, the model folder that
carries it, sampling through its decoder, the vae stage's off switch and the params it refuses."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from diffusers import AutoencoderKL, DiffusionPipeline

from devagen.core.config import AugmentConfig, DiffusionConfig, TrainConfig, VaeConfig
from devagen.core.errors import DevagenError
from devagen.core.params import params_from_dict
from devagen.core.shape import ModelConfig
from devagen.diffusion import autoencoder as latent
from devagen.sampling.pipeline import load_pipeline
from devagen.training.loop import train_diffusion

TINY_LATENT = VaeConfig(enabled=True, downsample=2, channels=2, width=8, steps=4, batch_size=4, lr=1e-3)


def _images(n: int = 24) -> np.ndarray:
    rng = np.random.default_rng(0)
    images = np.zeros((n, 16, 16), np.uint8)
    for i in range(n):  # a bright bar in a different place on each black image: something to reconstruct
        r = rng.integers(2, 12)
        images[i, r:r + 3, 2:14] = 255
    return images


@pytest.fixture(scope="module")
def autoencoder() -> AutoencoderKL:
    vae, stats = latent.train_autoencoder(_images(), TINY_LATENT, torch.device("cpu"), progress=False)
    assert stats["latent_shape"] == [2, 8, 8] and np.isfinite(stats["final_loss"])
    return vae


def test_autoencoder_shapes_scale_and_seeding(autoencoder: AutoencoderKL) -> None:
    x = torch.from_numpy(_images(4)).float()[:, None] / 127.5 - 1
    z = latent.encode(autoencoder, x)
    assert z.shape == (4, 2, 8, 8) and latent.latent_downsample(autoencoder) == 2
    assert latent.decode(autoencoder, z).shape == (4, 1, 16, 16)
    # scaling_factor makes the training images' latents about unit-variance, as the UNet's noise is
    with torch.no_grad():
        spread = float(latent.encode(autoencoder, torch.from_numpy(_images()).float()[:, None] / 127.5 - 1).std())
    assert 0.5 < spread < 2
    again, _ = latent.train_autoencoder(_images(), TINY_LATENT, torch.device("cpu"), progress=False)
    assert all(torch.equal(a, b) for a, b in zip(autoencoder.state_dict().values(), again.state_dict().values()))
    assert latent.build_autoencoder(VaeConfig(downsample=4), 32).config.block_out_channels == (32, 64, 64)


def test_psnr_and_reconstruction(autoencoder: AutoencoderKL) -> None:
    images = _images(6)
    assert latent.psnr(images, images) == float("inf")
    worse = images.copy()
    worse[:, 0, 0] = 255
    assert 20 < latent.psnr(worse, images) < 40
    recon = latent.reconstruct(autoencoder, images)
    assert recon.shape == images.shape and recon.dtype == np.uint8


def test_a_latent_model_trains_saves_its_autoencoder_and_samples_pixels(autoencoder: AutoencoderKL,
                                                                        tmp_path: Path) -> None:
    images, labels = _images(), np.arange(24) % 46
    cfg = TrainConfig(max_steps=2, batch_size=4, warmup_steps=0, checkpoint_every=100, log_every=1, augment=False,
                      mixed_precision="no")
    out = tmp_path / "model"
    train_diffusion(cfg, ModelConfig(preset="tiny"), DiffusionConfig(), AugmentConfig(), images, labels, out,
                    tmp_path / "ck", progress=False, vae=autoencoder)
    assert json.loads((out / "model_index.json").read_text())["vae"] == ["diffusers", "AutoencoderKL"]
    unet_config = json.loads((out / "unet" / "config.json").read_text())
    assert unet_config["in_channels"] == 2 and unet_config["sample_size"] == 8
    for sampler in ("sde-dpmpp", "ddpm"):
        pipeline = load_pipeline(out, sampler, device="cpu")
        assert pipeline.latent and not pipeline.scheduler.config.get("thresholding", False)
        assert not pipeline.scheduler.config.get("clip_sample", False)  # latents are not in [-1, 1]
        images_out = pipeline(labels=[0, 3], num_inference_steps=2, guidance_scale=2.0,
                              generator=torch.Generator().manual_seed(0))
        assert images_out.shape == (2, 16, 16) and images_out.dtype == np.uint8
    trajectory = pipeline.trajectory(0, 2, generator=torch.Generator().manual_seed(0))
    assert trajectory.xt.shape == (3, 16, 16) and trajectory.x0.shape == (2, 16, 16)  # decoded for the figures
    hub = DiffusionPipeline.from_pretrained(out, trust_remote_code=True)
    assert isinstance(hub.vae, AutoencoderKL)
    # another autoencoder is another latent space: the checkpoints of this run are not resumed with it
    other, _ = latent.train_autoencoder(_images(), VaeConfig(**{**TINY_LATENT.__dict__, "seed": 1}),
                                        torch.device("cpu"), progress=False)
    result = train_diffusion(cfg, ModelConfig(preset="tiny"), DiffusionConfig(), AugmentConfig(), images, labels,
                             tmp_path / "model2", tmp_path / "ck", progress=False, vae=other)
    assert result["resumed_from_step"] == 0


def test_params_latent_diffusion_refuses() -> None:
    with pytest.raises(DevagenError, match="vae.downsample"):
        VaeConfig(downsample=8)
    with pytest.raises(DevagenError, match="vae.downsample.*cpu_small"):
        params_from_dict({"vae": {"enabled": True, "downsample": 4}, "prepare": {"image_size": 24}})
    with pytest.raises(DevagenError, match="vae.enabled.*auxiliary"):
        params_from_dict({"vae": {"enabled": True}, "diffusion": {"ssim_weight": 0.1}})
    with pytest.raises(DevagenError, match="distill.enabled"):
        params_from_dict({"vae": {"enabled": True}, "distill": {"enabled": True}})
    assert params_from_dict({"vae": {"enabled": True}}).vae.enabled


def test_the_vae_stage_writes_only_a_note_when_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from devagen.cli import cli

    monkeypatch.chdir(tmp_path)
    Path("params.yaml").write_text("tracking:\n  enabled: false\n")
    result = CliRunner().invoke(cli, ["vae"])
    assert result.exit_code == 0, result.output
    assert [p.name for p in Path("models/vae").iterdir()] == ["latent.json"]
    for folder in ("reports/metrics", "reports/details"):
        assert json.loads(Path(folder, "vae.json").read_text()) == {"enabled": False}
    with pytest.raises(DevagenError, match="no trained autoencoder.*vae.enabled"):
        latent.load_autoencoder(Path("models/vae"))


def test_latent_offset_noise_follows_the_latent_of_a_brightness_shift(autoencoder: AutoencoderKL) -> None:
    from devagen.training.loop import _setup

    images = torch.from_numpy(_images())
    direction = latent.brightness_direction(autoencoder, images)
    assert direction.shape == (1, 2, 8, 8) and direction.abs().sum() > 0
    with torch.no_grad():  # the same derivative with a much smaller step: the encoder is smooth, so they agree
        x, h = images.float()[:, None] / 127.5 - 1, 1e-3
        fine = ((latent.encode(autoencoder, x + h) - latent.encode(autoencoder, x - h)) / (2 * h)).mean(0, keepdim=True)
    torch.testing.assert_close(direction, fine, rtol=0.05, atol=0.05 * float(fine.abs().max()))
    cfg = TrainConfig(max_steps=1, batch_size=4, warmup_steps=0, augment=False, mixed_precision="no")
    run = _setup(cfg, ModelConfig(preset="tiny"), DiffusionConfig(offset_noise=0.1), AugmentConfig(), _images(),
                 np.arange(24) % 46, None, vae=autoencoder)
    torch.testing.assert_close(run.offset_direction, direction)
