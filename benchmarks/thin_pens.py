"""Whether a model draws a thin pen whole: every class drawn with one asked pen width, against real test images of
that width. Per asked width: the measured median width, the share of glyphs in pieces (pen_bins.in_pieces) and the
same share for real test images whose width is within ±15 % of it (each class weighted equally).

    python benchmarks/thin_pens.py --model default=models/diffusion --stroke 0.6 --stroke 1.0 \
        --config "default:" --config "cfg 3:guidance_scale=3" --out /tmp/thin_pens.md

Each --model is NAME=DIR of a style-conditioned model folder; --stroke is the pipeline's multiplier of the model's
median training width (pen.json); --config NAME:KEY=VALUE,... changes params.yaml's `sample` section as in
quality_tone.py (each model is drawn with each config). --figure writes, at 4x, FIGURE_COUNT random real test glyphs of
the first asked width (top rows) above as many of the first model's glyphs at that pen (bottom rows).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click
import numpy as np
from pen_bins import emit_table, in_pieces
from PIL import Image
from quality_tone import parse_config

from devagen.core import paths
from devagen.core.params import load_params, reads_guide
from devagen.data import prepared as data
from devagen.pen.measures import measure
from devagen.sampling.folder import read_meta
from devagen.sampling.generate import fit_tone, generate
from devagen.sampling.pipeline import load_pipeline

BAND = 0.15  # real images within this share of the asked width count as that pen
MIN_PER_CLASS = 5  # classes with fewer real images in the band are left out of the real share
FIGURE_COUNT, FIGURE_ROW, ZOOM = 24, 12, 4  # glyphs per set in --figure, glyphs per row, magnification


def figure(real: np.ndarray, samples: np.ndarray) -> np.ndarray:
    """uint8 picture: `real` glyphs in rows of FIGURE_ROW above `samples` ones, a grey band between, ZOOM x."""
    def rows(images: np.ndarray) -> np.ndarray:
        framed = np.pad(images, ((0, 0), (1, 1), (1, 1)), constant_values=80)
        return np.concatenate([np.concatenate(list(framed[i:i + FIGURE_ROW]), axis=1)
                               for i in range(0, len(framed), FIGURE_ROW)], axis=0)
    top, bottom = rows(real), rows(samples)
    band = np.full((4, top.shape[1]), 160, np.uint8)
    return np.concatenate([top, band, bottom], axis=0).repeat(ZOOM, axis=0).repeat(ZOOM, axis=1)


def real_share(images: np.ndarray, labels: np.ndarray, widths: np.ndarray, pieces: np.ndarray,
               width_px: float) -> tuple[float, int]:
    """In-pieces share of real images within BAND of width_px, each class weighted equally; the classes counted."""
    near = np.abs(widths - width_px) <= BAND * width_px
    shares = [pieces[near & (labels == c)].mean() for c in np.unique(labels)
              if (near & (labels == c)).sum() >= MIN_PER_CLASS]
    return (float(np.mean(shares)) if shares else float("nan")), len(shares)


@click.command()
@click.option("--model", "models", multiple=True, default=(f"default={paths.DIFFUSION_DIR}",), show_default=True,
              help="NAME=DIR of a style-conditioned model folder")
@click.option("--stroke", "strokes", type=float, multiple=True, required=True, help="asked pen, x median width")
@click.option("--config", "configs", multiple=True, default=("default:",), show_default=True,
              help="NAME:KEY=VALUE,... (sample keys)")
@click.option("--per-class", default=10, show_default=True, help="glyphs of each class per asked pen")
@click.option("--params", "params_path", default="params.yaml", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="write the table here")
@click.option("--figure", "figure_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="write real against sampled glyphs of the first asked pen here (PNG)")
def main(models: tuple[str, ...], strokes: tuple[float, ...], configs: tuple[str, ...], per_class: int, params_path: str,
         out: Path | None, figure_path: Path | None) -> None:
    """Print (and with --out write) the table."""
    params = load_params(Path(params_path))
    train, test = data.load_split(paths.TRAIN_NPZ), data.load_split(paths.TEST_NPZ)
    test_widths, test_pieces = measure(test.images)["stroke_width"], in_pieces(test.images)
    lines = ["| model | sampling | asked pen | measured median | in pieces | real at that width (classes) |",
             "|---|---|---|---|---|---|"]
    for model, spec in [(model, spec) for model in models for spec in configs]:
        model_name, _, folder = model.partition("=")
        model_dir, meta = Path(folder), read_meta(Path(folder))
        name, cfg = parse_config(spec, params.sample)
        cfg = replace(cfg, per_class=per_class)
        pipe = load_pipeline(model_dir, cfg.sampler, cfg.use_ema, with_guide=reads_guide(cfg))
        if not pipe.style_conditioned:
            raise click.UsageError(f"{model_dir} is not style-conditioned: it cannot be asked for a pen")
        pipe.tone = fit_tone(pipe, meta, cfg, train.images) if cfg.tone_map else None
        median_px = pipe.pen.median_width_px
        labels = np.repeat(np.arange(len(meta.class_names)), per_class)
        for stroke in strokes:
            images = generate(pipe, labels, len(labels), cfg, progress=False, stroke=np.full(len(labels), stroke))
            asked = stroke * median_px
            real, classes = real_share(test.images, test.labels, test_widths, test_pieces, asked)
            lines.append(f"| {model_name} | {name} | {stroke:g}× ({asked:.2f} px) | "
                         f"{np.nanmedian(measure(images)['stroke_width']):.2f} px | {in_pieces(images).mean():.1%} | "
                         f"{real:.1%} ({classes}) |")
            click.echo(lines[-1])
            if figure_path is not None and len(lines) == 3:  # the first model, config and pen
                rng = np.random.default_rng(0)
                near = np.flatnonzero(np.abs(test_widths - asked) <= BAND * asked)
                picture = figure(test.images[rng.choice(near, FIGURE_COUNT, replace=False)],
                                 images[rng.choice(len(images), FIGURE_COUNT, replace=False)])
                figure_path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(picture).save(figure_path)
    emit_table(lines, out)


if __name__ == "__main__":
    main()
