"""params.yaml read into one typed Params: values cast to each field's type (DVC's -S writes 5e-05 as a
string), unknown keys refused, combinations of settings checked before any stage works; flattened for MLflow."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import (
    AugmentConfig,
    C2stConfig,
    DiffusionConfig,
    DistillConfig,
    EvaluateConfig,
    FetchConfig,
    HumanStudyConfig,
    NoisyClassifierConfig,
    OcrConfig,
    PrepareConfig,
    ReportConfig,
    SampleConfig,
    StyleNetConfig,
    TrackingConfig,
    TrainConfig,
    VaeConfig,
)
from .errors import check
from .presets import PRESETS, check_model, downsample_factor, model_downsample, patch_size
from .sections import read_yaml, section_from_dict, type_hints
from .shape import ModelConfig


@dataclass(frozen=True)
class Params:
    """All of params.yaml."""

    fetch: FetchConfig = field(default_factory=FetchConfig)
    prepare: PrepareConfig = field(default_factory=PrepareConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train_ocr: OcrConfig = field(default_factory=OcrConfig)
    style_net: StyleNetConfig = field(default_factory=StyleNetConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    vae: VaeConfig = field(default_factory=VaeConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    noisy_classifier: NoisyClassifierConfig = field(default_factory=NoisyClassifierConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    c2st: C2stConfig = field(default_factory=C2stConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    human_study: HumanStudyConfig = field(default_factory=HumanStudyConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)


def params_from_dict(raw: Any) -> Params:
    """Build the whole Params from a parsed params.yaml mapping."""
    raw = raw or {}
    check(isinstance(raw, dict), "(top level)", "must be a mapping of sections")
    hints = type_hints(Params)
    for name in raw:
        check(name in hints, name, f"unknown section (known: {', '.join(hints)})")
    params = Params(**{n: section_from_dict(hints[n], raw.get(n), n) for n in hints if n in raw})
    check_consistency(params)
    return params


def check_consistency(params: Params) -> None:
    """Checks that need the presets or more than one section."""
    check_model(params.model)  # the preset, and the shape its overrides ask for
    factor = model_downsample(params.model)
    check(params.prepare.image_size % factor == 0, "prepare.image_size",
           f"{params.prepare.image_size} is not a multiple of {factor}, the downsampling of preset {params.model.preset!r}"
           + (f" with {len(params.model.block_out_channels)} levels (model.block_out_channels)"
              if params.model.block_out_channels is not None else ""))
    if patch_size(params.model.preset) > 1:  # the network sees pixel patches (devagen.diffusion.patches)
        check(not params.vae.enabled, "vae.enabled", f"preset {params.model.preset!r} works on pixel patches and is "
              "not built for latent diffusion; turn it off or use preset cpu_conv")
    if params.vae.enabled:
        side = params.prepare.image_size // params.vae.downsample
        check(params.prepare.image_size % params.vae.downsample == 0 and side % factor == 0, "vae.downsample",
               f"{params.prepare.image_size}x{params.prepare.image_size} images / {params.vae.downsample} give {side}x{side} "
               f"latents, which preset {params.model.preset!r} (downsampling {factor}) cannot take")
        check(not params.diffusion.needs_judge and params.diffusion.ssim_weight == 0, "vae.enabled",
               "the auxiliary losses (diffusion.ssim_weight, perceptual_weight) compare pixels; set them to 0 "
               "for latent diffusion")
        check(not params.distill.enabled, "distill.enabled",
               "distilling a latent model is not built (the students learn in pixel space); set it false with "
               "vae.enabled: true")
    if params.model.self_conditioning:
        check(not params.diffusion.learned_variance, "model.self_conditioning",
              "is not built with diffusion.learned_variance: true; turn one of them off")
        check(not params.distill.enabled, "model.self_conditioning",
              "distilling a self-conditioned model is not built; set distill.enabled: false")
        check(not params.vae.enabled, "model.self_conditioning",
              "is built for pixel models (its estimate is clipped to the image range); set vae.enabled: false")
    check_distill(params)
    check_sampling(params)


def check_distill(params: Params) -> None:
    """Cross-section checks of the distill stage: what it distils from and on which timesteps, and into what."""
    check_student(params)
    if not params.distill.enabled:
        return
    timesteps = params.diffusion.num_train_timesteps
    check(timesteps % params.distill.start_steps == 0, "distill.start_steps",
           f"must divide diffusion.num_train_timesteps ({timesteps}): the students step on an even grid of them")
    check(params.model.conditional, "distill.enabled",
           "the students learn the class-guided teacher and are measured by the judge reading the class asked for; "
           "an unconditional model has neither: set distill.enabled: false or model.conditional: true")


def check_student(params: Params) -> None:
    """distill.student_preset: a known preset that denoises what the teacher does (its patching, the image side).
    The conditioning needs no check: presets carry none, the student is conditioned as the teacher is."""
    student, teacher, side = params.distill.student_preset, params.model.preset, params.prepare.image_size
    if student is None:
        return
    check(student in PRESETS, "distill.student_preset",
          f"unknown preset {student!r}; choose one of {', '.join(PRESETS)}, or null for a copy of the teacher")
    check(patch_size(student) == patch_size(teacher), "distill.student_preset",
          f"preset {student!r} sees {patch_size(student)}x{patch_size(student)} pixel patches, the teacher (model.preset "
          f"{teacher!r}) {patch_size(teacher)}x{patch_size(teacher)}; pick one with the teacher's (cpu_patch_small for cpu_patch)")
    check(side % downsample_factor(student) == 0, "distill.student_preset",
          f"preset {student!r} (downsampling {downsample_factor(student)}) cannot take the teacher's {side}x{side} "
          "images (prepare.image_size); pick a shallower preset")


def reads_guide(sample: SampleConfig) -> bool:
    """Whether sampling evaluates guide/ (train.guide_step's snapshot): autoguidance, alone or added to CFG."""
    return sample.guidance == "autoguidance" or sample.autoguidance_scale != 1.0


def check_sampling(params: Params) -> None:
    """Cross-section checks of what the sample stage reads: the schedule, the guide network, the classifier, the
    students."""
    sample = params.sample
    check(sample.steps <= params.diffusion.num_train_timesteps, "sample.steps",
           f"must be at most diffusion.num_train_timesteps ({params.diffusion.num_train_timesteps})")
    if sample.sampler == "distilled":
        check(params.distill.enabled and sample.steps in params.distill.student_steps, "sample.sampler",
               f"distilled needs distill.enabled: true and a student with sample.steps ({sample.steps}) steps "
               f"(distill makes {', '.join(map(str, params.distill.student_steps))}); set them or use sde-dpmpp")
        check(sample.guidance == "cfg", "sample.guidance",
               "the distilled students fold distill.guidance_scale's CFG into their weights and take no other "
               "guidance; use sample.guidance: cfg with sample.sampler: distilled")
    elif sample.guidance == "classifier":
        check(params.noisy_classifier.enabled, "sample.guidance",
               "classifier guidance differentiates the noisy_classifier stage's network; set "
               "noisy_classifier.enabled: true or use sample.guidance: cfg")
        check(not params.vae.enabled, "sample.guidance",
               "the noisy classifier reads pixels and a latent model denoises latents; use sample.guidance: cfg "
               "with vae.enabled: true")
    if sample.sampler != "distilled" and reads_guide(sample):
        key = "sample.guidance" if sample.guidance == "autoguidance" else "sample.autoguidance_scale"
        check(params.train.guide_step > 0, key,
               "autoguidance guides by the guide/ network, an early snapshot that train.guide_step > 0 saves; set "
               "train.guide_step (e.g. 0.3: 30 % into the run) or use sample.guidance: cfg with "
               "sample.autoguidance_scale: 1")


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml."""
    return params_from_dict(read_yaml(path))


def flatten(params: Params) -> dict[str, Any]:
    """`section.key` → value, for MLflow params and reports (lists as params.yaml writes them, not tuples)."""
    out: dict[str, Any] = {}
    for name, section in dataclasses.asdict(params).items():
        for key, value in section.items():
            out[f"{name}.{key}"] = list(value) if isinstance(value, tuple) else value
    return out
