"""The OCR judge: a compact CNN that reads one DHCD glyph, trained on real train images only.

It later judges generated samples (OCR accuracy, legibility) and its penultimate features stand in
for Inception's in FID/KID, so it never sees a generated image. Sized for 2 AVX2 CPU cores: the one
full-resolution conv is narrow, the wide convs run at 1/2 and 1/4 of the side.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..core.classes import CLASS_NAMES, NUM_CLASSES
from ..core.config import AugmentConfig, OcrConfig
from ..core.device import autocast, pick_device, precision_name
from ..core.errors import DevagenError, one_line
from ..core.integrity import check_manifest, damaged, write_manifest
from ..core.io import read_json, write_json
from ..core.updates import one_cycle
from ..data.prepared import to_model_range
from ..data.augment import augment_batch

CONFIG_FILE = "judge.json"
WEIGHTS_FILE = "judge.safetensors"
FORMAT_VERSION = 1
EVAL_BATCH = 512  # images per forward pass when only reading (no gradients)

LogFn = Callable[[dict, int], None]


def _stage(cin: int, cout: int, pool: bool, pool_first: bool) -> list[nn.Module]:
    """3x3 conv (no bias: BN follows) → BatchNorm → ReLU, then a 2x2 max-pool when `pool`.

    pool_first max-pools the conv's output before BatchNorm and ReLU instead: near enough the same
    function (equal wherever the BN scale is positive), with BN and ReLU on a quarter of the pixels.
    """
    conv, norm = nn.Conv2d(cin, cout, 3, padding=1, bias=False), [nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
    if not pool:
        return [conv, *norm]
    return [conv, nn.MaxPool2d(2), *norm] if pool_first else [conv, *norm, nn.MaxPool2d(2)]


class Judge(nn.Module):
    """(B, 1, S, S) float in [-1, 1] → logits (B, 46); `features` gives the (B, 4·width) penultimate layer."""

    def __init__(self, width: int, image_size: int, dropout: float = 0.0, num_classes: int = NUM_CLASSES,
                 pool_first: bool = False) -> None:
        super().__init__()
        self.width, self.image_size, self.dropout, self.num_classes = width, image_size, dropout, num_classes
        self.pool_first = pool_first
        w, pf = width, pool_first
        self.body = nn.Sequential(
            *_stage(1, w, True, pf),  # S → S/2: the only full-resolution conv is narrow
            *_stage(w, 2 * w, False, pf), *_stage(2 * w, 2 * w, True, pf),  # S/2 → S/4
            *_stage(2 * w, 4 * w, False, pf), *_stage(4 * w, 4 * w, False, pf),  # at S/4, then pooled away
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(4 * w, num_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, S, S) float in [-1, 1] → (B, 4·width) globally pooled features (post-ReLU, ≥ 0)."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, S, S) float in [-1, 1] → (B, 46) logits."""
        return self.head(self.body(x))


def build_judge(cfg: OcrConfig, image_size: int, num_classes: int = NUM_CLASSES) -> Judge:
    """A freshly initialised judge for S x S images (weights drawn from torch's global RNG)."""
    if image_size < 8:
        raise DevagenError(f"prepare.image_size: the OCR judge needs images of at least 8x8, got {image_size}")
    return Judge(cfg.width, image_size, cfg.dropout, num_classes, cfg.pool_first)


def _check_split(images: np.ndarray, labels: Optional[np.ndarray], what: str) -> None:
    """Raise naming `what` unless images are uint8 (N, S, S) and labels (N,) in [0, 46)."""
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1] != images.shape[2] or len(images) == 0:
        raise DevagenError(f"{what}: expected non-empty uint8 images (N, S, S), got {images.dtype} {images.shape}")
    if labels is not None and (labels.shape != (len(images),) or labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise DevagenError(f"{what}: expected {len(images)} labels in [0, {NUM_CLASSES}), got shape {labels.shape}")


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) in channels-last memory order: CPU max-pooling runs ~5x faster on it (same values)."""
    return x.contiguous(memory_format=torch.channels_last)


@torch.no_grad()
def _read(judge: Judge, images: torch.Tensor, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (N, S, S) on any device → (float32 (N, D) features, (N, 46) logits) on the judge's device, eval mode.

    Fastest with the judge's weights in channels-last order like the input, as train_judge and load_judge
    return them: with NCHW weights oneDNN reorders at every conv (78k images: 45 s instead of 24 s, 2-core EPYC).
    """
    was_training, device = judge.training, next(judge.parameters()).device
    judge.eval()
    feats = torch.cat([judge.features(_channels_last(to_model_range(images[i:i + batch_size].to(device))))
                       for i in range(0, len(images), batch_size)])
    logits = judge.head(feats)  # in eval mode: no dropout
    judge.train(was_training)
    return feats, logits


@torch.no_grad()
def recalibrate_batchnorm(judge: Judge, images: np.ndarray, batch_size: int = EVAL_BATCH) -> Judge:
    """Re-estimate every BatchNorm's running mean/var as the plain average over uint8 (N, S, S) images; eval mode.

    After a short run at a high learning rate the running averages lag the weights, and eval-mode
    outputs can collapse to one class although the batch statistics classify well.
    """
    norms = [m for m in judge.modules() if isinstance(m, nn.BatchNorm2d)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # None: cumulative average over all batches seen
    judge.train()
    device, x = next(judge.parameters()).device, torch.from_numpy(np.ascontiguousarray(images))
    for i in range(0, len(x), batch_size):
        judge(to_model_range(x[i:i + batch_size].to(device)))
    for m, momentum in zip(norms, saved):
        m.momentum = momentum
    return judge.eval()


def _logits(judge: Judge, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    """uint8 (N, S, S) on any device → float32 (N, 46) logits on the judge's device, eval mode."""
    return _read(judge, images, batch_size)[1]


def predict_features(judge: Judge, images: np.ndarray, batch_size: int = EVAL_BATCH) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, S, S) → (float32 (N, D) penultimate features, float32 (N, 46) softmax probabilities)."""
    _check_split(images, None, "predict_proba")
    if images.shape[-1] != judge.image_size:
        raise DevagenError(f"predict_proba: the judge reads {judge.image_size}x{judge.image_size} images, "
                           f"got {images.shape[1]}x{images.shape[2]}; set prepare.image_size to match")
    feats, logits = _read(judge, torch.from_numpy(np.ascontiguousarray(images)), batch_size)
    return feats.cpu().numpy().astype(np.float32), torch.softmax(logits, dim=1).cpu().numpy().astype(np.float32)


def predict_proba(judge: Judge, images: np.ndarray, batch_size: int = EVAL_BATCH) -> np.ndarray:
    """uint8 (N, S, S) → float32 (N, 46) softmax probabilities (rows sum to 1)."""
    return predict_features(judge, images, batch_size)[1]


def _accuracy(judge: Judge, images: torch.Tensor, labels: torch.Tensor) -> tuple[float, dict[str, Optional[float]]]:
    """(top-1 accuracy, per-class accuracy by class name; None for a class absent from `labels`)."""
    hit = (_logits(judge, images, EVAL_BATCH).argmax(1) == labels).double()
    hits = torch.zeros(NUM_CLASSES, dtype=torch.float64, device=hit.device).index_add_(0, labels, hit).tolist()
    counts = torch.bincount(labels, minlength=NUM_CLASSES).tolist()
    per_class = {name: (h / n if n else None) for name, h, n in zip(CLASS_NAMES, hits, counts)}
    return hit.mean().item(), per_class


def _epoch_size(n: int, cfg: OcrConfig, epoch: int) -> int:
    """Images epoch `epoch` (from 1) trains on: all n in the first, then the hard and random shares of them (at
    least one batch)."""
    if epoch == 1 or cfg.hard_share + cfg.random_share >= 1:
        return n
    return min(n, max(cfg.batch_size, int(n * cfg.hard_share) + int(n * cfg.random_share)))


def _epoch_order(n: int, cfg: OcrConfig, epoch: int, hardness: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Shuffled indices of the images epoch `epoch` trains on, on hardness's device: all n in the first epoch
    (and in every epoch when the shares cover them all); later, the hard_share with the highest `hardness`
    (each image's loss over its batch's mean loss when last trained on) plus random_share of the others."""
    shuffle = lambda k: torch.randperm(k, generator=gen, device=gen.device).to(hardness.device)  # noqa: E731
    size = _epoch_size(n, cfg, epoch)
    if size == n:
        return shuffle(n)
    at_random = min(int(n * cfg.random_share), size)
    hard = torch.topk(hardness, size - at_random).indices
    others = torch.ones(n, dtype=torch.bool, device=hardness.device)
    others[hard] = False
    others = others.nonzero().squeeze(1)
    chosen = torch.cat([hard, others[shuffle(len(others))[:at_random]]])
    return chosen[shuffle(len(chosen))]


def _train_epoch(judge: Judge, opt: torch.optim.Optimizer, sched: Any, images: torch.Tensor, labels: torch.Tensor,
                 order: torch.Tensor, hardness: torch.Tensor, cfg: OcrConfig, aug: Optional[AugmentConfig],
                 gen: torch.Generator, bar: tqdm) -> float:
    """One pass over images[order] (drops the ragged last batch), writing each image's loss over its batch's mean
    into `hardness`; returns the mean loss."""
    judge.train()
    steps, total = len(order) // cfg.batch_size, torch.zeros((), device=images.device)
    for i in range(steps):
        idx = order[i * cfg.batch_size:(i + 1) * cfg.batch_size]
        x = to_model_range(images[idx])
        if aug is not None:
            x = augment_batch(x, aug, gen)
        x = _channels_last(x)
        with autocast(images.device, cfg.precision):  # the forward only; backward follows its dtypes
            each = F.cross_entropy(judge(x), labels[idx], label_smoothing=cfg.label_smoothing, reduction="none")
            loss = each.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        hardness[idx] = (each / loss).detach().float()
        total += loss.detach()
        if i % 20 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
        bar.update(1)
    return total.item() / steps


def _optimizer(judge: Judge, cfg: OcrConfig, total_steps: int) -> tuple[torch.optim.Optimizer, Any]:
    """SGD with Nesterov momentum, weight decay on conv/linear weights only, and the one-cycle LR."""
    decay = [p for p in judge.parameters() if p.ndim > 1]
    rest = [p for p in judge.parameters() if p.ndim <= 1]  # BatchNorm and biases
    opt = torch.optim.SGD([{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0.0}],
                          lr=cfg.lr, momentum=0.9, nesterov=True)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: one_cycle(step, total_steps, cfg.warmup))
    return opt, sched


def _on(device: torch.device, array: np.ndarray) -> torch.Tensor:
    """A numpy array as a tensor on `device` (the whole split stays there: 78k x 32 x 32 uint8 is 80 MB)."""
    return torch.from_numpy(np.ascontiguousarray(array)).to(device)


def train_judge(cfg: OcrConfig, augment: AugmentConfig, train_images: np.ndarray, train_labels: np.ndarray,
                test_images: np.ndarray, test_labels: np.ndarray, log_fn: Optional[LogFn] = None,
                progress: bool = True, num_classes: int = NUM_CLASSES) -> tuple[Judge, dict]:
    """Train on uint8 (N, S, S) train images, test after the last epoch; returns (judge in eval mode on CPU, metrics).

    num_classes < 46 trains the same network on labels in [0, num_classes) (the two-sample test uses 2).
    """
    _check_split(train_images, train_labels, "train_ocr: train split")
    _check_split(test_images, test_labels, "train_ocr: test split")
    if len(train_images) < cfg.batch_size:
        raise DevagenError(f"params.yaml: train_ocr.batch_size: {cfg.batch_size} exceeds the "
                           f"{len(train_images)} train images")
    start, device = time.perf_counter(), pick_device()
    torch.manual_seed(cfg.seed)  # initial weights and dropout masks
    judge = build_judge(cfg, train_images.shape[-1], num_classes).to(device, memory_format=torch.channels_last)
    gen = torch.Generator(device=device).manual_seed(cfg.seed)  # shuffling and augmentation
    x_train, y_train = _on(device, train_images), _on(device, train_labels.astype(np.int64))
    x_test, y_test = _on(device, test_images), _on(device, test_labels.astype(np.int64))
    n = len(train_images)
    steps = sum(_epoch_size(n, cfg, epoch) // cfg.batch_size for epoch in range(1, cfg.epochs + 1))
    opt, sched = _optimizer(judge, cfg, steps)
    aug = augment if cfg.augment and augment.enabled else None
    hardness = torch.ones(n, device=device)
    with tqdm(total=steps, desc="train_ocr", unit="step", disable=not progress) as bar:
        for epoch in range(1, cfg.epochs + 1):
            order = _epoch_order(n, cfg, epoch, hardness, gen)
            row = {"train_loss": _train_epoch(judge, opt, sched, x_train, y_train, order, hardness, cfg, aug, gen, bar),
                   "lr": sched.get_last_lr()[0], "images": len(order)}
            if epoch == cfg.epochs:  # tested once, at the end: a pass over 13.8k test images costs ~4 s on 2 cores
                acc, per_class = _accuracy(judge, x_test, y_test)
                row["test_accuracy"] = acc
                bar.set_postfix(loss=f"{row['train_loss']:.3f}", test_acc=f"{acc:.4f}")
            if log_fn is not None:
                log_fn(row, epoch)
    metrics = {"test_accuracy": acc, "per_class_accuracy": per_class, "train_seconds": time.perf_counter() - start,
               "epochs": cfg.epochs, "images_trained": steps * cfg.batch_size,
               "params": sum(p.numel() for p in judge.parameters()), "device": str(device),
               "precision": precision_name(device, cfg.precision)}
    return judge.cpu().eval(), metrics  # channels-last weights, like its input (see _read)


def save_judge(judge: Judge, directory: Path, cfg: OcrConfig, image_size: int) -> None:
    """Write judge.safetensors (weights) + judge.json (architecture and the config that trained it)."""
    from safetensors.torch import save_file

    if image_size != judge.image_size:
        raise DevagenError(f"prepare.image_size is {image_size} but the judge was trained on {judge.image_size}x"
                           f"{judge.image_size} images; run `dvc repro prepare train_ocr` so they agree")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in judge.state_dict().items()}
    save_file(state, str(directory / WEIGHTS_FILE))
    arch = {"width": judge.width, "image_size": image_size, "dropout": judge.dropout, "num_classes": judge.num_classes,
            "pool_first": judge.pool_first}
    write_json({"format": FORMAT_VERSION, "architecture": arch, "train_ocr": dataclasses.asdict(cfg)},
               directory / CONFIG_FILE)
    write_manifest(directory)  # last: load_judge checks the files against it


def load_judge(directory: Path, stage: str = "train_ocr") -> Judge:
    """Read a network written by save_judge, in eval mode on CPU; missing or corrupt: says which stage to rerun."""
    from safetensors.torch import load_file

    directory = Path(directory)
    fix = f"run `dvc repro {stage}`"
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        if not (directory / name).is_file():
            raise DevagenError(f"{directory}: no trained network here ({name} missing); {fix}")
    check_manifest(directory, stage)
    try:
        arch = read_json(directory / CONFIG_FILE)["architecture"]
        judge = Judge(int(arch["width"]), int(arch["image_size"]), float(arch["dropout"]), int(arch["num_classes"]),
                      bool(arch.get("pool_first", False)))  # judges saved before pool_first existed normalise first
        judge.load_state_dict(load_file(str(directory / WEIGHTS_FILE)))
    except Exception as exc:  # json, KeyError, safetensors' own error type, shape mismatches
        raise damaged(directory, f"the network does not load: {one_line(exc)}", stage) from None
    return judge.to(memory_format=torch.channels_last).eval()  # the layout _read feeds it
