"""The documentation cannot rot: every block of README.md and docs/ runs (tests/docs_runner.py).

Each page is one test that runs its blocks in order in a sandbox of its own. Blocks
marked ``<!-- docs: slow -->`` (a whole suite, valgrind) run only under the
``docs_slow`` marker, which ``.ci/run --docs-slow`` selects (``python -m pytest -m docs_slow
tests/test_docs.py``); a plain ``python -m pytest`` runs the rest. The tests at the end
break a page on purpose and check that the runner notices, so a runner that silently
stopped running blocks would fail too.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests import docs_runner
from tests.docs_runner import REPO, DocsError, Sandbox

PAGES = docs_runner.documents()
SLOW_PAGES = [page for page in PAGES if "<!-- docs: slow -->" in (REPO / page).read_text()]


def _selected(request: pytest.FixtureRequest) -> bool:
    expression = request.config.getoption("markexpr") or ""
    return re.search(r"(?<!not )\bdocs_slow\b", expression) is not None


@pytest.mark.parametrize("page", PAGES)
def test_page_runs(page: str, tmp_path: Path) -> None:
    Sandbox(tmp_path / "sandbox", page).run()


@pytest.mark.docs_slow
@pytest.mark.parametrize("page", SLOW_PAGES)
def test_page_runs_in_full(page: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if not _selected(request):
        pytest.skip("slow blocks of the docs: run with -m docs_slow (as .ci/run --docs-slow does)")
    Sandbox(tmp_path / "sandbox", page, tier="full").run()


# ------------------------------------------------------------------- the pages themselves


def test_readme_is_at_most_300_lines() -> None:
    lines = (REPO / "README.md").read_text().count("\n")
    assert lines <= 300, f"README.md has {lines} lines; move detail into docs/"


def test_every_page_is_in_the_site_navigation() -> None:
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text())

    def pages(nav: object) -> list[str]:
        if isinstance(nav, str):
            return [nav]
        if isinstance(nav, list):
            return [p for item in nav for p in pages(item)]
        if isinstance(nav, dict):
            return [p for value in nav.values() for p in pages(value)]
        return []

    listed = set(pages(config["nav"]))
    on_disk = {str(p.relative_to(REPO / "docs")) for p in (REPO / "docs").rglob("*.md")}
    assert on_disk == listed, f"not in mkdocs.yml's nav: {sorted(on_disk - listed)}; missing: {sorted(listed - on_disk)}"


LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("page", PAGES)
def test_relative_links_lead_somewhere(page: str) -> None:
    """A link to a file of the checkout (README -> docs/, docs -> a page) names a file that exists."""
    text = (REPO / page).read_text()
    broken = [target for target in LINK.findall(text)
              if "://" not in target and not target.startswith("mailto:")
              and not ((REPO / page).parent / target).exists()]
    assert not broken, f"{page}: links to nothing: {broken}"


GENERATED = {"results/history.sqlite"}
"""Files the docs name that a run makes, not the checkout."""
SOURCE_PATH = re.compile(r"`((?:benchbench|plugins|suites|benchmarks|examples|tests|results)/[\w./-]*\w)`")


@pytest.mark.parametrize("page", PAGES)
def test_files_the_docs_name_exist(page: str) -> None:
    """`benchbench/history.py`, `suites/ci.yaml`...: a renamed or moved file must be renamed in the docs too."""
    text = (REPO / page).read_text()
    missing = sorted({p for p in SOURCE_PATH.findall(text) if "*" not in p and not (REPO / p).exists()} - GENERATED)
    assert not missing, f"{page} names files that do not exist: {missing}"


def test_the_layout_in_contributing_names_real_files() -> None:
    """The module map of docs/contributing.md: each entry (a file or a folder) exists where the tree puts it."""
    text = (REPO / "docs" / "contributing.md").read_text()
    tree = text.split("## Layout", 1)[1].split("```text\n", 1)[1].split("```", 1)[0]
    missing = []
    for line in tree.splitlines():
        entry = re.match(r"( {0,2})([\w.]+/?)\s", line)
        if entry:
            where = REPO / ("benchbench" if entry.group(1) else "") / entry.group(2)
            if not where.exists():
                missing.append(str(where.relative_to(REPO)))
    assert not missing, f"docs/contributing.md's layout names what does not exist: {missing}"


# ------------------------------------------------------------------- the runner notices


def _page(tmp_path: Path, text: str) -> str:
    page = tmp_path / "page.md"
    page.write_text(text)
    return str(page)


BROKEN = {  # what a page says -> what the runner must say about it
    "a wrong exit code": ("```bash\nbenchbench run nosuch.yaml\n```\n", "exited 2, the page says 0"),
    "an exit code the page promises": ("```bash\nbenchbench --version   # exit 2\n```\n", "exited 0, the page says 2"),
    "an unknown option": ("```bash\nbenchbench list models --colour\n```\n", "unknown option"),
    "an unknown option in a block that never runs": (
        "<!-- docs: skip takes hours -->\n```bash\nbenchbench run s.yaml --rounds-per-hour 3\n```\n", "unknown option"),
    "a bad choice": ("<!-- docs: slow -->\n```bash\nbenchbench list modles\n```\n", "refused by benchbench's parser"),
    "a Python block that raises": ("```python\nimport benchbench\nbenchbench.no_such_function()\n```\n", "AttributeError"),
    "a suite with an unknown key": (
        "```yaml\nbenchmarks:\n  - model: conv\n    argz: {in_channels: 3}\n```\n", "unknown key 'argz'"),
    "an extra pyproject.toml does not declare": ("```bash\npip install \".[no_such_extra]\"\n```\n", "no extra no_such_extra"),
    "a folder that is no project": ("```bash\npip install ./suites\n```\n", "no project folder"),
    "the distribution's wrong name": ("```bash\npip install benchbench\n```\n", "the distribution is called"),
    "a script option that does not exist": (
        "<!-- docs: skip minutes -->\n```bash\npython benchmarks/ray_sweep.py --no-such-option\n```\n", "no such option"),
    "a pytest option that does not exist": (
        "<!-- docs: skip -v -->\n```bash\npytest --benchbench-sav results\n```\n", "no such option"),
    "a program the runner cannot run": ("```bash\ntensorboard --logdir profiles/\n```\n", "does not run `tensorboard`"),
    "an unknown directive": ("<!-- docs: sometimes -->\n```bash\nbenchbench --version\n```\n", "unknown directive"),
    "a block language the runner does not know": ("```fish\nbenchbench --version\n```\n", "a 'fish' block"),
    "the test suite run from the docs": ("```bash\npython -m pytest\n```\n", "the test suite itself"),
    "a directive before output": ("<!-- docs: slow -->\n```text\nsome output\n```\n", "never run"),
}


@pytest.mark.parametrize("case", BROKEN)
def test_a_broken_block_fails(case: str, tmp_path: Path) -> None:
    text, message = BROKEN[case]
    with pytest.raises(DocsError, match=re.escape(message)):
        Sandbox(tmp_path / "sandbox", _page(tmp_path, text)).run()


def test_a_working_page_runs_every_kind_of_block(tmp_path: Path) -> None:
    text = (
        "<!-- docs: skip a server -->\n```bash\ntensorboard --logdir profiles/\n```\n"
        "```yaml\n# tiny.yaml\nbenchmarks:\n  - {model: conv, args: {in_channels: 3, out_channels: 4, kernel_size: 3},"
        " input_shape: [3, 8, 8]}\n```\n"
        "```bash\nbenchbench run tiny.yaml --metrics params,flops -q --json run.json && benchbench report run.json > t.txt\n"
        "benchbench run nosuch.yaml   # exit 2: no such file\n```\n"
        "```python\nfrom pathlib import Path\nassert 'conv' in Path('t.txt').read_text()\n```\n"
        "<!-- docs: slow -->\n```python\nraise SystemExit('a slow block ran in the fast tier')\n```\n"
        "```text\nanything at all\n```\n"
    )
    ran = Sandbox(tmp_path / "sandbox", _page(tmp_path, text)).run()
    assert len(ran) == 5, ran  # the suite, two chained commands, the exit-2 command, the Python block
