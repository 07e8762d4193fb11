"""The model folder loads with plain diffusers, offline: the source document's code for unconditional
models, DiffusionPipeline with the folder's custom-pipeline file for conditional ones."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from model_fixture import FIXTURE_PEN

from devagen.core.errors import DevagenError
from devagen.sampling.folder import MODEL_INDEX, PEN_FILE, model_index, read_pen, read_tone, write_tone
from devagen.sampling.pipeline import DevagenPipeline, load_pipeline
from devagen.sampling.tone import ToneMap

REPO = Path(__file__).parents[2]

# Run in a fresh interpreter with the Hub switched off, the way a user would type it.
SCRIPT = r'''
import json, sys
import numpy as np
import torch
from diffusers import DDPMPipeline, DiffusionPipeline, DPMSolverMultistepScheduler

uncond, cond = sys.argv[1], sys.argv[2]
out = {}

# The source document's code, verbatim apart from the path.
pipeline = DDPMPipeline.from_pretrained(uncond)
pipeline.scheduler = DPMSolverMultistepScheduler()
images = pipeline(batch_size=4, generator=torch.Generator().manual_seed(0), num_inference_steps=10).images
out["uncond"] = [type(pipeline).__name__, len(images), images[0].mode, list(images[0].size)]

# The same weights through devagen's pipeline and the same scheduler give the same pixels (without the black
# point, which diffusers' DDPMPipeline does not have).
from devagen.sampling.pipeline import DevagenPipeline
ours = DevagenPipeline(unet=pipeline.unet, scheduler=DPMSolverMultistepScheduler())
again = ours(batch_size=4, generator=torch.Generator().manual_seed(0), num_inference_steps=10, black_point=0)
out["uncond_max_diff"] = int(np.abs(np.stack([np.asarray(i, np.int16) for i in images]) - again.astype(np.int16)).max())

# README's one-line load of a conditional model.
pipe = DiffusionPipeline.from_pretrained(cond, trust_remote_code=True).use_sampler("dpmpp")
drawn = pipe(labels=[0, 33], guidance_scale=2.0, num_inference_steps=3, generator=torch.manual_seed(1))
from devagen.sampling.pipeline import load_pipeline
ref = load_pipeline(cond, "dpmpp", device="cpu")(labels=[0, 33], guidance_scale=2.0, num_inference_steps=3,
                                                 generator=torch.manual_seed(1))
out["cond"] = [type(pipe).__module__ + "." + type(pipe).__name__, list(drawn.shape), bool((drawn == ref).all())]
# The folder's tone map (tone.json) reaches diffusers' pipeline too: switched off, the pixels differ.
plain = pipe(labels=[0, 33], guidance_scale=2.0, num_inference_steps=3, generator=torch.manual_seed(1), tone_map=False)
out["tone"] = [pipe.tone is not None, bool((drawn != plain).any())]
print("RESULT " + json.dumps(out))
'''


def test_model_index_names_the_pipeline_and_components() -> None:
    assert model_index(False, "0.42.1")["_class_name"] == "DDPMPipeline"
    cond = model_index(True, "0.42.1")
    assert cond["_class_name"] == ["pipeline_devagen", "DevagenPipeline"]
    assert cond["unet"] == ["diffusers", "UNet2DModel"] and cond["scheduler"] == ["diffusers", "DDPMScheduler"]


def _offline(script: str, folders: list[Path], tmp_path: Path) -> dict:
    """Run `script` on the model folders in a fresh offline Python (plain diffusers, no devagen helpers) and
    return the JSON it prints after RESULT."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", script, *map(str, folders)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.split("RESULT ", 1)[1])


def test_diffusers_loads_both_kinds_offline(tiny_model_dir: Path, tiny_uncond_model_dir: Path, tmp_path: Path) -> None:
    assert json.loads((tiny_uncond_model_dir / "model_index.json").read_text())["_class_name"] == "DDPMPipeline"
    toned = Path(shutil.copytree(tiny_model_dir, tmp_path / "toned"))
    write_tone(toned, ToneMap(tuple(float(t) for t in np.linspace(20, 230, 255))))  # a contrast stretch
    result = _offline(SCRIPT, [tiny_uncond_model_dir, toned], tmp_path)
    assert result["uncond"] == ["DDPMPipeline", 4, "L", [16, 16]]
    assert result["uncond_max_diff"] <= 1  # rounding to uint8 only
    assert result["cond"] == ["devagen.sampling.pipeline.DevagenPipeline", [2, 16, 16], True]
    assert result["tone"] == [True, True]


# A style-conditioned folder through both diffusers calls: each pipeline must draw with the folder's pen, so its
# images equal load_pipeline's (the pen of each image is drawn from the pool), and a different pool changes them.
STYLE_SCRIPT = r'''
import dataclasses, json, sys
import torch
from diffusers import DiffusionPipeline
from devagen.sampling.pipeline import DevagenPipeline, load_pipeline
from devagen.sampling.tone import ToneMap

def draw(pipe):
    gens = [torch.Generator().manual_seed(i) for i in range(2)]
    return pipe.use_sampler("dpmpp")(labels=[0, 5], num_inference_steps=2, generator=gens)

out = {}
for kind, folder in (("new", sys.argv[1]), ("old", sys.argv[2])):
    ref = load_pipeline(folder, "dpmpp", device="cpu")
    want = draw(ref)
    bold = dataclasses.replace(ref.pen, pool=tuple((c, 1.7, 25.0) for c, _, _ in ref.pen.pool))
    other = DevagenPipeline(unet=ref.unet, scheduler=ref.scheduler, pen=bold)
    out[kind + "_pen_matters"] = bool((draw(other) != want).any())
    loaded = {"diffusion": DiffusionPipeline.from_pretrained(folder, trust_remote_code=True),
              "devagen": DevagenPipeline.from_pretrained(folder, trust_remote_code=True)}
    for how, pipe in loaded.items():
        out[kind + "_" + how] = [type(pipe).__name__, list(pipe.pen.stroke_range), pipe.pen == ref.pen,
                                 bool((draw(pipe) == want).all())]
print("RESULT " + json.dumps(out))
'''


def _old_format_copy(model_dir: Path, into: Path) -> Path:
    """model_dir as code before pen.json wrote it: the pen in model_index.json (and devagen.json), no pen.json."""
    old = Path(shutil.copytree(model_dir, into))
    pen = json.loads((old / PEN_FILE).read_text())["pen"]
    (old / PEN_FILE).unlink()
    for name in (MODEL_INDEX, "devagen.json"):
        raw = json.loads((old / name).read_text())
        (old / name).write_text(json.dumps({**raw, "pen": pen}, indent=2), encoding="utf-8")
    return old


def test_pen_lives_in_pen_json_and_model_index_stays_small(tiny_style_model_dir: Path,
                                                           tiny_uncond_model_dir: Path) -> None:
    index = json.loads((tiny_style_model_dir / MODEL_INDEX).read_text())
    assert (tiny_style_model_dir / MODEL_INDEX).stat().st_size <= 5_000 and "pen" not in index
    assert "pen" not in json.loads((tiny_style_model_dir / "devagen.json").read_text())  # one source of truth
    assert read_pen(tiny_style_model_dir) == FIXTURE_PEN
    assert json.loads((tiny_uncond_model_dir / PEN_FILE).read_text()) == {"pen": None}
    assert read_pen(tiny_uncond_model_dir) is None


def test_read_pen_falls_back_to_old_folders_and_names_a_bad_file(tiny_style_model_dir: Path, tmp_path: Path) -> None:
    assert read_pen(_old_format_copy(tiny_style_model_dir, tmp_path / "old")) == FIXTURE_PEN
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / PEN_FILE).write_text('{"pen": {"median_width_px": 2}}')
    with pytest.raises(DevagenError, match=r"pen\.json: damaged or unreadable .*dvc repro -f -s train"):
        read_pen(tmp_path / "bad")


def test_a_pipeline_without_its_pen_names_pen_json(tiny_style_model_dir: Path, tmp_path: Path) -> None:
    pipe = load_pipeline(tiny_style_model_dir, "dpmpp", device="cpu")
    bare = DevagenPipeline(unet=pipe.unet, scheduler=pipe.scheduler)
    with pytest.raises(DevagenError, match="needs its pen ranges.*pen.json"):
        bare(labels=[0], num_inference_steps=1)
    pipe.tone = ToneMap(tuple(float(t) for t in range(255)))
    pipe.save_pretrained(tmp_path / "saved")  # diffusers' save writes pen.json too, not the pen into model_index.json
    assert json.loads((tmp_path / "saved" / MODEL_INDEX).read_text()).get("pen") is None
    assert read_pen(tmp_path / "saved") == FIXTURE_PEN and read_tone(tmp_path / "saved") == pipe.tone


def test_diffusers_loads_style_folders_new_and_old_with_their_pen(tiny_style_model_dir: Path, tmp_path: Path) -> None:
    old = _old_format_copy(tiny_style_model_dir, tmp_path / "old")
    result = _offline(STYLE_SCRIPT, [tiny_style_model_dir, old], tmp_path)
    for kind in ("new", "old"):
        assert result[f"{kind}_pen_matters"]
        for how in ("diffusion", "devagen"):
            assert result[f"{kind}_{how}"] == ["DevagenPipeline", [0.5, 1.8], True, True], (kind, how)
