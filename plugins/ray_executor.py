"""The ``ray`` executor: every benchmark a Ray task, on a local instance or a cluster.

``benchbench run SUITE --executor ray [--address ADDR]`` (``pip install 'torch-benchbench[ray]'``).
benchbench does not schedule anything itself: each benchmark becomes a Ray task that asks
for the resources it needs, and Ray places it.

* A benchmark that measures time (a metric registered ``exclusive``: latency, accuracy)
  asks for one whole GPU on CUDA (``num_gpus=1``: no two timed benchmarks share a GPU) or,
  on the CPU, as many cores as it uses threads (its ``threads:``, else all of this
  machine's cores, capped by the largest node), so that it is not timed while sharing
  cores. Anything else (params, FLOPs, receptive fields) asks for one core and a tenth of
  a GPU when on CUDA: those run side by side on every worker.
* Results come back as tasks finish and are saved in the same run file and history as an
  inline run, in suite order; each record's ``host`` says which node produced it, and
  ``device: auto`` is resolved on that node.
* Which cluster (``--address`` is this plugin's option, ``benchbench_addoption``; from
  Python, ``run_suite(..., executor_options={"address": ...})``): ``--address HOST:PORT``
  (the head's GCS port, 6379 by default) or ``ray://HOST:10001`` (a Ray client server)
  joins that cluster; ``--address auto`` joins ``RAY_ADDRESS``, else the cluster ``ray
  start`` recorded on this machine. Without ``--address`` the driver joins ``RAY_ADDRESS``
  when it is set (as inside ``ray job submit``), else starts a local instance of its own
  (and stops it afterwards), even when a ``ray start`` cluster runs on this machine.
* A cluster that does not answer is bad input, never a hang: the address is first
  probed with a TCP connection (5 s; an explicit ``--address`` as soon as the run is
  configured, so that nothing, not even a run file, is left behind), then Ray is given
  ``BENCHBENCH_RAY_CONNECT_TIMEOUT_S`` (default 15) to join; past either, or when Ray
  refuses, the run stops with exit 2 and a one-paragraph message naming the address,
  before any benchmark runs.
* The nodes need benchbench and the suite's plugins installed, as in the driver's
  environment. A node where a plugin cannot be loaded fails only the benchmarks that land
  there, each with a message naming the node (IP, host name, Ray node id), the plugin and
  its import error; the other benchmarks finish. (A plugin given with ``-p`` that fails
  there fails every benchmark placed on that node; one from ``--plugins-dir`` or an entry
  point only those that need what it registers.)
* A task whose worker or node dies is retried once by Ray (``max_retries=1``), elsewhere
  if the node is gone, so the run file still holds every benchmark exactly once; if it
  fails again, the benchmark is recorded as failed with Ray's reason. Finished results
  are never lost: the run file is written after each one, and Ctrl-C (or SIGTERM, whose
  handler Ray is not allowed to take over) cancels the tasks still queued or running.

``tests/test_ray_cluster.py`` checks the last four points on clusters of several nodes
started on one machine (``ray.cluster_utils.Cluster``): a node killed while its benchmark
runs, a node lacking a plugin, addresses that refuse, drop or never answer as Ray, and a
local instance started beside a recorded cluster.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
from collections.abc import Iterator
from typing import Any

import benchbench
from benchbench.errors import BenchbenchError, UsageError

PROBE_TIMEOUT_S = 5.0
"""Seconds a TCP connection to ``--address`` may take before the cluster counts as unreachable."""
CONNECT_TIMEOUT_ENV = "BENCHBENCH_RAY_CONNECT_TIMEOUT_S"
CONNECT_TIMEOUT_S = 15.0
"""Seconds ``ray.init`` may take to join a reachable cluster (``CONNECT_TIMEOUT_ENV`` overrides):
Ray itself may wait minutes on an address that accepts connections but is not a Ray head."""
HINT = (
    "Check that the head node runs (`ray status` there), that the address is its GCS address "
    "HOST:PORT (6379 unless `ray start --head --port` chose another) or ray://HOST:10001 for a Ray "
    "client server, and that this machine can reach it (firewall, VPN); leave --address out (and "
    "RAY_ADDRESS unset) to start a local Ray instance instead."
)


def run_remote(plugin_config: dict[str, Any], job: Any, providers: dict[str, str]) -> dict[str, Any]:
    """The task: the same per-process job runner as a subprocess worker's (built once per Ray
    worker), then ``{"record": ...}``; or ``{"error": ...}`` when this node cannot run the
    job because a plugin is missing or broken here, so that the driver records a message
    naming the node and the plugin instead of Ray's generic task failure."""
    from benchbench import worker

    try:
        job_runner = worker.job_runner_for(plugin_config)
    except Exception as exc:  # a -p plugin that does not import here: PluginError names it
        message = str(exc) if isinstance(exc, BenchbenchError) else f"{type(exc).__name__}: {exc}"
        return {"error": f"{_this_node()} could not load the suite's plugins: {message}; {_INSTALL}"}
    missing = _missing_here(job_runner, job, providers)
    if missing:
        return {"error": missing}
    if job_runner.manager.pm.get_plugin("benchbench.progress") is not None:
        job_runner.manager.pm.unregister(name="benchbench.progress")  # the driver shows progress
    return {"record": worker.jsonable_record(job_runner, job)}


_INSTALL = "install the same plugins on every node, as in the driver's environment"


def _missing_here(job_runner: Any, job: Any, providers: dict[str, str]) -> str | None:
    """Why this node lacks a model, metric or dataset the job needs (None if it has them all):
    the driver's plugin for each, and the plugins that failed to load on this node."""
    absent = [(kind, name) for kind, name in _needs(job) if not job_runner.registry.has(kind, name)]
    if not absent:
        return None
    names = []
    for kind, name in absent:
        plugin = providers.get(f"{kind.kind}:{name}")
        names.append(f"{kind.kind} {name!r}" + (f" (plugin {plugin!r} on the driver)" if plugin else ""))
    failures = job_runner.manager.failure_notes()
    why = "; here " + "; ".join(failures) if failures else "; no plugin registers it here (not installed on this node?)"
    return f"{_this_node()} lacks {', '.join(names)}{why}; {_INSTALL}"


def _this_node() -> str:
    """This Ray node in words: IP, host name and Ray node id (``ray list nodes`` shows it)."""
    import ray
    import ray.util

    try:
        node_id = ray.get_runtime_context().get_node_id()
        ip = ray.util.get_node_ip_address()
    except Exception:  # outside a Ray worker (a unit test): the host alone still helps
        node_id, ip = "?", "?"
    return f"Ray node {ip} (host {socket.gethostname()}, node id {node_id})"


def _providers(session: Any, job: Any) -> dict[str, str]:
    """``"kind:name" -> plugin`` on the driver for what the job needs, to name the plugin a node lacks."""
    registry = getattr(session, "registry", None)
    if registry is None:
        return {}
    return {f"{kind.kind}:{name}": registry.get(kind, name).plugin for kind, name in _needs(job) if registry.has(kind, name)}


def _needs(job: Any) -> list[tuple[Any, str]]:
    """``(entry class, name)`` of every registered thing the job uses: its model, metrics and dataset."""
    from benchbench.registry import DatasetEntry, MetricEntry, ModelEntry

    needed: list[tuple[Any, str]] = [(ModelEntry, job.spec.model), *((MetricEntry, m) for m in job.spec.metrics)]
    if job.spec.dataset is not None:
        needed.append((DatasetEntry, job.spec.dataset))
    return needed


class RayExecutor:
    """Submit every job as a Ray task; yield records as the tasks finish."""

    remote = True

    def run(self, jobs: list[Any], session: Any) -> Iterator[tuple[Any, dict[str, Any]]]:
        try:
            import ray
        except ImportError:
            raise UsageError("the ray executor needs Ray: pip install 'torch-benchbench[ray]'") from None
        started_here = not ray.is_initialized()
        if started_here:
            _connect(ray, session.config.getoption("address"))
        task = ray.remote(run_remote)
        largest_node = max((n["Resources"].get("CPU", 1) for n in ray.nodes() if n.get("Alive")), default=1)
        cluster_gpus = ray.cluster_resources().get("GPU", 0) > 0
        refs: dict[Any, Any] = {}
        try:
            for job in jobs:
                cpus, gpus = _resources(job, session.timed(job), largest_node, cluster_gpus)
                options = {"num_cpus": cpus, "num_gpus": gpus, "max_retries": 1, "retry_exceptions": False,
                           "name": f"benchbench:{job.spec.name}"}
                ref = task.options(**options).remote(session.plugin_config, job, _providers(session, job))
                refs[ref] = job
                session.started(job)
            pending = list(refs)
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                job = refs[done[0]]
                try:
                    outcome = ray.get(done[0])
                except ray.exceptions.RayError as exc:
                    outcome = {"error": f"its Ray task failed ({type(exc).__name__}): {_ray_reason(exc)}"}
                record = outcome["record"] if "record" in outcome else session.failed(job, outcome["error"])
                yield job, record
        except BaseException:
            for ref in refs:
                ray.cancel(ref, force=True)
            raise
        finally:
            if started_here:
                ray.shutdown()


def _ray_reason(exc: BaseException) -> str:
    """The first line of Ray's reason; for an exception raised inside the task (a bug in
    benchbench or a plugin), that exception rather than Ray's wrapper line (``ray::...``)."""
    import ray

    cause = getattr(exc, "cause", None)
    if isinstance(exc, ray.exceptions.RayTaskError) and isinstance(cause, BaseException):
        text = str(cause).strip()
        return f"{type(cause).__name__}" + (f": {text.splitlines()[0]}" if text else "")
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def _connect(ray: Any, address: str | None) -> None:
    """Join the cluster ``address`` names (see the module docstring), or start a local instance;
    a cluster that cannot be reached or joined in bounded time is a UsageError naming it."""
    target, where = _target(ray, address)
    options = {"include_dashboard": False, "log_to_driver": True, "logging_level": "WARNING"}
    if target is None:
        with _keep_signal_handlers():
            ray.init(address="local", **options)
        return
    _probe(ray, target, where)
    _join(ray, target, where, options)


def _target(ray: Any, address: str | None) -> tuple[str | None, str]:
    """The address Ray will join (None: start a local instance) and how to name it in a
    message. ``auto`` is resolved here, as Ray would, so that it too is probed first."""
    from_env = os.environ.get("RAY_ADDRESS", "").strip()
    if address is None:
        return (from_env, f"RAY_ADDRESS={from_env}") if from_env and from_env != "local" else (None, "")
    address = address.strip()
    if address == "local":
        return None, ""
    if address != "auto":
        return address, f"--address {address}"
    if from_env and from_env != "auto":
        return from_env, f"--address auto (RAY_ADDRESS={from_env})"
    try:
        found = ray._private.services.canonicalize_bootstrap_address("auto")
    except ConnectionError:
        raise UsageError(
            "--address auto: RAY_ADDRESS is not set and no Ray cluster was started on this machine "
            "(`ray start --head`); give the head's address (--address HOST:6379 or ray://HOST:10001), "
            "or leave --address out to start a local Ray instance"
        ) from None
    except Exception:  # Ray's internals moved: let ray.init resolve it (still bounded in time)
        return "auto", "--address auto"
    return (found, f"--address auto (the cluster at {found})") if found else (None, "")


def _host_port(address: str, where: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[v6]:PORT`` or ``ray://HOST:PORT`` split; a UsageError for anything else."""
    rest = address.split("://", 1)[1] if "://" in address else address
    host, _, port = rest.rstrip("/").rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(
            f"{where}: {address!r} is not a Ray address: give HOST:PORT (the head's GCS port, 6379 by default), "
            "ray://HOST:10001 for a Ray client server, or auto"
        )
    return host, int(port)


def _probe(ray: Any, address: str, where: str) -> None:
    """Fail fast, naming the address, when nothing accepts a TCP connection there: Ray
    itself retries a dead GCS address for minutes. A loopback host is probed as Ray will
    use it (this node's IP)."""
    if address == "auto":
        return
    host, port = _host_port(address, where)
    if host in ("localhost", "127.0.0.1", "::1") and "://" not in address:
        with contextlib.suppress(Exception):
            import ray.util

            host = ray.util.get_node_ip_address()
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
            pass
    except socket.gaierror as exc:
        raise UsageError(f"{where}: cannot resolve the host {host!r} ({exc.strerror}). {HINT}") from None
    except TimeoutError:
        raise UsageError(f"{where}: no Ray cluster answers at {host}:{port} (no connection within "
                         f"{PROBE_TIMEOUT_S:g} s). {HINT}") from None
    except OSError as exc:
        raise UsageError(f"{where}: no Ray cluster answers at {host}:{port} "
                         f"({exc.strerror or type(exc).__name__}). {HINT}") from None


def _join(ray: Any, address: str, where: str, options: dict[str, Any]) -> None:
    """``ray.init`` on a thread with a deadline: on an address that accepts connections but
    never answers as a Ray head, Ray waits for minutes. Its failures become a UsageError
    naming the address. (On that thread Ray also leaves benchbench's SIGTERM handler alone.)"""
    timeout = _connect_timeout()
    outcome: dict[str, BaseException | None] = {}

    def connect() -> None:
        try:
            ray.init(address=address, **options)
            outcome["error"] = None
        except BaseException as exc:  # reported on the driver's thread below
            outcome["error"] = exc

    thread = threading.Thread(target=connect, name="benchbench-ray-connect", daemon=True)
    with _without_thread_warning():
        thread.start()
        thread.join(timeout)
    if thread.is_alive():
        raise UsageError(
            f"{where}: the address accepts connections but Ray could not join a cluster there within "
            f"{timeout:g} s (is it a Ray head's GCS port? if the cluster is only slow, set {CONNECT_TIMEOUT_ENV}). {HINT}"
        )
    error = outcome.get("error")
    if error is not None:
        with contextlib.suppress(Exception):
            ray.shutdown()  # whatever half of a connection was made
        text = str(error).strip()
        reason = f"{type(error).__name__}" + (f": {text.splitlines()[0].rstrip('.')}" if text else "")
        client = address.startswith("ray://") and "client" in text.lower() and "ray[client]" not in text
        hint = " (ray:// addresses need pip install 'ray[client]')" if client else ""
        raise UsageError(f"{where}: Ray could not join the cluster there: {reason}{hint}. {HINT}") from None


def _connect_timeout() -> float:
    """``CONNECT_TIMEOUT_ENV`` as seconds, else ``CONNECT_TIMEOUT_S``; a bad value is bad input."""
    raw = os.environ.get(CONNECT_TIMEOUT_ENV, "").strip()
    if not raw:
        return CONNECT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise UsageError(f"{CONNECT_TIMEOUT_ENV}={raw!r}: give a number of seconds above 0 (default {CONNECT_TIMEOUT_S:g})")
    return value


@contextlib.contextmanager
def _keep_signal_handlers() -> Iterator[None]:
    """``ray.init`` on the main thread replaces the SIGTERM handler with ``sys.exit``; put
    benchbench's back, so that SIGTERM still stops a run as Ctrl-C does (run file kept)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.getsignal(signal.SIGTERM)
    try:
        yield
    finally:
        if before is not None:
            signal.signal(signal.SIGTERM, before)


class _DropThreadWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "SIGTERM handler is not set" not in record.getMessage()


@contextlib.contextmanager
def _without_thread_warning() -> Iterator[None]:
    """Ray warns that it sets no SIGTERM handler off the main thread: that is intended here."""
    logger, dropped = logging.getLogger("ray._private.worker"), _DropThreadWarning()
    logger.addFilter(dropped)
    try:
        yield
    finally:
        logger.removeFilter(dropped)


def _resources(job: Any, timed: bool, largest_node: float, cluster_gpus: bool) -> tuple[float, float]:
    """(num_cpus, num_gpus) for one job; see the module docstring. ``auto`` counts as CUDA
    when the cluster has GPUs (a node resolves it, and one with a GPU takes the job)."""
    on_gpu = str(job.device).startswith("cuda") or (job.device == "auto" and cluster_gpus)
    if not timed:
        return 1, (0.1 if on_gpu else 0)
    if on_gpu:
        return 1, 1
    threads = job.spec.threads or os.cpu_count() or 1
    return min(threads, largest_node), 0


@benchbench.hookimpl
def benchbench_addoption(parser: Any) -> None:
    """``benchbench run --address``: the core knows no clusters, so this plugin adds the option
    (read back as ``config.getoption("address")``: here, and in the executor through ``session.config``)."""
    parser.add_argument(
        "--address", metavar="ADDR",
        help="the Ray cluster for --executor ray: HOST:PORT (the head's GCS port), ray://HOST:10001, or auto "
             "(RAY_ADDRESS, else the `ray start` cluster of this machine); default: RAY_ADDRESS if set, else a "
             f"local instance. Unreachable: exit 2 within about {PROBE_TIMEOUT_S + CONNECT_TIMEOUT_S:g} s",
    )


@benchbench.hookimpl
def benchbench_configure(config: Any) -> None:
    """Probe an explicit ``--address`` as soon as the run is configured, before the suite is
    loaded and a run file claimed: an address where nothing answers then leaves nothing
    behind. (Joining waits for the executor, and is bounded there.)"""
    address = config.getoption("address")
    if address is None or config.executor not in (None, "ray"):  # None: the suite's executor: may be ray
        return
    try:
        import ray
    except ImportError:  # the executor says what to install, if Ray is what runs this suite
        return
    if ray.is_initialized():  # the executor uses the Ray this process already joined
        return
    target, where = _target(ray, address)
    if target is not None:
        _probe(ray, target, where)


@benchbench.hookimpl
def benchbench_register_executors(register: Any) -> None:
    register("ray", RayExecutor, description="every benchmark a Ray task (local instance or --address): pip install 'torch-benchbench[ray]'")
