"""``valgrind --tool=callgrind --instr-atstart=no ... python -m benchbench.callgrind_worker IN OUT PLUGINS DUMPS``.

The process that counts instructions for the ``instructions`` metric. It is started once
per run by :class:`benchbench.callgrind.CallgrindProcess`, imports torch and the run's
plugins once, and then counts benchmark after benchmark: the parent sends a request
(the benchmark's spec and batch size) over the pipe ``IN`` and gets the answer on ``OUT``
(:mod:`multiprocessing.connection` messages), so a suite pays the slow start under
valgrind (importing torch) once, not per benchmark as
``torch.utils.benchmark.Timer.collect_callgrind`` does. Each benchmark is counted in a
fork of this process (:func:`serve`), so that every count starts from the same state.

Instrumentation is off from the start (``--instr-atstart=no``) and switched on only
around the measured steps: importing torch, building a model and warming it up run on
valgrind's uninstrumented core, about twice as fast as instrumented (torch imports in
~35 s instead of ~75 s on the 2-core development machine). torch's own binding
(``torch._C._valgrind_toggle``) can only toggle *collection*, which leaves instrumentation
on the whole time, so this module issues valgrind's client requests itself: a few bytes
of x86-64 machine code, the sequence ``valgrind.h`` compiles to (:class:`ClientRequests`).

For each request: build the model and input (:func:`benchbench.build.build_context`,
seeded as in the benchmarking process), run ``warmup`` steps uninstrumented (oneDNN
generates its kernels on the first call; with ``instrumented_warmup`` the last one runs
instrumented but not collected, so that a cache simulation, which starts empty when
instrumentation is switched on, holds what a step before would have left: the same program
runs either way, so the instruction count does not change), switch instrumentation on, collect an *empty*
measurement and one of ``steps`` steps, each dumped to its own file, and switch it off.
The parent reads the two dumps; their difference divided by ``steps`` is the count of
one step without the fixed cost of the measurement itself (see
:mod:`benchbench.metrics.instructions`). The cyclic garbage collector is off while
counting, so a collection never lands in one measurement and not the other.

Repeatable counts need the same work done from the same state. The parent sets
``PYTHONHASHSEED=0`` (dict lookups probe the same slots in every run), one thread
(``OMP_NUM_THREADS=1``: valgrind runs threads one at a time, and the spin-waits of idle
OpenMP workers would be counted) and glibc's malloc without fastbins
(:data:`benchbench.callgrind.MALLOC_TUNABLES`); here each benchmark is counted in a fork
of the process as it was after the imports (:func:`serve`), on a consolidated heap
(:func:`trim_heap`). What is left is the heap-dependent part of CPython's attribute
lookups, which :mod:`benchbench.metrics.instructions` leaves out.
"""

from __future__ import annotations

import ctypes
import gc
import json
import mmap
import os
import platform
import signal
import sys
import traceback
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

# Client request codes (valgrind.h, callgrind.h): a tool's requests start at ('C', 'T') << 16.
RUNNING_ON_VALGRIND = 0x1001
_CALLGRIND = (ord("C") << 24) | (ord("T") << 16)
DUMP_STATS, TOGGLE_COLLECT, START_INSTRUMENTATION, STOP_INSTRUMENTATION = (
    _CALLGRIND, _CALLGRIND + 2, _CALLGRIND + 4, _CALLGRIND + 5)

_REQUEST_X86_64 = bytes.fromhex(
    "4889f8"  # mov rax, rdi: the request block (code and five arguments), where valgrind reads it
    "31d2"  # xor edx, edx: the answer when not running on valgrind (0)
    "48c1c703" "48c1c70d" "48c1c73d" "48c1c733"  # noqa: ISC001 - one string per instruction: rol rdi by 3, 13, 61, 51 (128 in all: rdi unchanged): the marker
    "4887db"  # xchg rbx, rbx: "client request"; valgrind puts its answer in rdx
    "4889d0"  # mov rax, rdx: return it
    "c3"  # ret
)
"""``unsigned long request(unsigned long args[6])``: valgrind.h's ``VALGRIND_DO_CLIENT_REQUEST_EXPR``
for amd64, as a function. Outside valgrind the marker is a no-op and it returns 0."""


class ClientRequests:
    """Valgrind client requests from Python (x86-64 only), through a page of executable memory."""

    def __init__(self) -> None:
        self._page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        self._page.write(_REQUEST_X86_64)
        address = ctypes.addressof(ctypes.c_char.from_buffer(self._page))
        self._call = ctypes.CFUNCTYPE(ctypes.c_ulong, ctypes.POINTER(ctypes.c_ulong))(address)

    def __call__(self, code: int) -> int:
        return int(self._call((ctypes.c_ulong * 6)(code, 0, 0, 0, 0, 0)))


class Counter:
    """Counts the steps of one benchmark, each measurement dumped to a file of its own."""

    def __init__(self, job_runner: Any, dumps: str, valgrind: ClientRequests) -> None:
        self.job_runner = job_runner
        """A :class:`~benchbench.job.JobRunner` with the run's plugins."""
        self.dumps = dumps
        """callgrind's ``--callgrind-out-file`` without its ``.%p``: this process's dump number N
        goes to ``<dumps>.<pid>.N``."""
        self.dumped = 0
        self.valgrind = valgrind

    def count(self, request: dict[str, Any]) -> dict[str, Any]:
        import torch

        from benchbench.build import build_context
        from benchbench.registry import ModelEntry

        spec = request["spec"]
        trim_heap()
        dataset = self.job_runner._dataset(spec)
        ctx = build_context(spec, self.job_runner.registry.get(ModelEntry, spec.model), torch.device("cpu"),
                            request["batch_size"], dataset)
        for _ in range(request["warmup"] - 1):
            ctx.step()
        gc.collect()
        gc.disable()
        instrumented = request.get("instrumented_warmup", False)
        try:
            # The last warm-up step, after the collection in either case: the same program runs
            # whether it is instrumented or not, so the instruction counts are the same.
            if instrumented:  # instrumented, not collected: fills the simulated caches as a step before would
                self.valgrind(START_INSTRUMENTATION)  # which empties them
            ctx.step()
            if not instrumented:
                self.valgrind(START_INSTRUMENTATION)
            dumps = [self._measure(ctx.step, 0), self._measure(ctx.step, request["steps"])]
        finally:
            self.valgrind(STOP_INSTRUMENTATION)
            gc.enable()
        return {"dumps": dumps}

    def _measure(self, step: Any, steps: int) -> str:
        """Collect ``steps`` steps (0: only the measurement's own cost) and dump them; the dump's path."""
        toggle = self.valgrind
        toggle(TOGGLE_COLLECT)
        for _ in range(steps):
            step()
        toggle(TOGGLE_COLLECT)
        toggle(DUMP_STATS)
        self.dumped += 1
        path = f"{self.dumps}.{os.getpid()}.{self.dumped}"
        if not Path(path).is_file():
            raise RuntimeError(f"callgrind wrote no dump {path}: is this process running under --tool=callgrind?")
        return path


def trim_heap() -> None:
    """Consolidate glibc's heap (``malloc_trim(0)``) before the model is built: what malloc and
    free cost depends on the free chunks the heap holds, and without this a small model's
    count moved by up to 1.7% with the length of its benchmark's name (the request's objects)."""
    trim = getattr(_LIBC, "malloc_trim", None)
    if trim is not None:  # glibc only
        trim(0)


_LIBC = ctypes.CDLL(None)


REPLIED, NO_MORE_REQUESTS = 3, 4
"""A fork's exit codes: it sent its reply; the parent closed the pipe instead of sending a
request. Any other ending (a crash, a model calling ``os._exit``) sent no reply."""


def serve(counter: Counter, requests: Connection, replies: Connection) -> int:
    """Answer requests until the parent closes the pipe, each benchmark counted in a fork of this process.

    A fork starts every benchmark from the same state, the one right after the imports,
    whatever ran before it: glibc's malloc costs depend on the heap's history, and counting
    benchmarks one after the other in one process moved a small model's count by up to 1.5%
    (another benchmark before it, the same model built twice). The fork reads the request
    itself, so that this process does the same before every fork. A model that crashes
    takes only its fork with it.
    """
    from benchbench.job import describe_failure
    from benchbench.worker import _die_with_parent

    while True:
        child = os.fork()
        if child == 0:
            _die_with_parent()
            try:
                request = requests.recv()
            except EOFError:  # the parent closed the pipe: the run is over
                os._exit(NO_MORE_REQUESTS)
            try:
                reply = counter.count(request)
            except (Exception, SystemExit) as exc:  # a model's fault fails its benchmark, not this process
                traceback.print_exc()  # into the log
                reply = {"error": describe_failure("counting instructions under valgrind", exc)}
            replies.send(reply)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(REPLIED)
        _, status = os.waitpid(child, 0)
        Path(f"{counter.dumps}.{child}").unlink(missing_ok=True)  # its (empty) dump at exit
        code = os.waitstatus_to_exitcode(status)
        if code == NO_MORE_REQUESTS:
            return 0
        if code != REPLIED:
            ending = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
            replies.send({"error": f"the process counting this benchmark under valgrind {ending}"})


def facts() -> dict[str, Any]:
    """What decides the counts besides the model: the kernels torch picks for the CPU valgrind
    presents (valgrind 3.19 hides AVX-512), and the software."""
    import torch

    return {
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": f"{torch.__version__} ({(torch.version.git_version or '?')[:10]})",
        "python": platform.python_version(),
        "libc": " ".join(platform.libc_ver()).strip() or None,
    }


def main(argv: list[str]) -> int:
    from benchbench.worker import _die_with_parent, job_runner_for

    _die_with_parent()
    requests = Connection(int(argv[0]), writable=False)
    replies = Connection(int(argv[1]), readable=False)
    plugins, dumps = json.loads(argv[2]), argv[3]
    try:
        valgrind = ClientRequests()
        if not valgrind(RUNNING_ON_VALGRIND):
            raise RuntimeError("this process is not running under valgrind")
        import torch

        torch.set_num_threads(1)
        counter = Counter(job_runner_for(plugins), dumps, valgrind)
    except Exception as exc:  # deliberately broad: the parent reports it
        traceback.print_exc()
        replies.send({"error": f"{type(exc).__name__}: {exc}"})
        return 1
    replies.send({"ready": facts()})
    return serve(counter, requests, replies)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
