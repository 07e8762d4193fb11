"""params.yaml read into one typed Params: values cast to each field's type (DVC's -S writes 5e-05 as a
string), unknown keys refused, combinations of settings checked before any stage works; flattened for MLflow."""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from .config import Params, check
from .errors import DevagenError


def _cast(value: Any, typ: Any, key: str) -> Any:
    """Cast one YAML value to the declared field type, or raise naming the key."""
    origin = typing.get_origin(typ)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "null", "none")):
            return None
        return _cast(value, args[0], key)
    if origin is tuple:  # a YAML list (as `dvc exp run -S 'k=[1,2]'` writes it), or its text
        items = yaml.safe_load(value) if isinstance(value, str) else value
        check(isinstance(items, (list, tuple)), key, f"expected a list like [64, 128], got {value!r}")
        return tuple(_cast(item, typing.get_args(typ)[0], f"{key}[{i}]") for i, item in enumerate(items))
    try:
        if typ is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            check(text in ("true", "false", "1", "0", "yes", "no"), key, f"expected true/false, got {value!r}")
            return text in ("true", "1", "yes")
        if typ is int:
            number = float(value)
            check(number == int(number), key, f"expected an integer, got {value!r}")
            return int(number)
        if typ is float:
            return float(value)
        if typ is str:
            check(value is not None, key, "must not be empty")
            if isinstance(value, bool):  # YAML 1.1 reads an unquoted off/no/false (on/yes/true) as a boolean
                return "on" if value else "off"
            return str(value)
    except (TypeError, ValueError):
        raise DevagenError(f"params.yaml: {key}: expected {typ.__name__}, got {value!r}") from None
    return value


@functools.lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    """cls's field types, resolved once (typing.get_type_hints compiles every annotation on each call)."""
    return typing.get_type_hints(cls)


def section_from_dict(cls: type, raw: Any, section: str) -> Any:
    """Build one section's dataclass from its YAML mapping; reject unknown keys."""
    raw = raw or {}
    check(isinstance(raw, dict), section, "must be a mapping of key: value")
    hints = _hints(cls)
    known = {f.name for f in fields(cls)}
    for key in raw:
        check(key in known, f"{section}.{key}", f"unknown key (known: {', '.join(sorted(known))})")
    values = {k: _cast(v, hints[k], f"{section}.{k}") for k, v in raw.items()}
    return cls(**values)


def params_from_dict(raw: Any) -> Params:
    """Build the whole Params from a parsed params.yaml mapping."""
    raw = raw or {}
    check(isinstance(raw, dict), "(top level)", "must be a mapping of sections")
    hints = _hints(Params)
    for name in raw:
        check(name in hints, name, f"unknown section (known: {', '.join(hints)})")
    params = Params(**{n: section_from_dict(hints[n], raw.get(n), n) for n in hints if n in raw})
    check_consistency(params)
    return params


def check_consistency(params: Params) -> None:
    """Cross-section checks that no single section can make alone."""
    factor = params.model.downsample_factor
    check(params.data.image_size % factor == 0, "data.image_size",
           f"{params.data.image_size} is not a multiple of {factor}, the downsampling of preset {params.model.preset!r}"
           + (f" with {len(params.model.block_out_channels)} levels (model.block_out_channels)"
              if params.model.block_out_channels is not None else ""))
    if params.model.patch_size > 1:  # the network sees pixel patches (devagen.diffusion.patches)
        for key, off, why in (
                ("latent.enabled", not params.latent.enabled, "latent diffusion"),
                ("diffusion.ssim_weight", params.diffusion.ssim_weight == 0, "the auxiliary losses, which compare pixels"),
                ("diffusion.perceptual_weight", not params.diffusion.needs_judge,
                 "the auxiliary losses, which compare pixels")):
            check(off, key, f"preset {params.model.preset!r} works on pixel patches and is not built for {why}; "
                             f"turn it off or use preset cpu_conv")
    if params.latent.enabled:
        side = params.data.image_size // params.latent.downsample
        check(params.data.image_size % params.latent.downsample == 0 and side % factor == 0, "latent.downsample",
               f"{params.data.image_size}x{params.data.image_size} images / {params.latent.downsample} give {side}x{side} "
               f"latents, which preset {params.model.preset!r} (downsampling {factor}) cannot take")
        check(not params.diffusion.needs_judge and params.diffusion.ssim_weight == 0, "latent.enabled",
               "the auxiliary losses (diffusion.ssim_weight, perceptual_weight) compare pixels; set them to 0 "
               "for latent diffusion")
        check(not params.distill.enabled, "distill.enabled",
               "distilling a latent model is not built (the students learn in pixel space); set it false with "
               "latent.enabled: true")
    check(not (params.model.style_conditioning and params.train.augment), "train.augment",
           "must be false with model.style_conditioning: augmentation changes the stroke width and slant "
           "each image is labelled with (measured once, in prepare)")
    check_distill(params)
    check_sampling(params)


def check_distill(params: Params) -> None:
    """Cross-section checks of the distill stage: what it distils from and on which timesteps."""
    if not params.distill.enabled:
        return
    timesteps = params.diffusion.num_train_timesteps
    check(timesteps % params.distill.start_steps == 0, "distill.start_steps",
           f"must divide diffusion.num_train_timesteps ({timesteps}): the students step on an even grid of them")
    check(params.model.conditional, "distill.enabled",
           "the students learn the class-guided teacher and are measured by the judge reading the class asked for; "
           "an unconditional model has neither: set distill.enabled: false or model.conditional: true")


def check_sampling(params: Params) -> None:
    """Cross-section checks of what the sample stage reads: the schedule, the guide network, the students."""
    sample = params.sample
    check(sample.steps <= params.diffusion.num_train_timesteps, "sample.steps",
           f"must be at most diffusion.num_train_timesteps ({params.diffusion.num_train_timesteps})")
    if sample.sampler == "distilled":
        check(params.distill.enabled and sample.steps in params.distill.student_steps, "sample.sampler",
               f"distilled needs distill.enabled: true and a student with sample.steps ({sample.steps}) steps "
               f"(distill makes {', '.join(map(str, params.distill.student_steps))}); set them or use sde-dpmpp")
        check(sample.guidance == "cfg", "sample.guidance",
               "the distilled students fold distill.guidance_scale's CFG into their weights and take no autoguidance; "
               "use sample.guidance: cfg with sample.sampler: distilled")
    elif sample.guidance == "autoguidance":
        check(params.train.guide_step > 0, "sample.guidance",
               "autoguidance guides by the guide/ network, an early snapshot that train.guide_step > 0 saves; set "
               "train.guide_step (e.g. a tenth of train.max_steps) or use sample.guidance: cfg")


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml."""
    path = Path(path)
    if not path.is_file():
        raise DevagenError(f"{path}: not found; run from the repository root or pass --params PATH")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise DevagenError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    return params_from_dict(raw)


def flatten(params: Params) -> dict[str, Any]:
    """`section.key` → value, for MLflow params and reports (lists as params.yaml writes them, not tuples)."""
    out: dict[str, Any] = {}
    for name, section in dataclasses.asdict(params).items():
        for key, value in section.items():
            out[f"{name}.{key}"] = list(value) if isinstance(value, tuple) else value
    return out
