"""`devagen sample` (DVC stage sample): the evaluation samples and the sampling figures."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ..core import paths
from ..core.params import reads_guide
from .common import classifier_folder, finish, load, start_run, write_metrics
from .failure import StageCommand
from .options import PARAMS_OPTION

if TYPE_CHECKING:
    from ..core.config import SampleConfig
    from ..sampling.folder import ModelMeta
    from ..sampling.pipeline import DevagenPipeline
    from ..sampling.tone import ToneMap


@click.command(cls=StageCommand)
@PARAMS_OPTION
def sample(params_path: str) -> None:
    """Draw the evaluation samples and the figures (samples, steps, denoising GIF, process)."""
    from ..data import prepared as data
    from ..report import figures
    from ..sampling import generate as sampling
    from ..sampling.folder import read_meta, write_tone
    from ..sampling.pipeline import load_pipeline

    params = load(params_path)
    tracker = start_run(params, "sample")  # first: a failure below is recorded in the run
    cfg = params.sample
    if cfg.sampler == "distilled":  # the distill stage's student: DDIM, its teacher's guidance in its weights
        from ..sampling.students import load_student, student_sampling

        pipeline = load_student(paths.DISTILLED_DIR, cfg.steps)
        cfg = student_sampling(cfg)
    else:
        pipeline = load_pipeline(paths.DIFFUSION_DIR, cfg.sampler, cfg.use_ema,
                                 with_guide=reads_guide(cfg), classifier=classifier_folder(cfg))
    meta = read_meta(paths.DIFFUSION_DIR)
    asked = sampling.draws_classes(meta, cfg)  # conditional, or guided to classes by the noisy classifier
    real = data.load_split(paths.TEST_NPZ) if asked else None  # read before minutes of sampling
    pipeline.tone = fit_tone(pipeline, meta, cfg) if cfg.tone_map else None
    write_tone(paths.DIFFUSION_DIR, pipeline.tone)  # generate and diffusers users draw with the same map
    images, labels, stats = sampling.sample_set(pipeline, meta, cfg)
    stats["tone_map"] = pipeline.tone is not None
    save_samples(images, labels)
    write_metrics("sample", stats)
    fig = sampling.samples_figure(images, labels, meta.glyphs, real=None if real is None else (real.images, real.labels))
    figures.save_image(fig, paths.FIGURES_DIR / "samples.png")
    label = 0 if asked else None
    guidance = sampling.guidance_options(cfg)
    figures.save_image(sampling.steps_figure(pipeline, label, cfg.seed, **guidance), paths.FIGURES_DIR / "steps.png")
    trajectory = pipeline.trajectory(label, cfg.steps, generator=sampling.image_generators(cfg.seed, 0, 1),
                                     **guidance)
    figures.save_image(sampling.process_figure(trajectory), paths.FIGURES_DIR / "process.png")
    figures.save_gif(sampling.denoising_frames(trajectory), paths.FIGURES_DIR / "denoising.gif")
    finish(tracker, figures=("samples.png", "steps.png", "process.png", "denoising.gif"))
    click.echo(f"sample: {stats['images']} images at {stats['images_per_s']:.2f} img/s ({stats['nfe']} NFE each)")


def fit_tone(pipeline: DevagenPipeline, meta: ModelMeta, cfg: SampleConfig) -> ToneMap:
    """The tone map onto the train split's grey levels (devagen.sampling.tone), said aloud with its cost."""
    import time

    from ..data import prepared as data
    from ..sampling.generate import fit_tone as fit

    start = time.perf_counter()
    tone = fit(pipeline, meta, cfg, data.load_split(paths.TRAIN_NPZ).images)
    click.echo(f"sample: tone map fitted on {cfg.tone_reference} images in {time.perf_counter() - start:.1f} s")
    return tone


def save_samples(images, labels) -> None:  # type: ignore[no-untyped-def]
    """samples/samples.npz (images uint8, labels), written whole or not at all."""
    import numpy as np

    paths.SAMPLES_NPZ.parent.mkdir(parents=True, exist_ok=True)
    tmp = paths.SAMPLES_NPZ.with_name(".tmp-samples.npz")
    np.savez(tmp, images=images, labels=labels)
    tmp.replace(paths.SAMPLES_NPZ)
