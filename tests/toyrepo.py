"""A tiny git repository of a third-party plugin, for the tests of ``benchbench ab`` and ``bisect``.

Its plugin registers ``toy``: Linear(4, HIDDEN) then Linear(HIDDEN, 4), sleeping SLEEP_S in
each forward pass. A commit changes HIDDEN (params and FLOPs: deterministic) or SLEEP_S (a
latency change so large, 2 ms against microseconds, that no load on the machine can hide
it). Commands run in a subprocess, as a user runs them, with the plugin autoload off
(only the built-ins and ``-p``: each process starts faster) and TMPDIR in the test's own
folder, where the worktrees must not outlive the command.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

PLUGIN = textwrap.dedent('''\
    import time

    import torch

    import benchbench

    HIDDEN = 8
    SLEEP_S = 0.0


    class Toy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Linear(4, HIDDEN)
            self.b = torch.nn.Linear(HIDDEN, 4)

        def forward(self, x):
            if SLEEP_S:
                time.sleep(SLEEP_S)
            return self.b(self.a(x))


    @benchbench.hookimpl
    def benchbench_register_models(register):
        register("toy", Toy, family="toy", input_shape=(4,), description="a toy for ab and bisect")
''')

SUITE = textwrap.dedent('''\
    name: toys
    defaults:
      device: cpu
      batch_size: 2
      metrics: [params, flops]
      metric_options:
        latency: {warmup_s: 0.0, min_run_time_s: 0.01, min_runs: 3, min_block_s: 0.001}
    benchmarks:
      - name: toy
        model: toy
''')


class ToyRepo:
    """A git repository at ``path`` holding ``toyblocks.py`` and ``suite.yaml``, one commit made."""

    def __init__(self, path: Path, *, module: str = "toyblocks.py") -> None:
        self.path = path
        self.module = module
        self.tmp = path.parent / "tmp"  # TMPDIR of the commands: what they leave there, they leave behind
        self.tmp.mkdir(exist_ok=True)
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")
        self.git("config", "user.email", "tests@example.com")
        self.git("config", "user.name", "tests")
        self.write(module, PLUGIN)
        self.write("suite.yaml", SUITE)
        self.commit("the toy")

    def git(self, *args: str) -> str:
        return subprocess.run(["git", *args], cwd=self.path, check=True, capture_output=True, text=True).stdout.strip()

    def write(self, name: str, text: str) -> None:
        target = self.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)

    def set(self, name: str, value: object) -> None:
        """Change a constant of the plugin (HIDDEN, SLEEP_S) in the working tree."""
        target = self.path / self.module
        lines = [f"{name} = {value!r}" if line.startswith(f"{name} = ") else line for line in target.read_text().splitlines()]
        target.write_text("\n".join(lines) + "\n")

    def commit(self, message: str) -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD")

    def worktrees(self) -> list[str]:
        return [line for line in self.git("worktree", "list", "--porcelain").splitlines() if line.startswith("worktree ")]

    def leftovers(self) -> list[Path]:
        """benchbench's temporary folders in TMPDIR (torch keeps a cache of its own there)."""
        return [p for p in self.tmp.iterdir() if p.name.startswith("benchbench-")]

    def environment(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "GITHUB_STEP_SUMMARY"}
        return {**env, "BENCHBENCH_DISABLE_PLUGIN_AUTOLOAD": "1", "TMPDIR": str(self.tmp), **extra}

    def benchbench(self, *args: str, cwd: Path | None = None, **extra: str) -> subprocess.CompletedProcess[str]:
        """``benchbench ARGS`` in the repository (or ``cwd``), as a user runs it."""
        return subprocess.run([sys.executable, "-m", "benchbench", *args], check=False, cwd=cwd or self.path,
                              env=self.environment(**extra), capture_output=True, text=True, timeout=600)

    def popen(self, *args: str, **extra: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "benchbench", *args], cwd=self.path, env=self.environment(**extra),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
