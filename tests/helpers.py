"""Test helpers: fake installed distributions and tiny plugins written to tmp folders."""

from __future__ import annotations

import textwrap
from pathlib import Path

from tests.tools import require_tool

__all__ = ["SOURCES", "TINY_LATENCY", "PluginFiles", "fake_distribution", "require_tool", "tiny_suite", "write_plugin"]

SOURCES = Path(__file__).resolve().parent / "plugin_sources"


class PluginFiles:
    """Plugin modules for one test, in a folder of its own (pytest's ``pytester``, for plugins).

    ``copy("toys", prefix="t_")`` copies ``tests/plugin_sources/toys.py`` (``{prefix}`` in
    it replaced, so that two copies register different names); ``write("spy", source)``
    writes a module from a (dedented) string; ``path`` is the folder for ``--plugins-dir``.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)

    def copy(self, source: str, *, name: str | None = None, prefix: str = "", folder: Path | None = None) -> Path:
        text = (SOURCES / f"{source}.py").read_text().replace("{prefix}", prefix)
        return self._save(name or source, text, folder)

    def write(self, name: str, source: str, *, folder: Path | None = None) -> Path:
        return self._save(name, textwrap.dedent(source).lstrip("\n"), folder)

    def _save(self, name: str, text: str, folder: Path | None) -> Path:
        target = folder or self.path
        target.mkdir(parents=True, exist_ok=True)
        path = target / f"{name}.py"
        path.write_text(text)
        return path


def write_plugin(folder: Path, module: str, prefix: str = "") -> Path:
    """A plugin module registering ``<prefix>scale`` and ``<prefix>broken`` (a copy of plugin_sources/toys.py)."""
    return PluginFiles(folder).copy("toys", name=module, prefix=prefix)


def fake_distribution(site: Path, dist: str, entry_points: dict[str, str], version: str = "1.0") -> None:
    """Make ``site`` look like site-packages holding distribution ``dist`` with entry points."""
    info = site / f"{dist}-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = "\n".join(f"{name} = {target}" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(textwrap.dedent(f"[benchbench]\n{lines}\n"))


TINY_LATENCY = {"warmup_s": 0.0, "min_run_time_s": 0.01, "min_runs": 3, "min_block_s": 0.001}


def tiny_suite(**defaults: object) -> dict[str, object]:
    """A two-benchmark suite of small layers that runs in well under a second."""
    return {
        "name": "tiny",
        "defaults": {
            "device": "cpu",
            "batch_size": 2,
            "metric_options": {"latency": dict(TINY_LATENCY)},
            **defaults,
        },
        "benchmarks": [
            {"name": "std", "model": "conv", "args": {"in_channels": 8, "out_channels": 8, "kernel_size": 3, "padding": 1}, "input_shape": [8, 8, 8]},
            {
                "name": "sep",
                "model": "depthwise_separable",
                "args": {"in_channels": 8, "out_channels": 8, "kernel_size": 3, "padding": 1},
                "input_shape": [8, 8, 8],
                "baseline": "std",
            },
        ],
    }
