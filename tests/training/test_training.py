"""The training loop: step counts, data order, saved model, checkpoint/resume, nan stop, 2 processes."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler, UNet2DModel
from safetensors.torch import load_file

from devagen.core.config import AugmentConfig, DiffusionConfig, TrainConfig

from devagen.core.shape import ModelConfig
from devagen.core.errors import DevagenError
from devagen.diffusion.unet import build_unet
from devagen.sampling.folder import read_meta
from devagen.sampling.pipeline import load_pipeline
from devagen.training.checkpoints import guide_at, list_checkpoints
from devagen.core.device import mixed_precision
from devagen.training.loop import batch_indices, total_steps, train_diffusion

TINY = ModelConfig(preset="tiny", conditional=True)

# Synthetic data shared by the in-process tests and the subprocess script below.
DATA_CODE = """
rng = np.random.default_rng(0)
images = rng.integers(0, 256, (24, 16, 16), dtype=np.uint8)
labels = rng.integers(0, 46, 24)
"""
_scope: dict = {"np": np}
exec(DATA_CODE, _scope)
IMAGES, LABELS = _scope["images"], _scope["labels"]


pytestmark = pytest.mark.usefixtures("cpu_one_thread")


class _Stop(Exception):
    """Raised from log_fn to simulate a crash mid-run."""


def _cfg(**overrides) -> TrainConfig:
    values = dict(batch_size=4, max_steps=6, warmup_steps=2, checkpoint_every=2, keep_checkpoints=2,
                  log_every=1, ema_decay=0.9)
    return TrainConfig(**{**values, **overrides})


def _train(root: Path, cfg: TrainConfig, model_cfg: ModelConfig = TINY, labels: np.ndarray = LABELS,
           **kwargs) -> dict:
    return train_diffusion(cfg, model_cfg, DiffusionConfig(), AugmentConfig(), IMAGES, labels,
                           root / "out", root / "ck", progress=False, **kwargs)


def _weights(model_dir: Path, subfolder: str) -> dict[str, torch.Tensor]:
    return load_file(model_dir / subfolder / "diffusion_pytorch_model.safetensors")


def _assert_same_weights(a: Path, b: Path, atol: float = 0.0) -> None:
    for subfolder in ("unet", "unet_raw"):
        wa, wb = _weights(a, subfolder), _weights(b, subfolder)
        assert wa.keys() == wb.keys()
        differ = {k: float((wa[k] - wb[k]).abs().max()) for k in wa if not torch.allclose(wa[k], wb[k], 0.0, atol)}
        assert not differ, f"{subfolder}: {len(differ)} of {len(wa)} tensors differ, e.g. {list(differ.items())[:3]}"


def test_total_steps() -> None:
    assert total_steps(TrainConfig(max_steps=7, epochs=3), 1000, 4) == 7
    cfg = TrainConfig(max_steps=0, epochs=2.5, batch_size=8, grad_accum=2)
    assert total_steps(cfg, 100, 2) == 8  # ceil(2.5 * 100 / (8 * 2 * 2))
    assert total_steps(cfg, 100, 1) == 16


def test_batch_indices_are_seeded_epochs_back_to_back() -> None:
    stream = batch_indices(10, 3, 0, 30)
    epochs = stream.view(3, 10)
    assert all(sorted(e.tolist()) == list(range(10)) for e in epochs)
    assert not torch.equal(epochs[0], epochs[1])
    assert torch.equal(batch_indices(10, 3, 7, 9), stream[7:16])  # straddles an epoch boundary
    assert not torch.equal(batch_indices(10, 4, 0, 10), epochs[0])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU choice")
def test_two_runs_with_different_precisions_in_one_process(tmp_path: Path) -> None:
    """accelerate holds one precision per process; a second run asking for another still trains in it."""
    fp32 = _train(tmp_path / "fp32", _cfg(mixed_precision="no", max_steps=2))
    bf16 = _train(tmp_path / "bf16", _cfg(mixed_precision="bf16", max_steps=2))
    assert (fp32["mixed_precision"], bf16["mixed_precision"]) == ("no", "bf16")
    assert math.isfinite(fp32["final_loss"]) and math.isfinite(bf16["final_loss"])
    assert bf16["cpu"]["model"] and isinstance(bf16["cpu"]["flags"], list)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU choice")
def test_mixed_precision_on_cpu() -> None:
    """auto follows the CPU (tests/core/test_device.py); explicit settings are kept, fp16 is refused."""
    assert mixed_precision("no") == "no" and mixed_precision("bf16") == "bf16"
    with pytest.raises(DevagenError, match="train.mixed_precision"):
        mixed_precision("fp16")


@pytest.mark.parametrize("images,labels,match", [
    (IMAGES.astype(np.float32), LABELS, "uint8"),
    (IMAGES[:, :, :8], LABELS, r"\(N, S, S\)"),
    (IMAGES, LABELS[:5], "labels must be"),
    (IMAGES, np.full(24, 46), "labels must lie"),
])
def test_bad_data_is_refused(tmp_path: Path, images: np.ndarray, labels: np.ndarray, match: str) -> None:
    with pytest.raises(DevagenError, match=match):
        train_diffusion(_cfg(), TINY, DiffusionConfig(), AugmentConfig(), images, labels,
                        tmp_path / "out", tmp_path / "ck", progress=False)


def test_trains_saves_and_round_trips(tmp_path: Path) -> None:
    logged: list[tuple[int, dict]] = []
    metrics = _train(tmp_path, _cfg(max_steps=4, checkpoint_every=4), log_fn=lambda s, i: logged.append((i, s)))
    assert metrics["steps"] == 4 and metrics["resumed_from_step"] == 0 and metrics["global_batch"] == 4
    assert np.isfinite(metrics["final_loss"]) and metrics["img_per_s"] > 0 and metrics["epochs"] == pytest.approx(4 * 4 / 24)
    assert [i for i, _ in logged] == [1, 2, 3, 4] and set(logged[0][1]) == {"loss", "lr", "img_per_s"}
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["checksums.json", "devagen.json", "guide", "model_index.json",
                                                      "pen.json", "pipeline_devagen.py", "scheduler", "unet", "unet_raw",
                                                      "vae"]
    # guide/ too (a DVC out): without train.guide_step it holds a note, and autoguidance says there is no guide
    assert json.loads((out / "guide" / "guide.json").read_text()) == {"enabled": False}
    with pytest.raises(DevagenError, match=r"no guide/ network.*train.guide_step"):
        load_pipeline(out, with_guide=True)
    # pen.json is always there (a DVC out), null without pen conditioning, and checksummed like every file
    assert json.loads((out / "pen.json").read_text()) == {"pen": None}
    assert "pen.json" in json.loads((out / "checksums.json").read_text())["files"]
    meta = read_meta(out)
    assert meta.conditional and meta.null_label == 46 and meta.image_size == 16 and meta.preset == "tiny"
    assert DDPMScheduler.from_pretrained(out, subfolder="scheduler").config.prediction_type == "v_prediction"
    # The saved raw and EMA weights are exactly the ones in the final checkpoint.
    ckpt = tmp_path / "ck" / "step_0000004"
    raw, ema = build_unet(TINY, 16), build_unet(TINY, 16)
    raw.load_state_dict(load_file(ckpt / "model.safetensors"))
    shadow = torch.load(ckpt / "custom_checkpoint_0.pkl", weights_only=False)["shadow_params"]
    for param, value in zip(ema.parameters(), shadow):
        param.data.copy_(value)
    x, t, y = torch.randn(2, 1, 16, 16), torch.tensor([1, 800]), torch.tensor([3, 46])
    with torch.no_grad():
        for model, subfolder in ((raw, "unet_raw"), (ema, "unet")):
            loaded = UNet2DModel.from_pretrained(out, subfolder=subfolder)
            assert torch.equal(loaded(x, t, class_labels=y).sample, model(x, t, class_labels=y).sample)
    assert not torch.equal(_weights(out, "unet")["conv_in.weight"], _weights(out, "unet_raw")["conv_in.weight"])
    images = load_pipeline(out, sampler="ddim")(labels=[0, 5], num_inference_steps=2)
    assert images.shape == (2, 16, 16) and images.dtype == np.uint8


def test_unconditional_ignores_labels(tmp_path: Path) -> None:
    metrics = _train(tmp_path, _cfg(max_steps=1, ema_decay=0.0), ModelConfig(preset="tiny", conditional=False),
                     labels=np.full(24, -1))
    assert metrics["steps"] == 1
    assert UNet2DModel.from_pretrained(tmp_path / "out", subfolder="unet").config.num_class_embeds is None
    _assert_same_weights(tmp_path / "out", tmp_path / "out")  # EMA off: unet/ and unet_raw/ both exist
    assert torch.equal(_weights(tmp_path / "out", "unet")["conv_in.weight"],
                       _weights(tmp_path / "out", "unet_raw")["conv_in.weight"])


def test_interrupted_run_resumes_to_the_same_weights(tmp_path: Path) -> None:
    cfg = _cfg(grad_accum=2)
    _train(tmp_path / "whole", cfg)

    def crash(stats: dict, step: int) -> None:
        if step == 3:
            raise _Stop

    with pytest.raises(_Stop):
        _train(tmp_path / "cut", cfg, log_fn=crash)
    assert [s for s, _, _ in list_checkpoints(tmp_path / "cut" / "ck")] == [2]
    assert not (tmp_path / "cut" / "out").exists()
    metrics = _train(tmp_path / "cut", cfg)
    assert metrics["resumed_from_step"] == 2 and metrics["steps"] == 6
    _assert_same_weights(tmp_path / "whole" / "out", tmp_path / "cut" / "out")
    assert [s for s, _, _ in list_checkpoints(tmp_path / "cut" / "ck")] == [4, 6]  # keep_checkpoints 2
    again = _train(tmp_path / "cut", cfg)  # dvc repro -f with the finished run's checkpoint: nothing left to train
    assert again["resumed_from_step"] == 6 and again["img_per_s"] is None
    _assert_same_weights(tmp_path / "whole" / "out", tmp_path / "cut" / "out")


def test_changed_params_start_fresh(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _train(tmp_path, _cfg(max_steps=2))
    (old,) = {fp for _, _, fp in list_checkpoints(tmp_path / "ck")}
    metrics = _train(tmp_path, _cfg(max_steps=2, lr=2e-3))
    assert metrics["resumed_from_step"] == 0
    assert "different params" in caplog.text
    fingerprints = {fp for _, _, fp in list_checkpoints(tmp_path / "ck")}
    assert len(fingerprints) == 1 and old not in fingerprints


def test_guide_is_the_ema_snapshot_at_guide_step_and_survives_resume(tmp_path: Path) -> None:
    cfg = _cfg(guide_step=2, keep_checkpoints=5)

    def crash(stats: dict, step: int) -> None:
        if step == 5:
            raise _Stop

    with pytest.raises(_Stop):
        _train(tmp_path, cfg, log_fn=crash)
    _train(tmp_path, cfg)  # resumes from step 4, after the guide was taken
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["checksums.json", "devagen.json", "guide", "model_index.json",
                                                     "pen.json", "pipeline_devagen.py", "scheduler", "unet", "unet_raw",
                                                     "vae"]
    shadow = torch.load(tmp_path / "ck" / "step_0000002" / "custom_checkpoint_0.pkl", weights_only=False)["shadow_params"]
    guide = UNet2DModel.from_pretrained(out, subfolder="guide")
    assert all(torch.equal(p, s) for p, s in zip(guide.parameters(), shadow))
    assert not torch.equal(_weights(out, "guide")["conv_in.weight"], _weights(out, "unet")["conv_in.weight"])
    assert load_pipeline(out, with_guide=True).guide is not None


def test_guide_step_below_one_is_a_share_of_the_run(tmp_path: Path) -> None:
    cfg = _cfg(guide_step=0.4, keep_checkpoints=5)  # 0.4 of the run's 6 steps (max_steps of _cfg): step 2
    assert guide_at(cfg, 6) == 2 and guide_at(cfg, 100) == 40 and guide_at(cfg, 1) == 1
    _train(tmp_path, cfg)
    shadow = torch.load(tmp_path / "ck" / "step_0000002" / "custom_checkpoint_0.pkl", weights_only=False)["shadow_params"]
    guide = UNet2DModel.from_pretrained(tmp_path / "out", subfolder="guide")
    assert all(torch.equal(p, s) for p, s in zip(guide.parameters(), shadow))
    with pytest.raises(DevagenError, match="train.guide_step: a step"):
        _cfg(guide_step=2.5)


def test_guide_step_must_fall_inside_the_run(tmp_path: Path) -> None:
    with pytest.raises(DevagenError, match="train.guide_step"):
        _cfg(max_steps=4, guide_step=4)
    with pytest.raises(DevagenError, match="train.guide_step: 9 is not below"):
        _train(tmp_path, _cfg(max_steps=0, epochs=1, guide_step=9))  # 24 images / batch 4 = 6 steps


def test_nan_loss_stops_and_names_the_checkpoint(tmp_path: Path) -> None:
    cfg = _cfg(lr=1e30, grad_clip=0.0, warmup_steps=0, checkpoint_every=1, ema_decay=0.0)
    with pytest.raises(DevagenError, match=r"loss became \w+ at step \d+; last good checkpoint kept at .*step_000000\d"
                                           r"; lower train.lr"):
        _train(tmp_path, cfg)
    assert not (tmp_path / "out").exists()


def test_nan_between_log_reads_stops_before_the_next_checkpoint(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # The loss is read every log_every (5) steps and before each checkpoint (every 2 steps). Step 3's loss is
    # NaN (and poisons the weights): the stop names step 3, at the read before step 4's checkpoint, and keeps 2's
    from devagen.training import loop as training
    calls = {"n": 0}
    real_loss = training.diffusion_loss

    def nan_at_step_3(*args, **kwargs):
        calls["n"] += 1
        loss = real_loss(*args, **kwargs)
        return loss * math.nan if calls["n"] == 3 else loss

    monkeypatch.setattr(training, "diffusion_loss", nan_at_step_3)
    logged: list[int] = []
    with pytest.raises(DevagenError, match=r"loss became nan at step 3; last good checkpoint kept at .*step_0000002;"):
        _train(tmp_path, _cfg(checkpoint_every=2, log_every=5, max_steps=8), log_fn=lambda s, i: logged.append(i))
    assert [step for step, *_ in list_checkpoints(tmp_path / "ck")] == [2]
    assert logged == [] and calls["n"] == 4  # no log line yet; stopped at the read after step 4, before its save


def test_log_cadence_and_losses_do_not_depend_on_how_often_the_loss_is_read(tmp_path: Path) -> None:
    every_step: list[tuple[int, float]] = []
    _train(tmp_path / "a", _cfg(max_steps=7, checkpoint_every=100), log_fn=lambda s, i: every_step.append((i, s["loss"])))
    sparse: list[tuple[int, float]] = []
    _train(tmp_path / "b", _cfg(max_steps=7, checkpoint_every=100, log_every=3),
           log_fn=lambda s, i: sparse.append((i, s["loss"])))
    assert [i for i, _ in every_step] == list(range(1, 8))
    assert [i for i, _ in sparse] == [3, 6, 7]  # every log_every steps, and the last step
    read_each = dict(every_step)
    for step, loss in sparse:
        assert loss == pytest.approx(read_each[step], rel=1e-6)
    _assert_same_weights(tmp_path / "a" / "out", tmp_path / "b" / "out")


# ---------------------------------------------------------------- subprocess tests

SCRIPT = """
import hashlib, sys, time
from pathlib import Path
import numpy as np
from devagen.training import loop as training
from devagen.core.config import AugmentConfig, DiffusionConfig, TrainConfig
from devagen.core.shape import ModelConfig
{data}
root, steps, delay = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
save = training.save_trained_model

def record_then_save(run, ckpt, model_cfg, out_dir, pen=None):
    weights = b"".join(p.detach().cpu().numpy().tobytes() for p in run.model.parameters())
    (root / f"rank{{run.accelerator.process_index}}.sha256").write_text(hashlib.sha256(weights).hexdigest())
    save(run, ckpt, model_cfg, out_dir, pen)

training.save_trained_model = record_then_save
cfg = TrainConfig(batch_size=4, max_steps=steps, warmup_steps=2, checkpoint_every=2, log_every=1, grad_accum=2)
training.train_diffusion(cfg, ModelConfig(preset="tiny"), DiffusionConfig(), AugmentConfig(), images, labels,
                         root / "out", root / "ck", log_fn=lambda stats, step: time.sleep(delay), progress=False)
"""


def _script(tmp_path: Path) -> Path:
    path = tmp_path / "train_tiny.py"
    path.write_text(SCRIPT.format(data=DATA_CODE))
    return path


def _newest(checkpoint_dir: Path) -> int:
    return max((step for step, _, _ in list_checkpoints(checkpoint_dir)), default=0)


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "ACCELERATE_USE_CPU": "true"}


@pytest.mark.slow
def test_kill_9_then_resume_matches_uninterrupted(tmp_path: Path) -> None:
    script, steps = _script(tmp_path), 10
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    whole.mkdir(), cut.mkdir()
    subprocess.run([sys.executable, str(script), str(whole), str(steps), "0"], env=_env(), check=True, timeout=300)
    victim = subprocess.Popen([sys.executable, str(script), str(cut), str(steps), "0.5"], env=_env())
    deadline = time.monotonic() + 240
    while _newest(cut / "ck") < 4:
        assert victim.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.05)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    assert not (cut / "out").exists()
    assert 4 <= _newest(cut / "ck") < steps
    subprocess.run([sys.executable, str(script), str(cut), str(steps), "0"], env=_env(), check=True, timeout=300)
    # Bitwise equal in ~30 of ~31 runs; one early run differed (size not recorded, cause not found),
    # so allow float noise. A repeated or skipped step would move weights by ~lr = 1e-3.
    _assert_same_weights(whole / "out", cut / "out", atol=1e-5)
    assert not [p for p in (cut / "ck").iterdir() if p.name.startswith(".")]  # no temp dirs left behind


@pytest.mark.slow
def test_two_cpu_processes_end_with_identical_weights(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", "0", str(_script(tmp_path)), str(tmp_path), "4", "0"]
    subprocess.run(command, env=_env(), check=True, timeout=300)
    ranks = [(tmp_path / f"rank{i}.sha256").read_text() for i in range(2)]
    assert ranks[0] == ranks[1]
    meta = json.loads(list_checkpoints(tmp_path / "ck")[-1][1].joinpath("devagen_checkpoint.json").read_text())
    assert meta["facts"]["num_processes"] == 2 and meta["step"] == 4
    assert (tmp_path / "out" / "unet" / "config.json").is_file()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU refusal")
def test_compile_is_refused_on_cpu_before_training(tmp_path: Path) -> None:
    with pytest.raises(DevagenError, match=r"train\.compile: default needs a CUDA GPU; set train\.compile: off on CPU "
                                           r"\(DVC removed train's outputs .*`dvc checkout train` restores"):
        _train(tmp_path, _cfg(compile="default"))
    assert not (tmp_path / "ck").exists() and not (tmp_path / "out").exists()


def test_compile_mode_is_validated() -> None:
    with pytest.raises(DevagenError, match="train.compile"):
        TrainConfig(compile="fast")


@pytest.mark.slow
def test_compiled_training_saves_resumes_and_loads_like_eager(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """torch.compile (inductor, here on the CPU with the refusal lifted) changes nothing the run saves:
    no `_orig_mod.` keys in checkpoints or the model, a kill resumes, from_pretrained loads it."""
    import devagen.training.loop as training

    monkeypatch.setattr(training, "check_compile", lambda cfg: None)
    cfg = _cfg(compile="default", max_steps=4)

    def crash(stats: dict, step: int) -> None:
        if step == 3:
            raise _Stop
    with pytest.raises(_Stop):
        _train(tmp_path, cfg, log_fn=crash)
    metrics = _train(tmp_path, cfg)
    assert metrics["resumed_from_step"] == 2 and math.isfinite(metrics["final_loss"])
    for subfolder in ("unet", "unet_raw"):
        assert not [k for k in _weights(tmp_path / "out", subfolder) if "_orig_mod" in k]
    saved = [w for _, path, _ in list_checkpoints(tmp_path / "ck") for w in path.rglob("*.safetensors")]
    assert saved  # the checkpoints hold the model's weights as safetensors
    for weights in saved:
        assert not [k for k in load_file(weights) if "_orig_mod" in k], weights
    from devagen.sampling.pipeline import load_pipeline
    assert load_pipeline(tmp_path / "out", device="cpu").unet.config.sample_size == 16


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU refusal")
def test_train_command_refuses_compile_on_cpu_before_reading_data(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from devagen.cli import cli

    text = (Path(__file__).parents[2] / "params.yaml").read_text()
    (tmp_path / "params.yaml").write_text(text.replace("  compile: off ", "  compile: max-autotune "))
    monkeypatch.chdir(tmp_path)  # no data/prepared here: the refusal must come first
    result = CliRunner().invoke(cli, ["train"])
    assert result.exit_code == 1 and result.output.strip().count("\n") == 0
    assert "train.compile: max-autotune needs a CUDA GPU" in result.output and "npz" not in result.output
    assert "`dvc checkout train` restores the last model" in result.output


@pytest.mark.parametrize("augment", [False, True])
def test_the_default_preset_trains_a_few_steps(tmp_path: Path, augment: bool) -> None:
    """params.yaml's own model (cpu_patch3, pen-conditioned, AdaGN) and objective, with and without train.augment."""
    import yaml

    from devagen.core.params import params_from_dict
    from devagen.pen.conditions import measure_pen

    raw = yaml.safe_load((Path(__file__).parents[2] / "params.yaml").read_text())
    raw["train"].update(max_steps=3, batch_size=8, warmup_steps=1, augment=augment, mixed_precision="no", log_every=1)
    params = params_from_dict(raw)
    assert params.model.preset == "cpu_patch3" and params.model.style_conditioning
    rng = np.random.default_rng(0)
    images = np.zeros((46, 32, 32), np.uint8)
    for i, (top, left) in enumerate(rng.integers(4, 14, (46, 2))):  # a glyph-like cross per image, in ink
        images[i, top:top + 14, left + 6:left + 9] = 255
        images[i, top + 5:top + 8, left:left + 14] = 255
    labels = np.arange(46)
    result = train_diffusion(params.train, params.model, params.diffusion, params.augment, images, labels,
                             tmp_path / "out", tmp_path / "ck", progress=False, pen=measure_pen(images))
    assert result["steps"] == 3 and np.isfinite(result["final_loss"])
    config = json.loads((tmp_path / "out" / "unet" / "config.json").read_text())
    assert config["_class_name"] == "StyleUNet2DModel" and config["in_channels"] == 4
    assert config["block_out_channels"] == [64, 128, 128]  # three levels: 16x16, 8x8, 4x4 patches
    assert ("augment_dim" in config) == augment
    images_out = load_pipeline(tmp_path / "out", "sde-dpmpp", device="cpu")(
        labels=[0, 1], num_inference_steps=2, guidance_scale=2.0, generator=torch.Generator().manual_seed(0))
    assert images_out.shape == (2, 32, 32)
