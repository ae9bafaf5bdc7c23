"""The hardware catalogue: accelerators by memory, bandwidth and dense tensor throughput, plus this machine's CPU.

Memory is what CUDA reports as total (what vLLM multiplies by ``gpu_memory_utilization``), not the marketing GB:
H100 80 GB reports 79.18 GiB, RTX 3090 23.58 GiB (both measured in published vLLM runs); the others are the usual
CUDA totals for their cards. Bandwidth and TFLOPS are datasheet peaks (dense, no sparsity). Prices are indicative
on-demand cloud rates for sorting only; pass real ones with ``--price-per-gpu-hour``.

This module knows devices; it does not know models or how memory is spent.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, replace

GiB = 2**30


class UnknownGpuError(ValueError):
    """A ``--gpu`` value that names no catalogue entry; the message lists them."""


@dataclass(frozen=True, slots=True)
class Device:
    """One accelerator (or the host CPU) as the planner sees it."""

    name: str
    memory_bytes: int  # total as CUDA reports it, bytes
    bandwidth: float  # peak memory bandwidth, bytes/s
    tflops: float  # peak dense bf16/fp16 tensor throughput, TFLOP/s
    fp8_tflops: float | None = None  # dense fp8 throughput, TFLOP/s; None = no fp8 tensor cores
    price_per_hour: float = 0.0  # USD per device-hour, indicative
    is_cpu: bool = False

    def __post_init__(self) -> None:
        if self.memory_bytes <= 0 or self.bandwidth <= 0 or self.tflops <= 0:
            raise ValueError(f"{self.name}: memory, bandwidth and tflops must be positive")
        if self.price_per_hour < 0:
            raise ValueError(f"{self.name}: price per hour must be >= 0, got {self.price_per_hour}")

    @property
    def memory_gib(self) -> float:
        return self.memory_bytes / GiB


def _gpu(name: str, gib: float, tb_s: float, tflops: float, fp8: float | None, price: float) -> Device:
    return Device(name, int(gib * GiB), tb_s * 1e12, tflops, fp8, price)


CATALOGUE: dict[str, Device] = {
    d.name: d
    for d in (
        #    name         GiB (CUDA)  TB/s   bf16  fp8    $/h
        _gpu("h100", 79.18, 3.35, 989, 1979, 2.99),  # SXM, HBM3
        _gpu("h100-pcie", 79.18, 2.0, 756, 1513, 2.49),  # HBM2e
        _gpu("h200", 139.8, 4.8, 989, 1979, 3.79),  # HBM3e 141 GB
        _gpu("a100-80gb", 79.15, 2.039, 312, None, 1.79),  # SXM; PCIe 1.935 TB/s
        _gpu("a100-40gb", 39.39, 1.555, 312, None, 1.29),
        _gpu("l40s", 44.5, 0.864, 362, 733, 1.04),
        _gpu("l4", 22.05, 0.300, 121, 242, 0.80),
        _gpu("a10g", 22.0, 0.600, 70, None, 1.01),
        _gpu("rtx4090", 23.65, 1.008, 165, 330, 0.69),  # fp32 accumulate
        _gpu("rtx3090", 23.58, 0.936, 71, None, 0.44),  # fp32 accumulate
    )
}
ALIASES = {
    "h100-sxm": "h100",
    "h100sxm": "h100",
    "h200-sxm": "h200",
    "a100": "a100-80gb",
    "a100-80": "a100-80gb",
    "a100-40": "a100-40gb",
    "rtx-4090": "rtx4090",
    "4090": "rtx4090",
    "rtx-3090": "rtx3090",
    "3090": "rtx3090",
}
CPU = "cpu"


def gpu_names() -> list[str]:
    """Catalogue names plus ``cpu``, for help text and errors."""
    return [*CATALOGUE, CPU]


def parse_gpu(spec: str) -> tuple[Device, int]:
    """Parse ``--gpu NAME[xN]`` (``h100``, ``h100x2``, ``rtx3090``, ``cpu``) into a device and a count.

    Raises:
        UnknownGpuError: the name is not in the catalogue (the message lists it) or the count is not positive.
    """
    key = spec.strip().lower()
    count = 1
    match = re.fullmatch(r"(.+?)\s*[x*]\s*(\d+)", key)
    if match and _lookup(key) is None:
        key, count = match.group(1), int(match.group(2))
    if count < 1:
        raise UnknownGpuError(f"--gpu {spec!r}: the count after x must be at least 1")
    if key == CPU:
        return probe_cpu(), count
    device = _lookup(key)
    if device is None:
        raise UnknownGpuError(
            f"unknown GPU {spec!r}; known: {', '.join(gpu_names())} (append xN for N GPUs, e.g. h100x2), "
            "or describe one with --gpu-memory, --gpu-bandwidth and --gpu-tflops"
        )
    return device, count


def _lookup(key: str) -> Device | None:
    return CATALOGUE.get(ALIASES.get(key, key))


def custom_device(memory_gib: float, bandwidth_gb_s: float, tflops: float, price: float = 0.0) -> Device:
    """A device described on the command line (``--gpu-memory --gpu-bandwidth --gpu-tflops``)."""
    return Device("custom", int(memory_gib * GiB), bandwidth_gb_s * 1e9, tflops, None, price)


def with_price(device: Device, price_per_hour: float | None) -> Device:
    """``device`` with a user-given price (None keeps the catalogue's)."""
    return device if price_per_hour is None else replace(device, price_per_hour=price_per_hour)


# ---- this machine -----------------------------------------------------------------------------------------------

_PROBE_BYTES = 64 * 2**20  # copy size for the bandwidth probe; larger than any CPU cache we expect


def probe_cpu() -> Device:
    """This machine's CPU: memory measured from the OS, bandwidth and fp32 matmul throughput probed (~0.1 s)."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return Device(CPU, memory, _probe_bandwidth(), _probe_tflops(), None, 0.0, is_cpu=True)


def _probe_bandwidth(repeats: int = 3) -> float:
    """Bytes/s of a large array copy (a read and a write per byte), best of ``repeats``."""
    import numpy as np

    src = np.ones(_PROBE_BYTES // 8)
    dst = np.empty_like(src)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - start)
    return 2 * _PROBE_BYTES / best


def _probe_tflops(size: int = 512, repeats: int = 3) -> float:
    """TFLOP/s of an fp32 square matmul, best of ``repeats``."""
    import numpy as np

    a = np.ones((size, size), dtype=np.float32)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e12
