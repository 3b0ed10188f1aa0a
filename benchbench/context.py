"""What a metric receives: the built model, its input, and how to run one step.

The job runner (:class:`~benchbench.job.JobRunner`) builds one :class:`MeasureContext` per
benchmark and hands it to each metric in turn. Metrics never build models or inputs
themselves, so every metric of a benchmark measures the same thing, and a third-party
metric gets device, dtype, memory format and train/eval mode handled for free.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from benchbench.spec import BenchmarkSpec


@dataclass
class MeasureContext:
    model: torch.nn.Module
    """The model, on ``device``, in ``dtype``, in eval or train mode as ``mode`` says."""
    inputs: Any
    """One batch of input (usually a tensor of shape ``(batch_size, *input_shape)``)."""
    device: torch.device
    batch_size: int
    mode: str
    """``"eval"``: forward under ``torch.inference_mode()``; ``"train"``: forward + backward."""
    benchmark: BenchmarkSpec
    options: dict[str, Any] = field(default_factory=dict)
    """This metric's options: its registered defaults updated by the suite's ``metric_options``."""
    make_sample: Callable[[], Any] | None = None
    warnings: list[str] = field(default_factory=list)
    dataset: Any = None
    """The benchmark's :class:`~benchbench.data.Dataset` when it names ``dataset:`` (else None)."""
    build_model: Callable[[int], torch.nn.Module] | None = None
    """A fresh model, seeded with the given seed, on the device, in the dtype: for metrics
    that train (one model per seed) without touching the benchmarked one."""
    progress: Callable[[str], None] | None = None
    autocast: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext
    """The context each step runs in: ``torch.autocast`` when the suite asks for it."""
    replay: Callable[[], Any] | None = None
    """Set once the step is captured in a CUDA graph (``cuda_graphs: true``): a step is then a replay."""

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def eager_model(self) -> torch.nn.Module:
        """The model as written, also under ``compile:`` (where :attr:`model` is the compiled
        wrapper): for metrics that trace or inspect the module rather than run the step."""
        return getattr(self.model, "_orig_mod", self.model)

    def step(self) -> Any:
        """Run the benchmarked work once: one forward (eval) or forward + backward (train),
        in the benchmark's execution mode (compiled, under autocast, or a CUDA graph replay)."""
        if self.replay is not None:
            return self.replay()
        return self.eager_step()

    def eager_step(self) -> Any:
        """The step itself, without a CUDA graph: what a graph captures."""
        with self.autocast():
            if self.mode == "train":
                output = self.model(self.inputs)
                loss = sum(t.float().sum() for t in floating_tensors(output))
                if not isinstance(loss, torch.Tensor):  # sum() of nothing: 0
                    raise TypeError(f"train mode needs a floating-point output to backpropagate from, got {type(output).__name__}")
                loss.backward()
                self.model.zero_grad(set_to_none=True)
                return output
            with torch.inference_mode():
                return self.model(self.inputs)

    def sample_input(self) -> Any:
        """One sample (batch of 1) of the same input, for per-sample counts such as FLOPs."""
        if self.make_sample is not None:
            return self.make_sample()
        return self.inputs[:1]

    def synchronize(self) -> None:
        """Wait for queued device work (a no-op on CPU)."""
        if self.is_cuda:
            torch.cuda.synchronize(self.device)

    def warn(self, message: str) -> None:
        """Attach a warning to this benchmark's record (shown under the table)."""
        self.warnings.append(message)

    def report(self, message: str) -> None:
        """Show progress of long work (training epochs) on the terminal; not stored."""
        if self.progress is not None:
            self.progress(message)


def floating_tensors(output: Any) -> list[torch.Tensor]:
    """The floating-point tensors in a model output (a tensor, or nested tuples/lists/dicts), in
    order: what a train step sums into its loss, and what ``numerics`` compares element by element."""
    if isinstance(output, torch.Tensor):
        return [output] if output.is_floating_point() else []
    if isinstance(output, dict):
        output = list(output.values())
    if isinstance(output, (list, tuple)):
        return [t for item in output for t in floating_tensors(item)]
    return []
