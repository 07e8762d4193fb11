"""`--text` parsing (all 46 glyphs, conjuncts first, clear rejections) and the word figure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from devagen.core.classes import GLYPH_TO_INDEX, NUM_CLASSES, glyphs
from devagen.core.config import SampleConfig
from devagen.core.errors import DevagenError
from devagen.sampling.pipeline import load_pipeline
from devagen.sampling.text import generate_text, parse_text, text_figure


@pytest.mark.parametrize("index", range(NUM_CLASSES))
def test_every_glyph_maps_to_its_class(index: int) -> None:
    assert parse_text(glyphs()[index]) == [index]


def test_all_glyphs_in_one_string_with_spaces() -> None:
    slots = parse_text(" ".join(glyphs()))
    assert slots[::2] == list(range(NUM_CLASSES)) and set(slots[1::2]) == {None}


def test_conjuncts_match_before_their_first_letter() -> None:
    ka, ssa, ksha = GLYPH_TO_INDEX["क"], GLYPH_TO_INDEX["ष"], GLYPH_TO_INDEX["क्ष"]
    assert parse_text("क्षक") == [ksha, ka]
    assert parse_text("कष") == [ka, ssa]
    assert parse_text("त्रज्ञ") == [GLYPH_TO_INDEX["त्र"], GLYPH_TO_INDEX["ज्ञ"]]


def test_ascii_digits_and_spaces() -> None:
    assert parse_text("1 २") == [GLYPH_TO_INDEX["१"], None, GLYPH_TO_INDEX["२"]]
    assert parse_text("09") == [GLYPH_TO_INDEX["०"], GLYPH_TO_INDEX["९"]]


@pytest.mark.parametrize("text,bad", [("a", "a"), ("कि", "ि"), ("क्", "्"), ("क़", "़"), ("अ", "अ")])
def test_unsupported_characters_are_named_with_the_supported_list(text: str, bad: str) -> None:
    with pytest.raises(DevagenError) as info:
        parse_text(text)
    message = str(info.value)
    assert repr(bad) in message and f"U+{ord(bad):04X}" in message
    assert "क्ष" in message and "९" in message and "0-9" in message


def test_text_figure_leaves_a_cell_per_space() -> None:
    images = np.full((2, 16, 16), 200, np.uint8)
    figure = text_figure(images, [0, None, 1], scale=4)
    assert figure.size == (3 * 64, 64)
    pixels = np.asarray(figure)
    assert (pixels[:, 64:128] == 0).all() and (pixels[:, :64] == 200).all()
    with pytest.raises(ValueError):
        text_figure(images, [0])


def test_generate_text(tiny_model_dir: Path) -> None:
    figure = generate_text(load_pipeline(tiny_model_dir), "क ख१", SampleConfig(seed=0, steps=1, guidance_scale=2.0))
    assert figure.size == (4 * 16 * 4, 16 * 4)


def test_generate_text_refuses_unconditional_model(tiny_uncond_model_dir: Path) -> None:
    with pytest.raises(DevagenError, match="cannot be told which character"):
        generate_text(load_pipeline(tiny_uncond_model_dir), "क", SampleConfig(steps=1))
    with pytest.raises(DevagenError, match="no characters"):
        generate_text(load_pipeline(tiny_uncond_model_dir), "  ", SampleConfig(steps=1))
