"""Make CPU timings independent of what ran before: pin glibc malloc's thresholds.

glibc serves allocations above ``M_MMAP_THRESHOLD`` (128 KiB at start) with fresh
``mmap`` pages, and raises that threshold *dynamically* the first time such a block is
freed. A layer's activations (0.1 - 30 MiB) therefore cost page faults on every step in
a fresh process, and none once some earlier benchmark freed a large block: measured on a
2-core CPU, a MobileNetV2 block at 32 channels took 12 ms alone and 3.4 ms after the
512-channel layers of the same suite. That makes a benchmark's latency depend on its
neighbours in the suite.

benchbench fixes both thresholds once per process, before the first benchmark (mmap
threshold 32 MiB, the largest glibc accepts on 64-bit; trim threshold 128 MiB), which is
the steady state a long-running training or serving process reaches anyway. It does
nothing when another allocator is preloaded (jemalloc, tcmalloc: they have no such
dynamic threshold), on a C library other than glibc, or when
``BENCHBENCH_KEEP_MALLOC=1``. The run file's environment records what was done.
"""

from __future__ import annotations

import ctypes
import os
from functools import cache

KEEP_ENV = "BENCHBENCH_KEEP_MALLOC"
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 * 2**20
TRIM_THRESHOLD = 128 * 2**20


@cache
def pin_malloc_thresholds() -> str:
    """Pin the thresholds (once); return a sentence for the run file's environment."""
    preload = os.environ.get("LD_PRELOAD", "")
    if any(name in preload for name in ("jemalloc", "tcmalloc", "mimalloc")):
        return f"preloaded allocator ({preload}); left as it is"
    if os.environ.get(KEEP_ENV, "").strip() not in ("", "0"):
        return f"glibc malloc with its dynamic thresholds ({KEEP_ENV} set)"
    try:
        libc = ctypes.CDLL(None)
        version = libc.gnu_get_libc_version
        version.restype = ctypes.c_char_p
        glibc = version().decode()
        ok = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    except (OSError, AttributeError):
        return "not glibc: allocator left as it is"
    if not ok:
        return f"glibc {glibc}: mallopt refused; dynamic thresholds left as they are"
    return f"glibc {glibc} malloc, thresholds pinned by benchbench: mmap {MMAP_THRESHOLD // 2**20} MiB, trim {TRIM_THRESHOLD // 2**20} MiB"
