"""End to end: a tiny DHCD-shaped archive through every dvc.yaml stage with `dvc repro`, outputs checked."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from dhcd_fixture import make_archive
from PIL import Image

from devagen.commands.common import headline

REPO = Path(__file__).parents[2]
TINY = {
    "train_ocr": {"epochs": 2, "batch_size": 32, "width": 8},
    "style_net": {"epochs": 1, "batch_size": 32, "width": 8, "train_images": 0},
    "c2st": {"epochs": 2, "width": 4},
    "model": {"preset": "tiny", "conditional": True},
    "train": {"max_steps": 6, "batch_size": 8, "warmup_steps": 2, "checkpoint_every": 3, "log_every": 2},
    "sample": {"steps": 2, "per_class": 2, "batch_size": 64, "tone_reference": 46},
    "distill": {"enabled": True, "start_steps": 2, "steps_per_round": 2, "batch_size": 4, "warmup_steps": 0,
                "per_class": 1},
    "evaluate": {"kid_subset_size": 20, "batch_size": 64, "cas": True, "cas_epochs": 2, "cas_batch_size": 32},
}


def _tiny_params(tmp: Path) -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for section, values in TINY.items():
        params[section].update(values)
    params["tracking"]["uri"] = f"sqlite:///{tmp / 'mlflow.db'}"
    (tmp / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def _run(args: list[str], cwd: Path, env: dict) -> str:
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


@pytest.mark.slow
def test_tiny_pipeline_with_dvc_repro(tmp_path: Path) -> None:
    for name in ("dvc.yaml", "src"):
        (shutil.copytree if (REPO / name).is_dir() else shutil.copy)(REPO / name, tmp_path / name)
    _tiny_params(tmp_path)
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ["PATH"], "DVC_NO_ANALYTICS": "1",
           "DHCD_ARCHIVE": str(make_archive(tmp_path / "dhcd.zip", train=6, test=3)),
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    env.pop("DVC_EXP_NAME", None)
    _run(["dvc", "init", "--no-scm", "-q"], tmp_path, env)
    _run(["dvc", "repro"], tmp_path, env)

    metrics = {p.stem: json.loads(p.read_text()) for p in (tmp_path / "reports/details").glob("*.json")}
    assert set(metrics) == {"data", "ocr", "style_net", "vae", "train", "distill", "noisy_classifier", "sample", "eval"}
    for stem, result in metrics.items():  # the DVC metrics files: only the headline of each whole result
        assert json.loads((tmp_path / "reports/metrics" / f"{stem}.json").read_text()) == headline(stem, result)
    assert {"steps_2_fid", "steps_1_ocr_accuracy"} <= set(headline("distill", metrics["distill"]))
    assert metrics["vae"] == metrics["noisy_classifier"] == {"enabled": False}
    with Image.open(tmp_path / "reports/figures/vae.png") as img:  # the banner that says latent diffusion is off
        assert img.width > 50 and img.height > 10
    assert [row["steps"] for row in metrics["distill"]["students"]] == [2, 1]
    assert all(0 <= row["ocr_accuracy"] <= 1 and np.isfinite(row["fid"]) for row in metrics["distill"]["students"])
    assert (tmp_path / "models/distilled/steps_1/unet/config.json").is_file()
    assert metrics["style_net"]["train_images"] == 46 * 6 and len(metrics["style_net"]["stage_scales"]) == 5
    assert metrics["data"]["train"] == 46 * 6 and metrics["data"]["test"] == 46 * 3
    assert 0.0 <= metrics["ocr"]["test_accuracy"] <= 1.0
    assert metrics["train"]["steps"] == 6 and np.isfinite(metrics["train"]["final_loss"])
    ev = metrics["eval"]
    for key in ("fid", "kid", "precision", "recall", "floor_fid", "ocr_accuracy", "per_class_accuracy",
                "space_fid", "space_kid", "space_precision", "space_recall", "floor_space_fid", "c2st_accuracy",
                "floor_c2st_accuracy", "tone_c2st_accuracy", "floor_tone_c2st_accuracy"):
        assert key in ev, key
    telltale = ev["c2st_telltale"]  # the samples the C2ST is surest of, each with a real neighbour of its class
    assert 0 < telltale["count"] <= 48 and len(telltale["neighbours"]) == telltale["count"]
    assert telltale["measures"] and {"measure", "generated", "real", "effect"} <= set(telltale["measures"][0])
    tone = json.loads((tmp_path / "models/diffusion/tone.json").read_text())["tone"]
    assert len(tone["thresholds"]) == 255 and tone["fitted_with"]["images"] == 46
    assert np.isfinite(ev["space_fid"]) and ev["space_fid"] >= 0 and 0 <= ev["c2st_accuracy"] <= 1
    assert np.isfinite(ev["fid"]) and ev["fid"] >= 0 and 0 <= ev["ocr_accuracy"] <= 1
    assert len(ev["per_class_accuracy"]) == 46
    assert ev["style"]["compared"]["classes"] == 46 and "style_ink_mass_ratio" in ev
    assert ev["style_stroke_width_ratio"] is None or ev["style_stroke_width_ratio"] > 0
    assert 0 <= ev["legible_share"] <= ev["confident_share"] <= 1 and 0 <= ev["floor_legible_share"] <= 1
    assert ev["cas_status"] == "computed" and 0 <= ev["cas_accuracy"] <= 1 and 0 < ev["cas_real_accuracy"] <= 1
    assert (tmp_path / "models/ocr/ood.safetensors").is_file()

    with np.load(tmp_path / "samples/samples.npz") as npz:
        assert npz["images"].shape == (92, 32, 32) and npz["images"].dtype == np.uint8
        assert sorted(set(npz["labels"].tolist())) == list(range(46))
    for name in ("dataset.png", "augment.png", "samples.png", "steps.png", "process.png", "denoising.gif",
                 "confusion.png", "style.png", "telltale.png", "loss_curve.png", "per_class.png", "distill.png"):
        with Image.open(tmp_path / "reports/figures" / name) as img:
            assert img.width > 50 and img.height > 30, name
    html = (tmp_path / "reports/report.html").read_text()
    assert html.count("data:image/") >= 8 and "http://" not in html.replace("http://www.w3.org", "")
    assert "nothing to reproduce" in _run(["dvc", "status"], tmp_path, env).lower() or \
        "up to date" in _run(["dvc", "status"], tmp_path, env).lower()
    assert "didn't change, skipping" in _run(["dvc", "repro"], tmp_path, env)

    # Each stage's deps are the code it runs (tests/commands/test_stage_deps.py): an edit to the report's code
    # makes the report stage, and it alone, out of date.
    with (tmp_path / "src/devagen/report/pages.py").open("a") as f:
        f.write("# edited\n")
    status = subprocess.run(["dvc", "status", "--json"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300, check=True)
    assert json.loads(status.stdout) == {"report": [{"changed deps": {"src/devagen/report/pages.py": "modified"}}]}

    # sample.sampler: distilled samples with the distill stage's student (one pass per step, no CFG pass)
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params["sample"].update(sampler="distilled", steps=1)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _run(["dvc", "repro", "-s", "sample"], tmp_path, env)
    sampled = json.loads((tmp_path / "reports/details/sample.json").read_text())
    assert sampled["sampler"] == "distilled" and sampled["nfe"] == 1 and sampled["images"] == 92
    assert "autoguidance_scale" not in sampled  # params.yaml's is not the student's: it folds CFG alone

    # vae.enabled: the vae stage trains the autoencoder and measures its reconstructions with the judge
    params["vae"].update(enabled=True, downsample=2, channels=2, width=8, steps=2, batch_size=8)
    params["sample"].update(sampler="sde-dpmpp", steps=2)
    params["distill"].update(enabled=False)  # refused with latent diffusion (not built for it)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _run(["dvc", "repro", "-s", "vae"], tmp_path, env)
    vae = json.loads((tmp_path / "reports/details/vae.json").read_text())
    assert vae["enabled"] and vae["latent_shape"] == [2, 16, 16] and vae["psnr_db"] > 0
    assert 0 <= vae["ocr_accuracy_reconstructed"] <= 1 and (tmp_path / "models/vae/config.json").is_file()

    # prepare.image_size: 64: the UNet (and the distilled students) work at 64x64 on upsampled DHCD; prepare, the judge and
    # the style net stay at DHCD's 32x32 and do not re-run; evaluate reads the samples resized back to 32
    params["vae"].update(enabled=False)
    params["distill"].update(enabled=True)
    params["prepare"].update(image_size=64)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    status = json.loads(subprocess.run(["dvc", "status", "--json"], cwd=tmp_path, env=env, capture_output=True,
                                       text=True, timeout=300, check=True).stdout)
    assert {"train", "sample"} <= set(status) and not {"prepare", "train_ocr", "style_net"} & set(status)
    out = _run(["dvc", "repro"], tmp_path, env)
    assert "64x64 samples resized" in out
    with np.load(tmp_path / "samples/samples.npz") as npz:
        assert npz["images"].shape == (92, 64, 64)
    with np.load(tmp_path / "data/prepared/test.npz") as npz:
        assert npz["images"].shape[1:] == (32, 32)
    ev = json.loads((tmp_path / "reports/details/eval.json").read_text())
    assert ev["sample_side"] == 64 and ev["judged_side"] == 32 and np.isfinite(ev["fid"])
    assert json.loads((tmp_path / "models/diffusion/unet/config.json").read_text())["sample_size"] == 64
    assert "64×64 images" in (tmp_path / "reports/report.html").read_text()
