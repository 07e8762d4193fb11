"""Does a feature space see pen style? FID / precision / recall / C2ST of real vs real made bolder or thinner.

    python benchmarks/style_space.py --judge models/ocr --style models/style_net [--generated samples/samples.npz]

Two disjoint seeded draws A and B of real test images with the same per-class counts (20 a class,
the evaluate stage's sample size). "bolder"/"thinner" is B with every stroke grown / shrunk by a
third of a pixel a side (sub-pixel grey dilation / erosion at 3x; +22 % / -22 % ink mass on DHCD).
"heavy-/light-ink writers" are real, untouched test images (outside A) drawn from the half of each
class with the most / least ink: a pen-style difference with no image processing at all.
Each space reports A vs B (two real sets: the floor), A vs each of those sets, and the
evaluate stage's own floor (real train vs real test, metrics.real_floor, at each row's n).
`--generated` adds a row for any uint8 images + labels npz (e.g. samples/samples.npz); a set
smaller than A is compared with an equally small draw of A. Prints a Markdown table.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

import click
import numpy as np
import torch
import torch.nn.functional as F

from devagen.core import paths
from devagen.core.config import C2stConfig, EvaluateConfig
from devagen.data import prepared as data
from devagen.judges import c2st, metrics, ocr, style_space

PER_CLASS = 20  # the evaluate stage's 920 images
C2ST_ROW = "C2ST (CNN from scratch)"
SUPERSAMPLE = 3  # pen change of 1 px at 3x = 1/3 px a side at 32x32


def pen(images: np.ndarray, grow: int, factor: int = SUPERSAMPLE) -> np.ndarray:
    """uint8 (N, S, S) -> strokes grown (grow > 0) or shrunk (< 0) by |grow| / factor px a side.

    Grey dilation/erosion of a bilinear factor-x upsampling, area-averaged back, and only that change
    added to the untouched image (so grow = 0 is the identity, not a resampling blur).
    """
    x = torch.from_numpy(np.ascontiguousarray(images)).float().unsqueeze(1) / 255
    up = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
    k = 2 * abs(grow) + 1
    moved = F.max_pool2d(up, k, 1, abs(grow)) if grow > 0 else -F.max_pool2d(-up, k, 1, abs(grow))
    out = x + F.avg_pool2d(moved, factor) - F.avg_pool2d(up, factor)
    return (out * 255).round().clamp(0, 255).to(torch.uint8).squeeze(1).numpy()


def disjoint_draws(labels: np.ndarray, per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint index sets with per_class rows of each class, in class order."""
    counts = {int(c): 2 * per_class for c in np.unique(labels)}
    both = c2st.draw_per_class(labels, counts, np.random.default_rng(seed))
    pairs = both.reshape(len(counts), 2, per_class)
    return pairs[:, 0].ravel(), pairs[:, 1].ravel()


def ink_half_draw(images: np.ndarray, labels: np.ndarray, exclude: np.ndarray, heavy: bool, per_class: int,
                  seed: int) -> np.ndarray:
    """per_class indices of each class, outside `exclude`, from the half of its images with the most (or least) ink."""
    ink, rng, picked = images.astype(np.float64).sum((1, 2)), np.random.default_rng(seed), []
    for c in np.unique(labels):
        pool = np.setdiff1d(np.flatnonzero(labels == c), exclude)
        ranked = pool[np.argsort(ink[pool], kind="stable")]
        half = ranked[len(ranked) // 2:] if heavy else ranked[:len(ranked) // 2]
        picked.append(rng.choice(half, per_class, replace=False))
    return np.concatenate(picked)


def space_rows(name: str, net: Any, a: np.ndarray, sets: dict[str, np.ndarray], train: np.ndarray,
               test: np.ndarray, cfg: EvaluateConfig) -> list[dict]:
    """One row per set: FID, KID, precision, recall against A in `net`'s features, then the floor rows.

    FID / floor divides by the evaluate stage's floor (real train vs real test) at the row's own n.
    """
    floors: dict[int, dict] = {}
    rows = []
    for label, images in sets.items():
        m = metrics.judge_feature_metrics(net, images, a, cfg)
        floor = floors.setdefault(m["n"], metrics.real_floor(net, train, test, cfg, n=m["n"]))
        rows.append({"space": name, "vs A": label, "n": m["n"], "fid": m["fid"], "fid / floor": m["fid"] / floor["fid"],
                     "kid": m["kid_mean"], "precision": m["precision"], "recall": m["recall"]})
    for n, floor in floors.items():
        rows.append({"space": name, "vs A": "floor: real train vs test", "n": n, "fid": floor["fid"],
                     "fid / floor": 1.0, "kid": floor["kid_mean"], "precision": floor["precision"],
                     "recall": floor["recall"]})
    return rows


def c2st_rows(a: np.ndarray, sets: dict[str, np.ndarray], groups: np.ndarray, cfg: C2stConfig) -> list[dict]:
    """Held-out C2ST accuracy of each set against A."""
    return [{"space": C2ST_ROW, "vs A": label, "accuracy": c2st.two_sample_accuracy(a, images, groups, cfg)["accuracy"]}
            for label, images in sets.items()]


def table(rows: list[dict]) -> str:
    """Markdown table; floats to 3 decimals."""
    keys = list(dict.fromkeys(k for r in rows for k in r))
    cell = lambda v: f"{v:.3f}" if isinstance(v, float) else ("" if v is None else str(v))  # noqa: E731
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    return "\n".join(lines + ["| " + " | ".join(cell(r.get(k)) for k in keys) + " |" for r in rows]) + "\n"


@click.command()
@click.option("--judge", "judge_dir", type=click.Path(file_okay=False, path_type=Path), default=paths.OCR_DIR)
@click.option("--style", "style_dir", type=click.Path(file_okay=False, path_type=Path), default=paths.STYLE_NET_DIR)
@click.option("--prepared", type=click.Path(file_okay=False, path_type=Path), default=paths.PREPARED_DIR)
@click.option("--generated", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="npz of uint8 images + intended labels (samples/samples.npz) to add as a row")
def main(judge_dir: Path, style_dir: Path, prepared: Path, generated: Optional[Path]) -> None:
    train, test = data.load_split(prepared / "train.npz"), data.load_split(prepared / "test.npz")
    ia, ib = disjoint_draws(test.labels, PER_CLASS, seed=0)
    a, b = test.images[ia], test.images[ib]
    sets = {"B (real)": b, "bolder B": pen(b, 1), "thinner B": pen(b, -1),
            "heavy-ink writers": test.images[ink_half_draw(test.images, test.labels, ia, True, PER_CLASS, 1)],
            "light-ink writers": test.images[ink_half_draw(test.images, test.labels, ia, False, PER_CLASS, 2)]}
    mass = {k: float(v.astype(np.float64).sum() / b.astype(np.float64).sum()) for k, v in sets.items()}
    click.echo("ink mass / B's: " + ", ".join(f"{k} {v:.3f}" for k, v in mass.items()))
    if generated is not None:
        with np.load(generated) as npz:
            sets["generated"] = npz["images"]
    cfg, rows = EvaluateConfig(), []
    for name, net in (("judge", ocr.load_judge(judge_dir)), ("style space", style_space.load_style_space(style_dir))):
        start = time.perf_counter()
        rows += space_rows(name, net, a, sets, train.images, test.images, cfg)
        click.echo(f"{name}: {time.perf_counter() - start:.0f} s")
    start = time.perf_counter()
    rows += c2st_rows(a, {k: v for k, v in sets.items() if k != "generated"}, test.labels[ia], C2stConfig())
    if generated is not None:
        with np.load(generated) as npz:
            gen = c2st.c2st_metrics(npz["images"], npz["labels"], train.images, train.labels, test.images,
                                    test.labels, C2stConfig())
        rows += [{"space": C2ST_ROW, "vs A": f"generated vs real test ({gen['n_heldout']} held out)",
                  "accuracy": gen["accuracy"]},
                 {"space": C2ST_ROW, "vs A": "floor: real train vs test", "accuracy": gen["floor_accuracy"]}]
    click.echo(f"C2ST: {time.perf_counter() - start:.0f} s")
    click.echo(table(rows))


if __name__ == "__main__":
    main()
