"""Progressive distillation (devagen.training.distill), the student folders (devagen.sampling.students), the distill stage's
off switch and `sample.sampler: distilled`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from diffusers import DDIMScheduler, DiffusionPipeline

from devagen.core.config import DISTILL_STEPS, DistillConfig
from devagen.core.errors import DevagenError
from devagen.core.off_notes import DISTILL_STATUS as STATUS_FILE
from devagen.core.params import params_from_dict
from devagen.diffusion.unet import NULL_LABEL
from devagen.sampling.pipeline import load_pipeline
from devagen.sampling.samplers import build_sampler
from devagen.sampling.students import load_student, student_dir, write_student
from devagen.training import distill as D

SCHEDULE = build_sampler({"num_train_timesteps": 1000, "beta_schedule": "squaredcos_cap_v2",
                          "prediction_type": "v_prediction"}, "ddim")


@pytest.mark.parametrize("steps", DISTILL_STEPS)
def test_the_grid_is_the_one_diffusers_ddim_walks(steps: int) -> None:
    grid = D.transitions(steps)
    scheduler = DDIMScheduler.from_config(SCHEDULE.config)
    scheduler.set_timesteps(steps)
    assert grid[:, 0].tolist() == scheduler.timesteps.tolist()
    assert grid[:, 1].tolist() == [int(t) - 1000 // steps for t in scheduler.timesteps]  # DDIM's previous timestep
    assert grid[-1, 1] == -1 and grid[0, 0] == 999


def test_steps_that_do_not_divide_the_schedule_are_refused() -> None:
    with pytest.raises(ValueError, match="3 steps"):
        D.transitions(3)


def test_a_teacher_that_always_predicts_the_same_image_gives_that_image_as_the_target() -> None:
    """Two DDIM steps that agree on x0 equal one, so the one-step target is that x0 at every (t, s)."""
    torch.manual_seed(0)
    x0 = torch.rand(6, 1, 8, 8) * 2 - 1
    x_t = torch.randn(6, 1, 8, 8)
    grid = torch.cat([D.transitions(n) for n in (8, 2, 1)])[:6]
    teacher = lambda x, t, cond: x0  # noqa: E731
    target = D.teacher_target(teacher, SCHEDULE.alphas_cumprod, x_t, grid[:, 0], grid[:, 1], None)
    assert torch.allclose(target, x0, atol=1e-4)


def test_ddim_to_the_clean_end_returns_the_prediction_and_matches_diffusers() -> None:
    torch.manual_seed(1)
    x, x0 = torch.randn(2, 1, 4, 4), torch.randn(2, 1, 4, 4)
    t, s = torch.tensor([249, 249]), torch.tensor([-1, -1])
    assert torch.allclose(D.ddim_step(SCHEDULE.alphas_cumprod, x, x0, t, s), x0)
    scheduler = DDIMScheduler.from_config(SCHEDULE.config)
    scheduler.set_timesteps(4)
    v = (SCHEDULE.alphas_cumprod[749].sqrt() * x - x0) / (1 - SCHEDULE.alphas_cumprod[749]).sqrt()  # v implying x0
    ours = D.ddim_step(SCHEDULE.alphas_cumprod, x, x0, torch.tensor([749, 749]), torch.tensor([499, 499]))
    assert torch.allclose(scheduler.step(v, 749, x).prev_sample, ours, atol=1e-5)


class _Net(torch.nn.Module):
    """A UNet stand-in whose output depends on the class: v = x * (1 + class/46)."""

    def forward(self, x, t, class_labels=None):  # type: ignore[no-untyped-def]
        scale = 1 + class_labels.float().view(-1, 1, 1, 1) / 46
        return type("Out", (), {"sample": x * scale})()


def test_guidance_applies_inside_its_interval_only() -> None:
    x, cond = torch.ones(2, 1, 2, 2), torch.tensor([10, 10])
    t = torch.tensor([900, 100])
    guided = D.guided_denoiser(_Net(), SCHEDULE, NULL_LABEL, 3.0, (300, 1000))(x, t, cond)
    plain = D.network_denoiser(_Net(), SCHEDULE)(x, t, cond)
    assert torch.allclose(guided[1], plain[1])  # t = 100: conditional only
    assert not torch.allclose(guided[0], plain[0])  # t = 900: guided away from the null class
    null = D.network_denoiser(_Net(), SCHEDULE)(x, t, torch.full((2,), NULL_LABEL))
    assert torch.allclose(guided[0], null[0] + 3.0 * (plain[0] - null[0]), atol=1e-5)


def _data(n: int = 16) -> D.DistillData:
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.integers(0, 256, (n, 16, 16), dtype=np.uint8))
    return D.DistillData(images, torch.from_numpy(rng.integers(0, 46, n)))


def _distil(model_dir: Path, cfg: DistillConfig, saved: list) -> torch.nn.Module:
    pipeline = load_pipeline(model_dir, "ddim", device="cpu")
    D.distill(pipeline.unet, pipeline.scheduler, _data(), cfg, NULL_LABEL,
              lambda steps, net: saved.append((steps, {k: v.clone() for k, v in net.state_dict().items()})),
              progress=False)
    return pipeline.unet


def test_rounds_halve_the_steps_train_the_student_and_are_seeded(tiny_model_dir: Path) -> None:
    cfg = DistillConfig(enabled=True, start_steps=4, min_steps=1, steps_per_round=3, batch_size=4, lr=1e-3,
                        warmup_steps=0, precision="fp32")
    first, second = [], []
    teacher = _distil(tiny_model_dir, cfg, first)
    _distil(tiny_model_dir, cfg, second)
    assert [steps for steps, _ in first] == [4, 2, 1]
    original = teacher.state_dict()
    assert any(not torch.equal(first[0][1][k], original[k]) for k in original)  # the student moved
    assert any(not torch.equal(first[0][1][k], first[-1][1][k]) for k in original)  # and kept moving
    assert all(torch.equal(a[1][k], b[1][k]) for a, b in zip(first, second) for k in original)  # same seed, same weights


def test_a_non_finite_loss_stops_with_the_param_to_change(tiny_model_dir: Path) -> None:
    cfg = DistillConfig(enabled=True, start_steps=1, steps_per_round=2, batch_size=2, lr=1e30, warmup_steps=0,
                        precision="fp32")
    with pytest.raises(DevagenError, match="distill.lr"):
        _distil(tiny_model_dir, cfg, [])


def test_a_student_folder_loads_with_devagen_and_with_diffusers(tiny_model_dir: Path, tmp_path: Path) -> None:
    student = load_pipeline(tiny_model_dir, "ddim", device="cpu").unet
    write_student(student, tiny_model_dir, student_dir(tmp_path, 2))
    pipeline = load_student(tmp_path, 2, device="cpu")
    images = pipeline(labels=[0, 5], num_inference_steps=2, generator=torch.Generator().manual_seed(0))
    assert images.shape == (2, 16, 16) and images.dtype == np.uint8
    hub = DiffusionPipeline.from_pretrained(student_dir(tmp_path, 2), trust_remote_code=True)
    assert isinstance(hub.scheduler, DDIMScheduler) and hub.scheduler.config.timestep_spacing == "trailing"
    assert not (student_dir(tmp_path, 2) / "unet_raw").exists()
    with pytest.raises(DevagenError, match="no distilled student with 4 steps.*distill.enabled"):
        load_student(tmp_path, 4)


def test_a_style_student_carries_its_teachers_pen(tiny_style_model_dir: Path, tmp_path: Path) -> None:
    teacher = load_pipeline(tiny_style_model_dir, "ddim", device="cpu")
    write_student(teacher.unet, tiny_style_model_dir, student_dir(tmp_path, 2))
    assert (student_dir(tmp_path, 2) / "pen.json").read_text() == (tiny_style_model_dir / "pen.json").read_text()
    assert load_student(tmp_path, 2, device="cpu").pen == teacher.pen


def test_config_checks_the_student_steps() -> None:
    assert DistillConfig(start_steps=8, min_steps=2).student_steps == (8, 4, 2)
    with pytest.raises(DevagenError, match="distill.start_steps"):
        DistillConfig(start_steps=16)
    with pytest.raises(DevagenError, match="distill.min_steps"):
        DistillConfig(start_steps=2, min_steps=4)
    with pytest.raises(DevagenError, match="sample.sampler.*distill.enabled"):
        params_from_dict({"sample": {"sampler": "distilled", "steps": 4}})
    with pytest.raises(DevagenError, match="sample.steps"):
        params_from_dict({"sample": {"sampler": "distilled", "steps": 3}, "distill": {"enabled": True}})
    assert params_from_dict({"sample": {"sampler": "distilled", "steps": 4}, "distill": {"enabled": True}})


def test_the_stage_writes_only_a_note_when_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from devagen.cli import cli

    monkeypatch.chdir(tmp_path)
    Path("params.yaml").write_text("distill:\n  enabled: false\ntracking:\n  enabled: false\n")
    result = CliRunner().invoke(cli, ["distill"])
    assert result.exit_code == 0, result.output
    assert json.loads(Path("models/distilled", STATUS_FILE).read_text()) == {"enabled": False, "steps": []}
    assert sorted(p.name for p in Path("models/distilled").iterdir()) == [STATUS_FILE]
    for folder in ("reports/metrics", "reports/details"):
        assert json.loads(Path(folder, "distill.json").read_text()) == {"enabled": False}
    assert Path("reports/figures/distill.png").is_file()


# ---------------------------------------------------------------- distill.student_preset and learned variance


def _one_round(teacher_dir: Path, student: torch.nn.Module | None, patch: int) -> list:
    pipeline = load_pipeline(teacher_dir, "ddim", device="cpu")
    cfg = DistillConfig(enabled=True, start_steps=2, min_steps=2, steps_per_round=2, batch_size=4, lr=1e-3,
                        warmup_steps=0, precision="fp32")
    data = D.DistillData(_data().images, _data().conditions, patch)
    saved: list = []
    D.distill(pipeline.unet, pipeline.scheduler, data, cfg, NULL_LABEL, lambda steps, net: saved.append((steps, net)),
              progress=False, student=student)
    return saved


def test_a_smaller_student_of_another_preset_is_built_fresh_and_distilled(tmp_path: Path) -> None:
    from model_fixture import make_model_dir

    from devagen.core.shape import ModelConfig
    from devagen.diffusion.unet import build_unet, count_parameters
    from devagen.sampling.folder import read_meta

    teacher_dir = make_model_dir(tmp_path / "teacher", preset="tiny_patch")
    teacher = load_pipeline(teacher_dir, "ddim", device="cpu").unet
    rng = torch.get_rng_state()
    student = D.fresh_student("cpu_patch_small", teacher, 2, seed=0)
    assert torch.equal(torch.get_rng_state(), rng)  # seeded on the side
    again = D.fresh_student("cpu_patch_small", teacher, 2, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(student.state_dict().values(), again.state_dict().values()))
    config = student.config
    assert tuple(config.block_out_channels) == (32, 64) and config.sample_size == 8
    assert config.in_channels == config.out_channels == 4 and config.num_class_embeds == teacher.config.num_class_embeds
    assert count_parameters(student) < count_parameters(build_unet(ModelConfig(preset="cpu_patch"), 32)) / 2
    initial = {k: v.clone() for k, v in student.state_dict().items()}
    [(steps, trained)] = _one_round(teacher_dir, student, 2)
    assert steps == 2 and trained is student and any(not torch.equal(initial[k], v) for k, v in trained.state_dict().items())
    folder = student_dir(tmp_path / "distilled", 2)
    write_student(trained, teacher_dir, folder, "cpu_patch_small")
    assert read_meta(folder).preset == "cpu_patch_small" and read_meta(folder).patch_size == 2
    pipeline = load_student(tmp_path / "distilled", 2, device="cpu")
    assert tuple(pipeline.unet.config.block_out_channels) == (32, 64)
    assert pipeline(labels=[0, 5], num_inference_steps=2).shape == (2, 16, 16)


def test_a_learned_variance_teacher_distils_into_a_student_without_the_variance_half(tmp_path: Path) -> None:
    from model_fixture import make_model_dir

    teacher_dir = make_model_dir(tmp_path / "teacher", learned_variance=True)
    [(_, student)] = _one_round(teacher_dir, None, 1)
    assert student.config.out_channels == student.config.in_channels == 1
    write_student(student, teacher_dir, student_dir(tmp_path / "distilled", 2))
    pipeline = load_student(tmp_path / "distilled", 2, device="cpu")
    assert pipeline(labels=[0, 5], num_inference_steps=2).shape == (2, 16, 16)


@pytest.mark.parametrize("settings, message", [
    ({"distill": {"student_preset": "nope"}}, "distill.student_preset: unknown preset 'nope'"),
    ({"model": {"preset": "cpu_patch"}, "distill": {"student_preset": "cpu_conv"}},
     "distill.student_preset: preset 'cpu_conv' sees 1x1 pixel patches, the teacher.*2x2"),
    ({"prepare": {"image_size": 10}, "model": {"preset": "tiny"}, "distill": {"student_preset": "cpu_small"}},
     r"distill.student_preset: preset 'cpu_small' \(downsampling 4\) cannot take the teacher's 10x10"),
])
def test_a_student_preset_that_does_not_fit_the_teacher_is_refused(settings: dict, message: str) -> None:
    with pytest.raises(DevagenError, match=message) as caught:
        params_from_dict(settings)
    assert "\n" not in str(caught.value)


def test_the_smaller_preset_fits_the_default_teacher() -> None:
    params = params_from_dict({"model": {"preset": "cpu_patch"}, "distill": {"enabled": True,
                                                                            "student_preset": "cpu_patch_small"}})
    assert params.distill.student_preset == "cpu_patch_small" and DistillConfig().student_preset is None
