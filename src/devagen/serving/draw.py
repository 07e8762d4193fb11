"""Requests -> images for anyone serving a trained model (the MLflow pyfunc model in pyfunc_model.py).

A request is one row: `text` (Devanagari characters, drawn in a row with gaps for spaces), or
`label` (a class index 0-45, a DHCD folder name or a glyph), or neither (an unconditional sample).
"""

from __future__ import annotations

import base64
import io
from typing import Any, Mapping, Optional, Sequence

import numpy as np
from PIL import Image

from ..core.classes import NUM_CLASSES
from ..core.config import SampleConfig
from ..sampling.generate import class_index, generate
from ..sampling.pipeline import DevagenPipeline
from ..sampling.text import generate_text


def _blank(value: Any) -> bool:
    """None, NaN (a missing cell of a pandas row) or an empty string."""
    return value is None or (isinstance(value, float) and value != value) or (isinstance(value, str) and not value.strip())


def request_label(value: Any) -> Optional[int]:
    """A class index from an int, a digit string, a DHCD folder name or a glyph; None when blank."""
    if _blank(value):
        return None
    if isinstance(value, (int, np.integer)) or (isinstance(value, str) and value.strip().isdigit()):
        index = int(value)
        if not 0 <= index < NUM_CLASSES:
            raise ValueError(f"label {index}: class indices run from 0 to {NUM_CLASSES - 1}")
        return index
    return class_index(str(value).strip())


def draw(pipeline: DevagenPipeline, rows: Sequence[Mapping[str, Any]], seed: int = 0, steps: int = 10,
         guidance_scale: float = 3.0) -> list[np.ndarray]:
    """One uint8 image per row: (H, W) for a label or an unconditional sample, (H, W x characters) for text.

    Row i is seeded with seed + i, so equal requests in one call still differ and a call repeats exactly.
    """
    images = []
    for i, row in enumerate(rows):
        cfg = SampleConfig(seed=seed + i, steps=steps, guidance_scale=guidance_scale)
        if not _blank(row.get("text")):
            image = generate_text(pipeline, str(row["text"]), cfg, scale=1)
            images.append(np.asarray(image.convert("L")))
            continue
        label = request_label(row.get("label"))
        labels = None if label is None else np.array([label], dtype=np.int64)
        images.append(generate(pipeline, labels, 1, cfg, progress=False)[0])
    return images


def png_base64(image: np.ndarray) -> str:
    """uint8 (H, W) image -> base64 text of its PNG file (JSON-safe, for model servers)."""
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8), mode="L").save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")
