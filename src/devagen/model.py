"""Kept for model folders saved before the package layout: their unet/unet_devagen.py imports
`devagen.model.StyleUNet2DModel`. New folders name devagen.diffusion.unet."""

from .diffusion.unet import StyleUNet2DModel

__all__ = ["StyleUNet2DModel"]
