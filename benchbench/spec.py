"""What a validated suite is: the benchmarks to run, each with every setting resolved.

Plain frozen dataclasses with no behaviour: the suite loader (:mod:`benchbench.suite`)
makes them, the suite runner, the executors and the plugins read them; and the rule that
picks a run's executor (:func:`chosen_executor`). Importing this module imports nothing
heavy, so anything may import it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DEFAULT_TIMEOUT_S = 600.0
DTYPES = ("float32", "float16", "bfloat16", "float64")
"""The ``dtype:`` names; :mod:`benchbench.build` maps them to torch dtypes by name."""
MODES = ("eval", "train")
DEFAULT_METRICS = ("params", "flops", "latency", "memory")
AUTOCAST_DTYPES = ("bfloat16", "float16")
"""``autocast:`` takes one of these, or ``none``."""
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
DEFAULT_EXECUTOR = "inline"
"""Where benchmarks run when neither the command line nor the suite says: in this process."""


def chosen_executor(given: str | None, suite: Any) -> str:
    """Where a run's benchmarks execute: the command line's ``--executor`` or ``--isolate``
    (``given``) wins over the suite's ``executor:`` (``suite``; a value that is no name, which
    validation reports, counts as none), and without either :data:`DEFAULT_EXECUTOR`."""
    return given or (suite if isinstance(suite, str) else None) or DEFAULT_EXECUTOR


@dataclass(frozen=True)
class BenchmarkSpec:
    """One benchmark after defaults are merged and every value is checked."""

    name: str
    model: str
    args: dict[str, Any] = field(default_factory=dict)
    input_shape: tuple[int, ...] = ()
    device: str = "auto"
    batch_size: int = 1
    cpu_batch_size: int | None = None
    metrics: tuple[str, ...] = DEFAULT_METRICS
    metric_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    dtype: str = "float32"
    channels_last: bool = False
    mode: str = "eval"
    threads: int | None = None
    seed: int = 0
    baseline: str | None = None
    skip: str | None = None
    description: str | None = None
    timeout: float | None = DEFAULT_TIMEOUT_S
    """Seconds the benchmark may take (building, measuring); ``None``: no limit."""
    dry_run: bool = True
    """Check args and input shape on the meta device while validating (see build.dry_run)."""
    thresholds: dict[str, float] = field(default_factory=dict)
    """For ``benchbench compare``: field (or metric) -> allowed relative change (0.05 = 5%)."""
    dataset: str | None = None
    """A registered dataset: metrics that train use it, and its inputs feed the others."""
    dataset_args: dict[str, Any] = field(default_factory=dict)
    compile: dict[str, Any] | None = None
    """``torch.compile`` options (mode, backend, fullgraph, dynamic), or None for eager."""
    autocast: str | None = None
    """Run each step under ``torch.autocast`` in this dtype (bfloat16, float16); weights stay in ``dtype``."""
    tf32: bool | None = None
    """Allow TensorFloat-32 in CUDA matmuls and cuDNN convolutions (None: torch's defaults)."""
    cudnn_benchmark: bool | None = None
    """``torch.backends.cudnn.benchmark`` for this benchmark (None: torch's default)."""
    cuda_graphs: bool = False
    """Capture one step in a CUDA graph and replay it (no Python launch overhead in the time)."""


@dataclass(frozen=True)
class Suite:
    name: str
    source: str
    """Where the suite came from: a file path, or ``<dict>``."""
    benchmarks: tuple[BenchmarkSpec, ...]
    description: str | None = None
    text: str | None = None
    """The suite file's contents, stored in the run file for reproducibility."""
    notes: tuple[str, ...] = ()
    """Remarks for the user about how the suite was read (baselines added to --only...)."""
    executor: str | None = None
    """The suite's ``executor:`` (``inline``, ``subprocess``, a plugin's); the command line wins."""
    rounds: int = 1
    """How many times the whole suite runs, interleaved (A, B, C, A, B, C...); timed samples pool."""


