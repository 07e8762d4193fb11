"""Latent diffusion's autoencoder: a diffusers AutoencoderKL trained on DHCD, and the moves between pixels and
its latent space.

The UNet learns to generate the encoder's posterior mean times `scaling_factor` (1 / the std of training
images' latents, stored in the autoencoder's config as diffusers does for Stable Diffusion), so its latents
have about unit variance like the pixels it replaces; the decoder turns sampled latents back into
[-1, 1] images. The autoencoder is trained on per-pixel L1 plus a small KL term (kl_weight), nothing else.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import AutoencoderKL
from tqdm.auto import tqdm

from ..core.config import VaeConfig
from ..core.device import autocast
from ..core.errors import DevagenError
from ..core.integrity import check_manifest, damaged, write_manifest
from ..core.updates import WindowMean, optimizer_update, warmup_schedule
from ..data.prepared import from_model_range, to_model_range

SCALE_IMAGES = 4096  # training images whose latents set scaling_factor
BRIGHTNESS_IMAGES = 512  # training images whose latents' response to a brightness shift is averaged
BRIGHTNESS_STEP = 0.05  # half-width of the central difference, in model-range units
WARMUP_STEPS = 50
LOSS_READ_EVERY = 25
GRAD_CLIP = 1.0


def build_autoencoder(cfg: VaeConfig, image_size: int) -> AutoencoderKL:
    """A fresh AutoencoderKL for (B, 1, S, S) images with (B, channels, S/downsample, S/downsample) latents."""
    levels = int(math.log2(cfg.downsample)) + 1  # each level after the first halves the side
    widths = tuple(cfg.width * min(2 ** i, 2) for i in range(levels))
    return AutoencoderKL(in_channels=1, out_channels=1, down_block_types=("DownEncoderBlock2D",) * levels,
                         up_block_types=("UpDecoderBlock2D",) * levels, block_out_channels=widths,
                         layers_per_block=1, latent_channels=cfg.channels, norm_num_groups=8, sample_size=image_size)


def latent_downsample(vae: AutoencoderKL) -> int:
    """Image side / latent side: 2 per encoder level after the first."""
    return 2 ** (len(vae.config.block_out_channels) - 1)


def autoencoder_loss(vae: AutoencoderKL, x: torch.Tensor, kl_weight: float,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Scalar: mean |reconstruction − x| of a latent drawn from the posterior, plus kl_weight · KL per pixel."""
    posterior = vae.encode(x).latent_dist
    recon = vae.decode(posterior.sample(generator)).sample
    kl = posterior.kl().mean() / x[0].numel()
    return (recon.float() - x).abs().mean() + kl_weight * kl


def encode(vae: AutoencoderKL, x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] images (B, 1, S, S) -> scaled latents (B, C, s, s): the posterior mean times scaling_factor."""
    return vae.encode(x).latent_dist.mean * vae.config.scaling_factor


def decode(vae: AutoencoderKL, z: torch.Tensor) -> torch.Tensor:
    """Scaled latents (B, C, s, s) -> [-1, 1]-range images (B, 1, S, S) (not clipped)."""
    return vae.decode(z / vae.config.scaling_factor).sample


def _batches(images: torch.Tensor, size: int):  # type: ignore[no-untyped-def]
    for start in range(0, len(images), size):
        yield to_model_range(images[start:start + size])


@torch.no_grad()
def latent_scale(vae: AutoencoderKL, images: np.ndarray, seed: int, batch_size: int = 256) -> float:
    """1 / the std of the (unscaled) latents of up to SCALE_IMAGES seeded training images."""
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(images), min(SCALE_IMAGES, len(images)), replace=False)
    device = next(vae.parameters()).device
    chosen = torch.from_numpy(images[np.sort(pick)]).to(device)
    latents = torch.cat([vae.encode(x).latent_dist.mean for x in _batches(chosen, batch_size)])
    return float(1.0 / latents.float().std().clamp(min=1e-6))


@torch.no_grad()
def brightness_direction(vae: AutoencoderKL, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Latent offset noise's direction (1, C, s, s) float32: what adding +1 to every pixel of an image does to its
    scaled latent, to first order (a central difference of encode), averaged over the first BRIGHTNESS_IMAGES of
    uint8 images (N, S, S). Offset noise of std σ along it is, to first order, a uniform brightness shift of std σ
    in the decoded image, as it is for a pixel model."""
    chosen, h = images[:BRIGHTNESS_IMAGES], BRIGHTNESS_STEP
    total = None
    for x in _batches(chosen.to(next(vae.parameters()).device), batch_size):
        diff = (encode(vae, x.float() + h).float() - encode(vae, x.float() - h).float()).sum(0, keepdim=True)
        total = diff if total is None else total + diff
    return total / (2 * h * len(chosen))


def train_autoencoder(images: np.ndarray, cfg: VaeConfig, device: torch.device,
                      progress: bool = True) -> tuple[AutoencoderKL, dict[str, Any]]:
    """Train an AutoencoderKL on uint8 images (N, S, S) (CPU bf16 autocast per cfg.precision); its scaling_factor
    set from the data. Returns it (eval mode, fp32 weights) and its training stats."""
    torch.manual_seed(cfg.seed)
    vae = build_autoencoder(cfg, images.shape[-1]).to(device).train()
    optimizer = torch.optim.AdamW(vae.parameters(), lr=cfg.lr, weight_decay=0.0)
    schedule = warmup_schedule(optimizer, min(WARMUP_STEPS, cfg.steps // 10), cfg.steps)
    data = torch.from_numpy(images).to(device)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    began = time.perf_counter()
    losses = WindowMean(device, LOSS_READ_EVERY, "vae", f"lower vae.lr (now {cfg.lr:g}) and re-run")
    with tqdm(range(cfg.steps), desc="autoencoder", unit="step", disable=not progress) as bar:
        for step in bar:
            index = torch.randint(0, len(data), (cfg.batch_size,), generator=generator, device=device)
            with autocast(device, cfg.precision):
                loss = autoencoder_loss(vae, to_model_range(data[index]), cfg.kl_weight, generator)
            optimizer_update(loss, vae.parameters(), optimizer, schedule, GRAD_CLIP)
            mean = losses.add(loss, step + 1, step + 1 == cfg.steps)
            if mean is not None:
                bar.set_postfix(loss=f"{mean:.4f}")
    seconds = time.perf_counter() - began
    vae.eval()
    vae.register_to_config(scaling_factor=latent_scale(vae, images, cfg.seed))
    return vae, {"steps": cfg.steps, "final_loss": losses.last, "seconds": seconds,
                 "img_per_s": cfg.steps * cfg.batch_size / seconds, "scaling_factor": vae.config.scaling_factor,
                 "latent_shape": [cfg.channels, images.shape[-1] // cfg.downsample, images.shape[-1] // cfg.downsample],
                 "params": sum(p.numel() for p in vae.parameters())}


@torch.no_grad()
def reconstruct(vae: AutoencoderKL, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """uint8 (N, S, S) through encoder (posterior mean) and decoder -> uint8 (N, S, S)."""
    device = next(vae.parameters()).device
    data = torch.from_numpy(images).to(device)
    out = [from_model_range(vae.decode(vae.encode(x).latent_dist.mean).sample.float()) for x in _batches(data, batch_size)]
    return torch.cat(out).cpu().numpy()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio (dB) of uint8 image sets a and b, over all their pixels."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * math.log10(255.0 ** 2 / mse)


def save_autoencoder(vae: AutoencoderKL, directory: Path) -> None:
    """diffusers' folder (config.json + weights) and checksums.json, written last."""
    vae.save_pretrained(directory)
    write_manifest(directory)


def has_autoencoder(directory: Path) -> bool:
    """Whether `directory` holds an autoencoder (not only the note that latent diffusion is off)."""
    return (Path(directory) / "config.json").is_file()


def load_autoencoder(directory: Path, stage: str = "vae") -> AutoencoderKL:
    """The autoencoder the vae stage wrote, in eval mode; missing or damaged: says which stage rewrites it."""
    directory = Path(directory)
    if not (directory / "config.json").is_file():
        raise DevagenError(f"{directory}: no trained autoencoder; set vae.enabled: true and run `dvc repro vae`")
    check_manifest(directory, stage)
    try:
        return AutoencoderKL.from_pretrained(directory).eval()
    except Exception as exc:  # diffusers/safetensors raise many types for truncated or foreign files
        raise damaged(directory, f"does not load ({type(exc).__name__})", stage) from exc
