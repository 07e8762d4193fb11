"""Style control of a style-conditioned model (issue 15): does it write the stroke width and slant it is asked
for, and does one word keep one hand?

    python benchmarks/style_control.py --model models/diffusion --out benchmarks/results/style_control

Sampling uses params.yaml's sample section (sampler, steps, guidance). Measured with devagen.pen.conditions.measure_pen
(the style measures' stroke width and slant), stroke as a multiple of the model's training median width.

1. Stroke sweep and slant sweep: --per-value images of each of --classes at each asked value (the other
   control drawn from real training images of the class): Pearson r (over images and over the medians
   per asked value) and the median error. Figures: one row per class, one column per asked value, 4x.
   The slant is measured twice on the same images: as the network drew them (slant_shear off) and as
   `devagen generate` returns them (sheared by the rest, devagen.pen.shear; slant_sweep_network.png shows the former).
2. `devagen generate --text "क ख ग"` at --stroke 0.7 and 1.4, --seeds seeds: measured width ratio.
3. One hand per word: --words words of 4 random classes, each written with one pen drawn per word
   (devagen.sampling.text.word_pens; with and without the slant shear), against the same characters with a pen drawn
   per character: the spread (pooled std within words vs std over all) of the measured stroke and slant.
4. A word at three stroke widths and three slants (figure).

Outputs in --out: style_control.json, style_control.md and the figures stroke_sweep.png, slant_sweep.png,
slant_sweep_network.png, word.png.
"""

from __future__ import annotations

import datetime
import json
import platform
import time
from dataclasses import replace
from pathlib import Path

import click
import numpy as np
import torch
from control import faithfulness, pooled_spread
from PIL import Image, ImageDraw

from devagen.core.classes import glyphs
from devagen.core.params import load_params
from devagen.pen.conditions import measure_pen, relative_slant
from devagen.pen.shear import shear_to_slant
from devagen.report.figures import glyph_font, labelled_rows, save_image
from devagen.sampling.generate import generate
from devagen.sampling.pipeline import load_pipeline
from devagen.sampling.text import parse_text, word_pens

REPO = Path(__file__).resolve().parents[1]
STROKES = (0.6, 0.8, 1.0, 1.2, 1.4, 1.6)
SLANTS = (-15.0, -7.5, 0.0, 7.5, 15.0)  # degrees from each character's median slant


def _cpu() -> str:
    """The CPU model name (for the record beside every timing)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def sweep(pipe, cfg, classes: list[int], values: tuple, control: str, per_value: int, seed: int):
    """Images (V*C*per_value, H, W), labels and asked values for a sweep of one control."""
    labels = np.tile(np.repeat(classes, per_value), len(values))
    asked = np.repeat(values, len(classes) * per_value).astype(float)
    images = generate(pipe, labels, len(labels), replace(cfg, seed=seed), slant_shear=False,
                      **{control: asked})
    return images, labels, asked


def sweep_figure(images: np.ndarray, labels: np.ndarray, asked: np.ndarray, values: tuple, classes: list[int],
                 unit: str) -> Image.Image:
    """Rows = classes, columns = asked values (the first image of each) at 4x, the asked values above."""
    rows = [(glyphs()[c], np.stack([images[(labels == c) & (asked == v)][0] for v in values])) for c in classes]
    grid = labelled_rows(rows, scale=4)
    cell = images.shape[-1] * 4 + 2
    font = glyph_font(16)
    head = Image.new("L", (grid.width, 48), 255)
    draw = ImageDraw.Draw(head)
    left = grid.width - len(values) * cell + 2
    draw.text((left, 2), f"asked {unit}:", fill=0, font=font)
    for i, v in enumerate(values):
        draw.text((left + i * cell + cell // 2, 34), f"{v:g}", fill=0, font=font, anchor="mm")
    canvas = Image.new("L", (grid.width, head.height + grid.height), 255)
    canvas.paste(head, (0, 0))
    canvas.paste(grid, (0, head.height))
    return canvas


@click.command()
@click.option("--model", "model_dir", default="models/diffusion", show_default=True)
@click.option("--out", default="benchmarks/results/style_control", show_default=True)
@click.option("--classes", default="क,ख,ग,ज,ठ,म", show_default=True, help="glyphs of the sweeps")
@click.option("--per-value", default=4, show_default=True)
@click.option("--words", "n_words", default=24, show_default=True)
@click.option("--seeds", default=5, show_default=True)
@click.option("--params", "params_path", default="params.yaml", show_default=True)
def main(model_dir: str, out: str, classes: str, per_value: int, n_words: int, seeds: int, params_path: str) -> None:
    began = time.perf_counter()
    cfg = load_params(params_path).sample
    pipe = load_pipeline(Path(model_dir), cfg.sampler, cfg.use_ema, device="cpu")
    if not pipe.style_conditioned:
        raise click.ClickException(f"{model_dir} is not style-conditioned (model.style_conditioning: true)")
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    class_ids = [parse_text(g)[0] for g in classes.split(",")]
    median = pipe.pen.median_width_px
    result: dict = {"model": model_dir, "sample": {k: getattr(cfg, k) for k in ("sampler", "steps", "guidance_scale")},
                    "cpu": _cpu(), "date": datetime.date.today().isoformat(), "pen": {
                        "median_width_px": median, "stroke_range": pipe.pen.stroke_range,
                        "slant_range": pipe.pen.slant_range}}

    # 1. sweeps
    for control, values, unit in (("stroke", STROKES, "stroke (x median width)"), ("slant", SLANTS, "slant (deg from typical)")):
        lo, hi = pipe.pen.stroke_range if control == "stroke" else pipe.pen.slant_range
        values = tuple(v for v in values if lo <= v <= hi)
        images, labels, asked = sweep(pipe, cfg, class_ids, values, control, per_value, seed=1)
        if control == "slant":  # the network's own drawing, then what the pipeline's shear makes of it
            result["slant_network_sweep"] = faithfulness(
                asked, relative_slant(measure_pen(images), labels, pipe.pen.class_slant))
            save_image(sweep_figure(images, labels, asked, values, class_ids, unit),
                       out_dir / "slant_sweep_network.png")
            click.echo(f"slant, network alone: {json.dumps(result['slant_network_sweep'])}")
            images = shear_to_slant(images, pipe.slant_targets(torch.as_tensor(labels), asked))
        pen = measure_pen(images)
        measured = pen[:, 0] / median if control == "stroke" else relative_slant(pen, labels, pipe.pen.class_slant)
        result[f"{control}_sweep"] = faithfulness(asked, measured, relative=control == "stroke")
        save_image(sweep_figure(images, labels, asked, values, class_ids, unit),
                   out_dir / f"{control}_sweep.png")
        click.echo(f"{control}: {json.dumps(result[control + '_sweep'])}")

    # 2. --text "क ख ग" at --stroke 0.7 and 1.4
    word = parse_text("क ख ग")
    labels = np.array([s for s in word if s is not None])
    ratios = []
    for seed in range(seeds):
        widths = {}
        for stroke in (0.7, 1.4):
            pens = word_pens(pipe, word, seed, stroke=stroke)
            images = generate(pipe, labels, len(labels), replace(cfg, seed=seed),
                              progress=False, **pens)
            widths[stroke] = float(np.mean(measure_pen(images)[:, 0]))
        ratios.append(widths[1.4] / widths[0.7])
    result["text_stroke_ratio"] = {"text": "क ख ग", "strokes": [0.7, 1.4], "ratios": ratios,
                                   "median": float(np.median(ratios))}
    click.echo(f"ratio 1.4/0.7: {result['text_stroke_ratio']}")

    # 3. one hand per word
    rng = np.random.default_rng(0)
    word_labels = rng.integers(0, 46, (n_words, 4))
    flat = word_labels.reshape(-1)
    per_word = {"stroke": [], "slant": []}
    for w, letters in enumerate(word_labels):
        pens = word_pens(pipe, list(letters), seed=100 + w)
        for k in per_word:
            per_word[k].append(pens[k])
    words_cfg = replace(cfg, seed=2)
    word_pen = {"stroke": np.concatenate(per_word["stroke"]), "slant": np.concatenate(per_word["slant"])}
    together, network = (measure_pen(generate(pipe, flat, len(flat), words_cfg, progress=False, slant_shear=shear,
                                              **word_pen)) for shear in (True, False))
    apart = measure_pen(generate(pipe, flat, len(flat), words_cfg, progress=False))  # a pen drawn per character
    for pen in (together, network, apart):  # a word's letters differ in shape: slant from each class's median
        pen[:, 1] = relative_slant(pen, flat, pipe.pen.class_slant)
    groups = np.repeat(np.arange(n_words), 4)
    result["consistency"] = {
        name: {"within_word_one_pen": pooled_spread(together[:, j] / scale, groups),
               "within_word_one_pen_no_shear": pooled_spread(network[:, j] / scale, groups),
               "within_word_pen_per_char": pooled_spread(apart[:, j] / scale, groups),
               "all_characters_one_pen_per_word": float(np.std(together[:, j] / scale, ddof=1))}
        for j, (name, scale) in enumerate((("stroke", median), ("slant_deg", 1.0)))}
    result["consistency"]["words"] = n_words
    click.echo(f"consistency: {json.dumps(result['consistency'])}")

    # 4. one word at three widths and three slants
    word = parse_text("कमल")
    rows = []
    for stroke, slant in ((0.7, None), (1.0, None), (1.4, None), (None, -12.0), (None, 0.0), (None, 12.0)):
        pens = word_pens(pipe, word, seed=3, stroke=stroke, slant=slant)
        images = generate(pipe, np.array(word), len(word), replace(cfg, seed=3),
                          progress=False, **pens)
        rows.append((f"stroke {stroke:g}" if stroke is not None else f"slant {slant:+g}°", images))
    save_image(labelled_rows(rows, scale=4, gap=0), out_dir / "word.png")
    result["wall_s"] = time.perf_counter() - began
    (out_dir / "style_control.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out_dir / "style_control.md").write_text(markdown(result), encoding="utf-8")
    click.echo(f"wrote {out_dir}")


def markdown(r: dict) -> str:
    """The measured tables."""
    s, a, n, c = r["stroke_sweep"], r["slant_sweep"], r["slant_network_sweep"], r["consistency"]
    lines = [f"Model `{r['model']}`; {r['sample']['sampler']} {r['sample']['steps']} steps, CFG "
             f"{r['sample']['guidance_scale']}; {r['cpu']}, {r['date']}, {r['wall_s']:.0f} s in all.", "",
             "| control | images | r (images) | r (medians per value) | median error | median abs error |",
             "|---|---|---|---|---|---|",
             f"| stroke (x median width {r['pen']['median_width_px']:.2f} px) | {s['n']} | {s['r_images']:.3f} | "
             f"{s['r_medians']:.3f} | {100 * s['median_error']:+.1f} % | {100 * s['median_abs_error']:.1f} % |",
             f"| slant (degrees from the class median), network alone | {n['n']} | {n['r_images']:.3f} | {n['r_medians']:.3f} | "
             f"{n['median_error']:+.1f}° | {n['median_abs_error']:.1f}° |",
             f"| slant, network + shear (what `generate` gives) | {a['n']} | {a['r_images']:.3f} | {a['r_medians']:.3f} | "
             f"{a['median_error']:+.1f}° | {a['median_abs_error']:.1f}° |", "",
             "Asked → measured median: stroke " + ", ".join(f"{v:g}→{m:.2f}" for v, m in zip(s["levels"], s["measured_medians"]))
             + "; slant, network alone " + ", ".join(f"{v:g}→{m:.1f}" for v, m in zip(n["levels"], n["measured_medians"]))
             + "; with the shear " + ", ".join(f"{v:g}→{m:.1f}" for v, m in zip(a["levels"], a["measured_medians"])) + ".", "",
             f"`generate --text \"क ख ग\"` at --stroke 1.4 vs 0.7: measured width ratio {r['text_stroke_ratio']['median']:.2f} "
             f"(median of {len(r['text_stroke_ratio']['ratios'])} seeds: "
             + ", ".join(f"{x:.2f}" for x in r["text_stroke_ratio"]["ratios"]) + ").", "",
             f"One hand per word ({c['words']} words of 4 random characters; spread = pooled std within a word):", "",
             "| measure | within a word, one pen per word | the same without the slant shear | within a word, pen drawn "
             "per character | over all characters |",
             "|---|---|---|---|---|"]
    for name in ("stroke", "slant_deg"):
        v = c[name]
        lines.append(f"| {name} | {v['within_word_one_pen']:.3f} | {v['within_word_one_pen_no_shear']:.3f} | "
                     f"{v['within_word_pen_per_char']:.3f} | "
                     f"{v['all_characters_one_pen_per_word']:.3f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
