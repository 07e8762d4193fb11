"""The one place that picks a torch device for code that runs outside accelerate."""

import torch


def pick_device() -> torch.device:
    """CUDA when a GPU is visible, else CPU (every stage must also run on CPU)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
