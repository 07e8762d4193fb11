"""The report's charts drawn from the stages' results: loss curve, per-class accuracy, drawn classes."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from PIL import Image

from ..core import paths
from ..core.classes import CLASS_GLYPHS, CLASS_NAMES
from . import plots
from .figures import save_image
from .inputs import per_class_values, read_metrics, read_train_log
from .sentences import as_float


def _smooth(values: Sequence[float], window: int) -> list[float]:
    """Centred moving average (no lag); the window shrinks at the ends so the length is kept."""
    half = window // 2
    return [sum(values[max(0, i - half):i + half + 1]) / len(values[max(0, i - half):i + half + 1])
            for i in range(len(values))]


def loss_figure(log: Sequence[Mapping[str, Any]]) -> Optional[Image.Image]:
    """Loss (log y, plus a moving average when there are 20+ points) above the learning rate, or None without data."""
    rows = [(as_float(r.get("step")), as_float(r.get("loss")), as_float(r.get("lr"))) for r in log]
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
