"""The model section of params.yaml: a named preset (core.presets) and the keys that override its UNet's shape.

Every override left null keeps the preset's value, so the preset's network is built exactly as before. The
shape is resolved and checked when params load, so a network that cannot be built is refused before any work.
Levels count from the UNet's first, full-resolution level (0); level i works at 1/2^i of its input side (a patch
preset's input is already the image side / patch size).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from .errors import check
from .presets import PRESETS, downsample_factor, patch_size, unet_shape

# model.mid_block -> the UNet2DModel arguments of its middle block (between the down and up paths)
MID_BLOCKS: dict[str, dict[str, Any]] = {
    "attention": {"mid_block_type": "UNetMidBlock2D", "add_attention": True},  # two ResNet blocks around attention
    "plain": {"mid_block_type": "UNetMidBlock2D", "add_attention": False},  # the two ResNet blocks only
    "none": {"mid_block_type": None},  # no middle block
}
UNET_DEFAULTS = {"norm_num_groups": 32, "attention_head_dim": 8}  # UNet2DModel's own, where a preset sets none


def attention_levels(shape: dict[str, Any]) -> tuple[int, ...]:
    """Levels (0 = full resolution) whose down and up blocks attend, read from a shape's down_block_types."""
    return tuple(i for i, kind in enumerate(shape["down_block_types"]) if kind.startswith("Attn"))


def block_types(levels: int, attention: tuple[int, ...]) -> dict[str, tuple[str, ...]]:
    """down_block_types and up_block_types for `levels` levels with attention at `attention`; up block j serves
    level levels-1-j."""
    down = tuple("AttnDownBlock2D" if i in attention else "DownBlock2D" for i in range(levels))
    return {"down_block_types": down,
            "up_block_types": tuple(kind.replace("Down", "Up") for kind in reversed(down))}


def _levels(preset: str, channels: Optional[tuple[int, ...]], attention: Optional[tuple[int, ...]]) -> dict[str, Any]:
    """The block widths and types: the preset's, or rebuilt from the overrides (attention stays at the preset's
    levels, that is at the same resolutions, unless model.attention_levels says otherwise)."""
    base = unet_shape(preset)
    if channels is None and attention is None:
        return {}
    widths = channels if channels is not None else base["block_out_channels"]
    attend = attention if attention is not None else attention_levels(base)
    whose = "" if attention is not None else f"preset {preset!r} attends at "
    check(all(0 <= i < len(widths) for i in attend) and len(set(attend)) == len(attend), "model.attention_levels",
          f"{whose}{list(attend)}, not distinct levels in [0, {len(widths) - 1}] (one per model.block_out_channels "
          "entry); list the levels that attend, [] for none")
    return {"block_out_channels": tuple(widths), **block_types(len(widths), tuple(attend))}


def _check_shape(shape: dict[str, Any]) -> None:
    """One-line refusals of a resolved shape that UNet2DModel cannot build (or builds other than asked)."""
    widths, groups = shape["block_out_channels"], shape.get("norm_num_groups", UNET_DEFAULTS["norm_num_groups"])
    check(all(w % groups == 0 for w in widths), "model.norm_num_groups",
          f"{groups} groups must divide every width in model.block_out_channels {list(widths)}; "
          "change one of them (e.g. widths that are multiples of 32, or norm_num_groups 8)")
    head = shape.get("attention_head_dim", UNET_DEFAULTS["attention_head_dim"])
    attending = [widths[i] for i in attention_levels(shape)]
    if shape.get("mid_block_type", "UNetMidBlock2D") is not None and shape.get("add_attention", True):
        attending.append(widths[-1])
    check(all(w % head == 0 for w in attending), "model.attention_head_dim",
          f"{head} must divide the width of every level that attends ({sorted(set(attending))}); "
          "change it or model.block_out_channels")


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

    def __post_init__(self) -> None:
        for key in ("block_out_channels", "attention_levels"):  # lists from code or YAML: frozen, hashable tuples
            if getattr(self, key) is not None:
                object.__setattr__(self, key, tuple(getattr(self, key)))
        check(self.preset in PRESETS, "model.preset", f"unknown preset {self.preset!r}; choose one of {', '.join(PRESETS)}")
        check(self.conditional or not self.style_conditioning, "model.style_conditioning",
              "needs model.conditional: true (the style rides on the class embedding)")
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
        _check_shape(self.unet_shape)

    @property
    def unet_shape(self) -> dict[str, Any]:
        """UNet2DModel keyword arguments of the shape: the preset's, with the non-null overrides applied."""
        shape = {**unet_shape(self.preset), **_levels(self.preset, self.block_out_channels, self.attention_levels)}
        if self.mid_block is not None:
            shape = {k: v for k, v in shape.items() if k not in ("mid_block_type", "add_attention")}
            shape.update(MID_BLOCKS[self.mid_block])
        for key in ("layers_per_block", "norm_num_groups", "dropout", "attention_head_dim"):
            if getattr(self, key) is not None:
                shape[key] = getattr(self, key)
        return shape

    @property
    def patch_size(self) -> int:
        """Side of the pixel patches the UNet sees as channels (1: it works on pixels); the preset's."""
        return patch_size(self.preset)

    @property
    def downsample_factor(self) -> int:
        """How many times the UNet shrinks the image (patching included): the image side must be a multiple."""
        return downsample_factor(self.preset, len(self.unet_shape["block_out_channels"]))
