"""The notes a switched-off option leaves where its model would be: small JSON files, written without importing
torch or diffusers, so a stage whose option is off finishes in about a second."""

from __future__ import annotations

import json
from pathlib import Path

AUTOENCODER_NOTE = "latent.json"  # in models/vae, and in a pixel model's vae/ folder
DISTILL_STATUS = "distill.json"  # in the distilled root: {"enabled": ..., "steps": [...]}
GUIDE_NOTE = "guide.json"  # in models/diffusion/guide when train.guide_step is 0: {"enabled": false}
CLASSIFIER_NOTE = "classifier.json"  # in models/noisy_classifier: {"enabled": false}, or the trained network's info


def _off(directory: Path, note: str) -> None:
    """directory/note: {"enabled": false}, the folder created if needed."""
    Path(directory).mkdir(parents=True, exist_ok=True)
    (Path(directory) / note).write_text(json.dumps({"enabled": False}) + "\n", encoding="utf-8")


def write_no_autoencoder(directory: Path) -> None:
    """The folder an autoencoder would be in, holding only a note that latent diffusion is off."""
    _off(directory, AUTOENCODER_NOTE)


def write_no_guide(directory: Path) -> None:
    """The folder the autoguidance guide would be in (train.guide_step 0), holding only a note that there is none."""
    _off(directory, GUIDE_NOTE)


def write_no_classifier(directory: Path) -> None:
    """The folder the noisy classifier would be in, holding only a note that classifier guidance is off."""
    _off(directory, CLASSIFIER_NOTE)


def write_distill_status(root: Path, enabled: bool, steps: tuple[int, ...] = ()) -> None:
    """root/distill.json: whether the distill stage ran and which students it wrote."""
    Path(root).mkdir(parents=True, exist_ok=True)
    (Path(root) / DISTILL_STATUS).write_text(json.dumps({"enabled": enabled, "steps": list(steps)}) + "\n",
                                             encoding="utf-8")
