"""Classifier guidance: the noisy classifier's shapes, loss, training and saving; its gradient and the guided
model output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler

from devagen.core.config import DiffusionConfig, NoisyClassifierConfig
from devagen.core.errors import DevagenError
from devagen.core.off_notes import write_no_classifier
from devagen.diffusion.guidance import classifier_guided, output_from_x0, predicted_x0
from devagen.diffusion.noisy_classifier import (
    NoisyClassifier,
    classifier_loss,
    load_classifier,
    load_classifier_for,
    log_prob_gradient,
    save_classifier,
    schedule_of,
)
from devagen.diffusion.patches import to_patches
from devagen.diffusion.unet import build_noise_scheduler
from devagen.training.noisy_classifier import accuracy_by_timestep, train_noisy_classifier

pytestmark = pytest.mark.usefixtures("cpu_one_thread")
TINY = NoisyClassifierConfig(enabled=True, steps=3, batch_size=8, width=4, lr=1e-2)


def _images(n: int = 46, side: int = 16) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, side, side), dtype=np.uint8), np.arange(n, dtype=np.int64) % 46


class Linear(torch.nn.Module):
    """A toy classifier of x_t (timestep ignored): logits = W·x, so log p(y | x) is concave in x."""

    def __init__(self, side: int = 8, classes: int = 46) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.weight = torch.nn.Parameter(torch.randn(classes, side * side) / side)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.weight.T


def _log_p(classifier: torch.nn.Module, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return F.log_softmax(classifier(x, torch.zeros(len(x))), 1).gather(1, labels[:, None]).squeeze(1)


@pytest.mark.parametrize("side", (16, 32))
def test_logits_shape_for_any_timestep_form(side: int) -> None:
    net = NoisyClassifier(width=4, image_size=side).eval()
    x = torch.randn(3, 1, side, side)
    per_image = net(x, torch.tensor([0, 500, 999]))
    assert per_image.shape == (3, 46) and torch.isfinite(per_image).all()
    one = net(x, torch.tensor(500))  # one timestep for the batch, as sampling gives it
    assert torch.allclose(one[1], per_image[1], atol=1e-5) and not torch.allclose(one[0], per_image[0])


def test_loss_is_finite_and_the_noise_follows_the_generator() -> None:
    net, scheduler = NoisyClassifier(4, 16), build_noise_scheduler(DiffusionConfig())
    x0, labels = torch.rand(4, 1, 16, 16) * 2 - 1, torch.arange(4)
    a = classifier_loss(net, scheduler, x0, labels, torch.Generator().manual_seed(1))
    b = classifier_loss(net, scheduler, x0, labels, torch.Generator().manual_seed(1))
    c = classifier_loss(net, scheduler, x0, labels, torch.Generator().manual_seed(2))
    assert torch.isfinite(a) and a == b and a != c


def test_training_moves_the_weights_is_seeded_and_measures() -> None:
    images, labels = _images()
    first, stats = train_noisy_classifier(images, labels, TINY, DiffusionConfig(), torch.device("cpu"), progress=False)
    again, _ = train_noisy_classifier(images, labels, TINY, DiffusionConfig(), torch.device("cpu"), progress=False)
    torch.manual_seed(TINY.seed)
    fresh = NoisyClassifier(TINY.width, 16)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values()))
    assert not all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), fresh.state_dict().values()))
    assert stats["steps"] == 3 and np.isfinite(stats["final_loss"]) and stats["params"] > 0 and not first.training
    accuracy = accuracy_by_timestep(first, build_noise_scheduler(DiffusionConfig()), images, labels, [0, 999], 0)
    assert len(accuracy) == 2 and all(0 <= a <= 1 for a in accuracy)


def test_gradient_is_shaped_like_the_unet_input_and_follows_patches() -> None:
    net = NoisyClassifier(4, 16).eval()
    x, labels = torch.randn(2, 1, 16, 16), torch.tensor([3, 7])
    pixels = log_prob_gradient(net, x, 400, labels)
    patched = log_prob_gradient(net, to_patches(x, 2), 400, labels, patch=2)
    assert pixels.shape == x.shape and patched.shape == (2, 4, 8, 8) and pixels.abs().sum() > 0
    assert torch.allclose(patched, to_patches(pixels, 2), atol=1e-6)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # sampling's autocast: the gradient stays fp32
        assert log_prob_gradient(net, x, 400, labels).dtype == torch.float32


@pytest.mark.parametrize("prediction", ("epsilon", "v_prediction", "sample"))
def test_every_prediction_type_moves_the_clean_image_alike(prediction: str) -> None:
    """eps - s·σ·g for epsilon; the same move of x0 (+ s·σ²/α·g) for v and x0 predictions."""
    scheduler = build_noise_scheduler(DiffusionConfig(prediction_type=prediction))
    torch.manual_seed(0)
    x, x0, gradient, t = torch.randn(2, 1, 8, 8), torch.randn(2, 1, 8, 8), torch.randn(2, 1, 8, 8), 400
    alpha_bar = scheduler.alphas_cumprod[t]
    a, s = alpha_bar.sqrt(), (1 - alpha_bar).sqrt()
    guided = classifier_guided(scheduler, output_from_x0(scheduler, x0, x, t), x, t, gradient, 2.0)
    assert torch.allclose(predicted_x0(scheduler, guided, x, t), x0 + 2.0 * s ** 2 / a * gradient, atol=1e-4)
    if prediction == "epsilon":
        assert torch.allclose(guided, output_from_x0(scheduler, x0, x, t) - 2.0 * s * gradient, atol=1e-5)
    unmoved = classifier_guided(scheduler, output_from_x0(scheduler, x0, x, t), x, t, gradient, 0.0)
    assert torch.allclose(unmoved, output_from_x0(scheduler, x0, x, t), atol=1e-6)


@pytest.mark.parametrize("prediction", ("epsilon", "v_prediction"))
def test_a_guided_step_raises_the_log_probability_of_the_asked_class(prediction: str) -> None:
    """One DDIM step from x_t with the guided output lands where the toy classifier is surer of the class."""
    toy = Linear()
    sampler = DDIMScheduler.from_config(build_noise_scheduler(DiffusionConfig(prediction_type=prediction)).config)
    sampler.set_timesteps(10)
    t = sampler.timesteps[3]
    torch.manual_seed(1)
    x, output, labels = torch.randn(6, 1, 8, 8), torch.randn(6, 1, 8, 8), torch.arange(6)
    gradient = log_prob_gradient(toy, x, t, labels)
    plain = sampler.step(output, t, x).prev_sample
    guided = sampler.step(classifier_guided(sampler, output, x, t, gradient, 0.5), t, x).prev_sample
    assert (_log_p(toy, guided, labels) > _log_p(toy, plain, labels)).all()
    away = sampler.step(classifier_guided(sampler, output, x, t, -gradient, 0.5), t, x).prev_sample
    assert (_log_p(toy, away, labels) < _log_p(toy, plain, labels)).all()


def test_saved_classifier_loads_with_its_schedule_and_refuses_a_mismatch(tmp_path: Path) -> None:
    net = NoisyClassifier(4, 16).eval()
    save_classifier(net, tmp_path / "c", TINY, schedule_of(DiffusionConfig(beta_schedule="linear")))
    loaded, schedule = load_classifier(tmp_path / "c")
    x = torch.randn(2, 1, 16, 16)
    assert torch.equal(loaded(x, torch.tensor(10)), net(x, torch.tensor(10)))
    assert not any(p.requires_grad for p in loaded.parameters()) and not loaded.training
    assert json.loads((tmp_path / "c" / "classifier.json").read_text())["noisy_classifier"]["width"] == 4
    linear = build_noise_scheduler(DiffusionConfig(beta_schedule="linear")).alphas_cumprod
    assert torch.equal(schedule.alphas_cumprod, linear)
    assert load_classifier_for(tmp_path / "c", linear, 16).width == 4
    with pytest.raises(DevagenError, match="another noise schedule.*dvc repro noisy_classifier"):
        load_classifier_for(tmp_path / "c", build_noise_scheduler(DiffusionConfig()).alphas_cumprod, 16)
    with pytest.raises(DevagenError, match="reads 16x16 pixels, the model draws 32x32"):
        load_classifier_for(tmp_path / "c", linear, 32)
    with pytest.raises(DevagenError, match="draws latents"):
        load_classifier_for(tmp_path / "c", linear, None)
    (tmp_path / "c" / "classifier.safetensors").write_bytes(b"junk")
    with pytest.raises(DevagenError, match="damaged.*dvc repro -f -s noisy_classifier"):
        load_classifier(tmp_path / "c")


def test_the_off_note_is_no_classifier(tmp_path: Path) -> None:
    write_no_classifier(tmp_path / "off")
    assert json.loads((tmp_path / "off" / "classifier.json").read_text()) == {"enabled": False}
    with pytest.raises(DevagenError, match="no trained noisy classifier.*noisy_classifier.enabled: true"):
        load_classifier(tmp_path / "off")
