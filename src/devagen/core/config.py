"""Typed, frozen configuration read from params.yaml: one dataclass per section (the model section's, with the
UNet's shape, in core/shape.py).

Unknown keys and bad values are rejected with a message naming `section.key`.
Values are cast to the declared type, because `dvc exp run -S train.lr=5e-5` writes
`lr: 5e-05`, which YAML reads back as a string.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Optional

from .errors import check

BETA_SCHEDULES = {"linear": "linear", "cosine": "squaredcos_cap_v2", "sigmoid": "sigmoid",
                  "squaredcos_cap_v2": "squaredcos_cap_v2", "scaled_linear": "scaled_linear"}
PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")
TIMESTEP_SAMPLINGS = ("uniform", "weighted", "logit_normal")  # how training draws t: diffusion.objective.draw_timesteps
SAMPLERS = ("dpmpp", "sde-dpmpp", "ddim", "ddpm", "distilled")  # distilled: the distill stage's student (DDIM)
DISTILL_STEPS = (1, 2, 4, 8)  # student step counts: powers of two that divide the 1000 training timesteps
# cfg and autoguidance: what guidance extrapolates away from (the unconditional prediction or the guide network);
# classifier: CFG as cfg, plus the noisy classifier's gradient (devagen.diffusion.noisy_classifier)
GUIDANCE = ("cfg", "autoguidance", "classifier")
MIXED_PRECISION = ("auto", "no", "fp16", "bf16")
PRECISIONS = ("auto", "fp32", "bf16")  # CPU autocast settings (devagen.core.device)
COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune")  # train.compile


@dataclass(frozen=True)
class FetchConfig:
    """Where the DHCD archive comes from when no local copy is given."""

    url: str = "https://archive.ics.uci.edu/static/public/389/devanagari+handwritten+character+dataset.zip"
    retries: int = 3
    timeout_s: float = 60.0

    def __post_init__(self) -> None:
        check(self.url.startswith(("http://", "https://")), "fetch.url", "must be an http(s) URL")
        check(self.retries >= 1, "fetch.retries", "must be >= 1")
        check(self.timeout_s > 0, "fetch.timeout_s", "must be > 0")


@dataclass(frozen=True)
class PrepareConfig:
    """How the archive is turned into prepared arrays."""

    image_size: int = 32
    dedupe: bool = True

    def __post_init__(self) -> None:
        check(8 <= self.image_size <= 256, "prepare.image_size", "must be in [8, 256]")


@dataclass(frozen=True)
class AugmentConfig:
    """Batched on-device augmentation; each transform has a strength and a probability."""

    enabled: bool = True
    rotate_deg: float = 8.0
    rotate_p: float = 0.5
    scale: float = 0.1
    scale_p: float = 0.5
    translate: float = 0.06
    translate_p: float = 0.5
    stroke_p: float = 0.2
    elastic_alpha: float = 1.0
    elastic_p: float = 0.2
    brightness: float = 0.1
    contrast: float = 0.1
    color_p: float = 0.3
    noise_std: float = 0.0  # Gaussian noise on the ink, std as a share of its [0, 1] range; 0 = off
    noise_p: float = 0.5

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name.endswith("_p"):
                check(0.0 <= v <= 1.0, f"augment.{f.name}", "probability must be in [0, 1]")
            elif f.name != "enabled":
                check(v >= 0, f"augment.{f.name}", "strength must be >= 0")
        check(self.rotate_deg <= 45, "augment.rotate_deg", "must be <= 45 (larger turns change the letter)")
        check(self.scale < 0.5, "augment.scale", "must be < 0.5")
        check(self.translate < 0.5, "augment.translate", "must be < 0.5")


@dataclass(frozen=True)
class OcrConfig:
    """The OCR judge: a character classifier trained on real train images only."""

    seed: int = 0
    epochs: int = 5
    batch_size: int = 256
    lr: float = 0.4  # peak of the one-cycle schedule (SGD with Nesterov momentum)
    weight_decay: float = 5e-4  # conv/linear weights only
    width: int = 24  # first conv's channels; then 2x and 4x (penultimate features: 4x width)
    pool_first: bool = False  # max-pool a stage's conv output before its BatchNorm and ReLU (devagen.judges.ocr._stage)
    label_smoothing: float = 0.1
    augment: bool = True
    dropout: float = 0.0  # before the final linear layer
    warmup: float = 0.2  # fraction of all steps the one-cycle LR spends rising to lr
    hard_share: float = 1.0  # after the first epoch, each epoch trains on this share of train images: the hardest
    random_share: float = 0.0  # ... plus this share of the others, at random (1 and 0: every image every epoch)
    ood_holdout: float = 0.1  # share of train images kept out of the feature Gaussians to calibrate legibility
    precision: str = "fp32"  # auto: bf16 autocast where the CPU computes bf16 natively (devagen.core.device.cpu_bf16)

    def __post_init__(self) -> None:
        check(self.epochs >= 1, "train_ocr.epochs", "must be >= 1")
        check(self.precision in PRECISIONS, "train_ocr.precision", f"must be one of {', '.join(PRECISIONS)}")
        check(0 < self.ood_holdout < 1, "train_ocr.ood_holdout", "must be in (0, 1)")
        check(self.batch_size >= 1, "train_ocr.batch_size", "must be >= 1")
        check(self.lr > 0, "train_ocr.lr", "must be > 0")
        check(self.weight_decay >= 0, "train_ocr.weight_decay", "must be >= 0")
        check(self.width >= 4, "train_ocr.width", "must be >= 4")
        check(0 <= self.label_smoothing < 1, "train_ocr.label_smoothing", "must be in [0, 1)")
        check(0 <= self.dropout < 1, "train_ocr.dropout", "must be in [0, 1)")
        check(0 < self.warmup < 1, "train_ocr.warmup", "must be in (0, 1)")
        check(0 < self.hard_share <= 1, "train_ocr.hard_share", "must be in (0, 1]")
        check(0 <= self.random_share <= 1, "train_ocr.random_share", "must be in [0, 1]")


@dataclass(frozen=True)
class StyleNetConfig:
    """The style-space network: the judge's architecture trained WITHOUT augmentation, so pen width stays visible."""

    seed: int = 0
    epochs: int = 1
    train_images: int = 20000  # seeded subset of the train split; 0 = all of it
    width: int = 16  # first conv's channels (features: 4x width)
    batch_size: int = 256
    lr: float = 0.4  # peak of the one-cycle schedule (SGD with Nesterov momentum)

    def __post_init__(self) -> None:
        check(self.epochs >= 1, "style_net.epochs", "must be >= 1")
        check(self.train_images >= 0, "style_net.train_images", "must be >= 0 (0 = the whole train split)")
        check(self.width >= 4, "style_net.width", "must be >= 4")
        check(self.batch_size >= 1, "style_net.batch_size", "must be >= 1")
        check(self.lr > 0, "style_net.lr", "must be > 0")


@dataclass(frozen=True)
class C2stConfig:
    """Classifier two-sample test: a small CNN trained to tell generated from real images."""

    seed: int = 0
    epochs: int = 20
    width: int = 8  # first conv's channels of the judge architecture
    batch_size: int = 32  # capped at the number of training images
    lr: float = 0.05  # peak of the one-cycle schedule (SGD with Nesterov momentum)
    repeats: int = 3  # seeds seed, seed+1, ...: the median is reported (one CNN can fail to train)
    tone_folds: int = 5  # the tone C2ST's cross-validation folds (devagen.judges.tone_c2st)
    tone_l2: float = 0.01  # its ridge on the standardised histogram weights

    def __post_init__(self) -> None:
        check(self.epochs >= 1, "c2st.epochs", "must be >= 1")
        check(self.tone_folds >= 2, "c2st.tone_folds", "must be >= 2 (cross-validation folds)")
        check(self.tone_l2 >= 0, "c2st.tone_l2", "must be >= 0")
        check(self.repeats >= 1, "c2st.repeats", "must be >= 1")
        check(self.width >= 4, "c2st.width", "must be >= 4")
        check(self.batch_size >= 1, "c2st.batch_size", "must be >= 1")
        check(self.lr > 0, "c2st.lr", "must be > 0")


@dataclass(frozen=True)
class VaeConfig:
    """Latent diffusion (devagen.diffusion.autoencoder): a diffusers AutoencoderKL trained on DHCD, and the UNet trained in its
    latent space instead of on pixels."""

    enabled: bool = False  # false: the vae stage writes only a note, and the UNet works on pixels
    seed: int = 0
    downsample: int = 4  # image side / latent side: 2 or 4 (32x32 -> 16x16 or 8x8)
    channels: int = 4  # latent channels
    width: int = 32  # channels of the first encoder level (then 2x)
    steps: int = 800  # optimizer steps of the autoencoder
    batch_size: int = 64
    lr: float = 1.0e-3
    kl_weight: float = 1.0e-6  # weight of the KL term against the per-pixel reconstruction loss
    precision: str = "auto"  # CPU autocast of the autoencoder's training (devagen.core.device); fp32 weights

    def __post_init__(self) -> None:
        check(self.downsample in (2, 4), "vae.downsample", "must be 2 or 4")
        check(self.channels >= 1, "vae.channels", "must be >= 1")
        check(self.width >= 8 and self.width % 8 == 0, "vae.width", "must be a multiple of 8, at least 8")
        check(self.steps >= 1, "vae.steps", "must be >= 1")
        check(self.batch_size >= 1, "vae.batch_size", "must be >= 1")
        check(self.lr > 0, "vae.lr", "must be > 0")
        check(self.kl_weight >= 0, "vae.kl_weight", "must be >= 0")
        check(self.precision in PRECISIONS, "vae.precision", f"must be one of {', '.join(PRECISIONS)}")


@dataclass(frozen=True)
class NoisyClassifierConfig:
    """Classifier guidance's network (devagen.diffusion.noisy_classifier): a small CNN trained on noised DHCD train
    images at uniformly random timesteps of the diffusion section's schedule. Never the OCR judge."""

    enabled: bool = False  # false: the noisy_classifier stage writes only a note
    seed: int = 0
    steps: int = 300  # optimizer steps
    batch_size: int = 128
    lr: float = 5.0e-3  # AdamW, warm-up then cosine
    width: int = 16  # first level's channels (then 2x, 4x)

    def __post_init__(self) -> None:
        check(self.steps >= 1, "noisy_classifier.steps", "must be >= 1")
        check(self.batch_size >= 1, "noisy_classifier.batch_size", "must be >= 1")
        check(self.lr > 0, "noisy_classifier.lr", "must be > 0")
        check(self.width >= 4 and self.width % 4 == 0, "noisy_classifier.width", "must be a multiple of 4, at least 4")


@dataclass(frozen=True)
class DiffusionConfig:
    """The noise schedule and training objective (saved with the model's scheduler)."""

    num_train_timesteps: int = 1000
    beta_schedule: str = "cosine"
    prediction_type: str = "v_prediction"
    offset_noise: float = 0.0
    min_snr_gamma: float = 5.0  # 0 disables min-SNR-γ loss weighting
    timestep_sampling: str = "uniform"  # one of TIMESTEP_SAMPLINGS
    ssim_weight: float = 0.0  # weight of (1 - SSIM) of the clean-image estimate, times alpha_bar_t; 0 = off
    perceptual_weight: float = 0.0  # weight of the distance in the OCR judge's features, times alpha_bar_t; 0 = off
    focal_gamma: float = 0.0  # weight each pixel's squared error by its (normalised) error ** gamma; 0 = off
    adversarial_weight: float = 0.0  # hinge critic on the clean-image estimate, times alpha_bar_t; 0 = off
    critic_lr: float = 2.0e-4  # Adam lr of that critic (devagen.diffusion.adversarial)
    learned_variance: bool = False  # a second output half learns each reverse step's variance (devagen.diffusion.variance)
    vlb_weight: float = 0.001  # λ of Improved DDPM's hybrid loss: MSE + λ·(the variational bound), with learned_variance

    @property
    def needs_judge(self) -> bool:
        """Whether training reads the OCR judge (models/ocr) for the perceptual loss."""
        return self.perceptual_weight > 0

    def __post_init__(self) -> None:
        check(self.num_train_timesteps >= 2, "diffusion.num_train_timesteps", "must be >= 2")
        check(self.beta_schedule in BETA_SCHEDULES, "diffusion.beta_schedule",
               f"unknown schedule {self.beta_schedule!r}; choose one of linear, cosine, sigmoid")
        check(self.prediction_type in PREDICTION_TYPES, "diffusion.prediction_type",
               f"unknown {self.prediction_type!r}; choose one of {', '.join(PREDICTION_TYPES)}")
        check(self.timestep_sampling in TIMESTEP_SAMPLINGS, "diffusion.timestep_sampling",
              f"unknown {self.timestep_sampling!r}; choose one of {', '.join(TIMESTEP_SAMPLINGS)}")
        for key in ("offset_noise", "min_snr_gamma", "ssim_weight", "perceptual_weight", "focal_gamma", "adversarial_weight"):
            check(getattr(self, key) >= 0, f"diffusion.{key}", "must be >= 0 (0 disables)")
        check(self.critic_lr > 0, "diffusion.critic_lr", "must be > 0")
        check(self.vlb_weight >= 0, "diffusion.vlb_weight", "must be >= 0")
        check(self.vlb_weight > 0 or not self.learned_variance, "diffusion.vlb_weight",
              "must be > 0 with diffusion.learned_variance: true (only the bound trains the variance); e.g. 0.001")

    @property
    def diffusers_beta_schedule(self) -> str:
        return BETA_SCHEDULES[self.beta_schedule]


@dataclass(frozen=True)
class TrainConfig:
    """The diffusion training loop."""

    seed: int = 0
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_steps: int = 200
    epochs: float = 0.0  # used when max_steps is 0
    max_steps: int = 3000
    grad_accum: int = 1
    grad_clip: float = 1.0  # clip gradients at this norm, 0 disables
    mixed_precision: str = "auto"
    ema_decay: float = 0.999  # 0 disables EMA
    cond_drop_prob: float = 0.1
    style_drop_prob: float = 0.1  # style-conditioned models: drop the style (independently of the class)
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    log_every: int = 25
    augment: bool = True
    guide_step: float = 0  # the (EMA) weights at this step (>= 1) or share of the run (< 1) become guide/; 0 = none
    compile: str = "off"  # torch.compile the UNet on CUDA: off | default | reduce-overhead | max-autotune
    lr_schedule: str = "cosine"  # after warm-up: cosine (decay) | cyclic (triangular) | restarts (warm restarts)
    lr_cycle_steps: int = 500  # cyclic and restarts: optimizer steps per cycle (devagen.core.updates.lr_factor)
    lr_min_ratio: float = 0.0  # the lowest lr after warm-up, as a share of train.lr

    def __post_init__(self) -> None:
        check(self.batch_size >= 1, "train.batch_size", "must be >= 1")
        check(self.lr > 0, "train.lr", "must be > 0")
        check(self.weight_decay >= 0, "train.weight_decay", "must be >= 0")
        check(self.warmup_steps >= 0, "train.warmup_steps", "must be >= 0")
        check(self.epochs >= 0 and self.max_steps >= 0, "train.max_steps", "epochs and max_steps must be >= 0")
        check(self.epochs > 0 or self.max_steps > 0, "train.max_steps", "set max_steps > 0 or epochs > 0")
        check(self.grad_accum >= 1, "train.grad_accum", "must be >= 1")
        check(self.compile in COMPILE_MODES, "train.compile", f"choose one of {', '.join(COMPILE_MODES)}")
        check(self.lr_schedule in ("cosine", "cyclic", "restarts"), "train.lr_schedule", "choose cosine, cyclic or restarts")
        check(self.lr_cycle_steps >= 2, "train.lr_cycle_steps", "must be >= 2")
        check(0 <= self.lr_min_ratio < 1, "train.lr_min_ratio", "must be in [0, 1)")
        check(self.grad_clip >= 0, "train.grad_clip", "must be >= 0 (0 disables)")
        check(self.mixed_precision in MIXED_PRECISION, "train.mixed_precision",
               f"choose one of {', '.join(MIXED_PRECISION)}")
        check(0 <= self.ema_decay < 1, "train.ema_decay", "must be in [0, 1)")
        check(0 <= self.cond_drop_prob < 1, "train.cond_drop_prob", "must be in [0, 1)")
        check(0 <= self.style_drop_prob < 1, "train.style_drop_prob", "must be in [0, 1)")
        check(self.checkpoint_every >= 1, "train.checkpoint_every", "must be >= 1")
        check(self.keep_checkpoints >= 1, "train.keep_checkpoints", "must be >= 1")
        check(self.log_every >= 1, "train.log_every", "must be >= 1")
        check(self.guide_step >= 0 and (self.guide_step < 1 or self.guide_step == int(self.guide_step)),
              "train.guide_step", "a step (a whole number >= 1), a share of the run's steps (below 1) or 0 (none)")
        check(self.max_steps == 0 or self.guide_step < self.max_steps, "train.guide_step",
               f"must be below train.max_steps ({self.max_steps}): the guide is an early snapshot")


@dataclass(frozen=True)
class SampleConfig:
    """How the sample stage draws images from the trained model."""

    seed: int = 0
    sampler: str = "dpmpp"
    steps: int = 20
    guidance_scale: float = 2.0  # 1 = conditional only, no guidance
    guidance: str = "cfg"  # cfg (by the unconditional prediction) | autoguidance (by guide/) | classifier (GUIDANCE)
    classifier_scale: float = 1.0  # guidance: classifier: s of eps - s·sqrt(1 - alpha_bar)·∇log p(y | x_t)
    guidance_t_min: int = 0  # guide only at timesteps in [t_min, t_max]; the conditional prediction elsewhere
    guidance_t_max: int = 1000
    guidance_parallel: float = 1.0  # weight of the guidance update along the prediction (APG); 1 = plain guidance
    autoguidance_scale: float = 1.0  # with cfg or classifier: also away from guide/ at every step, by this; 1 = off
    per_class: int = 50  # conditional models
    count: int = 2300  # unconditional models
    batch_size: int = 256
    use_ema: bool = True
    precision: str = "fp32"  # auto: bf16 autocast where the CPU computes bf16 natively (devagen.core.device.cpu_bf16)
    black_point: int = 8  # grey level (0-255) mapped to black, the rest stretched back to 0-255 (devagen.sampling.pipeline)
    tone_map: bool = True  # grey levels by the model folder's tone map (devagen.sampling.tone), if any; else black_point
    tone_reference: int = 460  # images drawn (other seeds than the samples') to fit the tone map on

    def __post_init__(self) -> None:
        check(self.sampler in SAMPLERS, "sample.sampler", f"choose one of {', '.join(SAMPLERS)}")
        check(0 <= self.black_point <= 128, "sample.black_point", "must be in [0, 128] (0 = off)")
        check(self.tone_reference >= 1, "sample.tone_reference", "must be >= 1 (images to fit the tone map on)")
        check(self.precision in PRECISIONS, "sample.precision", f"must be one of {', '.join(PRECISIONS)}")
        check(self.steps >= 1, "sample.steps", "must be >= 1")
        check(self.sampler != "distilled" or self.steps in DISTILL_STEPS, "sample.steps",
               f"sample.sampler: distilled needs the steps of a distilled student: one of {', '.join(map(str, DISTILL_STEPS))}")
        check(self.guidance_scale >= 0, "sample.guidance_scale", "must be >= 0")
        check(self.guidance in GUIDANCE, "sample.guidance", f"choose one of {', '.join(GUIDANCE)}")
        check(self.autoguidance_scale >= 1 and (self.guidance != "autoguidance" or self.autoguidance_scale == 1),
              "sample.autoguidance_scale", "must be >= 1 (1 = off); it adds autoguidance to cfg or classifier "
              "guidance, so with sample.guidance: autoguidance leave it at 1 and set sample.guidance_scale")
        check(self.classifier_scale >= 0, "sample.classifier_scale", "must be >= 0 (0 = no classifier gradient)")
        check(0 <= self.guidance_parallel <= 1, "sample.guidance_parallel", "must be in [0, 1] (1 = plain guidance)")
        check(0 <= self.guidance_t_min <= self.guidance_t_max, "sample.guidance_t_max",
               "need 0 <= guidance_t_min <= guidance_t_max (timesteps)")
        check(self.per_class >= 1, "sample.per_class", "must be >= 1")
        check(self.count >= 1, "sample.count", "must be >= 1")
        check(self.batch_size >= 1, "sample.batch_size", "must be >= 1")


@dataclass(frozen=True)
class DistillConfig:
    """Progressive distillation (devagen.training.distill) of the trained, guided model into few-step DDIM students."""

    enabled: bool = False  # false: the distill stage writes only a note that it is off
    seed: int = 0
    start_steps: int = 8  # the first student's DDIM steps; its teacher is the trained model with CFG at twice as many
    min_steps: int = 1  # halve the steps each round down to this
    steps_per_round: int = 250  # optimizer steps per round
    batch_size: int = 32
    lr: float = 1e-4
    warmup_steps: int = 20
    grad_clip: float = 1.0  # 0 disables
    guidance_scale: float = 3.0  # the teacher's classifier-free guidance, folded into the students
    guidance_t_min: int = 300  # the teacher guides only at timesteps in [t_min, t_max]
    guidance_t_max: int = 1000
    precision: str = "auto"  # CPU autocast of teacher and student (devagen.core.device); bf16 autocast on CUDA
    per_class: int = 20  # samples per class each student is measured on (distill.json)
    student_preset: Optional[str] = None  # None: the student is the teacher's network and weights; a preset: a fresh one

    def __post_init__(self) -> None:
        allowed = ", ".join(map(str, DISTILL_STEPS))
        check(self.start_steps in DISTILL_STEPS, "distill.start_steps", f"must be one of {allowed}")
        check(self.min_steps in DISTILL_STEPS and self.min_steps <= self.start_steps, "distill.min_steps",
               f"must be one of {allowed} and at most distill.start_steps ({self.start_steps})")
        check(self.steps_per_round >= 1, "distill.steps_per_round", "must be >= 1")
        check(self.batch_size >= 1, "distill.batch_size", "must be >= 1")
        check(self.lr > 0, "distill.lr", "must be > 0")
        check(self.warmup_steps >= 0, "distill.warmup_steps", "must be >= 0")
        check(self.grad_clip >= 0, "distill.grad_clip", "must be >= 0 (0 disables)")
        check(self.guidance_scale >= 0, "distill.guidance_scale", "must be >= 0")
        check(0 <= self.guidance_t_min <= self.guidance_t_max, "distill.guidance_t_max",
               "need 0 <= guidance_t_min <= guidance_t_max (timesteps)")
        check(self.precision in PRECISIONS, "distill.precision", f"must be one of {', '.join(PRECISIONS)}")
        check(self.per_class >= 1, "distill.per_class", "must be >= 1")

    @property
    def student_steps(self) -> tuple[int, ...]:
        """Each round's student steps, e.g. (8, 4, 2, 1)."""
        return tuple(n for n in reversed(DISTILL_STEPS) if self.min_steps <= n <= self.start_steps)


@dataclass(frozen=True)
class EvaluateConfig:
    """FID/KID/precision/recall in judge features, OCR accuracy, optional Inception FID."""

    seed: int = 0
    confidence: float = 0.7  # legibility threshold (label smoothing caps the judge near 0.9)
    kid_subset_size: int = 500  # capped at the sample count
    kid_subsets: int = 100  # KID is the mean (and std) over this many random subsets
    prc_neighborhood: int = 3  # k of the k-NN balls that define precision/recall manifolds
    batch_size: int = 256
    inception_weights: Optional[str] = None  # local copy of torch-fidelity's Inception weights, or "download"
    ood_quantile: float = 0.99  # legibility: feature distance at most this quantile of held-out real images
    cas: bool = False  # classification accuracy score: two judge trainings
    cas_epochs: int = 20
    cas_batch_size: int = 64

    def __post_init__(self) -> None:
        check(0 < self.confidence < 1, "evaluate.confidence", "must be in (0, 1)")
        check(0 < self.ood_quantile <= 1, "evaluate.ood_quantile", "must be in (0, 1]")
        check(self.cas_epochs >= 1, "evaluate.cas_epochs", "must be >= 1")
        check(self.cas_batch_size >= 1, "evaluate.cas_batch_size", "must be >= 1")
        check(self.kid_subset_size >= 2, "evaluate.kid_subset_size", "must be >= 2")
        check(self.kid_subsets >= 1, "evaluate.kid_subsets", "must be >= 1")
        check(self.prc_neighborhood >= 1, "evaluate.prc_neighborhood", "must be >= 1")
        check(self.batch_size >= 1, "evaluate.batch_size", "must be >= 1")


@dataclass(frozen=True)
class ReportConfig:
    """The rendered report."""

    recent_runs: int = 5  # MLflow runs in the comparison table

    def __post_init__(self) -> None:
        check(self.recent_runs >= 1, "report.recent_runs", "must be >= 1")


@dataclass(frozen=True)
class HumanStudyConfig:
    """The blind sheet of the human_study stage (devagen.judges.human_study): half generated, half real glyphs."""

    enabled: bool = False  # false: the stage writes only a note that it is off
    items: int = 92  # glyphs on the sheet: items // 2 generated and as many real of the same classes
    seed: int = 0

    def __post_init__(self) -> None:
        check(2 <= self.items <= 2000, "human_study.items", "must be in [2, 2000] (half generated, half real)")


@dataclass(frozen=True)
class TrackingConfig:
    """MLflow; MLFLOW_TRACKING_URI overrides `uri`."""

    enabled: bool = True
    experiment: str = "devagen"
    uri: str = "sqlite:///mlflow.db"
    log_model: bool = True  # log the trained model as an MLflow pyfunc model (copies one UNet's weights)
