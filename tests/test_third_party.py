"""A real third-party plugin, pip-installed as the README says, runs in a suite.

``examples/third_party_plugin`` is a separate distribution with its own pyproject and an
entry point in the ``benchbench`` group. This test installs it with pip (into a temp
folder, no network: ``--no-deps --no-build-isolation``) and uses it from a fresh process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "third_party_plugin"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    pytest.importorskip("setuptools")
    source = tmp_path_factory.mktemp("src") / "plugin"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = tmp_path_factory.mktemp("site")
    done = subprocess.run(  # a copy, so that the build leaves nothing in the checkout
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    path = os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path}


def benchbench(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "benchbench", *args], capture_output=True, text=True, env=env, timeout=300)


def test_installed_plugin_is_listed_with_its_distribution(installed: dict[str, str]) -> None:
    models = benchbench(installed, "list", "models")
    assert models.returncode == 0, models.stderr
    line = next(row for row in models.stdout.splitlines() if row.startswith("squeeze_excite"))
    assert "attention" in line and "se_blocks" in line
    plugins = benchbench(installed, "list", "plugins").stdout
    assert any("se_blocks" in row and "benchbench-se-blocks" in row and "0.1.0" in row for row in plugins.splitlines())


def test_installed_plugin_runs_in_a_suite(installed: dict[str, str], tmp_path: Path) -> None:
    suite = yaml.safe_load((EXAMPLE / "se_suite.yaml").read_text())
    suite["defaults"]["metrics"] = ["params", "flops"]  # the timing metrics are tested elsewhere
    (tmp_path / "se.yaml").write_text(yaml.safe_dump(suite))
    out = tmp_path / "run.json"
    done = benchbench(installed, "run", str(tmp_path / "se.yaml"), "--json", str(out), "-q")
    assert done.returncode == 0, done.stderr
    conv, se = json.loads(out.read_text())["records"]
    assert se["model"] == "squeeze_excite" and se["plugin"] == "se_blocks" and se["status"] == "ok"
    assert se["params"] == (64 * 4 + 4) + (4 * 64 + 64)
    assert se["output_shape"] == [64, 32, 32]
    assert se["params_ratio"] == pytest.approx(se["params"] / conv["params"])


def test_autoload_off_leaves_it_out_until_named(installed: dict[str, str]) -> None:
    env = {**installed, "BENCHBENCH_DISABLE_PLUGIN_AUTOLOAD": "1"}
    assert "squeeze_excite" not in benchbench(env, "list", "models").stdout
    assert "squeeze_excite" in benchbench(env, "list", "models", "-p", "se_blocks").stdout


def test_the_example_depends_on_this_distribution_not_a_namesake() -> None:
    """'benchbench' on the package index is an unrelated project: a plugin that depended on it
    would get that one in a fresh environment. The example names this project's distribution."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    ours = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["name"]
    example = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    assert ours == "torch-benchbench" and ours in example["dependencies"]
    assert "benchbench" not in example["dependencies"]  # the unrelated namesake
    assert ours in (REPO / "README.md").read_text()
