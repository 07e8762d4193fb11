"""Kept for model folders saved before the package layout: their pipeline_devagen.py imports
`devagen.pipeline.DevagenPipeline`. New folders name devagen.sampling.pipeline."""

from .sampling.pipeline import DevagenPipeline

__all__ = ["DevagenPipeline"]
