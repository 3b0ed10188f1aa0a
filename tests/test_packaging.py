"""The wheel ships every module git tracks: what a user installs is what the tests import.

The tests run against an editable install, which imports benchbench/ and plugins/ straight
from the checkout; a module that the packaging leaves out (``benchbench.commands`` was, until
issue 20) passes every other test and breaks every command of a built wheel. These tests
build the distributions the way pip and ``python -m build`` do, from a copy of the files a
commit would hold (so that building leaves nothing in the checkout and sees what a clone
sees), and hold the wheel against that list (``git ls-files``), pyproject.toml's entry points
and the version.
``.ci/check-wheel`` installs such a wheel into a fresh environment and runs every command.
"""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from email.parser import HeaderParser
from pathlib import Path, PurePosixPath

import pytest

import benchbench

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

REPO = Path(__file__).resolve().parents[1]
DISTRIBUTION = "torch-benchbench"
PACKAGE_FOLDERS = {"benchbench": "benchbench", "plugins": "benchbench_plugins"}
"""Checkout folder -> the package it installs as (DESIGN.md: plugins/ is importable as
benchbench_plugins, whose modules the ``benchbench`` entry points name)."""


def tracked_files() -> list[str]:
    """The files a commit of this working tree would hold: tracked ones, and untracked ones git
    does not ignore (a module written but not yet added), as POSIX paths relative to the checkout.
    In CI's fresh clone that is exactly ``git ls-files``."""
    if shutil.which("git") is None:
        pytest.skip("needs git: the wheel is checked against the files git tracks")
    listing = ["ls-files", "-z", "--cached", "--others", "--exclude-standard"]
    done = subprocess.run(["git", "-C", str(REPO), *listing], capture_output=True, timeout=60)
    if done.returncode != 0:
        pytest.skip(f"not a git checkout ({REPO}): {done.stderr.decode(errors='replace').strip()}")
    return [name for name in done.stdout.decode().split("\0") if name and (REPO / name).is_file()]


def installed_path(tracked: str) -> str | None:
    """Where a tracked file of benchbench/ or plugins/ lies in the wheel; None for other files."""
    folder, *rest = PurePosixPath(tracked).parts
    if folder not in PACKAGE_FOLDERS or not rest:
        return None
    return str(PurePosixPath(PACKAGE_FOLDERS[folder], *rest))


def shown(tracked: str) -> str:
    installed = installed_path(tracked)
    return tracked if installed == tracked else f"{installed} (from {tracked})"


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tracked files, as they are in the working tree."""
    pytest.importorskip("setuptools")
    root = tmp_path_factory.mktemp("checkout")
    for name in tracked_files():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target)
    return root


def build(*command: str, cwd: Path) -> None:
    done = subprocess.run([sys.executable, *command], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


@pytest.fixture(scope="module")
def wheel(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[zipfile.ZipFile]:
    """The wheel ``pip install .`` would install (built without network: --no-build-isolation)."""
    out = tmp_path_factory.mktemp("wheel")
    build("-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(out), ".", cwd=source)
    (path,) = out.glob("*.whl")
    with zipfile.ZipFile(path) as archive:
        yield archive


def dist_info(wheel: zipfile.ZipFile, name: str) -> str:
    (path,) = [n for n in wheel.namelist() if n.endswith(f".dist-info/{name}") and n.count("/") == 1]
    return wheel.read(path).decode()


def entry_points_of(wheel: zipfile.ZipFile) -> dict[str, dict[str, str]]:
    parser = configparser.ConfigParser(delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # names are case-sensitive
    parser.read_string(dist_info(wheel, "entry_points.txt"))
    return {group: dict(parser[group]) for group in parser.sections()}


def module_file(wheel: zipfile.ZipFile, target: str) -> str | None:
    """The wheel's file for an entry point's ``module[:attr]``, or None when it has none."""
    parts = target.split(":")[0].strip().split(".")
    names = set(wheel.namelist())
    for candidate in ("/".join(parts) + ".py", "/".join(parts) + "/__init__.py"):
        if candidate in names:
            return candidate
    return None


def test_the_wheel_holds_every_tracked_file_of_benchbench_and_plugins(wheel: zipfile.ZipFile) -> None:
    tracked = [name for name in tracked_files() if installed_path(name) is not None]
    assert any(name.startswith("benchbench/commands/") for name in tracked)  # the check sees subpackages
    names = set(wheel.namelist())
    missing = sorted(shown(name) for name in tracked if installed_path(name) not in names)
    assert not missing, (
        f"the wheel lacks {len(missing)} tracked file(s): {', '.join(missing)}; pyproject.toml "
        "[tool.setuptools] must find them (a data file also needs package-data)"
    )


def test_the_wheel_holds_only_the_two_packages_and_its_metadata(wheel: zipfile.ZipFile) -> None:
    tops = {name.split("/")[0] for name in wheel.namelist()}
    info = {top for top in tops if top.endswith(".dist-info")}
    assert tops - info == set(PACKAGE_FOLDERS.values())  # no tests/, no plugins/ under its folder name


def test_the_wheel_declares_the_console_script_and_every_entry_point(wheel: zipfile.ZipFile) -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = {"console_scripts": project["scripts"], **project["entry-points"]}
    shipped = entry_points_of(wheel)
    assert shipped == declared
    assert shipped["console_scripts"]["benchbench"] == "benchbench.cli:main"
    assert shipped["pytest11"]["benchbench"] == "benchbench.pytest_plugin"
    targets = [target for group in shipped.values() for target in group.values()]
    assert [t for t in targets if module_file(wheel, t) is None] == []  # each names a module it ships


def test_every_first_party_plugin_module_is_an_entry_point(wheel: zipfile.ZipFile) -> None:
    """DESIGN.md: first-party plugins load through the ``benchbench`` entry-point group, as a
    third party's would, so a new module in plugins/ without an entry point never loads."""
    modules = {
        f"benchbench_plugins.{PurePosixPath(name).stem}"
        for name in tracked_files()
        if PurePosixPath(name).parent == PurePosixPath("plugins") and name.endswith(".py")
        and not PurePosixPath(name).stem.startswith("_")
    }
    assert modules and set(entry_points_of(wheel)["benchbench"].values()) == modules


def test_the_wheel_is_torch_benchbench_at_the_packages_version(wheel: zipfile.ZipFile) -> None:
    metadata = HeaderParser().parsestr(dist_info(wheel, "METADATA"))
    assert metadata["Name"] == DISTRIBUTION
    assert metadata["Version"] == benchbench.__version__  # what `benchbench --version` prints
    assert Path(wheel.filename or "").name.startswith(f"torch_benchbench-{benchbench.__version__}-py3-none-any")
    assert {"report", "ray", "tensorboard", "dev"} <= set(metadata.get_all("Provides-Extra") or [])


def test_python_m_build_makes_an_sdist_that_builds_the_same_wheel(
    source: Path, wheel: zipfile.ZipFile, tmp_path: Path
) -> None:
    """``python -m build`` builds the sdist, then the wheel from the unpacked sdist: a module
    the sdist left out would be missing from that wheel (and from every install from it)."""
    pytest.importorskip("build")  # in the dev extra
    work = tmp_path / "checkout"
    shutil.copytree(source, work, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    build("-m", "build", "--no-isolation", "--outdir", str(tmp_path / "dist"), ".", cwd=work)
    (sdist,) = (tmp_path / "dist").glob("torch_benchbench-*.tar.gz")
    (from_sdist,) = (tmp_path / "dist").glob("torch_benchbench-*.whl")
    with zipfile.ZipFile(from_sdist) as rebuilt:
        assert sorted(dist_info(rebuilt, "RECORD").splitlines()) == sorted(dist_info(wheel, "RECORD").splitlines())
    with tarfile.open(sdist) as archive:
        inside = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    missing = [name for name in tracked_files() if installed_path(name) is not None and name not in inside]
    assert {"pyproject.toml", "README.md"} <= inside
    assert not missing, f"the sdist lacks {len(missing)} tracked file(s) of the packages: {', '.join(missing)}"
