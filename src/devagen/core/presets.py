"""Named UNet2DModel shapes. Pure data (no torch), so params can be validated cheaply."""

from __future__ import annotations

from typing import Any

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
    # The CPU default: cpu_small without its four attention layers (no mid block either); 1.96 M parameters class-
    # and pen-conditioned. 1,800 steps (batch 32, bf16, 2-core AMD EPYC): 93.5 img/s against cpu_small's 69-71, and
    # as good samples (920, SDE 10 steps, CFG 3): OCR 92.9 vs 94.3 %, judge FID 1.15 vs 1.34 (benchmarks/results/cpu_conv/README.md)
    "cpu_conv": {
        "block_out_channels": (32, 64, 128),
        "down_block_types": ("DownBlock2D", "DownBlock2D", "DownBlock2D"),
        "up_block_types": ("UpBlock2D", "UpBlock2D", "UpBlock2D"),
        "layers_per_block": 1,
        "mid_block_type": None,
    },
    # The network sees 2x2 patches: each 32x32 image is denoised as 4 x 16 x 16 (pixel_unshuffle, lossless; the
    # pipeline shuffles its output back), so the UNet has no 32x32 level, where cpu_conv spends two thirds of its
    # fp32 time. 64 / 128 channels at 16x16 / 8x8; 2.10 M parameters class- and pen-conditioned. Measured (2-core Intel
    # Xeon with AMX, batch 32): 1.7x cpu_conv's img/s in bf16, 1.9x in fp32; sampling 2.8x (benchmarks/results/cpu_patch/README.md)
    "cpu_patch": {
        "block_out_channels": (64, 128),
        "down_block_types": ("DownBlock2D", "DownBlock2D"),
        "up_block_types": ("UpBlock2D", "UpBlock2D"),
        "layers_per_block": 1,
        "mid_block_type": None,
        "patch_size": 2,
    },
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


def downsample_factor(preset: str) -> int:
    """How many times the preset shrinks the image (patching included): image_size must be a multiple of it."""
    return patch_size(preset) * 2 ** (len(PRESETS[preset]["block_out_channels"]) - 1)
