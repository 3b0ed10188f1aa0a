"""Reading a suite file: YAML in, one parsed :class:`SuiteDocument` out, read once.

Cheap (no torch, no plugins), so the command line reads the file first: a typo in a path
or in the YAML is reported in a fraction of a second. Validation against the registry
is :func:`benchbench.suite.load_suite`'s job, on the document read here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from benchbench.errors import UsageError


@dataclass(frozen=True)
class SuiteDocument:
    """A suite as read: its parsed mapping, its text (kept in the run file), and where it came from."""

    data: dict[str, Any]
    text: str | None
    """The YAML text (None for a suite given as a Python dict)."""
    origin: str
    """How errors name it: the file's path, ``<dict>``, or ``RUN.json (its suite)``."""
    stem: str
    """The suite's name when it has no ``name:`` (the file's stem)."""

    @property
    def name(self) -> str:
        name = self.data.get("name")
        return name if isinstance(name, str) and name else self.stem

    @classmethod
    def of(cls, source: str | Path | Mapping[str, Any] | SuiteDocument) -> SuiteDocument:
        """A document from whatever the API accepts: a path, a dict, or a document."""
        if isinstance(source, SuiteDocument):
            return source
        if isinstance(source, Mapping):
            return cls(dict(source), None, "<dict>", "suite")
        return read_suite_file(source)


class _StrictLoader(yaml.SafeLoader):
    """``yaml.safe_load`` that rejects a key written twice in one mapping.

    Plain YAML keeps the last value silently, so ``{in_channels: 3, in_channels: 64}``
    would benchmark a different layer than its author read.
    """


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # `<<: *anchor` brings keys that the mapping's own keys may override
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, (str, int, float, bool)):
            continue  # unhashable or exotic keys: the suite checks report them
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while reading a mapping", node.start_mark, f"key {key!r} appears twice", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_suite_text(text: str, origin: str | Path, stem: str | None = None) -> SuiteDocument:
    """Parse a suite's YAML; every failure is a UsageError naming ``origin``."""
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        kind = "YAML error" if isinstance(exc, yaml.constructor.ConstructorError) else "YAML syntax error"
        raise UsageError(f"{origin}: {kind}{where}: {problem}") from None
    except RecursionError:
        raise UsageError(f"{origin}: YAML nested too deeply to read; a suite needs only a few levels") from None
    if data is None:
        raise UsageError(f"{origin}: the file is empty; a suite needs at least a 'benchmarks' list (see suites/)")
    if not isinstance(data, dict):
        raise UsageError(
            f"{origin}: a suite file must be a mapping with a 'benchmarks' list, got {type(data).__name__}"
        )
    return SuiteDocument(data, text, str(origin), stem or Path(origin).stem)


def read_suite_file(path: str | Path) -> SuiteDocument:
    """Read and parse a suite file; every failure is a UsageError naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"suite file {str(path)!r} not found (check the path; suites/ holds the ready ones)") from None
    except IsADirectoryError:
        raise UsageError(f"suite file {str(path)!r} is a folder; give a .yaml file in it") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"suite file {str(path)!r} cannot be read: {exc}") from None
    return parse_suite_text(text, path)


