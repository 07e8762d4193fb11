"""generate(...) used by previews, the sample stage and the CLI alike, plus the sampling figures.

Seeding: image i of a run is drawn from its own generator seeded by (cfg.seed, i), so the same
config gives the same images whatever cfg.batch_size is (up to float rounding of batched
convolutions, at most one grey level), and a longer run extends a shorter one.
"""

from __future__ import annotations

import time
from typing import Any, Optional, Sequence

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from ..core.classes import CLASS_NAMES, GLYPH_TO_INDEX, glyphs
from ..core.config import SampleConfig
from ..core.device import autocast, precision_name
from ..core.errors import DevagenError
from ..data.prepared import grey_histogram, resize
from ..report.figures import captioned_row, labelled_rows, random_per_class
from .folder import ModelMeta
from .pipeline import DevagenPipeline, Trajectory
from .tone import ToneMap, fit_tone_map

BLANK = 255  # filler cells are figure-background white, so they read as space, not as a black image


def image_generators(seed: int, start: int, count: int) -> list[torch.Generator]:
    """One CPU generator per image index start..start+count-1, seeded from (seed, index)."""
    base = seed % 2**63  # SeedSequence takes non-negative entropy only
    states = [np.random.SeedSequence([base, start + i]).generate_state(1, np.uint64)[0] for i in range(count)]
    return [torch.Generator().manual_seed(int(s)) for s in states]


def pen_arrays(count: int, stroke: Optional[float], slant: Optional[float]) -> dict:
    """generate()'s stroke/slant keywords for one pen for all `count` images (nothing when neither is asked);
    the pipeline checks them (range, and that the model is style-conditioned)."""
    return {name: np.full(count, np.nan if value is None else value)
            for name, value in (("stroke", stroke), ("slant", slant)) if stroke is not None or slant is not None}


def guidance_options(cfg: SampleConfig) -> dict:
    """The pipeline keyword arguments that say how to guide: scale, kind, timestep interval and classifier scale."""
    return {"guidance_scale": cfg.guidance_scale, "guidance": cfg.guidance,
            "guidance_interval": (cfg.guidance_t_min, cfg.guidance_t_max), "guidance_parallel": cfg.guidance_parallel,
            "classifier_scale": cfg.classifier_scale, "autoguidance_scale": cfg.autoguidance_scale}


def draws_classes(meta: ModelMeta, cfg: SampleConfig) -> bool:
    """Whether the samples are asked for classes: a conditional model's, or any model's under classifier guidance."""
    return meta.conditional or cfg.guidance == "classifier"


def classifier_record(cfg: SampleConfig) -> dict:
    """classifier_scale for the records of a run guided by the classifier, autoguidance_scale for one that adds the
    guide; nothing otherwise (records stay as they were without them)."""
    record = {"classifier_scale": cfg.classifier_scale} if cfg.guidance == "classifier" else {}
    return {**record, "autoguidance_scale": cfg.autoguidance_scale} if cfg.autoguidance_scale != 1.0 else record


def generate(pipeline: DevagenPipeline, labels: Optional[np.ndarray], count: int, cfg: SampleConfig,
             progress: bool = True, stroke: Optional[np.ndarray] = None, slant: Optional[np.ndarray] = None,
             slant_shear: bool = True, start: int = 0, output_type: str = "np") -> np.ndarray:
    """`count` images uint8 (N, H, W) for labels (N,) in [0, 46) or None (unconditional); same cfg ⇒ same images.

    Uses cfg.seed, steps, guidance options, tone_map, black_point and batch_size; the sampler is the pipeline's own
    scheduler. stroke, slant float (N,) (style-conditioned models; NaN or None = drawn per image from its class).
    slant_shear: shear images to the asked slant (DevagenPipeline's option of that name).
    start: index of the first image's generator (image_generators). output_type "levels": float32 (N, H, W) grey
    levels before any tone map (DevagenPipeline).
    """
    if labels is not None and len(labels) != count:
        raise ValueError(f"{len(labels)} labels for {count} images")
    batches = [np.zeros((0, *pipeline.image_shape), np.float32 if output_type == "levels" else np.uint8)]
    with tqdm(total=count, unit="img", desc="sampling", disable=not progress) as bar, \
            autocast(pipeline.device, cfg.precision):
        for i in range(0, count, cfg.batch_size):
            n = min(cfg.batch_size, count - i)
            batch_labels = None if labels is None else np.asarray(labels[i:i + n])
            pen = {name: values[i:i + n] for name, values in (("stroke", stroke), ("slant", slant))
                   if values is not None}
            batches.append(pipeline(labels=batch_labels, batch_size=n, num_inference_steps=cfg.steps,
                                    generator=image_generators(cfg.seed, start + i, n), slant_shear=slant_shear,
                                    black_point=cfg.black_point, tone_map=cfg.tone_map, output_type=output_type,
                                    **guidance_options(cfg), **pen))
            bar.update(n)
    return np.concatenate(batches)


TONE_STREAM = 2**32  # the tone map's reference images use generators from this index on: never a sample's own


def fit_tone(pipeline: DevagenPipeline, meta: ModelMeta, cfg: SampleConfig, real: np.ndarray) -> ToneMap:
    """The ToneMap of this pipeline and cfg onto real uint8 (M, S, S) images' grey levels (the train split): fitted on
    cfg.tone_reference images drawn as cfg draws its samples (classes in turn), seeded apart from every sample."""
    classes = np.arange(cfg.tone_reference, dtype=np.int64) % len(meta.class_names)
    labels = classes if draws_classes(meta, cfg) else None
    levels = generate(pipeline, labels, cfg.tone_reference, cfg, progress=False, start=TONE_STREAM,
                      output_type="levels")
    side = pipeline.image_shape[-1]
    target = grey_histogram(resize(real, side))  # a 64x64 model: DHCD's images at its side
    return fit_tone_map(levels, target, {"images": cfg.tone_reference, "sampler": cfg.sampler, "steps": cfg.steps,
                                         "guidance": cfg.guidance, "guidance_scale": cfg.guidance_scale,
                                         "guidance_interval": [cfg.guidance_t_min, cfg.guidance_t_max],
                                         **classifier_record(cfg)})


def sample_set(pipeline: DevagenPipeline, meta: ModelMeta, cfg: SampleConfig,
               progress: bool = True) -> tuple[np.ndarray, np.ndarray, dict]:
    """The sample stage's images uint8 (N, H, W), labels int64 (N,) (-1 = unconditional), sampler and speed stats.

    Conditional or classifier-guided (draws_classes): cfg.per_class images of each class, grouped by class.
    Unconditional: cfg.count images.
    """
    asked = draws_classes(meta, cfg)
    if asked:
        labels = np.repeat(np.arange(len(meta.class_names), dtype=np.int64), cfg.per_class)
    else:
        labels = np.full(cfg.count, -1, dtype=np.int64)
    start = time.perf_counter()
    images = generate(pipeline, labels if asked else None, len(labels), cfg, progress)
    wall = time.perf_counter() - start
    stats = {"sampler": cfg.sampler, "images": len(images), "wall_s": wall, "images_per_s": len(images) / wall,
             "ms_per_image": 1000.0 * wall / len(images),
             "nfe": cfg.steps * pipeline.passes_per_step(cfg.guidance_scale, cfg.guidance, cfg.autoguidance_scale),
             "steps": cfg.steps, "guidance": cfg.guidance, "precision": precision_name(pipeline.device, cfg.precision),
             "guidance_scale": cfg.guidance_scale if meta.conditional or cfg.guidance == "autoguidance" else 1.0,
             "guidance_interval": [cfg.guidance_t_min, cfg.guidance_t_max], "guidance_parallel": cfg.guidance_parallel,
             **classifier_record(cfg)}
    return images, labels, stats


def _pad(images: np.ndarray, n: int) -> np.ndarray:
    """uint8 (k, H, W) -> (n, H, W), filled with blank cells; k <= n."""
    filler = np.full((n - len(images), *images.shape[1:]), BLANK, np.uint8)
    return np.concatenate([images, filler])


def _grid_rows(images: np.ndarray, labels: np.ndarray, per_row: int,
               max_rows: int) -> dict[int, np.ndarray]:
    """Row key -> uint8 (per_row, H, W): key = class per class present, or row number when labels are all -1."""
    if len(labels) and (labels < 0).all():
        chunks = [images[i:i + per_row] for i in range(0, len(images), per_row)][:max_rows]
        return {-1 - r: _pad(chunk, per_row) for r, chunk in enumerate(chunks)}
    classes = [int(c) for c in np.unique(labels) if c >= 0][:max_rows]
    return {c: _pad(images[labels == c][:per_row], per_row) for c in classes}


def samples_figure(images: np.ndarray, labels: np.ndarray, glyph_list: Sequence[str], per_row: int = 10,
                   real: Optional[tuple[np.ndarray, np.ndarray]] = None, max_rows: int = 46,
                   seed: int = 0) -> Image.Image:
    """Grid of uint8 (N, H, W) samples, one row per class labelled with its glyph (labels -1: unlabelled
    rows); `real` (images, labels) puts DHCD images of the same class, drawn at random (seeded), right of
    each row after a blank cell."""
    labels = np.asarray(labels)
    rows = _grid_rows(images, labels, per_row, max_rows)
    if real is not None:
        real_images, real_labels = real
        real_labels = np.full(len(real_images), -1) if (labels < 0).all() else np.asarray(real_labels)
        pick = random_per_class(real_labels, per_row * len(rows) if (labels < 0).all() else per_row, seed)
        shown = resize(real_images[pick], images.shape[-1])  # DHCD's 32x32 beside a 64x64 model's samples
        real_rows = _grid_rows(shown, real_labels[pick], per_row, max_rows)
        blank = np.full((1, *images.shape[1:]), BLANK, np.uint8)
        empty = np.full((per_row, *images.shape[1:]), BLANK, np.uint8)
        rows = {k: np.concatenate([row, blank, real_rows.get(k, empty)]) for k, row in rows.items()}
    labelled = [(glyph_list[k] if k >= 0 else "", row) for k, row in rows.items()]
    return labelled_rows(labelled, scale=2, title=None if real is None else "generated  |  real DHCD")


def steps_figure(pipeline: DevagenPipeline, label: Optional[int], seed: int,
                 steps: Sequence[int] = (1, 2, 3, 5, 10, 20, 50), title: Optional[str] = None,
                 **guidance: Any) -> Image.Image:
    """The same initial noise sampled with each step count the schedule has timesteps for, captioned "1 step",
    "2 steps", ...

    guidance: the pipeline's guidance keywords (guidance_options); none = unguided.
    """
    steps = [n for n in steps if n <= pipeline.scheduler.config.num_train_timesteps] or [1]
    labels = None if label is None else [label]
    images = np.concatenate([
        pipeline(labels=labels, batch_size=1, num_inference_steps=n, generator=image_generators(seed, 0, 1),
                 **guidance)
        for n in steps])
    captions = [f"{n} step" if n == 1 else f"{n} steps" for n in steps]
    return captioned_row(images, captions, scale=4, title=title)


def _side_by_side(a: np.ndarray, b: np.ndarray, axis: int) -> np.ndarray:
    """Two uint8 (H, W) images joined along `axis` with a 2-pixel blank band between them."""
    band_shape = (2, a.shape[1]) if axis == 0 else (a.shape[0], 2)
    return np.concatenate([a, np.full(band_shape, BLANK, np.uint8), b], axis=axis)


def process_figure(trajectory: Trajectory, columns: int = 8) -> Image.Image:
    """Denoising at ~`columns` evenly spaced steps plus the result: x_t on top, predicted x0 below."""
    steps = len(trajectory.x0)
    picks = np.unique(np.linspace(0, steps - 1, min(columns, steps)).round().astype(int))
    cells = [_side_by_side(trajectory.xt[i], trajectory.x0[i], axis=0) for i in picks]
    cells.append(_side_by_side(trajectory.xt[-1], trajectory.xt[-1], axis=0))
    captions = [f"t={trajectory.timesteps[i]}" for i in picks] + ["result"]
    return captioned_row(np.stack(cells), captions, scale=4, title="top: noisy x_t    bottom: predicted x0")


def denoising_frames(trajectory: Trajectory) -> list[np.ndarray]:
    """GIF frames uint8 (H, 2W+2): x_t beside predicted x0 at every step, then the result twice."""
    frames = [_side_by_side(x, x0, axis=1) for x, x0 in zip(trajectory.xt, trajectory.x0)]
    return frames + [_side_by_side(trajectory.xt[-1], trajectory.xt[-1], axis=1)]


def class_index(name: str) -> int:
    """Class index of an official folder name (character_1_ka) or a glyph (क)."""
    if name in CLASS_NAMES:
        return CLASS_NAMES.index(name)
    if name in GLYPH_TO_INDEX:
        return GLYPH_TO_INDEX[name]
    raise DevagenError(f"--class: unknown class {name!r}; use a glyph ({' '.join(glyphs())}) "
                       f"or a DHCD folder name ({', '.join(CLASS_NAMES)})")


def generate_class_grid(pipeline: DevagenPipeline, class_name: Optional[str], n: int, cfg: SampleConfig,
                        per_row: int = 8, stroke: Optional[float] = None, slant: Optional[float] = None,
                        slant_shear: bool = True) -> Image.Image:
    """n samples of one class (name or glyph; None = unconditional) in rows of per_row, glyph at the left.

    cfg: seed, steps and guidance. stroke, slant: the pen of every image (style-conditioned models; None = drawn);
    slant_shear: see generate.
    """
    label = None if class_name is None else class_index(class_name)
    labels = None if label is None else np.full(n, label, dtype=np.int64)
    images = generate(pipeline, labels, n, cfg, progress=False, slant_shear=slant_shear, **pen_arrays(n, stroke, slant))
    glyph = "" if label is None else glyphs()[label]
    rows = [(glyph, images[i:i + per_row]) for i in range(0, n, per_row)]
    return labelled_rows(rows, scale=2)
