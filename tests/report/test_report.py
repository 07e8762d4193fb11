"""The rendered report: self-contained HTML, working Markdown links, 'not run' sections, run comparison, charts."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from devagen.core import paths
from devagen.core.classes import CLASS_NAMES, glyphs
from devagen.core.errors import DevagenError
from devagen.core.io import write_csv, write_json
from devagen.report import figures, pages, plots, render
from devagen.report import inputs as report_inputs
from devagen.report.blocks import Table
from devagen.report.charts import render_plots
from devagen.report.inputs import ReportInputs, load_report_inputs
from devagen.report.pages import build_report, compare_runs
from devagen.report.sentences import summarize

PARAMS = {"model.preset": "cpu_small", "model.conditional": True, "diffusion.prediction_type": "v_prediction",
          "diffusion.beta_schedule": "cosine", "diffusion.min_snr_gamma": 5.0, "train.lr": 0.001,
          "train.batch_size": 64, "train.max_steps": 3000, "sample.sampler": "dpmpp", "sample.steps": 20,
          "sample.guidance_scale": 2.0, "evaluate.confidence": 0.9}
PER_CLASS = {name: 0.5 + 0.01 * i for i, name in enumerate(CLASS_NAMES)}
PER_CLASS["character_5_kna"] = 0.125  # the hardest class
PER_CLASS["digit_9"] = None  # no samples judged
EVAL = {"conditional": True, "n_generated": 2300, "ocr_accuracy": 0.931, "ocr_intended_confidence": 0.88,
        "fid": 12.3, "kid": 0.0123, "kid_std": 0.0004, "precision": 0.81, "recall": 0.62,
        "floor_fid": 1.1, "floor_kid": 0.0002, "floor_precision": 0.86, "floor_recall": 0.84,
        "inception_fid": None, "inception_status": "evaluate.inception_weights is null",
        "judge_test_accuracy": 0.962, "per_class_accuracy": PER_CLASS,
        "style": {"stroke_width": {"ratio_median": 1.213, "floor_ratio_median": 0.996, "diff_median": 0.55,
                                   "wasserstein_median": 0.61, "floor_wasserstein_median": 0.25,
                                   "gen_median": 3.21, "real_median": 2.65},
                  "ink_mass": {"ratio_median": 1.244, "floor_ratio_median": 1.008, "gen_median": 301.0,
                               "real_median": 242.0},
                  "edge_softness": {"ratio_median": 0.97, "floor_ratio_median": 1.0},
                  "slant": {"ratio_median": None, "diff_median": -2.34, "floor_diff_median": 0.4},
                  "compared": {"generated": 920, "real": 920, "classes": 46}},
        "space_fid": 1.23, "floor_space_fid": 0.049, "c2st_accuracy": 0.97, "floor_c2st_accuracy": 0.51,
        "tone_c2st_accuracy": 0.955, "floor_tone_c2st_accuracy": 0.515,
        "c2st_telltale": {"count": 48, "samples": list(range(48)), "neighbours": list(range(48)),
                          "measures": [{"measure": "white_share", "generated": 0.021, "real": 0.104, "effect": -1.2,
                                        "all_effect": -0.9},
                                       {"measure": "stroke_width", "generated": 2.1, "real": 1.8, "effect": 0.61,
                                        "all_effect": 0.05},
                                       {"measure": "slant", "generated": 3.0, "real": 1.0, "effect": 0.2,
                                        "all_effect": 0.1},
                                       {"measure": "background", "generated": 0.0, "real": 0.0, "effect": 0.0,
                                        "all_effect": 0.0}]}}
METRICS = {"data": {"train": 78150, "test": 13800, "classes": 46, "duplicates_removed": 25,
                    "pixel_mean": 0.2404, "pixel_std": 0.41},
           "ocr": {"test_accuracy": 0.962, "train_seconds": 310.0,
                   "per_class_accuracy": {n: 0.96 for n in CLASS_NAMES}},
           "train": {"steps": 3000, "epochs": 2.46, "final_loss": 0.0412, "img_per_s": 31.5, "wall_s": 6100.0,
                     "params": 2_512_417, "device": "cpu"},
           "sample": {"images_per_s": 8.1, "ms_per_image": 123.0, "nfe": 40, "sampler": "dpmpp", "steps": 20,
                      "guidance_scale": 2.0},
           "eval": EVAL,
           "vae": {"enabled": True, "latent_shape": [4, 8, 8], "psnr_db": 27.5, "ocr_accuracy_reconstructed": 0.981,
                   "ocr_accuracy_real": 0.993, "stroke_width_ratio": 1.02, "ink_mass_ratio": 0.99, "seconds": 300.0,
                   "params": 1_000_000},
           "distill": {"enabled": True, "students": [{"steps": 4, "nfe": 4, "n": 920, "ms_per_image": 5.0,
                                                      "ocr_accuracy": 0.81, "legible_share": 0.6, "fid": 2.5,
                                                      "stroke_width_ratio": 0.97, "ink_mass_ratio": 1.02}]}}
RUNS = [{"name": "exp-b", "run_id": "b" * 32, "start_time": 2, "metrics": {"ocr_accuracy": 0.931, "fid": 12.3},
         "params": {"train.lr": "5e-05", "model.preset": "cpu_small", "sample.steps": "20"}},
        {"name": "exp-a", "run_id": "a" * 32, "start_time": 1, "metrics": {"fid": 20.5},
         "params": {"train.lr": "0.001", "model.preset": "cpu_small"}}]


def make_report_root(root: Path) -> Path:
    """A repository-shaped folder: every stage's details file, a train log, pixel figures, a GIF, then the charts."""
    for stage, values in METRICS.items():
        write_json(values, root / paths.DETAILS_DIR / f"{stage}.json")
    write_csv([{"step": s, "loss": 0.05 + math.exp(-s / 500), "lr": 1e-3 * min(1.0, s / 200), "img_per_s": 30.0}
               for s in range(25, 3001, 25)], root / paths.TRAIN_LOG)
    cells = np.random.default_rng(0).integers(0, 256, (8, 32, 32), dtype=np.uint8)
    for name in ("dataset", "augment", "samples", "steps", "process", "confusion", "style", "telltale", "distill", "vae"):
        figures.save_image(figures.image_row(cells), root / paths.FIGURES_DIR / f"{name}.png")
    figures.save_gif(list(cells), root / paths.FIGURES_DIR / "denoising.gif", scale=2)
    render_plots(root)
    return root


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_report_root(tmp_path_factory.mktemp("repo"))


@pytest.fixture(scope="module")
def rendered(root: Path) -> tuple[ReportInputs, str, str]:
    inputs = load_report_inputs(root, PARAMS, RUNS, "exp-b")
    return (inputs, *build_report(inputs))


def test_render_plots_writes_both_charts(root: Path) -> None:
    written = render_plots(root)
    assert set(written) == {"loss_curve", "per_class"}
    assert all(p.is_file() and p.parent == root / paths.FIGURES_DIR for p in written.values())


def test_html_embeds_every_figure_and_reaches_for_nothing_outside(rendered) -> None:
    inputs, html, _ = rendered
    assert set(inputs.figures) == set(report_inputs.FIGURES)
    for path in inputs.figures.values():
        assert render.data_uri(path) in html  # the file's exact bytes, base64
    assert "data:image/gif;base64," in html
    assert all(ref.startswith("data:") for ref in re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', html))
    assert "http" not in html.lower() and "url(" not in html and '<meta charset="utf-8">' in html


def test_markdown_links_point_at_files_next_to_it(rendered, root: Path) -> None:
    inputs, _, md = rendered
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(links) == len(inputs.figures)
    assert all(link.startswith("figures/") and (root / "reports" / link).is_file() for link in links)


def test_sections_appear_in_order_with_numbers_beside_their_floor(rendered) -> None:
    _, html, md = rendered
    order = ["Summary", "Key parameters", "Metrics", "Data", "Training", "Samples", "Denoising",
             "Latent diffusion: the autoencoder", "Distilled students", "Per-class accuracy", "Recent runs"]
    positions = [md.index(f"## {h}\n") for h in order]
    assert positions == sorted(positions)
    assert "| FID, judge features | 12.3 | 1.1 |" in md and "| KID, judge features | 0.0123 ± 0.0004 | 0.0002 |" in md
    assert "| FID, style space | 1.23 | 0.049 |" in md and "| C2ST accuracy | 97.0 % | 51.0 % |" in md
    assert "| tone C2ST accuracy | 95.5 % | 51.5 % |" in md and "### What gives the samples away" in md
    assert "skipped: evaluate.inception_weights is null" in md
    assert "| train.lr | 0.001 |" in md and "exp-b (this report)" in md
    assert "ङ (character_5_kna) 12.5 %" in md and "1 class has no samples" in md
    assert "ङ" in html and "Not run" not in md
    assert "| latent shape (channels × side × side) | 4×8×8 |" in md and "| PSNR of test reconstructions | 27.5 dB |" in md


def test_missing_metrics_say_not_run(tmp_path: Path) -> None:
    assert render_plots(tmp_path) == {}
    inputs = load_report_inputs(tmp_path, {}, [], None)
    html, md = build_report(inputs)
    assert md.count("Not run:") == len(report_inputs.STAGE_OF) and html.count("Not run:") == len(report_inputs.STAGE_OF)
    assert "evaluate stage has not run" in md and "No MLflow runs" in md
    shown = len(report_inputs.FIGURES) - len(report_inputs.OPTIONAL_STAGE_OF)  # no distill section (nor its figure) when it did not run
    assert md.count("not available") == shown and "<img" not in html
    only_train = build_report(ReportInputs({}, {"train": METRICS["train"]}, [], {}, [], "x"))[1]
    assert only_train.count("Not run:") == len(report_inputs.STAGE_OF) - 1 and "Training ran 3,000 steps" in only_train


def test_corrupt_metrics_file_is_a_user_error(tmp_path: Path) -> None:
    path = tmp_path / paths.DETAILS_DIR / "eval.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(DevagenError, match="eval.json.*evaluate stage"):
        load_report_inputs(tmp_path, {}, [], None)


def test_compare_runs_shows_only_the_params_that_differ() -> None:
    header, rows = compare_runs(RUNS, ["ocr_accuracy", "fid", "never_logged"])
    assert header == ["run", "sample.steps", "train.lr", "ocr_accuracy", "fid"]
    assert rows == [["exp-b", "20", "5e-05", "0.931", "12.3"], ["exp-a", "—", "0.001", "—", "20.5"]]
    assert compare_runs(RUNS[:1], ["fid"]) == (["run", "fid"], [["exp-b", "12.3"]])


def test_summary_is_read_from_the_numbers() -> None:
    text = summarize(METRICS, PARAMS)
    for part in ("93.1 %", "2,300", "96.2 %", "12.3 against 1.1", "11.2 times", "0.81", "0.62",
                 "inception_weights is null", "3,000 steps", "101.7 min", "123 ms",
                 "blind to pen width", "style space, which sees pen width, FID is 1.23 (real: 0.049)",
                 "97.0 % of the time (real from real: 51.0 %", "by their grey levels alone, 95.5 % (real from real: 51.5 %)"):
        assert part in text, part
    worse = summarize({**METRICS, "eval": {**EVAL, "ocr_accuracy": 0.5, "fid": 40.0}}, PARAMS)
    assert "50.0 %" in worse and "40 against 1.1" in worse and "93.1" not in worse and "12.3" not in worse
    uncond = {"conditional": False, "n_generated": 100, "legible_share": 0.7, "class_coverage": 41,
              "class_entropy_norm": 0.95, "inception_fid": 55.5, "floor_legible_share": 0.93}
    text = summarize({"eval": uncond}, PARAMS)
    assert ("70.0 % of the 100 generated characters are legible (judge confidence at least 0.9 and features "
            "where real characters' lie; 93.0 % of real test characters pass the same test)") in text
    assert "cover 41 of the 46 classes" in text and "Inception FID is 55.5" in text and "asked for" not in text


def test_html_escapes_text() -> None:
    html, _ = build_report(ReportInputs({}, {}, [], {}, [], "<script>x</script>"))
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_ticks_are_round_numbers_covering_the_data() -> None:
    assert plots.linear_ticks(25, 3000) == [0, 500, 1000, 1500, 2000, 2500, 3000]
    assert plots.linear_ticks(0.0, 0.001, 5) == pytest.approx([0, 0.0002, 0.0004, 0.0006, 0.0008, 0.001])
    assert plots.log_ticks(0.03, 0.9) == pytest.approx([0.02, 0.05, 0.1, 0.2, 0.5, 1.0])
    assert plots.log_ticks(0.002, 3.0) == pytest.approx([0.001, 0.01, 0.1, 1.0, 10.0])
    assert plots.linear_ticks(2.0, 2.0)[0] < 2.0 < plots.linear_ticks(2.0, 2.0)[-1]
    labels = [plots.format_tick(v) for v in (0.0, 0.0002, 2e-05, 1500.0, 20000.0)]
    assert labels == ["0", "0.0002", "2e-05", "1500", "20k"]


def _count_color(image: Image.Image, rgb: tuple[int, int, int]) -> int:
    pixels = np.asarray(image.convert("RGB")).reshape(-1, 3).astype(int)
    return int((np.abs(pixels - rgb).sum(axis=1) < 30).sum())


def test_plots_are_sane_images() -> None:
    steps = list(range(10, 1001, 10))
    line = plots.line_plot(steps, {"loss": [1 / s for s in steps], "gap": [float("nan")] * 100}, "t", "step", "loss",
                           log_y=True)
    assert line.size == (640, 320) and line.mode == "RGB" and _count_color(line, plots.PALETTE[0]) > 500
    empty = plots.line_plot([], {"loss": []}, "t", "step", "loss")
    assert empty.size == (640, 320)
    bars = plots.bar_plot(glyphs(), [0.5] * 45 + [None], "per class", reference=[0.9] * 46)
    few = plots.bar_plot(glyphs()[:3], [1.0, 0.0, 0.3], "three")
    assert 600 < bars.width < 2000 and bars.height == 300 and few.width < bars.width
    tall, short = (_count_color(plots.bar_plot(["a"], [v], "x"), plots.PALETTE[0]) for v in (0.9, 0.1))
    assert tall > 4 * short  # bar area follows the value
    with pytest.raises(ValueError):
        plots.bar_plot(["a", "b"], [0.5], "mismatch")


def test_summary_says_in_words_how_the_pen_compares_to_real() -> None:
    text = summarize(METRICS, PARAMS)
    assert ("Pen style, median over classes of generated / real: strokes 1.21× as wide as real "
            "(real vs real 1.00×), ink mass 1.24× (real vs real 1.01×), edge softness 0.97×; "
            "slant differs by -2.3°.") in text
    no_style = summarize({**METRICS, "eval": {k: v for k, v in EVAL.items() if k != "style"}}, PARAMS)
    assert "Pen style" not in no_style


def test_style_table_sets_each_measure_beside_its_floor(rendered) -> None:
    _, _, md = rendered
    assert "| stroke width (px) | 3.21 | 2.65 | 1.21× | 1.00× | 0.61 | 0.25 | ink mass / skeleton length |" in md
    assert "| slant (°) | — | — | -2.3° | +0.4° | — | — |" in md
    assert "920 generated against 920 random real test images" in md
    assert md.index("### Pen style") < md.index("![style]") < md.index("### OCR judge")


def test_unconditional_report_shows_what_the_model_draws(tmp_path: Path) -> None:
    shares = {name: (0.1 if i == 0 else 0.9 / 45) for i, name in enumerate(CLASS_NAMES)}
    ev = {"conditional": False, "n_generated": 92, "legible_share": 0.4, "per_class_read_share": shares}
    write_json(ev, tmp_path / paths.DETAILS_DIR / "eval.json")
    assert set(render_plots(tmp_path)) == {"per_class"}
    md = build_report(load_report_inputs(tmp_path, {}, [], None))[1]
    assert "## Which characters the model draws" in md and "most as क 10.0 %" in md and "2.2 %" in md
    assert "Per-class accuracy" not in md


def test_distilled_students_get_their_rows_beside_the_sample_stage_only_when_they_exist() -> None:
    students = [{"steps": 4, "nfe": 4, "n": 920, "ms_per_image": 5.0, "ocr_accuracy": 0.81, "legible_share": 0.6,
                 "fid": 2.5, "stroke_width_ratio": 0.97, "ink_mass_ratio": 1.02},
                {"steps": 1, "nfe": 1, "n": 920, "ms_per_image": 1.2, "ocr_accuracy": 0.3, "legible_share": 0.1,
                 "fid": 9.0, "stroke_width_ratio": 0.8, "ink_mass_ratio": 0.9}]
    metrics = {"distill": {"enabled": True, "students": students}, "eval": METRICS["eval"], "sample": METRICS["sample"]}
    md = build_report(ReportInputs({}, metrics, [], {}, [], "x"))[1]
    section = md.split("## Distilled students")[1].split("\n## ")[0]
    assert "920 samples (20 per class)" in section
    rows = [line for line in section.splitlines() if line.startswith("| student") or line.startswith("| sample stage")]
    assert len(rows) == 3 and "81.0 %" in rows[1] and "0.97×" in rows[1] and "| 1 DDIM step |" not in section
    assert "student, 1 DDIM step" in rows[2] and "| 9 |" in rows[2]
    off = build_report(ReportInputs({}, {"distill": {"enabled": False}}, [], {}, [], "x"))[1]
    assert "Distilled students" not in off


def test_summary_says_how_a_larger_model_is_measured() -> None:
    text = summarize({**METRICS, "eval": {**EVAL, "sample_side": 64, "judged_side": 32}}, PARAMS)
    assert "The model draws 64×64 images; every measure here reads them resized" in text and "own 32×32" in text
    assert "resized" not in summarize({**METRICS, "eval": {**EVAL, "sample_side": 32, "judged_side": 32}}, PARAMS)


def test_the_pen_style_section_names_the_classes_furthest_from_real_and_the_chance_count() -> None:
    ratios = [{"class": "character_24_bha", "glyph": "भ", "ratio": 1.42}, {"class": "digit_7", "glyph": "७", "ratio": 1.17},
              {"class": "character_3_ga", "glyph": "ग", "ratio": 0.9}]
    band = {"low": 0.8, "high": 1.25, "real_outside": ["digit_7"], "ratios": ratios}
    style = {**EVAL["style"], "class_band": {"stroke_width": band},
             "off_classes": [{"class": "character_24_bha", "glyph": "भ", "measure": "stroke_width", "ratio": 1.42}]}
    ev = {**EVAL, "style": style, "style_off_classes": 1, "style_off_classes_real": 1}
    md = "\n".join(str(block) for block in pages._style_blocks(ev))
    assert "stroke width 0.80×–1.25×; 1 class(es) lie outside it (भ stroke width 1.42×)" in md
    assert "a second real set of those sizes has 1 outside" in md
    assert "भ 1.42× (outside), ७ 1.17×, ग 0.90×" in md
    assert "per class, 1 class(es) write a pen beyond what a real set of the same size strays to (a second real set: 1)" \
        in summarize({**METRICS, "eval": ev}, PARAMS)
    assert "per class" not in summarize(METRICS, PARAMS) and not any(  # no band (unconditional, or no reference)
        isinstance(block, Table) and block.header[0] == "per class" for block in pages._style_blocks(EVAL))


def test_the_telltale_sentence_names_what_separates_the_surest_samples() -> None:
    from devagen.report.sentences import telltale_sentence

    text = telltale_sentence(EVAL)
    assert text.startswith("The 48 samples the CNN is surest are generated differ from their nearest real images most in "
                           "pixels at exactly 255 2.1 % against 10.4 % (-1.20 spreads; all samples -0.90); stroke width "
                           "2.1 against 1.8 (+0.61 spreads; all samples +0.05); slant 3 against 1 (+0.20 spreads")
    assert "background" not in text  # three measures named
    assert "Grey levels alone give the samples away (tone C2ST 95.5 %, real from real 51.5 %)" in text
    alike = telltale_sentence({**EVAL, "tone_c2st_accuracy": 0.53})
    assert "Grey levels alone barely give the samples away (tone C2ST 53.0 %" in alike
    assert telltale_sentence({k: v for k, v in EVAL.items() if k != "c2st_telltale"}) == ""
