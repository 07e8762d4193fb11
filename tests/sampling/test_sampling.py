"""Sampling: loading, seeding, batched classifier-free guidance, trajectories, figures."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from devagen.core.classes import CLASS_NAMES, glyphs
from devagen.core.config import DiffusionConfig, SampleConfig
from devagen.core.errors import DevagenError
from devagen.diffusion.guidance import output_from_x0, predicted_x0, project_guidance
from devagen.diffusion.objective import training_target
from devagen.diffusion.unet import NULL_LABEL, build_noise_scheduler
from devagen.sampling.folder import read_meta
from devagen.sampling.generate import (
    denoising_frames,
    generate,
    generate_class_grid,
    image_generators,
    process_figure,
    sample_set,
    samples_figure,
    steps_figure,
)
from devagen.sampling.pipeline import DevagenPipeline, load_pipeline

FAST = SampleConfig(seed=0, steps=2, guidance_scale=2.0, batch_size=4)
ONE_STEP = SampleConfig(seed=0, steps=1, guidance_scale=2.0)


@pytest.fixture(scope="module")
def pipe(tiny_model_dir: Path) -> DevagenPipeline:
    return load_pipeline(tiny_model_dir)


def test_missing_model_dir_names_it_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(DevagenError, match=r"nope.*dvc repro train"):
        load_pipeline(tmp_path / "nope")


@pytest.mark.parametrize("damage", ["no_meta", "bad_meta", "no_unet", "bad_weights", "no_scheduler"])
def test_corrupt_model_dir_raises_devagen_error(tiny_model_dir: Path, tmp_path: Path, damage: str) -> None:
    broken = Path(shutil.copytree(tiny_model_dir, tmp_path / "diffusion"))
    if damage == "no_meta":
        (broken / "devagen.json").unlink()
    elif damage == "bad_meta":
        (broken / "devagen.json").write_text('{"class_names": []}')
    elif damage == "no_unet":
        shutil.rmtree(broken / "unet")
    elif damage == "bad_weights":
        (broken / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"not a tensor file")
    else:
        shutil.rmtree(broken / "scheduler")
    with pytest.raises(DevagenError, match=r"diffusion.*dvc repro (-f -s )?train"):
        load_pipeline(broken)


@pytest.mark.parametrize("sampler,cls", [("dpmpp", "DPMSolverMultistepScheduler"), ("ddim", "DDIMScheduler"),
                                         ("ddpm", "DDPMScheduler")])
def test_samplers_carry_the_saved_schedule(tiny_model_dir: Path, tmp_path: Path, sampler: str, cls: str) -> None:
    model_dir = Path(shutil.copytree(tiny_model_dir, tmp_path / "m"))
    build_noise_scheduler(DiffusionConfig(prediction_type="epsilon", beta_schedule="linear")).save_pretrained(
        model_dir / "scheduler")
    scheduler = load_pipeline(model_dir, sampler=sampler).scheduler
    assert type(scheduler).__name__ == cls
    assert scheduler.config.prediction_type == "epsilon"
    assert scheduler.config.beta_schedule == "linear"
    scheduler.set_timesteps(1)
    assert int(scheduler.timesteps[0]) >= 990  # one step starts from (nearly) pure noise, not t = 0


def test_every_sampler_draws_images(tiny_model_dir: Path) -> None:
    for sampler in ("dpmpp", "ddim", "ddpm"):
        images = load_pipeline(tiny_model_dir, sampler)(labels=[0, 5], guidance_scale=2.0, num_inference_steps=2,
                                                        generator=image_generators(0, 0, 2))
        assert images.shape == (2, 16, 16) and images.dtype == np.uint8


def test_ema_and_raw_weights_differ(tiny_model_dir: Path) -> None:
    ema, raw = load_pipeline(tiny_model_dir, use_ema=True), load_pipeline(tiny_model_dir, use_ema=False)
    assert not torch.equal(ema.unet.conv_in.weight, raw.unet.conv_in.weight)


def test_same_seed_same_images_other_seed_other_images(pipe: DevagenPipeline) -> None:
    labels = np.array([0, 1, 2, 45, 3])
    first = generate(pipe, labels, 5, FAST, progress=False)
    again = generate(pipe, labels, 5, FAST, progress=False)
    other = generate(pipe, labels, 5, SampleConfig(seed=1, steps=2, guidance_scale=2.0, batch_size=4), progress=False)
    assert first.shape == (5, 16, 16) and first.dtype == np.uint8
    np.testing.assert_array_equal(first, again)
    assert (first != other).mean() > 0.5


def test_images_do_not_depend_on_batch_size(pipe: DevagenPipeline) -> None:
    labels = np.arange(5)
    small = generate(pipe, labels, 5, SampleConfig(steps=2, batch_size=2), progress=False)
    large = generate(pipe, labels, 5, SampleConfig(steps=2, batch_size=5), progress=False)
    assert np.abs(small.astype(int) - large.astype(int)).max() <= 1


def test_batched_guidance_equals_two_pass_formula(pipe: DevagenPipeline) -> None:
    x = torch.randn(3, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    t, labels, g = torch.tensor(700), torch.tensor([0, 7, 40]), 3.0
    with torch.no_grad():
        cond = pipe.unet(x, t, class_labels=labels).sample
        uncond = pipe.unet(x, t, class_labels=torch.full_like(labels, NULL_LABEL)).sample
        guided = pipe.model_output(x, t, labels, guidance_scale=g)
    assert (cond - uncond).abs().max() > 1e-3  # the check below would pass trivially otherwise
    torch.testing.assert_close(guided, uncond + g * (cond - uncond), rtol=1e-4, atol=1e-5)


def test_guidance_changes_samples_and_one_means_none(pipe: DevagenPipeline) -> None:
    def draw(g: float) -> np.ndarray:
        return pipe(labels=[3, 4], guidance_scale=g, num_inference_steps=2, generator=image_generators(0, 0, 2))
    assert (draw(1.0) != draw(4.0)).any()
    assert pipe.passes_per_step(1.0) == 1 and pipe.passes_per_step(2.0) == 2


def test_unconditional_model_refuses_labels(tiny_uncond_model_dir: Path) -> None:
    pipe = load_pipeline(tiny_uncond_model_dir)
    assert pipe(batch_size=2, num_inference_steps=1).shape == (2, 16, 16)
    assert pipe.passes_per_step(3.0) == 1
    with pytest.raises(DevagenError, match="unconditional.*model.conditional: true"):
        pipe(labels=[0], num_inference_steps=1)


@pytest.mark.parametrize("kind", ["epsilon", "v_prediction", "sample"])
def test_predicted_x0_inverts_each_training_target(kind: str) -> None:
    scheduler = build_noise_scheduler(DiffusionConfig(prediction_type=kind))
    gen = torch.Generator().manual_seed(0)
    x0, noise, t = torch.rand(2, 1, 8, 8, generator=gen) * 2 - 1, torch.randn(2, 1, 8, 8, generator=gen), 300
    xt = scheduler.add_noise(x0, noise, torch.tensor([t, t]))
    target = training_target(scheduler, x0, noise, torch.tensor([t, t]))
    torch.testing.assert_close(predicted_x0(scheduler, target, xt, t), x0, rtol=1e-4, atol=1e-4)


def test_trajectory_records_one_run(pipe: DevagenPipeline) -> None:
    traj = pipe.trajectory(label=4, steps=5, generator=image_generators(3, 0, 1), guidance_scale=2.0)
    assert traj.xt.shape == (6, 16, 16) and traj.x0.shape == (5, 16, 16)
    assert traj.timesteps == sorted(traj.timesteps, reverse=True) and len(traj.timesteps) == 5
    final = pipe(labels=[4], guidance_scale=2.0, num_inference_steps=5, generator=image_generators(3, 0, 1))
    np.testing.assert_array_equal(traj.xt[-1], final[0])


def test_sample_set_covers_every_class(pipe: DevagenPipeline, tiny_model_dir: Path) -> None:
    cfg = SampleConfig(steps=1, per_class=1, batch_size=32, guidance_scale=2.0)
    images, labels, stats = sample_set(pipe, read_meta(tiny_model_dir), cfg, progress=False)
    assert images.shape == (46, 16, 16) and labels.dtype == np.int64
    np.testing.assert_array_equal(labels, np.arange(46))
    assert stats["nfe"] == 2 and stats["images"] == 46 and stats["images_per_s"] > 0 and stats["sampler"] == "dpmpp"


def test_sample_set_unconditional(tiny_uncond_model_dir: Path) -> None:
    cfg = SampleConfig(steps=1, count=3, guidance_scale=2.0)
    images, labels, stats = sample_set(load_pipeline(tiny_uncond_model_dir), read_meta(tiny_uncond_model_dir),
                                       cfg, progress=False)
    assert images.shape == (3, 16, 16) and (labels == -1).all() and stats["nfe"] == 1


def test_samples_figure_size() -> None:
    images, labels = np.zeros((12, 16, 16), np.uint8), np.repeat(np.arange(3), 4)
    plain = samples_figure(images, labels, glyphs(), per_row=4)
    with_real = samples_figure(images, labels, glyphs(), per_row=4, real=(images, labels))
    assert plain.height >= 3 * 32 and plain.width > 4 * 32
    assert with_real.width - plain.width >= 5 * 32  # a blank cell and four real images per row
    unlabelled = samples_figure(images, np.full(12, -1), glyphs(), per_row=5)
    assert unlabelled.height >= 3 * 32  # 12 images in rows of 5


def test_steps_and_process_figures(pipe: DevagenPipeline) -> None:
    steps = steps_figure(pipe, label=0, seed=0, steps=(1, 2, 3), guidance_scale=2.0)
    assert steps.width >= 3 * 16 * 4 and steps.height > 16 * 4
    traj = pipe.trajectory(label=1, steps=10, generator=image_generators(0, 0, 1))
    process = process_figure(traj, columns=4)
    assert process.width >= 5 * 16 * 4 and process.height >= (2 * 16 + 2) * 4  # 4 steps + result, 2 rows
    frames = denoising_frames(traj)
    assert len(frames) == 11 and frames[0].shape == (16, 34) and frames[0].dtype == np.uint8


def test_the_steps_figure_shows_only_step_counts_the_schedule_has(tiny_model_dir: Path) -> None:
    """A 4-timestep schedule cannot be sampled in 5, 10, 20 or 50 steps (DDIM refuses): those columns are left out."""
    from devagen.sampling.samplers import build_sampler

    short = load_pipeline(tiny_model_dir, "ddim", device="cpu")
    short.scheduler = build_sampler({"num_train_timesteps": 4, "prediction_type": "v_prediction"}, "ddim")
    full = steps_figure(short, label=0, seed=0, steps=(1, 2, 3))
    assert steps_figure(short, label=0, seed=0).size == full.size  # the default 1..50 gives 1, 2, 3 here


def test_class_grid(pipe: DevagenPipeline) -> None:
    grid = generate_class_grid(pipe, CLASS_NAMES[0], n=5, cfg=ONE_STEP, per_row=4)
    assert grid.height >= 2 * 32
    by_glyph = generate_class_grid(pipe, "क", n=5, cfg=ONE_STEP, per_row=4)
    assert np.array_equal(np.asarray(grid), np.asarray(by_glyph))
    with pytest.raises(DevagenError, match="unknown class"):
        generate_class_grid(pipe, "character_99", n=1, cfg=ONE_STEP)


def test_meta_round_trip(tiny_model_dir: Path) -> None:
    meta = read_meta(tiny_model_dir)
    assert meta.class_names == CLASS_NAMES and meta.null_label == NULL_LABEL
    assert json.loads((tiny_model_dir / "devagen.json").read_text(encoding="utf-8"))["glyphs"][33] == "क्ष"


def test_diffusers_users_can_build_the_pipeline_themselves(tiny_model_dir: Path, tmp_path: Path) -> None:
    from diffusers import DDIMScheduler, UNet2DModel

    unet = UNet2DModel.from_pretrained(tiny_model_dir, subfolder="unet")
    pipe = DevagenPipeline(unet=unet, scheduler=DDIMScheduler.from_pretrained(tiny_model_dir, subfolder="scheduler"))
    images = pipe(labels=[1, 2], guidance_scale=2.0, num_inference_steps=2, output_type="pil")
    assert len(images) == 2 and images[0].size == (16, 16) and images[0].mode == "L"
    pipe.save_pretrained(tmp_path / "pipe")
    assert type(DevagenPipeline.from_pretrained(tmp_path / "pipe").scheduler).__name__ == "DDIMScheduler"


def test_autoguidance_equals_two_network_formula(tiny_model_dir: Path) -> None:
    pipe = load_pipeline(tiny_model_dir, with_guide=True)
    x = torch.randn(3, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    t, labels, g = torch.tensor(500), torch.tensor([0, 7, 40]), 2.5
    with torch.no_grad():
        good = pipe.unet(x, t, class_labels=labels).sample
        worse = pipe.guide(x, t, class_labels=labels).sample
        guided = pipe.model_output(x, t, labels, guidance_scale=g, guidance="autoguidance")
    assert (good - worse).abs().max() > 1e-3
    torch.testing.assert_close(guided, worse + g * (good - worse), rtol=1e-4, atol=1e-5)
    assert pipe.passes_per_step(g, "autoguidance") == 2 and pipe.passes_per_step(1.0, "autoguidance") == 1


def test_autoguidance_scale_adds_the_guide_to_cfg(tiny_model_dir: Path) -> None:
    pipe = load_pipeline(tiny_model_dir, with_guide=True)
    x = torch.randn(3, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    t, labels, g, a = torch.tensor(400), torch.tensor([0, 7, 40]), 2.0, 1.5
    with torch.no_grad():
        good = pipe.unet(x, t, class_labels=labels).sample
        weak = pipe.guide(x, t, class_labels=labels).sample
        cfg = pipe.model_output(x, t, labels, guidance_scale=g)
        both = pipe.model_output(x, t, labels, guidance_scale=g, autoguidance_scale=a)
        alone = pipe.model_output(x, t, labels, autoguidance_scale=a)  # outside the CFG interval: g = 1
    assert (cfg - good).abs().max() > 1e-3 and (good - weak).abs().max() > 1e-3
    torch.testing.assert_close(both, cfg + (a - 1) * (good - weak), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(alone, good + (a - 1) * (good - weak), rtol=1e-4, atol=1e-5)
    assert pipe.passes_per_step(g, "cfg", a) == 3 and pipe.passes_per_step(1.0, "cfg", a) == 2
    assert pipe.passes_per_step(g, "cfg", 1.0) == 2
    with pytest.raises(DevagenError, match="sample.autoguidance_scale needs.*train.guide_step"):
        load_pipeline(tiny_model_dir).model_output(x, t, labels, guidance_scale=g, autoguidance_scale=a)


def test_autoguidance_is_seeded_and_differs_from_cfg(tiny_model_dir: Path) -> None:
    pipe = load_pipeline(tiny_model_dir, with_guide=True)
    auto = SampleConfig(steps=2, guidance_scale=2.0, guidance="autoguidance")
    first = generate(pipe, np.arange(4), 4, auto, progress=False)
    np.testing.assert_array_equal(first, generate(pipe, np.arange(4), 4, auto, progress=False))
    assert (first != generate(pipe, np.arange(4), 4, FAST, progress=False)).mean() > 0.3


def test_autoguidance_guides_unconditional_models(tiny_uncond_model_dir: Path) -> None:
    pipe = load_pipeline(tiny_uncond_model_dir, with_guide=True)
    auto = SampleConfig(steps=2, guidance_scale=3.0, guidance="autoguidance", count=2)
    plain = SampleConfig(steps=2, guidance_scale=3.0, count=2)  # CFG has nothing to guide by here
    assert pipe.passes_per_step(3.0, "autoguidance") == 2 and pipe.passes_per_step(3.0, "cfg") == 1
    assert (generate(pipe, None, 2, auto, progress=False) != generate(pipe, None, 2, plain, progress=False)).any()


def test_autoguidance_needs_a_guide(tiny_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(DevagenError, match="autoguidance.*train.guide_step"):
        load_pipeline(tiny_model_dir)(labels=[1], guidance_scale=2.0, guidance="autoguidance", num_inference_steps=1)
    bare = Path(shutil.copytree(tiny_model_dir, tmp_path / "m"))
    shutil.rmtree(bare / "guide")
    with pytest.raises(DevagenError, match=r"no guide/.*train.guide_step"):
        load_pipeline(bare, with_guide=True)


@pytest.mark.parametrize("guidance", ["cfg", "autoguidance"])
def test_guidance_interval(tiny_model_dir: Path, guidance: str) -> None:
    pipe = load_pipeline(tiny_model_dir, with_guide=True)

    def draw(lo: int, hi: int, g: float = 3.0) -> np.ndarray:
        cfg = SampleConfig(steps=3, guidance_scale=g, guidance=guidance, guidance_t_min=lo, guidance_t_max=hi)
        return generate(pipe, np.arange(3), 3, cfg, progress=False)

    unguided, everywhere = draw(0, 1000, g=1.0), draw(0, 1000)
    np.testing.assert_array_equal(draw(2000, 3000), unguided)  # an interval holding no step: never guided
    np.testing.assert_array_equal(draw(0, 999), everywhere)
    middle = draw(300, 700)
    assert (middle != unguided).any() and (middle != everywhere).any()


@pytest.mark.parametrize("kind", ["epsilon", "v_prediction", "sample"])
def test_output_from_x0_inverts_predicted_x0(kind: str) -> None:
    scheduler = build_noise_scheduler(DiffusionConfig(prediction_type=kind))
    gen = torch.Generator().manual_seed(1)
    out, xt = torch.randn(2, 1, 8, 8, generator=gen), torch.randn(2, 1, 8, 8, generator=gen)
    x0 = predicted_x0(scheduler, out, xt, 400)
    torch.testing.assert_close(output_from_x0(scheduler, x0, xt, 400), out, rtol=1e-4, atol=1e-4)


def test_project_guidance_on_known_vectors() -> None:
    good = torch.tensor([[[[2.0, 0.0]]]])  # (1, 1, 1, 2)
    worse = torch.tensor([[[[1.0, -1.0]]]])  # update good - worse = (1, 1): (1, 0) along good, (0, 1) across
    torch.testing.assert_close(project_guidance(good, worse, 3.0, 1.0), worse + 3.0 * (good - worse))
    torch.testing.assert_close(project_guidance(good, worse, 3.0, 0.0), torch.tensor([[[[2.0, 2.0]]]]))
    torch.testing.assert_close(project_guidance(good, worse, 3.0, 0.5), torch.tensor([[[[3.0, 2.0]]]]))


def test_parallel_weight_changes_guided_samples(pipe: DevagenPipeline) -> None:
    plain = SampleConfig(steps=3, guidance_scale=3.0, batch_size=4)
    apg = SampleConfig(steps=3, guidance_scale=3.0, batch_size=4, guidance_parallel=0.0)
    one = SampleConfig(steps=3, guidance_scale=3.0, batch_size=4, guidance_parallel=0.999999)
    first = generate(pipe, np.arange(3), 3, apg, progress=False)
    np.testing.assert_array_equal(first, generate(pipe, np.arange(3), 3, apg, progress=False))
    assert (first != generate(pipe, np.arange(3), 3, plain, progress=False)).any()
    # the x0-space route with parallel ~1 agrees with the plain linear formula
    near = generate(pipe, np.arange(3), 3, one, progress=False).astype(int)
    assert np.abs(near - generate(pipe, np.arange(3), 3, plain, progress=False)).max() <= 1


def test_sde_sampler_is_seeded_per_image(tiny_model_dir: Path) -> None:
    pipe = load_pipeline(tiny_model_dir, sampler="sde-dpmpp")
    assert pipe.scheduler.config.algorithm_type == "sde-dpmsolver++"
    small = generate(pipe, np.arange(5), 5, SampleConfig(steps=3, batch_size=2), progress=False)
    large = generate(pipe, np.arange(5), 5, SampleConfig(steps=3, batch_size=5), progress=False)
    assert np.abs(small.astype(int) - large.astype(int)).max() <= 1
    other = generate(pipe, np.arange(5), 5, SampleConfig(seed=1, steps=3, batch_size=5), progress=False)
    assert (other != large).mean() > 0.3


def test_black_point_maps_faint_grey_to_black_and_keeps_white() -> None:
    from devagen.data.prepared import from_model_range
    from devagen.sampling.pipeline import to_pixels

    x = torch.linspace(-1, 1, 256).view(1, 1, 16, 16)
    raw, cleaned = to_pixels(x, 0), to_pixels(x, 8)
    assert torch.equal(raw, from_model_range(x))
    assert (cleaned[raw <= 8] == 0).all() and cleaned.max() == 255 and (cleaned.int() <= raw.int()).all()
    assert (cleaned.flatten().diff() >= 0).all()  # still monotonic: the order of grey levels is kept


def test_pipeline_and_generate_apply_the_black_point(pipe: DevagenPipeline) -> None:
    from devagen.sampling.pipeline import BLACK_POINT

    run = lambda **kw: pipe(labels=[0, 1], num_inference_steps=2, generator=image_generators(0, 0, 2), **kw)  # noqa: E731
    raw, default = run(black_point=0), run()
    assert not np.array_equal(raw, default) and (default[raw <= BLACK_POINT] == 0).all()
    cfg = SampleConfig(steps=2, black_point=0, batch_size=2, guidance_scale=1.0)
    assert np.array_equal(generate(pipe, np.array([0, 1]), 2, cfg, progress=False), raw)
    with pytest.raises(DevagenError, match="sample.black_point"):
        SampleConfig(black_point=200)
