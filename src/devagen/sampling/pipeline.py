"""DevagenPipeline: sampling with batched classifier-free guidance, and loading a trained model directory.

A model directory (written by training) holds `unet/` (EMA weights), `unet_raw/` (raw weights),
`scheduler/` (the DDPMScheduler it was trained with), `devagen.json` (see ModelMeta), `model_index.json`
and `pen.json` (see folder.py) and, when `train.guide_step` is set, `guide/`: the same network early in
training, for autoguidance. diffusers loads it without devagen's helpers:
    DDPMPipeline.from_pretrained(d)                                   # unconditional models
    DiffusionPipeline.from_pretrained(d, trust_remote_code=True).use_sampler("dpmpp")  # conditional
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
import torch
from diffusers import (
    AutoencoderKL,
    DDPMScheduler,
    DiffusionPipeline,
    UNet2DModel,
)
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image

from ..core.classes import NUM_CLASSES
from ..core.config import GUIDANCE
from ..core.device import pick_device, use_math_attention
from ..core.errors import DevagenError
from ..core.integrity import check_manifest
from ..data.prepared import from_model_range
from ..diffusion.guidance import classifier_guided, guided_prediction, predicted_x0
from ..diffusion.noisy_classifier import NoisyClassifier, load_classifier_for, log_prob_gradient
from ..diffusion.patches import from_patches
from ..diffusion.self_condition import clipped, denoised_channels, is_self_conditioned, with_estimate
from ..diffusion.unet import condition, is_style_conditioned, layout_dim, no_augmentation, with_null_class
from ..diffusion.variance import LEARNED_RANGE, join_output, learns_variance, mean_half, split_output
from ..pen.conditions import PenStyle, codes, per_image
from ..pen.shear import shear_to_slant
from .folder import (
    GUIDE_FOLDER,
    META_FILE,
    VAE_FOLDER,
    broken,
    load_ddpm_config,
    load_unet,
    read_meta,
    read_pen,
    read_tone,
    write_pen,
    write_tone,
)
from .samplers import build_sampler, reads_variance
from .pixels import BLACK_POINT, to_levels, to_pixels  # noqa: F401  (BLACK_POINT: callers import it here)
from .tone import ToneMap

Generators = Union[torch.Generator, list[torch.Generator], None]
Labels = Union[Sequence[int], np.ndarray, torch.Tensor, None]
PenValues = Union[float, Sequence[float], np.ndarray, None]  # one value for the batch, one per image, or None
# callback(step_index, timestep, x_t (B, C, H, W) before the step, predicted x0 (B, C, H, W)), both in [-1, 1]-ish
StepCallback = Callable[[int, int, torch.Tensor, torch.Tensor], None]

ALL_TIMESTEPS = (0, 10**9)  # a guidance interval that contains every timestep

class DevagenPipeline(DiffusionPipeline):
    """UNet2DModel + any diffusers scheduler -> uint8 (B, H, W) white-on-black character images.

    Guidance extrapolates the model's prediction away from a worse one: `cfg` = the same network
    without its class label (classifier-free guidance), `autoguidance` = `guide`, a weaker version of
    the network (Karras et al. 2024), asked for the same class. Within `guidance_interval` (timesteps,
    inclusive) only; elsewhere the plain conditional prediction is used (Kynkäänniemi et al. 2024).
    `classifier` = `cfg` plus the noisy `classifier`'s gradient toward the asked class times `classifier_scale`
    (Dhariwal & Nichol 2021), in the same interval; an unconditional model then draws asked classes.

    A style-conditioned network (model.style_conditioning) also takes `stroke` (multiplier of the training
    set's median stroke width) and `slant` (degrees); what is not asked for is drawn per image from real
    training images of its class (`pen`: devagen.pen.conditions.PenStyle, kept in the model folder's pen.json).
    CFG then guides the class only: both predictions get the same pen. An asked slant is finished by a shear
    (slant_shear, devagen.pen.shear): the network on its own follows it only a little.

    A folder's tone map (tone.json, devagen.sampling.tone) moves the output grey levels onto DHCD's pixel-value
    distribution; without one (or with tone_map=False) the black point applies instead.
    """

    model_cpu_offload_seq = "unet->vae"
    _optional_components = ["guide", "vae"]

    def __init__(self, unet: UNet2DModel, scheduler: SchedulerMixin, guide: Optional[UNet2DModel] = None,
                 pen: Union[PenStyle, dict, None] = None, vae: Optional[AutoencoderKL] = None,
                 patch_size: int = 1, tone: Union[ToneMap, dict, None] = None) -> None:
        super().__init__()
        self.register_modules(unet=unet, scheduler=scheduler, guide=guide, vae=vae)
        self.register_to_config(patch_size=patch_size)  # not the pen: save_pretrained writes it to pen.json
        self.patch_size = patch_size
        # None for a style-conditioned model built by DiffusionPipeline.from_pretrained: see `pen`
        self._pen = pen if isinstance(pen, PenStyle) else PenStyle.from_json(pen)
        # None from DiffusionPipeline.from_pretrained: `tone` reads the folder's tone.json on first use
        self._tone = tone if isinstance(tone, ToneMap) else ToneMap.from_json(tone)
        self._tone_read = tone is not None
        self.classifier: Optional[NoisyClassifier] = None  # guidance "classifier" (load_pipeline): not a component

    @property
    def tone(self) -> Optional[ToneMap]:
        """The tone map of the output (None: black point only): given, set, or read from the tone.json of the folder
        diffusers loaded the pipeline from (`name_or_path`, set after __init__) on first use."""
        if not self._tone_read:
            folder = self.name_or_path
            self._tone = read_tone(Path(folder)) if folder and Path(folder).is_dir() else None
            self._tone_read = True
        return self._tone

    @tone.setter
    def tone(self, tone: Optional[ToneMap]) -> None:
        self._tone, self._tone_read = tone, True

    @property
    def pen(self) -> Optional[PenStyle]:
        """The pen ranges and style pool of a style-conditioned model, None for others. diffusers' from_pretrained
        builds the pipeline without showing it its folder, so a pen not given is read from the pen.json of the
        folder it was loaded from (`name_or_path`, set after __init__) on first use."""
        if self._pen is None and self.style_conditioned:
            folder = self.name_or_path
            self._pen = read_pen(Path(folder)) if folder and Path(folder).is_dir() else None
            if self._pen is None:
                raise DevagenError(f"a style-conditioned UNet needs its pen ranges (pen.json in the model folder, "
                                   f"{folder!r} has none); pass pen=, or run `dvc repro train` to rebuild the folder")
        return self._pen

    def save_pretrained(self, save_directory: Union[str, Path], **kwargs: Any) -> None:
        """diffusers' save_pretrained, plus pen.json and tone.json, so that the folder loads again with its pen and
        tone map."""
        super().save_pretrained(save_directory, **kwargs)
        write_pen(Path(save_directory), self.pen)
        write_tone(Path(save_directory), self.tone)

    @property
    def style_conditioned(self) -> bool:
        """Whether the network also reads a stroke width and slant."""
        return is_style_conditioned(self.unet)

    @property
    def conditional(self) -> bool:
        """Whether the UNet has class embeddings (46 classes + the null label)."""
        return self.unet.config.num_class_embeds is not None

    @property
    def null_label(self) -> int:
        """Class-embedding index meaning "no class": the last one (devagen.diffusion.unet.NULL_LABEL = 46)."""
        return self.unet.config.num_class_embeds - 1

    @property
    def latent(self) -> bool:
        """Whether the UNet works in an autoencoder's latent space (latent diffusion) rather than on pixels."""
        return getattr(self, "vae", None) is not None

    @property
    def image_shape(self) -> tuple[int, int]:
        """(H, W) of the images this pipeline draws."""
        if self.latent:
            size = self.vae.config.sample_size
            return (size, size) if isinstance(size, int) else tuple(size)
        return tuple(self.patch_size * side for side in self.sample_shape)

    @property
    def sample_shape(self) -> tuple[int, int]:
        """(H, W) of what the UNet denoises: the image, or a latent model's latent."""
        size = self.unet.config.sample_size
        return (size, size) if isinstance(size, int) else tuple(size)

    def decoded(self, x: torch.Tensor) -> torch.Tensor:
        """What the UNet denoises -> model-range images (B, 1, H, W): a latent model's latents through its decoder,
        a patch model's patches rearranged back into pixels."""
        if not self.latent:
            return from_patches(x, self.patch_size)
        from ..diffusion.autoencoder import decode

        return decode(self.vae, x.to(self.vae.dtype)).float()

    def use_sampler(self, sampler: str = "dpmpp") -> "DevagenPipeline":
        """Swap in devagen's tuned inference scheduler ("dpmpp" | "ddim" | "ddpm") for the same schedule; returns self."""
        self.scheduler = build_sampler(dict(self.scheduler.config), sampler, latent=self.latent,
                                       learned_variance=learns_variance(self.unet))
        return self

    def guided(self, guidance_scale: float, guidance: str = "cfg") -> bool:
        """Whether sampling evaluates a second prediction to guide by (CFG needs class labels)."""
        if guidance not in GUIDANCE:
            raise DevagenError(f"sample.guidance: unknown {guidance!r}; choose one of {', '.join(GUIDANCE)}")
        if guidance_scale == 1.0:
            return False
        return self._has_guide("sample.guidance: autoguidance") if guidance == "autoguidance" else self.conditional

    def adds_guide(self, autoguidance_scale: float) -> bool:
        """Whether sampling also guides away from guide/ (autoguidance_scale != 1, on top of cfg or classifier)."""
        return autoguidance_scale != 1.0 and self._has_guide("sample.autoguidance_scale")

    def _has_guide(self, option: str) -> bool:
        if self.guide is None:
            raise DevagenError(f"{option} needs the model's guide/ network; set train.guide_step > 0 and run `dvc "
                               "repro train`, or use sample.guidance: cfg with sample.autoguidance_scale: 1")
        return True

    def passes_per_step(self, guidance_scale: float, guidance: str = "cfg", autoguidance_scale: float = 1.0) -> int:
        """Network evaluations per image per step (at most): 2 when guided, else 1; one more for the added guide."""
        return (2 if self.guided(guidance_scale, guidance) else 1) + int(self.adds_guide(autoguidance_scale))

    def model_output(self, x: torch.Tensor, t: torch.Tensor, labels: Optional[torch.Tensor],
                     guidance_scale: float = 1.0, guidance: str = "cfg", parallel: float = 1.0,
                     estimate: Optional[torch.Tensor] = None, autoguidance_scale: float = 1.0) -> torch.Tensor:
        """Network output (B, C, H, W), guided as worse + g·(model − worse); a learned-variance network's (B, 2C, H, W),
        guided in its prediction half, its variance half the model's (devagen.diffusion.variance).
        autoguidance_scale a != 1 adds (a − 1)·(model − guide), the guide asked for the same class, on top of that
        (with g = 1: autoguidance alone); guidance_scale is 1 outside the guidance interval, a is not.

        CFG's two predictions come from ONE batched pass. The combination is linear, so it is valid
        for eps, v and x0 predictions alike. parallel != 1 reweights the guidance update's component
        along the model's clean-image prediction (project_guidance), done in x0 space.
        estimate: a self-conditioned UNet's previous clean-image estimate like x (None: zeros), read by every pass.
        """
        def net(model: UNet2DModel, x: torch.Tensor, labels: Optional[torch.Tensor]) -> torch.Tensor:
            if is_self_conditioned(model):
                x = with_estimate(x, None if estimate is None else estimate.repeat(len(x) // len(estimate), 1, 1, 1))
            return model(x, t, class_labels=labels).sample.to(x.dtype)  # bf16 under autocast: back to x's dtype

        guided, added = self.guided(guidance_scale, guidance), self.adds_guide(autoguidance_scale)
        if not guided and not added:
            return net(self.unet, x, labels)
        worse = None
        if guided and guidance == "autoguidance":
            good, worse = net(self.unet, x, labels), net(self.guide, x, labels)
        elif guided:
            null = with_null_class(labels, self.null_label)
            good, worse = net(self.unet, torch.cat([x, x]), torch.cat([labels, null])).chunk(2)
        else:
            good = net(self.unet, x, labels)
        good, variance = split_output(good, x.shape[1])  # the variance half, if any: good's
        worse, weak = (None if w is None else mean_half(w, x.shape[1])
                       for w in (worse, net(self.guide, x, labels) if added else None))
        return join_output(guided_prediction(self.scheduler, good, worse, guidance_scale, parallel, weak,
                                             autoguidance_scale, x, t), variance)

    def _class_labels(self, labels: Labels, batch_size: Optional[int],
                      by_classifier: bool) -> tuple[Optional[torch.Tensor], Optional[torch.Tensor], int]:
        """(the UNet's class labels (B,) int64 on device or None, the asked classes (B,) or None, batch size). An
        unconditional model takes asked classes only from classifier guidance (by_classifier)."""
        if labels is None:
            size = batch_size or 1
            null = torch.full((size,), self.null_label, device=self.device) if self.conditional else None
            return null, None, size
        if not self.conditional and not by_classifier:
            raise DevagenError("this model is unconditional: it cannot be told which character to draw; train with "
                               "`model.conditional: true` (`dvc repro train`) or use sample.guidance: classifier")
        raw = labels if isinstance(labels, torch.Tensor) else torch.as_tensor(np.asarray(labels))
        tensor = raw.to(self.device, torch.long).reshape(-1)
        if batch_size is not None and batch_size != len(tensor):
            raise ValueError(f"batch_size {batch_size} != {len(tensor)} labels")
        if len(tensor) and (tensor.min() < 0 or tensor.max() >= NUM_CLASSES):
            raise ValueError(f"labels must lie in [0, {NUM_CLASSES}), got {tensor.tolist()}")
        return tensor if self.conditional else None, tensor, len(tensor)

    def pen_values(self, class_labels: torch.Tensor, stroke: PenValues, slant: PenValues,
                   generator: Generators) -> tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
        """(stroke, slant) float (B,) for class labels (B,): the asked values (checked against the trained ranges),
        the rest drawn per image from its class's pool with that image's generator (PenStyle.draw_each); and a
        layout-conditioned model's layout moments (B, 4) of each image's drawn pool entry (else None)."""
        b = len(class_labels)
        asked = [per_image(stroke, b, "stroke"), per_image(slant, b, "slant")]
        for s_value, a_value in zip(*asked):
            self.pen.check(None if np.isnan(s_value) else float(s_value), None if np.isnan(a_value) else float(a_value))
        gens = generator if isinstance(generator, list) else [generator] * b
        gens = [g if g is not None else torch.Generator().manual_seed(i) for i, g in enumerate(gens)]
        labels = [None if int(c) == self.null_label else int(c) for c in class_labels]
        return self.pen.draw_each(labels, *asked, gens, layout_dim(self.unet) > 0)

    def pen_condition(self, class_labels: torch.Tensor, stroke: np.ndarray, slant: np.ndarray,
                      layout: Optional[np.ndarray] = None) -> torch.Tensor:
        """Class labels (B,) with pen values (B,) each and layout moments (B, 4) or None (pen_values) -> the UNet's
        style conditions (B, 4; 8 with layout), and for a model trained with augmentation labels (its UNet config's
        augment_dim) the "not augmented" zeros after them."""
        pen_codes = codes(torch.as_tensor(stroke), torch.as_tensor(slant),
                          None if layout is None else torch.as_tensor(layout), self.image_shape[-1]).to(self.device)
        return condition(class_labels, pen_codes, augment=no_augmentation(self.unet, len(class_labels), self.device))

    def slant_targets(self, class_labels: torch.Tensor, slant: PenValues) -> np.ndarray:
        """Moment slants (B,) in degrees that asked relative slants mean for these classes: the class's median
        slant plus the asked value; NaN where no slant was asked or the label is the null class."""
        labels = class_labels.cpu().numpy()
        asked = per_image(slant, len(labels), "slant")
        real = labels != self.null_label
        medians = np.asarray(self.pen.class_slant, dtype=float)[np.where(real, labels, 0)]
        return np.where(real, medians + asked, np.nan)

    def initial_noise(self, batch_size: int, generator: Generators) -> torch.Tensor:
        """x_T (B, C, H, W) ~ N(0, init_noise_sigma²); a list of generators seeds each image on its own."""
        shape = (batch_size, denoised_channels(self.unet), *self.sample_shape)
        noise = randn_tensor(shape, generator=generator, device=self.device, dtype=self.unet.dtype)
        return noise * self.scheduler.init_noise_sigma

    @torch.no_grad()
    def __call__(self, labels: Labels = None, batch_size: Optional[int] = None, guidance_scale: float = 1.0,
                 num_inference_steps: int = 50, generator: Generators = None, output_type: str = "np",
                 callback: Optional[StepCallback] = None, guidance: str = "cfg",
                 guidance_interval: tuple[int, int] = ALL_TIMESTEPS,
                 guidance_parallel: float = 1.0, classifier_scale: float = 1.0, autoguidance_scale: float = 1.0,
                 stroke: PenValues = None, slant: PenValues = None, slant_shear: bool = True,
                 black_point: int = BLACK_POINT,
                 tone_map: bool = True) -> np.ndarray | list[Image.Image]:
        """Sample B images: uint8 numpy (B, H, W) ("np"), B PIL 'L' images ("pil"), or float32 (B, H, W) grey levels
        on the 0-255 scale before any tone map, black point or shear ("levels": what a tone map is fitted on).

        labels (B,) in [0, 46), or None: unconditional (a conditional model then gets its null label;
        CFG and the classifier then have nothing to guide by, autoguidance still guides).
        autoguidance_scale: also guide away from `guide` at every step, on top of `guidance` (model_output).
        stroke, slant (style-conditioned models only): one value for all, one per image, or None (drawn).
        slant_shear: where a slant is asked, shear each drawn image so that its measured slant is the asked one
        (devagen.pen.shear); the network alone follows an asked slant only a little. False: the network's own.
        tone_map: map the grey levels with the pipeline's tone map (`tone`), when it has one.
        black_point: grey level mapped to black (to_pixels; BLACK_POINT explains the default) where no tone map
        applies; 0 = the raw output.
        """
        if guidance == "classifier" and self.classifier is None:
            raise DevagenError("sample.guidance: classifier: no noisy classifier loaded (load_pipeline's classifier)")
        class_labels, asked, batch_size = self._class_labels(labels, batch_size, guidance == "classifier")
        targets = None
        if self.style_conditioned:
            if slant_shear and slant is not None:
                targets = self.slant_targets(class_labels, slant)
            class_labels = self.pen_condition(class_labels, *self.pen_values(class_labels, stroke, slant, generator))
        elif stroke is not None or slant is not None:
            raise DevagenError("--stroke/--slant: this model is not style-conditioned; train one with "
                               "`dvc exp run -S model.style_conditioning=true`")
        guidance_scale = guidance_scale if asked is not None or guidance == "autoguidance" else 1.0
        by_classifier = guidance == "classifier" and asked is not None and classifier_scale > 0
        lo, hi = guidance_interval
        x = self.initial_noise(batch_size, generator)
        self.scheduler.set_timesteps(num_inference_steps, device=self.device)
        estimate = None  # a self-conditioned UNet's previous clean-image estimate
        for i, t in enumerate(self.scheduler.timesteps):
            scale = guidance_scale if lo <= int(t) <= hi else 1.0
            model_in = self.scheduler.scale_model_input(x, t)
            out = self.model_output(model_in, t, class_labels, scale, guidance, guidance_parallel, estimate,
                                    autoguidance_scale)
            out = out if reads_variance(self.scheduler) else mean_half(out, x.shape[1])  # a learned variance: DDPM's
            if by_classifier and lo <= int(t) <= hi:
                mean, variance = split_output(out, x.shape[1])
                gradient = log_prob_gradient(self.classifier, model_in, t, asked, self.patch_size)
                out = join_output(classifier_guided(self.scheduler, mean, model_in, t, gradient, classifier_scale),
                                  variance)
            if is_self_conditioned(self.unet):  # what the next step reads: the clean image this (guided) output implies
                estimate = clipped(predicted_x0(self.scheduler, mean_half(out, x.shape[1]), model_in, t))
            step = self.scheduler.step(out, t, x, generator=generator)
            if callback is not None:
                x0 = getattr(step, "pred_original_sample", None)
                x0 = x0 if x0 is not None else predicted_x0(self.scheduler, out, x, t)
                callback(i, int(t), self.decoded(x), self.decoded(x0))
            x = step.prev_sample
        decoded = self.decoded(x)
        if output_type == "levels":
            return to_levels(decoded).cpu().numpy()
        if tone_map and self.tone is not None:
            images = self.tone.apply(to_levels(decoded)).cpu().numpy()
        else:
            images = to_pixels(decoded, black_point).cpu().numpy()
        if targets is not None:
            images = shear_to_slant(images, targets)
        if output_type == "pil":
            return [Image.fromarray(image, mode="L") for image in images]
        return images

    def trajectory(self, label: Optional[int], steps: int, generator: Generators = None,
                   guidance_scale: float = 1.0, **guidance: Any) -> "Trajectory":
        """One sampling run of one image, recording x_t and the predicted x0 at every step."""
        xs: list[np.ndarray] = []
        x0s: list[np.ndarray] = []
        ts: list[int] = []

        def record(i: int, t: int, x: torch.Tensor, x0: torch.Tensor) -> None:
            xs.append(from_model_range(x)[0].cpu().numpy())
            x0s.append(from_model_range(x0)[0].cpu().numpy())
            ts.append(t)

        final = self(labels=None if label is None else [label], batch_size=1, guidance_scale=guidance_scale,
                     num_inference_steps=steps, generator=generator, callback=record, **guidance)
        return Trajectory(xt=np.stack(xs + [final[0]]), x0=np.stack(x0s), timesteps=ts)


@dataclass(frozen=True)
class Trajectory:
    """One sampling run: xt uint8 (steps+1, H, W) = x_t before each step then the result; x0 uint8 (steps, H, W)."""

    xt: np.ndarray
    x0: np.ndarray
    timesteps: list[int]


def load_pipeline(model_dir: Path, sampler: str = "dpmpp", use_ema: bool = True,
                  device: Union[str, torch.device, None] = None, with_guide: bool = False,
                  classifier: Optional[Path] = None) -> DevagenPipeline:
    """A trained model directory -> DevagenPipeline on `device` (None: pick_device()), fp32, eval mode.

    with_guide: also load guide/ (needed by autoguidance); a directory without one raises DevagenError.
    classifier: the noisy_classifier stage's folder, for guidance "classifier" (checked to read what the UNet denoises).
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise broken(model_dir, "no such model directory")
    check_manifest(model_dir, "train")  # checksums.json, written last by training: catches truncation and tampering
    meta = read_meta(model_dir)
    pen = read_pen(model_dir)
    unet = load_unet(model_dir, "unet" if use_ema else "unet_raw")
    if is_style_conditioned(unet) != (pen is not None):
        raise broken(model_dir, "pen.json and the UNet disagree on style conditioning")
    if (unet.config.num_class_embeds is not None) != meta.conditional:
        raise broken(model_dir, f"{META_FILE} says conditional={meta.conditional} but the UNet disagrees")
    if meta.conditional and meta.null_label != unet.config.num_class_embeds - 1:
        raise broken(model_dir, f"{META_FILE} null_label {meta.null_label} is not the UNet's last class embedding")
    guide = None
    if with_guide:
        if not (model_dir / GUIDE_FOLDER / "config.json").is_file():  # else absent, or train.guide_step 0's note
            raise DevagenError(f"{model_dir}: no {GUIDE_FOLDER}/ network for sample.guidance: autoguidance; set "
                               "train.guide_step > 0 and run `dvc repro train`, or use sample.guidance: cfg")
        guide = load_unet(model_dir, GUIDE_FOLDER).eval()
    training = DDPMScheduler.from_config(load_ddpm_config(model_dir))
    if learns_variance(unet) != (training.config.variance_type == LEARNED_RANGE):
        raise broken(model_dir, f"scheduler/ says variance_type {training.config.variance_type} but the UNet "
                                f"{'has' if learns_variance(unet) else 'has no'} variance half (diffusion.learned_variance)")
    vae = None
    from ..diffusion.autoencoder import has_autoencoder, load_autoencoder

    if has_autoencoder(model_dir / VAE_FOLDER):  # latent diffusion: the UNet works in this autoencoder's latent space
        vae = load_autoencoder(model_dir / VAE_FOLDER, "train")
    if denoised_channels(unet) != meta.patch_size ** 2 * (vae.config.latent_channels if vae is not None else 1):
        raise broken(model_dir, f"{META_FILE} patch_size {meta.patch_size} does not fit the UNet's "
                                 f"{unet.config.in_channels} input channels")
    pipeline = DevagenPipeline(unet=unet.eval(), scheduler=training, guide=guide, pen=pen,
                               vae=vae, patch_size=meta.patch_size).use_sampler(sampler)
    pipeline.tone = read_tone(model_dir)
    pipeline.set_progress_bar_config(disable=True)
    pipeline.to(device if device is not None else pick_device())
    for network in (pipeline.unet, pipeline.guide):
        if network is not None:
            use_math_attention(network)  # CPU only: the same attention, faster than torch's CPU SDPA
    if classifier is not None:
        side = None if vae is not None else pipeline.image_shape[0]
        pipeline.classifier = load_classifier_for(Path(classifier), training.alphas_cumprod, side).to(pipeline.device)
    return pipeline
