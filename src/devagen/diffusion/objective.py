"""The training objective: noise, targets (eps / v / x0), min-SNR weighting, CFG label dropout, optional focal
pixel weights, and the optional auxiliary losses on the clean-image estimate (devagen.diffusion.aux_losses) and
adversarial term (devagen.diffusion.adversarial).

Pure functions of tensors and the DDPMScheduler; the UNet knows nothing of diffusion.
With the seed's choices (epsilon, min_snr_gamma 0, offset_noise 0) the loss is plain MSE on noise.
"""

from __future__ import annotations

from typing import Optional

import torch
from diffusers import DDPMScheduler, UNet2DModel

from ..core.config import DiffusionConfig
from ..diffusion.guidance import predicted_x0
from .adversarial import Adversary
from .aux_losses import perceptual_distance, ssim
from .patches import from_patches
from .self_condition import is_self_conditioned, training_estimate, with_estimate
from .unet import NULL_LABEL, condition
from .variance import split_output, vlb_term


def training_target(scheduler: DDPMScheduler, x0: torch.Tensor, noise: torch.Tensor,
                    t: torch.Tensor) -> torch.Tensor:
    """What the UNet must predict for x_t, (B, C, H, W): eps, v = √ᾱ·eps − √(1−ᾱ)·x0, or x0."""
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        return scheduler.get_velocity(x0, noise, t)
    if kind == "sample":
        return x0
    raise ValueError(f"unknown prediction_type {kind!r}")


def snr(scheduler: DDPMScheduler, t: torch.Tensor) -> torch.Tensor:
    """Signal-to-noise ratio ᾱ_t / (1 − ᾱ_t) per timestep, (B,) float32."""
    alpha_bar = scheduler.alphas_cumprod.to(t.device, torch.float32)[t]
    return alpha_bar / (1.0 - alpha_bar)


def loss_weights(scheduler: DDPMScheduler, t: torch.Tensor, prediction_type: str,
                 min_snr_gamma: float) -> torch.Tensor:
    """Per-image min-SNR-γ weights (B,) for an MSE on `prediction_type`; all ones when γ is 0.

    min-SNR-γ weights the x0-space loss by min(SNR, γ). An eps-MSE equals SNR·(x0-MSE) and a
    v-MSE equals (SNR+1)·(x0-MSE), so the same weighting becomes min(SNR, γ)/SNR for eps and
    min(SNR, γ)/(SNR+1) for v.
    """
    if min_snr_gamma <= 0:
        return torch.ones(t.shape, device=t.device)
    ratio = snr(scheduler, t)
    clipped = torch.clamp(ratio, max=min_snr_gamma)
    if prediction_type == "epsilon":
        return clipped / ratio.clamp(min=torch.finfo(torch.float32).tiny)
    if prediction_type == "v_prediction":
        return clipped / (ratio + 1.0)
    if prediction_type == "sample":
        return clipped
    raise ValueError(f"unknown prediction_type {prediction_type!r}")


def draw_timesteps(scheduler: DDPMScheduler, cfg: DiffusionConfig, count: int, device: torch.device,
                   generator: Optional[torch.Generator] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(t, weights), both (count,): training timesteps drawn as cfg.timestep_sampling says, and the loss weight
    of each, so that mean(weights · per-image loss) is an unbiased estimate of the objective.

    uniform: t ~ U{0..T-1}, min-SNR weights. weighted: t drawn with probability ∝ its min-SNR weight and every
    weight the mean weight over t; the same objective as uniform, with none of the batch spent on timesteps it
    barely counts. logit_normal: t/T = sigmoid(n), n ~ N(0, 1), min-SNR weights; a different objective that
    trains the middle noise levels most.
    """
    total = scheduler.config.num_train_timesteps
    kind, weigh = scheduler.config.prediction_type, cfg.min_snr_gamma
    if cfg.timestep_sampling == "uniform":
        t = torch.randint(0, total, (count,), generator=generator, device=device)
    elif cfg.timestep_sampling == "weighted":
        every = loss_weights(scheduler, torch.arange(total, device=device), kind, weigh)
        t = torch.multinomial(every, count, replacement=True, generator=generator)
        return t, every.mean().expand(count)
    else:  # logit_normal (DiffusionConfig refuses any other name)
        n = torch.randn((count,), generator=generator, device=device)
        t = (torch.sigmoid(n) * total).long().clamp(0, total - 1)
    return t, loss_weights(scheduler, t, kind, weigh)


def sample_noise(x0: torch.Tensor, offset_noise: float, generator: Optional[torch.Generator] = None,
                 direction: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Gaussian noise like x0 (B, C, H, W), plus offset noise: a uniform brightness shift of the whole image, of
    std offset_noise in model-range units, drawn once per image.

    direction (1, C, H, W) is what a +1 shift of every pixel does to the network's input; None means the same
    in every channel and position, which it is for pixels and for pixel patches (to_patches of a constant image
    is that constant in all p² channels). A latent model passes the autoencoder's (brightness_direction).
    """
    noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    if offset_noise > 0:
        shift = torch.randn((x0.shape[0], 1, 1, 1), generator=generator, device=x0.device, dtype=x0.dtype)
        noise = noise + offset_noise * shift * (1.0 if direction is None else direction.to(x0.dtype))
    return noise


def auxiliary_loss(scheduler: DDPMScheduler, cfg: DiffusionConfig, estimate: torch.Tensor, x0: torch.Tensor,
                   t: torch.Tensor, judge_body: Optional[torch.nn.Sequential] = None,
                   adversary: Optional[Adversary] = None, patch: int = 1) -> torch.Tensor:
    """Scalar: ssim_weight·(1 − SSIM) + perceptual_weight·(judge-feature distance) of the clean-image estimate
    against x0 + adversarial_weight·(−critic score of the estimate), each per image times alpha_bar_t (the signal
    share of x_t), averaged over the batch. patch: a patch model's patch size; SSIM and the judge compare the
    estimate and x0 as the pixels they pack."""
    signal = scheduler.alphas_cumprod.to(x0.device, torch.float32)[t]
    per_image = torch.zeros_like(signal)
    pixels, x0_pixels = from_patches(estimate, patch), from_patches(x0, patch)
    if cfg.ssim_weight > 0:
        per_image = per_image + cfg.ssim_weight * (1.0 - ssim(pixels, x0_pixels))
    if cfg.perceptual_weight > 0:
        if judge_body is None:
            raise ValueError("diffusion.perceptual_weight > 0 needs the judge's feature network")
        per_image = per_image + cfg.perceptual_weight * perceptual_distance(judge_body, pixels, x0_pixels)
    if cfg.adversarial_weight > 0:
        if adversary is None:
            raise ValueError("diffusion.adversarial_weight > 0 needs the adversary (its critic)")
        per_image = per_image + cfg.adversarial_weight * adversary.generator_loss(estimate)
    return (signal * per_image).mean()


def focal_weights(error: torch.Tensor, gamma: float) -> torch.Tensor:
    """Per-pixel weights like error (B, C, H, W): (|error| / its per-image mean) ** gamma, rescaled to mean 1 per
    image and detached, so the pixels the network gets most wrong count most and the loss keeps MSE's scale."""
    magnitude = error.detach().abs()
    scale = magnitude.mean(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)
    weights = (magnitude / scale).pow(gamma)
    return weights / weights.mean(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)


def drop_labels(labels: torch.Tensor, p: float, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Replace each label (B,) int64 by NULL_LABEL with probability p (classifier-free guidance)."""
    if p <= 0:
        return labels
    drop = torch.rand(labels.shape, generator=generator, device=labels.device) < p
    return torch.where(drop, torch.full_like(labels, NULL_LABEL), labels)


def drop_mask(shape: tuple[int, ...], p: float, device: torch.device,
              generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """bool mask, True with probability p (nothing dropped when p <= 0, without drawing random numbers)."""
    if p <= 0:
        return torch.zeros(shape, dtype=torch.bool, device=device)
    return torch.rand(shape, generator=generator, device=device) < p


def diffusion_loss(unet: UNet2DModel, scheduler: DDPMScheduler, x0: torch.Tensor,
                   labels: Optional[torch.Tensor], cfg: DiffusionConfig, cond_drop_prob: float,
                   generator: Optional[torch.Generator] = None, styles: Optional[torch.Tensor] = None,
                   style_drop_prob: float = 0.0, judge_body: Optional[torch.nn.Sequential] = None,
                   adversary: Optional[Adversary] = None, augment: Optional[torch.Tensor] = None,
                   offset_direction: Optional[torch.Tensor] = None, patch: int = 1) -> torch.Tensor:
    """Scalar weighted MSE for a batch x0 (B, 1, S, S) in [-1, 1] (a patch model's: to_patches of it, patch > 1); labels (B,) or None (unconditional);
    styles (B, 2) pen codes for a style-conditioned UNet, each dropped with style_drop_prob independently
    of the class (so the class can be guided with the style held); augment (B, A): the batch's augmentation
    labels for a UNet that reads them (never dropped). Pixels weighted by focal_weights when
    cfg.focal_gamma > 0. Plus auxiliary_loss when cfg weights it (judge_body: the frozen judge's feature stack, for
    the perceptual term), and the adversary's term when cfg.adversarial_weight > 0. offset_direction: sample_noise's
    direction. A learned-variance UNet's output is split: the MSE and the auxiliary terms read its prediction half,
    cfg.vlb_weight·T·(the variational bound's term at t) trains its variance half (devagen.diffusion.variance)."""
    noise = sample_noise(x0, cfg.offset_noise, generator, offset_direction)
    t, weights = draw_timesteps(scheduler, cfg, x0.shape[0], x0.device, generator)
    noisy = scheduler.add_noise(x0, noise, t)
    class_labels = None if labels is None else drop_labels(labels, cond_drop_prob, generator)
    if styles is not None:
        given = ~drop_mask(labels.shape, style_drop_prob, labels.device, generator)
        class_labels = condition(class_labels, styles, given, augment)
    inputs = noisy
    if is_self_conditioned(unet):  # a share of the batches also reads the network's own zero-input estimate
        def estimate_x0(x: torch.Tensor) -> torch.Tensor:
            output = unet(with_estimate(x, None), t, class_labels=class_labels).sample
            return predicted_x0(scheduler, output.float(), x.float(), t)

        inputs = with_estimate(noisy, training_estimate(estimate_x0, noisy, generator))
    prediction, variance = split_output(unet(inputs, t, class_labels=class_labels).sample, noisy.shape[1])
    target = training_target(scheduler, x0, noise, t)
    error = prediction.float() - target.float()
    squared = error.pow(2) if cfg.focal_gamma == 0 else error.pow(2) * focal_weights(error, cfg.focal_gamma)
    per_image = squared.mean(dim=(1, 2, 3))
    loss = (weights * per_image).mean()
    if cfg.ssim_weight > 0 or cfg.perceptual_weight > 0 or cfg.adversarial_weight > 0:
        estimate = predicted_x0(scheduler, prediction.float(), noisy.float(), t)
        loss = loss + auxiliary_loss(scheduler, cfg, estimate, x0, t, judge_body, adversary, patch)
    if variance is not None:  # learned variance: + λ·L_vlb, L_vlb = T·E_t[L_t] (Improved DDPM's hybrid loss)
        bound = vlb_term(scheduler, prediction, variance, noisy, x0, t)
        loss = loss + cfg.vlb_weight * scheduler.config.num_train_timesteps * bound.mean()
    return loss
