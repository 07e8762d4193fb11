"""Shared fixtures: tiny DHCD-shaped archives built offline in a temp dir."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

# tests/<package>/ mirror src/devagen/<package>/; the fixture modules here, and the drawing helpers some test
# modules share across packages (test_style.bar, test_c2st.blobs, ...), import by their plain names.
sys.path.insert(0, str(Path(__file__).parent))
sys.path[1:1] = sorted(str(d) for d in Path(__file__).parent.iterdir() if d.is_dir() and any(d.glob("test_*.py")))

from dhcd_fixture import make_archive  # noqa: E402
from model_fixture import make_model_dir  # noqa: E402

# Tests use tiny tensors: one thread avoids thread hand-off costs that made them ~20x slower on
# a busy 2-core machine. Subprocesses (e2e, kill -9, 2-process runs) inherit it through the env.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def tiny_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """46 classes x (3 train + 2 test) synthetic glyph images in the official layout."""
    return make_archive(tmp_path_factory.mktemp("dhcd") / "DevanagariHandwrittenCharacterDataset.zip")



@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A conditional (47 class embeddings) random-weight `tiny` UNet at 16x16, v-prediction, as training saves it."""
    return make_model_dir(tmp_path_factory.mktemp("model") / "diffusion", conditional=True)


@pytest.fixture(scope="session")
def tiny_uncond_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same without class embeddings (model.conditional: false)."""
    return make_model_dir(tmp_path_factory.mktemp("model_uncond") / "diffusion", conditional=False)


@pytest.fixture(scope="session")
def tiny_style_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A style-conditioned random-weight `tiny` UNet (model.style_conditioning: true) with the fixture's pen."""
    return make_model_dir(tmp_path_factory.mktemp("model_style") / "diffusion", conditional=True, style=True)


@pytest.fixture(scope="module")
def cpu_one_thread():
    """CPU even where a GPU exists (bitwise resume checks); one thread: tiny models gain nothing from
    threads, and on a busy 2-core machine two threads spin-wait ~20x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ACCELERATE_USE_CPU", "true")
        yield
    torch.set_num_threads(before)
