"""One side of a comparison across commits: a checkout that measures with its own code, one round per process.

``benchbench ab`` and ``bisect`` measure commits side by side. A :class:`Side` is a
checkout (a temporary git worktree of a commit, or the working tree itself) and a way to
run one round of a suite in it: ``python -m benchbench run SUITE --json FILE --rounds 1 -q
--no-history [run options]``, in a process of its own. Why that and nothing finer:

* **The side's own code.** The process starts in the side's checkout, and its import path
  begins with the side's packages (:meth:`Side.import_path`): the folders that the
  side's ``pyproject.toml`` maps to package names (``[tool.setuptools.package-dir]``:
  this repository installs ``plugins/`` as ``benchbench_plugins``; a folder of symlinks
  named after the packages stands for the mapping), ``src/`` and the project's folder.
  ``PYTHONPATH`` is searched before anything an install put on the path and before the
  finders an editable install appends to ``sys.meta_path``, so the base imports the base's
  code even where the working tree is installed editable. ``-p`` modules, ``--plugins-dir``
  and the suite file are resolved in the side's checkout (:meth:`Side.locate`), so a change
  to them is part of the change measured. Which plugins autoload is the *installed*
  distributions' entry points (their metadata is not in the checkout); the modules they
  name are imported from the side.
* **The command line and the run file are the contract.** They are the public interface
  (DESIGN.md) that an older base commit keeps; benchbench's own internals move between
  commits, and when this repository is the one measured, each side runs its own benchbench.
* **A process per round.** A process has a speed of its own: where its memory landed, how
  its threads were placed. On the 2-core development machine the same layer ran 2.15 ms
  in some fresh processes and 2.5 ms in others, each steady to 1-2% within its process.
  Timed in one process per side, that lottery would be drawn once and read as a change of
  the code; drawn anew for every round, it is noise that the paired statistic sees and
  averages out. Starting python and torch costs 3.2 s a round there, so by default each
  round is a fork of a :class:`RoundServer` that imported them once per side
  (:mod:`benchbench.roundserver`, which says what a fork draws anew); with
  ``--fresh-processes`` each round is a fresh process (:meth:`Side.run_round`).

A side's process that exits 2 (bad input: the base's suite lacks a key the new side's
options use) or crashes stops the whole comparison with its own words; one whose benchmark
failed (exit 1) has written its run file, and the failure is a record like any other.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchbench.errors import BenchbenchError, ExitCode, UsageError

if TYPE_CHECKING:
    from benchbench.gitrepo import Repository
    from benchbench.results import RunResult

STOP_GRACE_S = 30.0
"""After SIGTERM, how long a side's process may take to save its run file and exit before it is killed."""


class SideFailed(BenchbenchError):
    """A side's ``benchbench run`` crashed or was killed: benchbench's bug or the side's, exit 3."""

    exit_code = ExitCode.INTERNAL_ERROR


@dataclass(frozen=True)
class RunOptions:
    """The ``benchbench run`` options that ``ab`` and ``bisect`` pass on to every round of both sides."""

    device: str | None = None
    batch_size: int | None = None
    only: tuple[str, ...] = ()
    timeout: float | None = None
    executor: str | None = None
    metrics: str | None = None
    plugins: tuple[str, ...] = ()
    plugins_dir: str | None = None
    extra: tuple[str, ...] = ()
    """Options that plugins add to ``run`` (``benchbench_addoption``), passed on as given."""

    def arguments(self, side: Side, *, metrics: str | None = None, only: list[str] | None = None) -> list[str]:
        """The command-line options for one round in ``side``; ``metrics`` and ``only`` replace the given ones."""
        args: list[str] = []
        for option, value in (("--device", self.device), ("--batch-size", self.batch_size), ("--timeout", self.timeout),
                              ("--executor", self.executor), ("--metrics", metrics or self.metrics)):
            if value is not None:
                args += [option, str(value)]
        for name in self.only if only is None else only:
            args += ["--only", name]
        for plugin in self.plugins:  # a file is the side's file; a module name is imported from the side's path
            args += ["-p", side.locate(plugin) if plugin.endswith(".py") else plugin]
        if self.plugins_dir is not None:
            args += ["--plugins-dir", side.locate(self.plugins_dir)]
        return [*args, *self.extra]


@dataclass
class Side:
    """A checkout to measure: ``name`` (base, new, or a commit's short hash), the commit, the folder."""

    name: str
    repository: Repository
    checkout: Path
    commit: str
    ref: str | None = None
    """As the user named it; None for the working tree."""
    dirty: bool = False
    """The working tree had uncommitted changes (measured with them)."""
    _links: Path | None = field(default=None, repr=False)

    def describe(self) -> str:
        """``HEAD~1 = 1a2b3c4d5e subject`` or ``the working tree at 1a2b3c4d5e (with uncommitted changes)``."""
        if self.ref is None:
            return f"the working tree at {self.commit[:10]}" + (" (with uncommitted changes)" if self.dirty else "")
        described = self.repository.describe(self.commit)
        return described if self.ref.lower() == self.commit[: len(self.ref)].lower() else f"{self.ref} = {described}"

    @property
    def workdir(self) -> Path:
        """Where the side's processes start: the side's copy of the folder the command was given in."""
        here = Path.cwd().resolve()
        try:
            return self.checkout / here.relative_to(self.repository.root)
        except ValueError:  # a command given outside the repository: its top
            return self.checkout

    def locate(self, given: str) -> str:
        """A path the user gave (relative to the current folder, or absolute), in this side's
        checkout when it lies in the repository; outside it, the same file for every side."""
        path = (Path.cwd() / given).resolve()
        try:
            inside = path.relative_to(self.repository.root)
        except ValueError:
            return str(path)
        return str(self.checkout / inside)

    def check_workdir(self) -> None:
        """A clear error when the folder the command was given in is missing in this side's checkout."""
        if not self.workdir.is_dir():
            raise UsageError(
                f"the folder {str(self.workdir.relative_to(self.checkout))!r} does not exist in the {self.name} side "
                f"({self.describe()}); run the command from a folder both commits have (the repository's top)"
            )

    def check_exists(self, given: str, what: str) -> None:
        """A clear error when the folder of the command or the file ``given`` (a suite) is missing
        in this side's checkout."""
        self.check_workdir()
        if not Path(self.locate(given)).exists():
            raise UsageError(
                f"{what} {given!r} does not exist in the {self.name} side ({self.describe()}): added since? "
                "Compare with a commit that has it, or keep the file outside the repository to use one file for both"
            )

    def import_path(self, links: Path) -> list[str]:
        """The folders to put first on ``PYTHONPATH`` so that this side's processes import its own
        code; package-dir symlinks are made in ``links`` (a folder of this side's own)."""
        entries: list[Path] = [links]
        links.mkdir(parents=True, exist_ok=True)
        folder = self.workdir
        projects = [f for f in (folder, *folder.parents) if f == self.checkout or self.checkout in f.parents]
        for project in projects:  # the nearest pyproject.toml first (a project in a monorepo's subfolder)
            mapping = _package_dirs(project / "pyproject.toml")
            for name, target in mapping.items():
                if name == "":
                    entries.append(project / target)
                elif "." not in name and not (links / name).exists() and (project / target).is_dir():
                    (links / name).symlink_to(project / target, target_is_directory=True)
            if "" not in mapping and (project / "src").is_dir():
                entries.append(project / "src")
            entries.append(project)
        return [str(e) for e in dict.fromkeys(entries)]

    def environment(self, links: Path) -> dict[str, str]:
        """The environment of this side's processes: ours, with the side's import path first
        on ``PYTHONPATH`` (package-dir symlinks made in ``links``)."""
        environment = dict(os.environ)
        environment["PYTHONPATH"] = os.pathsep.join([*self.import_path(links), *filter(None, [os.environ.get("PYTHONPATH")])])
        return environment

    def repository_paths(self, text: str) -> str:
        """``text`` (a side's last words) with paths in a temporary worktree, removed by the time
        anyone reads them, written relative to the repository's top (the side is named beside them)."""
        if self.checkout == self.repository.root:
            return text
        return text.replace(f"{self.checkout}{os.sep}", "").replace(str(self.checkout), ".")

    def round_argv(self, suite: str, arguments: list[str], out: Path) -> list[str]:
        """``benchbench``'s arguments for one round of ``suite`` whose run file goes to ``out``."""
        return ["run", self.locate(suite), "--json", str(out), "--rounds", "1", "-q", "--no-history", *arguments]

    def run_round(self, suite: str, arguments: list[str], out: Path, log: Path) -> RunResult:
        """One round of ``suite`` in a fresh process of this side; its run file, written to ``out``.

        The process starts a session of its own: Ctrl-C in a terminal reaches this process
        only, which stops the side's process (SIGTERM: it saves what finished and exits) and
        waits for it, so nothing is left running in a worktree about to be removed.
        """
        self.check_workdir()
        command = [sys.executable, "-m", "benchbench", *self.round_argv(suite, arguments, out)]
        with open(log, "w", encoding="utf-8") as errors:
            with _signals_deferred() as caught:  # a process started as Ctrl-C came would be left running, unknown
                process = subprocess.Popen(command, cwd=self.workdir, env=self.environment(log.parent / f"{self.name}-imports"),
                                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors,
                                           start_new_session=True)
            try:
                if caught:
                    raise KeyboardInterrupt
                code = process.wait()
            except BaseException:
                stop(process)
                raise
        return self.round_result(code, out, log, " ".join(command))

    def round_result(self, code: int, out: Path, log: Path, command: str) -> RunResult:
        """The run file a round wrote, or the error its exit ``code`` and last words in ``log`` call for."""
        from benchbench.results import RunResult

        if code in (ExitCode.OK, ExitCode.FAILED) and out.is_file():
            return RunResult.read_json(out)
        said = self.repository_paths(_tail(log))
        command = self.repository_paths(command)
        where = f"the {self.name} side ({self.describe()})"
        if code == ExitCode.USAGE_ERROR:
            raise UsageError(f"{where} refused the run: {said}")
        if code == ExitCode.INTERRUPTED:
            raise SideFailed(f"{where} was interrupted from outside (exit 130): {said}")
        raise SideFailed(f"{where}: `benchbench run` {_ended(code)}: {said} (its command: {command})")

    @contextlib.contextmanager
    def rounds(self, folder: Path, *, fresh_processes: bool = False) -> Iterator[Rounds]:
        """Run this side's rounds for the length of the block: each a fork of a round server
        (:mod:`benchbench.roundserver`) started here (and again at :meth:`Rounds.restart`), or
        with ``fresh_processes`` (or where there is no ``fork``) each a fresh ``python -m
        benchbench`` as :meth:`run_round`."""
        if fresh_processes or not hasattr(os, "fork"):
            yield FreshProcesses(self)
            return
        server = RoundServer(self, folder)
        try:
            yield server
        finally:
            server.close()


class Rounds:
    """Runs one side's rounds: :meth:`run_round` as :meth:`Side.run_round`."""

    side: Side

    def run_round(self, suite: str, arguments: list[str], out: Path, log: Path) -> RunResult:
        raise NotImplementedError

    def restart(self) -> None:
        """Draw anew what the rounds share (a round server's); nothing where every round is fresh."""

    def wait_ready(self) -> None:
        """Return once the side can run a round at once (a round server has imported torch)."""


class FreshProcesses(Rounds):
    """Each round a fresh process of the side (``benchbench ab --fresh-processes``)."""

    def __init__(self, side: Side) -> None:
        self.side = side

    def run_round(self, suite: str, arguments: list[str], out: Path, log: Path) -> RunResult:
        return self.side.run_round(suite, arguments, out, log)


class RoundServer(Rounds):
    """A side's round server (:mod:`benchbench.roundserver`): started here, each round a fork of it.

    Started in a session of its own, as a fresh round's process is: Ctrl-C reaches benchbench
    only, which stops the server's process group (the round in progress saves and exits, the
    server waits for it) and waits, so nothing is left running in a worktree about to go.
    """

    def __init__(self, side: Side, folder: Path) -> None:
        side.check_workdir()
        self.side = side
        self.folder = folder
        self.servers = 0
        self._start()

    def restart(self) -> None:
        """End this server and start another: a new draw of what each fork inherits from it
        (its heap's layout, its hash seed: see :mod:`benchbench.roundserver`)."""
        self.close()
        self._start()

    def _start(self) -> None:
        """Start a server; :meth:`wait_ready` waits for it (so that both sides' servers start at once)."""
        from benchbench import roundserver

        self.servers += 1
        self.log = self.folder / f"{self.side.name}-server-{self.servers}.log"  # its last words are its own
        with open(self.log, "w", encoding="utf-8") as errors, _signals_deferred() as caught:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _run_file(roundserver.__file__)],
                cwd=self.side.workdir, env=self.side.environment(self.folder / f"{self.side.name}-imports"),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, text=True, start_new_session=True,
            )
        self.ready = False
        """The server said it is ready (torch and the side's benchbench imported)."""
        if caught:
            stop(self.process)
            raise KeyboardInterrupt

    def _reply(self, key: str) -> dict[str, Any]:
        """The server's next message, the one with ``key`` (``ready`` once, then ``code``). Lines
        that are not it (printed before the server took its output for itself: a
        ``sitecustomize`` of the side, say, even one that prints JSON) go to the server's log."""
        assert self.process.stdout is not None
        while True:
            line = self.process.stdout.readline()
            if not line:
                raise self._died()
            with contextlib.suppress(ValueError):
                reply = json.loads(line)
                if isinstance(reply, dict) and key in reply:
                    return reply
            with open(self.log, "a", encoding="utf-8") as log:
                log.write(line)

    def _died(self) -> SideFailed:
        """The error for a server that is gone (killed, or its imports crashed python); a round it
        had forked, left without it, is killed with it."""
        code = self.process.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        return SideFailed(f"the {self.side.name} side ({self.side.describe()}): its round server {_ended(code)}: "
                          f"{self.side.repository_paths(_tail(self.log))}")

    def wait_ready(self) -> None:
        """Wait until the server has imported what rounds import (the first round does), so that
        no round is timed while the other side's server is still importing."""
        if self.ready:
            return
        try:
            warning = self._reply("ready").get("warning")
        except BaseException:
            stop(self.process)
            raise
        if warning and self.servers == 1:
            print(f"benchbench: warning: the {self.side.name} side's round server: {warning}", file=sys.stderr)
        self.ready = True

    def run_round(self, suite: str, arguments: list[str], out: Path, log: Path) -> RunResult:
        """One round of ``suite``, a fork of the server; its run file, written to ``out``."""
        argv = self.side.round_argv(suite, arguments, out)
        self.wait_ready()
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps({"argv": argv, "log": str(log)}) + "\n")
            self.process.stdin.flush()
            code = int(self._reply("code")["code"])
        except BrokenPipeError:
            raise self._died() from None
        except BaseException:
            stop(self.process)
            raise
        return self.side.round_result(code, out, log, "a fork of the round server running benchbench " + " ".join(argv))

    def close(self) -> None:
        """End the server: end of its input, then SIGTERM if it does not go."""
        if self.process.poll() is None:
            with contextlib.suppress(OSError):
                assert self.process.stdin is not None
                self.process.stdin.close()
            try:
                self.process.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                stop(self.process)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


def _run_file(path: str) -> str:
    """Code for ``python -c`` that runs the file at ``path`` as ``__main__`` without importing its
    package (the round server serves the side's benchbench, not ours), short enough for ``ps``
    to show which file it is; the current folder stays first on the import path, as for
    ``python -m``."""
    return f"import runpy; runpy.run_path({path!r}, run_name='__main__')  # benchbench round server"


def stop(process: subprocess.Popen[Any]) -> None:
    """Stop a side's process and everything it started (its session): SIGTERM, which a run
    turns into saving and exiting, then SIGKILL after :data:`STOP_GRACE_S`."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextlib.contextmanager
def _signals_deferred() -> Iterator[list[int]]:
    """Ctrl-C, SIGTERM and SIGHUP noted, not acted on, for the length of the block: the caller
    acts on them (the list it gets holds them) once the process it starts has a name to stop.
    Only the main thread may set handlers; elsewhere nothing is deferred."""
    caught: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return
    previous = {}
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        number = getattr(signal, name, None)
        if number is not None:
            previous[number] = signal.signal(number, lambda signum, frame: caught.append(signum))
    try:
        yield caught
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler if handler is not None else signal.SIG_DFL)


def _package_dirs(pyproject: Path) -> dict[str, str]:
    """``[tool.setuptools.package-dir]`` of a pyproject.toml (package name -> folder), or {}."""
    if not pyproject.is_file():
        return {}
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        try:
            import tomli as tomllib
        except ImportError:
            print(f"benchbench: warning: cannot read {pyproject} (Python 3.10 without tomli): packages it maps to "
                  "other folders (package-dir) are imported from where they are installed", file=sys.stderr)
            return {}
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"benchbench: warning: cannot read {pyproject}: {exc}", file=sys.stderr)
        return {}
    mapping = data.get("tool", {}).get("setuptools", {}).get("package-dir", {})
    return {str(k): str(v) for k, v in mapping.items()} if isinstance(mapping, dict) else {}


def _tail(log: Path, lines: int = 6) -> str:
    """The last lines a side's process wrote on stderr: its error message, in its own words."""
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no output)"
    kept = deque((line for line in text.splitlines() if line.strip()), maxlen=lines)
    errors = [line.removeprefix("benchbench: error: ") for line in kept if line.startswith("benchbench: error: ")]
    return " / ".join(errors or kept) or "(no output)"


def _ended(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
        return f"was killed by signal {-code}"
    return f"exited {code}" + (" (internal error)" if code == ExitCode.INTERNAL_ERROR else "")
