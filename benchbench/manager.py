"""The plugin manager: finds plugins, loads them, and collects what they register.

Discovery order (later ones may add to, never silently replace, earlier ones):

1. built-ins: benchbench's own metrics, reporters and progress display (``BUILTIN_PLUGINS``);
2. every installed distribution's entry points in the group ``benchbench``
   (skipped when the environment variable ``BENCHBENCH_DISABLE_PLUGIN_AUTOLOAD`` is set,
   for reproducible runs: then name plugins explicitly with ``-p``);
3. modules given with ``-p MODULE`` (an importable name, or a path to a ``.py`` file);
4. every ``*.py`` file in a folder given with ``--plugins-dir DIR``.

``-p no:NAME`` blocks a plugin (as in pytest): it is neither imported nor registered
(``no:progress`` for the built-in progress display, ``no:ray_executor`` for an entry
point). The built-ins no run can work without (``ESSENTIAL_PLUGINS``: the reporters and
the executors) cannot be blocked, as pytest keeps its ``main``: blocking one is a usage
error that says why it is needed, not a failure after the work. A discovered plugin that fails to import is reported (``PluginManager.failures``)
and the run goes on without it; a plugin the user named with ``-p`` that fails is an
error. The registry is built at once, so a plugin whose registration hook raises is
reported with the others, before anything else is printed.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import importlib.util
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from benchbench import hookspecs
from benchbench.errors import PluginError, did_you_mean
from benchbench.registry import KINDS, Entry, Registry

ENTRY_POINT_GROUP = "benchbench"
AUTOLOAD_ENV = "BENCHBENCH_DISABLE_PLUGIN_AUTOLOAD"

BUILTIN_PLUGINS = (
    "benchbench.metrics.params",
    "benchbench.metrics.flops",
    "benchbench.metrics.latency",
    "benchbench.metrics.memory",
    "benchbench.metrics.accuracy",
    "benchbench.metrics.profile",
    "benchbench.metrics.instructions",
    "benchbench.metrics.numerics",
    "benchbench.metrics.cuda_kernels",
    "benchbench.metrics.energy",
    "benchbench.derived",
    "benchbench.reporters",
    "benchbench.executors",
    "benchbench.progress",
)

ESSENTIAL_PLUGINS = {
    "benchbench.reporters": "it registers the reporters a run prints its results with: table (the default --format, "
    "and every table format), csv and json; to show results another way, add a reporter and choose it with --format NAME",
    "benchbench.executors": "it runs the benchmarks: the default executor 'inline' and 'subprocess' (--isolate); "
    "to run them elsewhere, add an executor and choose it with --executor NAME",
}
"""Built-ins that ``-p no:NAME`` may not block, and why each is needed. The others are
optional: without a metric, a suite that names it is refused with the plugin's name;
without ``derived`` the derived fields are missing; without ``progress`` the run is quiet."""


@dataclass(frozen=True)
class PluginInfo:
    """One plugin that was loaded, or that failed to load (``error`` is then set)."""

    name: str
    source: str  # "builtin" | "entry point" | "-p" | "plugins-dir"
    module: str
    distribution: str | None = None
    version: str | None = None
    error: str | None = None


def autoload_disabled() -> bool:
    return os.environ.get(AUTOLOAD_ENV, "").strip().lower() not in ("", "0", "false", "no")


class PluginManager:
    """pluggy's manager plus benchbench's discovery rules and registries."""

    def __init__(
        self,
        plugins: list[str] | tuple[str, ...] = (),
        plugins_dir: str | os.PathLike[str] | None = None,
        *,
        autoload: bool | None = None,
    ) -> None:
        self.pm = pluggy.PluginManager("benchbench")
        self.pm.add_hookspecs(hookspecs)
        self.arguments: dict[str, Any] = {
            "plugins": list(plugins),
            "plugins_dir": None if plugins_dir is None else str(plugins_dir),
            "autoload": autoload,
        }
        """The arguments, so that a worker process can build the same manager."""
        self.plugins: list[PluginInfo] = []
        self.failures: list[PluginInfo] = []
        self.blocked: list[PluginInfo] = []
        blocks = [spec.removeprefix("no:") for spec in plugins if spec.startswith("no:")]
        _refuse_essential_blocks(blocks)
        for name in blocks:
            self.pm.set_blocked(name)
        for module_name in BUILTIN_PLUGINS:
            info = PluginInfo(module_name, "builtin", module_name)
            if not self._is_blocked(info):
                self._register(importlib.import_module(module_name), info)
        if autoload if autoload is not None else not autoload_disabled():
            self._load_entry_points()
        for spec in plugins:
            if not spec.startswith("no:"):
                self._load_named(spec)
        if plugins_dir is not None:
            self._load_dir(Path(plugins_dir))
        self._check_blocks(blocks)
        self.registry = self._build_registry()
        """Everything the loaded plugins registered (built here, so every failure is known at once)."""

    def _is_blocked(self, info: PluginInfo) -> bool:
        """Whether ``-p no:NAME`` blocks this plugin (by its name, its module, or the module's last part)."""
        names = {info.name, info.module, info.module.rpartition(".")[2], info.module.rpartition(":")[0]}
        if any(self.pm.is_blocked(n) for n in names if n):
            self.blocked.append(info)
            return True
        return False

    def _check_blocks(self, blocks: list[str]) -> None:
        """A ``-p no:NAME`` that blocked nothing is a typo, not a silent no-op."""
        matched = {n for info in self.blocked for n in (info.name, info.module, info.module.rpartition(".")[2])}
        known = [n for info in self.plugins for n in (info.name, info.module.rpartition(".")[2])]
        for name in blocks:
            if name not in matched:
                raise PluginError(f"-p no:{name}: no plugin of that name is loaded{did_you_mean(name, known)}; "
                                  "`benchbench list plugins` shows the names")
    # ------------------------------------------------------------------ discovery

    def _register(self, module: ModuleType, info: PluginInfo) -> None:
        """Register a loaded module; PluginError when it is not a valid plugin."""
        if self.pm.is_registered(module):  # e.g. -p naming a module autoload already loaded
            return
        problems = _hook_name_problems(module)
        if problems:
            raise PluginError(f"plugin {info.name!r} ({info.module}): " + "; ".join(problems))
        name = info.name
        if self.pm.get_plugin(name) is not None:  # two plugins of one name (two distributions, or -p and a folder)
            name = f"{info.distribution or info.source}:{info.name}"
            info = replace(info, name=name)
        try:
            self.pm.register(module, name=name)
        except pluggy.PluginValidationError as exc:  # e.g. a hook argument pluggy does not know
            raise PluginError(f"plugin {name!r} ({info.module}): {exc}") from None
        self.plugins.append(info)

    def _fail(self, info: PluginInfo, exc: BaseException) -> None:
        """A discovered (not explicitly named) plugin that cannot be used: report it, go on."""
        error = str(exc) if isinstance(exc, PluginError) else f"{type(exc).__name__}: {exc}"
        self.failures.append(replace(info, error=error))

    def _load_entry_points(self) -> None:
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist.name if ep.dist is not None else None
            version = ep.dist.version if ep.dist is not None else None
            info = PluginInfo(ep.name, "entry point", ep.value, dist, version)
            if self._is_blocked(info):
                continue
            try:
                self._register(ep.load(), info)
            except Exception as exc:  # a broken third-party plugin must not stop the run
                self._fail(info, exc)

    def _load_named(self, spec: str) -> None:
        """``-p MODULE`` or ``-p FILE.py``: the user asked for it, so any failure is an error."""
        path = Path(spec)
        try:
            if spec.endswith(".py"):
                if not path.is_file():
                    raise PluginError(f"plugin file {spec!r} given with -p does not exist")
                if any(_same_file(plugin, path) for plugin in self.pm.get_plugins()):
                    return  # the same file named twice (my_blocks.py and ./my_blocks.py)
                module = _import_file(path, prefix="benchbench_p_plugins")
            else:
                with _current_folder_importable():  # as `python -m` would: -p my_blocks finds ./my_blocks.py
                    module = importlib.import_module(spec)
        except PluginError:
            raise
        except ModuleNotFoundError as exc:
            if exc.name != spec.split(".")[0]:
                raise PluginError(f"plugin {spec!r} given with -p failed to import: ModuleNotFoundError: {exc}") from exc
            raise PluginError(
                f"could not import plugin {spec!r} given with -p/--plugin: no module named {spec!r} in the current "
                "folder, on PYTHONPATH or among installed packages. Check the spelling (as in `import`), or give "
                "the path to the file (-p path/to/plugin.py)."
            ) from exc
        except Exception as exc:
            raise PluginError(f"plugin {spec!r} given with -p failed to import: {type(exc).__name__}: {exc}") from exc
        self._register(module, PluginInfo(spec, "-p", module.__name__))

    def _load_dir(self, directory: Path) -> None:
        if not directory.is_dir():
            raise PluginError(f"--plugins-dir {str(directory)!r} is not a folder")
        for path in sorted(directory.glob("*.py")):
            if path.name.startswith("_") or any(_same_file(plugin, path) for plugin in self.pm.get_plugins()):
                continue  # private, or the same file already loaded another way (-p)
            info = PluginInfo(path.stem, "plugins-dir", str(path))
            if self._is_blocked(info):
                continue
            try:
                self._register(_import_file(path, prefix="benchbench_dir_plugins"), info)
            except Exception as exc:
                self._fail(info, exc)

    # ------------------------------------------------------------------ use

    @property
    def hook(self) -> Any:
        return self.pm.hook

    def _build_registry(self) -> Registry:
        """Call every registration hook, one plugin at a time, so that entries know their plugin.

        A plugin whose registration hook raises is left out as a whole (none of its entries,
        none of its lifecycle hooks) and reported like one that failed to import; a plugin
        named with ``-p`` that raises is an error. Two plugins registering one name is
        always an error, naming both.
        """
        registry = Registry()
        for info in list(self.plugins):
            staged = Registry()
            try:
                for kind in KINDS:
                    caller = getattr(self.pm.hook, f"benchbench_register_{kind.plural}")
                    for impl in caller.get_hookimpls():
                        if impl.plugin_name == info.name:
                            impl.function(*[staged.registrar(kind, info.name) for _ in impl.argnames])
            except Exception as exc:
                error = PluginError(
                    f"plugin {info.name!r} raised in benchbench_register_{kind.plural}: {type(exc).__name__}: {exc}"
                )
                if info.source in ("builtin", "-p"):
                    raise error from exc
                self.pm.unregister(name=info.name)
                self.plugins.remove(info)
                self._fail(info, error)
                continue
            registry.merge(staged)
        return registry

    def failure_notes(self) -> list[str]:
        """One line per plugin that failed to load, for warnings and 'unknown name' errors."""
        return [
            f"plugin {f.name!r} ({f.source}{', ' + f.distribution if f.distribution else ''}) "
            f"failed to load: {f.error}"
            for f in self.failures
        ]

    def unknown(self, kind: type[Entry], name: str) -> str:
        """Registry.unknown plus, when relevant, why a plugin that may provide it is missing."""
        message = self.registry.unknown(kind, name)
        notes = self.failure_notes()
        if notes:
            message += "; note: " + "; ".join(notes)
        if self.blocked:
            message += "; blocked with -p no:NAME: " + ", ".join(info.name for info in self.blocked)
        if autoload_disabled():
            message += f"; entry-point plugins are not loaded because {AUTOLOAD_ENV} is set (use -p MODULE)"
        return message


def _refuse_essential_blocks(blocks: list[str]) -> None:
    """``-p no:NAME`` naming an essential built-in (by its module or the module's last part)."""
    for name in blocks:
        for module, why in ESSENTIAL_PLUGINS.items():
            if name in (module, module.rpartition(".")[2]):
                raise PluginError(f"-p no:{name}: the built-in plugin {module!r} cannot be blocked: {why}")


def _same_file(module: Any, path: Path) -> bool:
    file = getattr(module, "__file__", None)
    return file is not None and Path(file).resolve() == path.resolve()


HOOK_NAMES = tuple(name for name in dir(hookspecs) if name.startswith("benchbench_"))


def _hook_name_problems(module: ModuleType) -> list[str]:
    """Hooks that would be silently ignored: misspelled names, or a missing ``@benchbench.hookimpl``."""
    problems = []
    for attr in dir(module):
        value = getattr(module, attr, None)
        if not attr.startswith("benchbench_") or not callable(value):
            continue
        marked = hasattr(value, "benchbench_impl")
        if attr not in HOOK_NAMES:
            if marked:
                problems.append(f"{attr} is not a benchbench hook{did_you_mean(attr, HOOK_NAMES)}")
        elif not marked:
            problems.append(f"{attr} lacks the @benchbench.hookimpl decorator, so benchbench would ignore it")
    return problems


@contextlib.contextmanager
def _current_folder_importable() -> Iterator[None]:
    cwd = os.getcwd()
    added = cwd not in sys.path and "" not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        yield
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)


def _import_file(path: Path, prefix: str) -> ModuleType:
    """Import a .py file as ``<prefix>.<stem>`` (``<stem>_2``... when two folders have one)."""
    name, n = f"{prefix}.{path.stem}", 1
    while name in sys.modules and Path(getattr(sys.modules[name], "__file__", "")).resolve() != path.resolve():
        n += 1
        name = f"{prefix}.{path.stem}_{n}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
