"""``instructions``: CPU instructions executed per step, counted by valgrind's callgrind.

Timing on a shared machine moves by several percent from run to run; the number of
instructions a step executes does not (the approach of CodSpeed's instrumentation mode,
Rust's iai and ``torch.utils.benchmark.Timer.collect_callgrind``). On the 2-core
development machine repeated counts of the same layer agree to a few hundredths of a
percent, so a 1% change in the work of a model shows in one run, whatever else the
machine is doing.

How (:mod:`benchbench.callgrind`, :mod:`benchbench.callgrind_worker`): the benchmark is
not counted in this process. The first benchmark that asks starts ONE python process
under ``valgrind --tool=callgrind``, instrumentation off; it imports torch and the run's
plugins once (the slow part: 20-40 s, which counts against no benchmark's ``timeout``:
it has a limit of its own, :data:`benchbench.callgrind.STARTUP_LIMIT_S`), and every
instruction benchmark of the run is then built and counted there; the process ends with
the run (``benchbench_run_end``) or with this process. There the model is built as here
(same spec, seed and batch), warmed up uninstrumented, and measured twice with
instrumentation on: an empty measurement C(0) and ``steps`` steps C(n). ``instructions``
= (C(n) - C(0)) / n: the fixed cost of measuring (the toggles, the loop) cancels, and an
empty measurement costs nothing where a second, longer one (n and 2n steps) would cost n
more steps under valgrind. Counting runs with one thread and a fixed hash seed (see the
worker), and the one part of the interpreter whose cost depends on the heap's layout,
CPython's attribute lookup on types, is left out (:data:`DENOISE`), as ``torch``'s
``counts(denoise=True)`` leaves out dict lookups.

Which kernels: valgrind emulates fused multiply-add (FMA) instructions in software, far
slower than other vector instructions: counting the 64-channel convolution of
``suites/ci.yaml`` (warm-up included) took 45 s with oneDNN's AVX2 (FMA) kernels and 3.6 s
with its AVX ones on the development machine. Unless
``fma: true``, the counting process therefore caps oneDNN at AVX and MKL at SSE4.2
(``ONEDNN_MAX_CPU_ISA``, ``MKL_ENABLE_INSTRUCTIONS``; ATen's own kernels keep the
capability torch detects, AVX2 under valgrind 3.19, which hides AVX-512). The counts
are those of these kernels: as deterministic, and as sensitive to a change of work, as
any other; not the count of a native run, which picks other kernels anyway.

What the count depends on besides the model is recorded (``instructions_cpu``: the CPU
model, torch's capability under valgrind and the kernel caps; ``instructions_software``:
torch, python, libc and valgrind versions) and ``benchbench compare`` calls two counts
"not comparable" when either differs. It judges ``instructions`` against a 1% threshold,
without statistics (``compare`` below). The run file keeps the functions with the most
instructions of their own per step (``instructions_top``) and the ATen operators with
the most, calls included (``instructions_operators``): what got more expensive.

``estimated_cycles``, the second metric here, is the same count with callgrind's cache
simulation (``--cache-sim=yes``): iai-callgrind's estimate, L1 hits + 5 x last-level hits
+ 35 x memory accesses per step, with the L1 and last-level misses beside it
(:mod:`benchbench.cachesim`). Instructions barely see memory traffic (a ``.clone()`` of a
conv block's 2 MiB output: +0.22% of its instructions, +1.7% of its estimated cycles). The
simulated caches are always set (metric options ``I1``, ``D1``, ``LL``; the processor's
own are not used: a VM may report anything) and recorded (``cycles_cache``), and counts
taken under other caches are not comparable. The simulation adds events and changes no
instruction, so a benchmark that asks for both metrics is counted once, in a process with
the simulation (:class:`_SharedCallgrind`). Its instruction count may still differ a
little from one taken in a process without it: malloc's costs depend on where the heap
lies, which valgrind's own allocations (the simulated caches) move (0.3-0.4% for a 1.2
million-instruction conv, 0.001% for the 108 million of the block above; less than
counts of one benchmark under two names may differ). So that a benchmark's count depends on
its own settings only, never on what ran before it, ``instructions`` alone is always
counted without the simulation. The simulation makes counting about twice as slow; it
starts empty when instrumentation is switched on, so the last warm-up step runs
instrumented (not collected) to fill it as the step before would.

Needs valgrind (``apt-get install valgrind``) on x86-64 Linux, and a CPU benchmark:
otherwise the suite is rejected before anything runs (``available``). The counting
process belongs to the run, so it needs the inline executor (the default).
"""

from __future__ import annotations

import atexit
import platform
import re
import shutil
import sys
import time
from collections import defaultdict
from typing import Any

import benchbench
from benchbench import cachesim, formatting
from benchbench.callgrind import CallgrindProcess, Profile
from benchbench.context import MeasureContext
from benchbench.deadline import paused
from benchbench.environment import cpu_model
from benchbench.results import MODEL_SETTINGS

OPTIONS: dict[str, Any] = {"steps": 1, "warmup_steps": 2, "top": 15, "fma": False}
"""``steps`` counted (the count is per step; more steps only average the rare variation),
``warmup_steps`` run uninstrumented first (oneDNN makes its kernels on the first call;
Python specialises its bytecode over the first few), ``top`` functions and operators kept,
``fma``: let oneDNN and MKL use FMA kernels (a convolution counts about 13x slower; see above).
The counting process is started for one value of ``fma``: a suite that mixes both
restarts it whenever the value changes."""
DENOISE = ("_PyType_Lookup",)
"""Left out of ``instructions``: CPython's attribute lookup on types. Its cache is indexed by
the *address* of the attribute's name, so how often it misses (and walks the MRO's dicts)
depends on the heap's layout, which changes with anything the process did before (even a
module compiled from source instead of loaded from its .pyc): on the 2-core development
machine it made counts of a small conv (470k instructions) spread by 0.3% between runs,
0.03% without it. It is about 1% of such a step, less of a bigger one
(``instructions_raw`` keeps the count with it). torch's ``counts(denoise=True)`` leaves
out dict lookups for the same kind of reason."""
NO_FMA = {"ONEDNN_MAX_CPU_ISA": "AVX", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"}
"""The counting process's kernel caps when ``fma`` is false (the default)."""
THRESHOLD = 0.01
"""``benchbench compare``'s default for ``instructions``: 1%, ten times the run-to-run spread."""
_HOW_IT_RUNS = (*MODEL_SETTINGS, "device", "batch_size", "dtype", "mode", "channels_last")
SETTINGS = (*_HOW_IT_RUNS, "instructions_cpu", "instructions_software")
"""What two counts must share to be compared: the model and how it runs (not ``threads``:
counting always uses one), the CPU valgrind presents and the software."""
CYCLES_OPTIONS: dict[str, Any] = {"steps": 1, "warmup_steps": 2, "fma": False, **cachesim.DEFAULTS}
"""``estimated_cycles``'s options: ``steps``, ``warmup_steps`` and ``fma`` as :data:`OPTIONS`
(with the same values, a benchmark that asks for both metrics is counted once), and the
simulated caches ``I1``, ``D1``, ``LL`` (:data:`benchbench.cachesim.DEFAULTS`)."""
CYCLES_THRESHOLD = 0.01
"""``benchbench compare``'s default for ``estimated_cycles``: 1%. Counts of the conv block of
``benchmarks/memory_traffic.py`` in two processes agree to 0.02% at most; a ``.clone()`` of
its 2 MiB output adds 1.7%, ``+ 0.0`` 2.1%."""
CYCLES_SETTINGS = (*_HOW_IT_RUNS, "cycles_cpu", "cycles_software", "cycles_cache")
"""As :data:`SETTINGS`, and the simulated caches."""
CYCLES_FOOTNOTE = ("estimated_cycles: per step, from callgrind's cache simulation: L1 hits + 5 x last-level hits + "
                   "35 x memory accesses (iai-callgrind's weights), under the simulated caches recorded as cycles_cache; "
                   "not comparable between different caches.")
INSTALL = "apt-get install valgrind (Debian, Ubuntu; dnf install valgrind on Fedora)"
INLINE_ONLY = ("it counts every benchmark of a run in one valgrind process that belongs to the run (starting one "
               "takes 20-40 s), which a benchmark's worker process cannot reach")


def available(device: str) -> str | None:
    """Why ``instructions`` cannot run for a benchmark on ``device`` on this machine, or None.
    The benchmark's device is asked about first: installing valgrind would not help a
    benchmark on a GPU."""
    if device.startswith("cuda") or (device == "auto" and _cuda()):
        return (f"it counts CPU instructions and this benchmark runs on {device!r}"
                f"{' (a GPU is visible)' if device == 'auto' else ''}: set device: cpu for it, or use cuda_kernels on a GPU")
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        return f"counting instructions needs valgrind on x86-64 Linux, and this is {sys.platform} on {platform.machine()}"
    if shutil.which("valgrind") is None:
        return f"it needs valgrind, which is not installed: {INSTALL}; or leave 'instructions' out of the metrics"
    return None


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


class _SharedCallgrind:
    """The callgrind process of the current run: started by the first benchmark that needs it.

    ``instructions`` and ``estimated_cycles`` share it. A process is started for one kernel cap
    (``fma``) and one cache model or none: ``estimated_cycles`` needs its model, and
    ``instructions`` a process without the simulation, or, when its benchmark asks for both,
    the one ``estimated_cycles`` needs. The last count is kept, so that the second of the two
    metrics of one benchmark reuses it. A suite that mixes benchmarks with and without
    ``estimated_cycles`` starts a new process whenever that changes (as for ``fma``).
    """

    plugin_arguments: dict[str, Any] | None = None
    process: CallgrindProcess | None = None
    last: tuple[CallgrindProcess, dict[str, Any], tuple[Profile, Profile], float] | None = None
    """The process, the request, its two profiles and the seconds counting took."""

    @classmethod
    def get(cls, ctx: MeasureContext, metric: str, environment: dict[str, str],
            cache: cachesim.CacheModel | None) -> tuple[CallgrindProcess, float | None]:
        """The running process (started now if needed) and, when started now, its start-up seconds.

        ``cache``: the caches to simulate (None: no simulation); a running process with
        other caches (or other kernel caps) is replaced.
        """
        if cls.plugin_arguments is None:
            raise RuntimeError(f"{metric} runs with the inline executor only (the default): it shares one valgrind "
                               "process among the run's benchmarks, which a worker process (--isolate, --executor) "
                               "cannot reach")
        options = cache.valgrind_options() if cache is not None else ()
        process = cls.process
        if process is not None and (not process.alive or process.plugin_arguments != cls.plugin_arguments
                                    or process.environment != environment
                                    or process.options != options):
            cls.close()
        if cls.process is not None:
            return cls.process, None
        simulating = f" with the cache simulation ({cache})" if cache is not None else ""
        ctx.report(f"{metric}: starting python under valgrind{simulating}, once per run (importing torch there "
                   "takes 20-40 s)")
        with paused():  # the run's start-up, not this benchmark's work: outside its timeout, with a limit of its own
            cls.process = CallgrindProcess(cls.plugin_arguments, environment, options=options)
        ctx.report(f"{metric}: valgrind ready after {cls.process.startup_s:.0f} s")
        return cls.process, cls.process.startup_s

    @classmethod
    def count(cls, ctx: MeasureContext, metric: str,
              cache: cachesim.CacheModel | None) -> tuple[CallgrindProcess, Profile, Profile, float, float | None]:
        """Count ``ctx``'s benchmark by the options of ``metric``: the process, the empty and measured
        profiles, the seconds counting took and, when the process was started now, its start-up."""
        opts = ctx.options
        process, startup_s = cls.get(ctx, metric, _caps(opts), cache)
        request = {"spec": ctx.benchmark, "batch_size": ctx.batch_size, "steps": opts["steps"],
                   "warmup": opts["warmup_steps"], "instrumented_warmup": bool(process.options)}
        last = cls.last
        if last is not None and last[0] is process and last[1] == request:
            return process, *last[2], last[3], startup_s
        cls.last = None
        started = time.perf_counter()
        empty, measured = process.count(request)
        seconds = time.perf_counter() - started
        cls.last = (process, request, (empty, measured), seconds)
        return process, empty, measured, seconds, startup_s

    @classmethod
    def close(cls) -> None:
        process, cls.process, cls.last = cls.process, None, None
        if process is not None:
            process.close()


atexit.register(_SharedCallgrind.close)


def _caps(options: dict[str, Any]) -> dict[str, str]:
    """The kernel caps of the counting process for a metric's options (``fma``)."""
    return {} if options["fma"] else NO_FMA


def _machine(process: CallgrindProcess, caps: dict[str, str]) -> tuple[str, str]:
    """What a count depends on besides the model: the CPU (as valgrind presents it, and the
    kernel caps) and the software, in words (``instructions_cpu``, ``instructions_software``)."""
    facts = process.facts
    kernels = ", ".join(f"{k}={v}" for k, v in caps.items()) or "FMA allowed"
    return (f"{cpu_model()}; under valgrind: torch capability {facts.get('cpu_capability')}, {kernels}",
            f"torch {facts.get('torch')}, python {facts.get('python')}, {facts.get('libc')}, {facts.get('valgrind')}")


def _cycles_wanted(benchmark: Any) -> cachesim.CacheModel | None:
    """The caches ``estimated_cycles`` will simulate for this benchmark, if it asks for that metric too."""
    if "estimated_cycles" not in benchmark.metrics:
        return None
    return cachesim.CacheModel.from_options({**CYCLES_OPTIONS, **benchmark.metric_options.get("estimated_cycles", {})})


def measure(ctx: MeasureContext) -> dict[str, Any]:
    if ctx.is_cuda:
        raise RuntimeError(f"instructions counts CPU instructions; this benchmark runs on {ctx.device}")
    opts = ctx.options
    steps = opts["steps"]
    # when its benchmark asks for both, one count (with the simulation) serves both
    process, empty, measured, seconds, startup_s = _SharedCallgrind.count(ctx, "instructions",
                                                                          _cycles_wanted(ctx.benchmark))
    cpu, software = _machine(process, _caps(opts))
    raw = (measured.total - empty.total) / steps
    noise = (_noise(measured) - _noise(empty)) / steps
    fields: dict[str, Any] = {
        "instructions": round(raw - noise),
        "instructions_raw": round(raw),
        "instructions_top": _top(empty, measured, steps, opts["top"]),
        "instructions_operators": _operators(empty, measured, steps, opts["top"]),
        "instructions_steps": steps,
        "instructions_method": (f"callgrind Ir per step: (count of {steps} step(s) - count of an empty measurement) / "
                                f"{steps}, after {opts['warmup_steps']} warm-up step(s), less {' and '.join(DENOISE)} "
                                "(inclusive); a fork per benchmark, 1 thread, PYTHONHASHSEED=0, malloc without fastbins"),
        "instructions_cpu": cpu,
        "instructions_software": software,
        "instructions_wall_s": seconds,
    }
    if startup_s is not None:
        fields["instructions_startup_s"] = startup_s
    return fields


def measure_cycles(ctx: MeasureContext) -> dict[str, Any]:
    """``estimated_cycles`` and the misses it weights, per step, like ``instructions``: (count of
    ``steps`` steps - count of an empty measurement) / ``steps``."""
    if ctx.is_cuda:
        raise RuntimeError(f"estimated_cycles simulates a CPU's caches; this benchmark runs on {ctx.device}")
    opts = ctx.options
    steps = opts["steps"]
    cache = cachesim.CacheModel.from_options(opts)
    process, empty, measured, seconds, startup_s = _SharedCallgrind.count(ctx, "estimated_cycles", cache)
    # A difference of counts; a tiny step can miss fewer times than the empty measurement it is
    # taken against (its cache state differs), and a count below zero means nothing: 0.
    per_step = {name: max(0.0, (measured.events.get(name, 0) - empty.events.get(name, 0)) / steps)
                for name in cachesim.EVENTS}
    cpu, software = _machine(process, _caps(opts))
    fields: dict[str, Any] = {k: round(v) for k, v in cachesim.estimate(per_step).items()}
    fields.update({
        "cycles_events": {name: round(value) for name, value in per_step.items()},
        "cycles_cache": cachesim.simulated(measured.description),
        "cycles_method": (f"callgrind --cache-sim=yes {cache}, per step: (count of {steps} step(s) - count of an empty "
                          f"measurement) / {steps} (at least 0), after {opts['warmup_steps']} warm-up step(s), the last one "
                          f"instrumented to fill the simulated caches; L1 hits + {cachesim.LL_HIT_CYCLES} x last-level "
                          f"hits + {cachesim.MEMORY_CYCLES} x memory accesses"),
        "cycles_cpu": cpu,
        "cycles_software": software,
        "cycles_wall_s": seconds,
    })
    if startup_s is not None:
        fields["cycles_startup_s"] = startup_s
    return fields


def _noise(profile: Profile) -> int:
    """The instructions of :data:`DENOISE`'s functions in a profile, calls included (outermost calls only)."""
    return sum(cost for name, cost in profile.inclusive.items() if name.partition(" [")[0] in DENOISE)


def _top(empty: Profile, measured: Profile, steps: int, count: int) -> list[dict[str, Any]]:
    """The ``count`` functions with the most instructions of their own per step (exclusive count;
    callgrind's recursion levels ``fn'2``... added to ``fn``)."""
    per_step: defaultdict[str, float] = defaultdict(float)
    for profile, sign in ((measured, 1), (empty, -1)):
        for name, cost in profile.exclusive.items():
            per_step[_RECURSION.sub("", name)] += sign * cost / steps
    ranked = sorted(per_step.items(), key=lambda item: item[1], reverse=True)[:count]
    return [{"function": name, "instructions": round(cost)} for name, cost in ranked if cost >= 0.5]


def _operators(empty: Profile, measured: Profile, steps: int, count: int) -> list[dict[str, Any]]:
    """The ``count`` ATen operators with the most instructions per step, calls included: the
    inclusive count of each operator's dispatcher entry ``at::_ops::<name>::call`` (an operator
    that calls another, conv2d calling convolution, includes it)."""
    per_step: dict[str, float] = {}
    for name, cost in measured.inclusive.items():
        match = _OPERATOR.match(name)
        if match and not _RECURSION.search(name):
            per_step[f"aten::{match[1]}"] = (cost - empty.inclusive.get(name, 0)) / steps
    ranked = sorted(per_step.items(), key=lambda item: item[1], reverse=True)[:count]
    return [{"operator": name, "instructions": round(cost)} for name, cost in ranked if cost >= 0.5]


_RECURSION = re.compile(r"'\d+(?= \[)")
"""callgrind's suffix for a function called again while it runs (``--separate-recs``)."""
_OPERATOR = re.compile(r"at::_ops::(\w+)::call\(")
"""An operator's dispatcher entry (its outermost call: a nested ``call'2`` is included in it)."""


def check_options(options: dict[str, Any]) -> list[str]:
    problems = [f"{k} must be at least 1, got {options[k]}" for k in ("steps", "warmup_steps") if options[k] < 1]
    if options.get("top", 0) < 0:
        problems.append(f"top must not be negative, got {options['top']}")
    return problems


def check_cycles_options(options: dict[str, Any]) -> list[str]:
    return check_options(options) + cachesim.problems(options)


@benchbench.hookimpl
def benchbench_configure(config: Any) -> None:
    """Remember the run's plugins: the callgrind process loads the same ones to build the same models."""
    _SharedCallgrind.plugin_arguments = dict(config.manager.arguments)


@benchbench.hookimpl
def benchbench_run_end(run: Any) -> None:
    _SharedCallgrind.close()


@benchbench.hookimpl
def benchbench_register_metrics(register: Any) -> None:
    register(
        "instructions",
        measure,
        fields=["instructions"],
        ratio_fields=["instructions"],
        options=OPTIONS,
        check_options=check_options,
        compare={"instructions": {"threshold": THRESHOLD, "settings": list(SETTINGS)}},
        available=available,
        inline_only=INLINE_ONLY,
        description="CPU instructions per step, counted under valgrind's callgrind (deterministic: for CI gates; "
        "needs valgrind); top functions and operators in the run file",
        formats={"instructions": formatting.si},
    )
    register(
        "estimated_cycles",
        measure_cycles,
        fields=["estimated_cycles"],
        ratio_fields=["estimated_cycles"],
        options=CYCLES_OPTIONS,
        check_options=check_cycles_options,
        compare={"estimated_cycles": {"threshold": CYCLES_THRESHOLD, "settings": list(CYCLES_SETTINGS)}},
        available=available,
        inline_only=INLINE_ONLY,
        description="CPU cycles per step estimated from callgrind's cache simulation (L1 hits + 5 x last-level hits + "
        "35 x memory accesses; deterministic, sees memory traffic; needs valgrind); L1 and last-level misses and the "
        "simulated caches in the run file",
        formats={"estimated_cycles": formatting.si},
        footnotes={"estimated_cycles": CYCLES_FOOTNOTE},
    )
