"""Line and bar charts for the report, drawn with PIL alone (matplotlib is not a dependency).

Charts are drawn at SUPERSAMPLE times their size and shrunk with a Lanczos filter, which gives
smooth lines and text without an anti-aliasing renderer. Axis limits snap outwards to round ticks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping, Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .figures import glyph_font

SUPERSAMPLE = 2
PALETTE = ((31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14))
INK, MUTED, GRID, WHITE = (40, 40, 40), (150, 150, 150), (228, 228, 228), (255, 255, 255)
TEXT_PX, TITLE_PX, PAD = 13, 15, 8  # font sizes and spacing in output pixels


def nice_step(span: float, max_ticks: int = 6) -> float:
    """Smallest 1, 2 or 5 x 10^k step that cuts `span` (> 0) into at most `max_ticks` intervals."""
    raw = span / max_ticks
    base = 10.0 ** math.floor(math.log10(raw))
    return next(m * base for m in (1, 2, 5, 10) if m * base >= raw * (1 - 1e-9))


def linear_ticks(lo: float, hi: float, max_ticks: int = 6) -> list[float]:
    """Round ticks from one <= lo to one >= hi; a flat range is widened first."""
    if hi <= lo:
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    step = nice_step(hi - lo, max_ticks)
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    return [i * step for i in range(first, last + 1)]


def log_ticks(lo: float, hi: float) -> list[float]:
    """Ticks at 1, 2, 5 x 10^k (only 10^k past two decades) from one <= lo to one >= hi; lo > 0."""
    if hi <= lo:
        lo, hi = lo / 2, hi * 2
    mantissas = (1,) if math.log10(hi / lo) > 2 else (1, 2, 5)
    k0, k1 = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    cands = sorted(m * 10.0 ** k for k in range(k0, k1 + 1) for m in mantissas)
    start = max(i for i, c in enumerate(cands) if c <= lo * (1 + 1e-9))
    end = min(i for i, c in enumerate(cands) if c >= hi * (1 - 1e-9))
    return cands[start:end + 1]


def format_tick(value: float) -> str:
    """Short tick label: '0', '0.25', '2e-05', '1500', '20k'."""
    if value == 0:
        return "0"
    if abs(value) >= 10_000 and value % 1000 == 0:
        return f"{value / 1000:g}k"
    return f"{value:.6g}"


def _mapper(lo: float, hi: float, p0: float, p1: float, log: bool) -> Callable[[float], float]:
    """Data value -> pixel coordinate, p0 at lo and p1 at hi (log10 spacing when `log`)."""
    f = math.log10 if log else float
    a, b = f(lo), f(hi)
    return lambda v: p0 + (f(v) - a) / (b - a) * (p1 - p0)


@dataclass
class _Chart:
    """A supersampled canvas and the plot box (left, top, right, bottom) inside it."""

    image: Image.Image
    draw: ImageDraw.ImageDraw
    box: tuple[int, int, int, int]
    font: ImageFont.FreeTypeFont


def _chart(size: tuple[int, int], title: str, ylabel: str, ytick_labels: Sequence[str],
           bottom: int, legend: Sequence[tuple[str, tuple[int, int, int]]]) -> _Chart:
    """White canvas with title, legend row under it and a rotated y label; `bottom` = output px below the box."""
    s = SUPERSAMPLE
    font, title_font = glyph_font(TEXT_PX * s), glyph_font(TITLE_PX * s)
    image = Image.new("RGB", (size[0] * s, size[1] * s), WHITE)
    draw = ImageDraw.Draw(image)
    draw.text((PAD * s, PAD * s), title, fill=INK, font=title_font)
    top = (PAD * 2 + TITLE_PX) * s + (int(TEXT_PX * 1.6) * s if legend else 0) + PAD * s
    x = PAD * s
    for name, color in legend:
        y = top - PAD * s - TEXT_PX * s // 2 - 2 * s
        draw.line([(x, y), (x + 22 * s, y)], fill=color, width=3 * s)
        draw.text((x + 28 * s, y), name, fill=INK, font=font, anchor="lm")
        x += 28 * s + int(font.getlength(name)) + 18 * s
    label = Image.new("RGB", (int(font.getlength(ylabel)) + 4 * s, int(TEXT_PX * 1.5) * s), WHITE)
    ImageDraw.Draw(label).text((2 * s, 0), ylabel, fill=INK, font=font)
    label = label.rotate(90, expand=True)
    left = PAD * s + label.width + PAD * s + max((int(font.getlength(t)) for t in ytick_labels), default=0) + PAD * s
    box = (left, top, image.width - PAD * 2 * s, image.height - bottom * s)
    image.paste(label, (PAD * s, max(top, (box[1] + box[3] - label.height) // 2)))
    return _Chart(image, draw, box, font)


def _y_grid(chart: _Chart, ticks: Sequence[float], labels: Sequence[str], to_y: Callable[[float], float]) -> None:
    """Horizontal grid lines with their labels right-aligned left of the box."""
    left, _, right, _ = chart.box
    for tick, text in zip(ticks, labels):
        y = to_y(tick)
        chart.draw.line([(left, y), (right, y)], fill=GRID, width=SUPERSAMPLE)
        chart.draw.text((left - PAD * SUPERSAMPLE, y), text, fill=INK, font=chart.font, anchor="rm")


def _finish(chart: _Chart) -> Image.Image:
    """Frame the box and shrink the supersampled canvas to output size."""
    chart.draw.rectangle(chart.box, outline=INK, width=SUPERSAMPLE)
    w, h = chart.image.size
    return chart.image.resize((w // SUPERSAMPLE, h // SUPERSAMPLE), Image.LANCZOS)


def _finite_points(xs: Sequence[float], ys: Sequence[Optional[float]], log_y: bool) -> list[tuple[float, float]]:
    """(x, y) pairs with finite values (and y > 0 on a log axis)."""
    pts = [(float(x), float(y)) for x, y in zip(xs, ys) if y is not None]
    return [(x, y) for x, y in pts if math.isfinite(x) and math.isfinite(y) and (y > 0 or not log_y)]


def line_plot(xs: Sequence[float], series: Mapping[str, Sequence[Optional[float]]], title: str,
              xlabel: str, ylabel: str, log_y: bool = False, size: tuple[int, int] = (640, 320)) -> Image.Image:
    """One line per series over shared xs, numbered round ticks, legend under the title -> RGB image of `size`."""
    points = {name: _finite_points(xs, ys, log_y) for name, ys in series.items()}
    all_x = [x for pts in points.values() for x, _ in pts] or [0.0, 1.0]
    all_y = [y for pts in points.values() for _, y in pts] or ([1.0, 10.0] if log_y else [0.0, 1.0])
    yt = log_ticks(min(all_y), max(all_y)) if log_y else linear_ticks(min(all_y), max(all_y), 5)
    xt = linear_ticks(min(all_x), max(all_x), 6)
    colors = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(series)}
    chart = _chart(size, title, ylabel, [format_tick(t) for t in yt], bottom=PAD * 2 + int(TEXT_PX * 2.8),
                   legend=list(colors.items()))
    left, top, right, bottom = chart.box
    to_x = _mapper(xt[0], xt[-1], left, right, False)
    to_y = _mapper(yt[0], yt[-1], bottom, top, log_y)
    _y_grid(chart, yt, [format_tick(t) for t in yt], to_y)
    s = SUPERSAMPLE
    for tick in xt:
        chart.draw.line([(to_x(tick), bottom), (to_x(tick), bottom + 4 * s)], fill=INK, width=s)
        chart.draw.text((to_x(tick), bottom + 6 * s), format_tick(tick), fill=INK, font=chart.font, anchor="mt")
    chart.draw.text(((left + right) // 2, chart.image.height - PAD * s), xlabel, fill=INK, font=chart.font, anchor="mb")
    for name, pts in points.items():
        xy = [(to_x(x), to_y(y)) for x, y in pts]
        if len(xy) > 1:
            chart.draw.line(xy, fill=colors[name], width=3 * s // 2 + 1, joint="curve")
        elif xy:
            (x, y), r = xy[0], 3 * s
            chart.draw.ellipse([x - r, y - r, x + r, y + r], fill=colors[name])
    return _finish(chart)


def histogram_plot(values: Mapping[str, np.ndarray], title: str, xlabel: str, bins: int = 24,
                   size: tuple[int, int] = (480, 280)) -> Image.Image:
    """Share of each series' values (NaNs dropped) per bin of one shared range (the pooled 0.5th-99.5th
    percentiles; values outside are left out), drawn as overlaid lines through the bin centres -> RGB image."""
    clean = {name: v[~np.isnan(v)] for name, v in values.items()}
    pooled = np.concatenate(list(clean.values()) + [np.zeros(0)])
    lo, hi = (np.percentile(pooled, [0.5, 99.5]) if len(pooled) else (0.0, 1.0))
    edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)
    shares = {name: np.histogram(v, edges)[0] / max(len(v), 1) for name, v in clean.items()}
    centres = (edges[:-1] + edges[1:]) / 2
    return line_plot(centres.tolist(), {k: v.tolist() for k, v in shares.items()}, title, xlabel,
                     "share of images", size=size)


def _mean_line(chart: _Chart, values: Sequence[Optional[float]], to_y: Callable[[float], float]) -> None:
    """Dashed line at the mean of the known values."""
    known = [v for v in values if v is not None]
    if not known:
        return
    y, (left, _, right, _) = to_y(sum(known) / len(known)), chart.box
    dash = 8 * SUPERSAMPLE
    for x in range(left, right, 2 * dash):
        chart.draw.line([(x, y), (min(x + dash, right), y)], fill=PALETTE[1], width=SUPERSAMPLE)


def bar_plot(labels: Sequence[str], values: Sequence[Optional[float]], title: str,
             reference: Optional[Sequence[Optional[float]]] = None, ylabel: str = "accuracy",
             height: int = 300, ymax: float = 1.0) -> Image.Image:
    """One bar per label (glyphs allowed) for values in [0, ymax] (None = no data, drawn as a grey ×);
    optional `reference` values as black ticks across the bars; a dashed line at the mean."""
    if len(labels) != len(values) or (reference is not None and len(reference) != len(values)):
        raise ValueError(f"bar_plot: {len(labels)} labels, {len(values)} values, reference {len(reference or [])}")
    s = SUPERSAMPLE
    glyph = glyph_font(int(TEXT_PX * 1.3) * s)
    slot = max(18, max((int(glyph.getlength(t)) // s for t in labels), default=0) + 6)
    known = [v for v in values if v is not None]
    mean = f"mean {100 * sum(known) / len(known):.1f} %" if known else "mean n/a"
    legend = [("generated", PALETTE[0]), (mean, PALETTE[1])] + ([("real test images", INK)] if reference else [])
    ticks = [i / 5 for i in range(6)] if ymax == 1.0 else linear_ticks(0.0, ymax, 5)
    tick_labels = [f"{100 * t:.3g} %" for t in ticks]
    width = 100 + len(labels) * slot
    chart = _chart((width, height), title, ylabel, tick_labels, bottom=PAD * 2 + int(TEXT_PX * 1.3 * 1.6),
                   legend=legend)
    left, top, right, bottom = chart.box
    to_y = _mapper(0.0, ticks[-1], bottom, top, False)
    _y_grid(chart, ticks, tick_labels, to_y)
    step = (right - left) / max(len(labels), 1)
    for i, (label, value) in enumerate(zip(labels, values)):
        x0, x1 = left + i * step + step * 0.15, left + (i + 1) * step - step * 0.15
        if value is None:
            chart.draw.text(((x0 + x1) / 2, bottom - 4 * s), "×", fill=MUTED, font=glyph, anchor="mb")
        else:
            chart.draw.rectangle([x0, to_y(min(max(value, 0.0), ticks[-1])), x1, bottom], fill=PALETTE[0])
        ref = reference[i] if reference is not None else None
        if ref is not None:
            y = to_y(min(max(ref, 0.0), ticks[-1]))
            chart.draw.line([(x0 - step * 0.1, y), (x1 + step * 0.1, y)], fill=INK, width=2 * s)
        chart.draw.text(((x0 + x1) / 2, bottom + 4 * s), label, fill=INK, font=glyph, anchor="mt")
    _mean_line(chart, values, to_y)
    return _finish(chart)


def stack_vertical(images: Sequence[Image.Image], gap: int = 8, horizontal: bool = False) -> Image.Image:
    """Images one above the other on white, left-aligned (`horizontal`: side by side, top-aligned),
    `gap` px apart -> RGB image."""
    sizes = [(im.width, im.height) if not horizontal else (im.height, im.width) for im in images]
    across, along = max(a for a, _ in sizes), sum(b for _, b in sizes) + gap * (len(images) - 1)
    canvas = Image.new("RGB", (along, across) if horizontal else (across, along), WHITE)
    offset = 0
    for im, (_, extent) in zip(images, sizes):
        canvas.paste(im.convert("RGB"), (offset, 0) if horizontal else (0, offset))
        offset += extent + gap
    return canvas


def text_banner(text: str, width: int) -> Image.Image:
    """A white strip `width` px wide holding one line of chart-title text -> RGB image."""
    font = glyph_font(TITLE_PX)
    banner = Image.new("RGB", (width, int(TITLE_PX * 1.8)), WHITE)
    ImageDraw.Draw(banner).text((PAD, banner.height // 2), text, fill=INK, font=font, anchor="lm")
    return banner
