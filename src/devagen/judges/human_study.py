"""A blind human study: which items a sheet shows (half generated, half real DHCD test images of the same
classes), its answer key, and reading the answer files readers save from the sheet. Pure: arrays and dicts
in, arrays and dicts out; the sheet's HTML is devagen.human_sheet, the scoring maths devagen.human_scoring."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core.classes import CLASS_GLYPHS, CLASS_NAMES
from ..core.errors import DevagenError

GENERATED, REAL = "generated", "real"
# what a reader may answer: the writer (a person wrote the real glyphs, the model the generated ones)
ORIGIN_ANSWERS = {"person": REAL, "model": GENERATED}
CONFIDENCES = (1, 2, 3)  # 1 guess, 2 fairly sure, 3 sure
UNREADABLE = -1  # the reader's answer "I cannot read it" to "which character is it?"
KEY_FORMAT, ANSWERS_FORMAT = "devagen-human-key", "devagen-human-answers"


@dataclass(frozen=True)
class Sheet:
    """A drawn sheet: images uint8 (N, S, S) in the order shown, and per item its class and origin."""

    images: np.ndarray
    labels: np.ndarray  # int64 (N,) in [0, 46)
    origins: tuple[str, ...]  # GENERATED or REAL per item
    sources: np.ndarray  # int64 (N,): the item's index in samples.npz or test.npz
    seed: int

    @property
    def sheet_id(self) -> str:
        """16 hex digits naming this exact sheet (items, order, classes, origins): answers carry it."""
        digest = hashlib.sha256(f"{self.seed}|{','.join(self.origins)}".encode())
        for array in (self.images, self.labels, self.sources):
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()[:16]


def draw_sheet(generated: np.ndarray, generated_labels: np.ndarray, real: np.ndarray, real_labels: np.ndarray,
               items: int, seed: int) -> Sheet:
    """items//2 random generated images and as many random real images of the same classes, shuffled; all
    images uint8 (N, S, S) of one size. Real images are drawn at random: the test split's order is not."""
    if generated.shape[1:] != real.shape[1:]:
        raise DevagenError(f"samples are {generated.shape[1:]} but test images {real.shape[1:]}; "
                           "re-run the sample stage with the prepared data's image size")
    rng = np.random.default_rng(seed)
    half = items // 2
    if half > len(generated):
        raise DevagenError(f"human_study.items ({items}) asks for {half} generated images but samples.npz has "
                           f"{len(generated)}; lower human_study.items or raise sample.per_class")
    gen_idx = _spread_over_classes(generated_labels, half, rng)
    real_idx = np.array([_random_of_class(real_labels, int(c), rng) for c in generated_labels[gen_idx]],
                        dtype=np.int64)
    order = rng.permutation(2 * half)
    images = np.concatenate([generated[gen_idx], real[real_idx]])[order]
    labels = np.concatenate([generated_labels[gen_idx], real_labels[real_idx]]).astype(np.int64)[order]
    origins = tuple(np.array([GENERATED] * half + [REAL] * half)[order].tolist())
    sources = np.concatenate([gen_idx, real_idx]).astype(np.int64)[order]
    return Sheet(images, labels, origins, sources, seed)


def _spread_over_classes(labels: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` random indices of `labels`, as even over the classes as they allow: one random image of every
    class (in random order) before any class gets a second."""
    order = rng.permutation(len(labels))
    seen: Counter[int] = Counter()
    rank = np.empty(len(order), dtype=np.int64)  # how many of the class came before, in the shuffled order
    for i, label in enumerate(labels[order].tolist()):
        rank[i] = seen[label]
        seen[label] += 1
    return order[np.argsort(rank, kind="stable")[:count]]


def _random_of_class(labels: np.ndarray, label: int, rng: np.random.Generator) -> int:
    """A random index of `labels` equal to `label`, or DevagenError when the test split has none."""
    found = np.flatnonzero(labels == label)
    if len(found) == 0:
        raise DevagenError(f"data/prepared/test.npz has no image of class {CLASS_NAMES[label]}; "
                           "re-run the prepare stage on the full DHCD archive")
    return int(rng.choice(found))


def answer_key(sheet: Sheet) -> dict[str, Any]:
    """The key readers must not see: per item its class, glyph, origin and source index."""
    items = [{"item": i, "label": int(label), "class": CLASS_NAMES[label], "glyph": CLASS_GLYPHS[CLASS_NAMES[label]],
              "origin": origin, "source_index": int(source)}
             for i, (label, origin, source) in enumerate(zip(sheet.labels, sheet.origins, sheet.sources))]
    return {"format": KEY_FORMAT, "sheet_id": sheet.sheet_id, "seed": sheet.seed, "items": items}


def read_key(path: Path) -> dict[str, Any]:
    """A key.json written by the human_study stage, or one line naming the file and the fix."""
    try:
        key = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DevagenError(f"{path}: no readable answer key ({type(exc).__name__}); run the human_study stage "
                           "(human_study.enabled: true) or pass --key") from None
    if not isinstance(key, dict) or key.get("format") != KEY_FORMAT or not isinstance(key.get("items"), list):
        raise DevagenError(f"{path}: not a devagen human-study key; pass the key.json written beside the sheet")
    return key


def read_answers(path: Path, key: dict[str, Any]) -> dict[str, Any]:
    """One reader's answer file for `key`'s sheet: {"reader": str, "answers": [item dicts]}; a file for
    another sheet, or a malformed one, raises one line naming the file."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DevagenError(f"{path}: not a readable answer file ({type(exc).__name__}); "
                           "save it again with the sheet's 'Save answers' button") from None
    if not isinstance(raw, dict) or raw.get("format") != ANSWERS_FORMAT:
        raise DevagenError(f"{path}: not a devagen answer file (format is not {ANSWERS_FORMAT!r}); "
                           "pass the JSON the sheet's 'Save answers' button downloads")
    if raw.get("sheet_id") != key["sheet_id"]:
        raise DevagenError(f"{path}: answers for sheet {raw.get('sheet_id')!r}, not this key's sheet "
                           f"{key['sheet_id']!r}; score it with that sheet's key.json (--key)")
    reader, answers = raw.get("reader"), raw.get("answers")
    if not isinstance(reader, str) or not reader.strip():
        raise DevagenError(f"{path}: the answer file names no reader; add \"reader\": \"initials\" to it")
    if not isinstance(answers, list) or len(answers) != len(key["items"]):
        raise DevagenError(f"{path}: malformed answers (expected a list of {len(key['items'])} items); "
                           "save it again from the sheet")
    for i, answer in enumerate(answers):
        problem = _answer_problem(answer, i)
        if problem:
            raise DevagenError(f"{path}: malformed answer {i} ({problem}); save it again from the sheet")
    return {"reader": reader.strip(), "answers": answers}


def _answer_problem(answer: Any, index: int) -> str:
    """What is wrong with one saved answer ('' if nothing): item, class, origin, confidence (null = unanswered)."""
    if not isinstance(answer, dict) or answer.get("item") != index:
        return f"not an object with item {index}"
    cls, origin, confidence = answer.get("class"), answer.get("origin"), answer.get("confidence")
    if cls is not None and (isinstance(cls, bool) or cls not in (UNREADABLE, *range(len(CLASS_NAMES)))):
        return f"class {cls!r} is not a class index or {UNREADABLE}"
    if origin is not None and origin not in ORIGIN_ANSWERS:
        return f"origin {origin!r} is not one of {', '.join(ORIGIN_ANSWERS)}"
    if confidence is not None and (isinstance(confidence, bool) or confidence not in CONFIDENCES):
        return f"confidence {confidence!r} is not one of {CONFIDENCES}"
    return ""


def judgements(answers: list[dict[str, Any]], key: dict[str, Any]) -> list[dict[str, Any]]:
    """Each answered item beside its truth: label, origin, read (class answered or None), said (origin the
    reader chose or None), confidence."""
    out = []
    for answer, truth in zip(answers, key["items"]):
        said = answer.get("origin")
        out.append({"item": truth["item"], "label": truth["label"], "origin": truth["origin"],
                    "read": answer.get("class"), "said": ORIGIN_ANSWERS[said] if said else None,
                    "confidence": answer.get("confidence")})
    return out
