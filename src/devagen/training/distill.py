"""Progressive distillation (Salimans & Ho 2022) of the trained, guided model into few-step DDIM students.

Round 1's teacher is the trained network with classifier-free guidance, taking DDIM steps on a grid twice
as fine as its student's; the student learns to take in one DDIM step what the teacher takes in two, with
one network pass per step (the guidance is folded into it, as Meng et al. 2023 distil guided models).
Each next round's teacher is the previous student, and its student has half the steps: 8 → 4 → 2 → 1.

Grid: a student with N steps starts at t = 999 and steps t_k = 1000·k/N − 1 → t_{k−1} (k = N..1), where
t_0 = −1 is the clean image. diffusers' DDIMScheduler with timestep_spacing "trailing" and
set_alpha_to_one visits exactly these for N in 1, 2, 4, 8, so a student samples with the library's own
scheduler (devagen.sampling.pipeline's "ddim" sampler).

The target (Salimans & Ho, Algorithm 2): from x_t the teacher takes two DDIM steps, t → t_mid → s. The
clean image x̃ for which ONE DDIM step from x_t lands on the same x_s is
    x̃ = (x_s − (σ_s/σ_t)·x_t) / (α_s − (σ_s/σ_t)·α_t),
and the student's clean-image estimate is pulled to it with weight max(SNR_t, 1) ("truncated SNR").

The first student is the teacher's network and weights (without a learned-variance teacher's variance half), or
with distill.student_preset a smaller network of that preset, newly initialised (fresh_student), that learns the
same rounds from the same teacher.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Callable, Optional

import torch
from diffusers import DDPMScheduler, UNet2DModel
from tqdm.auto import tqdm

from ..core.config import DistillConfig
from ..core.device import autocast
from ..core.seeding import seeded_generator
from ..core.shape import ModelConfig
from ..core.updates import WindowMean, optimizer_update, warmup_schedule
from ..data.prepared import to_model_range
from ..diffusion.guidance import predicted_x0
from ..diffusion.patches import to_patches
from ..diffusion.unet import (
    build_unet,
    is_style_conditioned,
    layout_dim,
    with_null_class,
)
from ..diffusion.variance import mean_half, mean_only

# (x_t (B, C, H, W), t (B,) int64, conditions or None) -> the clean image the denoiser predicts, float32
Denoiser = Callable[[torch.Tensor, torch.Tensor, Optional[torch.Tensor]], torch.Tensor]
LOSS_READ_EVERY = 25  # steps between reads of the loss (a host sync) for the progress bar and the NaN check


def transitions(steps: int, num_train_timesteps: int = 1000) -> torch.Tensor:
    """(steps, 2) int64: the (t, s) of each DDIM step of an N-step sampler, noisiest first; s = −1 is clean."""
    if steps < 1 or num_train_timesteps % steps:
        raise ValueError(f"{steps} steps do not divide {num_train_timesteps} timesteps evenly")
    stride = num_train_timesteps // steps
    t = torch.arange(steps, 0, -1) * stride - 1
    return torch.stack([t, t - stride], dim=1)


def alpha_sigma(alphas_cumprod: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(α_t, σ_t) shaped (B, 1, 1, 1) for timesteps t (B,); t = −1 is the clean image (α 1, σ 0)."""
    alpha_bar = alphas_cumprod.to(t.device, torch.float32)[t.clamp(min=0)]
    alpha_bar = torch.where(t >= 0, alpha_bar, torch.ones_like(alpha_bar)).view(-1, 1, 1, 1)
    return alpha_bar.sqrt(), (1.0 - alpha_bar).clamp(min=0).sqrt()


def ddim_step(alphas_cumprod: torch.Tensor, x: torch.Tensor, x0: torch.Tensor, t: torch.Tensor,
              s: torch.Tensor) -> torch.Tensor:
    """Deterministic DDIM from x_t to x_s given the predicted clean image x0 (the noise it implies carries over)."""
    a_t, s_t = alpha_sigma(alphas_cumprod, t)
    a_s, s_s = alpha_sigma(alphas_cumprod, s)
    noise = (x - a_t * x0) / s_t
    return a_s * x0 + s_s * noise


def one_step_target(alphas_cumprod: torch.Tensor, x_t: torch.Tensor, x_s: torch.Tensor, t: torch.Tensor,
                    s: torch.Tensor) -> torch.Tensor:
    """The clean image x̃ whose single DDIM step from x_t lands on x_s (x_s itself when s is clean)."""
    a_t, s_t = alpha_sigma(alphas_cumprod, t)
    a_s, s_s = alpha_sigma(alphas_cumprod, s)
    ratio = s_s / s_t
    return (x_s - ratio * x_t) / (a_s - ratio * a_t)


def teacher_target(teacher: Denoiser, alphas_cumprod: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor,
                   s: torch.Tensor, cond: Optional[torch.Tensor]) -> torch.Tensor:
    """The student's clean-image target at x_t: two teacher DDIM steps t → (t+s)/2 → s, as one."""
    with torch.no_grad():
        mid = t - (t - s) // 2
        x_mid = ddim_step(alphas_cumprod, x_t, teacher(x_t, t, cond), t, mid)
        x_s = ddim_step(alphas_cumprod, x_mid, teacher(x_mid, mid, cond), mid, s)
        return one_step_target(alphas_cumprod, x_t, x_s, t, s)


def network_denoiser(unet: UNet2DModel, scheduler: DDPMScheduler) -> Denoiser:
    """The network's own clean-image prediction (a student, or an unguided teacher)."""
    def denoise(x: torch.Tensor, t: torch.Tensor, cond: Optional[torch.Tensor]) -> torch.Tensor:
        return predicted_x0(scheduler, mean_half(unet(x, t, class_labels=cond).sample.float(), x.shape[1]), x, t)
    return denoise


def guided_denoiser(unet: UNet2DModel, scheduler: DDPMScheduler, null_label: int, scale: float,
                    interval: tuple[int, int]) -> Denoiser:
    """Classifier-free guided clean image: the conditional and null-class passes in one batch, combined as
    null + w·(cond − null) with w = scale at timesteps inside `interval` and 1 (conditional only) outside."""
    lo, hi = interval

    def denoise(x: torch.Tensor, t: torch.Tensor, cond: Optional[torch.Tensor]) -> torch.Tensor:
        both = unet(torch.cat([x, x]), torch.cat([t, t]),
                    class_labels=torch.cat([cond, with_null_class(cond, null_label)])).sample.float()
        good, worse = mean_half(both, x.shape[1]).chunk(2)
        weight = torch.where((t >= lo) & (t <= hi), scale, 1.0).view(-1, 1, 1, 1)
        return predicted_x0(scheduler, worse + weight * (good - worse), x, t)
    return denoise


def distillation_loss(student: UNet2DModel, scheduler: DDPMScheduler, x_t: torch.Tensor, t: torch.Tensor,
                      cond: Optional[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
    """Scalar: max(SNR_t, 1)-weighted MSE between the student's clean-image estimate and the target."""
    estimate = predicted_x0(scheduler, student(x_t, t, class_labels=cond).sample.float(), x_t, t)
    a, s = alpha_sigma(scheduler.alphas_cumprod, t)
    weight = (a.square() / s.square().clamp(min=1e-12)).clamp(min=1.0).flatten()
    return (weight * (estimate - target).pow(2).mean(dim=(1, 2, 3))).mean()


@dataclass(frozen=True)
class DistillData:
    """What the students learn on: real images uint8 (N, S, S) and their conditions (N, ...) or None, on one device;
    patch: the teacher's patch side (devagen.diffusion.patches), whose space the students denoise in too."""

    images: torch.Tensor
    conditions: Optional[torch.Tensor]
    patch: int = 1


def draw_batch(data: DistillData, grid: torch.Tensor, alphas_cumprod: torch.Tensor, batch_size: int,
               generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    """(x_t, t, s, conditions): real images noised to a random step of the student's grid (steps, 2)."""
    device = data.images.device
    index = torch.randint(0, len(data.images), (batch_size,), generator=generator, device=device)
    step = torch.randint(0, len(grid), (batch_size,), generator=generator, device=device)
    t, s = grid[step, 0], grid[step, 1]
    x0 = to_patches(to_model_range(data.images[index]), data.patch)
    noise = torch.randn(x0.shape, generator=generator, device=device)
    a, sigma = alpha_sigma(alphas_cumprod, t)
    cond = None if data.conditions is None else data.conditions[index]
    return a * x0 + sigma * noise, t, s, cond


def distill_round(teacher: Denoiser, student: UNet2DModel, scheduler: DDPMScheduler, data: DistillData,
                  steps: int, cfg: DistillConfig, round_index: int, progress: bool = True) -> dict:
    """Train `student` in place to sample in `steps` DDIM steps like `teacher` in 2·steps; returns the round's stats."""
    device = data.images.device
    grid = transitions(steps, scheduler.config.num_train_timesteps).to(device)
    optimizer = torch.optim.AdamW(student.parameters(), lr=cfg.lr, weight_decay=0.0)
    lr_schedule = warmup_schedule(optimizer, cfg.warmup_steps, cfg.steps_per_round)
    student.train()
    began = time.perf_counter()
    losses = WindowMean(device, LOSS_READ_EVERY, f"distill ({steps}-step round)",
                        f"lower distill.lr (now {cfg.lr:g}) and re-run")
    with tqdm(range(cfg.steps_per_round), desc=f"distill {2 * steps}->{steps} steps", unit="step",
              disable=not progress) as bar:
        for i in bar:
            x_t, t, s, cond = draw_batch(data, grid, scheduler.alphas_cumprod, cfg.batch_size,
                                         seeded_generator(device, cfg.seed, round_index, i))
            with autocast(device, cfg.precision, cuda_bf16=True):
                target = teacher_target(teacher, scheduler.alphas_cumprod, x_t, t, s, cond)
                loss = distillation_loss(student, scheduler, x_t, t, cond, target)
            optimizer_update(loss, student.parameters(), optimizer, lr_schedule, cfg.grad_clip)
            mean = losses.add(loss, i + 1, i + 1 == cfg.steps_per_round)
            if mean is not None:
                bar.set_postfix(loss=f"{mean:.4f}")
    seconds = time.perf_counter() - began
    student.eval()
    return {"steps": steps, "teacher_steps": 2 * steps, "optimizer_steps": cfg.steps_per_round,
            "first_loss": losses.first, "final_loss": losses.last, "seconds": seconds,
            "img_per_s": cfg.steps_per_round * cfg.batch_size / seconds}


def frozen_copy(unet: UNet2DModel) -> UNet2DModel:
    """An eval-mode copy of `unet` that takes no gradients (the next round's teacher)."""
    return copy.deepcopy(unet).eval().requires_grad_(False)


def fresh_student(preset: str, teacher: UNet2DModel, patch: int, seed: int) -> UNet2DModel:
    """A newly initialised network of `preset`'s shape (distill.student_preset) for the teacher's inputs (its side,
    channels and patch side `patch`), conditioned as the teacher is (class, pen), on the teacher's device. Seeded by
    `seed` without touching the global random state. Its shape differs, so nothing is copied from the teacher."""
    config = teacher.config
    cfg = ModelConfig(preset=preset, conditional=config.num_class_embeds is not None,
                      style_conditioning=is_style_conditioned(teacher), layout_conditioning=layout_dim(teacher) > 0,
                      scale_shift=config.resnet_time_scale_shift == "scale_shift")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        student = build_unet(cfg, config.sample_size * patch, config.in_channels // patch ** 2)
    return student.to(teacher.device)


def distill(unet: UNet2DModel, scheduler: DDPMScheduler, data: DistillData, cfg: DistillConfig,
            null_label: Optional[int], save: Callable[[int, UNet2DModel], None], progress: bool = True,
            student: Optional[UNet2DModel] = None) -> list[dict]:
    """Distil `unet` (the trained model; guided when it is conditional and cfg.guidance_scale != 1) round by round
    into students of cfg.student_steps; save(steps, student) after each round. Returns each round's stats.
    student: the network the first round trains (fresh_student); None: a copy of `unet` (its prediction half for a
    learned-variance model: DDIM students need no variance)."""
    base = frozen_copy(unet)
    guided = null_label is not None and data.conditions is not None and cfg.guidance_scale != 1.0
    teacher = (guided_denoiser(base, scheduler, null_label, cfg.guidance_scale, (cfg.guidance_t_min, cfg.guidance_t_max))
               if guided else network_denoiser(base, scheduler))
    student = (mean_only(unet) if student is None else student).requires_grad_(True)
    rounds = []
    for round_index, steps in enumerate(cfg.student_steps):
        rounds.append(distill_round(teacher, student, scheduler, data, steps, cfg, round_index, progress))
        save(steps, student)
        teacher = network_denoiser(frozen_copy(student), scheduler)
    return rounds
