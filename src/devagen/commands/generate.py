"""`devagen generate`: generated handwriting for people, a word or a grid of one class, as a PNG."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click

from ..core import paths
from ..core.errors import DevagenError
from ..core.params import reads_guide
from .common import classifier_folder, load
from .options import PARAMS_OPTION


@click.command()
@click.option("--text", default=None, help='Devanagari characters to write in order, e.g. "क ख ग १ २ ३"')
@click.option("--class", "class_name", default=None, help="one class (glyph or DHCD folder name) for a grid")
@click.option("-n", "count", type=click.IntRange(1, 1024), default=16, show_default=True, help="images in the grid")
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="PNG to write")
@click.option("--model", "model_dir", type=click.Path(file_okay=False), default=str(paths.DIFFUSION_DIR), show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--steps", type=click.IntRange(1, 1000), default=None, help="sampling steps (default: sample.steps)")
@click.option("--guidance", type=click.FloatRange(0, 50), default=None,
              help="guidance scale (default: sample.guidance_scale; the kind is sample.guidance)")
@click.option("--stroke", type=float, default=None,
              help="pen width as a multiple of the training set's median (1.0 = typical); style-conditioned models")
@click.option("--slant", type=float, default=None,
              help="slant in degrees from the character's typical slant (positive = leans further right); style-conditioned models")
@click.option("--slant-shear/--no-slant-shear", default=True, show_default=True,
              help="finish an asked slant (--slant, or one drawn per --text word) with a shear, so the measured "
                   "slant is the asked one; --no-slant-shear shows the network's own (it follows only a little)")
@click.option("--distilled", type=click.Choice(["1", "2", "4", "8"]), default=None,
              help="sample with the distill stage's student of this many DDIM steps (models/distilled; its guidance "
                   "is in its weights). Default: the student of sample.steps when sample.sampler is distilled")
@PARAMS_OPTION
def generate(text: str | None, class_name: str | None, count: int, out: str, model_dir: str, seed: int,
             steps: int | None, guidance: float | None, stroke: float | None, slant: float | None,
             slant_shear: bool, distilled: str | None, params_path: str) -> None:
    """Write generated handwriting for people: a word (--text) or a grid (--class / -n)."""
    from ..report import figures
    from ..sampling.generate import generate_class_grid
    from ..sampling.pipeline import load_pipeline
    from ..sampling.text import generate_text

    cfg = load(params_path).sample
    cfg = replace(cfg, seed=seed, steps=steps or cfg.steps,
                  guidance_scale=cfg.guidance_scale if guidance is None else guidance)
    if text is not None and class_name is not None:
        raise DevagenError("generate: give either --text or --class, not both")
    student = int(distilled) if distilled else (cfg.steps if cfg.sampler == "distilled" else None)
    if student is not None:
        from ..sampling.students import load_student, student_sampling

        if guidance is not None:
            raise DevagenError("generate: --guidance does not apply to a distilled student (its guidance is in its "
                               "weights); drop --guidance or --distilled")
        pipeline = load_student(paths.DISTILLED_DIR, student)
        cfg = student_sampling(cfg, steps=student)
    else:
        pipeline = load_pipeline(Path(model_dir), cfg.sampler, cfg.use_ema, with_guide=reads_guide(cfg),
                                 classifier=classifier_folder(cfg))
    if text is not None:
        image = generate_text(pipeline, text, cfg, stroke=stroke, slant=slant, slant_shear=slant_shear)
    else:
        image = generate_class_grid(pipeline, class_name, count, cfg, stroke=stroke, slant=slant,
                                    slant_shear=slant_shear)
    figures.save_image(image, Path(out))
    click.echo(f"generate: wrote {out}")
