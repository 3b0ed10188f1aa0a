"""Runs the code blocks of README.md and docs/*.md, so that the documentation cannot rot.

Sybil finds the blocks (Markdown fenced code blocks and ``<!-- docs: ... -->`` comments);
this module says what running each one means. Every block of a page runs in order in
one sandbox: a temporary folder holding copies of the checkout's ``suites/``,
``examples/``, ``benchmarks/`` and ``results/baselines/``, made a git repository on
branch ``main`` (so ``--baseline main`` has a commit to find). What a reader sees is
what runs:

* ``bash``: each line is a command (``\\`` continues a line, ``&&`` chains, ``>`` sends
  stdout to a file, ``NAME=value`` before a command and ``export`` set the environment,
  ``time`` is ignored, ``cd`` moves the sandbox's current folder). A command must exit 0,
  unless its comment says otherwise: ``benchbench run nosuch.yaml   # exit 2: ...``
  (``# exit 0 or 1`` where either is right: a timing verdict on a shared machine).
  ``benchbench`` (and ``python -m benchbench``) runs in this process (torch is imported
  once, not per command), ``pytest``, ``python SCRIPT.py`` and ``git`` in a child
  process. ``pip install`` is never run (the checkout is installed already, and the
  network may be absent); it is *checked*: each path is a folder with a pyproject.toml,
  each extra is declared there, and ``torch-benchbench`` is the distribution's name.
* ``python``: executed, one namespace per page (a notebook, in order). A block whose
  first line is ``# NAME.py`` is also written to that file, for later commands.
* ``yaml``: a block whose first line is ``# NAME.yaml`` is written to that file, for the
  page's later commands to run (one may be a bad suite that a command shows refused).
  Any other suite (a mapping with ``benchmarks``), or list of benchmarks (a suite
  fragment), is run with ``benchbench run --metrics params``: validated as a real run
  validates it (every key, name and type, the dry run), without the cost of timing it.
* ``toml``: parsed; a ``# PATH`` first line writes it; a ``torch-benchbench`` dependency
  must name the real distribution.
* Any other language (``text``: output shown to the reader) is not run.

Before a block, ``<!-- docs: slow -->`` runs it only in the full tier (the
``docs_slow`` marker: ``.ci/run --docs-slow`` selects it), for blocks that take more than a few
seconds (a whole suite, valgrind); ``<!-- docs: skip REASON -->`` never runs it (a server,
a command that takes many minutes, the test suite itself), though its commands are still
checked statically in every tier: a ``benchbench`` command's options are parsed by
benchbench's own parser, a script's path must exist and its options appear in it. So a
renamed option fails the tests even in a block that is never run.

Latency runs with a short budget here (as the pytest plugin's plain runs do): the docs'
commands must work; their numbers come from the commands the docs name beside them.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from sybil import Document, Example, Region, Sybil
from sybil.parsers.markdown.lexers import DirectiveInHTMLCommentLexer, FencedCodeBlockLexer

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli", reason="reading pyproject.toml needs Python 3.11+ or tomli")

REPO = Path(__file__).resolve().parents[1]
COPIED = ("suites", "examples", "benchmarks", "results/baselines")
"""What the sandbox of a page holds: what the docs' commands name, copied (never the checkout itself)."""
QUICK_LATENCY = {"warmup_s": 0.0, "min_run_time_s": 0.01, "min_runs": 3, "min_block_s": 0.001}
DISTRIBUTION = "torch-benchbench"
SNIPPET = re.compile(r'^--8<-- "([^"]+)"$', re.MULTILINE)
"""A file the site includes in a block (pymdownx.snippets), relative to the checkout."""
NOT_RUN = {"text", "console", "output", "json", "markdown", "md", "", "diff", "csv"}
"""Languages of blocks that show something (output, a file) rather than say what to run."""


def documents() -> list[str]:
    """Every page whose blocks run: README.md and docs/**/*.md, relative to the checkout."""
    pages = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
    return [str(p.relative_to(REPO)) for p in pages]


class DocsError(AssertionError):
    """A block did not do what its page says; the message names the page and line."""


@dataclass
class Block:
    language: str
    source: str
    line: int
    directive: str | None = None


@dataclass
class Command:
    argv: list[str]
    env: dict[str, str]
    stdout_to: str | None
    expected: frozenset[int]
    """Exit codes the page allows: 0, or what the line's comment says (``# exit 2``, ``# exit 0 or 1``)."""


@dataclass
class Sandbox:
    """One page's folder, environment and namespace; ``tier`` is ``fast`` or ``full``."""

    root: Path
    page: str
    tier: str = "fast"
    cwd: Path = field(init=False)
    env: dict[str, str] = field(default_factory=dict)
    pending: tuple[str, int] | None = None
    ran: list[str] = field(default_factory=list)
    namespace: dict[str, Any] = field(default_factory=lambda: {"__name__": "__docs__"})
    timings: list[tuple[float, str]] = field(default_factory=list)
    """(seconds, what) for each command run: where a page spends its time."""

    def __post_init__(self) -> None:
        self.cwd = self.root

    # ----------------------------------------------------------------- Sybil's side

    def parse(self) -> Document:
        sybil = Sybil(parsers=[self._fenced_blocks, self._directives], patterns=["*.md"])
        return sybil.parse(REPO / self.page)  # an absolute page (the runner's own tests) stays itself

    def _fenced_blocks(self, document: Document) -> Iterator[Region]:
        lexer = FencedCodeBlockLexer(language=r"[\w+-]*", mapping={"language": "language", "source": "source"})
        for region in lexer(document):
            region.parsed = (region.lexemes["language"], str(region.lexemes["source"]))
            region.evaluator = self._evaluate_block
            yield region

    def _directives(self, document: Document) -> Iterator[Region]:
        lexer = DirectiveInHTMLCommentLexer(directive="docs", arguments=r".*?")
        for region in lexer(document):
            region.parsed = region.lexemes["arguments"].strip()
            region.evaluator = self._evaluate_directive
            yield region

    def _evaluate_directive(self, example: Example) -> None:
        text = example.parsed
        if not (text == "slow" or re.fullmatch(r"skip \S.*", text)):
            raise DocsError(f"{self.page}:{example.line}: unknown directive <!-- docs: {text} --> "
                            "(write 'slow' or 'skip REASON')")
        if self.pending is not None:
            raise DocsError(f"{self.page}:{self.pending[1]}: a directive with no code block after it")
        self.pending = (text, example.line)

    def _evaluate_block(self, example: Example) -> None:
        language, source = example.parsed
        source = SNIPPET.sub(lambda m: (REPO / m.group(1)).read_text(), source)  # what the site shows
        directive = self.pending[0] if self.pending else None
        self.pending = None
        block = Block(language, source, example.line, directive)
        if language in NOT_RUN:
            if directive:
                raise DocsError(f"{self.page}:{example.line}: <!-- docs: {directive} --> before a {language or 'plain'} "
                                "block, which is never run")
            return
        runner = {"bash": self.bash, "python": self.python, "yaml": self.yaml_block, "toml": self.toml}.get(language)
        if runner is None:
            raise DocsError(f"{self.page}:{example.line}: a '{language}' block: the docs runner knows bash, python, yaml "
                            f"and toml (to run) and {', '.join(sorted(NOT_RUN - {''}))} (shown only)")
        runner(block)

    def run(self) -> list[str]:
        """Every block of the page, in order; returns what ran (for the tests' own checks)."""
        prepare(self.root)
        try:
            for example in self.parse():
                example.evaluate()
        finally:
            forget_modules(self.root)
        if self.pending is not None:
            raise DocsError(f"{self.page}:{self.pending[1]}: a directive with no code block after it")
        return self.ran

    def runs(self, block: Block) -> bool:
        """Whether this tier executes the block (its static checks run in every tier)."""
        if block.directive and block.directive.startswith("skip"):
            return False
        return block.directive != "slow" or self.tier == "full"

    def where(self, block: Block, offset: int = 0) -> str:
        return f"{self.page}:{block.line + 1 + offset}"

    # ----------------------------------------------------------------- bash

    def bash(self, block: Block) -> None:
        commands = list(parse_bash(block.source))
        for offset, chain in commands:
            for command in chain:
                self.check(command, self.where(block, offset))
        if not self.runs(block):
            return
        for offset, chain in commands:
            for command in chain:
                started = time.perf_counter()
                code, out, err = self.execute(command, self.where(block, offset))
                self.timings.append((time.perf_counter() - started, f"{self.where(block, offset)} {shlex.join(command.argv)}"))
                if code not in command.expected:
                    raise DocsError(
                        f"{self.where(block, offset)}: `{shlex.join(command.argv)}` exited {code}, the page says "
                        f"{' or '.join(map(str, sorted(command.expected)))}\n--- stdout (end) ---\n{out[-3000:]}\n--- stderr (end) ---\n{err[-3000:]}"
                    )
                self.ran.append(shlex.join(command.argv))
                if code != 0:
                    break  # `a && b`: b does not run after a failed a

    def check(self, command: Command, where: str) -> None:
        """Static checks that need no run: what a reader would type must at least parse."""
        argv = command.argv
        program, args = argv[0], argv[1:]
        if program == "python" and args[:2] == ["-m", "benchbench"]:
            program, args = "benchbench", args[2:]
        if program == "benchbench":
            if 2 not in command.expected:  # a line that shows a usage error may well be refused by the parser
                check_benchbench_options(args, where)
        elif program == "pip" or (program == "python" and args[:2] == ["-m", "pip"]):
            check_pip(args[2:] if program == "python" else args, where, REPO / self.cwd.relative_to(self.root))
        elif program == "pytest" or (program == "python" and args[:2] == ["-m", "pytest"]):
            check_pytest_options(args[2:] if program == "python" else args, where)
        elif program == "python" and args and args[0].endswith(".py"):
            check_script(self.cwd / args[0], args[1:], where)

    def execute(self, command: Command, where: str) -> tuple[int, str, str]:
        argv = [word for arg in command.argv for word in self.expand(arg)]
        program, args = argv[0], argv[1:]
        if program == "cd":
            self.cwd = (self.cwd / args[0]).resolve()
            if not self.cwd.is_dir():
                raise DocsError(f"{where}: cd {args[0]}: no such folder in the sandbox")
            return 0, "", ""
        if program == "export":
            for assignment in args:
                name, _, value = assignment.partition("=")
                self.env[name] = value
            return 0, "", ""
        if program == "python" and args[:2] == ["-m", "benchbench"]:
            program, args = "benchbench", args[2:]
        if program == "benchbench":
            return self.benchbench(args, command)
        if program == "pip" or (program == "python" and args[:2] == ["-m", "pip"]):
            return 0, "", ""  # checked, never run (see the module docstring)
        if program == "pytest" and self.cwd == self.root:
            raise DocsError(f"{where}: `pytest` at the top of the checkout is the test suite itself; mark the block "
                            "<!-- docs: skip REASON -->")
        if program in ("pytest", "git") or (program == "python" and args):
            if program == "python" and args[:2] == ["-m", "pytest"] and self.cwd == self.root:
                raise DocsError(f"{where}: `python -m pytest` at the top of the checkout is the test suite itself; mark "
                                "the block <!-- docs: skip REASON -->")
            return self.child(argv, command)
        raise DocsError(f"{where}: the docs runner does not run `{program}`; mark the block <!-- docs: skip REASON -->")

    def expand(self, arg: str) -> list[str]:
        """A shell's glob: ``results/efficiency-*.json`` names the files that exist (as typed when none does)."""
        if not any(c in arg for c in "*?["):
            return [arg]
        return sorted(str(p.relative_to(self.cwd)) for p in self.cwd.glob(arg)) or [arg]

    @contextlib.contextmanager
    def environment(self, extra: dict[str, str]) -> Iterator[None]:
        saved = {name: os.environ.get(name) for name in {**self.env, **extra}}
        before = Path.cwd()
        os.environ.update({**self.env, **extra})
        os.chdir(self.cwd)
        try:
            yield
        finally:
            os.chdir(before)
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    def benchbench(self, args: list[str], command: Command) -> tuple[int, str, str]:
        from benchbench.cli import main

        out, err = io.StringIO(), io.StringIO()
        with self.environment(command.env), quick_latency(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(args)
        self.save_stdout(command, out.getvalue())
        return int(code), out.getvalue(), err.getvalue()

    def child(self, argv: list[str], command: Command) -> tuple[int, str, str]:
        if argv[0] == "pytest":
            argv = ["python", "-m", "pytest", *argv[1:]]
        if argv[0] == "python":
            argv = [sys.executable, *argv[1:]]
        if argv[1:3] == ["-m", "pytest"]:
            argv = [*argv[:3], "-p", "no:cacheprovider", *argv[3:]]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_"))}
        env.update(self.env)
        env.update(command.env)
        done = subprocess.run(argv, cwd=self.cwd, env=env, capture_output=True, text=True, timeout=600)
        self.save_stdout(command, done.stdout)
        return done.returncode, done.stdout, done.stderr

    def save_stdout(self, command: Command, text: str) -> None:
        if command.stdout_to:
            (self.cwd / command.stdout_to).write_text(text)

    # ----------------------------------------------------------------- python, yaml, toml

    def write_named_file(self, block: Block) -> Path | None:
        """A block whose first line is a comment naming a file (``# my_blocks.py``) is that file."""
        first = block.source.split("\n", 1)[0].strip()
        match = re.fullmatch(r"#\s*([\w./-]+\.(?:py|yaml|yml|toml))", first)
        if not match:
            return None
        path = self.cwd / match.group(1)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(block.source)
        return path

    def python(self, block: Block) -> None:
        try:
            code = compile(block.source, self.where(block, -1), "exec")
        except SyntaxError as exc:
            raise DocsError(f"{self.where(block)}: the Python block does not parse: {exc}") from exc
        if not self.runs(block):
            return
        written = self.write_named_file(block)
        started = time.perf_counter()
        with self.environment({}), quick_latency():
            sys.path.insert(0, str(self.cwd))
            try:
                exec(code, self.namespace)
            except Exception as exc:
                raise DocsError(f"{self.where(block)}: the Python block raised {type(exc).__name__}: {exc}") from exc
            finally:
                sys.path.remove(str(self.cwd))
                if written is not None:
                    sys.modules.pop(written.stem, None)  # a later `-p NAME` imports the file, not this run's module
        self.ran.append(f"python block at line {block.line}")
        self.timings.append((time.perf_counter() - started, f"{self.where(block)} python block"))

    def yaml_block(self, block: Block) -> None:
        try:
            data = yaml.safe_load(block.source)
        except yaml.YAMLError as exc:
            raise DocsError(f"{self.where(block)}: the YAML block does not parse: {exc}") from exc
        if not self.runs(block):
            return
        if self.write_named_file(block) is not None:
            self.ran.append(f"yaml block at line {block.line}")
            return
        is_suite = isinstance(data, dict) and "benchmarks" in data
        is_fragment = isinstance(data, list) and all(isinstance(b, dict) and "model" in b for b in data)
        if not (is_suite or is_fragment):
            return
        path = self.cwd / f".docs-block-{block.line}.yaml"
        path.write_text(block.source if is_suite else "benchmarks:\n" + block.source)
        started = time.perf_counter()
        out = self.root / f".docs-run-{block.line}.json"
        args = ["run", str(path), "--metrics", "params", "--no-history", "-q", "--json", str(out)]
        code, _, stderr = self.benchbench(args, Command(args, {}, None, frozenset({0})))
        if code != 0:
            raise DocsError(f"{self.where(block)}: this suite is refused by `benchbench run` (exit {code}):\n{stderr}")
        self.ran.append(f"yaml block at line {block.line}")
        self.timings.append((time.perf_counter() - started, f"{self.where(block)} yaml suite"))

    def toml(self, block: Block) -> None:
        try:
            data = tomllib.loads(block.source)
        except tomllib.TOMLDecodeError as exc:
            raise DocsError(f"{self.where(block)}: the TOML block does not parse: {exc}") from exc
        for requirement in data.get("project", {}).get("dependencies", []):
            name = re.split(r"[\s\[<>=!~;@]", requirement, maxsplit=1)[0]
            if "benchbench" in name and name != DISTRIBUTION:
                raise DocsError(f"{self.where(block)}: the dependency {requirement!r}: the distribution is {DISTRIBUTION!r}")
        if self.runs(block):
            self.write_named_file(block)


# --------------------------------------------------------------------- the sandbox


def prepare(root: Path) -> None:
    """Copy what the docs' commands name into ``root`` and make it a git repository on ``main``."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", "results")
    for name in COPIED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=ignore if name != "results/baselines" else None,
                            dirs_exist_ok=True)
    (root / ".gitignore").write_text("results/history.sqlite\n")
    env = {**os.environ, "GIT_AUTHOR_NAME": "docs", "GIT_AUTHOR_EMAIL": "docs@example.invalid",
           "GIT_COMMITTER_NAME": "docs", "GIT_COMMITTER_EMAIL": "docs@example.invalid"}
    for argv in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"], ["git", "commit", "-q", "-m", "docs sandbox"]):
        subprocess.run(argv, cwd=root, env=env, check=True, capture_output=True)


def forget_modules(root: Path) -> None:
    """Drop the modules a page imported from its sandbox (``-p my_blocks``): the next page's are its own."""
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(str(root)):
            del sys.modules[name]


@contextlib.contextmanager
def quick_latency() -> Iterator[None]:
    """Latency with a short budget, as a plain pytest run of the benchbench fixture has."""
    from benchbench.metrics import latency

    saved = dict(latency.OPTIONS)
    latency.OPTIONS.update(QUICK_LATENCY)
    try:
        yield
    finally:
        latency.OPTIONS.clear()
        latency.OPTIONS.update(saved)


# --------------------------------------------------------------------- reading commands


def parse_bash(source: str) -> Iterator[tuple[int, list[Command]]]:
    """(line offset, the commands of that line, chained by ``&&``) for each command line."""
    lines = source.split("\n")
    index = 0
    while index < len(lines):
        start = index
        line = lines[index]
        while line.rstrip().endswith("\\") and index + 1 < len(lines):
            index += 1
            line = line.rstrip()[:-1] + " " + lines[index].strip()
        index += 1
        code, comment = split_comment(line)
        if not code.strip():
            continue
        expected = re.search(r"\bexit (\d+(?: or \d+)*)\b", comment or "")
        codes = frozenset(int(c) for c in expected.group(1).split(" or ")) if expected else frozenset({0})
        yield start, list(parse_chain(code, codes))


def split_comment(line: str) -> tuple[str, str | None]:
    """The command and its ``#`` comment (a ``#`` after a space, outside quotes)."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i], line[i + 1:]
    return line, None


def parse_chain(code: str, expected: frozenset[int]) -> Iterator[Command]:
    lexer = shlex.shlex(code, posix=True, punctuation_chars="&|;<>")
    lexer.whitespace_split = True
    lexer.commenters = ""
    tokens = list(lexer)
    parts: list[list[str]] = [[]]
    for token in tokens:
        if token == "&&":
            parts.append([])
        elif token in ("|", ";", "||", "<", ">>", "&", "2>"):
            raise DocsError(f"`{code.strip()}`: the docs runner knows `&&` and `>` only; write the command another way")
        else:
            parts[-1].append(token)
    for position, words in enumerate(parts):
        env: dict[str, str] = {}
        while words and re.fullmatch(r"[A-Za-z_]\w*=.*", words[0]):
            name, _, value = words.pop(0).partition("=")
            env[name] = value
        if words and words[0] == "time":
            words = words[1:]
        stdout_to = None
        if ">" in words:
            at = words.index(">")
            stdout_to, words = words[at + 1], words[:at] + words[at + 2:]
        if not words:
            raise DocsError(f"`{code.strip()}`: an empty command")
        yield Command(words, env, stdout_to, expected if position == len(parts) - 1 else frozenset({0}))


# --------------------------------------------------------------------- static checks


def check_benchbench_options(args: list[str], where: str) -> None:
    """benchbench's own parser must accept the command line; extra options must be ones a plugin adds."""
    from benchbench.cli import build_parser

    parser, _ = build_parser()
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            _, extra = parser.parse_known_args(args)
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise DocsError(f"{where}: `benchbench {shlex.join(args)}` is refused by benchbench's parser: "
                            f"{err.getvalue().strip()}") from None
        return
    unknown = [a.split("=", 1)[0] for a in extra if a.startswith("-") and a.split("=", 1)[0] not in plugin_options()]
    if unknown:
        raise DocsError(f"{where}: `benchbench {shlex.join(args)}`: unknown option(s) {', '.join(unknown)} "
                        "(neither benchbench's nor a plugin's)")


@cache
def plugin_options() -> frozenset[str]:
    """The options first-party plugins add to ``benchbench run`` (``--address``), from its help."""
    from benchbench.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        main(["run", "--help"])
    return frozenset(re.findall(r"(?<![\w-])(--[a-z][\w-]*)", out.getvalue()))


def check_pip(args: list[str], where: str, cwd: Path) -> None:
    """``pip install`` lines: local paths are projects, extras exist, the distribution has its real name.

    ``cwd`` is the checkout's folder that the sandbox's current folder stands for.
    """
    if not args or args[0] != "install":
        raise DocsError(f"{where}: `pip {shlex.join(args)}`: the docs runner checks `pip install` only")
    for arg in args[1:]:
        if arg.startswith("-"):
            continue
        name, extras = split_requirement(arg)
        if name.startswith((".", "/")):
            project = (cwd / name).resolve()
            if not (project / "pyproject.toml").is_file():
                raise DocsError(f"{where}: `pip install {arg}`: {name} is no project folder (no pyproject.toml)")
            check_extras(project / "pyproject.toml", extras, arg, where)
        elif name == DISTRIBUTION:
            check_extras(REPO / "pyproject.toml", extras, arg, where)
        elif "benchbench" in name:
            raise DocsError(f"{where}: `pip install {arg}`: the distribution is called {DISTRIBUTION!r}")


def split_requirement(arg: str) -> tuple[str, list[str]]:
    match = re.fullmatch(r"\s*([^\[\]@<>=!~;\s]+)\s*(?:\[([^\]]*)\])?\s*(.*)", arg)
    if not match:
        return arg, []
    return match.group(1), [e.strip() for e in (match.group(2) or "").split(",") if e.strip()]


def check_extras(pyproject: Path, extras: list[str], arg: str, where: str) -> None:
    declared = tomllib.loads(pyproject.read_text()).get("project", {}).get("optional-dependencies", {})
    missing = [e for e in extras if e not in declared]
    if missing:
        raise DocsError(f"{where}: `pip install {arg}`: no extra {', '.join(missing)} in {pyproject.relative_to(REPO)} "
                        f"(it has: {', '.join(sorted(declared))})")


def check_pytest_options(args: list[str], where: str) -> None:
    """``--benchbench-*`` options must be ones the pytest plugin adds."""
    source = (REPO / "benchbench" / "pytest_plugin.py").read_text()
    for arg in args:
        option = arg.split("=", 1)[0]
        if option.startswith("--benchbench") and f'"{option}"' not in source:
            raise DocsError(f"{where}: pytest option {option}: the benchbench pytest plugin has no such option")


def check_script(path: Path, args: list[str], where: str) -> None:
    """A script the docs run must exist and know the options they give it."""
    if not path.is_file():
        raise DocsError(f"{where}: python {path.name}: no such script")
    source = path.read_text()
    for arg in args:
        option = arg.split("=", 1)[0]
        if option.startswith("--") and f'"{option}"' not in source:
            raise DocsError(f"{where}: {path.name} {option}: the script has no such option")
