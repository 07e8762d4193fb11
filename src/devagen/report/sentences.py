"""Numbers as text and the report's plain-English reading of them."""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Optional, Sequence

from ..core.classes import CLASS_NAMES
from .blocks import MISSING, Table


def as_float(value: Any) -> Optional[float]:
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
    number = as_float(value)
    if number is None:
        return str(value)
    return f"{number:,.0f}" if abs(number) >= 10 ** digits else f"{number:.{digits}g}"


def fmt_pct(value: Any) -> str:
    """A share in [0, 1] as '93.1 %', '—' if absent."""
    number = as_float(value)
    return MISSING if number is None else f"{100 * number:.1f} %"


def fmt_classes(value: Any) -> str:
    """A class count as '41 / 46', '—' if absent."""
    number = as_float(value)
    return MISSING if number is None else f"{int(number)} / {len(CLASS_NAMES)}"


def fmt_duration(value: Any) -> str:
    """Seconds as '42 s', '12.5 min' or '3.2 h'."""
    s = as_float(value)
    if s is None:
        return MISSING
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:.1f} h"


def fmt_cpu(cpu: Any) -> str:
    """'AMD EPYC, 2 cores (avx2, avx512f, avx512_bf16)' from train.json's cpu entry."""
    if not isinstance(cpu, Mapping):
        return str(cpu)
    flags = ", ".join(cpu.get("flags") or []) or "no AVX2"
    return f"{cpu.get('model', '?')}, {cpu.get('cores', '?')} cores ({flags})"


def kv_table(values: Mapping[str, Any], spec: Sequence[tuple[str, str, Callable[[Any], str]]]) -> Table:
    """Two-column table of (label, formatted value) for the spec's keys present in `values`."""
    rows = [[label, fmt(values[key])] for label, key, fmt in spec if values.get(key) is not None]
    return Table(["quantity", "value"], rows)


def _quality_sentence(ev: Mapping[str, Any], confidence: Any) -> str:
    """What the judge makes of the samples: OCR accuracy (conditional) or legibility/coverage."""
    n = f"{ev['n_generated']:,} " if isinstance(ev.get("n_generated"), int) else ""
    if ev.get("conditional", "ocr_accuracy" in ev) and as_float(ev.get("ocr_accuracy")) is not None:
        text = (f"The judge reads {fmt_pct(ev['ocr_accuracy'])} of the {n}generated characters "
                "as the class they were asked for")
        if as_float(ev.get("judge_test_accuracy")) is not None:
            text += f" (it reads {fmt_pct(ev['judge_test_accuracy'])} of real test characters correctly)"
        return text + "."
    parts = []
    if as_float(ev.get("legible_share")) is not None:
        sure = f"judge confidence at least {fmt_num(confidence)} and " if as_float(confidence) is not None else ""
        real = (f"; {fmt_pct(ev['floor_legible_share'])} of real test characters pass the same test"
                if as_float(ev.get("floor_legible_share")) is not None else "")
        parts.append(f"{fmt_pct(ev['legible_share'])} of the {n}generated characters are legible "
                     f"({sure}features where real characters' lie{real})")
    if as_float(ev.get("class_coverage")) is not None:
        parts.append(f"they cover {int(ev['class_coverage'])} of the {len(CLASS_NAMES)} classes")
    if as_float(ev.get("class_entropy_norm")) is not None:
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
    fid, floor = as_float(ev.get("fid")), as_float(ev.get("floor_fid"))
    if fid is not None:
        text = f"FID in judge features (blind to pen width by design) is {fmt_num(fid)}"
        if floor is not None:
            text += f" against {fmt_num(floor)} between two sets of real images"
            text += f", {fid / floor:.1f} times that floor" if floor > 0 else ""
        text += " (lower is better)."
    p, r = as_float(ev.get("precision")), as_float(ev.get("recall"))
    if p is not None and r is not None:
        fp, fr = ev.get("floor_precision"), ev.get("floor_recall")
        text += (f" Precision {fmt_num(p, 2)} (real: {fmt_num(fp, 2)}) is the share of samples that land among "
                 f"real characters; recall {fmt_num(r, 2)} (real: {fmt_num(fr, 2)}) is the share of real variety "
                 "they reach.")
    return (text + " " + _space_sentence(ev)).strip()


def _space_sentence(ev: Mapping[str, Any]) -> str:
    """Style-space FID and the C2ST, each beside its real-vs-real floor; '' when neither was computed."""
    parts = []
    if as_float(ev.get("space_fid")) is not None:
        parts.append(f"in the style space, which sees pen width, FID is {fmt_num(ev['space_fid'])} "
                     f"(real: {fmt_num(ev.get('floor_space_fid'))})")
    if as_float(ev.get("c2st_accuracy")) is not None:
        parts.append(f"a CNN tells samples from real characters {fmt_pct(ev['c2st_accuracy'])} of the time "
                     f"(real from real: {fmt_pct(ev.get('floor_c2st_accuracy'))}; 50 % = indistinguishable)")
    if as_float(ev.get("tone_c2st_accuracy")) is not None:
        parts.append(f"by their grey levels alone, {fmt_pct(ev['tone_c2st_accuracy'])} "
                     f"(real from real: {fmt_pct(ev.get('floor_tone_c2st_accuracy'))})")
    text = "; ".join(parts)
    return text[:1].upper() + text[1:] + "." if text else ""


def _inception_sentence(ev: Mapping[str, Any]) -> str:
    """Inception FID, or why it was skipped."""
    if as_float(ev.get("inception_fid")) is not None:
        return f"The usual Inception FID is {fmt_num(ev['inception_fid'])}."
    status = ev.get("inception_status")
    return f"Inception FID was not computed ({status})." if status else ""


def _cost_sentence(tr: Mapping[str, Any], sa: Mapping[str, Any]) -> str:
    """What training and sampling cost."""
    text = ""
    if as_float(tr.get("steps")) is not None:
        text = f"Training ran {fmt_num(tr['steps'])} steps"
        text += f" in {fmt_duration(tr['wall_s'])}" if as_float(tr.get("wall_s")) is not None else ""
        text += f" at {fmt_num(tr['img_per_s'])} images/s" if as_float(tr.get("img_per_s")) is not None else ""
        text += f" on {tr['device']}" if tr.get("device") else ""
        text += f", ending at loss {fmt_num(tr['final_loss'])}." if as_float(tr.get("final_loss")) is not None else "."
    if as_float(sa.get("ms_per_image")) is not None:
        nfe = f" ({fmt_num(sa['nfe'])} network evaluations)" if as_float(sa.get("nfe")) is not None else ""
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


def times_text(value: Any) -> str:
    """A ratio as '1.21×', '—' if absent."""
    number = as_float(value)
    return MISSING if number is None else f"{number:.2f}×"


def _style_sentence(ev: Mapping[str, Any]) -> str:
    """Generated pen style against real, in words: medians over classes of gen/real ratios, with the floor."""
    block = ev.get("style") or {}
    parts = []
    for key, words, _, _ in STYLE_ROWS:
        m = block.get(key) or {}
        if words and as_float(m.get("ratio_median")) is not None:
            floor = f" (real vs real {times_text(m['floor_ratio_median'])})" if key in ("stroke_width", "ink_mass") else ""
            parts.append(words.format(r=times_text(m["ratio_median"])) + floor)
    if not parts:
        return ""
    slant = as_float((block.get("slant") or {}).get("diff_median"))
    tail = f"; slant differs by {slant:+.1f}°" if slant is not None else ""
    haze = as_float((block.get("background") or {}).get("diff_median"))
    tail += f"; the background is {haze:+.1f} grey levels off real's black" if haze is not None else ""
    if as_float(ev.get("style_off_classes")) is not None:
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


PEN_WORDS = {"stroke_width": "stroke width", "ink_mass": "ink mass"}


def class_ratio(row: Mapping[str, Any], band: Mapping[str, Any]) -> str:
    """'भ 1.17×', with ' (outside)' where the ratio lies beyond the band."""
    ratio, low, high = as_float(row.get("ratio")), as_float(band.get("low")), as_float(band.get("high"))
    outside = ratio is not None and low is not None and high is not None and not low <= ratio <= high
    return f"{row.get('glyph', row.get('class'))} {times_text(ratio)}" + (" (outside)" if outside else "")


def off_sentence(block: Mapping[str, Any]) -> str:
    """How many classes' pen lies beyond what a real set of the same size strays to, and which; '' if not judged."""
    bands = block.get("class_band") or {}
    if not bands:
        return ""
    off = block.get("off_classes") or []
    real = {c for band in bands.values() for c in band.get("real_outside") or []}
    ranges = ", ".join(f"{PEN_WORDS.get(m, m)} {times_text(b.get('low'))}–{times_text(b.get('high'))}" for m, b in bands.items())
    named = "; ".join(f"{row.get('glyph', row.get('class'))} {PEN_WORDS.get(row.get('measure'), row.get('measure'))} "
                      f"{times_text(row.get('ratio'))}" for row in off)
    classes = len({row.get("class") for row in off})
    found = f"{classes} class(es) lie outside it ({named})" if off else "no class lies outside it"
    return (f"Class by class, against all other real test images of the class: a real set of the samples' class sizes "
            f"strays as far as {ranges}; {found}, and a second real set of those sizes has {len(real)} outside. "
            "A count near the real set's is within chance at this many samples per class.")


# telltale measures not in STYLE_ROWS: (words, format)
PIXEL_WORDS = {"white_share": ("pixels at exactly 255", lambda v: fmt_pct(v)),
               "faint_share": ("faint 1–8 pixels", lambda v: fmt_pct(v)),
               "black_share": ("pixels at exactly 0", lambda v: fmt_pct(v))}
TELLTALE_SHOWN = 3  # measures named in the sentence
TONE_MARGIN = 0.05  # tone C2ST within this of its floor: the grey levels do not give the samples away


def _telltale_part(row: Mapping[str, Any]) -> str:
    """'stroke width 1.9 against 1.6 (+0.8 spreads; all samples +0.1)' for one row of c2st_telltale's measures."""
    key = row.get("measure")
    label, fmt = PIXEL_WORDS.get(key) or next(((lab.split(" (")[0], fmt_num) for k, _, lab, _ in STYLE_ROWS
                                                if k == key), (str(key), fmt_num))
    effect, overall = as_float(row.get("effect")), as_float(row.get("all_effect"))
    spreads = MISSING if effect is None else f"{effect:+.2f} spreads"
    tail = "" if overall is None else f"; all samples {overall:+.2f}"
    return f"{label} {fmt(row.get('generated'))} against {fmt(row.get('real'))} ({spreads}{tail})"


def telltale_sentence(ev: Mapping[str, Any]) -> str:
    """What separates the samples the C2ST is surest of from their nearest real images, and whether the grey levels
    alone give samples away; '' before evaluate wrote c2st_telltale."""
    block = ev.get("c2st_telltale") or {}
    rows = [r for r in block.get("measures") or [] if as_float(r.get("effect")) is not None][:TELLTALE_SHOWN]
    if not rows:
        return ""
    text = (f"The {fmt_num(block.get('count'))} samples the CNN is surest are generated differ from their nearest real "
            f"images most in {'; '.join(_telltale_part(r) for r in rows)}: medians of the samples against their "
            "neighbours, and the median paired difference in spreads of that measure (over all samples and their "
            "neighbours).")
    tone, floor = as_float(ev.get("tone_c2st_accuracy")), as_float(ev.get("floor_tone_c2st_accuracy"))
    if tone is not None and floor is not None:
        gives = "barely give" if tone - floor < TONE_MARGIN else "give"
        text += (f" Grey levels alone {gives} the samples away (tone C2ST {fmt_pct(tone)}, real from real "
                 f"{fmt_pct(floor)}).")
    return text
