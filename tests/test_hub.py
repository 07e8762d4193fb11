"""The model folder loads with plain diffusers, offline: the source document's code for unconditional
models, DiffusionPipeline with the folder's custom-pipeline file for conditional ones."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from devagen.hub import model_index

REPO = Path(__file__).parents[1]

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
from devagen.pipeline import DevagenPipeline
ours = DevagenPipeline(unet=pipeline.unet, scheduler=DPMSolverMultistepScheduler())
again = ours(batch_size=4, generator=torch.Generator().manual_seed(0), num_inference_steps=10, black_point=0)
out["uncond_max_diff"] = int(np.abs(np.stack([np.asarray(i, np.int16) for i in images]) - again.astype(np.int16)).max())

# README's one-line load of a conditional model.
pipe = DiffusionPipeline.from_pretrained(cond, trust_remote_code=True).use_sampler("dpmpp")
drawn = pipe(labels=[0, 33], guidance_scale=2.0, num_inference_steps=3, generator=torch.manual_seed(1))
from devagen.pipeline import load_pipeline
ref = load_pipeline(cond, "dpmpp", device="cpu")(labels=[0, 33], guidance_scale=2.0, num_inference_steps=3,
                                                 generator=torch.manual_seed(1))
out["cond"] = [type(pipe).__module__ + "." + type(pipe).__name__, list(drawn.shape), bool((drawn == ref).all())]
print("RESULT " + json.dumps(out))
'''


def test_model_index_names_the_pipeline_and_components() -> None:
    assert model_index(False, "0.42.1")["_class_name"] == "DDPMPipeline"
    cond = model_index(True, "0.42.1")
    assert cond["_class_name"] == ["pipeline_devagen", "DevagenPipeline"]
    assert cond["unet"] == ["diffusers", "UNet2DModel"] and cond["scheduler"] == ["diffusers", "DDPMScheduler"]


def test_diffusers_loads_both_kinds_offline(tiny_model_dir: Path, tiny_uncond_model_dir: Path, tmp_path: Path) -> None:
    assert json.loads((tiny_uncond_model_dir / "model_index.json").read_text())["_class_name"] == "DDPMPipeline"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tiny_uncond_model_dir), str(tiny_model_dir)],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.split("RESULT ", 1)[1])
    assert result["uncond"] == ["DDPMPipeline", 4, "L", [16, 16]]
    assert result["uncond_max_diff"] <= 1  # rounding to uint8 only
    assert result["cond"] == ["devagen.pipeline.DevagenPipeline", [2, 16, 16], True]
