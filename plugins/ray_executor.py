"""The ``ray`` executor: every benchmark a Ray task, on a local instance or a cluster.

``benchbench run SUITE --executor ray [--address ADDR]`` (``pip install 'benchbench[ray]'``).
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
* Without ``--address`` a local Ray instance is started (and stopped afterwards); with
  one, the driver joins that cluster (``auto`` for ``RAY_ADDRESS``). The nodes need
  benchbench and the suite's plugins installed, as in the driver's environment.
* A task whose worker or node dies is retried once by Ray (``max_retries=1``), elsewhere
  if the node is gone; if it fails again, the benchmark is recorded as failed with Ray's
  reason. Finished results are never lost: the run file is written after each one, and
  Ctrl-C cancels the tasks still queued or running.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import benchbench
from benchbench.errors import UsageError

def run_remote(plugin_config: dict[str, Any], job: Any) -> dict[str, Any]:
    """The task: the same per-process runner as a subprocess worker's (built once per Ray
    worker), then the job's record."""
    from benchbench import worker

    runner = worker.runner_for(plugin_config)
    if runner.manager.pm.get_plugin("benchbench.progress") is not None:
        runner.manager.pm.unregister(name="benchbench.progress")  # the driver shows progress
    return worker.run_job(runner, job)


class RayExecutor:
    """Submit every job as a Ray task; yield records as the tasks finish."""

    remote = True

    def run(self, jobs: list[Any], session: Any) -> Iterator[tuple[Any, dict[str, Any]]]:
        try:
            import ray
        except ImportError:
            raise UsageError("the ray executor needs Ray: pip install 'benchbench[ray]'") from None
        address = session.executor_options.get("address")
        started_here = not ray.is_initialized()
        if started_here:
            ray.init(address=address, include_dashboard=False, log_to_driver=True, logging_level="WARNING")
        task = ray.remote(run_remote)
        largest_node = max((n["Resources"].get("CPU", 1) for n in ray.nodes() if n.get("Alive")), default=1)
        cluster_gpus = ray.cluster_resources().get("GPU", 0) > 0
        refs: dict[Any, Any] = {}
        try:
            for job in jobs:
                cpus, gpus = _resources(job, session.timed(job), largest_node, cluster_gpus)
                ref = task.options(num_cpus=cpus, num_gpus=gpus, max_retries=1, retry_exceptions=False,
                                   name=f"benchbench:{job.spec.name}").remote(session.plugin_config, job)
                refs[ref] = job
                session.started(job)
            pending = list(refs)
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                job = refs[done[0]]
                try:
                    record = ray.get(done[0])
                except ray.exceptions.RayError as exc:
                    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                    record = session.failed(job, f"its Ray task failed ({type(exc).__name__}): {reason}")
                yield job, record
        except BaseException:
            for ref in refs:
                ray.cancel(ref, force=True)
            raise
        finally:
            if started_here:
                ray.shutdown()


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
def benchbench_register_executors(register: Any) -> None:
    register("ray", RayExecutor, description="every benchmark a Ray task (local instance or --address): pip install 'benchbench[ray]'")
