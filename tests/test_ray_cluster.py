"""The ray executor (plugins/ray_executor.py) the way a cluster fails.

Several Ray nodes on this machine (``ray.cluster_utils.Cluster``: one raylet per node, in
this process tree): a node removed while its benchmark runs, a node that lacks a plugin
the suite needs, and an ``--address`` where no cluster answers. Marked ``ray`` and
skipped without Ray, like tests/test_ray.py.

Each cluster test starts its own cluster (a head without CPUs, so that every task runs on
a worker node that can be removed or broken) and always shuts it down. ``RAY_TMPDIR``
points at a private folder meanwhile: a Cluster records its address in
``$RAY_TMPDIR/ray/ray_current_cluster``, which a bare ``ray.init()`` elsewhere on this
machine (another test session) would otherwise join.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import benchbench
from benchbench.errors import UsageError
from tests.tools import require_tool

require_tool("ray", module=True)  # skips without Ray, fails where BENCHBENCH_REQUIRE_TOOLS requires it
import ray  # noqa: E402

pytestmark = pytest.mark.ray

from ray.cluster_utils import Cluster  # noqa: E402  (after require_tool)

BROKEN_ENV = "BENCHBENCH_TEST_NODE_LACKS_EXTRA"
"""Set only for one node's raylet (and so its workers): the ``extra`` plugin fails to import there."""

EXTRA_PLUGIN = f'''
import os
import time
from pathlib import Path

import torch

import benchbench

if os.environ.get("{BROKEN_ENV}"):
    raise ImportError("No module named 'extra_kernels' (not installed on this node)")


class Blocker(torch.nn.Module):
    """The first attempt writes its Ray node id to FOLDER/first and sleeps until the test
    removes that node; the retry writes its node id to FOLDER/retry and returns."""

    def __init__(self, folder: str = "") -> None:
        super().__init__()
        self.folder = Path(folder)
        self.linear = torch.nn.Linear(4, 4)

    def forward(self, x):
        if x.device.type != "meta" and self.folder.name:
            import ray

            node = ray.get_runtime_context().get_node_id()
            first = self.folder / "first"
            if not first.exists():
                first.write_text(node)
                time.sleep(120)  # never wakes up: the node is killed
            else:
                (self.folder / "retry").write_text(node)
        return self.linear(x)


@benchbench.hookimpl
def benchbench_register_models(register):
    register("extra_scale", Blocker, input_shape=(4,), description="a linear layer (blocks with folder=...)")
'''

TINY_LATENCY = {"warmup_s": 0.0, "min_run_time_s": 0.01, "min_runs": 3, "min_block_s": 0.001}
PLUGINS = ["benchbench_plugins.layers", "benchbench_plugins.ray_executor"]
"""The ``conv`` model's plugin and the executor's, named with -p: entry points are not loaded
here (see ray_environment), so that each Ray worker starts in about half the time."""
CONV = {"model": "conv", "args": {"in_channels": 4, "out_channels": 4, "kernel_size": 3}, "input_shape": [4, 8, 8]}


@pytest.fixture
def ray_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A short private RAY_TMPDIR (Ray's socket paths must stay under ~107 characters), no
    RAY_ADDRESS, and no entry-point plugins (see PLUGINS), for the test and the nodes it starts."""
    folder = tempfile.mkdtemp(prefix="bbray-", dir="/tmp")
    monkeypatch.setenv("RAY_TMPDIR", folder)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("BENCHBENCH_DISABLE_PLUGIN_AUTOLOAD", "1")  # see PLUGINS
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def make_cluster(ray_environment: str) -> Iterator[Callable[..., tuple[Cluster, list[Any]]]]:
    """``make_cluster(node_args, ...)``: a head without CPUs plus one worker node per dict of
    ``Cluster.add_node`` arguments; shut down after the test whatever happened."""
    clusters: list[Cluster] = []

    def make(*node_args: dict[str, Any]) -> tuple[Cluster, list[Any]]:
        assert not ray.is_initialized(), "another test left Ray connected"
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
        clusters.append(cluster)
        nodes = [cluster.add_node(**args) for args in node_args]
        cluster.wait_for_nodes()
        return cluster, nodes

    yield make
    if ray.is_initialized():
        ray.shutdown()
    for cluster in clusters:
        cluster.shutdown()


def _write_extra(folder: Path, name: str = "extra") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(EXTRA_PLUGIN)
    return path


@pytest.mark.slow
def test_a_node_removed_while_its_benchmark_runs_is_retried_on_another(tmp_path: Path, make_cluster) -> None:
    cluster, nodes = make_cluster({"num_cpus": 1}, {"num_cpus": 1})
    plugins = tmp_path / "plugins"
    _write_extra(plugins)
    markers = tmp_path / "markers"
    markers.mkdir()
    suite = {
        "name": "removal",
        "defaults": {"device": "cpu", "metrics": ["params"]},
        "benchmarks": [
            {"name": "a", **CONV},
            {"name": "blocked", "model": "extra_scale", "args": {"folder": str(markers)}},
            {"name": "b", **CONV},
        ],
    }
    removed: dict[str, Any] = {}

    def remove_the_blocked_node() -> None:
        """Wait until the blocked benchmark runs, then kill the node it runs on."""
        try:
            deadline = time.monotonic() + 120
            while not (markers / "first").exists() or not (markers / "first").read_text():
                assert time.monotonic() < deadline, "the blocked benchmark never started"
                time.sleep(0.05)
            node_id = (markers / "first").read_text()
            node = next(n for n in nodes if n.node_id == node_id)
            cluster.remove_node(node, allow_graceful=False)  # as a crash: no chance to clean up
            removed["node"] = node_id
        except BaseException as exc:  # reported by the assertion below
            removed["error"] = exc

    remover = threading.Thread(target=remove_the_blocked_node, daemon=True)
    remover.start()
    out = tmp_path / "run.json"
    run = benchbench.run_suite(suite, executor="ray", executor_options={"address": cluster.address},
                               plugins=PLUGINS, plugins_dir=plugins, out=out, quiet=True)
    remover.join(timeout=30)
    assert "error" not in removed, removed.get("error")
    saved = json.loads(out.read_text())
    assert saved["complete"] and run.complete
    assert [r["benchmark"] for r in saved["records"]] == ["a", "blocked", "b"]  # each once, in suite order
    assert all(r["status"] == "ok" for r in saved["records"]), [r["error"] for r in saved["records"]]
    assert (markers / "retry").read_text() not in ("", removed["node"])  # the retry ran on the other node


@pytest.mark.slow
def test_a_node_lacking_a_plugin_fails_only_what_needs_it_there_naming_node_and_plugin(tmp_path: Path, make_cluster) -> None:
    # Node A has the plugin; node B (2 CPUs: the only node a 2-thread timed benchmark fits on) lacks it.
    cluster, (node_a, node_b) = make_cluster({"num_cpus": 1}, {"num_cpus": 2, "env_vars": {BROKEN_ENV: "1"}})
    ray.init(address=cluster.address, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    pinned = {"name": "pinned", "model": "extra_scale", "metrics": ["latency"], "threads": 2,
              "metric_options": {"latency": TINY_LATENCY}}
    suite = {
        "name": "lacking",
        "defaults": {"device": "cpu", "metrics": ["params"]},
        "benchmarks": [pinned, {"name": "a", **CONV}, {"name": "b", **CONV}, {"name": "c", **CONV}],
    }

    # From --plugins-dir (as an entry point would be): node B runs without it, so only what needs it fails there.
    _write_extra(tmp_path / "dir")
    run = benchbench.run_suite(suite, executor="ray", plugins=PLUGINS, plugins_dir=tmp_path / "dir", quiet=True)
    by_name = {r["benchmark"]: r for r in run.records}
    error = by_name["pinned"]["error"] or ""
    assert by_name["pinned"]["status"] == "failed"
    assert node_b.node_id in error and node_b.node_ip_address in error and "model 'extra_scale'" in error, error
    assert "plugin 'extra'" in error and "extra_kernels" in error, error  # the plugin, and its import error there
    assert [by_name[n]["status"] for n in "abc"] == ["ok", "ok", "ok"] and run.complete

    # Named with -p: node B cannot build its runner at all; whatever lands there fails naming node and plugin.
    plugin = _write_extra(tmp_path / "p", name="extra_p")
    run = benchbench.run_suite(suite, executor="ray", plugins=[*PLUGINS, str(plugin)], quiet=True)
    for record in run.records:
        if record["status"] != "ok":
            assert node_b.node_id in record["error"] and str(plugin) in record["error"], record["error"]
            assert "extra_kernels" in record["error"]
    assert run.records[0]["status"] == "failed" and run.complete
    assert node_a.node_id not in " ".join(r["error"] or "" for r in run.records)


@pytest.mark.slow
def test_without_an_address_a_local_instance_runs_even_beside_a_cluster_and_sigterm_stays_benchbenchs(
    tmp_path: Path, make_cluster
) -> None:
    # The cluster (recorded in RAY_TMPDIR, where a bare ray.init() would find it) has one node, lacking
    # the plugin: had the run joined it, 'pinned' would fail there. A local instance has the plugin.
    make_cluster({"num_cpus": 2, "env_vars": {BROKEN_ENV: "1"}})
    _write_extra(tmp_path / "dir")
    suite = {"name": "local", "defaults": {"device": "cpu", "metrics": ["params"]},
             "benchmarks": [{"name": "pinned", "model": "extra_scale"}]}

    def ours(signum: int, frame: Any) -> None:  # stands for the CLI's "SIGTERM stops like Ctrl-C"
        raise KeyboardInterrupt

    before = signal.signal(signal.SIGTERM, ours)
    try:
        run = benchbench.run_suite(suite, executor="ray", plugins=PLUGINS, plugins_dir=tmp_path / "dir", quiet=True)
        assert signal.getsignal(signal.SIGTERM) is ours
    finally:
        signal.signal(signal.SIGTERM, before)
    assert run.records[0]["status"] == "ok", run.records[0]["error"]
    assert not ray.is_initialized()  # the local instance was stopped


def _closed_port() -> int:
    """A TCP port nothing listens on (on every interface, as Ray reaches loopback by the node's IP)."""
    with socket.socket() as probe:
        probe.bind(("", 0))
        return probe.getsockname()[1]


def _run_cli(tmp_path: Path, address: str, env: dict[str, str] | None = None) -> tuple[int, str, float]:
    """``benchbench run`` in a fresh process, as a user runs it: (exit code, stderr, seconds)."""
    suite = tmp_path / "tiny.yaml"
    suite.write_text("name: tiny\ndefaults: {device: cpu, metrics: [params]}\nbenchmarks:\n"
                     "  - {model: conv, args: {in_channels: 4, out_channels: 4, kernel_size: 3}, input_shape: [4, 8, 8]}\n")
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "benchbench", "run", str(suite), "--executor", "ray", "--address", address,
         "--json", str(tmp_path / "run.json"), "--no-history", "-q"],
        capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})},
    )
    return done.returncode, done.stderr, time.monotonic() - started


@pytest.mark.slow
def test_an_address_where_nothing_listens_is_exit_2_naming_it_within_seconds(tmp_path: Path) -> None:
    address = f"127.0.0.1:{_closed_port()}"
    code, err, seconds = _run_cli(tmp_path, address)
    assert code == 2 and seconds < 30
    assert f"--address {address}: no Ray cluster answers" in err  # the option is the plugin's (benchbench_addoption)
    assert "Traceback" not in err and "internal error" not in err
    assert not (tmp_path / "run.json").exists()  # probed when configured, before a run file is claimed
    assert len([line for line in err.splitlines() if line.startswith("benchbench: error:")]) == 1


@pytest.mark.slow
def test_an_address_that_accepts_but_is_no_ray_head_is_exit_2_within_the_connect_timeout(tmp_path: Path) -> None:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("", 0))  # every interface: Ray reaches 127.0.0.1 by this node's IP
    listener.listen(64)
    accepted: list[socket.socket] = []

    def accept_and_say_nothing() -> None:
        with listener:
            while True:
                try:
                    accepted.append(listener.accept()[0])
                except OSError:
                    return

    threading.Thread(target=accept_and_say_nothing, daemon=True).start()
    address = f"127.0.0.1:{listener.getsockname()[1]}"
    try:
        code, err, seconds = _run_cli(tmp_path, address, env={"BENCHBENCH_RAY_CONNECT_TIMEOUT_S": "3"})
    finally:
        listener.shutdown(socket.SHUT_RDWR)
        for connection in accepted:
            connection.close()
    assert code == 2 and seconds < 30
    assert f"--address {address}: " in err and "within 3 s" in err and "Traceback" not in err


def test_a_ray_client_address_that_cannot_be_joined_is_exit_2_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # Something listens, so the probe passes; Ray then fails to join: without ray[client]
    # at once (the message says what to install), with it within the connect timeout.
    from benchbench_plugins.ray_executor import _connect

    monkeypatch.setenv("BENCHBENCH_RAY_CONNECT_TIMEOUT_S", "2")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        address = f"ray://127.0.0.1:{listener.getsockname()[1]}"
        with pytest.raises(UsageError) as caught:
            _connect(ray, address)
    message = str(caught.value)
    assert message.startswith(f"--address {address}:")
    assert "ray[client]" in message or "within 2 s" in message, message


def test_ray_address_and_auto_are_probed_too(monkeypatch: pytest.MonkeyPatch) -> None:
    from benchbench_plugins.ray_executor import _connect

    address = f"127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("RAY_ADDRESS", address)
    for given, named in ((None, f"RAY_ADDRESS={address}"), ("auto", f"--address auto (RAY_ADDRESS={address})")):
        with pytest.raises(UsageError, match=r"no Ray cluster answers") as caught:
            _connect(ray, given)
        assert str(caught.value).startswith(named + ":")
    assert not ray.is_initialized()


def test_an_address_that_drops_connections_is_given_up_after_the_probe_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    # As a firewall that drops packets does: the connection neither succeeds nor is refused.
    from benchbench_plugins import ray_executor

    def no_answer(address: tuple[str, int], timeout: float) -> socket.socket:
        raise TimeoutError("timed out")

    monkeypatch.setattr(ray_executor.socket, "create_connection", no_answer)
    with pytest.raises(UsageError, match=r"^--address 10\.255\.255\.1:6379: no Ray cluster answers at 10\.255\.255\.1:6379 "
                                         r"\(no connection within 5 s\)"):
        ray_executor._connect(ray, "10.255.255.1:6379")
    assert not ray.is_initialized()


@pytest.mark.parametrize("address", ["head", "head:port", "ray://head", "head:70000"])
def test_an_address_without_a_port_is_named_with_the_expected_form(address: str) -> None:
    from benchbench_plugins.ray_executor import _connect

    with pytest.raises(UsageError, match=r"is not a Ray address: give HOST:PORT") as caught:
        _connect(ray, address)
    assert f"--address {address}" in str(caught.value)
