"""Which data a run learned from and was evaluated on: the prepared DHCD splits described as MLflow
dataset inputs (name, digest, source, context, profile) without importing mlflow.

A split's digest hashes the fetched archive (data/raw) with the prepare settings, so two runs share a
digest exactly when they read the same archive prepared the same way. When the archive is absent (a
clone that pulled only the prepared arrays) the split file itself is hashed instead; the profile says which.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..core.integrity import sha256_file
from .fetch import ARCHIVE_NAME

SPLITS = {"train": "training", "test": "evaluation"}  # split -> MLflow's dataset context


def _rows(path: Path) -> tuple[int, int]:
    """(images, classes) of a prepared split, reading only its labels."""
    with np.load(path, allow_pickle=False) as npz:
        labels = npz["labels"]
    return int(labels.shape[0]), int(np.unique(labels).size)


def prepared_splits(raw_dir: Path, prepared_dir: Path, dedupe: bool, source: str) -> list[dict[str, Any]]:
    """One dataset description per prepared split that exists: name, digest (16 hex), source, context, profile."""
    archive = Path(raw_dir) / ARCHIVE_NAME
    archive_hash = sha256_file(archive) if archive.is_file() else None
    out = []
    for split, context in SPLITS.items():
        path = Path(prepared_dir) / f"{split}.npz"
        if not path.is_file():
            continue
        images, classes = _rows(path)
        origin = archive_hash or sha256_file(path)
        settings = json.dumps({"split": split, "dedupe": dedupe, "side": 32}, sort_keys=True)
        digest = hashlib.sha256(f"{origin}|{settings}".encode()).hexdigest()[:16]
        profile = {"num_rows": images, "classes": classes, "image": "32x32 uint8, white strokes on black",
                   "dedupe": dedupe, "digest_of": "archive + prepare settings" if archive_hash else f"{path.name}"}
        out.append({"name": f"DHCD {split}", "digest": digest, "source": source, "context": context,
                    "profile": profile})
    return out
