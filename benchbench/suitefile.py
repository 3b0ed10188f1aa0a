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

from benchbench.checks import shown
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


MAX_VALUES = 1_000_000
"""The most values (scalars, lists, mappings) a suite may hold once its YAML aliases are
expanded. Far above a real suite (10,000 benchmarks written out one by one are about
250,000), far below an alias bomb: ten nested aliases that each repeat the one before
ten times stand for 10^10 values, which a few hundred bytes of YAML can write and which
would otherwise fill the memory while they are checked and echoed."""
MERGE_TAG = "tag:yaml.org,2002:merge"


class _StrictLoader(yaml.SafeLoader):
    """``yaml.safe_load`` that rejects what would make a suite mean something else than it reads.

    * a key written twice in one mapping (plain YAML keeps the last value silently, so
      ``{in_channels: 3, in_channels: 64}`` would benchmark a different layer than its
      author read), a merge key (``<<``) included: ``{<<: *a, <<: *b}`` keeps one of the
      two, where ``<<: [*a, *b]`` says which wins;
    * aliases that expand to more than :data:`MAX_VALUES` values, or refer to a list or
      mapping they are inside of (an endless structure): refused before anything is built.
    """

    def construct_document(self, node: yaml.Node) -> Any:
        _check_expansion(node)
        return super().construct_document(node)

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        """Resolve merge keys here, not in PyYAML: what ``<<: [*a, *b]`` means must not follow its version.

        The YAML merge-key rules: the mapping's own keys win over merged ones, and in a
        list of merged mappings the first listed wins. PyYAML 6.0.4 keeps the *last*
        listed where the key's text is not an interned string (``batch_size``, not ``b``),
        which turned ``batch_size: 2`` into 4 for a suite under one PyYAML and not another.
        """
        merged: list[tuple[yaml.Node, yaml.Node]] = []
        own: list[tuple[yaml.Node, yaml.Node]] = []
        for key_node, value_node in node.value:
            if key_node.tag != MERGE_TAG:
                if key_node.tag == "tag:yaml.org,2002:value":  # a key `=` is the string "=", as PyYAML reads it
                    key_node.tag = "tag:yaml.org,2002:str"
                own.append((key_node, value_node))
                continue
            sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            for source in reversed(sources):  # applied last to first: the dict keeps the last, so the first wins
                if not isinstance(source, yaml.MappingNode):
                    raise yaml.constructor.ConstructorError(
                        "while reading a mapping", node.start_mark,
                        f"a merge key (<<) takes a mapping or a list of mappings, not a {source.id}", source.start_mark)
                self.flatten_mapping(source)
                merged.extend(source.value)
        node.value = merged + own


def _check_expansion(root: yaml.Node) -> None:
    """Count the values ``root`` stands for, each alias counted in full (memoised: linear in the file)."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise yaml.constructor.ConstructorError(
                None, None, "an alias (*name) refers to a list or mapping that contains it: the structure would be "
                "endless; a suite needs no such alias", node.start_mark)
        open_nodes.add(key)
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        total = 1
        for child in children:
            total += size(child)
            if total > MAX_VALUES:
                raise yaml.constructor.ConstructorError(
                    None, None, f"its aliases (*name) expand to more than {MAX_VALUES:,} values, far more than a "
                    "suite needs (aliases that repeat other aliases multiply: an alias bomb?); write the benchmarks "
                    "out, or use a sweep", node.start_mark)
        open_nodes.discard(key)
        sizes[key] = total
        return total

    size(root)


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    merges = 0
    for key_node, _ in node.value:
        if key_node.tag == MERGE_TAG:
            merges += 1  # `<<: *anchor` brings keys that the mapping's own keys may override
            if merges > 1:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping", node.start_mark,
                    "merge key '<<' appears twice (only one of the two would count); merge several in one: "
                    "<<: [*first, *second] (the first wins where both set a key)", key_node.start_mark)
            continue
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, (str, int, float, bool)):
            continue  # unhashable or exotic keys: the suite checks report them
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while reading a mapping", node.start_mark, f"key {shown(key)} appears twice", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_suite_text(text: str, origin: str | Path, stem: str | None = None) -> SuiteDocument:
    """Parse a suite's YAML; every failure is a UsageError naming ``origin``."""
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # safe: _StrictLoader is a SafeLoader subclass
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


