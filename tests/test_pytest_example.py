"""The pytest example's documented commands leave the checkout as git found it.

``examples/pytest_project/README.md`` tells a user to run ``pytest --benchbench-save results``
in that folder; the run files and history it writes must not show up as untracked files
(issue 20: ``examples/pytest_project/results/`` did). This test copies the tracked files that
decide it (the top-level .gitignore and the example) into a git repository of its own, runs
the README's saving commands (one for each folder they save into: a plain session writes
nothing, which tests/test_pytest_plugin.py checks) and asks git.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = Path("examples") / "pytest_project"


def git(*args: str, cwd: Path) -> str:
    identity = ("-c", "user.name=benchbench tests", "-c", "user.email=tests@benchbench.invalid", "-c", "core.hooksPath=")
    done = subprocess.run(["git", *identity, *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout


def documented_commands() -> list[str]:
    """The README's ``pytest ...`` commands, each once, in the order they are written."""
    spans = re.findall(r"`(pytest(?: [^`]*)?)`", (REPO / EXAMPLE / "README.md").read_text())
    return list(dict.fromkeys(" ".join(span.split()) for span in spans))


def saving_commands() -> list[list[str]]:
    """The first documented command that saves into each folder."""
    commands: dict[str, list[str]] = {}
    for command in documented_commands():
        argv = shlex.split(command)
        if "--benchbench-save" in argv[:-1]:
            commands.setdefault(argv[argv.index("--benchbench-save") + 1], argv)
    return list(commands.values())


def test_the_readme_documents_its_commands() -> None:
    assert "pytest --benchbench-save results" in documented_commands()
    assert saving_commands()


@pytest.mark.slow
def test_the_documented_commands_leave_nothing_untracked(tmp_path: Path) -> None:
    if shutil.which("git") is None:
        pytest.skip("needs git")
    repo = tmp_path / "checkout"
    tracked = git("ls-files", "-z", "--", ".gitignore", str(EXAMPLE), cwd=REPO).split("\0")
    for name in filter(None, tracked):
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, repo / name)
    git("init", "-q", cwd=repo)
    git("add", ".", cwd=repo)
    git("commit", "-q", "-m", "the example as tracked", cwd=repo)

    for argv in saving_commands():
        done = subprocess.run([sys.executable, "-m", *argv], cwd=repo / EXAMPLE, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{shlex.join(argv)}: exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}"
        folder = repo / EXAMPLE / argv[argv.index("--benchbench-save") + 1]
        assert list(folder.glob("pytest-*.json")), f"{shlex.join(argv)} saved no run file in {folder}"

    untracked = git("status", "--porcelain", "--untracked-files=all", cwd=repo)
    assert untracked == "", f"the example's documented commands left files git would show:\n{untracked}"
