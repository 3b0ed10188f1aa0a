"""One run's configuration, made once and handed down (pytest's ``Config``, for a suite run).

``benchbench run`` builds it from its command line, :func:`benchbench.run_suite` from its
keywords; :func:`benchbench.suiterunner.prepare` and the :class:`~benchbench.suiterunner.SuiteRunner`
take it, executors read it from their session, and plugins get it in
``benchbench_configure(config)`` and read the options they added with
``benchbench_addoption`` through :meth:`Config.getoption`.
"""

from __future__ import annotations

from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from benchbench.manager import PluginManager


@dataclass
class Config:
    """The plugins of a run, what the command line changes about its suite, and plugins' options."""

    manager: PluginManager
    device: str | None = None
    """Every benchmark's device (``--device``), or None for the suite's own."""
    batch_size: int | None = None
    timeout: float | None = None
    metrics: list[str] | None = None
    only: list[str] | None = None
    """Run only these benchmarks (and the baselines they name)."""
    executor: str | None = None
    """Where benchmarks run (``--executor``); None: the suite's ``executor:``, else inline."""
    rounds: int | None = None
    profile: str | Path | None = None
    """A folder: add the ``profile`` metric to every benchmark, writing traces there."""
    quiet: bool = False
    verbose: bool = False
    plugin_options: InitVar[dict[str, Any] | None] = None
    """The values of options plugins added with ``benchbench_addoption`` (by argparse ``dest``):
    given when the configuration is made, read only with :meth:`getoption`."""
    _plugin_values: dict[str, Any] = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self, plugin_options: dict[str, Any] | None) -> None:
        self._plugin_values = dict(plugin_options or {})

    def getoption(self, name: str, default: Any = None) -> Any:
        """An option by name: one a plugin added (``address`` for Ray), or a core one (``device``).

        The one way to read a plugin's option: in ``benchbench_configure(config)``, and in an
        executor as ``session.config.getoption(NAME)``."""
        if name in self._plugin_values:
            value = self._plugin_values[name]
        else:
            value = getattr(self, name, None) if name in CORE_OPTIONS else None
        return default if value is None else value

    def overrides(self) -> dict[str, Any]:
        """The suite keys the options set on every benchmark (they win over the file)."""
        out: dict[str, Any] = {}
        if self.device is not None:
            out["device"] = self.device
        if self.batch_size is not None:
            out.update(batch_size=self.batch_size, cpu_batch_size=None)
        if self.timeout is not None:
            out["timeout"] = self.timeout
        if self.metrics is not None:
            out["metrics"] = list(self.metrics)
        return out

    def stored(self) -> dict[str, Any]:
        """What the run file keeps (``options``), so that ``--resume`` replays the same run."""
        return {key: getattr(self, key) for key in RESUMED_OPTIONS if getattr(self, key) is not None}


delattr(Config, "plugin_options")  # an InitVar's default stays behind as a class attribute: no second way to read them

RESUMED_OPTIONS = ("device", "batch_size", "timeout", "metrics", "only", "executor", "rounds")
"""The options a run file keeps and ``--resume`` replays."""
CORE_OPTIONS = (*RESUMED_OPTIONS, "profile", "quiet", "verbose")
