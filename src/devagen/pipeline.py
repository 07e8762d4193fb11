"""DevagenPipeline: sampling with batched classifier-free guidance, and loading a trained model directory.

A model directory (written by training) holds `unet/` (EMA weights), `unet_raw/` (raw weights),
`scheduler/` (the DDPMScheduler it was trained with), `devagen.json` (see ModelMeta) and
`model_index.json` (see hub.py), so diffusers loads it without devagen's helpers:
    DDPMPipeline.from_pretrained(d)                                   # unconditional models
    DiffusionPipeline.from_pretrained(d, trust_remote_code=True).use_sampler("dpmpp")  # conditional
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
import torch
from diffusers import DDIMScheduler, DDPMScheduler, DiffusionPipeline, DPMSolverMultistepScheduler, UNet2DModel
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image

from .data import from_model_range
from .device import pick_device
from .errors import DevagenError

META_FILE = "devagen.json"
Generators = Union[torch.Generator, list[torch.Generator], None]
Labels = Union[Sequence[int], np.ndarray, torch.Tensor, None]
# callback(step_index, timestep, x_t (B, C, H, W) before the step, predicted x0 (B, C, H, W)), both in [-1, 1]-ish
StepCallback = Callable[[int, int, torch.Tensor, torch.Tensor], None]

# Options every inference sampler gets on top of the saved DDPM config:
# - "trailing" spacing starts at t = T-1. The saved DDPMScheduler says "leading", which never visits
#   the noisiest timesteps and, for 1 step, denoises pure noise as if it were at t = 0.
COMMON_OPTIONS: dict[str, Any] = {"timestep_spacing": "trailing"}
SAMPLER_OPTIONS: dict[str, dict[str, Any]] = {
    # DPM-Solver++(2M). lower_order_final: first-order last steps below 15 steps (stable at 5-10
    # steps); final_sigmas_type "zero": the last step lands on the clean image, not on sigma_min;
    # lambda_min_clipped: skip the cosine schedule's last timesteps, where alpha ~ 1e-5 and turning
    # an eps prediction into x0 divides by ~0; thresholding with sample_max_value 1 clips predicted
    # x0 to [-1, 1], the pixel range (a pixel-space model, unlike latent diffusion).
    "dpmpp": {"algorithm_type": "dpmsolver++", "solver_order": 2, "lower_order_final": True,
              "final_sigmas_type": "zero", "lambda_min_clipped": -5.1,
              "thresholding": True, "sample_max_value": 1.0},
    # DDIM (eta 0) does NOT clip: it clips x0 but keeps the unclipped eps, and the mismatch ruined
    # samples (measured on the default model, 20 steps CFG 3, 46 images: OCR 28 % clipped, 85 % not).
    # Ancestral DDPM clips predicted x0 to the pixel range: its posterior mean uses x0 alone.
    "ddim": {"clip_sample": False, "set_alpha_to_one": True},
    "ddpm": {"clip_sample": True},
}
SAMPLER_CLASSES: dict[str, type] = {"dpmpp": DPMSolverMultistepScheduler, "ddim": DDIMScheduler,
                                    "ddpm": DDPMScheduler}
# What a sampler takes from the scheduler it is built from: the noise schedule and what the network
# predicts. Nothing else carries over, so building from a DPM-Solver config (use_sampler twice) gives
# the same sampler as building from the saved DDPM config.
SCHEDULE_KEYS = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas",
                 "prediction_type", "rescale_betas_zero_snr")


def predicted_x0(scheduler: SchedulerMixin, output: torch.Tensor, sample: torch.Tensor,
                 t: torch.Tensor | int) -> torch.Tensor:
    """Clean image (B, C, H, W) implied by the model output at integer timestep t (eps, v or x0 prediction)."""
    alpha_bar = scheduler.alphas_cumprod.to(sample.device, torch.float32)[int(t)]
    a, s = alpha_bar.sqrt(), (1.0 - alpha_bar).sqrt()
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return (sample - s * output) / a
    if kind == "v_prediction":
        return a * sample - s * output
    if kind == "sample":
        return output
    raise ValueError(f"unknown prediction_type {kind!r}")


class DevagenPipeline(DiffusionPipeline):
    """UNet2DModel + any diffusers scheduler -> uint8 (B, H, W) white-on-black character images."""

    model_cpu_offload_seq = "unet"

    def __init__(self, unet: UNet2DModel, scheduler: SchedulerMixin) -> None:
        super().__init__()
        self.register_modules(unet=unet, scheduler=scheduler)

    @property
    def conditional(self) -> bool:
        """Whether the UNet has class embeddings (46 classes + the null label)."""
        return self.unet.config.num_class_embeds is not None

    @property
    def null_label(self) -> int:
        """Class-embedding index meaning "no class": the last one (devagen.model.NULL_LABEL = 46)."""
        return self.unet.config.num_class_embeds - 1

    @property
    def image_shape(self) -> tuple[int, int]:
        """(H, W) of the images this pipeline draws."""
        size = self.unet.config.sample_size
        return (size, size) if isinstance(size, int) else tuple(size)

    def use_sampler(self, sampler: str = "dpmpp") -> "DevagenPipeline":
        """Swap in devagen's tuned inference scheduler ("dpmpp" | "ddim" | "ddpm") for the same schedule; returns self."""
        self.scheduler = build_sampler(dict(self.scheduler.config), sampler)
        return self

    def passes_per_step(self, guidance_scale: float) -> int:
        """UNet evaluations per image per step: 2 under classifier-free guidance, else 1."""
        return 2 if self.conditional and guidance_scale != 1.0 else 1

    def model_output(self, x: torch.Tensor, t: torch.Tensor, labels: Optional[torch.Tensor],
                     guidance_scale: float = 1.0) -> torch.Tensor:
        """UNet output (B, C, H, W); guidance = uncond + g·(cond − uncond) from ONE batched forward pass.

        The combination is linear, so it is valid for eps, v and x0 predictions alike.
        """
        if labels is None or self.passes_per_step(guidance_scale) == 1:
            return self.unet(x, t, class_labels=labels).sample
        null = torch.full_like(labels, self.null_label)
        both = self.unet(torch.cat([x, x]), t, class_labels=torch.cat([labels, null])).sample
        cond, uncond = both.chunk(2)
        return uncond + guidance_scale * (cond - uncond)

    def _class_labels(self, labels: Labels, batch_size: Optional[int]) -> tuple[Optional[torch.Tensor], int, bool]:
        """(class labels (B,) int64 on device or None, batch size, whether real labels were given)."""
        if labels is None:
            size = batch_size or 1
            null = torch.full((size,), self.null_label, device=self.device) if self.conditional else None
            return null, size, False
        if not self.conditional:
            raise DevagenError("this model is unconditional: it cannot be told which character to draw; "
                               "train with `model.conditional: true` in params.yaml and run `dvc repro train`")
        raw = labels if isinstance(labels, torch.Tensor) else torch.as_tensor(np.asarray(labels))
        tensor = raw.to(self.device, torch.long).reshape(-1)
        if batch_size is not None and batch_size != len(tensor):
            raise ValueError(f"batch_size {batch_size} != {len(tensor)} labels")
        if len(tensor) and (tensor.min() < 0 or tensor.max() >= self.null_label):
            raise ValueError(f"labels must lie in [0, {self.null_label}), got {tensor.tolist()}")
        return tensor, len(tensor), True

    def initial_noise(self, batch_size: int, generator: Generators) -> torch.Tensor:
        """x_T (B, C, H, W) ~ N(0, init_noise_sigma²); a list of generators seeds each image on its own."""
        shape = (batch_size, self.unet.config.in_channels, *self.image_shape)
        noise = randn_tensor(shape, generator=generator, device=self.device, dtype=self.unet.dtype)
        return noise * self.scheduler.init_noise_sigma

    @torch.no_grad()
    def __call__(self, labels: Labels = None, batch_size: Optional[int] = None, guidance_scale: float = 1.0,
                 num_inference_steps: int = 50, generator: Generators = None, output_type: str = "np",
                 callback: Optional[StepCallback] = None) -> np.ndarray | list[Image.Image]:
        """Sample B images: uint8 numpy (B, H, W) ("np") or B PIL 'L' images ("pil").

        labels (B,) in [0, 46), or None: unconditional (a conditional model then gets its null label).
        """
        class_labels, batch_size, given = self._class_labels(labels, batch_size)
        guidance_scale = guidance_scale if given else 1.0
        x = self.initial_noise(batch_size, generator)
        self.scheduler.set_timesteps(num_inference_steps, device=self.device)
        for i, t in enumerate(self.scheduler.timesteps):
            out = self.model_output(self.scheduler.scale_model_input(x, t), t, class_labels, guidance_scale)
            step = self.scheduler.step(out, t, x, generator=generator)
            if callback is not None:
                x0 = getattr(step, "pred_original_sample", None)
                callback(i, int(t), x, x0 if x0 is not None else predicted_x0(self.scheduler, out, x, t))
            x = step.prev_sample
        images = from_model_range(x).cpu().numpy()
        if output_type == "pil":
            return [Image.fromarray(image, mode="L") for image in images]
        return images

    def trajectory(self, label: Optional[int], steps: int, generator: Generators = None,
                   guidance_scale: float = 1.0) -> "Trajectory":
        """One sampling run of one image, recording x_t and the predicted x0 at every step."""
        xs: list[np.ndarray] = []
        x0s: list[np.ndarray] = []
        ts: list[int] = []

        def record(i: int, t: int, x: torch.Tensor, x0: torch.Tensor) -> None:
            xs.append(from_model_range(x)[0].cpu().numpy())
            x0s.append(from_model_range(x0)[0].cpu().numpy())
            ts.append(t)

        final = self(labels=None if label is None else [label], batch_size=1, guidance_scale=guidance_scale,
                     num_inference_steps=steps, generator=generator, callback=record)
        return Trajectory(xt=np.stack(xs + [final[0]]), x0=np.stack(x0s), timesteps=ts)


@dataclass(frozen=True)
class Trajectory:
    """One sampling run: xt uint8 (steps+1, H, W) = x_t before each step then the result; x0 uint8 (steps, H, W)."""

    xt: np.ndarray
    x0: np.ndarray
    timesteps: list[int]


@dataclass(frozen=True)
class ModelMeta:
    """devagen.json: what a trained model directory holds besides weights."""

    class_names: tuple[str, ...]
    glyphs: tuple[str, ...]
    image_size: int
    conditional: bool
    null_label: Optional[int]
    preset: str


def write_meta(meta: ModelMeta, model_dir: Path) -> None:
    """Write model_dir/devagen.json (UTF-8, glyphs unescaped)."""
    Path(model_dir).mkdir(parents=True, exist_ok=True)
    text = json.dumps(asdict(meta), ensure_ascii=False, indent=2)
    (Path(model_dir) / META_FILE).write_text(text + "\n", encoding="utf-8")


def _broken(model_dir: Path, why: str) -> DevagenError:
    return DevagenError(f"{model_dir}: {why}; run `dvc repro train` to (re)build the model")


def read_meta(model_dir: Path) -> ModelMeta:
    """Read model_dir/devagen.json; a missing or malformed file raises DevagenError naming it."""
    path = Path(model_dir) / META_FILE
    if not path.is_file():
        raise _broken(Path(model_dir), f"no {META_FILE} (not a trained model directory)")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        values = {f.name: raw[f.name] for f in fields(ModelMeta)}
    except (ValueError, KeyError, TypeError) as exc:
        raise _broken(Path(model_dir), f"{META_FILE} is malformed ({type(exc).__name__}: {exc})") from None
    values["class_names"], values["glyphs"] = tuple(values["class_names"]), tuple(values["glyphs"])
    return ModelMeta(**values)


def build_sampler(ddpm_config: dict, sampler: str) -> SchedulerMixin:
    """Inference scheduler from a saved scheduler config; only the schedule and prediction_type carry over."""
    if sampler not in SAMPLER_CLASSES:
        raise DevagenError(f"params.yaml: sample.sampler: unknown {sampler!r}; choose one of {', '.join(SAMPLER_CLASSES)}")
    schedule = {k: v for k, v in ddpm_config.items() if k in SCHEDULE_KEYS}
    return SAMPLER_CLASSES[sampler].from_config(schedule, **COMMON_OPTIONS, **SAMPLER_OPTIONS[sampler])


def _load_unet(model_dir: Path, subfolder: str) -> UNet2DModel:
    """UNet2DModel from model_dir/subfolder, or DevagenError naming what is wrong."""
    if not (model_dir / subfolder / "config.json").is_file():
        raise _broken(model_dir, f"no {subfolder}/config.json")
    try:
        return UNet2DModel.from_pretrained(model_dir / subfolder)
    except Exception as exc:  # diffusers/safetensors raise many types for truncated or foreign files
        raise _broken(model_dir, f"{subfolder}/ is unreadable ({type(exc).__name__})") from exc


def _load_ddpm_config(model_dir: Path) -> dict:
    """The training DDPMScheduler config saved in model_dir/scheduler/."""
    if not (model_dir / "scheduler" / DDPMScheduler.config_name).is_file():
        raise _broken(model_dir, f"no scheduler/{DDPMScheduler.config_name}")
    try:
        return dict(DDPMScheduler.load_config(model_dir / "scheduler"))
    except Exception as exc:  # malformed JSON surfaces as EnvironmentError or ValueError
        raise _broken(model_dir, f"scheduler/ is unreadable ({type(exc).__name__})") from exc


def load_pipeline(model_dir: Path, sampler: str = "dpmpp", use_ema: bool = True,
                  device: Union[str, torch.device, None] = None) -> DevagenPipeline:
    """A trained model directory -> DevagenPipeline on `device` (None: pick_device()), fp32, eval mode."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise _broken(model_dir, "no such model directory")
    meta = read_meta(model_dir)
    unet = _load_unet(model_dir, "unet" if use_ema else "unet_raw")
    if (unet.config.num_class_embeds is not None) != meta.conditional:
        raise _broken(model_dir, f"{META_FILE} says conditional={meta.conditional} but the UNet disagrees")
    if meta.conditional and meta.null_label != unet.config.num_class_embeds - 1:
        raise _broken(model_dir, f"{META_FILE} null_label {meta.null_label} is not the UNet's last class embedding")
    training = DDPMScheduler.from_config(_load_ddpm_config(model_dir))
    pipeline = DevagenPipeline(unet=unet.eval(), scheduler=training).use_sampler(sampler)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline.to(device if device is not None else pick_device())
