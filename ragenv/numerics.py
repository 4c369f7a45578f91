"""The frozen LLM's numeric setting: precision, device and the CPU kernels behind them.

The numeric setting is part of an environment version's definition. Every version is
defined in the **canonical setting**, ``float32`` on any device: it runs at full speed
on every CPU (native bf16 or not) and on CUDA GPUs (with TF32 off), and its results agree
across them within float32 rounding (measured: docs/results/numerics.md). Lower
precisions are explicit opt-ins (``dtype="bfloat16"``: about 2x faster on CPUs with
AVX512-BF16, about 100x slower on AVX2-only CPUs); their results are recorded as
non-canonical and never share a reward-cache entry with canonical ones.

``RAGENV_CPU_ISA=avx2`` (or a oneDNN cap, ``ONEDNN_MAX_CPU_ISA=AVX2``) makes ragenv treat
the CPU as AVX2-only; :data:`AVX2_CAP` is the full set of variables that also caps
torch's own kernels, so one AVX-512 machine can reproduce the AVX2 path.
"""
from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass

from ragenv.errors import ConfigError

CANONICAL_DTYPE = "float32"
DTYPES = ("float32", "bfloat16", "float16")

# Environment variables that run torch on an AVX-512 CPU as on an AVX2-only one: ATen's
# vectorised kernels, oneDNN (bf16 matrix products) and MKL (float32 matrix products). They
# must be set before torch is imported, so use them for a subprocess.
AVX2_CAP = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    "RAGENV_CPU_ISA": "avx2",
}


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as handle:
            return set(next((line for line in handle if line.startswith("flags")), "").split())
    except OSError:
        return set()


def cpu_model() -> str:
    """The CPU's model name, as /proc/cpuinfo gives it (or platform's guess elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_has_fast_bf16() -> bool:
    """Whether bfloat16 runs natively (AVX512-BF16 or AMX); elsewhere it is emulated, about 100x slower.

    ``RAGENV_CPU_ISA=avx2`` or a oneDNN cap below AVX512_CORE_BF16 (``ONEDNN_MAX_CPU_ISA``)
    answers False, as on an AVX2-only CPU.
    """
    override = os.environ.get("RAGENV_CPU_ISA", "").strip().lower()
    if override and override not in ("avx512", "native"):
        return False
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper()
    if cap and cap != "ALL" and not cap.startswith(("AVX512_CORE_BF16", "AVX512_CORE_AMX", "AVX10")):
        return False
    flags = _cpu_flags()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def cpu_isa() -> str:
    """The vector ISA torch's CPU kernels run with here, e.g. ``AVX512+bf16`` or ``AVX2`` (honours the caps)."""
    try:
        import torch

        capability = torch.backends.cpu.get_cpu_capability()
    except (ImportError, AttributeError):
        capability = "unknown"
    return f"{capability}+bf16" if cpu_has_fast_bf16() else capability


def resolve_device(requested: str) -> str:
    """``auto``: a CUDA GPU when present, else the CPU; an explicit ``cuda`` without one is refused."""
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {requested!r} asked for, but no CUDA GPU is available; use --device cpu")
    if requested != "cpu" and not requested.startswith("cuda"):
        raise ConfigError(f"unknown device {requested!r}: use auto, cpu, cuda or cuda:N")
    return requested


def check_dtype(requested: str) -> str:
    """The dtype name, checked; ``auto`` is refused because it made results depend on the CPU."""
    if requested in DTYPES:
        return requested
    if requested == "auto":
        raise ConfigError(f"dtype 'auto' is no longer accepted: it chose bfloat16 or float32 by CPU, so results "
                          f"depended on the machine; use {CANONICAL_DTYPE} (canonical) or bfloat16 (opt-in, faster "
                          "on CPUs with native bf16)")
    raise ConfigError(f"unknown dtype {requested!r}: use {', '.join(DTYPES)} ({CANONICAL_DTYPE} is canonical)")


def resolve_dtype(requested: str, device: str = "cpu"):
    """The torch dtype for a dtype name (see :func:`check_dtype`)."""
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[check_dtype(requested)]


def configure_device_precision(device: str, dtype: str) -> None:
    """Make float32 mean IEEE float32 on CUDA: TF32 matrix products would leave the canonical setting."""
    if not device.startswith("cuda") or dtype != "float32":
        return
    import torch

    try:
        torch.backends.cuda.matmul.fp32_precision = "ieee"
        torch.backends.cudnn.fp32_precision = "ieee"
    except AttributeError:  # torch before the fp32_precision API
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False


@dataclass(frozen=True)
class NumericSetting:
    """How the frozen LLM computes: dtype and device, and what hardware ran it (informational)."""

    dtype: str
    device: str
    hardware: str  # CPU ISA (e.g. AVX512+bf16, AVX2) or the GPU's name

    @property
    def canonical(self) -> bool:
        return self.dtype == CANONICAL_DTYPE

    def describe(self) -> dict:
        return {**asdict(self), "canonical": self.canonical}

    def label(self) -> str:
        return f"{self.dtype} on {self.device} ({self.hardware}; {'canonical' if self.canonical else 'non-canonical'})"


def numeric_setting(dtype: str, device: str) -> NumericSetting:
    """The setting for a dtype name and a resolved device."""
    check_dtype(dtype)
    if device.startswith("cuda"):
        import torch

        hardware = torch.cuda.get_device_name(torch.device(device))
    else:
        hardware = cpu_isa()
    return NumericSetting(dtype, device.split(":")[0], hardware)


def slow_dtype_warning(dtype: str, device: str) -> str | None:
    """A warning when a dtype is emulated on this CPU (bf16/fp16 without native support), else None."""
    if device.startswith("cuda") or dtype == "float32" or cpu_has_fast_bf16():
        return None
    return (f"{dtype} is emulated on this CPU ({cpu_isa()}, no native bf16): about 100x slower than "
            f"{CANONICAL_DTYPE}, which is also the canonical setting")
