"""Pictures people look at: labelled glyph grids, rows of images, GIFs. Pure PIL + numpy."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..core.errors import DevagenError

BACKGROUND = 255  # figures are drawn on white; glyph cells keep DHCD's white-on-black
TEXT = 0


def font_file() -> Path:
    """The Noto Sans Devanagari .ttf shipped by the fontpkg-noto-sans-devanagari package."""
    import fontpkg_noto_sans_devanagari as pkg

    fonts = sorted((Path(pkg.ROOT) / "files").glob("*.ttf"))
    if not fonts:
        raise DevagenError("fontpkg-noto-sans-devanagari has no .ttf file; reinstall it (pip install -e .)")
    return fonts[0]


@lru_cache(maxsize=8)
def glyph_font(size: int) -> ImageFont.FreeTypeFont:
    """Noto Sans Devanagari (shipped by the fontpkg-noto-sans-devanagari package) at `size` px."""
    # Layout engine RAQM shapes conjuncts (क्ष त्र ज्ञ) correctly; Pillow wheels ship it.
    engine = ImageFont.Layout.RAQM if ImageFont.core.HAVE_RAQM else ImageFont.Layout.BASIC
    return ImageFont.truetype(str(font_file()), size, layout_engine=engine)


def upscale(image: np.ndarray, scale: int) -> Image.Image:
    """uint8 (H, W) -> PIL 'L' image scaled by an integer with nearest-neighbour (crisp strokes)."""
    img = Image.fromarray(np.ascontiguousarray(image), mode="L")
    return img.resize((img.width * scale, img.height * scale), Image.NEAREST) if scale > 1 else img


def image_row(images: np.ndarray, scale: int = 2, gap: int = 2) -> Image.Image:
    """uint8 (N, H, W) -> one horizontal strip, `gap` white pixels between cells."""
    n, h, w = images.shape
    strip = Image.new("L", (n * (w * scale + gap) - gap if n else 1, h * scale), BACKGROUND)
    for i, img in enumerate(images):
        strip.paste(upscale(img, scale), (i * (w * scale + gap), 0))
    return strip


def labelled_rows(rows: Sequence[tuple[str, np.ndarray]], scale: int = 2, gap: int = 2,
                  label_width: int | None = None, title: str | None = None) -> Image.Image:
    """One row per (label, uint8 (N, H, W) images), the label (e.g. a glyph) drawn at the left."""
    strips = [image_row(images, scale, gap) for _, images in rows]
    cell_h = max(s.height for s in strips)
    font = glyph_font(max(12, int(cell_h * 0.7)))
    label_width = label_width or max(int(font.getlength(label)) for label, _ in rows) + 12
    title_h = int(font.size * 1.6) if title else 0
    width = label_width + max(s.width for s in strips) + gap
    canvas = Image.new("L", (width, title_h + len(rows) * (cell_h + gap)), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((gap, 2), title, fill=TEXT, font=font)
    for r, ((label, _), strip) in enumerate(zip(rows, strips)):
        y = title_h + r * (cell_h + gap)
        draw.text((4, y + cell_h // 2), label, fill=TEXT, font=font, anchor="lm")
        canvas.paste(strip, (label_width, y))
    return canvas


def captioned_row(images: np.ndarray, captions: Sequence[str], scale: int = 4, title: str | None = None) -> Image.Image:
    """uint8 (N, H, W) side by side, each with a caption underneath (e.g. 'steps: 20')."""
    n, h, w = images.shape
    font = glyph_font(max(12, h * scale // 6))
    cap_h = int(font.size * 1.5)
    title_h = cap_h if title else 0
    cell_w = max(w * scale, max(int(font.getlength(c)) for c in captions) + 8)
    canvas = Image.new("L", (n * cell_w, title_h + h * scale + cap_h), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((canvas.width // 2, title_h // 2), title, fill=TEXT, font=font, anchor="mm")
    for i, (img, cap) in enumerate(zip(images, captions)):
        x = i * cell_w + (cell_w - w * scale) // 2
        canvas.paste(upscale(img, scale), (x, title_h))
        draw.text((i * cell_w + cell_w // 2, title_h + h * scale + cap_h // 2), cap, fill=TEXT, font=font, anchor="mm")
    return canvas


def save_image(image: Image.Image, path: Path) -> None:
    """Save a PNG atomically (temp name, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(".tmp-" + path.name)
    image.save(tmp, format="PNG")
    tmp.replace(path)


def save_gif(frames: Sequence[np.ndarray], path: Path, scale: int = 8, duration_ms: int = 120,
             hold_last_ms: int = 1200) -> None:
    """uint8 (H, W) frames -> looping GIF, nearest-neighbour upscaled; the last frame is held longer."""
    if not frames:
        raise DevagenError(f"{path}: no frames to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    images = [upscale(f, scale) for f in frames]
    durations = [duration_ms] * (len(images) - 1) + [hold_last_ms]
    tmp = path.with_name(".tmp-" + path.name)
    images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=durations, loop=0)
    tmp.replace(path)


def random_per_class(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Indices of up to `per_class` images of each label (N,), drawn at random with a seeded RNG, grouped by
    label in ascending order. DHCD's file order is not random in style (each class starts with thin pens)."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    picks = [rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in np.unique(labels)]
    return np.concatenate(picks).astype(np.int64) if picks else np.zeros(0, np.int64)


def class_rows(images: np.ndarray, labels: np.ndarray, names: Sequence[str], per_class: int,
               seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """`per_class` random (seeded) images of each class as (name, uint8 (n, H, W)) rows, in class order."""
    pick = random_per_class(labels, per_class, seed)
    return [(name, images[pick[labels[pick] == c]]) for c, name in enumerate(names)]
