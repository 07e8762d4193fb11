"""The one diffusion training loop (accelerate): data order, EMA, checkpoint/resume, the saved model.

Batch sizes: `train.batch_size` is per process and per micro-step. One optimizer step sees
batch_size x grad_accum x num_processes images (the global batch). Every rank computes the same
seeded stream of indices (epoch e = a permutation seeded by (seed, e), epochs back to back); global
micro-batch p is stream positions [p*G, (p+1)*G) with G = batch_size x num_processes, and rank r
takes slice [r*batch_size, (r+1)*batch_size) of it. The order is a pure function of (seed, p), so a
resumed run continues it exactly; noise, timesteps, label dropout and augmentation come from a
generator seeded by (seed, p, rank), so a resumed run also draws exactly what the lost one would have.

Checkpoints resume only a run with the same fingerprint: the params that shape the weights, the data
bytes and the process count; anything else starts fresh (and says so). Each checkpoint's metadata,
written last, holds the sha256 of its files (hashed in a background thread while training goes on);
resume moves a damaged one into damaged/ and falls back to the one before. SIGTERM/SIGINT stop the
loop after a step that every rank agrees on, with a checkpoint at that step (preemption.py).

Multi-process: `accelerate launch --multi_gpu --num_processes K SCRIPT` on CUDA; on a machine without
a GPU the same command runs K CPU processes over gloo (this module asks accelerate for CPU then;
ACCELERATE_USE_CPU=true forces that on a GPU machine too).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import logging
import math
import signal
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from diffusers.training_utils import EMAModel
from tqdm.auto import tqdm

from ..core.classes import NUM_CLASSES
from ..core.config import AugmentConfig, DiffusionConfig, TrainConfig
from ..core.shape import ModelConfig
from ..core.device import allow_precision, cpu_info, mixed_precision, use_math_attention
from ..core.errors import DevagenError
from ..core.updates import LossMeter
from ..core.presets import patch_size
from ..core.seeding import seeded_generator
from ..core.updates import warmup_schedule
from ..data.augment import AUGMENT_LABELS, augment_labelled
from ..data.prepared import from_model_range, to_model_range
from ..diffusion.adversarial import Adversary
from ..diffusion.autoencoder import brightness_direction, encode, latent_downsample
from ..diffusion.aux_losses import frozen
from ..diffusion.objective import diffusion_loss
from ..diffusion.patches import to_patches
from ..diffusion.unet import augment_dim, build_noise_scheduler, build_unet, built_shape, count_parameters, layout_dim
from ..pen.conditions import PenReference, measure_pen, pen_style, training_codes, with_layout
from .checkpoints import guide_at, resume, save_checkpoint, save_guide, sealed_on_exit
from .output import save_trained_model
from .preemption import Preempted, StopRequests
from .state import Checkpoints, TrainRun

log = logging.getLogger(__name__)

LogFn = Callable[[dict, int], None]
NOT_FINGERPRINTED = ("checkpoint_every", "keep_checkpoints", "log_every", "compile")  # do not change the weights
STOP_CHECK_EVERY = 5  # several processes: ranks agree on a SIGTERM/SIGINT every this many steps
# `dvc repro` / `dvc exp run` delete a stage's outputs before running it, so a setting refused at the start has
# already cost the last model: the refusal says how to get it back (dvc.lock still records it).
RESTORE = "(DVC removed train's outputs before this check: `dvc checkout train` restores the last model)"


# ---------------------------------------------------------------- setup


def check_compile(cfg: TrainConfig) -> None:
    """Raise DevagenError when train.compile asks for torch.compile without a CUDA GPU (call before reading data).

    On CPU the compile warm-up costs more than a short run gains, and the GPU fast path is what it is for.
    """
    if cfg.compile != "off" and not torch.cuda.is_available():
        raise DevagenError(f"params.yaml: train.compile: {cfg.compile} needs a CUDA GPU; set train.compile: off on CPU "
                           f"{RESTORE}")


def compiled(unet: torch.nn.Module, mode: str) -> torch.nn.Module:
    """`unet` wrapped by torch.compile in `mode` (default | reduce-overhead | max-autotune); off returns it as is.

    Only the forward is compiled: optimizer, EMA, checkpoints and saving keep using the module itself,
    so saved weights never carry torch.compile's `_orig_mod.` prefix.
    """
    if mode == "off":
        return unet
    return torch.compile(unet, mode=None if mode == "default" else mode)


def total_steps(cfg: TrainConfig, n: int, num_processes: int) -> int:
    """Optimizer steps of the whole run: max_steps, or enough global batches for `epochs` passes."""
    if cfg.max_steps > 0:
        return cfg.max_steps
    return max(1, math.ceil(cfg.epochs * n / (cfg.batch_size * cfg.grad_accum * num_processes)))


def _check_data(images: np.ndarray, labels: np.ndarray, conditional: bool) -> None:
    """Raise DevagenError unless images are uint8 (N, S, S) and labels (N,) in [0, 46)."""
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1] != images.shape[2] or len(images) == 0:
        raise DevagenError(f"train: images must be a non-empty uint8 array (N, S, S); got {images.dtype} {images.shape}")
    if labels.shape != (len(images),):
        raise DevagenError(f"train: labels must be (N,) = ({len(images)},); got {labels.shape}")
    if conditional and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise DevagenError(f"train: labels must lie in [0, {NUM_CLASSES}); got [{labels.min()}, {labels.max()}]")


def _setup(cfg: TrainConfig, model_cfg: ModelConfig, diffusion_cfg: DiffusionConfig, augment_cfg: AugmentConfig,
           images: np.ndarray, labels: np.ndarray, pen: Optional[np.ndarray],
           judge: Optional[torch.nn.Module] = None, vae: Optional[torch.nn.Module] = None,
           lr_lambda: Optional[Callable[[int], float]] = None) -> TrainRun:
    """Accelerator, seeded UNet, AdamW, the train.lr_schedule (or `lr_lambda`: step -> lr factor, lr-find's sweep),
    EMA, the data as device tensors and, for the perceptual loss, the judge's feature stack frozen on the device; for
    latent diffusion, the autoencoder; for the adversarial term, the critic (saved with the checkpoints)."""
    precision = mixed_precision(cfg.mixed_precision, RESTORE)
    allow_precision(precision)
    accelerator = Accelerator(mixed_precision=precision,
                              gradient_accumulation_steps=cfg.grad_accum,
                              step_scheduler_with_optimizer=False,  # stepped once per optimizer step below
                              cpu=not (torch.cuda.is_available() or torch.backends.mps.is_available()))
    set_seed(cfg.seed)  # the same initial weights on every rank
    side, channels = images.shape[-1], 1
    if vae is not None:  # the UNet denoises the autoencoder's latents
        side, channels = side // latent_downsample(vae), vae.config.latent_channels
    labelled = cfg.augment and model_cfg.style_conditioning  # the pen path also carries augmentation labels
    model = use_math_attention(build_unet(model_cfg, side, channels, len(AUGMENT_LABELS) if labelled else 0,
                                          diffusion_cfg.learned_variance).to(accelerator.device))
    fused = accelerator.device.type == "cuda"  # one multi-tensor kernel per step: matters when launch-bound
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)
    steps = total_steps(cfg, len(images), accelerator.num_processes)
    lr_scheduler = (warmup_schedule(optimizer, cfg.warmup_steps, steps, cfg.lr_schedule, cfg.lr_cycle_steps,
                                    cfg.lr_min_ratio) if lr_lambda is None
                    else torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda))
    unet, optimizer, lr_scheduler = accelerator.prepare(model, optimizer, lr_scheduler)
    unet = compiled(unet, cfg.compile)  # after prepare: accelerate saves and unwraps the uncompiled module
    ema = None
    if cfg.ema_decay > 0:
        ema = EMAModel(model.parameters(), decay=cfg.ema_decay, foreach=True)
        accelerator.register_for_checkpointing(ema)  # saved and restored with the checkpoint
    adversary = None
    if diffusion_cfg.adversarial_weight > 0:
        adversary = Adversary(channels * patch_size(model_cfg.preset) ** 2, patch_size(model_cfg.preset),
                              diffusion_cfg.critic_lr, accelerator.device, cfg.seed)
        accelerator.register_for_checkpointing(adversary)  # critic and its optimizer: a resumed run goes on exactly
    device = accelerator.device
    images_t = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    labels_t = torch.from_numpy(labels.astype(np.int64)).to(device) if model_cfg.conditional else None
    styles_t = (torch.from_numpy(training_codes(pen, labels, side=images.shape[-1])).to(device)
                if model_cfg.style_conditioning else None)
    judge_body = _judge_body(judge, side).to(device) if diffusion_cfg.needs_judge else None
    vae = None if vae is None else frozen(vae).to(device)
    offset = None  # offset noise's direction: None = the same in every channel (pixels and pixel patches)
    if vae is not None and diffusion_cfg.offset_noise > 0:
        offset = to_patches(brightness_direction(vae, images_t), patch_size(model_cfg.preset))
    return TrainRun(cfg, diffusion_cfg, augment_cfg, accelerator, model, unet, optimizer, lr_scheduler, ema,
                build_noise_scheduler(diffusion_cfg), images_t, labels_t, styles_t, steps, judge_body, vae,
                patch_size(model_cfg.preset), adversary, PenReference.of(pen, labels) if labelled else None, offset)


def _judge_body(judge: torch.nn.Module, side: int) -> torch.nn.Sequential:
    """A frozen copy of the judge's feature stack for side x side images: a model larger than the judge's
    images (prepare.image_size 64, judge 32; train_diffusion checks the side is a multiple) has its images
    area-averaged down to the judge's side first."""
    body = frozen(copy.deepcopy(judge.body))
    if side == judge.image_size:
        return body
    return torch.nn.Sequential(torch.nn.AvgPool2d(side // judge.image_size), *body)


def run_fingerprint(run: TrainRun, model_cfg: ModelConfig, images: np.ndarray, labels: np.ndarray) -> tuple[str, dict]:
    """(short hash, facts) of everything that shapes the weights: configs, data bytes, process count."""
    data = hashlib.blake2b(np.ascontiguousarray(images).tobytes(), digest_size=16)
    data.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    if run.styles is not None:
        data.update(run.styles.cpu().numpy().tobytes())
    if run.vae is not None:  # another autoencoder is another latent space: never resume across one
        for tensor in run.vae.state_dict().values():
            data.update(tensor.detach().cpu().numpy().tobytes())
    facts = {
        "train": {k: v for k, v in asdict(run.cfg).items() if k not in NOT_FINGERPRINTED},
        "mixed_precision": run.accelerator.mixed_precision,
        "model": {k: v for k, v in asdict(model_cfg).items() if v is not None},  # unset shape keys: the preset's
        "diffusion": asdict(run.diffusion_cfg),
        "augment": asdict(run.augment_cfg) if run.cfg.augment else None,
        "num_processes": run.accelerator.num_processes,
        "data": {"shape": list(images.shape), "blake2b": data.hexdigest()},
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16], facts


# ---------------------------------------------------------------- one optimizer step


@functools.lru_cache(maxsize=2)
def _permutation(n: int, seed: int, epoch: int, device: torch.device) -> torch.Tensor:
    """Order of the n examples in epoch `epoch`, (n,) int64 on `device`; the same on every rank and run.

    Drawn on the CPU and copied to the device once per epoch, so a step's indices never cross to the device.
    """
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch)).to(device)


def batch_indices(n: int, seed: int, start: int, count: int, device: torch.device = torch.device("cpu")) -> torch.Tensor:
    """Example indices at stream positions [start, start+count), (count,) int64 on `device`; epochs back to back."""
    parts = []
    while count > 0:
        epoch, offset = divmod(start, n)
        take = min(count, n - offset)
        parts.append(_permutation(n, seed, epoch, device)[offset:offset + take])
        start, count = start + take, count - take
    return torch.cat(parts)


def _seen_codes(run: TrainRun, x0: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Pen codes (b, 2; 6 with layout) of augmented images x0 (b, 1, S, S) in [-1, 1], measured as prepare measures
    the data and relative to the training set's medians: the pen of the image the network sees. The measures run on
    the host: pen models with train.augment pay one device round trip per micro-batch."""
    pixels = from_model_range(x0).cpu().numpy()
    pen = with_layout(measure_pen(pixels), pixels) if layout_dim(run.model) else measure_pen(pixels)
    return torch.from_numpy(training_codes(pen, labels.cpu().numpy(), run.pen_reference, pixels.shape[-1])).to(x0.device)


def _draw_batch(run: TrainRun, position: int) -> tuple[torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor],
                                                  Optional[torch.Tensor], torch.Generator]:
    """This rank's share of global micro-batch `position`: x0 (b, 1, S, S) in [-1, 1] (a latent model's latents, a
    patch model's patches), labels (b,) or None, pen codes (b, 2; 6 with layout) or None, augmentation labels (b, A)
    or None."""
    acc, b = run.accelerator, run.cfg.batch_size
    size = b * acc.num_processes
    chosen = batch_indices(len(run.images), run.cfg.seed, position * size, size, run.images.device)
    mine = chosen[acc.process_index * b:(acc.process_index + 1) * b]
    generator = seeded_generator(run.images.device, run.cfg.seed, position, acc.process_index)
    x0 = to_model_range(run.images[mine])
    labels = None if run.labels is None else run.labels[mine]
    styles, augment = None if run.styles is None else run.styles[mine], None
    if run.cfg.augment:
        x0, augment = augment_labelled(x0, run.augment_cfg, generator)
        if run.pen_reference is not None:  # a pen model: codes of what was drawn, told what was done
            styles = _seen_codes(run, x0, labels)
        augment = augment if augment_dim(run.model) else None
    if run.vae is not None:  # latent diffusion: the (augmented) images' latents, under the run's autocast
        with torch.no_grad(), run.accelerator.autocast():
            x0 = encode(run.vae, x0).float()
    return to_patches(x0, run.patch), labels, styles, augment, generator


def _optimizer_step(run: TrainRun, step: int) -> torch.Tensor:
    """grad_accum micro-batches and one update; returns this rank's loss averaged over micro-batches, a scalar
    tensor on the device (never read here: no host sync in the hot loop; LossMeter checks it at log time)."""
    acc, cfg, total = run.accelerator, run.cfg, None
    for micro in range(cfg.grad_accum):
        x0, labels, styles, augment, generator = _draw_batch(run, step * cfg.grad_accum + micro)
        with acc.accumulate(run.unet):
            loss = diffusion_loss(run.unet, run.noise_scheduler, x0, labels, run.diffusion_cfg,
                                  cfg.cond_drop_prob, generator, styles, cfg.style_drop_prob, run.judge_body,
                                  run.adversary, augment, run.offset_direction, run.patch)
            acc.backward(loss)
            if acc.sync_gradients and cfg.grad_clip > 0:
                acc.clip_grad_norm_(run.unet.parameters(), cfg.grad_clip)
            run.optimizer.step()  # a no-op until the last micro-batch (accelerate)
            if acc.sync_gradients:
                run.lr_scheduler.step()
            run.optimizer.zero_grad(set_to_none=True)
        total = loss.detach() if total is None else total + loss.detach()
    if run.adversary is not None:  # the critic's turn, on the last micro-batch's real and estimated x0
        run.adversary.step(x0, (lambda g: acc.reduce(g, "mean")) if acc.num_processes > 1 else None)
    if run.ema is not None:
        run.ema.step(run.model.parameters())
    return total / cfg.grad_accum


# ---------------------------------------------------------------- checkpoints


# ---------------------------------------------------------------- output


# ---------------------------------------------------------------- the loop


def _nan_error(loss: float, step: int, last: Optional[Path], lr: float) -> DevagenError:
    """The one-line message for a loss that stopped being finite."""
    kept = f"last good checkpoint kept at {last}" if last else "no checkpoint was written yet"
    return DevagenError(f"train: loss became {loss} at step {step}; {kept}; lower train.lr (now {lr:g}) "
                        "or set train.grad_clip, then re-run")


def _preempted(run: TrainRun, ckpt: Checkpoints, step: int, loss: float, signum: int) -> Preempted:
    """Checkpoint step `step` (unless one holds it already); the one-line message that says how to resume."""
    if ckpt.step < step:
        save_checkpoint(run, ckpt, step, loss)
    return Preempted(f"train: stopped by {signal.Signals(signum).name} after step {step} of {run.total_steps}, "
                     f"saved in {ckpt.last}; resume with `dvc repro` (or `dvc exp run`, or this command again)",
                     signum)


def _read_loss(run: TrainRun, meter: LossMeter, ckpt: Checkpoints) -> float:
    """The smoothed loss over all ranks (the loop's one host sync); stops training on a non-finite loss.

    Read before anything is saved, so a checkpoint never holds weights updated by a non-finite loss.
    """
    reading = meter.read(run.accelerator.gather)
    if not reading.finite:
        raise _nan_error(reading.bad_loss, reading.bad_step, ckpt.last, run.cfg.lr)
    return reading.smoothed


def _run_steps(run: TrainRun, ckpt: Checkpoints, log_fn: Optional[LogFn], progress: bool,
               stop: StopRequests) -> tuple[float, Optional[float]]:
    """Optimizer steps ckpt.step+1 .. total with logging, checkpoints and a stop when `stop` says so;
    returns (smoothed loss, img/s; None when the checkpoint it resumed already held every step).

    The loss stays on the device between reads: every cfg.log_every steps, before a checkpoint or the
    guide snapshot, and at a stop. A non-finite loss stops training at the next read, naming its step;
    the weights it updated are never saved, so the last checkpoint is the last good one.
    """
    acc, cfg = run.accelerator, run.cfg
    bar = tqdm(total=run.total_steps, initial=ckpt.step, desc="train", unit="step",
               disable=not (progress and acc.is_main_process))
    start, smoothed, began = ckpt.step, ckpt.loss, time.perf_counter()
    guide_step = guide_at(cfg, run.total_steps)
    meter = LossMeter(acc.device, ckpt.loss)
    window = (start, began)  # (step, time) at the last log line
    try:
        for step in range(start + 1, run.total_steps + 1):
            meter.add(_optimizer_step(run, step - 1), step)
            bar.update(1)
            logs = step % cfg.log_every == 0 or step == run.total_steps
            if logs or step == guide_step or step % cfg.checkpoint_every == 0:
                smoothed = _read_loss(run, meter, ckpt)
            if logs:
                now = time.perf_counter()
                stats = {"loss": smoothed, "lr": run.lr_scheduler.get_last_lr()[0],
                         "img_per_s": (step - window[0]) * run.global_batch / (now - window[1])}
                window = (step, now)
                bar.set_postfix(loss=f"{smoothed:.4f}", lr=f"{stats['lr']:.2e}", img_s=f"{stats['img_per_s']:.1f}")
                if log_fn is not None and acc.is_main_process:
                    log_fn(stats, step)
            if step == guide_step:
                save_guide(run, ckpt, step)
            if step % cfg.checkpoint_every == 0:
                save_checkpoint(run, ckpt, step, smoothed)
            signum = stop.agreed(step)  # after log_fn: a signal that arrives while logging stops at this step
            if signum is not None and step < run.total_steps:
                raise _preempted(run, ckpt, step, _read_loss(run, meter, ckpt), signum)
    finally:
        bar.close()
    seconds = time.perf_counter() - began
    return smoothed, (run.total_steps - start) * run.global_batch / seconds if start < run.total_steps else None


def training_pen(model_cfg: ModelConfig, pen: Optional[np.ndarray], images: np.ndarray) -> Optional[np.ndarray]:
    """The pen (N, 2) a run trains on: with model.layout_conditioning, the images' layout moments appended (N, 6)."""
    return with_layout(pen, images) if model_cfg.layout_conditioning and pen is not None else pen


def train_diffusion(params_train: TrainConfig, model_cfg: ModelConfig, diffusion_cfg: DiffusionConfig,
                    augment_cfg: AugmentConfig, images: np.ndarray, labels: np.ndarray, out_dir: Path,
                    checkpoint_dir: Path, log_fn: Optional[LogFn] = None, progress: bool = True,
                    pen: Optional[np.ndarray] = None, judge: Optional[torch.nn.Module] = None,
                    vae: Optional[torch.nn.Module] = None) -> dict:
    """Train on uint8 images (N, S, S) with labels (N,) in [0, 46); save to out_dir; return train metrics.

    pen float (N, 2): each image's stroke width (px) and slant (degrees), needed with model.style_conditioning;
    with model.layout_conditioning the images' layout moments are measured here and ride with it (with_layout).
    judge: the OCR judge (devagen.judges.ocr.Judge), needed with diffusion.perceptual_weight > 0; its features are read
    from a frozen copy. vae: latent diffusion's autoencoder (devagen.diffusion.autoencoder); the UNet then learns its latents,
    and the model folder keeps a copy of it.
    Resumes from the newest checkpoint in checkpoint_dir written with the same params and data.
    """
    began = time.perf_counter()
    check_compile(params_train)
    _check_data(images, labels, model_cfg.conditional)
    if model_cfg.style_conditioning and (pen is None or pen.shape != (len(images), 2)):
        raise DevagenError(f"train: model.style_conditioning needs each image's stroke width and slant (N, 2) = "
                           f"({len(images)}, 2); got {None if pen is None else pen.shape}; re-run `dvc repro prepare`")
    pen = training_pen(model_cfg, pen, images)
    if diffusion_cfg.needs_judge and (judge is None or images.shape[-1] % judge.image_size):
        got = "none" if judge is None else f"one for {judge.image_size}x{judge.image_size} images"
        raise DevagenError(f"train: diffusion.perceptual_weight needs the OCR judge for {images.shape[-1]}x"
                           f"{images.shape[-1]} images (or a side dividing it), got {got}; run `dvc repro train_ocr`")
    run = _setup(params_train, model_cfg, diffusion_cfg, augment_cfg, images, labels, pen, judge, vae)
    if guide_at(params_train, run.total_steps) >= run.total_steps:
        raise DevagenError(f"params.yaml: train.guide_step: {params_train.guide_step:g} is not below the run's "
                           f"{run.total_steps} steps; the guide is an early snapshot (0 disables it)")
    ckpt = Checkpoints(Path(checkpoint_dir), *run_fingerprint(run, model_cfg, images, labels))
    resume(run, ckpt)
    start = ckpt.step
    with StopRequests(run.accelerator.num_processes, STOP_CHECK_EVERY) as stop, sealed_on_exit(ckpt):
        loss, img_per_s = _run_steps(run, ckpt, log_fn, progress, stop)
    style = pen_style(pen, labels, params_train.seed) if model_cfg.style_conditioning else None
    save_trained_model(run, ckpt, model_cfg, Path(out_dir), style)
    return {
        "steps": run.total_steps, "epochs": run.total_steps * run.global_batch / len(images),
        "final_loss": loss, "img_per_s": img_per_s, "wall_s": time.perf_counter() - began,
        "params": count_parameters(run.model), "unet": built_shape(run.model, run.patch),
        "device": str(run.accelerator.device),
        "global_batch": run.global_batch, "resumed_from_step": start,
        "mixed_precision": run.accelerator.mixed_precision, "cpu": cpu_info(),
    }
