"""Evaluation maths: FID/KID/precision/recall via torch-fidelity, OCR accuracy, legibility, figures.

Pure functions on arrays. The only file ever read is the optional local Inception weights file.
torch-fidelity (and through it torchvision) is imported lazily: the OCR-only helpers stay cheap.

Feature metrics use the OCR judge as a torch-fidelity feature extractor. torch-fidelity builds its
extractor itself, from a registered name, as `cls(name, features, **every_calculate_metrics_kwarg)`,
so one adapter class is registered once per process and the judge of each call travels in the extra
keyword `devagen_judge`; the adapter works on a deep copy, so torch-fidelity's `.eval()`,
`.requires_grad_(False)` and `.cuda()` never touch the caller's judge.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch.utils.data import Dataset

from ..core.classes import CLASS_GLYPHS, CLASS_NAMES, NUM_CLASSES
from ..core.config import EvaluateConfig
from ..core.errors import DevagenError
from ..data.prepared import to_model_range

JUDGE_EXTRACTOR = "devagen-ocr-judge"  # name registered with torch-fidelity
JUDGE_FEATURE = "penultimate"  # the one feature layer the adapter provides
JUDGE_KWARG = "devagen_judge"  # calculate_metrics keyword that carries the judge to the adapter
INCEPTION_EXTRACTOR = "inception-v3-compat"


class _Images(Dataset):
    """uint8 (N, C, S, S) tensor as a Dataset of (C, S, S) items, the form torch-fidelity batches."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


def _judge_extractor_class() -> type:
    """The torch-fidelity adapter: uint8 (B, 1, S, S) -> (judge.features in float64 (B, D),)."""
    import torch_fidelity

    class JudgeFeatures(torch_fidelity.FeatureExtractorBase):
        def __init__(self, name: str, features_list: list[str], devagen_judge: Any = None, **_: Any) -> None:
            super().__init__(name, features_list)
            if devagen_judge is None:
                raise ValueError(f"feature extractor {name!r} needs calculate_metrics(..., {JUDGE_KWARG}=judge)")
            self.judge = copy.deepcopy(devagen_judge)

        @staticmethod
        def get_provided_features_list() -> tuple[str, ...]:
            return (JUDGE_FEATURE,)

        @staticmethod
        def get_default_feature_layer_for_metric(metric: str) -> str:
            return JUDGE_FEATURE

        @staticmethod
        def can_be_compiled() -> bool:
            return False

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
            # float64 keeps FID of identical sets at rounding level (covariance square root)
            return (self.judge.features(to_model_range(x)).flatten(1).double(),)

    return JudgeFeatures


def _register_judge_extractor() -> str:
    """Register the judge adapter with torch-fidelity unless this process already did; return its name."""
    from torch_fidelity.registry import (
        FEATURE_EXTRACTORS_REGISTRY,
        register_feature_extractor,
    )

    if JUDGE_EXTRACTOR not in FEATURE_EXTRACTORS_REGISTRY:
        register_feature_extractor(JUDGE_EXTRACTOR, _judge_extractor_class())
    return JUDGE_EXTRACTOR


def _check_images(images: np.ndarray, what: str) -> None:
    """Raise unless `images` is uint8 (N, S, S)."""
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 3:
        raise ValueError(f"{what}: expected a uint8 numpy array (N, S, S), got "
                         f"{getattr(images, 'dtype', type(images))} {getattr(images, 'shape', '')}")


def _subsample(images: np.ndarray, n: int, seed: int) -> np.ndarray:
    """n of the images, drawn without replacement by a seeded RNG, in their original order (all when n == N)."""
    if n >= len(images):
        return images
    return images[np.sort(np.random.default_rng(seed).choice(len(images), n, replace=False))]


def _equal_size(generated: np.ndarray, real: np.ndarray, cfg: EvaluateConfig) -> tuple[np.ndarray, np.ndarray]:
    """Both sets cut to the smaller one's size (seeded); raise if too few for KID and precision/recall."""
    _check_images(generated, "generated")
    _check_images(real, "real")
    if generated.shape[1:] != real.shape[1:]:
        raise ValueError(f"image sizes differ: generated {generated.shape[1:]}, real {real.shape[1:]}")
    n = min(len(generated), len(real))
    need = max(2, cfg.prc_neighborhood + 1)
    if n < need:
        raise DevagenError(f"evaluate: feature metrics need at least {need} generated and real images, got {n}; "
                           "raise sample.count / sample.per_class")
    return _subsample(generated, n, cfg.seed), _subsample(real, n, cfg.seed)


def _as_tensor(images: np.ndarray, channels: int) -> torch.Tensor:
    """uint8 (N, S, S) array -> uint8 (N, channels, S, S) tensor (gray repeated, no copy)."""
    return torch.from_numpy(np.ascontiguousarray(images)).unsqueeze(1).expand(-1, channels, -1, -1)


def _fidelity(set1: torch.Tensor, set2: torch.Tensor, extractor: str, cfg: EvaluateConfig, prc: bool,
              **extra: Any) -> dict[str, float]:
    """torch-fidelity FID, KID (and precision/recall) between equal-size uint8 (N, C, S, S) sets; set1 = generated."""
    import torch_fidelity

    n = len(set1)
    out = torch_fidelity.calculate_metrics(
        input1=_Images(set1), input2=_Images(set2), feature_extractor=extractor, fid=True, kid=True, prc=prc,
        cuda=torch.cuda.is_available(),  # torch-fidelity defaults to True and asserts on CPU-only machines
        batch_size=cfg.batch_size, rng_seed=cfg.seed,
        kid_subset_size=min(cfg.kid_subset_size, n),  # torch-fidelity refuses subsets larger than the set
        kid_subsets=cfg.kid_subsets, prc_neighborhood=cfg.prc_neighborhood,
        save_cpu_ram=True,  # DataLoader in the main process: no worker processes on a shared machine
        cache=False, verbose=False, **extra)
    result = {"fid": out["frechet_inception_distance"], "kid_mean": out["kernel_inception_distance_mean"],
              "kid_std": out["kernel_inception_distance_std"]}
    if prc:
        result.update(precision=out["precision"], recall=out["recall"])
    return {**result, "n": n}


def judge_feature_metrics(judge: torch.nn.Module, generated: np.ndarray, real: np.ndarray,
                          cfg: EvaluateConfig) -> dict[str, float]:
    """fid, kid_mean, kid_std, precision, recall, n: uint8 (N, S, S) generated vs (M, S, S) real, in judge features.

    The larger set is cut to the smaller one's size n by a seeded draw; precision = share of generated
    images inside the real manifold, recall = share of real images inside the generated one.
    """
    gen, ref = _equal_size(generated, real, cfg)
    return _fidelity(_as_tensor(gen, 1), _as_tensor(ref, 1), _register_judge_extractor(), cfg, prc=True,
                     **{JUDGE_KWARG: judge})


def real_floor(judge: torch.nn.Module, train_real: np.ndarray, test_real: np.ndarray, cfg: EvaluateConfig,
               n: int | None = None) -> dict[str, float]:
    """The same metrics for n real train vs n real test images (the test subset judge_feature_metrics draws).

    Pass n = len(generated). The judge was trained on train images, so the floor includes its train/test gap.
    """
    n = min(len(train_real), len(test_real), n or len(test_real))
    train = _subsample(train_real, n, cfg.seed + 1)  # another draw than the test subset's
    return judge_feature_metrics(judge, train, _subsample(test_real, n, cfg.seed), cfg)


def _check_inception_weights(weights_path: str) -> Path:
    """Raise DevagenError naming evaluate.inception_weights unless the file holds torch-fidelity's InceptionV3."""
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    path = Path(weights_path).expanduser()
    fix = f"download {URL_INCEPTION_V3} there, or set it to null to skip Inception FID"
    if not path.is_file():
        raise DevagenError(f"params.yaml: evaluate.inception_weights: {path} is not a file; {fix}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a file that is not a state dict
        raise DevagenError(f"params.yaml: evaluate.inception_weights: {path} is not a PyTorch weights file "
                           f"({type(exc).__name__}); {fix}") from None
    fc = state.get("fc.weight") if isinstance(state, dict) else None
    if fc is None or tuple(fc.shape) != (1008, 2048):
        raise DevagenError(f"params.yaml: evaluate.inception_weights: {path} does not hold torch-fidelity's "
                           f"InceptionV3 weights (no fc.weight of shape 1008x2048); {fix}")
    return path


def inception_fid(generated: np.ndarray, real: np.ndarray, weights_path: str | None,
                  cfg: EvaluateConfig) -> dict[str, float] | None:
    """Standard Inception fid, kid_mean, kid_std (and n) of uint8 (N, S, S) sets; None without local weights."""
    if weights_path is None:
        return None
    path = _check_inception_weights(weights_path)
    gen, ref = _equal_size(generated, real, cfg)
    # gray -> RGB uint8 (N, 3, S, S); torch-fidelity's Inception resizes to 299 x 299 itself
    return _fidelity(_as_tensor(gen, 3), _as_tensor(ref, 3), INCEPTION_EXTRACTOR, cfg, prc=False,
                     feature_extractor_weights_path=str(path))


def _check_probs(probs: np.ndarray) -> np.ndarray:
    """probs (N, 46), rows of probabilities summing to 1, as float64; raise otherwise (e.g. logits)."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] != NUM_CLASSES or len(probs) == 0:
        raise ValueError(f"probs: expected shape (N>0, {NUM_CLASSES}), got {probs.shape}")
    if not (np.all(probs >= 0) and np.allclose(probs.sum(1), 1.0, atol=1e-3)):
        raise ValueError("probs: rows must be probabilities summing to 1 (softmax of the judge's logits)")
    return probs


def ocr_accuracy(probs: np.ndarray, intended: np.ndarray) -> dict[str, Any]:
    """Judge reading of conditional samples: probs (N, 46), intended (N,) int class indices in [0, 46).

    Returns accuracy (float), per_class ({class name: accuracy, None when the class is absent}),
    confusion (int64 ndarray (46, 46), rows = intended, columns = predicted) and
    intended_confidence (mean probability the judge gives the intended class).
    """
    probs = _check_probs(probs)
    intended = np.asarray(intended)
    if intended.shape != (len(probs),) or not np.issubdtype(intended.dtype, np.integer):
        raise ValueError(f"intended: expected int array ({len(probs)},), got {intended.dtype} {intended.shape}")
    if intended.min() < 0 or intended.max() >= NUM_CLASSES:
        raise ValueError(f"intended: class indices must be in [0, {NUM_CLASSES})")
    predicted = probs.argmax(1)
    confusion = np.bincount(intended * NUM_CLASSES + predicted, minlength=NUM_CLASSES**2)
    confusion = confusion.reshape(NUM_CLASSES, NUM_CLASSES).astype(np.int64)
    counts, correct = confusion.sum(1), np.diag(confusion)
    per_class = {name: float(correct[c] / counts[c]) if counts[c] else None for c, name in enumerate(CLASS_NAMES)}
    return {"accuracy": float(correct.sum() / len(probs)), "per_class": per_class, "confusion": confusion,
            "intended_confidence": float(probs[np.arange(len(probs)), intended].mean())}


def legibility(probs: np.ndarray, confidence: float, in_distribution: np.ndarray) -> dict[str, float | int | None]:
    """Readability of samples from judge probs (N, 46) and bool (N,) in_distribution (legibility.in_distribution).

    legible = max probability >= confidence AND in distribution (a softmax is confident about noise too).
    legible_share: fraction of legible images; confident_share and in_distribution_share: each test alone.
    Among legible images only, each read as its argmax: class_coverage = how many of the 46 classes are
    read at least once; class_entropy_nats = entropy of the read-class distribution, class_entropy_norm =
    that / log 46 (1 = all classes equally often). Entropies are None when nothing is legible.
    """
    probs = _check_probs(probs)
    inside = np.asarray(in_distribution)
    if inside.shape != (len(probs),) or inside.dtype != bool:
        raise ValueError(f"in_distribution: expected bool array ({len(probs)},), got {inside.dtype} {inside.shape}")
    confident = probs.max(1) >= confidence
    legible = confident & inside
    counts = np.bincount(probs.argmax(1)[legible], minlength=NUM_CLASSES)
    entropy = None
    if legible.any():
        p = counts[counts > 0] / counts.sum()
        entropy = float(-(p * np.log(p)).sum()) + 0.0  # + 0.0 turns -0.0 into 0.0
    return {"legible_share": float(legible.mean()), "confident_share": float(confident.mean()),
            "in_distribution_share": float(inside.mean()), "class_coverage": int((counts > 0).sum()),
            "class_entropy_nats": entropy,
            "class_entropy_norm": None if entropy is None else entropy / math.log(NUM_CLASSES)}


def read_counts(probs: np.ndarray, confidence: float) -> np.ndarray:
    """int64 (46,): how many images the judge reads legibly (max probability >= confidence) as each class."""
    probs = _check_probs(probs)
    return np.bincount(probs.argmax(1)[probs.max(1) >= confidence], minlength=NUM_CLASSES).astype(np.int64)


def runner_up_matrix(probs: np.ndarray) -> np.ndarray:
    """int64 (46, 46) counts of (judge's first choice = row, second choice = column) over all images.

    For an unconditional model this stands in for the confusion matrix: it shows which characters
    the samples blend (a sample between two glyphs puts both on top)."""
    probs = _check_probs(probs)
    order = np.argsort(-probs, axis=1, kind="stable")
    pairs = np.bincount(order[:, 0] * NUM_CLASSES + order[:, 1], minlength=NUM_CLASSES**2)
    return pairs.reshape(NUM_CLASSES, NUM_CLASSES).astype(np.int64)


def read_share_rows(counts: np.ndarray) -> list[dict[str, Any]]:
    """Legible read counts (46,) -> rows {class, glyph, accuracy (empty: no class was asked for), read_share}."""
    shares = np.asarray(counts, dtype=np.float64) / max(int(np.sum(counts)), 1)
    return [{"class": name, "glyph": CLASS_GLYPHS[name], "accuracy": None, "read_share": float(share)}
            for name, share in zip(CLASS_NAMES, shares)]


def per_class_rows(per_class: dict[str, float | None]) -> list[dict[str, Any]]:
    """{class name: accuracy or None} -> rows {class, glyph, accuracy} for a DVC plot; absent classes left out."""
    return [{"class": name, "glyph": CLASS_GLYPHS[name], "accuracy": acc}
            for name, acc in per_class.items() if acc is not None]


def _shade(share: np.ndarray) -> np.ndarray:
    """Row shares in [0, 1] -> RGB uint8 (..., 3): white at 0 to dark blue at 1, sqrt-scaled so rare confusions show."""
    t = np.sqrt(np.clip(share, 0.0, 1.0))[..., None]
    white, blue = np.array([255.0, 255.0, 255.0]), np.array([8.0, 48.0, 107.0])
    return np.round(white + t * (blue - white)).astype(np.uint8)


CONFUSION_AXES = "rows: intended, columns: read as"
RUNNER_UP_AXES = "rows: read as, columns: judge's second choice"


def confusion_figure(confusion: np.ndarray, glyphs: Sequence[str], cell: int = 18,
                     axes: str = CONFUSION_AXES) -> Image.Image:
    """Counts (K, K) (by default rows = intended, columns = read as) -> RGB heat map of row shares with glyph labels."""
    from ..report.figures import glyph_font

    confusion = np.asarray(confusion, dtype=np.float64)
    k = len(glyphs)
    if confusion.shape != (k, k):
        raise ValueError(f"confusion: expected ({k}, {k}) for {k} glyphs, got {confusion.shape}")
    share = confusion / np.maximum(confusion.sum(1, keepdims=True), 1.0)
    font = glyph_font(max(10, int(cell * 0.7)))
    title = f"{axes}; shade = sqrt(share of row)"
    left = max(int(font.getlength(g)) for g in glyphs) + 8
    top = 2 * int(font.size * 1.8)
    cells = np.repeat(np.repeat(_shade(share), cell, 0), cell, 1)
    canvas = Image.new("RGB", (max(left + k * cell, int(font.getlength(title)) + 8) + 4, top + k * cell + 4), "white")
    canvas.paste(Image.fromarray(cells, "RGB"), (left, top))
    draw = ImageDraw.Draw(canvas)
    draw.text((4, 2), title, fill="black", font=font)
    for i, g in enumerate(glyphs):
        mid = i * cell + cell // 2
        draw.text((left - 4, top + mid), g, fill="black", font=font, anchor="rm")
        draw.text((left + mid, top - 4), g, fill="black", font=font, anchor="ms")
    draw.rectangle((left - 1, top - 1, left + k * cell, top + k * cell), outline="gray")
    return canvas
