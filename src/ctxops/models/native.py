"""Native CPU kernels for the decode step, compiled on first use with the machine's C compiler.

``kernels.c`` (beside this file) holds a paged decode attention (one query per sequence, read straight from the
block pool, no gather) and a few-row bf16 linear. They are built once per machine with ``-O3 -march=native
-fopenmp`` into the per-user cache (``~/.cache/ctxops/kernels/``; ``CTXOPS_CACHE_DIR`` moves it), keyed by the source, the compiler and
the CPU's feature flags, and loaded with ``ctypes``: no torch headers, so a build takes about a second. The OpenMP
runtime is the one torch already loaded (same soname), so the two share threads instead of fighting over them.

Everything here is optional: without a compiler, or with ``CTXOPS_NATIVE=0``, :func:`kernels` returns ``None``
and callers keep their torch path. This module knows tensors and pointers, never sequences or the scheduler.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

import torch

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("kernels.c")
FLAGS = [
    "-O3",
    "-march=native",
    "-fopenmp",
    "-fPIC",
    "-shared",
    "-std=c11",
    "-fno-math-errno",
    "-ffp-contract=fast",
]
MAX_LINEAR_ROWS = 16  # GEMV_MAX_ROWS in kernels.c: more rows go to torch's GEMM
_P = ctypes.c_void_p
_I64 = ctypes.c_int64


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor()


def _cache_dir() -> Path:
    from ctxops.models.model_catalog import cache_dir  # the one per-user cache (CTXOPS_CACHE_DIR, XDG)

    return cache_dir() / "kernels"


def _compile(compiler: str, target: Path) -> None:
    """Build into a temporary file, then rename: a concurrent process never loads half a library."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        out = Path(tmp) / target.name
        subprocess.run(
            [compiler, *FLAGS, str(SOURCE), "-o", str(out), "-lm"],
            check=True,
            capture_output=True,
            timeout=120,
        )
        os.replace(out, target)


class Kernels:
    """The loaded library, with typed entry points over torch tensors."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self.lib = lib
        decode_args = [
            _P,
            _P,
            _P,
            _P,
            _P,
            _I64,
            _I64,
            _I64,
            _I64,
            _I64,
            _I64,
            ctypes.c_float,
            _P,
            ctypes.c_int,
        ]
        for name in ("ctxops_decode_attention_bf16", "ctxops_decode_attention_f32"):
            getattr(lib, name).argtypes = decode_args
            getattr(lib, name).restype = ctypes.c_int
        lib.ctxops_linear_bf16.argtypes = [_P, _P, _P, _P, _I64, _I64, _I64, ctypes.c_int]
        lib.ctxops_linear_bf16.restype = ctypes.c_int
        lib.ctxops_linear_int8.argtypes = [_P, _P, _P, _P, _P, _I64, _I64, _I64, ctypes.c_int]
        lib.ctxops_linear_int8.restype = ctypes.c_int
        lib.ctxops_rms_norm_bf16.argtypes = [_P, _P, _P, _I64, _I64, ctypes.c_float]
        lib.ctxops_rms_norm_bf16.restype = ctypes.c_int

    def decode_attention(
        self,
        q: torch.Tensor,  # (N, H, D)
        k_cache: torch.Tensor,  # (num_blocks, block_size, KV, D)
        v_cache: torch.Tensor,
        tables: torch.Tensor,  # (N, max_blocks) long
        lens: torch.Tensor,  # (N,) long, tokens each sequence attends to
        scale: float,
    ) -> torch.Tensor:
        """Attention of one query per sequence over its blocks; (N, H, D) out, in the cache's dtype."""
        fn = {
            torch.bfloat16: self.lib.ctxops_decode_attention_bf16,
            torch.float32: self.lib.ctxops_decode_attention_f32,
        }[k_cache.dtype]
        assert k_cache.is_contiguous() and v_cache.is_contiguous()
        q = q.to(k_cache.dtype).contiguous()
        tables, lens = tables.contiguous(), lens.contiguous()
        n, heads, dim = q.shape
        _, block_size, kv_heads, _ = k_cache.shape
        out = torch.empty_like(q)
        rc = fn(
            q.data_ptr(), k_cache.data_ptr(), v_cache.data_ptr(), tables.data_ptr(), lens.data_ptr(),
            n, tables.shape[1], heads, kv_heads, dim, block_size, scale, out.data_ptr(), torch.get_num_threads(),
        )  # fmt: skip
        if rc:
            raise RuntimeError(f"native decode attention failed (code {rc}) for shape {tuple(q.shape)}")
        return out

    def linear_bf16(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """Compute ``x @ weight.T + bias`` for (M <= MAX_LINEAR_ROWS, K) bf16 rows, accumulating in fp32."""
        x = x.contiguous()
        rows, (out_features, in_features) = x.shape[0], weight.shape
        y = torch.empty(rows, out_features, dtype=torch.bfloat16)
        rc = self.lib.ctxops_linear_bf16(
            x.data_ptr(), weight.data_ptr(), bias.data_ptr() if bias is not None else None, y.data_ptr(),
            rows, out_features, in_features, torch.get_num_threads(),
        )  # fmt: skip
        if rc:
            raise RuntimeError(f"native linear failed (code {rc}) for {rows} rows")
        return y

    def linear_int8(
        self, x: torch.Tensor, codes: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None
    ) -> torch.Tensor:
        """Compute ``(x @ codes.T) * scale + bias`` for few bf16 rows, int8 codes and bf16 per-row scales."""
        x = x.contiguous()
        rows, (out_features, in_features) = x.shape[0], codes.shape
        y = torch.empty(rows, out_features, dtype=torch.bfloat16)
        rc = self.lib.ctxops_linear_int8(
            x.data_ptr(), codes.data_ptr(), scale.data_ptr(), bias.data_ptr() if bias is not None else None,
            y.data_ptr(), rows, out_features, in_features, torch.get_num_threads(),
        )  # fmt: skip
        if rc:
            raise RuntimeError(f"native int8 linear failed (code {rc}) for {rows} rows")
        return y

    def rms_norm_bf16(self, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
        """RMSNorm of (M, D) bf16 rows with a bf16 weight, rounded as Hugging Face rounds it."""
        x = x.contiguous()
        y = torch.empty_like(x)
        self.lib.ctxops_rms_norm_bf16(
            x.data_ptr(), weight.data_ptr(), y.data_ptr(), x.shape[0], x.shape[1], eps
        )
        return y


def for_decode_rows(x: torch.Tensor) -> Kernels | None:
    """The kernels when ``x`` is what they serve, a few bf16 rows (a decode step); else None (the torch path)."""
    if x.dtype != torch.bfloat16 or x.dim() != 2 or x.shape[0] > MAX_LINEAR_ROWS:
        return None
    return kernels()


@cache
def cpu_has_bf16_matmul() -> bool:
    """Whether torch's bf16 GEMM runs on bf16 hardware (AVX512-BF16 or AMX).

    Without it (AVX2 machines) torch's bf16 GEMM was measured 7x slower than upcasting to fp32 at 2,048 rows.
    """
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


@cache
def kernels() -> Kernels | None:
    """The native kernels, built and loaded once per process; None when disabled or no compiler works."""
    if os.environ.get("CTXOPS_NATIVE", "1") == "0":
        return None
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        log.info("no C compiler found: decode runs on torch kernels only")
        return None
    key = hashlib.sha256(
        SOURCE.read_bytes() + " ".join([compiler, *FLAGS, _cpu_flags(), torch.__version__]).encode()
    ).hexdigest()[:16]
    target = _cache_dir() / f"ctxops_kernels_{key}.so"
    try:
        if not target.exists():
            _compile(compiler, target)
        return Kernels(ctypes.CDLL(str(target)))
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        log.warning(
            "native kernels unavailable (%s %s): decode runs on torch kernels only", exc, detail[:500]
        )
        return None
