"""A suite's ``args:`` against the factory that receives them: names, types and defaults.

Checked while the suite is validated, so that ``in_channels: "8"`` is reported as
"expected an integer, got the string '8'" before anything runs, instead of a TypeError
deep inside PyTorch that blames something else. Types come from the factory's
annotations (``int``, ``float``, ``bool``, ``str``, unions, ``Literal``, tuples and
lists of those); a parameter without a usable annotation accepts anything.

:func:`without_defaults` gives the arguments as a comparison should see them: a value
written out that equals the factory's default (``stride: 1``) says nothing more than
leaving it out, so two runs that differ only in that are still compared.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from benchbench.checks import numeric_text, shown
from benchbench.errors import did_you_mean

_ANY = object()


def check_args(factory: Callable[..., Any], args: Mapping[str, Any], key: str = "args") -> list[str]:
    """Problems with ``args`` for ``factory(**args)``: unknown names, missing ones, wrong types.

    Each problem names the suite key it is about: ``key 'args': unknown argument ...``,
    ``key 'args.in_channels': expected an integer, got the string '8'``.
    """
    params = _parameters(factory)
    if params is None:
        return []  # no signature (a builtin), or **kwargs: the factory itself will tell
    accepted = list(params)
    problems = [
        f"key {key!r}: unknown argument {name!r}{did_you_mean(name, accepted)}; accepted: {', '.join(accepted)}"
        for name in args
        if name not in params
    ]
    missing = [n for n, p in params.items() if p.default is inspect.Parameter.empty and n not in args]
    if missing:
        problems.append(f"key {key!r}: missing required argument(s): {', '.join(missing)}")
    hints = _hints(factory)
    for name, value in args.items():
        hint = hints.get(name, _ANY)
        if name in params and hint is not _ANY and not _matches(value, hint):
            problems.append(f"key '{key}.{name}': expected {_describe_type(hint)}, got {_describe_value(value)}")
    return problems


def with_defaults(factory: Callable[..., Any], args: Mapping[str, Any]) -> dict[str, Any]:
    """``args`` and every default of the factory's signature: what the factory will really get.

    A plugin's ``input_shape(args)`` rule and a dataset's ``check(**args)`` receive these,
    so the defaults are written once, in the factory's signature.
    """
    params = _parameters(factory) or {}
    return {**{n: p.default for n, p in params.items() if p.default is not inspect.Parameter.empty}, **args}


def without_defaults(factory: Callable[..., Any], args: Mapping[str, Any]) -> dict[str, Any]:
    """``args`` less the entries whose value is the factory's own default (same type, same value)."""
    params = _parameters(factory) or {}
    kept = {}
    for name, value in args.items():
        param = params.get(name)
        if param is not None and param.default is not inspect.Parameter.empty and _same(value, param.default):
            continue
        kept[name] = value
    return kept


# ----------------------------------------------------------------------------- signatures


def _parameters(factory: Callable[..., Any]) -> dict[str, inspect.Parameter] | None:
    """The keyword-passable parameters, or None when they cannot be known (no signature, **kwargs)."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return None
    params = signature.parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    return {n: p for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def _hints(factory: Callable[..., Any]) -> dict[str, Any]:
    """Resolved annotations (``from __future__ import annotations`` makes them strings)."""
    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        return typing.get_type_hints(target)
    except Exception:  # deliberately broad: an annotation naming something unimportable: check nothing
        return {}


def _same(value: Any, default: Any) -> bool:
    """Equal and of the same kind (``True`` is not the default ``1``; ``[1, 1]`` is ``(1, 1)``)."""
    if isinstance(value, (list, tuple)) and isinstance(default, (list, tuple)):
        return len(value) == len(default) and all(_same(v, d) for v, d in zip(value, default))
    return type(value) is type(default) and value == default


# ----------------------------------------------------------------------------- types


def _matches(value: Any, hint: Any) -> bool:
    """Whether a YAML value fits an annotation; unknown kinds of annotation accept anything."""
    if hint is Any or hint is _ANY:
        return True
    if hint is type(None) or hint is None:
        return value is None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, h) for h in typing.get_args(hint))
    if origin is typing.Literal:
        return any(_same(value, choice) for choice in typing.get_args(hint))
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    container = origin or hint
    if container in (tuple, list, Sequence) or container in (typing.Tuple, typing.List):  # noqa: UP006
        if not isinstance(value, (list, tuple)):
            return False
        items = typing.get_args(hint)
        if container is tuple and items and items[-1] is not Ellipsis:
            return len(value) == len(items) and all(_matches(v, h) for v, h in zip(value, items))
        return not items or all(_matches(v, items[0]) for v in value)
    if container in (dict, Mapping):
        return isinstance(value, dict)
    return True  # a class, a callable...: a YAML value cannot be one, and the factory will say so


def _describe_type(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(dict.fromkeys(_describe_type(h) for h in typing.get_args(hint)))
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(c) for c in typing.get_args(hint))
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string", type(None): "null"}
    if hint in names:
        return names[hint]
    items = typing.get_args(hint)
    if (origin or hint) is tuple and items and items[-1] is not Ellipsis:
        kinds = dict.fromkeys(_describe_type(h).removeprefix("an ").removeprefix("a ") for h in items)
        return f"a list of {len(items)} " + " or ".join(k + "s" for k in kinds)
    if (origin or hint) in (tuple, list, Sequence):
        return "a list" + (f" of {_describe_type(items[0]).removeprefix('an ').removeprefix('a ')}s" if items else "")
    if (origin or hint) in (dict, Mapping):
        return "a mapping"
    return getattr(hint, "__name__", str(hint))


def _describe_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"the string {shown(value)}" + (" (write numbers without quotes)" if numeric_text(value) else "")
    if isinstance(value, (int, float)):
        return f"the number {shown(value)}"
    if isinstance(value, (list, tuple)):
        return f"the list {shown(list(value))}"
    if isinstance(value, dict):
        return f"the mapping {shown(value)}"
    return shown(value)

