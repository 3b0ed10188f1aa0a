"""``cuda_kernels``: how many kernels (and memory copies and sets) the GPU runs for one step.

The GPU's counterpart of ``instructions``: a cheap, deterministic number for CI gates.
A change that un-fuses an operator, adds a ``.contiguous()`` copy or a host-device
transfer adds device work items, and their count does not move with the GPU's clocks,
its temperature or other jobs. One step is profiled with ``torch.profiler`` (CUDA
activity), after one more warm-up step (lazy initialisation, cuDNN's first choice); every
activity the GPU ran (``kernel``, ``gpu_memcpy``, ``gpu_memset``) is counted and named.

The count depends on the GPU and the software (cuDNN and cuBLAS pick kernels per GPU
and version): ``cuda_kernels_gpu`` and ``cuda_kernels_software`` record them, and
``benchbench compare`` judges the count exactly (threshold 0%) only between runs that
agree on them and on the run's settings, else "not comparable".

CUDA only: a benchmark on the CPU that lists it is rejected when the suite is validated
(``available``), as ``instructions`` is on a GPU.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import benchbench
from benchbench.context import MeasureContext
from benchbench.metrics import memory  # noqa: F401 - quiets Kineto's banners (KINETO_LOG_LEVEL) before profiling
from benchbench.results import MODEL_SETTINGS

SETTINGS = (*MODEL_SETTINGS, "device", "batch_size", "dtype", "mode", "channels_last",
            "cuda_kernels_gpu", "cuda_kernels_software")
"""What two counts must share to be compared (not ``threads``: CPU threads launch the same kernels)."""


def available(device: str) -> str | None:
    """Why ``cuda_kernels`` cannot run for a benchmark on ``device``, or None."""
    import torch

    if device == "cpu" or (device == "auto" and not torch.cuda.is_available()):
        where = "the CPU" if device == "cpu" else "the CPU (device: auto, and torch sees no CUDA GPU here)"
        return f"it counts CUDA kernels and this benchmark runs on {where}; count CPU instructions with 'instructions'"
    return None


def measure(ctx: MeasureContext) -> dict[str, Any]:
    import torch
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    if not ctx.is_cuda:
        raise RuntimeError(f"cuda_kernels counts CUDA kernels; this benchmark runs on {ctx.device}")
    ctx.step()
    ctx.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        ctx.step()
        ctx.synchronize()
    names = Counter(e.name for e in prof.events() if e.device_type == DeviceType.CUDA)
    props = torch.cuda.get_device_properties(ctx.device)
    return {
        "cuda_kernels": sum(names.values()),
        "cuda_kernel_names": dict(names.most_common()),
        "cuda_kernels_gpu": f"{props.name} (compute capability {props.major}.{props.minor})",
        "cuda_kernels_software": (f"torch {torch.__version__}, CUDA {torch.version.cuda}, "
                                  f"cuDNN {torch.backends.cudnn.version()}"),
    }


@benchbench.hookimpl
def benchbench_register_metrics(register: Any) -> None:
    register(
        "cuda_kernels",
        measure,
        fields=["cuda_kernels"],
        ratio_fields=["cuda_kernels"],
        compare={"cuda_kernels": {"exact": True, "settings": list(SETTINGS)}},
        available=available,
        description="CUDA kernels (and memory copies/sets) per step, from one profiled step: deterministic, for CI "
        "gates on a GPU; their names in the run file",
    )
