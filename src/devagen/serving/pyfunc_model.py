"""The trained model as an MLflow pyfunc model: a DataFrame of requests in, base64 PNG images out.

Apart from tracking.py (which imports mlflow too) because it runs the serving code (pipeline, sampling,
text): only the report stage logs the model, so only it depends on that code.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, Mapping

import click
import pandas as pd

from ..core.tracking import Tracker

PYFUNC_PATH = "model"  # artifact path in the run: mlflow.pyfunc.load_model("runs:/<run id>/model")
# What devagen.serving.draw imports at run time; diffusers pinned: the saved folder's format follows it.
SERVING_REQUIREMENTS = ("torch", "accelerate", "numpy", "pillow", "pandas", "pyyaml", "tqdm", "scipy")


def _pyfunc_model(sampler: str, use_ema: bool, defaults: Mapping[str, Any]) -> Any:
    """A PythonModel: a DataFrame of requests (columns label and/or text) in, base64 PNG images out."""
    import mlflow.pyfunc

    class DevagenImages(mlflow.pyfunc.PythonModel):  # defined here so that mlflow is imported only when used
        """Generated handwriting: one PNG per request row (see devagen.serving.draw.draw)."""

        def __init__(self) -> None:
            self.sampler, self.use_ema, self.defaults = sampler, use_ema, dict(defaults)

        def load_context(self, context: Any) -> None:
            from devagen.sampling.pipeline import load_pipeline

            self.pipeline = load_pipeline(Path(context.artifacts["model_dir"]), self.sampler, self.use_ema)

        # MLflow reads predict's type hints (it warns without them): a DataFrame in and out, whose columns and params
        # the explicit signature (_pyfunc_signature) states and MLflow enforces on every request. The hints use only
        # names that the pickled function carries with it (pd: used below; builtins), so they resolve when MLflow
        # unpickles the model too. context: mlflow's PythonModelContext, unannotated (mlflow is imported lazily).
        def predict(self, context, model_input: pd.DataFrame,  # type: ignore[no-untyped-def]
                    params: dict | None = None) -> pd.DataFrame:
            from devagen.serving.draw import draw, png_base64

            p = {**self.defaults, **(params or {})}
            rows = model_input.to_dict("records") if hasattr(model_input, "to_dict") else list(model_input)
            images = draw(self.pipeline, rows, int(p["seed"]), int(p["steps"]), float(p["guidance_scale"]))
            return pd.DataFrame({"png": [png_base64(image) for image in images],
                                 "height": [image.shape[0] for image in images],
                                 "width": [image.shape[1] for image in images]})

    return DevagenImages()


def _pyfunc_signature(defaults: Mapping[str, Any]) -> Any:
    """Inputs: optional string columns label, text; outputs: png (base64), height, width; params with defaults."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

    inputs = Schema([ColSpec("string", "label", required=False), ColSpec("string", "text", required=False)])
    outputs = Schema([ColSpec("string", "png"), ColSpec("long", "height"), ColSpec("long", "width")])
    params = ParamSchema([ParamSpec("seed", "long", int(defaults["seed"])),
                          ParamSpec("steps", "long", int(defaults["steps"])),
                          ParamSpec("guidance_scale", "double", float(defaults["guidance_scale"]))])
    return ModelSignature(inputs=inputs, outputs=outputs, params=params)


def save_pyfunc_model(path: Path, model_dir: Path, sampler: str, use_ema: bool, defaults: Mapping[str, Any]) -> Path:
    """Write an MLflow pyfunc model to `path`: the model folder (one UNet: EMA or raw) and devagen's code."""
    import diffusers
    import mlflow.pyfunc

    weights = path.parent / "weights"
    unused = "unet_raw" if use_ema else "unet"
    shutil.copytree(model_dir, weights, ignore=lambda d, names: [unused] if Path(d) == Path(model_dir) else [])
    pyfunc_log = logging.getLogger("mlflow.pyfunc")
    level = pyfunc_log.level
    with warnings.catch_warnings():
        # MLflow also advises an input example and models-from-code: the explicit signature states the input, and
        # pickling the small model class is what keeps mlflow out of every module but this one. Nothing else is
        # silenced (predict's type hints answer MLflow's advice to add them).
        warnings.filterwarnings("ignore", message=".*An input example was not provided", category=UserWarning)
        pyfunc_log.setLevel(logging.ERROR)
        try:
            mlflow.pyfunc.save_model(str(path), python_model=_pyfunc_model(sampler, use_ema, defaults),
                                     artifacts={"model_dir": str(weights)}, code_paths=[str(Path(__file__).parent)],
                                     pip_requirements=[*SERVING_REQUIREMENTS, f"diffusers=={diffusers.__version__}"],
                                     signature=_pyfunc_signature(defaults))
        finally:
            pyfunc_log.setLevel(level)
    return path


def log_model(tracker: Tracker, model_dir: Path, sampler: str, use_ema: bool, defaults: Mapping[str, Any]) -> None:
    """Log the trained model into the tracker's run as a pyfunc model at artifact path "model" (see
    save_pyfunc_model); a failure is a warning, never a stop."""
    if not tracker.active:
        return
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tracker.log_artifact(save_pyfunc_model(Path(tmp) / "model", model_dir, sampler, use_ema, defaults),
                                 PYFUNC_PATH)
    except Exception as exc:  # noqa: BLE001 - tracking must never stop the pipeline
        click.echo(f"warning: MLflow model not logged ({type(exc).__name__}: {str(exc)[:200]})", err=True)
