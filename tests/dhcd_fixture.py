"""Build tiny DHCD-shaped zips for tests: the official layout, synthetic glyph images, no real data."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw

from devagen.core.classes import CLASS_NAMES, glyphs
from devagen.data.archive import ROOT
from devagen.report.figures import glyph_font


def glyph_image(index: int, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """uint8 (size, size): the class glyph drawn white on black at a jittered position, 2 px border."""
    img = Image.new("L", (size, size), 0)
    font = glyph_font(int(rng.integers(18, 23)))
    dx, dy = rng.integers(-2, 3, size=2)
    ImageDraw.Draw(img).text((size / 2 + dx, size / 2 + dy), glyphs()[index], fill=255, font=font, anchor="mm")
    arr = np.asarray(img).copy()
    arr[:2], arr[-2:], arr[:, :2], arr[:, -2:] = 0, 0, 0, 0
    return arr


def png_bytes(arr: np.ndarray, mode: str = "L") -> bytes:
    """Encode an array as PNG bytes (mode 'RGB' converts a gray array to RGB)."""
    buf = io.BytesIO()
    Image.fromarray(arr).convert(mode).save(buf, format="PNG")
    return buf.getvalue()


def entries(train: int = 3, test: int = 2, seed: int = 0) -> dict[str, bytes]:
    """Archive member name -> PNG bytes for every class and split (unique file names across splits)."""
    rng = np.random.default_rng(seed)
    out: dict[str, bytes] = {}
    uid = 1
    for split, n in (("Train", train), ("Test", test)):
        for c, name in enumerate(CLASS_NAMES):
            for _ in range(n):
                payload = png_bytes(glyph_image(c, rng))
                while payload in out.values():  # keep the set duplicate-free; tests add duplicates on purpose
                    payload = png_bytes(glyph_image(c, rng))
                out[f"{ROOT}/{split}/{name}/{uid}.png"] = payload
                uid += 1
    return out


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    """Write members (name -> bytes) as a deflate zip."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, payload in members.items():
            zf.writestr(name, payload)
    return path


def make_archive(path: Path, train: int = 3, test: int = 2, seed: int = 0,
                 mutate: Callable[[dict[str, bytes]], None] | None = None) -> Path:
    """A tiny DHCD-shaped zip; `mutate` edits the member dict first (to build bad archives)."""
    members = entries(train, test, seed)
    if mutate:
        mutate(members)
    return write_zip(path, members)
