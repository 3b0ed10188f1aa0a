"""The plugin manager: finds plugins, loads them, and collects what they register.

Discovery order (later ones may add to, never silently replace, earlier ones):

1. built-ins: benchbench's own metrics, reporters and progress display (``BUILTIN_PLUGINS``);
2. every installed distribution's entry points in the group ``benchbench``
   (skipped when the environment variable ``BENCHBENCH_DISABLE_PLUGIN_AUTOLOAD`` is set,
   for reproducible runs: then name plugins explicitly with ``-p``);
3. modules given with ``-p MODULE`` (an importable name, or a path to a ``.py`` file);
4. every ``*.py`` file in a folder given with ``--plugins-dir DIR``.

A discovered plugin that fails to import is reported (``PluginManager.failures``) and the
run goes on without it; a plugin the user named with ``-p`` that fails is an error.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import sys
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from benchbench import hookspecs
from benchbench.errors import PluginError
from benchbench.registry import KINDS, Registry

ENTRY_POINT_GROUP = "benchbench"
AUTOLOAD_ENV = "BENCHBENCH_DISABLE_PLUGIN_AUTOLOAD"

BUILTIN_PLUGINS = (
    "benchbench.metrics.params",
    "benchbench.metrics.flops",
    "benchbench.metrics.latency",
    "benchbench.metrics.memory",
    "benchbench.reporters",
    "benchbench.progress",
)


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
        self.plugins: list[PluginInfo] = []
        self.failures: list[PluginInfo] = []
        for module_name in BUILTIN_PLUGINS:
            self._register(importlib.import_module(module_name), PluginInfo(module_name, "builtin", module_name))
        if autoload if autoload is not None else not autoload_disabled():
            self._load_entry_points()
        for spec in plugins:
            self._load_named(spec)
        if plugins_dir is not None:
            self._load_dir(Path(plugins_dir))

    # ------------------------------------------------------------------ discovery

    def _register(self, module: ModuleType, info: PluginInfo) -> None:
        if self.pm.is_registered(module):  # e.g. -p naming a module autoload already loaded
            return
        name = info.name
        if self.pm.get_plugin(name) is not None:  # two distributions using one entry-point name
            name = f"{info.distribution}:{info.name}"
            info = PluginInfo(name, info.source, info.module, info.distribution, info.version)
        self.pm.register(module, name=name)
        self.plugins.append(info)

    def _load_entry_points(self) -> None:
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist.name if ep.dist is not None else None
            version = ep.dist.version if ep.dist is not None else None
            try:
                module = ep.load()
            except Exception as exc:  # a broken third-party plugin must not stop the run
                self.failures.append(
                    PluginInfo(ep.name, "entry point", ep.value, dist, version, f"{type(exc).__name__}: {exc}")
                )
                continue
            self._register(module, PluginInfo(ep.name, "entry point", ep.value, dist, version))

    def _load_named(self, spec: str) -> None:
        path = Path(spec)
        try:
            if spec.endswith(".py"):
                if not path.is_file():
                    raise PluginError(f"plugin file {spec!r} given with -p does not exist")
                module = _import_file(path, prefix="benchbench_p_plugins")
            else:
                module = importlib.import_module(spec)
        except PluginError:
            raise
        except Exception as exc:
            raise PluginError(
                f"could not import plugin {spec!r} given with -p/--plugin: {type(exc).__name__}: {exc}. "
                "Check that it is installed (or on PYTHONPATH) and that its name is spelled as in `import`."
            ) from exc
        self._register(module, PluginInfo(spec, "-p", module.__name__))

    def _load_dir(self, directory: Path) -> None:
        if not directory.is_dir():
            raise PluginError(f"--plugins-dir {str(directory)!r} is not a folder")
        for path in sorted(directory.glob("*.py")):
            if path.name.startswith("_"):
                continue
            try:
                module = _import_file(path, prefix="benchbench_dir_plugins")
            except Exception as exc:
                self.failures.append(
                    PluginInfo(path.stem, "plugins-dir", str(path), error=f"{type(exc).__name__}: {exc}")
                )
                continue
            self._register(module, PluginInfo(path.stem, "plugins-dir", str(path)))

    # ------------------------------------------------------------------ use

    @property
    def hook(self) -> Any:
        return self.pm.hook

    @cached_property
    def registry(self) -> Registry:
        """Call every registration hook, one plugin at a time so that entries know their plugin."""
        registry = Registry()
        for kind in KINDS:
            caller = getattr(self.pm.hook, f"benchbench_register_{kind}")
            for impl in caller.get_hookimpls():  # registration order: built-ins first
                register = registry.registrar(kind, impl.plugin_name)
                try:
                    impl.function(*[register for _ in impl.argnames])
                except PluginError:
                    raise
                except Exception as exc:
                    raise PluginError(
                        f"plugin {impl.plugin_name!r} raised in benchbench_register_{kind}: "
                        f"{type(exc).__name__}: {exc}"
                    ) from exc
        return registry

    def failure_notes(self) -> list[str]:
        """One line per plugin that failed to load, for warnings and 'unknown name' errors."""
        return [
            f"plugin {f.name!r} ({f.source}{', ' + f.distribution if f.distribution else ''}) "
            f"failed to load: {f.error}"
            for f in self.failures
        ]

    def unknown(self, kind: str, name: str) -> str:
        """Registry.unknown plus, when relevant, why a plugin that may provide it is missing."""
        message = self.registry.unknown(kind, name)
        notes = self.failure_notes()
        if notes:
            message += "; note: " + "; ".join(notes)
        if autoload_disabled():
            message += f"; entry-point plugins are not loaded because {AUTOLOAD_ENV} is set (use -p MODULE)"
        return message


def _import_file(path: Path, prefix: str) -> ModuleType:
    """Import a .py file as ``<prefix>.<stem>`` so that two folders' ``a.py`` do not clash."""
    name = f"{prefix}.{path.stem}"
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
