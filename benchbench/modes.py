"""How PyTorch runs a benchmark's step: torch.compile, autocast, TF32, cuDNN autotuning, CUDA graphs.

The suite keys ``compile``, ``autocast``, ``tf32``, ``cudnn_benchmark`` and ``cuda_graphs``
(see :class:`~benchbench.spec.BenchmarkSpec`) are applied here, in one place, so that
every metric of a benchmark measures the same execution:

* :func:`compiled` wraps the model in ``torch.compile`` (the compilation itself happens
  in the first step, timed as ``compile_time_s``); :class:`CompileWatch` counts graph
  breaks and the recompilations that happen after that first step, which would otherwise
  hide inside the timings, and writes them in the record: the compile fields
  (:data:`COMPILE_FIELDS`), their formats and their columns live here;
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
  first step, after the benchmarks before it ran; :func:`conflicts` names the modes a
  benchmark asks for that cannot work together, and :func:`cuda_graphs_without_gpu` is the
  one rule for ``cuda_graphs`` without a GPU (an error in the suite, or a skip).

Importing this module does not import torch (suite validation and the run file's fields
use it); each function that runs torch imports it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from benchbench.checks import shown
from benchbench.errors import did_you_mean
from benchbench.spec import BenchmarkSpec

if TYPE_CHECKING:
    import torch

    from benchbench.context import MeasureContext

CUDA_GRAPH_WARMUP = 3
"""Steps run on a side stream before capturing (cuDNN picks its algorithms, lazy buffers appear)."""
COMPILE_FIELDS = ("compile_time_s", "graph_breaks", "recompilations")
"""What the record of a compiled benchmark (``compile:``) adds, written by :class:`CompileWatch`:
the first step's time (it compiles), dynamo's graph breaks, and recompilations after the first step."""
COMPILE_FORMATS: dict[str, Callable[[Any], str]] = {"compile_time_s": lambda v: f"{v:.1f} s"}
"""How the table shows the compile fields that need more than the default number format."""


def compile_columns(specs: Sequence[BenchmarkSpec]) -> tuple[list[str], dict[str, Callable[[Any], str]]]:
    """The table's columns for the compile fields, and their formats: when a benchmark is compiled."""
    if any(spec.compile is not None for spec in specs):
        return list(COMPILE_FIELDS), dict(COMPILE_FORMATS)
    return [], {}


class NoGpu(NamedTuple):
    """What becomes of a benchmark that needs a GPU and may get none (:func:`cuda_graphs_without_gpu`)."""

    skip: bool
    """True: the benchmark is skipped with :attr:`reason`; False: the suite is wrong (an error)."""
    reason: str


def cuda_graphs_without_gpu(asked: Any, resolved: str | None = None) -> NoGpu | None:
    """``cuda_graphs: true`` on a device that may have no GPU, by one rule: a benchmark that asks
    for the CPU (``asked``) is a suite error, reported while the suite is validated; ``device:
    auto`` that found no GPU where the job runs (``resolved`` is the CPU) is skipped, so that one
    suite serves machines with and without a GPU. None: a GPU was asked for (a missing one is a
    usage error of its own) or found, or the device is not resolved yet."""
    if asked == "cpu":
        return NoGpu(False, "a CUDA graph needs a CUDA device, and this benchmark asks for device: cpu "
                            "(use device: auto or cuda, where a CPU-only machine skips it)")
    if resolved == "cpu":
        return NoGpu(True, "cuda_graphs: true needs a CUDA GPU, and device auto found none")
    return None


def conflicts(settings: Mapping[str, Any]) -> list[str]:
    """Execution modes a benchmark's merged settings ask for that cannot work together (suite errors)."""
    problems = []
    if settings.get("cuda_graphs"):
        no_gpu = cuda_graphs_without_gpu(settings.get("device"))
        if no_gpu is not None and not no_gpu.skip:
            problems.append(f"key 'cuda_graphs': {no_gpu.reason}")
        if settings.get("mode") == "train":
            problems.append("key 'cuda_graphs': only mode: eval is captured in a CUDA graph (a training step "
                            "also updates state that a replay would not)")
    return problems


def unknown_backend(name: str) -> str | None:
    """Why ``torch.compile(backend=name)`` cannot work in this installation, or None.

    The rule is torch's own (``lookup_backend``): a name registered with dynamo, built in or
    added by an installed package's ``torch_dynamo_backends`` entry point.
    """
    import torch
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
    import torch

    torch._dynamo.reset()
    return torch.compile(model, **options)  # type: ignore[return-value]  # an OptimizedModule (a Module); annotated as a callable


class CompileWatch:
    """Graph breaks and recompilations of a compiled model, from ``torch._dynamo``'s counters,
    written in its record as the compile fields (:data:`COMPILE_FIELDS`)."""

    def __init__(self) -> None:
        self.start = self._frames()
        self.after_first_step = 0
        """Frames compiled by the first step (which compiles)."""

    def first_step_done(self, record: dict[str, Any], seconds: float) -> None:
        """The first step took ``seconds`` (compiling included): ``compile_time_s`` and ``graph_breaks``."""
        record.update(compile_time_s=seconds, graph_breaks=self.graph_breaks())
        self.after_first_step = self.compiled_frames()

    def measured(self, record: dict[str, Any], ctx: MeasureContext) -> None:
        """The metrics ran: ``recompilations`` since the first step, with a warning when there were
        any (those timings include compiling)."""
        record["recompilations"] = self.compiled_frames() - self.after_first_step
        if record["recompilations"]:
            ctx.warn(f"torch.compile recompiled {record['recompilations']} time(s) after the first step, while being "
                     "measured: those timings include compiling (shapes that change? try compile: {dynamic: true})")

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
    import torch

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
    import torch

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
    import torch

    dtype = getattr(torch, spec.autocast)
    return lambda: torch.autocast(device.type, dtype=dtype)


def capture_cuda_graph(step: Callable[[], Any], device: torch.device) -> Callable[[], Any]:
    """Record ``step`` in a CUDA graph and return a step that replays it.

    The inputs and weights stay where they are (the graph reads them in place); the step
    is warmed up on a side stream first, as CUDA graph capture requires.
    """
    import torch

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
