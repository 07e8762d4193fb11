"""The rendered report: metrics, figures and recent MLflow runs as one HTML file and one Markdown file.

The content is built once as a list of blocks (heading, paragraph, table, figure) and rendered twice:
HTML embeds every image as a base64 data URI (it opens from disk, with no network); Markdown links
each image by its path relative to reports/. Every sentence that states a number is generated from
the metrics files, so the text cannot drift from the numbers.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

from ..core.classes import CLASS_GLYPHS, CLASS_NAMES
from .blocks import MISSING, Block, Figure, Heading, Para, Table
from .inputs import HUMAN_SCORE, STAGE_OF, ReportInputs, per_class_values
from .render import to_html, to_markdown
from .sentences import (
    DIFF_UNITS,
    PEN_WORDS,
    STYLE_ROWS,
    as_float,
    class_ratio,
    fmt_classes,
    fmt_cpu,
    fmt_duration,
    fmt_num,
    fmt_pct,
    kv_table,
    off_sentence,
    summarize,
    telltale_sentence,
    times_text,
)

KEY_PARAMS = ("model.preset", "model.conditional", "model.scale_shift", "diffusion.prediction_type", "diffusion.beta_schedule",
              "diffusion.min_snr_gamma", "train.lr", "train.batch_size", "train.max_steps",
              "sample.sampler", "sample.steps", "sample.guidance_scale")
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
    "telltale": "The samples the C2ST's CNN finds most generated, surest first, each beside its nearest real test "
                "image of the same class in the OCR judge's features, at 4×.",
    "distill": "The distilled students' samples at 4×: one row per student, the same classes and seeds.",
    "vae": "Random real test images (top) and the autoencoder's reconstructions of them (bottom), 4×.",
}
# An unconditional model is asked for no class: its per-class figures show what it draws instead.
UNCONDITIONAL_CAPTIONS = {
    "per_class": "Share of the legible samples the judge reads as each class; black ticks: the real test set (even).",
    "confusion": "The judge's first choice (rows) against its second choice (columns): the characters samples blend.",
}


# ---- numbers as text -------------------------------------------------------------------------


# ---- the plain-English reading ----------------------------------------------------------------


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
    ("tone C2ST accuracy", "tone_c2st_accuracy", fmt_pct, "floor_tone_c2st_accuracy",
     "a linear classifier on each image's 256 grey-level shares (no shape), cross-validated; 50 % = alike"),
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
        rel = (lambda v, u=unit: MISSING if as_float(v) is None else f"{as_float(v):+.1f}{u}") if diff else times_text
        rows.append([label, fmt_num(m.get("gen_median")), fmt_num(m.get("real_median")),
                     rel(m.get("diff_median" if diff else "ratio_median")),
                     rel(m.get("floor_diff_median" if diff else "floor_ratio_median")),
                     fmt_num(m.get("wasserstein_median")), fmt_num(m.get("floor_wasserstein_median")), note])
    return Table(["measure", "generated", "real", "generated / real", "real / real (floor)", "Wasserstein",
                  "floor", "how to read"], rows)


CLASS_ROWS_SHOWN = 5  # classes per pen measure in the per-class table, furthest from real first


def _class_table(block: Mapping[str, Any]) -> Optional[Table]:
    """Pen measure | band | the classes furthest from real (glyph and ratio), None before a conditional run."""
    bands = block.get("class_band") or {}
    rows = [[PEN_WORDS.get(m, m), f"{times_text(b.get('low'))}–{times_text(b.get('high'))}",
             ", ".join(class_ratio(row, b) for row in (b.get("ratios") or [])[:CLASS_ROWS_SHOWN])]
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
    per_class = [Para(off_sentence(block)), table] if table else []
    return [Heading("Pen style", 3), Para(text), style_table(block), *per_class, _figure("style")]


def _telltale_blocks(ev: Mapping[str, Any]) -> list[Block]:
    """What the C2ST sees: the sentence on its surest samples (none before evaluate wrote them) and their figure."""
    text = telltale_sentence(ev)
    return [Heading("What gives the samples away", 3), *([Para(text)] if text else []), _figure("telltale")]


def _metrics_section(inputs: ReportInputs) -> list[Block]:
    ev, ocr = inputs.metrics.get("eval") or {}, inputs.metrics.get("ocr") or {}
    blocks: list[Block] = [Heading("Metrics"), eval_table(ev, ocr) if ev else _not_run("eval"),
                           *_style_blocks(ev), *_telltale_blocks(ev), Heading("OCR judge", 3)]
    spec = [("test accuracy on real images", "test_accuracy", fmt_pct),
            ("training time", "train_seconds", fmt_duration), ("precision", "precision", str)]
    return blocks + [kv_table(ocr, spec) if ocr else _not_run("ocr")]


def _figure(name: str) -> Figure:
    return Figure(name, CAPTIONS[name])


def _data_section(inputs: ReportInputs) -> list[Block]:
    data = inputs.metrics.get("data") or {}
    spec = [("train images", "train", fmt_num), ("test images", "test", fmt_num), ("classes", "classes", fmt_num),
            ("duplicates removed", "duplicates_removed", fmt_num), ("pixel mean (0–1)", "pixel_mean", fmt_num),
            ("pixel std (0–1)", "pixel_std", fmt_num)]
    return [Heading("Data"), kv_table(data, spec) if data else _not_run("data"),
            _figure("dataset"), _figure("augment")]


def _loss_sentence(log: Sequence[Mapping[str, Any]]) -> list[Block]:
    """'Loss went from a at step s0 to b at step s1 over n logged points', from the train log."""
    pts = [(as_float(r.get("step")), as_float(r.get("loss"))) for r in log]
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
    return [Heading("Training"), kv_table(tr, spec) if tr else _not_run("train"),
            *_loss_sentence(inputs.train_log), _figure("loss_curve")]


def _samples_section(inputs: ReportInputs) -> list[Block]:
    sa = inputs.metrics.get("sample") or {}
    spec = [("sampler", "sampler", str), ("steps", "steps", fmt_num), ("network evaluations", "nfe", fmt_num),
            ("guidance scale", "guidance_scale", fmt_num), ("images / s", "images_per_s", fmt_num),
            ("ms / image", "ms_per_image", fmt_num)]
    return [Heading("Samples"), kv_table(sa, spec) if sa else _not_run("sample"),
            _figure("samples"), _figure("steps"),
            Heading("Denoising"), _figure("denoising"), _figure("process")]


def distill_table(students: Sequence[Mapping[str, Any]], ev: Mapping[str, Any], sa: Mapping[str, Any]) -> Table:
    """One row per distilled student, under the sample stage's own row (when evaluated) for comparison."""
    def row(name: str, nfe: Any, ms: Any, m: Mapping[str, Any]) -> list[str]:
        return [name, fmt_num(nfe), fmt_num(ms), fmt_pct(m.get("ocr_accuracy")), fmt_pct(m.get("legible_share")),
                fmt_num(m.get("fid")), times_text(m.get("stroke_width_ratio", m.get("style_stroke_width_ratio"))),
                times_text(m.get("ink_mass_ratio", m.get("style_ink_mass_ratio")))]
    rows = [row(f"sample stage: {sa.get('sampler', '?')}, {fmt_num(sa.get('steps'))} steps", sa.get("nfe"),
                sa.get("ms_per_image"), ev)] if ev and sa else []
    rows += [row(f"student, {s.get('steps')} DDIM step{'s' if s.get('steps') != 1 else ''}", s.get("nfe"),
                 s.get("ms_per_image"), s) for s in students]
    return Table(["sampler", "network passes", "ms / image", "OCR accuracy", "legible", "FID, judge features",
                  "stroke width", "ink mass"], rows)


def _vae_section(inputs: ReportInputs) -> list[Block]:
    """Latent diffusion's autoencoder, when the vae stage trained one (vae.enabled); nothing otherwise."""
    vae = inputs.metrics.get("vae") or {}
    if not vae.get("enabled"):
        return []
    shape = "×".join(str(n) for n in vae.get("latent_shape") or []) or MISSING
    spec = [("latent shape (channels × side × side)", "latent_shape", lambda _: shape),
            ("PSNR of test reconstructions", "psnr_db", lambda v: f"{fmt_num(v)} dB"),
            ("judge reads the reconstructions", "ocr_accuracy_reconstructed", fmt_pct),
            ("judge reads the originals", "ocr_accuracy_real", fmt_pct),
            ("stroke width, reconstructed / real", "stroke_width_ratio", times_text),
            ("ink mass, reconstructed / real", "ink_mass_ratio", times_text),
            ("training time", "seconds", fmt_duration), ("parameters", "params", fmt_num)]
    return [Heading("Latent diffusion: the autoencoder"),
            Para("The UNet of this run learned this autoencoder's latents; every sample above went through its "
                 "decoder. What it loses on real test images bounds what the samples can show."),
            kv_table(vae, spec), _figure("vae")]


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
            + _samples_section(inputs) + _vae_section(inputs) + _distill_section(inputs) + _per_class_section(inputs)
            + _human_section(inputs) + _runs_section(inputs))


# ---- rendering ----------------------------------------------------------------------------------


def build_report(inputs: ReportInputs) -> tuple[str, str]:
    """(html, markdown) of the whole report; pure apart from reading the figure files."""
    blocks = report_blocks(inputs)
    title = f"devagen report — {inputs.run_name}" if inputs.run_name else "devagen report"
    return to_html(blocks, inputs.figures, title), to_markdown(blocks, inputs.figures, inputs.report_dir)


# ---- reading inputs and drawing the charts ------------------------------------------------------


