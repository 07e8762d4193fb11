"""Named UNet2DModel shapes, and a preset with params.yaml's shape overrides (core.shape) resolved and checked. Pure
data (no torch), so params can be validated cheaply."""

from __future__ import annotations

from typing import Any, Mapping, Optional

from .errors import check
from .shape import MID_BLOCKS, ModelConfig

# The source document's network. Its code lists down_block_types with a missing comma
# ("DownBlock2D" "DownBlock2D" concatenates into one bogus 5-entry tuple); this is the
# intended 6-entry list: attention at the 5th level (2x2 for 32x32 inputs). 77.36 M parameters
# unconditional (FINDINGS.md's "75.0 M" is these widths with attention at a 256-channel level).
SEED = {
    "block_out_channels": (128, 128, 256, 256, 512, 512),
    "down_block_types": ("DownBlock2D", "DownBlock2D", "DownBlock2D", "DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D"),
    "layers_per_block": 1,
}

TINY = {
    "block_out_channels": (16, 32),
    "down_block_types": ("DownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "UpBlock2D"),
    "layers_per_block": 1,
    "norm_num_groups": 8,
}

# The CPU default before cpu_patch3. The network sees 2x2 patches: each 32x32 image is denoised as 4 x 16 x 16
# (pixel_unshuffle, lossless; the pipeline shuffles its output back), so the UNet has no 32x32 level, where
# cpu_conv spends two thirds of its fp32 time. 64 / 128 channels at 16x16 / 8x8; 2.10 M parameters class- and
# pen-conditioned. Measured (2-core Intel Xeon with AMX, batch 32): 1.7x cpu_conv's img/s in bf16, 1.9x in fp32;
# sampling 2.8x (benchmarks/results/cpu_patch/README.md)
CPU_PATCH = {
    "block_out_channels": (64, 128),
    "down_block_types": ("DownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "UpBlock2D"),
    "layers_per_block": 1,
    "mid_block_type": None,
    "patch_size": 2,
}

PRESETS: dict[str, dict[str, Any]] = {
    "seed": SEED,
    # For tests: seconds per step on CPU, learns nothing useful.
    "tiny": TINY,
    # For tests: `tiny` seeing 2x2 patches (devagen.diffusion.patches).
    "tiny_patch": {**TINY, "patch_size": 2},
    # CPU: cost follows full-resolution convs and 16x16 attention, so keep the 32x32
    # level narrow and put attention only at 8x8.
    "cpu_small": {
        "block_out_channels": (32, 64, 128),
        "down_block_types": ("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
        "up_block_types": ("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        "layers_per_block": 1,
    },
    # The CPU default before cpu_patch: cpu_small without its four attention layers (no mid block either); 1.96 M
    # parameters class- and pen-conditioned. 1,800 steps (batch 32, bf16, 2-core AMD EPYC): 93.5 img/s against
    # cpu_small's 69-71, and as good samples (920, SDE 10 steps, CFG 3): OCR 92.9 vs 94.3 %, judge FID 1.15 vs 1.34
    # (benchmarks/results/cpu_conv/README.md)
    "cpu_conv": {
        "block_out_channels": (32, 64, 128),
        "down_block_types": ("DownBlock2D", "DownBlock2D", "DownBlock2D"),
        "up_block_types": ("UpBlock2D", "UpBlock2D", "UpBlock2D"),
        "layers_per_block": 1,
        "mid_block_type": None,
    },
    "cpu_patch": CPU_PATCH,  # the CPU default before cpu_patch3
    # The CPU default: cpu_patch with a third level, 128 channels at 4x4; 3.84 M parameters class- and
    # pen-conditioned. 3,400 steps on a 2-core AMD EPYC: 10.1-10.8 min against cpu_patch's 9.3-9.6, and over two
    # training seeds legible +1.8 points, OCR +1.4, precision +0.013 (benchmarks/results/c2st_scatter/README.md)
    "cpu_patch3": {**CPU_PATCH, "block_out_channels": (64, 128, 128), "down_block_types": ("DownBlock2D",) * 3,
                   "up_block_types": ("UpBlock2D",) * 3},
    # cpu_patch at half the widths (32 / 64 channels, about a quarter of its parameters): a smaller student for a
    # cpu_patch or cpu_patch3 teacher to distil into (distill.student_preset).
    "cpu_patch_small": {**CPU_PATCH, "block_out_channels": (32, 64)},
    # prepare.image_size 64 on a CPU: cpu_small with one narrow level (16 channels) on top, so attention stays at
    # 8x8 and the 64x64 convs cost what cpu_small's 32x32 ones do. 41 img/s against cpu_small's 63 at 32x32
    # (batch 32, bf16, 2-core AMD EPYC); cpu_small itself at 64x64 attends at 16x16 and ran at 8 img/s.
    "cpu_64": {
        "block_out_channels": (16, 32, 64, 128),
        "down_block_types": ("DownBlock2D", "DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
        "up_block_types": ("AttnUpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D"),
        "layers_per_block": 1,
        "norm_num_groups": 8,
    },
    # Two layers per block; attention still only at 8x8 (64 tokens already span the glyph). The former
    # 16x16 attention cost 29% of throughput (15.7 vs 20.3 img/s, batch 64, 1 thread on a busy
    # 2-core box) and lost at equal CPU time (held-out v-loss 0.0409 vs 0.0387 after ~30 CPU-minutes
    # of steps, one seed, trained on a GPU as a proxy).
    "cpu_base": {
        "block_out_channels": (32, 64, 128),
        "down_block_types": ("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
        "up_block_types": ("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        "layers_per_block": 2,
    },
}


def patch_size(preset: str) -> int:
    """Side of the pixel patches the preset's UNet sees as channels (1: it works on pixels)."""
    return PRESETS[preset].get("patch_size", 1)


def unet_shape(preset: str) -> dict[str, Any]:
    """The preset's UNet2DModel arguments (everything but patch_size)."""
    return {k: v for k, v in PRESETS[preset].items() if k != "patch_size"}


def downsample_factor(preset: str, levels: Optional[int] = None) -> int:
    """How many times the preset's UNet (with `levels` levels; None: the preset's) shrinks the image, patching
    included: image_size must be a multiple of it."""
    levels = len(PRESETS[preset]["block_out_channels"]) if levels is None else levels
    return patch_size(preset) * 2 ** (levels - 1)


# ---------------------------------------------------------------- a preset with params.yaml's shape overrides

UNET_DEFAULTS = {"norm_num_groups": 32, "attention_head_dim": 8}  # UNet2DModel's own, where a preset sets none


def attention_levels(shape: Mapping[str, Any]) -> tuple[int, ...]:
    """Levels (0 = full resolution) whose down and up blocks attend, read from a shape's down_block_types."""
    return tuple(i for i, kind in enumerate(shape["down_block_types"]) if kind.startswith("Attn"))


def block_types(levels: int, attention: tuple[int, ...]) -> dict[str, tuple[str, ...]]:
    """down_block_types and up_block_types for `levels` levels attending at `attention`; up block j serves level
    levels-1-j."""
    down = tuple("AttnDownBlock2D" if i in attention else "DownBlock2D" for i in range(levels))
    return {"down_block_types": down, "up_block_types": tuple(k.replace("Down", "Up") for k in reversed(down))}


def _levels(cfg: ModelConfig) -> dict[str, Any]:
    """The block widths and types from the overrides ({} without any): attention stays at the preset's levels, that
    is at the same resolutions, unless model.attention_levels says otherwise."""
    if cfg.block_out_channels is None and cfg.attention_levels is None:
        return {}
    base = PRESETS[cfg.preset]
    widths = cfg.block_out_channels if cfg.block_out_channels is not None else base["block_out_channels"]
    attend = cfg.attention_levels if cfg.attention_levels is not None else attention_levels(base)
    whose = "" if cfg.attention_levels is not None else f"preset {cfg.preset!r} attends at "
    check(all(0 <= i < len(widths) for i in attend) and len(set(attend)) == len(attend), "model.attention_levels",
          f"{whose}{list(attend)}, not distinct levels in [0, {len(widths) - 1}] (one per model.block_out_channels "
          "entry); list the levels that attend, [] for none")
    return {"block_out_channels": tuple(widths), **block_types(len(widths), tuple(attend))}


def model_shape(cfg: ModelConfig) -> dict[str, Any]:
    """UNet2DModel keyword arguments (all but the sizes and conditioning): cfg.preset's, with the set overrides."""
    shape = {**unet_shape(cfg.preset), **_levels(cfg)}
    if cfg.mid_block is not None:
        shape = {k: v for k, v in shape.items() if k not in ("mid_block_type", "add_attention")}
        shape.update(MID_BLOCKS[cfg.mid_block])
    shape.update({k: v for k, v in cfg.overrides().items() if k in ("layers_per_block", "norm_num_groups", "dropout",
                                                                    "attention_head_dim")})
    return shape


def model_downsample(cfg: ModelConfig) -> int:
    """How many times cfg's UNet shrinks the image (patching included): the image side must be a multiple."""
    return downsample_factor(cfg.preset, len(model_shape(cfg)["block_out_channels"]))


def check_model(cfg: ModelConfig) -> None:
    """One-line refusals of a model section that cannot be built: an unknown preset, or a shape UNet2DModel cannot
    build (or builds other than asked)."""
    check(cfg.preset in PRESETS, "model.preset", f"unknown preset {cfg.preset!r}; choose one of {', '.join(PRESETS)}")
    shape = model_shape(cfg)
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
