"""The trained model folder's format, in one module: what training writes and sampling, serving and diffusers read.

A folder holds `unet/` (EMA weights), `unet_raw/` (raw weights), `scheduler/` (the DDPMScheduler it was trained
with), `devagen.json` (ModelMeta), `pen.json` (the pen of a pen-conditioned model, else null), `model_index.json`
and `pipeline_devagen.py` (for diffusers), `checksums.json` (written last: devagen.core.integrity), and when set
`guide/` (autoguidance) and `vae/` (latent diffusion). The sample stage adds `tone.json` (the tone map fitted for its
sampler, devagen.sampling.tone, or null) and the report stage the model card; neither is in checksums.json.
A learned-variance model (diffusion.learned_variance) has a UNet with twice the output channels and a scheduler/ that
says variance_type "learned_range", so diffusers' DDPMScheduler, loaded from the folder by DDPMPipeline or
DevagenPipeline, reads the variance half; load_pipeline refuses a folder whose two disagree.

The trained model folder as diffusers expects it: model_index.json, and for conditional models the
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
config: it lives in pen.json beside model_index.json, which stays small (devagen.sampling.pipeline writes and reads it;
diffusers never shows the pipeline's __init__ its folder, so DevagenPipeline reads pen.json when first asked).
"""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Any, Optional

from diffusers import DDPMScheduler, UNet2DModel

from ..core.errors import DevagenError
from ..core.integrity import damaged
from ..diffusion.unet import UNET_CLASSES
from ..pen.conditions import PenStyle
from .tone import ToneMap

META_FILE = "devagen.json"
PEN_FILE = "pen.json"  # {"pen": PenStyle as JSON, or null for a model without pen conditioning}
TONE_FILE = "tone.json"  # {"tone": ToneMap as JSON, or null: the output is not tone-mapped}
OLD_PEN_HOME = "model_index.json"  # where folders written before pen.json kept the pen (diffusers config, ~90 KB)
GUIDE_FOLDER = "guide"  # the early-training snapshot that autoguidance guides by
VAE_FOLDER = "vae"  # latent diffusion's autoencoder (devagen.diffusion.autoencoder), copied into the model folder
MODEL_INDEX = "model_index.json"
CUSTOM_MODULE = "pipeline_devagen"  # <model dir>/pipeline_devagen.py
CUSTOM_PIPELINE = f'''"""diffusers custom-pipeline file of a devagen model folder (model_index.json names it).

    DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)

imports this file and returns devagen's DevagenPipeline (pip install devagen first).
"""

from devagen.sampling.pipeline import DevagenPipeline

__all__ = ["DevagenPipeline"]
'''

CUSTOM_UNET_MODULE = "unet_devagen"  # <model dir>/unet/unet_devagen.py (style-conditioned models)
CUSTOM_UNET = '''"""diffusers custom-component file of a style-conditioned devagen UNet (model_index.json names it)."""

from devagen.diffusion.unet import StyleUNet2DModel

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


@dataclass(frozen=True)
class ModelMeta:
    """devagen.json: what a trained model directory holds besides weights."""

    class_names: tuple[str, ...]
    glyphs: tuple[str, ...]
    image_size: int
    conditional: bool
    null_label: Optional[int]
    preset: str  # (folders written before pen.json also hold a `pen` here; read_meta ignores it: read_pen)
    patch_size: int = 1  # the UNet denoises patch_size x patch_size pixel patches as channels (devagen.diffusion.patches)


def write_meta(meta: ModelMeta, model_dir: Path) -> None:
    """Write model_dir/devagen.json (UTF-8, glyphs unescaped)."""
    Path(model_dir).mkdir(parents=True, exist_ok=True)
    text = json.dumps(asdict(meta), ensure_ascii=False, indent=2)
    (Path(model_dir) / META_FILE).write_text(text + "\n", encoding="utf-8")


def broken(model_dir: Path, why: str) -> DevagenError:
    return DevagenError(f"{model_dir}: {why}; run `dvc repro train` to (re)build the model")


def read_meta(model_dir: Path) -> ModelMeta:
    """Read model_dir/devagen.json; a missing or malformed file raises DevagenError naming it."""
    path = Path(model_dir) / META_FILE
    if not path.is_file():
        raise broken(Path(model_dir), f"no {META_FILE} (not a trained model directory)")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        values = {f.name: raw[f.name] for f in fields(ModelMeta) if f.name in raw or f.default is MISSING}
    except (ValueError, KeyError, TypeError) as exc:
        raise damaged(Path(model_dir), f"{META_FILE} is malformed ({type(exc).__name__}: {exc})", "train") from None
    values["class_names"], values["glyphs"] = tuple(values["class_names"]), tuple(values["glyphs"])
    return ModelMeta(**values)


def write_pen(model_dir: Path, pen: Optional[PenStyle]) -> None:
    """Write model_dir/pen.json; a model without pen conditioning gets {"pen": null}, so the file always exists."""
    payload = {"pen": None if pen is None else pen.to_json()}
    (Path(model_dir) / PEN_FILE).write_text(json.dumps(payload) + "\n", encoding="utf-8")


def read_pen(model_dir: Path) -> Optional[PenStyle]:
    """model_dir's pen (None: no pen conditioning) from pen.json, or from model_index.json's `pen` in folders
    written before pen.json existed; DevagenError naming the file if it is missing or malformed."""
    model_dir = Path(model_dir)
    path = model_dir / PEN_FILE if (model_dir / PEN_FILE).is_file() else model_dir / OLD_PEN_HOME
    if not path.is_file():
        raise DevagenError(f"{model_dir}: neither {PEN_FILE} nor {OLD_PEN_HOME} (not a trained model directory); "
                           "run `dvc repro train` to (re)build the model")
    try:
        return PenStyle.from_json(json.loads(path.read_text(encoding="utf-8")).get("pen"))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise damaged(path, f"no valid pen ({type(exc).__name__}: {exc})", "train") from None


def load_unet(model_dir: Path, subfolder: str) -> UNet2DModel:
    """UNet2DModel from model_dir/subfolder, or DevagenError naming what is wrong."""
    if not (model_dir / subfolder / "config.json").is_file():
        raise broken(model_dir, f"no {subfolder}/config.json")
    try:
        cls = UNET_CLASSES.get(UNet2DModel.load_config(model_dir / subfolder).get("_class_name"), UNet2DModel)
        return cls.from_pretrained(model_dir / subfolder)
    except Exception as exc:  # diffusers/safetensors raise many types for truncated or foreign files
        raise damaged(model_dir, f"{subfolder}/ does not load ({type(exc).__name__})", "train") from exc


def load_ddpm_config(model_dir: Path) -> dict:
    """The training DDPMScheduler config saved in model_dir/scheduler/."""
    if not (model_dir / "scheduler" / DDPMScheduler.config_name).is_file():
        raise broken(model_dir, f"no scheduler/{DDPMScheduler.config_name}")
    try:
        return dict(DDPMScheduler.load_config(model_dir / "scheduler"))
    except Exception as exc:  # malformed JSON surfaces as EnvironmentError or ValueError
        raise damaged(model_dir, f"scheduler/ does not load ({type(exc).__name__})", "train") from exc


def write_tone(model_dir: Path, tone: Optional[ToneMap]) -> None:
    """Write model_dir/tone.json; None (tone mapping off) writes {"tone": null}, so the file always exists."""
    payload = {"tone": None if tone is None else tone.to_json()}
    (Path(model_dir) / TONE_FILE).write_text(json.dumps(payload) + "\n", encoding="utf-8")


def read_tone(model_dir: Path) -> Optional[ToneMap]:
    """model_dir's tone map; None when tone.json is absent (a folder the sample stage has not tone-mapped) or null;
    DevagenError naming the file if it is malformed."""
    path = Path(model_dir) / TONE_FILE
    if not path.is_file():
        return None
    try:
        return ToneMap.from_json(json.loads(path.read_text(encoding="utf-8")).get("tone"))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise damaged(path, f"no valid tone map ({type(exc).__name__}: {exc})", "sample") from None
