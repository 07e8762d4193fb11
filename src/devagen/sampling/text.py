"""`devagen generate --text`: Devanagari text -> class indices -> one generated image per character.

Supported: the 46 DHCD glyphs (36 consonants including the conjuncts क्ष त्र ज्ञ, digits ० … ९),
ASCII digits 0-9 (read as ० … ९) and whitespace (each whitespace character leaves one blank cell).
DHCD has no vowel signs, so text like कि is rejected rather than drawn without its sign.
"""

from __future__ import annotations

import unicodedata
from typing import Optional, Sequence

import numpy as np
import torch
from PIL import Image

from ..core.classes import GLYPH_TO_INDEX, glyphs
from ..core.config import SampleConfig
from ..core.errors import DevagenError
from ..report.figures import image_row
from .generate import generate, pen_arrays
from .pipeline import DevagenPipeline

ASCII_DIGITS: dict[str, int] = {str(d): GLYPH_TO_INDEX[chr(0x0966 + d)] for d in range(10)}
# Longest first, so a conjunct (3 code points: consonant + virama + consonant) wins over its first letter.
TOKENS: tuple[tuple[str, int], ...] = tuple(sorted({**GLYPH_TO_INDEX, **ASCII_DIGITS}.items(),
                                                   key=lambda item: -len(item[0])))


def supported_characters() -> str:
    """One line listing everything parse_text accepts."""
    return f"{' '.join(glyphs())}, ASCII digits 0-9 and spaces"


def _unsupported(char: str, position: int) -> DevagenError:
    """The error for one character parse_text cannot draw."""
    name = unicodedata.name(char, "unnamed")
    hint = ""
    if unicodedata.category(char).startswith("M"):
        hint = " (DHCD has no vowel signs or marks; its only conjuncts are क्ष त्र ज्ञ)"
    return DevagenError(f"--text: character {char!r} (U+{ord(char):04X} {name}) at position {position} "
                        f"cannot be drawn{hint}; supported: {supported_characters()}")


def parse_text(text: str) -> list[Optional[int]]:
    """Text -> class index per drawn character in order, None per whitespace character (a gap)."""
    text = unicodedata.normalize("NFC", text)
    slots: list[Optional[int]] = []
    i = 0
    while i < len(text):
        if text[i].isspace():
            slots.append(None)
            i += 1
            continue
        match = next(((token, index) for token, index in TOKENS if text.startswith(token, i)), None)
        if match is None:
            raise _unsupported(text[i], i)
        slots.append(match[1])
        i += len(match[0])
    return slots


def text_figure(images: np.ndarray, slots: Sequence[Optional[int]], scale: int = 4) -> Image.Image:
    """uint8 (K, H, W) images, one per non-None slot, laid in a row with an empty black cell per gap."""
    wanted = sum(slot is not None for slot in slots)
    if len(images) != wanted:
        raise ValueError(f"{len(images)} images for {wanted} characters")
    blank = np.zeros(images.shape[1:], np.uint8)
    drawn = iter(images)
    cells = np.stack([blank if slot is None else next(drawn) for slot in slots])
    return image_row(cells, scale=scale, gap=0)


def word_pens(pipeline: DevagenPipeline, slots: Sequence[Optional[int]], seed: int, stroke: Optional[float] = None,
              slant: Optional[float] = None) -> dict[str, np.ndarray]:
    """One pen per word (characters between gaps), so a word is written in one hand: stroke and slant float
    (K,) for the K drawn characters. Asked values hold for every word; the rest is drawn per word from
    real training images (seeded by `seed` and the word's position)."""
    words, word, gap = [], 0, False  # the word index of each drawn character
    for slot in slots:
        if slot is None:
            gap = True
            continue
        word += 1 if gap and words else 0
        words.append(word)
        gap = False
    drawn = {w: pipeline.pen.draw(None, torch.Generator().manual_seed(seed * 7919 + w)) for w in set(words)}
    return {"stroke": np.array([stroke if stroke is not None else drawn[w][0] for w in words]),
            "slant": np.array([slant if slant is not None else drawn[w][1] for w in words])}


def generate_text(pipeline: DevagenPipeline, text: str, cfg: SampleConfig = SampleConfig(),
                  scale: int = 4, stroke: Optional[float] = None, slant: Optional[float] = None,
                  slant_shear: bool = True) -> Image.Image:
    """Draw `text` with a conditional model: one row, a generated image per character, gaps for spaces,
    each cell `scale` times the model's resolution.

    cfg: seed, steps and guidance. An unconditional model raises DevagenError (from the pipeline).
    Style-conditioned models write each word with one pen (word_pens); stroke/slant fix it for all words.
    slant_shear: shear each character to its word's slant (sampling.generate), so a word leans as one.
    """
    slots = parse_text(text)
    labels = np.array([slot for slot in slots if slot is not None], dtype=np.int64)
    if len(labels) == 0:
        raise DevagenError(f"--text: {text!r} has no characters to draw; supported: {supported_characters()}")
    if pipeline.style_conditioned:
        pens = word_pens(pipeline, slots, cfg.seed, stroke, slant)
    else:
        pens = pen_arrays(len(labels), stroke, slant)  # the pipeline refuses them for this model
    images = generate(pipeline, labels, len(labels), cfg, progress=False, slant_shear=slant_shear, **pens)
    return text_figure(images, slots, scale=scale)
