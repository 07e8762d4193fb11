"""The model card: README.md in the trained model folder, as the Hugging Face Hub and diffusers expect it.

YAML metadata (license, library, tags, and the evaluation results under `model-index`), how to load
the model, how it was trained (from params.yaml), what it scores (from reports/metrics) and the
sample grid. Every number is read from the params or the metrics files; nothing is typed by hand.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Mapping, Optional

import yaml

from ..core.classes import CLASS_NAMES
from .blocks import Block, Figure, Heading, Para, Table
from .pages import eval_table
from .render import to_markdown
from .sentences import fmt_duration, fmt_num, summarize

CARD = "README.md"
GRID = "samples.png"  # copied beside the card from reports/figures/samples.png
DATASET = {"name": "DHCD: Devanagari Handwritten Character Dataset", "type": "dhcd", "split": "test"}
CITATION = ('S. Acharya, A. K. Pant, P. K. Gyawali, "Deep learning based large scale handwritten Devanagari '
            'character recognition", SKIMA 2015. UCI Machine Learning Repository, dataset 389, CC BY 4.0.')
TRAINED_SECTIONS = ("model", "diffusion", "train")
# eval.json key -> (metric type, name) for the Hub's model-index results
INDEX_METRICS = {"ocr_accuracy": ("accuracy", "OCR accuracy (judge reads the class asked for)"),
                 "legible_share": ("accuracy", "legible share (judge confidence above threshold)"),
                 "fid": ("fid", "FID in OCR-judge features"), "floor_fid": ("fid", "FID floor, real vs real"),
                 "kid": ("kid", "KID in OCR-judge features"), "precision": ("precision", "precision"),
                 "recall": ("recall", "recall")}


def card_metadata(params: Mapping[str, Any], metrics: Mapping[str, Mapping[str, Any]], name: str) -> dict[str, Any]:
    """The YAML front matter: Hub metadata, plus model-index results when evaluate has run."""
    conditional = bool(params.get("model.conditional"))
    meta: dict[str, Any] = {
        "license": "cc-by-4.0",  # the weights derive from DHCD, CC BY 4.0: attribution travels with them
        "library_name": "diffusers",
        "pipeline_tag": "unconditional-image-generation",
        "tags": ["diffusers", "ddpm", "pytorch", "devanagari", "handwriting", "image-generation",
                 "class-conditional" if conditional else "unconditional-image-generation"],
    }
    ev = metrics.get("eval") or {}
    results = [{"type": kind, "name": label, "value": round(float(ev[key]), 4)}
               for key, (kind, label) in INDEX_METRICS.items() if isinstance(ev.get(key), (int, float))]
    if results:
        meta["model-index"] = [{"name": name, "results": [{
            "task": {"type": "unconditional-image-generation", "name": "Handwritten Devanagari characters"},
            "dataset": DATASET, "metrics": results}]}]
    return meta


def _usage(params: Mapping[str, Any]) -> list[Block]:
    """How to load this folder with plain diffusers (and with devagen)."""
    if params.get("model.self_conditioning") and not params.get("model.conditional"):
        return [Para("Unconditional and self-conditioned: the UNet reads its previous clean-image estimate beside "
                     "x_t (twice the channels it writes), which plain `DDPMPipeline` does not feed; load it with "
                     "devagen's `DevagenPipeline` as below for a conditional model, with `labels=None, batch_size=4`.")]
    if params.get("model.conditional"):
        steps, scale = params.get("sample.steps", 10), params.get("sample.guidance_scale", 3.0)
        code = ("```python\nimport torch\nfrom diffusers import DiffusionPipeline\n\n"
                "# trust_remote_code runs pipeline_devagen.py, one line: `from devagen.sampling.pipeline import DevagenPipeline`\n"
                'pipeline = DiffusionPipeline.from_pretrained("models/diffusion", trust_remote_code=True).use_sampler("dpmpp")\n'
                f"images = pipeline(labels=[0, 1, 2], guidance_scale={scale}, num_inference_steps={steps},\n"
                '                  generator=torch.manual_seed(0), output_type="pil")\n```')
        return [Para("Class-conditional: `labels` are DHCD class indices 0–45 (`devagen.json` lists their names "
                     "and glyphs); `pip install devagen` provides the pipeline class."), Para(code),
                Para('Or with devagen: `devagen generate --text "क ख ग" --out word.png`.')] + _guide_usage(params) + \
            _pen_usage(params) + (
            [Para("Self-conditioned: the UNet also reads its previous clean-image estimate (twice the channels it "
                  "writes); the pipeline feeds it at every step, zeros at the first.")]
            if params.get("model.self_conditioning") else [])
    code = ("```python\nimport torch\nfrom diffusers import DDPMPipeline, DPMSolverMultistepScheduler\n\n"
            'pipeline = DDPMPipeline.from_pretrained("models/diffusion")\n'
            "pipeline.scheduler = DPMSolverMultistepScheduler()\n"
            "images = pipeline(batch_size=4, generator=torch.Generator().manual_seed(0), num_inference_steps=10).images\n```")
    blocks = [Para("Unconditional: the plain diffusers DDPMPipeline loads it."), Para(code)]
    if (params.get("diffusion.beta_schedule"), params.get("diffusion.prediction_type")) != ("linear", "epsilon"):
        blocks.append(Para("This model was trained with a `{}` schedule and `{}` prediction, not the default scheduler's "
                           "linear/epsilon: build the sampler from the saved one instead, "
                           "`pipeline.scheduler = DPMSolverMultistepScheduler.from_config(pipeline.scheduler.config)`."
                           .format(params.get("diffusion.beta_schedule"), params.get("diffusion.prediction_type"))))
    return blocks


def _tone_usage(params: Mapping[str, Any], sample: Mapping[str, Any]) -> list[Block]:
    """Whether the output is tone-mapped (the sample stage's record, else params), and how to switch it off."""
    if not sample.get("tone_map", params.get("sample.tone_map", False)):
        return [Para("The output is not tone-mapped: the network's grey levels, faint grey at or below "
                     f"{fmt_num(params.get('sample.black_point', 8))} set to black (`black_point`).")]
    return [Para("The output is tone-mapped: `tone.json` in this folder maps the network's grey levels onto the "
                 "pixel-value distribution of the DHCD train split (stroke cores at exactly 255, the faint halo beside "
                 f"strokes), fitted by the sample stage on {fmt_num(params.get('sample.tone_reference'))} images "
                 "drawn with its sampler and guidance. devagen's pipeline applies it (plain `DDPMPipeline` does not); "
                 "`pipeline(..., tone_map=False)` gives the network's own levels with the black point instead.")]


def _guide_usage(params: Mapping[str, Any]) -> list[Block]:
    """How to sample as the sample stage did when it also guided by guide/ (sample.autoguidance_scale)."""
    scale = params.get("sample.autoguidance_scale", 1.0)
    if scale == 1.0:
        return []
    return [Para(f"The sample stage also guides away from `guide/`, this network early in training (autoguidance, "
                 f"scale {fmt_num(scale)}, on top of CFG {fmt_num(params.get('sample.guidance_scale'))} from "
                 f"t = {fmt_num(params.get('sample.guidance_t_min'))}): `from_pretrained` does not load `guide/`; "
                 '`devagen.sampling.pipeline.load_pipeline("models/diffusion", "sde-dpmpp", with_guide=True)` does, '
                 f"and takes `pipeline(..., autoguidance_scale={fmt_num(scale)})`.")]


def _pen_usage(params: Mapping[str, Any]) -> list[Block]:
    """Style-conditioned models: the stroke and slant options."""
    if not params.get("model.style_conditioning"):
        return []
    return [Para("Style-conditioned: the UNet (`unet/unet_devagen.py`: devagen's `StyleUNet2DModel`) also reads a "
                 "stroke width and a slant. `pipeline(labels=[0, 1], stroke=1.3, slant=10.0)`, or "
                 '`devagen generate --text "क ख ग" --stroke 1.3 --slant 10 --out word.png`: stroke is a multiple of '
                 "the training set's median stroke width, slant in degrees from the character's typical slant; the trained ranges are in "
                 "`pen.json` in the model folder, and values outside them are refused. Without them each image "
                 "(each word, with --text) gets the pen of a random real training image.")] + (
        [Para("Layout-conditioned: four more codes say where the ink lies (its centroid and spread); each image "
              "gets those of a random real training image of its class (`pen.json`'s pool), so the characters sit "
              "and spread in the frame as DHCD's writers placed them.")] if params.get("model.layout_conditioning")
        else [])


def _training(params: Mapping[str, Any], train: Mapping[str, Any]) -> list[Block]:
    """The params that shaped the weights, then what training measured."""
    sections = TRAINED_SECTIONS + (("augment",) if params.get("train.augment") else ())
    rows = [[key, fmt_num(value) if not isinstance(value, str) else value]
            for section in sections for key, value in params.items() if key.split(".")[0] == section]
    blocks: list[Block] = [Heading("Training"), Para(
        f"A diffusers `UNet2DModel` (preset `{params.get('model.preset')}`"
        + (f", {fmt_num(train['params'])} parameters" if train.get("params") else "")
        + ")" + shape_sentence(train.get("unet")) + " trained on the DHCD train split, exact duplicates removed, by "
          "devagen's pipeline (`dvc repro`). `unet/` holds the EMA weights"
        + (f" (decay {fmt_num(params.get('train.ema_decay'))})" if params.get("train.ema_decay") else "")
        + ", `unet_raw/` the raw ones, `scheduler/` the training noise schedule."),
        Table(["parameter (params.yaml)", "value"], rows)]
    if train:
        spec = [("steps", "steps", fmt_num), ("epochs", "epochs", fmt_num), ("global batch", "global_batch", fmt_num),
                ("final loss (smoothed)", "final_loss", fmt_num), ("images / s", "img_per_s", fmt_num),
                ("wall time", "wall_s", fmt_duration), ("device", "device", str)]
        blocks.append(Table(["training run", "value"],
                            [[label, fmt(train[key])] for label, key, fmt in spec if train.get(key) is not None]))
    return blocks


def shape_sentence(unet: Optional[Mapping[str, Any]]) -> str:
    """', built as ...' from the train stage's record of the UNet's shape (details `unet`); '' when absent."""
    if not unet:
        return ""
    attention = ", ".join(map(str, unet["attention_levels"])) or "none"
    patches = f", seeing {unet['patch_size']}×{unet['patch_size']} pixel patches as channels" if unet["patch_size"] > 1 else ""
    return (f", built with levels of {'/'.join(map(str, unet['block_out_channels']))} channels (attention at levels: "
            f"{attention}; mid block: {unet['mid_block']}), {unet['layers_per_block']} ResNet layer(s) per block, "
            f"{unet['norm_num_groups']} norm groups, dropout {fmt_num(unet['dropout'])}{patches},")


def _evaluation(params: Mapping[str, Any], metrics: Mapping[str, Mapping[str, Any]]) -> list[Block]:
    ev, sa = metrics.get("eval") or {}, metrics.get("sample") or {}
    if not ev:
        return [Heading("Evaluation"), Para("Not evaluated yet: run `dvc repro evaluate`.")]
    how = (f"{fmt_num(ev.get('n_generated'))} samples, {sa.get('sampler', '?')} sampler, "
           f"{fmt_num(sa.get('steps'))} steps, guidance scale {fmt_num(sa.get('guidance_scale'))}, judged by an "
           "OCR classifier trained on real DHCD train images; distances in its features against real test images.")
    return [Heading("Evaluation"), Para(how), Para(summarize(metrics, params)),
            eval_table(ev, metrics.get("ocr") or {})]


def card_blocks(params: Mapping[str, Any], metrics: Mapping[str, Mapping[str, Any]], name: str) -> list[Block]:
    """The card's body as report blocks (rendered to Markdown by report.to_markdown)."""
    kind = "class-conditional" if params.get("model.conditional") else "unconditional"
    size = params.get("prepare.image_size", 32)
    return [Heading(f"devagen: handwritten Devanagari characters ({name})", 1),
            Para(f"A {kind} diffusion model (DDPM, diffusers) that writes {size}×{size} grayscale handwritten "
                 f"Devanagari characters, white strokes on black: the {len(CLASS_NAMES)} DHCD classes (36 consonants "
                 "including क्ष त्र ज्ञ, and the digits ० … ९). Isolated characters only: no vowel signs, no words."),
            Heading("Use"), *_usage(params), *_tone_usage(params, metrics.get("sample") or {}), *_training(params, metrics.get("train") or {}),
            *_evaluation(params, metrics),
            Heading("Samples"), Figure("samples", "Generated samples beside real DHCD test characters."),
            Heading("Data and license"),
            Para(f"Trained on DHCD: {CITATION} The weights are derived from it and shared under the same license.")]


def model_card(params: Mapping[str, Any], metrics: Mapping[str, Mapping[str, Any]], name: str,
               grid: Optional[Path], card_dir: Path) -> str:
    """README.md text: YAML front matter then Markdown; `grid` is linked relative to card_dir."""
    front = yaml.safe_dump(card_metadata(params, metrics, name), sort_keys=False, allow_unicode=True)
    figures = {"samples": grid} if grid is not None else {}
    return f"---\n{front}---\n\n" + to_markdown(card_blocks(params, metrics, name), figures, card_dir)


def write_model_card(model_dir: Path, params: Mapping[str, Any], metrics: Mapping[str, Mapping[str, Any]],
                     samples_png: Path, name: str) -> Path:
    """Copy the sample grid into model_dir and write model_dir/README.md; returns the card's path."""
    grid = None
    if Path(samples_png).is_file():
        grid = Path(model_dir) / GRID
        shutil.copyfile(samples_png, grid)
    card = Path(model_dir) / CARD
    card.write_text(model_card(params, metrics, name, grid, Path(model_dir)), encoding="utf-8")
    return card
