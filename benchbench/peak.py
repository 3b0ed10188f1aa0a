"""``benchbench peak``: what this device can do at best, measured once and cached.

Two numbers make a roofline: the peak arithmetic rate (a large matrix product, in FLOP/s
counting a multiply-add as 2, the convention of hardware data sheets; measured in each
precision the device has: float32, TF32, bfloat16, float16) and the peak memory bandwidth (copying a buffer much larger than any cache: bytes read plus
bytes written, per second). Both are timed with benchbench's own timers
(:mod:`benchbench.timing`). Results are cached in ``~/.cache/benchbench/peak.json``
(``$BENCHBENCH_CACHE`` to move it), keyed by device, host, torch version and thread
count, so tables and reports can show the fraction of peak without measuring again.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import socket
from pathlib import Path
from typing import Any

CACHE_ENV = "BENCHBENCH_CACHE"


def cache_path() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "benchbench") / "peak.json"


def device_key(device: str) -> str:
    """What a peak measurement is valid for: the device's name on this host, torch, threads."""
    import torch

    name = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else "cpu"
    return f"{socket.gethostname()}|{device}|{name}|torch {torch.__version__}|threads {torch.get_num_threads()}"


def load(device: str) -> dict[str, Any] | None:
    """The cached peak of ``device`` (for this host, torch and thread count), or None."""
    try:
        cache = json.loads(cache_path().read_text())
    except (OSError, ValueError):
        return None
    entry = cache.get(device_key(device)) if isinstance(cache, dict) else None
    return entry if isinstance(entry, dict) else None


def precisions(device: Any) -> list[str]:
    """The matmul precisions worth a peak on this device: float32 everywhere, bfloat16 too; on
    CUDA also TF32 (Ampere and later) and float16."""
    import torch

    if device.type != "cuda":
        return ["float32", "bfloat16"]
    major, _ = torch.cuda.get_device_capability(device)
    names = ["float32", *(["tf32"] if major >= 8 else []), "float16"]
    return [*names, *(["bfloat16"] if torch.cuda.is_bf16_supported() else [])]


def measure(device: str, *, matmul_size: int | None = None, copy_bytes: int | None = None, seconds: float = 1.0) -> dict[str, Any]:
    """Measure the peak matmul FLOP/s in each precision and the copy bandwidth of ``device``,
    and store them in the cache.

    float32 is measured with TF32 forbidden (``matmul_flops``, the plain float32 peak), TF32
    with it allowed: a CUDA run's convolutions use TF32 by default, and ``peak_fraction`` of
    a peak the run did not use would mean nothing.
    """
    import torch

    from benchbench import timing
    from benchbench.environment import cpu_model

    dev = torch.device(device)
    cuda = dev.type == "cuda"
    n = matmul_size or (8192 if cuda else 2048)
    size = copy_bytes or (1 << 30 if cuda else 256 << 20)

    def time(step: Any) -> float:
        budget = {"warmup_s": 0.2, "min_run_time_s": seconds, "min_runs": 5}
        result = timing.time_cuda(step, dev, flush_l2=False, **budget) if cuda else timing.time_cpu(step, **budget)
        return timing.summarize(result.samples_ms).median / 1e3

    def matmul_rate(precision: str) -> float:
        dtype = torch.float32 if precision == "tf32" else getattr(torch, precision)
        a, b = torch.randn(n, n, device=dev, dtype=dtype), torch.randn(n, n, device=dev, dtype=dtype)
        with torch.inference_mode():
            return 2 * n**3 / time(lambda: torch.mm(a, b))

    by_precision = {}
    saved = torch.backends.cuda.matmul.allow_tf32
    try:
        for precision in precisions(dev):
            torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
            by_precision[precision] = matmul_rate(precision)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved
    source = torch.empty(size // 4, dtype=torch.float32, device=dev).uniform_()
    target = torch.empty_like(source)
    with torch.inference_mode():
        copy_s = time(lambda: target.copy_(source))
    entry = {
        "device": device,
        "name": torch.cuda.get_device_name(dev) if cuda else (cpu_model() or "cpu"),
        "matmul_flops": by_precision["float32"],
        "matmul_flops_by_precision": by_precision,
        "bandwidth_bytes_per_s": 2 * size / copy_s,
        "matmul_size": n,
        "copy_bytes": size,
        "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "key": device_key(device),
    }
    _store(entry)
    return entry


def peak_for(entry: dict[str, Any], precision: str) -> float:
    """The measured matmul peak in ``precision`` (the float32 one when that precision was not measured)."""
    return (entry.get("matmul_flops_by_precision") or {}).get(precision, entry["matmul_flops"])


def _store(entry: dict[str, Any]) -> None:
    path = cache_path()
    try:
        cache = json.loads(path.read_text()) if path.is_file() else {}
        if not isinstance(cache, dict):
            cache = {}
    except (OSError, ValueError):
        cache = {}
    cache[entry["key"]] = entry
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(cache, indent=1))
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home: the numbers are still returned and shown
