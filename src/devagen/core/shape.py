"""The model section of params.yaml: a named preset (core.presets) and the keys that override its UNet's shape.

Every override left null keeps the preset's value, so the preset's network is built exactly as before. Each key is
checked here on its own; core.presets resolves the shape against the preset and refuses one that cannot be built
(called when params load, so before any work). Levels count from the UNet's first, full-resolution level (0); level i
works at 1/2^i of its input side (a patch preset's input is already the image side / patch size).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from .errors import check

# model.mid_block -> the UNet2DModel arguments of its middle block (between the down and up paths)
MID_BLOCKS: dict[str, dict[str, Any]] = {
    "attention": {"mid_block_type": "UNetMidBlock2D", "add_attention": True},  # two ResNet blocks around attention
    "plain": {"mid_block_type": "UNetMidBlock2D", "add_attention": False},  # the two ResNet blocks only
    "none": {"mid_block_type": None},  # no middle block
}
SHAPE_KEYS = ("block_out_channels", "attention_levels", "layers_per_block", "mid_block", "norm_num_groups", "dropout",
              "attention_head_dim")


@dataclass(frozen=True)
class ModelConfig:
    """Which UNet2DModel to build; `conditional` adds 46 class embeddings + a null label. The shape keys override
    the preset's (None: the preset's value)."""

    preset: str = "cpu_small"
    conditional: bool = True
    style_conditioning: bool = False  # also condition on each image's stroke width and slant (devagen.pen.conditions)
    scale_shift: bool = True  # AdaGN: the time/class/pen embedding scales and shifts each ResNet block's normalised
                              # features (diffusers' resnet_time_scale_shift="scale_shift"), not only a bias added
    block_out_channels: Optional[tuple[int, ...]] = None  # one width per level; the level count sets the downsampling
    attention_levels: Optional[tuple[int, ...]] = None  # levels whose down and up blocks attend; () for none
    layers_per_block: Optional[int] = None  # ResNet layers per down block (up blocks get one more)
    mid_block: Optional[str] = None  # attention | plain (ResNets only) | none (see MID_BLOCKS)
    norm_num_groups: Optional[int] = None  # GroupNorm groups; must divide every width
    dropout: Optional[float] = None  # in every ResNet block
    attention_head_dim: Optional[int] = None  # channels per attention head; must divide the attending widths
    self_conditioning: bool = False  # also reads its previous clean-image estimate (devagen.diffusion.self_condition)
    layout_conditioning: bool = False  # also reads the ink's centroid and spread as pen codes (devagen.pen.conditions)

    def __post_init__(self) -> None:
        for key in ("block_out_channels", "attention_levels"):  # lists from code or YAML: frozen, hashable tuples
            if getattr(self, key) is not None:
                object.__setattr__(self, key, tuple(getattr(self, key)))
        check(self.conditional or not self.style_conditioning, "model.style_conditioning",
              "needs model.conditional: true (the style rides on the class embedding)")
        check(self.style_conditioning or not self.layout_conditioning, "model.layout_conditioning",
              "needs model.style_conditioning: true (the layout codes ride with the pen's)")
        check(self.block_out_channels is None or (len(self.block_out_channels) >= 1
                                                  and all(w >= 1 for w in self.block_out_channels)),
              "model.block_out_channels", "list one positive width per level, e.g. [64, 128], or null for the preset's")
        check(self.layers_per_block is None or self.layers_per_block >= 1, "model.layers_per_block", "must be >= 1")
        check(self.mid_block is None or self.mid_block in MID_BLOCKS, "model.mid_block",
              f"choose one of {', '.join(MID_BLOCKS)}, or null for the preset's")
        check(self.norm_num_groups is None or self.norm_num_groups >= 1, "model.norm_num_groups", "must be >= 1")
        check(self.dropout is None or 0 <= self.dropout < 1, "model.dropout", "must be in [0, 1)")
        check(self.attention_head_dim is None or self.attention_head_dim >= 1, "model.attention_head_dim",
              "must be >= 1")

    def overrides(self) -> dict[str, Any]:
        """The shape keys that are set (not null), by name."""
        return {k: getattr(self, k) for k in SHAPE_KEYS if getattr(self, k) is not None}
