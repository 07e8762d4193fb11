"""The rendered report: metrics, figures and recent MLflow runs as one HTML file and one Markdown file.

The content is built once as a list of blocks (heading, paragraph, table, figure) and rendered twice:
HTML embeds every image as a base64 data URI (it opens from disk, with no network); Markdown links
each image by its path relative to reports/. Every sentence that states a number is generated from
the metrics files, so the text cannot drift from the numbers.
"""

from __future__ import annotations

import base64
import csv
import html
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence, Union

from PIL import Image

from . import paths, plots
from .classes import CLASS_GLYPHS, CLASS_NAMES
from .errors import DevagenError
from .figures import save_image
from .integrity import one_line, rerun
from .io import read_json

STAGE_OF = {"data": "prepare", "ocr": "train_ocr", "train": "train", "sample": "sample", "eval": "evaluate"}
OPTIONAL_STAGE_OF = {"vae": "vae", "distill": "distill"}  # read when present; no section (not "not run") otherwise
HUMAN_SCORE = "`devagen human-score ANSWERS...`"  # writes reports/details/human.json (no DVC stage: people answer)
FIGURES = ("dataset", "augment", "loss_curve", "samples", "steps", "denoising", "process", "per_class", "confusion",
           "style", "vae", "distill")
KEY_PARAMS = ("model.preset", "model.conditional", "model.scale_shift", "diffusion.prediction_type", "diffusion.beta_schedule",
              "diffusion.min_snr_gamma", "train.lr", "train.batch_size", "train.max_steps",
              "sample.sampler", "sample.steps", "sample.guidance_scale")
KEY_METRICS = ("ocr_accuracy", "legible_share", "fid", "space_fid", "c2st_accuracy", "kid", "precision", "recall",
               "inception_fid", "final_loss", "img_per_s")
MISSING = "—"
CAPTIONS = {
    "dataset": "Real DHCD training images drawn at random (seeded), one row per class.",
    "augment": "Each row: an original training image, then 8 augmented copies as the model sees them.",
    "loss_curve": "Training loss (log scale) and learning rate at each logged step.",
    "samples": "Generated samples (left); real DHCD test images of the same class, drawn at random (right).",
    "steps": "The same starting noise sampled with different numbers of steps.",
    "denoising": "Denoising from pure noise to a character (animated GIF).",
    "process": "Snapshots of the denoising process.",
    "per_class": "Per-class OCR accuracy of generated samples; black ticks: the judge on real test images.",
    "confusion": "What the judge reads (columns) for each class asked for (rows).",
    "style": "Pen style at 4× zoom: generated crops beside random real crops of the same classes, the classes "
             "furthest from real in pen first, then random ones; stroke width and ink coverage of every generated "
             "image against as many real test images.",
    "distill": "The distilled students' samples at 4×: one row per student, the same classes and seeds.",
    "vae": "Random real test images (top) and the autoencoder's reconstructions of them (bottom), 4×.",
}
# An unconditional model is asked for no class: its per-class figures show what it draws instead.
UNCONDITIONAL_CAPTIONS = {
    "per_class": "Share of the legible samples the judge reads as each class; black ticks: the real test set (even).",
    "confusion": "The judge's first choice (rows) against its second choice (columns): the characters samples blend.",
}


@dataclass(frozen=True)
class ReportInputs:
    """Everything the report shows; built by load_report_inputs or by hand in tests."""

    params: dict[str, Any]  # flattened params.yaml: "train.lr" -> 0.001
    metrics: dict[str, dict]  # "data" | "ocr" | "train" | "sample" | "eval" -> that stage's JSON, {} if not run
    train_log: list[dict]  # rows of reports/train/log.csv: step, loss, lr, img_per_s (str or float)
    figures: dict[str, Path]  # figure name -> existing .png/.gif
    runs: list[dict]  # tracking.recent_runs(...) output, newest first
    run_name: Optional[str]
    date: str = field(default_factory=lambda: time.strftime("%Y-%m-%d %H:%M"))
    report_dir: Path = paths.REPORT_MD.parent  # where report.md lives; its image links are relative to it
    compare_metrics: tuple[str, ...] = KEY_METRICS  # MLflow metric names in the runs table


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Para:
    text: str


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Figure:
    name: str
    caption: str


Block = Union[Heading, Para, Table, Figure]


# ---- numbers as text -------------------------------------------------------------------------

def _float(value: Any) -> Optional[float]:
    """A finite float from a number or numeric string, else None (bools are not numbers here)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def fmt_num(value: Any, digits: int = 3) -> str:
    """3 significant digits ('0.0341', '12.3', '1,234'), ints with separators, bools yes/no, '—' if absent."""
    if value is None or value == "":
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    number = _float(value)
    if number is None:
        return str(value)
    return f"{number:,.0f}" if abs(number) >= 10 ** digits else f"{number:.{digits}g}"


def fmt_pct(value: Any) -> str:
    """A share in [0, 1] as '93.1 %', '—' if absent."""
    number = _float(value)
    return MISSING if number is None else f"{100 * number:.1f} %"


def fmt_classes(value: Any) -> str:
    """A class count as '41 / 46', '—' if absent."""
    number = _float(value)
    return MISSING if number is None else f"{int(number)} / {len(CLASS_NAMES)}"


def fmt_duration(value: Any) -> str:
    """Seconds as '42 s', '12.5 min' or '3.2 h'."""
    s = _float(value)
    if s is None:
        return MISSING
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:.1f} h"


def _kv_table(values: Mapping[str, Any], spec: Sequence[tuple[str, str, Callable[[Any], str]]]) -> Table:
    """Two-column table of (label, formatted value) for the spec's keys present in `values`."""
    rows = [[label, fmt(values[key])] for label, key, fmt in spec if values.get(key) is not None]
    return Table(["quantity", "value"], rows)


# ---- the plain-English reading ----------------------------------------------------------------

def _quality_sentence(ev: Mapping[str, Any], confidence: Any) -> str:
    """What the judge makes of the samples: OCR accuracy (conditional) or legibility/coverage."""
    n = f"{ev['n_generated']:,} " if isinstance(ev.get("n_generated"), int) else ""
    if ev.get("conditional", "ocr_accuracy" in ev) and _float(ev.get("ocr_accuracy")) is not None:
        text = (f"The judge reads {fmt_pct(ev['ocr_accuracy'])} of the {n}generated characters "
                "as the class they were asked for")
        if _float(ev.get("judge_test_accuracy")) is not None:
            text += f" (it reads {fmt_pct(ev['judge_test_accuracy'])} of real test characters correctly)"
        return text + "."
    parts = []
    if _float(ev.get("legible_share")) is not None:
        sure = f"judge confidence at least {fmt_num(confidence)} and " if _float(confidence) is not None else ""
        real = (f"; {fmt_pct(ev['floor_legible_share'])} of real test characters pass the same test"
                if _float(ev.get("floor_legible_share")) is not None else "")
        parts.append(f"{fmt_pct(ev['legible_share'])} of the {n}generated characters are legible "
                     f"({sure}features where real characters' lie{real})")
    if _float(ev.get("class_coverage")) is not None:
        parts.append(f"they cover {int(ev['class_coverage'])} of the {len(CLASS_NAMES)} classes")
    if _float(ev.get("class_entropy_norm")) is not None:
        parts.append(f"with a class balance of {fmt_num(ev['class_entropy_norm'], 2)} (1 = all classes equally often)")
    text = ", ".join(parts)
    return text[:1].upper() + text[1:] + "." if text else ""


def _side_sentence(ev: Mapping[str, Any]) -> str:
    """How a model larger than DHCD's images is measured; '' when samples are already at the judge's side."""
    side, judged = ev.get("sample_side"), ev.get("judged_side")
    if not isinstance(side, int) or not isinstance(judged, int) or side == judged:
        return ""
    return (f"The model draws {side}×{side} images; every measure here reads them resized (bicubic, antialiased) "
            f"to DHCD's own {judged}×{judged}, the side the judge, the style network and the real images have.")


def _distance_sentence(ev: Mapping[str, Any]) -> str:
    """FID and precision/recall in judge features, each beside its real-vs-real floor."""
    text = ""
    fid, floor = _float(ev.get("fid")), _float(ev.get("floor_fid"))
    if fid is not None:
        text = f"FID in judge features (blind to pen width by design) is {fmt_num(fid)}"
        if floor is not None:
            text += f" against {fmt_num(floor)} between two sets of real images"
            text += f", {fid / floor:.1f} times that floor" if floor > 0 else ""
        text += " (lower is better)."
    p, r = _float(ev.get("precision")), _float(ev.get("recall"))
    if p is not None and r is not None:
        fp, fr = ev.get("floor_precision"), ev.get("floor_recall")
        text += (f" Precision {fmt_num(p, 2)} (real: {fmt_num(fp, 2)}) is the share of samples that land among "
                 f"real characters; recall {fmt_num(r, 2)} (real: {fmt_num(fr, 2)}) is the share of real variety "
                 "they reach.")
    return (text + " " + _space_sentence(ev)).strip()


def _space_sentence(ev: Mapping[str, Any]) -> str:
    """Style-space FID and the C2ST, each beside its real-vs-real floor; '' when neither was computed."""
    parts = []
    if _float(ev.get("space_fid")) is not None:
        parts.append(f"in the style space, which sees pen width, FID is {fmt_num(ev['space_fid'])} "
                     f"(real: {fmt_num(ev.get('floor_space_fid'))})")
    if _float(ev.get("c2st_accuracy")) is not None:
        parts.append(f"a CNN tells samples from real characters {fmt_pct(ev['c2st_accuracy'])} of the time "
                     f"(real from real: {fmt_pct(ev.get('floor_c2st_accuracy'))}; 50 % = indistinguishable)")
    text = "; ".join(parts)
    return text[:1].upper() + text[1:] + "." if text else ""


def _inception_sentence(ev: Mapping[str, Any]) -> str:
    """Inception FID, or why it was skipped."""
    if _float(ev.get("inception_fid")) is not None:
        return f"The usual Inception FID is {fmt_num(ev['inception_fid'])}."
    status = ev.get("inception_status")
    return f"Inception FID was not computed ({status})." if status else ""


def _cost_sentence(tr: Mapping[str, Any], sa: Mapping[str, Any]) -> str:
    """What training and sampling cost."""
    text = ""
    if _float(tr.get("steps")) is not None:
        text = f"Training ran {fmt_num(tr['steps'])} steps"
        text += f" in {fmt_duration(tr['wall_s'])}" if _float(tr.get("wall_s")) is not None else ""
        text += f" at {fmt_num(tr['img_per_s'])} images/s" if _float(tr.get("img_per_s")) is not None else ""
        text += f" on {tr['device']}" if tr.get("device") else ""
        text += f", ending at loss {fmt_num(tr['final_loss'])}." if _float(tr.get("final_loss")) is not None else "."
    if _float(sa.get("ms_per_image")) is not None:
        nfe = f" ({fmt_num(sa['nfe'])} network evaluations)" if _float(sa.get("nfe")) is not None else ""
        text += f" Sampling takes {fmt_num(sa['ms_per_image'])} ms per image{nfe}."
    return text.strip()


# (measure in eval.json's style block, words for the summary, label in the table, how to read)
STYLE_ROWS = (
    ("stroke_width", "strokes {r} as wide as real", "stroke width (px)", "ink mass / skeleton length"),
    ("ink_mass", "ink mass {r}", "ink mass (px)", "sum of pixels / 255"),
    ("ink_coverage", "ink coverage {r}", "ink coverage", "share of pixels > 127"),
    ("ink_intensity", "pen intensity {r}", "pen intensity", "mean of the pixels > 127, 0–1"),
    ("edge_softness", "edge softness {r}", "edge softness", "grey share of the glyph's pixels; higher = blurrier"),
    ("glyph_width", "", "glyph width (px)", "bounding box of the ink"),
    ("glyph_height", "", "glyph height (px)", "bounding box of the ink"),
    ("centre_x", "", "centre x (px)", "bounding-box centre"),
    ("centre_y", "", "centre y (px)", "bounding-box centre"),
    ("background", "", "background (grey level)", "mean of the pixels ≥ 3 px from ink, 0–255; real DHCD is black "
     "there; a haze the eye sees at 4×; compared by difference"),
    ("slant", "", "slant (°)", "from ink moments; + = top leans right; compared by difference"),
)
DIFF_UNITS = {"slant": "°", "background": ""}  # measures compared by difference, and their unit


def _times(value: Any) -> str:
    """A ratio as '1.21×', '—' if absent."""
    number = _float(value)
    return MISSING if number is None else f"{number:.2f}×"


def _style_sentence(ev: Mapping[str, Any]) -> str:
    """Generated pen style against real, in words: medians over classes of gen/real ratios, with the floor."""
    block = ev.get("style") or {}
    parts = []
    for key, words, _, _ in STYLE_ROWS:
        m = block.get(key) or {}
        if words and _float(m.get("ratio_median")) is not None:
            floor = f" (real vs real {_times(m['floor_ratio_median'])})" if key in ("stroke_width", "ink_mass") else ""
            parts.append(words.format(r=_times(m["ratio_median"])) + floor)
    if not parts:
        return ""
    slant = _float((block.get("slant") or {}).get("diff_median"))
    tail = f"; slant differs by {slant:+.1f}°" if slant is not None else ""
    haze = _float((block.get("background") or {}).get("diff_median"))
    tail += f"; the background is {haze:+.1f} grey levels off real's black" if haze is not None else ""
    if _float(ev.get("style_off_classes")) is not None:
        tail += (f"; per class, {ev['style_off_classes']} class(es) write a pen beyond what a real set of the same size "
                 f"strays to (a second real set: {ev.get('style_off_classes_real', MISSING)})")
    return "Pen style, median over classes of generated / real: " + ", ".join(parts) + tail + "."


def summarize(metrics: Mapping[str, Mapping[str, Any]], params: Optional[Mapping[str, Any]] = None) -> str:
    """One plain-English paragraph reading the headline numbers; every number comes from `metrics`."""
    ev, tr, sa = metrics.get("eval") or {}, metrics.get("train") or {}, metrics.get("sample") or {}
    quality = (_quality_sentence(ev, (params or {}).get("evaluate.confidence")) if ev
               else "The evaluate stage has not run, so there is no quality reading yet.")
    parts = [quality, _side_sentence(ev), _style_sentence(ev), _distance_sentence(ev), _inception_sentence(ev),
             _cost_sentence(tr, sa)]
    return " ".join(p for p in parts if p)


# ---- sections ---------------------------------------------------------------------------------

def _not_run(stage: str) -> Para:
    return Para(f"Not run: reports/details/{stage}.json is missing (the {STAGE_OF[stage]} stage has not run).")


# (label, eval.json key, format, floor key, how to read)
EVAL_ROWS = (
    ("OCR accuracy", "ocr_accuracy", fmt_pct, None, "samples the judge reads as the class asked for"),
    ("judge confidence in the class asked for", "ocr_intended_confidence", fmt_pct, None, "mean probability"),
    ("legible share", "legible_share", fmt_pct, "floor_legible_share",
     "judge confident AND features where real characters' lie (noise fails the second)"),
    ("class coverage", "class_coverage", fmt_classes, None, "classes the judge finds among the samples"),
    ("class balance", "class_entropy_norm", fmt_num, None, "entropy of judged classes / log 46; 1 = even"),
    ("FID, judge features", "fid", fmt_num, "floor_fid", "lower is better; floor = two real sets; blind to pen width"),
    ("KID, judge features", "kid", fmt_num, "floor_kid", "lower is better"),
    ("precision", "precision", fmt_num, "floor_precision", "samples that land among real characters"),
    ("recall", "recall", fmt_num, "floor_recall", "real variety the samples reach"),
    ("FID, style space", "space_fid", fmt_num, "floor_space_fid", "a net trained without augmentation: sees pen width"),
    ("C2ST accuracy", "c2st_accuracy", fmt_pct, "floor_c2st_accuracy", "a CNN telling samples from real (median over c2st.repeats seeds); 50 % = alike"),
    ("Inception FID", "inception_fid", fmt_num, None, "ImageNet features; a weak judge of 32×32 glyphs"),
    ("CAS accuracy", "cas_accuracy", fmt_pct, "cas_real_accuracy",
     "judge's architecture trained on the samples, tested on real; floor: trained on as many real"),
    ("CAS ratio", "cas_ratio", fmt_num, None, "CAS / its real-trained twin; ~1: samples could stand in for real"),
    ("judge test accuracy", "judge_test_accuracy", fmt_pct, None, "context: the judge on real test images"),
    ("generated images", "n_generated", fmt_num, None, ""),
)


def eval_table(ev: Mapping[str, Any], ocr: Mapping[str, Any]) -> Table:
    """Metric | this run | real-data floor | how to read, for the keys eval.json has."""
    values = dict(ev)
    values.setdefault("judge_test_accuracy", ocr.get("test_accuracy"))
    rows = []
    for label, key, fmt, floor, note in EVAL_ROWS:
        shown = fmt(values.get(key))
        if key == "kid" and values.get("kid_std") is not None:
            shown += f" ± {fmt_num(values['kid_std'])}"
        if key == "inception_fid" and values.get(key) is None and values.get("inception_status"):
            shown = f"skipped: {values['inception_status']}"
        if shown != MISSING:
            rows.append([label, shown, fmt(values.get(floor)) if floor else "", note])
    return Table(["metric", "this run", "real data (floor)", "how to read"], rows)


def style_table(block: Mapping[str, Any]) -> Table:
    """Measure | generated | real (medians) | gen/real | floor | Wasserstein | floor | how to read, from eval.json's
    style block; ratios and distances are medians over classes; slant (degrees) and background (grey levels) show
    differences."""
    rows = []
    for key, _, label, note in STYLE_ROWS:
        m = block.get(key) or {}
        if not m:
            continue
        diff = key in DIFF_UNITS
        unit = DIFF_UNITS.get(key, "")
        rel = (lambda v, u=unit: MISSING if _float(v) is None else f"{_float(v):+.1f}{u}") if diff else _times
        rows.append([label, fmt_num(m.get("gen_median")), fmt_num(m.get("real_median")),
                     rel(m.get("diff_median" if diff else "ratio_median")),
                     rel(m.get("floor_diff_median" if diff else "floor_ratio_median")),
                     fmt_num(m.get("wasserstein_median")), fmt_num(m.get("floor_wasserstein_median")), note])
    return Table(["measure", "generated", "real", "generated / real", "real / real (floor)", "Wasserstein",
                  "floor", "how to read"], rows)


CLASS_ROWS_SHOWN = 5  # classes per pen measure in the per-class table, furthest from real first
PEN_WORDS = {"stroke_width": "stroke width", "ink_mass": "ink mass"}


def _class_ratio(row: Mapping[str, Any], band: Mapping[str, Any]) -> str:
    """'भ 1.17×', with ' (outside)' where the ratio lies beyond the band."""
    ratio, low, high = _float(row.get("ratio")), _float(band.get("low")), _float(band.get("high"))
    outside = ratio is not None and low is not None and high is not None and not low <= ratio <= high
    return f"{row.get('glyph', row.get('class'))} {_times(ratio)}" + (" (outside)" if outside else "")


def _off_sentence(block: Mapping[str, Any]) -> str:
    """How many classes' pen lies beyond what a real set of the same size strays to, and which; '' if not judged."""
    bands = block.get("class_band") or {}
    if not bands:
        return ""
    off = block.get("off_classes") or []
    real = {c for band in bands.values() for c in band.get("real_outside") or []}
    ranges = ", ".join(f"{PEN_WORDS.get(m, m)} {_times(b.get('low'))}–{_times(b.get('high'))}" for m, b in bands.items())
    named = "; ".join(f"{row.get('glyph', row.get('class'))} {PEN_WORDS.get(row.get('measure'), row.get('measure'))} "
                      f"{_times(row.get('ratio'))}" for row in off)
    classes = len({row.get("class") for row in off})
    found = f"{classes} class(es) lie outside it ({named})" if off else "no class lies outside it"
    return (f"Class by class, against all other real test images of the class: a real set of the samples' class sizes "
            f"strays as far as {ranges}; {found}, and a second real set of those sizes has {len(real)} outside. "
            "A count near the real set's is within chance at this many samples per class.")


def _class_table(block: Mapping[str, Any]) -> Optional[Table]:
    """Pen measure | band | the classes furthest from real (glyph and ratio), None before a conditional run."""
    bands = block.get("class_band") or {}
    rows = [[PEN_WORDS.get(m, m), f"{_times(b.get('low'))}–{_times(b.get('high'))}",
             ", ".join(_class_ratio(row, b) for row in (b.get("ratios") or [])[:CLASS_ROWS_SHOWN])]
            for m, b in bands.items()]
    header = ["per class", "real set's range", f"furthest from real ({CLASS_ROWS_SHOWN} classes)"]
    return Table(header, rows) if rows else None


def _style_blocks(ev: Mapping[str, Any]) -> list[Block]:
    """Pen-style heading, a sentence on what the floor is, the table and the figure (only the heading and the
    figure, or its absence, before evaluate has written a style block)."""
    block = ev.get("style") or {}
    if not block:
        return [Heading("Pen style", 3), _figure("style")]
    n = block.get("compared") or {}
    text = (f"Each measure per image, compared class by class: {fmt_num(n.get('generated'))} generated against "
            f"{fmt_num(n.get('real'))} random real test images with the same class sizes, over "
            f"{fmt_num(n.get('classes'))} class(es). The floor compares another random real set the same way: "
            "what a generator that writes like DHCD's writers would score.")
    table = _class_table(block)
    per_class = [Para(_off_sentence(block)), table] if table else []
    return [Heading("Pen style", 3), Para(text), style_table(block), *per_class, _figure("style")]


def fmt_cpu(cpu: Any) -> str:
    """'AMD EPYC, 2 cores (avx2, avx512f, avx512_bf16)' from train.json's cpu entry."""
    if not isinstance(cpu, Mapping):
        return str(cpu)
    flags = ", ".join(cpu.get("flags") or []) or "no AVX2"
    return f"{cpu.get('model', '?')}, {cpu.get('cores', '?')} cores ({flags})"


def _metrics_section(inputs: ReportInputs) -> list[Block]:
    ev, ocr = inputs.metrics.get("eval") or {}, inputs.metrics.get("ocr") or {}
    blocks: list[Block] = [Heading("Metrics"), eval_table(ev, ocr) if ev else _not_run("eval"),
                           *_style_blocks(ev), Heading("OCR judge", 3)]
    spec = [("test accuracy on real images", "test_accuracy", fmt_pct),
            ("training time", "train_seconds", fmt_duration), ("precision", "precision", str)]
    return blocks + [_kv_table(ocr, spec) if ocr else _not_run("ocr")]


def _figure(name: str) -> Figure:
    return Figure(name, CAPTIONS[name])


def _data_section(inputs: ReportInputs) -> list[Block]:
    data = inputs.metrics.get("data") or {}
    spec = [("train images", "train", fmt_num), ("test images", "test", fmt_num), ("classes", "classes", fmt_num),
            ("duplicates removed", "duplicates_removed", fmt_num), ("pixel mean (0–1)", "pixel_mean", fmt_num),
            ("pixel std (0–1)", "pixel_std", fmt_num)]
    return [Heading("Data"), _kv_table(data, spec) if data else _not_run("data"),
            _figure("dataset"), _figure("augment")]


def _loss_sentence(log: Sequence[Mapping[str, Any]]) -> list[Block]:
    """'Loss went from a at step s0 to b at step s1 over n logged points', from the train log."""
    pts = [(_float(r.get("step")), _float(r.get("loss"))) for r in log]
    pts = [(s, v) for s, v in pts if s is not None and v is not None]
    if not pts:
        return []
    (s0, a), (s1, b) = pts[0], pts[-1]
    return [Para(f"The logged loss went from {fmt_num(a)} at step {fmt_num(int(s0))} to {fmt_num(b)} "
                 f"at step {fmt_num(int(s1))} over {len(pts)} logged points.")]


def _training_section(inputs: ReportInputs) -> list[Block]:
    tr = inputs.metrics.get("train") or {}
    spec = [("steps", "steps", fmt_num), ("epochs", "epochs", fmt_num), ("final loss", "final_loss", fmt_num),
            ("images / s", "img_per_s", fmt_num), ("wall time", "wall_s", fmt_duration),
            ("parameters", "params", fmt_num), ("device", "device", str), ("precision", "mixed_precision", str),
            ("CPU", "cpu", fmt_cpu)]
    return [Heading("Training"), _kv_table(tr, spec) if tr else _not_run("train"),
            *_loss_sentence(inputs.train_log), _figure("loss_curve")]


def _samples_section(inputs: ReportInputs) -> list[Block]:
    sa = inputs.metrics.get("sample") or {}
    spec = [("sampler", "sampler", str), ("steps", "steps", fmt_num), ("network evaluations", "nfe", fmt_num),
            ("guidance scale", "guidance_scale", fmt_num), ("images / s", "images_per_s", fmt_num),
            ("ms / image", "ms_per_image", fmt_num)]
    return [Heading("Samples"), _kv_table(sa, spec) if sa else _not_run("sample"),
            _figure("samples"), _figure("steps"),
            Heading("Denoising"), _figure("denoising"), _figure("process")]


def distill_table(students: Sequence[Mapping[str, Any]], ev: Mapping[str, Any], sa: Mapping[str, Any]) -> Table:
    """One row per distilled student, under the sample stage's own row (when evaluated) for comparison."""
    def row(name: str, nfe: Any, ms: Any, m: Mapping[str, Any]) -> list[str]:
        return [name, fmt_num(nfe), fmt_num(ms), fmt_pct(m.get("ocr_accuracy")), fmt_pct(m.get("legible_share")),
                fmt_num(m.get("fid")), _times(m.get("stroke_width_ratio", m.get("style_stroke_width_ratio"))),
                _times(m.get("ink_mass_ratio", m.get("style_ink_mass_ratio")))]
    rows = [row(f"sample stage: {sa.get('sampler', '?')}, {fmt_num(sa.get('steps'))} steps", sa.get("nfe"),
                sa.get("ms_per_image"), ev)] if ev and sa else []
    rows += [row(f"student, {s.get('steps')} DDIM step{'s' if s.get('steps') != 1 else ''}", s.get("nfe"),
                 s.get("ms_per_image"), s) for s in students]
    return Table(["sampler", "network passes", "ms / image", "OCR accuracy", "legible", "FID, judge features",
                  "stroke width", "ink mass"], rows)


def _vae_section(inputs: ReportInputs) -> list[Block]:
    """Latent diffusion's autoencoder, when the vae stage trained one (latent.enabled); nothing otherwise."""
    vae = inputs.metrics.get("vae") or {}
    if not vae.get("enabled"):
        return []
    shape = "×".join(str(n) for n in vae.get("latent_shape") or []) or MISSING
    spec = [("latent shape (channels × side × side)", "latent_shape", lambda _: shape),
            ("PSNR of test reconstructions", "psnr_db", lambda v: f"{fmt_num(v)} dB"),
            ("judge reads the reconstructions", "ocr_accuracy_reconstructed", fmt_pct),
            ("judge reads the originals", "ocr_accuracy_real", fmt_pct),
            ("stroke width, reconstructed / real", "stroke_width_ratio", _times),
            ("ink mass, reconstructed / real", "ink_mass_ratio", _times),
            ("training time", "seconds", fmt_duration), ("parameters", "params", fmt_num)]
    return [Heading("Latent diffusion: the autoencoder"),
            Para("The UNet of this run learned this autoencoder's latents; every sample above went through its "
                 "decoder. What it loses on real test images bounds what the samples can show."),
            _kv_table(vae, spec), _figure("vae")]


def _distill_section(inputs: ReportInputs) -> list[Block]:
    """The distilled students' rows when the distill stage ran with distill.enabled; nothing otherwise."""
    students = (inputs.metrics.get("distill") or {}).get("students") or []
    if not students:
        return []
    n = students[0].get("n")
    note = Para(f"Each student was measured on {fmt_num(n)} samples ({fmt_num(n and n // 46)} per class); the sample "
                "stage's row on its own samples. Network passes per image: a guided step counts two (at most).")
    return [Heading("Distilled students"), note,
            distill_table(students, inputs.metrics.get("eval") or {}, inputs.metrics.get("sample") or {}),
            _figure("distill")]


def _ci(block: Mapping[str, Any]) -> str:
    """A share with its 95 % interval and count: '62.0 % (51.8–71.2 %, n=92)'."""
    if not block or block.get("share") is None:
        return MISSING
    return f"{fmt_pct(block['share'])} ({fmt_pct(block['low'])}–{fmt_pct(block['high'])}, n={block['n']})"


def _human_section(inputs: ReportInputs) -> list[Block]:
    """People telling generated glyphs from real ones (devagen human-score); says so plainly when none answered."""
    hu = inputs.metrics.get("human") or {}
    if not hu.get("readers"):
        return [Heading("Human study"),
                Para("No human study answers have been scored: nobody has told these samples from real ones by eye "
                     f"yet. Make a sheet with the human_study stage, then score the answers with {HUMAN_SCORE}.")]
    pooled = hu.get("pooled") or {}
    kappa = hu.get("origin_kappa")
    text = (f"{fmt_num(hu['readers'])} reader(s) judged {fmt_num(hu.get('judgements'))} glyphs of sheet "
            f"{hu.get('sheet_id', '?')}, half generated and half real: they told which was which "
            f"{_ci(pooled.get('origin'))} of the time (95 % Wilson interval; 50 % means people cannot tell).")
    if kappa is not None:
        text += f" Their agreement on who wrote each glyph: Fleiss' kappa {fmt_num(kappa)}."
    rows = [[name, _ci(s.get("origin")), _ci(s.get("generated_passed_as_person")), _ci(s.get("read_generated")),
             _ci(s.get("read_real"))] for name, s in [*(hu.get("per_reader") or {}).items(), ("all readers", pooled)]]
    return [Heading("Human study"), Para(text),
            Table(["reader", "told generated from real", "generated taken for a person", "read generated as asked",
                   "read real correctly"], rows)]


def per_class_values(raw: Any) -> dict[str, Optional[float]]:
    """per_class_accuracy as {class_name: float or None}, from a dict or a list in class order."""
    if isinstance(raw, Mapping):
        return {str(k): _float(v) for k, v in raw.items()}
    if isinstance(raw, (list, tuple)) and len(raw) == len(CLASS_NAMES):
        return {name: _float(v) for name, v in zip(CLASS_NAMES, raw)}
    return {}


def _drawn_classes_section(shares: dict[str, Optional[float]]) -> list[Block]:
    """An unconditional model: which classes its legible samples are read as, most and least often."""
    known = sorted((v, n) for n, v in shares.items() if v is not None)
    most = ", ".join(f"{CLASS_GLYPHS.get(n, n)} {fmt_pct(v)}" for v, n in known[::-1][:5])
    least = ", ".join(f"{CLASS_GLYPHS.get(n, n)} {fmt_pct(v)}" for v, n in known[:5])
    text = (f"Of the legible samples, the judge reads most as {most} and fewest as {least} "
            f"(an even spread would be {fmt_pct(1 / len(CLASS_NAMES))} each).")
    return [Heading("Which characters the model draws"), Para(text),
            *(Figure(name, caption) for name, caption in UNCONDITIONAL_CAPTIONS.items())]


def _per_class_section(inputs: ReportInputs) -> list[Block]:
    shares = per_class_values((inputs.metrics.get("eval") or {}).get("per_class_read_share"))
    if any(v is not None for v in shares.values()):
        return _drawn_classes_section(shares)
    values = per_class_values((inputs.metrics.get("eval") or {}).get("per_class_accuracy"))
    known = sorted((v, n) for n, v in values.items() if v is not None)
    blocks: list[Block] = [Heading("Per-class accuracy")]
    if known:
        hardest = ", ".join(f"{CLASS_GLYPHS.get(n, n)} ({n}) {fmt_pct(v)}" for v, n in known[:5])
        easiest = ", ".join(f"{CLASS_GLYPHS.get(n, n)} {fmt_pct(v)}" for v, n in known[::-1][:3])
        text = f"Hardest classes to generate legibly: {hardest}. Easiest: {easiest}."
        unknown = len(values) - len(known)
        if unknown:
            text += f" {unknown} {'class has' if unknown == 1 else 'classes have'} no samples to judge."
        blocks.append(Para(text))
    return blocks + [_figure("per_class"), _figure("confusion")]


def _runs_section(inputs: ReportInputs) -> list[Block]:
    blocks: list[Block] = [Heading("Recent runs")]
    if not inputs.runs:
        return blocks + [Para("No MLflow runs to compare (tracking disabled, unreachable or empty).")]
    header, rows = compare_runs(inputs.runs, inputs.compare_metrics)
    rows = [[f"{r[0]} (this report)" if r[0] == inputs.run_name else r[0], *r[1:]] for r in rows]
    intro = ("The only MLflow run so far: its parameters and key metrics." if len(rows) == 1 else
             f"The {len(rows)} latest MLflow runs, newest first: the parameters that differ between them "
             "and their key metrics (the MLflow UI comparison, in a form that travels).")
    return blocks + [Para(intro), Table(header, rows)]


def compare_runs(runs: Sequence[Mapping[str, Any]], metric_keys: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    """Header + rows: run name, only the params whose values differ between runs, then the metrics any run has."""
    keys = sorted({k for r in runs for k in r.get("params") or {}})
    differing = [k for k in keys if len({(r.get("params") or {}).get(k) for r in runs}) > 1]
    shown = [m for m in metric_keys if any(m in (r.get("metrics") or {}) for r in runs)]
    rows = []
    for r in runs:
        params, metrics = r.get("params") or {}, r.get("metrics") or {}
        name = r.get("name") or str(r.get("run_id", ""))[:8]
        rows.append([name, *(str(params.get(k, MISSING)) for k in differing),
                     *(fmt_num(metrics.get(m), 4) for m in shown)])
    return ["run", *differing, *shown], rows


def report_blocks(inputs: ReportInputs) -> list[Block]:
    """The whole report as blocks, in reading order."""
    params = [[k, fmt_num(inputs.params.get(k), 4)] for k in KEY_PARAMS]
    head: list[Block] = [Heading("devagen report", 1),
                         Para(f"Run: {inputs.run_name or 'not tracked'} · generated {inputs.date}"),
                         Heading("Summary"), Para(summarize(inputs.metrics, inputs.params)),
                         Heading("Key parameters"), Table(["parameter", "value"], params)]
    return (head + _metrics_section(inputs) + _data_section(inputs) + _training_section(inputs)
            + _samples_section(inputs) + _vae_section(inputs) + _distill_section(inputs) + _per_class_section(inputs) + _human_section(inputs)
            + _runs_section(inputs))


# ---- rendering ----------------------------------------------------------------------------------

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", "Noto Sans", "Noto Sans Devanagari", sans-serif;
       max-width: 1000px; margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.5; }
h1 { margin-bottom: 0.2em; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.95em; }
th, td { border: 1px solid #ddd; padding: 0.3em 0.7em; text-align: left; vertical-align: top; }
th { background: #f5f5f5; }
figure { margin: 1.2em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
img.pixel { image-rendering: pixelated; }
figcaption, .missing { color: #666; font-size: 0.9em; }
.missing { font-style: italic; }
"""
MIME = {".png": "image/png", ".gif": "image/gif", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
CHARTS = ("loss_curve", "per_class")  # smooth charts; the rest are pixel grids shown crisp


def _missing_figure(name: str) -> str:
    return f"figure {name} not available (the stage that draws it has not run)"


def data_uri(path: Path) -> str:
    """The file as a base64 data URI (image/png, image/gif or image/jpeg by suffix)."""
    mime = MIME.get(path.suffix.lower(), "application/octet-stream")
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _html_block(block: Block, figures: Mapping[str, Path]) -> str:
    e = html.escape
    if isinstance(block, Heading):
        return f"<h{block.level}>{e(block.text)}</h{block.level}>"
    if isinstance(block, Para):
        return f"<p>{e(block.text)}</p>"
    if isinstance(block, Table):
        head = "".join(f"<th>{e(h)}</th>" for h in block.header)
        body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in block.rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    path = figures.get(block.name)
    if path is None or not Path(path).is_file():
        return f'<p class="missing">{e(_missing_figure(block.name))}</p>'
    css = "" if block.name in CHARTS else ' class="pixel"'
    return (f'<figure><img{css} src="{data_uri(Path(path))}" alt="{e(block.name)}">'
            f"<figcaption>{e(block.caption)}</figcaption></figure>")


def to_html(blocks: Sequence[Block], figures: Mapping[str, Path], title: str) -> str:
    """A self-contained HTML page: inline CSS, images as data URIs, no external references."""
    body = "\n".join(_html_block(b, figures) for b in blocks)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html.escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n")


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_block(block: Block, figures: Mapping[str, Path], report_dir: Path) -> str:
    if isinstance(block, Heading):
        return "#" * block.level + " " + block.text
    if isinstance(block, Para):
        return block.text
    if isinstance(block, Table):
        lines = [block.header, ["---"] * len(block.header), *block.rows]
        return "\n".join("| " + " | ".join(_md_cell(c) for c in row) + " |" for row in lines)
    path = figures.get(block.name)
    if path is None or not Path(path).is_file():
        return f"*({_missing_figure(block.name)})*"
    link = Path(os.path.relpath(Path(path).resolve(), report_dir.resolve())).as_posix()
    return f"![{block.name}]({link})\n\n*{block.caption}*"


def to_markdown(blocks: Sequence[Block], figures: Mapping[str, Path], report_dir: Path) -> str:
    """The same blocks as Markdown; images linked by path relative to `report_dir`."""
    return "\n\n".join(_md_block(b, figures, report_dir) for b in blocks) + "\n"


def build_report(inputs: ReportInputs) -> tuple[str, str]:
    """(html, markdown) of the whole report; pure apart from reading the figure files."""
    blocks = report_blocks(inputs)
    title = f"devagen report — {inputs.run_name}" if inputs.run_name else "devagen report"
    return to_html(blocks, inputs.figures, title), to_markdown(blocks, inputs.figures, inputs.report_dir)


# ---- reading inputs and drawing the charts ------------------------------------------------------

def read_metrics(root: Path) -> dict[str, dict]:
    """reports/details/<stage>.json (a stage's whole result) under root for each stage; {} for a stage that has
    not run."""
    out: dict[str, dict] = {}
    for stage, writer in {**STAGE_OF, **OPTIONAL_STAGE_OF, "human": ""}.items():
        path = root / paths.DETAILS_DIR / f"{stage}.json"
        try:
            out[stage] = read_json(path) if path.is_file() else {}
        except ValueError as exc:  # JSONDecodeError; UnicodeDecodeError for binary garbage
            fix = rerun(writer) if writer else f"score the answers again: {HUMAN_SCORE}"
            raise DevagenError(f"{path}: not valid JSON ({one_line(exc)}); {fix}") from None
    return out


def read_train_log(root: Path) -> list[dict]:
    """Rows of reports/train/log.csv under root (values as strings); [] when training has not run."""
    path = root / paths.TRAIN_LOG
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def load_report_inputs(root: Path, params: dict, runs: list[dict], run_name: Optional[str]) -> ReportInputs:
    """Collect metrics, the train log and the figures that exist under root; missing files are tolerated."""
    figures: dict[str, Path] = {}
    for name in FIGURES:
        found = [p for p in (root / paths.FIGURES_DIR / f"{name}{ext}" for ext in (".png", ".gif")) if p.is_file()]
        if found:
            figures[name] = found[0]
    return ReportInputs(params=dict(params), metrics=read_metrics(root), train_log=read_train_log(root),
                        figures=figures, runs=list(runs), run_name=run_name, report_dir=root / paths.REPORT_MD.parent)


def _smooth(values: Sequence[float], window: int) -> list[float]:
    """Centred moving average (no lag); the window shrinks at the ends so the length is kept."""
    half = window // 2
    return [sum(values[max(0, i - half):i + half + 1]) / len(values[max(0, i - half):i + half + 1])
            for i in range(len(values))]


def loss_figure(log: Sequence[Mapping[str, Any]]) -> Optional[Image.Image]:
    """Loss (log y, plus a moving average when there are 20+ points) above the learning rate, or None without data."""
    rows = [(_float(r.get("step")), _float(r.get("loss")), _float(r.get("lr"))) for r in log]
    rows = [r for r in rows if r[0] is not None and r[1] is not None]
    if not rows:
        return None
    steps, loss, lr = [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]
    series = {"loss": loss, **({"loss, smoothed": _smooth(loss, max(3, len(loss) // 15))} if len(loss) >= 20 else {})}
    panels = [plots.line_plot(steps, series, "Training loss", "step", "loss", log_y=True)]
    if any(v is not None for v in lr):
        panels.append(plots.line_plot(steps, {"learning rate": lr}, "Learning rate", "step", "lr"))
    return plots.stack_vertical(panels)


def per_class_figure(ev: Mapping[str, Any], ocr: Mapping[str, Any]) -> Optional[Image.Image]:
    """Per-class OCR accuracy of samples as glyph bars, the judge's real-test accuracy as ticks (unconditional
    models: drawn_classes_figure); None without data."""
    values = per_class_values(ev.get("per_class_accuracy"))
    if not any(v is not None for v in values.values()):
        return drawn_classes_figure(ev)
    real = per_class_values(ocr.get("per_class_accuracy"))
    reference = [real.get(n) for n in values] if real else None
    return plots.bar_plot([CLASS_GLYPHS.get(n, n) for n in values], list(values.values()),
                          "Per-class OCR accuracy of generated samples", reference=reference)


def drawn_classes_figure(ev: Mapping[str, Any]) -> Optional[Image.Image]:
    """Unconditional samples: the share read as each class as glyph bars, the even 1/46 as ticks; None without data."""
    shares = per_class_values(ev.get("per_class_read_share"))
    known = [v for v in shares.values() if v is not None]
    if not known:
        return None
    even = 1 / len(CLASS_NAMES)
    return plots.bar_plot([CLASS_GLYPHS.get(n, n) for n in shares], list(shares.values()),
                          "Which characters the unconditional samples are (judge's reading, legible samples)",
                          reference=[even] * len(shares), ylabel="share", ymax=max(known + [2 * even]))


def render_plots(inputs_root: Path) -> dict[str, Path]:
    """Write reports/figures/loss_curve.png and per_class.png under the root when their data exist."""
    metrics = read_metrics(inputs_root)
    drawn = {"loss_curve": loss_figure(read_train_log(inputs_root)),
             "per_class": per_class_figure(metrics["eval"], metrics["ocr"])}
    written: dict[str, Path] = {}
    for name, image in drawn.items():
        if image is not None:
            written[name] = inputs_root / paths.FIGURES_DIR / f"{name}.png"
            save_image(image, written[name])
    return written
