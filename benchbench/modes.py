"""How PyTorch runs a benchmark's step: torch.compile, autocast, TF32, cuDNN autotuning, CUDA graphs.

The suite keys ``compile``, ``autocast``, ``tf32``, ``cudnn_benchmark`` and ``cuda_graphs``
(see :class:`~benchbench.spec.BenchmarkSpec`) are applied here, in one place, so that
every metric of a benchmark measures the same execution:

* :func:`compiled` wraps the model in ``torch.compile`` (the compilation itself happens
  in the first step, which the runner times as ``compile_time_s``); :class:`CompileWatch`
  counts graph breaks and the recompilations that happen after that first step, which
  would otherwise hide inside the timings;
* :func:`precision_flags` sets TF32 and ``cudnn.benchmark`` for one benchmark and puts
  them back afterwards, yielding the settings in effect (recorded with the benchmark:
  they decide a GPU result, and which peak ``peak_fraction`` is a fraction of);
* :func:`autocast` is the context each step runs in (``torch.autocast`` in the suite's
  dtype, or nothing);
* :func:`capture_cuda_graph` records one step in a CUDA graph, after which the step is a
  graph replay: the time then excludes Python's launch overhead, which dominates small
  layers on a fast GPU;
* :func:`unknown_backend` says, while the suite is validated, that a ``compile: {backend:
  NAME}`` names no backend of this torch: torch would only say so at the benchmark's
  first step, after the benchmarks before it ran.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch

from benchbench.checks import shown
from benchbench.errors import did_you_mean
from benchbench.spec import BenchmarkSpec

CUDA_GRAPH_WARMUP = 3
"""Steps run on a side stream before capturing (cuDNN picks its algorithms, lazy buffers appear)."""


def unknown_backend(name: str) -> str | None:
    """Why ``torch.compile(backend=name)`` cannot work in this installation, or None.

    The rule is torch's own (``lookup_backend``): a name registered with dynamo, built in or
    added by an installed package's ``torch_dynamo_backends`` entry point.
    """
    from torch._dynamo.backends.registry import list_backends

    every = list_backends(exclude_tags=())
    if name in every:
        return None
    listed = [b for b in every if "TESTING" not in b]  # dynamo's own test doubles are no choice
    return (f"backend {shown(name)} is not registered with torch.compile in this torch ({torch.__version__})"
            f"{did_you_mean(name, every)}; registered backends: {', '.join(listed)}")


def compiled(model: torch.nn.Module, options: dict[str, Any]) -> torch.nn.Module:
    """``torch.compile(model, **options)``, with dynamo's caches and counters reset first, so
    that each benchmark pays (and is timed for) its own compilation."""
    torch._dynamo.reset()
    return torch.compile(model, **options)  # type: ignore[return-value]


class CompileWatch:
    """Graph breaks and recompilations of a compiled model, from ``torch._dynamo``'s counters."""

    def __init__(self) -> None:
        self.start = self._frames()

    @staticmethod
    def _frames() -> int:
        from torch._dynamo.utils import counters

        return int(counters["frames"]["ok"])

    def compiled_frames(self) -> int:
        """Frames compiled since the watch started (one per compiled function, more on recompiles)."""
        return self._frames() - self.start

    @staticmethod
    def graph_breaks() -> int:
        from torch._dynamo.utils import counters

        return int(sum(counters["graph_break"].values()))


@contextlib.contextmanager
def precision_flags(spec: BenchmarkSpec, device: torch.device) -> Iterator[dict[str, Any]]:
    """Apply the benchmark's ``tf32`` and ``cudnn_benchmark`` (None keeps torch's setting), yield
    the settings in effect, and restore the previous ones afterwards.

    ``tf32: true`` allows TensorFloat-32 in CUDA matmuls and cuDNN convolutions (and sets
    ``float32_matmul_precision`` to ``high``); ``false`` forbids both (``highest``). On the CPU
    these flags change nothing (they are recorded all the same): a documented no-op.
    """
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    saved = (matmul.allow_tf32, cudnn.allow_tf32, torch.get_float32_matmul_precision(), cudnn.benchmark)
    try:
        if spec.tf32 is not None:
            matmul.allow_tf32 = cudnn.allow_tf32 = spec.tf32
            torch.set_float32_matmul_precision("high" if spec.tf32 else "highest")
        if spec.cudnn_benchmark is not None:
            cudnn.benchmark = spec.cudnn_benchmark
        yield effective_flags(device)
    finally:
        matmul.allow_tf32, cudnn.allow_tf32 = saved[0], saved[1]
        torch.set_float32_matmul_precision(saved[2])
        cudnn.benchmark = saved[3]


def effective_flags(device: torch.device | None = None) -> dict[str, Any]:
    """The precision and backend settings in effect now (what the run environment and each record keep)."""
    flags: dict[str, Any] = {
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32),
        "tf32_cudnn": bool(torch.backends.cudnn.allow_tf32),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "deterministic": bool(torch.are_deterministic_algorithms_enabled()),
    }
    if device is not None and device.type != "cuda":
        flags["note"] = "TF32 and cuDNN settings have no effect on the CPU"
    return flags


def autocast(spec: BenchmarkSpec, device: torch.device) -> Callable[[], contextlib.AbstractContextManager[Any]]:
    """A factory of the context each step runs in: ``torch.autocast`` in the spec's dtype, or nothing."""
    if spec.autocast is None:
        return contextlib.nullcontext
    dtype = getattr(torch, spec.autocast)
    return lambda: torch.autocast(device.type, dtype=dtype)


def capture_cuda_graph(step: Callable[[], Any], device: torch.device) -> Callable[[], Any]:
    """Record ``step`` in a CUDA graph and return a step that replays it.

    The inputs and weights stay where they are (the graph reads them in place); the step
    is warmed up on a side stream first, as CUDA graph capture requires.
    """
    stream = torch.cuda.Stream(device)
    stream.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(stream):
        for _ in range(CUDA_GRAPH_WARMUP):
            step()
    torch.cuda.current_stream(device).wait_stream(stream)
    torch.cuda.synchronize(device)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        output = step()

    def replay() -> Any:
        graph.replay()
        return output

    return replay
