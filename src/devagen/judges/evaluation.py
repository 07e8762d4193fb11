"""Judge generated samples against real data: the metrics of the evaluate stage.

evaluate_samples gathers the OCR judge's (whose features are blind to pen width by design);
style_space_metrics adds the style space's, which sees pen style; two_sample_tests the classifier two-sample
tests (a CNN on the images, a linear classifier on their grey levels); telltale_block what gives the samples away.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image

from ..core.classes import CLASS_NAMES
from ..core.config import C2stConfig, EvaluateConfig
from ..data.prepared import Split, resize
from ..pen import measures as style
from ..report import figures, plots
from . import c2st, metrics
from .legibility import OodStats, in_distribution, judge_legibility
from .ocr import Judge, predict_features
from .style_space import StyleSpace
from .telltale import telltale
from .tone_c2st import tone_c2st_metrics


@dataclass(frozen=True)
class Evaluation:
    """Flat metrics for eval.json, a (46, 46) count matrix for the confusion figure and per-class plot rows.

    Conditional models: the confusion matrix (rows intended, columns read as) and per-class accuracy.
    Unconditional ones: first vs second choice of the judge, and the share of legible samples read as each class.
    """

    metrics: dict[str, Any]
    confusion: np.ndarray
    confusion_axes: str
    per_class_rows: list[dict[str, Any]]


def _prefixed(values: dict[str, Any] | None, prefix: str) -> dict[str, Any]:
    """{'fid':…, 'kid_mean':…} -> {'<prefix>fid':…, '<prefix>kid':…}; n is dropped (reported once)."""
    rename = {"kid_mean": "kid"}
    return {prefix + rename.get(k, k): v for k, v in (values or {}).items() if k != "n"}


def evaluate_samples(judge: Judge, ood: OodStats, samples: np.ndarray, intended: np.ndarray, train_real: np.ndarray,
                     test_real: np.ndarray, cfg: EvaluateConfig,
                     say: Callable[[str], None] = lambda _: None) -> Evaluation:
    """samples uint8 (N, S, S) with intended labels (N,) (-1 for an unconditional model) vs real uint8 sets."""
    conditional = bool((intended >= 0).all())
    say("judge reads the samples")
    feats, probs = predict_features(judge, samples, cfg.batch_size)
    out: dict[str, Any] = {"conditional": conditional, "n_generated": int(len(samples))}
    out.update(metrics.legibility(probs, cfg.confidence, in_distribution(feats, probs, ood, cfg.ood_quantile)))
    real = judge_legibility(judge, ood, test_real, cfg.confidence, cfg.ood_quantile, cfg.batch_size)
    out["floor_legible_share"] = real["legible_share"]  # the same rule on real test images
    if conditional:
        ocr = metrics.ocr_accuracy(probs, intended)
        out.update(ocr_accuracy=ocr["accuracy"], ocr_intended_confidence=ocr["intended_confidence"],
                   per_class_accuracy=ocr["per_class"])
        confusion, axes, rows = ocr["confusion"], metrics.CONFUSION_AXES, metrics.per_class_rows(ocr["per_class"])
    else:
        rows = metrics.read_share_rows(metrics.read_counts(probs, cfg.confidence))
        out["per_class_read_share"] = {row["class"]: row["read_share"] for row in rows}
        confusion, axes = metrics.runner_up_matrix(probs), metrics.RUNNER_UP_AXES
    say("FID / KID / precision / recall in judge features")
    out.update(_prefixed(metrics.judge_feature_metrics(judge, samples, test_real, cfg), ""))
    say("real-data floor (train subset vs test subset)")
    out.update(_prefixed(metrics.real_floor(judge, train_real, test_real, cfg, n=len(samples)), "floor_"))
    inception = metrics.inception_fid(samples, test_real, cfg.inception_weights, cfg)
    out.update(_prefixed(inception, "inception_") if inception else {"inception_fid": None})
    out["inception_status"] = "computed" if inception else "no local Inception weights (evaluate.inception_weights is null)"
    return Evaluation(out, confusion, axes, rows)



def headline_quality(judge: Judge, ood: OodStats, samples: np.ndarray, intended: np.ndarray, test: Split,
                     cfg: EvaluateConfig) -> dict[str, Any]:
    """The few measures a quality-vs-cost table compares (conditional samples): ocr_accuracy, legible_share, judge
    fid / precision / recall against real test images, stroke_width_ratio and ink_mass_ratio (generated / real).
    Samples larger than the judge's images (a 64x64 model) are read resized to its side, like the real ones."""
    samples = resize(samples, judge.image_size)
    feats, probs = predict_features(judge, samples, cfg.batch_size)
    legible = metrics.legibility(probs, cfg.confidence, in_distribution(feats, probs, ood, cfg.ood_quantile))
    judged = metrics.judge_feature_metrics(judge, samples, test.images, cfg)
    measures = style.style_comparison(samples, intended, test.images, test.labels, cfg.seed, per_class=False)["measures"]
    return {"n": int(len(samples)), "ocr_accuracy": metrics.ocr_accuracy(probs, intended)["accuracy"],
            "legible_share": legible["legible_share"], "fid": judged["fid"], "precision": judged["precision"],
            "recall": judged["recall"], "stroke_width_ratio": measures["stroke_width"]["ratio_median"],
            "ink_mass_ratio": measures["ink_mass"]["ratio_median"]}


# Flat eval.json keys `dvc exp show` can list: style_<measure>_ratio (median over classes of the per-class
# ratio of medians, generated / real) and the real-vs-real floor of the ones the issue targets.
STYLE_HEADLINE = ("stroke_width", "ink_mass", "ink_coverage", "ink_intensity", "edge_softness")
STYLE_FLOORED = ("stroke_width", "ink_mass")
STYLE_FIGURE_CLASSES, STYLE_FIGURE_CROPS = 6, 6  # style.png: classes shown, crops of each side per class
STYLE_FIGURE_LEAD = 3  # of them, at least this many are the classes furthest from real in pen; the rest are random


@dataclass(frozen=True)
class StyleEvaluation:
    """eval.json entries (a nested `style` block plus flat headline keys) and the style.png figure."""

    metrics: dict[str, Any]
    figure: Image.Image


def _finite(x: Any) -> Any:
    """NaN -> None through nested dicts and lists (JSON has no NaN)."""
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, float) and x != x:
        return None
    return x


def _style_crops(samples: np.ndarray, intended: np.ndarray, real: np.ndarray, real_labels: np.ndarray,
                 names: Sequence[str], seed: int, first: Sequence[int] = ()) -> Image.Image:
    """STYLE_FIGURE_CLASSES rows (one for an unconditional model): generated crops | real crops drawn at random,
    4x. The classes in `first` (see _furthest_classes) lead; seeded random classes fill the rest."""
    rng = np.random.default_rng(seed)
    conditional = bool((intended >= 0).all())
    present = np.unique(intended) if conditional else np.array([-1])
    lead = list(dict.fromkeys(c for c in first if c in present))[:STYLE_FIGURE_CLASSES] if conditional else []
    rest = np.setdiff1d(present, lead)
    fill = np.sort(rng.choice(rest, min(STYLE_FIGURE_CLASSES - len(lead), len(rest)), replace=False))
    shown = [*lead, *fill.tolist()]
    real_labels = real_labels if conditional else np.full(len(real), -1)
    gen_pick = figures.random_per_class(intended, STYLE_FIGURE_CROPS, seed)
    real_pick = figures.random_per_class(real_labels, STYLE_FIGURE_CROPS, seed + 1)
    blank = np.full((1, *samples.shape[1:]), 255, np.uint8)
    rows = [(names[c] if c >= 0 else "", np.concatenate([samples[gen_pick[intended[gen_pick] == c]], blank,
                                                        real[real_pick[real_labels[real_pick] == c]]]))
            for c in shown]
    grid = figures.labelled_rows(rows, scale=4)
    title = "Pen style at 4x: generated (left) | real DHCD test images of the same class, drawn at random (right)"
    if lead:
        title += f"; first the {len(lead)} class(es) furthest from real in pen (report, 'Pen style'), then random ones"
    return plots.stack_vertical([plots.text_banner(title, grid.width), grid], gap=0)


def _furthest_classes(got: dict[str, Any]) -> list[int]:
    """Classes for style.png to lead with: every class off in pen, then the furthest from real of each pen measure
    in turn, until STYLE_FIGURE_LEAD rows (none for an unconditional model)."""
    ranked = [c for c, _ in itertools.chain.from_iterable(itertools.zip_longest(
        *(band["ratios"] for band in got["class_band"].values()), fillvalue=(None, None))) if c is not None]
    off = list(dict.fromkeys(row["class"] for row in got["off_classes"]))
    return list(dict.fromkeys(off + ranked))[:max(len(off), STYLE_FIGURE_LEAD)]


def style_evaluation(samples: np.ndarray, intended: np.ndarray, real: np.ndarray, real_labels: np.ndarray,
                     names: Sequence[str], seed: int) -> StyleEvaluation:
    """Pen style of samples uint8 (N, S, S), labels (N,) (-1: unconditional) vs real uint8 (M, S, S) with labels."""
    got = style.style_comparison(samples, intended, real, real_labels, seed)
    per_image = got.pop("per_image")
    flat = {f"style_{m}_ratio": got["measures"][m]["ratio_median"] for m in STYLE_HEADLINE}
    flat.update({f"style_{m}_floor_ratio": got["measures"][m]["floor_ratio_median"] for m in STYLE_FLOORED})
    flat["style_stroke_width_wasserstein"] = got["measures"]["stroke_width"]["wasserstein_median"]
    flat["style_stroke_width_floor_wasserstein"] = got["measures"]["stroke_width"]["floor_wasserstein_median"]
    off = [{**row, "class": CLASS_NAMES[row["class"]], "glyph": names[row["class"]]} for row in got["off_classes"]]
    bands = {m: {**band, "real_outside": [CLASS_NAMES[c] for c in band["real_outside"]],
                 "ratios": [{"class": CLASS_NAMES[c], "glyph": names[c], "ratio": r} for c, r in band["ratios"]]}
             for m, band in got["class_band"].items()}
    if bands:  # conditional models: classes beyond the real-vs-real band, and how many a second real set has there
        flat["style_off_classes"] = len({row["class"] for row in off})
        flat["style_off_classes_real"] = len({c for band in bands.values() for c in band["real_outside"]})
    gen_m, real_m = per_image["generated"], per_image["real"]
    hists = [plots.histogram_plot({"generated": gen_m[m], "real DHCD": real_m[m]}, title, xlabel)
             for m, title, xlabel in (("stroke_width", "Stroke width, all classes", "px (ink mass / skeleton length)"),
                                      ("ink_coverage", "Ink coverage, all classes", "share of pixels > 127"))]
    crops = _style_crops(samples, intended, real, real_labels, names, seed, _furthest_classes(got))
    block = {**got["measures"], "stroke_width_percentiles": got["stroke_width_percentiles"], "compared": got["compared"],
             "off_classes": off, "class_band": bands}
    figure = plots.stack_vertical([crops, plots.stack_vertical(hists, horizontal=True)])
    return StyleEvaluation(_finite({"style": block, **flat}), figure)


def style_space_metrics(space: StyleSpace, samples: np.ndarray, intended: np.ndarray, train: Split, test: Split,
                        cfg: EvaluateConfig, say: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """space_fid/kid/precision/recall (+ floor_space_*) in the style space."""
    say("FID / KID / precision / recall in the style space (sees pen width)")
    out = _prefixed(metrics.judge_feature_metrics(space, samples, test.images, cfg), "space_")
    out.update(_prefixed(metrics.real_floor(space, train.images, test.images, cfg, n=len(samples)), "floor_space_"))
    return out


@dataclass(frozen=True)
class TwoSampleTests:
    """eval.json's C2ST keys (the CNN's and the tone one's, each with its floor) and the CNN's per-sample scores."""

    metrics: dict[str, Any]
    scores: np.ndarray  # float (N,): each sample's held-out probability of being generated, NaN if never held out


def two_sample_tests(samples: np.ndarray, intended: np.ndarray, train: Split, test: Split, cfg: C2stConfig,
                     say: Callable[[str], None] = lambda _: None) -> TwoSampleTests:
    """c2st_accuracy and floor_c2st_accuracy (a CNN), tone_c2st_accuracy and floor_tone_c2st_accuracy (grey-level
    histograms only) for uint8 (N, S, S) samples with intended labels (N,), against real test images."""
    say("classifier two-sample test: generated vs real test, and real train vs real test")
    cnn = c2st.c2st_metrics(samples, intended, train.images, train.labels, test.images, test.labels, cfg)
    say("tone C2ST: the same sets told apart by their grey-level histograms alone")
    tone = tone_c2st_metrics(samples, intended, train.images, train.labels, test.images, test.labels, cfg)
    out = {"c2st_accuracy": cnn["accuracy"], "floor_c2st_accuracy": cnn["floor_accuracy"],
           "c2st_accuracies": cnn["accuracies"], "floor_c2st_accuracies": cnn["floor_accuracies"],
           "c2st_heldout": cnn["n_heldout"], "tone_c2st_accuracy": tone["accuracy"],
           "floor_tone_c2st_accuracy": tone["floor_accuracy"], "tone_c2st_accuracies": tone["accuracies"],
           "floor_tone_c2st_accuracies": tone["floor_accuracies"]}
    return TwoSampleTests(out, cnn["generated_scores"])


def telltale_block(judge: Judge, samples: np.ndarray, intended: np.ndarray, scores: np.ndarray, test: Split,
                   batch_size: int) -> dict[str, Any]:
    """eval.json's c2st_telltale: the samples the C2ST finds most generated, their nearest real test images in judge
    features and what separates them (devagen.judges.telltale)."""
    gen_feats, _ = predict_features(judge, samples, batch_size)
    real_feats, _ = predict_features(judge, test.images, batch_size)
    return _finite(telltale(scores, gen_feats, intended, samples, real_feats, test.labels, test.images))
