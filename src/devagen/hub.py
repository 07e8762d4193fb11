"""The trained model folder as diffusers expects it: model_index.json, and for conditional models the
custom-pipeline file that lets `DiffusionPipeline.from_pretrained` return devagen's pipeline.

diffusers resolves a folder's pipeline class from model_index.json's `_class_name`:
- a string names a class of the diffusers package. Unconditional models say "DDPMPipeline", so the
  source document's `DDPMPipeline.from_pretrained(folder)` (and DiffusionPipeline's) load them.
- a [module, class] pair whose module is a .py file in the folder is a custom pipeline: diffusers
  imports that file (only with `trust_remote_code=True`) and takes the class from it. Conditional
  models need class labels, which DDPMPipeline cannot pass, so they name
  ["pipeline_devagen", "DevagenPipeline"] and pipeline_devagen.py re-exports devagen's class.
Both name the same components: unet/ (EMA weights) and scheduler/ (the training DDPM schedule). A
style-conditioned UNet is devagen's StyleUNet2DModel: a custom component, named in the index as
["unet_devagen", "StyleUNet2DModel"] with unet/unet_devagen.py re-exporting it (diffusers imports a
component's module from a .py file in its folder).
The pen of a style-conditioned model (its trained ranges and its pool of real styles, ~90 KB) is no diffusers
config: it lives in pen.json beside model_index.json, which stays small (devagen.pipeline writes and reads it;
diffusers never shows the pipeline's __init__ its folder, so DevagenPipeline reads pen.json when first asked).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from .pen import PenStyle
from .pipeline import write_pen

MODEL_INDEX = "model_index.json"
CUSTOM_MODULE = "pipeline_devagen"  # <model dir>/pipeline_devagen.py
CUSTOM_PIPELINE = f'''"""diffusers custom-pipeline file of a devagen model folder (model_index.json names it).

    DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)

imports this file and returns devagen's DevagenPipeline (pip install devagen first).
"""

from devagen.pipeline import DevagenPipeline

__all__ = ["DevagenPipeline"]
'''

CUSTOM_UNET_MODULE = "unet_devagen"  # <model dir>/unet/unet_devagen.py (style-conditioned models)
CUSTOM_UNET = '''"""diffusers custom-component file of a style-conditioned devagen UNet (model_index.json names it)."""

from devagen.model import StyleUNet2DModel

__all__ = ["StyleUNet2DModel"]
'''


def model_index(conditional: bool, diffusers_version: str, pen: Optional[PenStyle] = None,
                scheduler: str = "DDPMScheduler", vae: bool = False, patch_size: int = 1) -> dict[str, Any]:
    """model_index.json's content: pipeline class (DDPMPipeline, or devagen's for conditional models and for patch
    models, whose output DDPMPipeline would not rearrange into pixels) and components. A style-conditioned model's
    UNet is devagen's StyleUNet2DModel (its pen goes to pen.json: write_pen); a patch model's patch side rides along
    as the pipeline's `patch_size`."""
    pipeline = [CUSTOM_MODULE, "DevagenPipeline"] if conditional or patch_size > 1 else "DDPMPipeline"
    unet = [CUSTOM_UNET_MODULE, "StyleUNet2DModel"] if pen is not None else ["diffusers", "UNet2DModel"]
    index = {"_class_name": pipeline, "_diffusers_version": diffusers_version,
             "scheduler": ["diffusers", scheduler], "unet": unet}
    if vae:  # latent diffusion: the autoencoder whose latent space the UNet works in
        index["vae"] = ["diffusers", "AutoencoderKL"]
    if patch_size > 1:
        index["patch_size"] = patch_size
    return index


def write_model_index(model_dir: Path, conditional: bool, pen: Optional[PenStyle] = None,
                      scheduler: str = "DDPMScheduler", unets: tuple[str, ...] = ("unet", "unet_raw"),
                      vae: bool = False, patch_size: int = 1) -> None:
    """Write model_dir/model_index.json, model_dir/pen.json and model_dir/pipeline_devagen.py (used by conditional
    models only); `scheduler` names scheduler/'s diffusers class, `unets` the UNet folders (a distilled student has
    only unet/)."""
    import diffusers

    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    index = model_index(conditional, diffusers.__version__, pen, scheduler, vae, patch_size)
    (model_dir / MODEL_INDEX).write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    write_pen(model_dir, pen)
    (model_dir / f"{CUSTOM_MODULE}.py").write_text(CUSTOM_PIPELINE, encoding="utf-8")
    if pen is not None:  # diffusers' custom component: a .py file in the component's folder, named in the index
        for folder in unets:
            (model_dir / folder).mkdir(exist_ok=True)
            (model_dir / folder / f"{CUSTOM_UNET_MODULE}.py").write_text(CUSTOM_UNET, encoding="utf-8")
