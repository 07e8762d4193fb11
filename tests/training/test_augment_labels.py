"""Augmentation that does not leak: the labels augmentation returns, the style UNet that reads them, training with
train.augment and pen conditioning (pens measured on the augmented images), and sampling that asks for none."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline

from devagen.core.config import AugmentConfig, DiffusionConfig, TrainConfig
from devagen.core.shape import ModelConfig
from devagen.core.params import params_from_dict
from devagen.data.prepared import to_model_range
from devagen.data.augment import AUGMENT_LABELS, augment_batch, augment_labelled
from devagen.diffusion.unet import StyleUNet2DModel, augment_dim, build_unet, condition
from devagen.pen.conditions import measure_pen, training_codes
from devagen.sampling.pipeline import load_pipeline
from devagen.training.loop import _draw_batch, _setup, batch_indices, train_diffusion

OFF = AugmentConfig(rotate_p=0, scale_p=0, translate_p=0, stroke_p=0, elastic_p=0, color_p=0)
A = len(AUGMENT_LABELS)


def _bars(n: int, size: int = 16) -> np.ndarray:
    """uint8 (n, S, S): a vertical white bar 3-5 px wide and 10 px tall per image, placed differently."""
    out = np.zeros((n, size, size), np.uint8)
    for i in range(n):
        out[i, 3:13, 4 + i % 4:4 + i % 4 + 3 + i % 3] = 255
    return out


def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_labels_say_what_was_applied_and_zero_means_untouched() -> None:
    x = to_model_range(torch.from_numpy(_bars(64)))
    same, zero = augment_labelled(x, OFF, _seeded(0))
    assert torch.equal(same, x) and zero.shape == (64, A) and not zero.any()
    rotated, labels = augment_labelled(x, replace(OFF, rotate_deg=20, rotate_p=0.5), _seeded(0))
    turned = labels[:, 0] != 0
    assert turned.any() and (~turned).any() and not labels[:, 1:].any()  # only the rotation column is used
    assert float(labels[:, 0].abs().max()) <= 20 / 45 + 1e-6  # the angle in units of 45 degrees
    assert torch.equal(rotated[~turned], x[~turned]) and not torch.equal(rotated[turned], x[turned])
    every = replace(AugmentConfig(), rotate_p=1, scale_p=1, translate_p=1, stroke_p=1, elastic_p=1, color_p=1,
                    noise_std=0.05, noise_p=1)
    images, labels = augment_labelled(x, every, _seeded(3))
    assert labels.shape == (64, A) and bool((labels != 0).all())  # every transform on every image
    assert torch.equal(images, augment_batch(x, every, _seeded(3)))  # the same draws as without labels


def test_style_unet_reads_augmentation_labels_and_zeros_are_no_augmentation(tmp_path: Path) -> None:
    cfg = ModelConfig(preset="tiny", style_conditioning=True)
    torch.manual_seed(0)
    plain = build_unet(cfg, 16)
    torch.manual_seed(0)
    unet = build_unet(cfg, 16, augment_labels=A).eval()
    extra = set(unet.state_dict()) - set(plain.state_dict())
    assert extra == {"class_embedding.augment.weight"}  # the only new weight; every other one drawn as before
    assert all(torch.equal(v, unet.state_dict()[k]) for k, v in plain.state_dict().items())
    plain.save_pretrained(tmp_path / "plain")
    assert "augment_dim" not in json.loads((tmp_path / "plain" / "config.json").read_text())
    x, t, labels, codes = torch.randn(2, 1, 16, 16), torch.tensor([400, 400]), torch.tensor([3, 9]), torch.zeros(2, 2)
    with torch.no_grad():
        bare = unet(x, t, class_labels=condition(labels, codes)).sample
        zeros = unet(x, t, class_labels=condition(labels, codes, augment=torch.zeros(2, A))).sample
        turned = unet(x, t, class_labels=condition(labels, codes, augment=torch.eye(A)[:2])).sample
    assert torch.equal(bare, zeros) and not torch.allclose(bare, turned)
    with pytest.raises(ValueError, match=rf"\(B, 4\) or \(B, {4 + A}\)"):
        unet(x, t, class_labels=condition(labels, codes, augment=torch.zeros(2, 3)))
    unet.save_pretrained(tmp_path / "unet")
    assert json.loads((tmp_path / "unet" / "config.json").read_text())["augment_dim"] == A
    again = StyleUNet2DModel.from_pretrained(tmp_path / "unet").eval()
    with torch.no_grad():
        torch.testing.assert_close(again(x, t, class_labels=condition(labels, codes, augment=torch.eye(A)[:2])).sample,
                                   turned)
    assert augment_dim(again) == A and augment_dim(plain) == 0
    with pytest.raises(ValueError, match="model.style_conditioning"):
        build_unet(ModelConfig(preset="tiny"), 16, augment_labels=A)


def test_pen_codes_describe_the_augmented_image() -> None:
    images, labels = _bars(48), np.arange(48) % 46
    pen = measure_pen(images)
    cfg = TrainConfig(batch_size=48, max_steps=1, warmup_steps=0, augment=True, mixed_precision="no")
    run = _setup(cfg, ModelConfig(preset="tiny", style_conditioning=True), DiffusionConfig(),
                 replace(OFF, stroke_p=0.7), images, labels, pen)
    _, _, styles, augment, _ = _draw_batch(run, 0)
    stored = torch.from_numpy(training_codes(pen, labels))[batch_indices(48, cfg.seed, 0, 48)]  # what prepare measured
    untouched, thicker, thinner = ~augment.any(1), augment[:, 5] > 0.5, augment[:, 5] < -0.5
    assert untouched.any() and thicker.any() and thinner.any()
    torch.testing.assert_close(styles[untouched], stored[untouched])  # no augmentation: the pen prepare measured
    assert bool((styles[thicker, 0] > stored[thicker, 0]).all())  # dilated: a wider pen, as the network sees it
    assert bool((styles[thinner, 0] < stored[thinner, 0]).all())


def test_training_with_augment_and_pen_saves_the_label_shape_and_samples_without_augmentation(
        tmp_path: Path, cpu_one_thread) -> None:
    images, labels = _bars(46), np.arange(46)
    cfg = TrainConfig(batch_size=8, max_steps=3, warmup_steps=0, augment=True, checkpoint_every=10, ema_decay=0.9,
                      log_every=1, mixed_precision="no")
    result = train_diffusion(cfg, ModelConfig(preset="tiny", style_conditioning=True), DiffusionConfig(),
                             AugmentConfig(), images, labels, tmp_path / "m", tmp_path / "c", progress=False,
                             pen=measure_pen(images))
    assert np.isfinite(result["final_loss"])
    for folder in ("unet", "unet_raw"):
        assert json.loads((tmp_path / "m" / folder / "config.json").read_text())["augment_dim"] == A
    pipeline = load_pipeline(tmp_path / "m", "dpmpp", device="cpu")
    seen: list[torch.Tensor] = []
    pipeline.unet.class_embedding.register_forward_hook(lambda module, args, out: seen.append(args[0].clone()))
    pipeline(labels=[0, 5], num_inference_steps=2, guidance_scale=2.0, generator=_seeded(0))
    assert seen and all(c.shape[1] == 4 + A and not c[:, 4:].any() for c in seen)  # "not augmented", every pass
    hub = DiffusionPipeline.from_pretrained(tmp_path / "m", trust_remote_code=True)  # diffusers' own loading
    assert augment_dim(hub.unet) == A
    assert hub(labels=[1], num_inference_steps=1, generator=_seeded(0)).shape == (1, 16, 16)


def test_params_accept_augment_with_the_default_pen_model() -> None:
    params = params_from_dict({"model": {"preset": "cpu_patch", "style_conditioning": True}, "train": {"augment": True}})
    assert params.train.augment and params.model.style_conditioning
