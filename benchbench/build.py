"""Build a benchmark's model and input batch; and try them on the meta device first.

One function builds what every metric measures (:func:`build_context`), so the dtype,
memory format, mode and seed are applied the same way for every benchmark. The same
function, on PyTorch's ``meta`` device (tensors with shapes but no storage), is the
*dry run* that suite validation uses to catch arguments a model rejects and input
shapes it cannot take, in milliseconds and before anything runs (:func:`dry_run`).
"""

from __future__ import annotations

import contextlib
import inspect
import signal
import traceback
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch

from benchbench import modes
from benchbench.context import MeasureContext
from benchbench.deadline import DeadlineExceeded, deadline
from benchbench.registry import MetricEntry, ModelEntry, Registry
from benchbench.spec import DTYPES, BenchmarkSpec

DRY_RUN_LIMIT_S = 30.0
_TORCH_DIR = str(Path(torch.__file__).parent)


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype of a suite's ``dtype:`` name (one of :data:`benchbench.spec.DTYPES`)."""
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {name!r}")
    return getattr(torch, name)


def default_input(batch_size: int, input_shape: tuple[int, ...], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Standard-normal input, the usual stand-in for normalised images or features."""
    return torch.randn(batch_size, *input_shape, device=device, dtype=dtype)


def dataset_batch(dataset: Any, batch_size: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The first ``batch_size`` training inputs (repeated if the set is smaller), on ``device``."""
    x = dataset.train_x
    index = torch.arange(batch_size) % len(x)
    batch = x[index].to(device)
    return batch.to(dtype) if batch.is_floating_point() else batch


def build_model(spec: BenchmarkSpec, entry: ModelEntry, device: torch.device, seed: int) -> torch.nn.Module:
    """The model, seeded, on ``device`` in the spec's dtype and memory format (mode not set)."""
    if device.type in ("cpu", "meta"):  # its generator alone: torch.manual_seed also queues every GPU
        torch.random.default_generator.manual_seed(seed)  # backend's seeding with a stack trace (~1 ms a call)
    else:
        torch.manual_seed(seed)
    on_meta = torch.device("meta") if device.type == "meta" else contextlib.nullcontext()
    with on_meta:  # on meta, the weights are never allocated
        model = entry.factory(**spec.args)
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"factory of model {spec.model!r} returned {type(model).__name__}, not a torch.nn.Module")
    model = model.to(device=device, dtype=torch_dtype(spec.dtype))
    if spec.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def build_context(
    spec: BenchmarkSpec, entry: ModelEntry, device: torch.device, batch: int, dataset: Any = None
) -> MeasureContext:
    """The model (seeded, on ``device``, in the spec's dtype, memory format and mode; compiled
    when the suite asks) and its input; each step runs in the spec's autocast."""
    model = build_model(spec, entry, device, spec.seed)
    model.train(spec.mode == "train")
    if spec.compile is not None and device.type != "meta":
        model = modes.compiled(model, spec.compile)
    dtype = torch_dtype(spec.dtype)
    if dataset is not None:  # real samples (token ids stay integers)
        make_input = partial(dataset_batch, dataset, device=device, dtype=dtype)
    else:
        maker = entry.meta.get("make_input", default_input)
        extra = {"args": spec.args} if "args" in inspect.signature(maker).parameters else {}
        make_input = partial(maker, input_shape=spec.input_shape, device=device, dtype=dtype, **extra)
    inputs = make_input(batch)
    if spec.channels_last and isinstance(inputs, torch.Tensor) and inputs.dim() == 4:
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    return MeasureContext(
        model=model,
        inputs=inputs,
        device=device,
        batch_size=batch,
        mode=spec.mode,
        benchmark=spec,
        make_sample=partial(make_input, 1),
        dataset=dataset,
        build_model=partial(build_model, spec, entry, device),
        autocast=modes.autocast(spec, device),
    )


def per_sample_shape(output: Any) -> Any:
    """The shape of one sample of a model's output (nested for tuples and dicts)."""
    if isinstance(output, torch.Tensor):
        return list(output.shape[1:])
    if isinstance(output, (list, tuple)):
        return [per_sample_shape(o) for o in output]
    if isinstance(output, dict):
        return {k: per_sample_shape(v) for k, v in output.items()}
    return None


def preflight(specs: list[BenchmarkSpec], registry: Registry) -> list[str]:
    """Args a model rejects and input shapes it cannot take, found on the meta device.

    The suite loader calls this on the benchmarks that passed every other check (exit
    code 2 before anything runs); benchmarks with ``dry_run: false`` or ``skip`` are left out.
    The output of the dry run is shown to the metrics that declare ``applies`` (a metric
    that compares outputs cannot measure a model whose output holds no floating tensor).
    """
    problems = []
    for spec in specs:
        if not spec.dry_run or spec.skip:
            continue
        outputs: list[Any] = []
        problem = dry_run(spec, registry.get(ModelEntry, spec.model), on_output=outputs.append)
        if problem:
            problems.append(
                f"benchmark {spec.name!r}: model {spec.model!r} cannot run with these 'args' and "
                f"'input_shape' {list(spec.input_shape)}: {problem} (found by a dry run on the meta device; "
                "set dry_run: false on the benchmark if that is wrong)"
            )
        problems.extend(p for output in outputs for p in _unfit_metrics(spec, registry, output))
    return problems


def _unfit_metrics(spec: BenchmarkSpec, registry: Registry, output: Any) -> list[str]:
    """The benchmark's metrics that say (``applies``) they cannot measure a model with this output."""
    problems = []
    for metric in spec.metrics:
        applies = registry.get(MetricEntry, metric).applies if registry.has(MetricEntry, metric) else None
        reason = applies(output) if applies is not None else None
        if reason:
            problems.append(f"benchmark {spec.name!r}: metric {metric!r} cannot measure model {spec.model!r}: "
                            f"{reason} (found by a dry run on the meta device); drop {metric!r} from its metrics")
    return problems


def dry_run(spec: BenchmarkSpec, entry: ModelEntry, *, on_output: Callable[[Any], None] | None = None) -> str | None:
    """Build the model and run one forward pass on the meta device; a problem, or None.

    Reported (so that the suite is rejected before anything runs, exit code 2):

    * an error raised by a PyTorch operator, in PyTorch's code or called from the model's
      (``Conv2d(in_channels=-3)``; 3 channels into a 512-channel conv; ``x.view(-1, 400)``
      on an input of another size);
    * a ``ValueError`` or ``TypeError`` raised by the model's own code, the usual way a
      model rejects its arguments.

    Not reported, so that the benchmark runs and fails (or works) for real: anything the
    meta device cannot do (data-dependent code, operators without a meta kernel: their
    errors say "meta" or are ``NotImplementedError``), and any other error the model's
    code raises itself (``raise RuntimeError(...)``, ``assert``, ``sys.exit``), which is a
    bug of that model rather than of the suite (it will be recorded as a failed benchmark
    while the others run). The dry run uses the suite's batch size (free on meta), so
    BatchNorm in train mode sees more than one value per channel.

    It runs model code in this process, so the ``subprocess`` executor skips it.
    ``on_output`` is called with the forward pass's output when it succeeds.
    """
    entered: list[str] = []  # modules whose forward has started and not returned
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, []) if hasattr(signal, "pthread_sigmask") else None
    try:
        with deadline(DRY_RUN_LIMIT_S), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the real run shows the model's warnings, once
            ctx = build_context(spec, entry, torch.device("meta"), spec.batch_size)
            with _tracking(ctx.model, entered), torch.no_grad():
                output = ctx.model(ctx.inputs)
    except DeadlineExceeded:
        return None  # inconclusive (a model that hangs is the real run's to report, under its timeout)
    except (Exception, SystemExit) as exc:  # the classification below decides
        if isinstance(exc, (NotImplementedError, SystemExit)) or "meta" in str(exc).lower():
            return None
        if not (_raised_by_an_operator(exc) or isinstance(exc, (ValueError, TypeError))):
            return None
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        where = f" (in {entered[-1]})" if entered else ""
        return f"{type(exc).__name__}: {first_line}{where}"
    finally:
        if mask is not None:  # model code that blocked signals must not change this process
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    if on_output is not None:
        on_output(output)
    return None


@contextlib.contextmanager
def _tracking(model: torch.nn.Module, entered: list[str]) -> Any:
    """Keep ``entered`` as the stack of running modules, described with their input shapes."""

    def push(name: str) -> Any:
        def hook(module: torch.nn.Module, args: tuple[Any, ...]) -> None:
            shapes = ", ".join("x".join(map(str, a.shape)) for a in args if isinstance(a, torch.Tensor))
            where = f"module {name!r}" if name else "the model"
            entered.append(f"{where}, {type(module).__name__}({module.extra_repr()}), given input {shapes}")

        return hook

    def pop(module: torch.nn.Module, args: tuple[Any, ...], output: Any) -> None:
        entered.pop()

    handles = []
    for name, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(push(name)))
        handles.append(module.register_forward_hook(pop))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _raised_by_an_operator(exc: BaseException) -> bool:
    """Whether PyTorch raised it: the innermost Python frame is PyTorch's, or a line of the
    model's code that calls an operator (not one that says ``raise``)."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return False
    last = frames[-1]
    if last.filename.startswith(_TORCH_DIR):
        return True
    return isinstance(exc, (RuntimeError, IndexError)) and not (last.line or "").lstrip().startswith("raise")
