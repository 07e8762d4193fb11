"""The one place that picks a device, describes the CPU, and decides the precision: where bf16 autocast pays,
and what accelerate's mixed precision is."""

from __future__ import annotations

import contextlib
import functools
import os
import platform
from pathlib import Path
from typing import ContextManager

import torch
from torch import nn

from .errors import DevagenError

# CPU flags that decide the speed of our kernels; the ones in NATIVE_BF16 compute in bf16 natively.
SPEED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")
NATIVE_BF16 = ("avx512_bf16", "amx_bf16")


def pick_device() -> torch.device:
    """CUDA when a GPU is visible, else CPU (every stage must also run on CPU)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@functools.lru_cache(maxsize=1)
def cpu_info(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict:
    """{"model", "cores", "flags" (those of SPEED_FLAGS it has), "native_bf16", "torch_capability"}."""
    model, flags = platform.processor() or platform.machine(), set()
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                model = value.strip()
            elif key.strip() == "flags":
                flags |= set(value.split())
    have = [f for f in SPEED_FLAGS if f in flags]
    return {"model": model, "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "flags": have, "native_bf16": any(f in have for f in NATIVE_BF16),
            "torch_capability": torch.backends.cpu.get_cpu_capability()}


def cpu_bf16(setting: str) -> bool:
    """Whether CPU work runs under bf16 autocast for `setting` (auto | fp32 | bf16).

    auto = only where the CPU computes bf16 natively (AVX512_BF16 or AMX): measured there 1.7x the fp32
    training speed of the diffusion UNet (benchmarks/results/cpu_profile/README.md). Elsewhere bf16 is emulated
    and far slower than fp32 (>100x measured on an AVX2 CPU), so auto means fp32.
    """
    return setting == "bf16" or (setting == "auto" and cpu_info()["native_bf16"])


def autocast(device: torch.device, setting: str, cuda_bf16: bool = False) -> ContextManager:
    """bf16 autocast for CPU work when cpu_bf16(setting); on CUDA bf16 autocast if `cuda_bf16` (the distillation
    rounds), else a no-op (the training loop's CUDA precision is accelerate's, mixed_precision below)."""
    if device.type == "cuda" and cuda_bf16:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if precision_name(device, setting) == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def full_precision(device: torch.device) -> ContextManager:
    """fp32 inside whatever autocast region the caller is in (classifier guidance's gradient, a small network whose
    gradient bf16 would blur)."""
    return torch.autocast(device.type, enabled=False)


def mixed_precision(setting: str, note: str = "") -> str:
    """accelerate's mixed_precision for train.mixed_precision: 'auto' → 'bf16' (or 'fp16') on CUDA; on CPU
    'bf16' where it computes bf16 natively (cpu_bf16), else 'no'. fp16 without CUDA is refused (`note` is added
    to the message).

    CPU bf16 autocast measured 1.7x fp32 on an AVX512_BF16 EPYC (with use_math_attention), and >100x slower
    than fp32 on an AVX2 CPU, which emulates it.
    """
    on_cuda = torch.cuda.is_available() and os.environ.get("ACCELERATE_USE_CPU", "").lower() not in ("1", "true", "yes")
    if setting == "auto":
        if on_cuda:
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if cpu_bf16("auto") else "no"
    if setting == "fp16" and not on_cuda:
        raise DevagenError(f"params.yaml: train.mixed_precision: fp16 needs a CUDA GPU; use auto or no {note}".rstrip())
    return setting


def allow_precision(precision: str) -> None:
    """Let this process build an Accelerator with `precision` (accelerate: no | fp16 | bf16).

    accelerate keeps one precision per process; a second run in it (a notebook, a benchmark, the tests)
    may ask for another. The process group (PartialState) is kept.
    """
    from accelerate.state import AcceleratorState

    if AcceleratorState._shared_state and AcceleratorState().mixed_precision != precision:
        AcceleratorState._reset_state()


def precision_name(device: torch.device, setting: str) -> str:
    """'bf16' or 'fp32': what autocast(device, setting) computes in, for the metrics."""
    return "bf16" if device.type == "cpu" and cpu_bf16(setting) else "fp32"


def use_math_attention(model: nn.Module) -> nn.Module:
    """If `model` is on the CPU, give every diffusers Attention the classic matmul-softmax processor; returns it.

    torch's CPU flash-attention backward was 30 % of a bf16 training step of the default UNet (4 calls
    of 34 ms in a ~450 ms step at batch 32 on an AVX512_BF16 EPYC); the matmul form computes the same
    attention (8x8 = 64 tokens here) without it. Not saved with the model; GPUs keep SDPA.
    """
    from diffusers.models.attention_processor import Attention, AttnProcessor

    if next(model.parameters()).device.type == "cpu":
        for module in model.modules():
            if isinstance(module, Attention):
                module.set_processor(AttnProcessor())
    return model
