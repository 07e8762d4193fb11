"""devagen.core.device: the CPU description, where bf16 autocast is used, and the CPU attention processor."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from devagen.core import device
from devagen.core.shape import ModelConfig
from devagen.diffusion.unet import build_unet
from devagen.core.device import mixed_precision

CPUINFO = """processor\t: 0
model name\t: AMD EPYC 9R14
flags\t\t: fpu sse2 avx2 avx512f avx512_vnni avx512_bf16 ht
processor\t: 1
model name\t: AMD EPYC 9R14
flags\t\t: fpu sse2 avx2 avx512f avx512_vnni avx512_bf16 ht
"""


@pytest.fixture
def fake_cpu(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Set what cpu_info() reports: call with native_bf16=True/False."""
    def fake(native_bf16: bool) -> None:
        info = {"model": "test CPU", "cores": 2, "flags": ["avx2"] + (["avx512_bf16"] if native_bf16 else []),
                "native_bf16": native_bf16, "torch_capability": "AVX2"}
        monkeypatch.setattr(device, "cpu_info", lambda: info)
    return fake


def test_cpu_info_reads_model_and_speed_flags(tmp_path: Path) -> None:
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO)
    info = device.cpu_info.__wrapped__(path)
    assert info["model"] == "AMD EPYC 9R14"
    assert info["flags"] == ["avx2", "avx512f", "avx512_vnni", "avx512_bf16"]  # only the speed flags, in order
    assert info["native_bf16"] is True
    path.write_text(CPUINFO.replace(" avx512_bf16", ""))
    assert device.cpu_info.__wrapped__(path)["native_bf16"] is False


def test_cpu_info_without_proc_cpuinfo(tmp_path: Path) -> None:
    info = device.cpu_info.__wrapped__(tmp_path / "missing")
    assert info["flags"] == [] and info["native_bf16"] is False and info["cores"] >= 1


@pytest.mark.parametrize("native", [True, False])
def test_auto_uses_bf16_only_where_native(fake_cpu, native: bool) -> None:  # type: ignore[no-untyped-def]
    fake_cpu(native)
    cpu = torch.device("cpu")
    assert device.cpu_bf16("auto") is native
    assert device.cpu_bf16("bf16") and not device.cpu_bf16("fp32")
    assert device.precision_name(cpu, "auto") == ("bf16" if native else "fp32")
    with device.autocast(cpu, "auto"):
        out = torch.nn.functional.linear(torch.ones(2, 3), torch.ones(4, 3))
    assert out.dtype == (torch.bfloat16 if native else torch.float32)
    with device.autocast(cpu, "fp32"):
        assert torch.nn.functional.linear(torch.ones(2, 3), torch.ones(4, 3)).dtype == torch.float32
    if not torch.cuda.is_available():
        assert mixed_precision("auto") == ("bf16" if native else "no")


def test_math_attention_matches_sdpa() -> None:
    torch.manual_seed(0)
    big = build_unet(ModelConfig(preset="cpu_small", conditional=True), 16).eval()
    x, t, labels = torch.randn(3, 1, 16, 16), torch.tensor([10, 500, 900]), torch.tensor([0, 5, 46])
    with torch.no_grad():
        before = big(x, t, class_labels=labels).sample
        device.use_math_attention(big)
        after = big(x, t, class_labels=labels).sample
    from diffusers.models.attention_processor import Attention, AttnProcessor
    processors = [m.processor for m in big.modules() if isinstance(m, Attention)]
    assert processors and all(isinstance(p, AttnProcessor) for p in processors)
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-4)
