"""Property: whatever structure a suite has, validation returns a Suite or raises UsageError.

Never a TypeError, KeyError or RecursionError from deep inside: a suite file is user
input, and any problem with it must come back as the documented error (exit code 2).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchbench.checks import FIELD_CHECKS
from benchbench.errors import UsageError
from benchbench.manager import PluginManager
from benchbench.spec import Suite
from benchbench.suite import SUITE_KEYS, load_suite

MANAGER = PluginManager()

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True),
    st.text(max_size=12), st.sampled_from(["conv", "cpu", "cuda", "float32", "train", "latency", "params"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)
keys = st.one_of(st.sampled_from(sorted(FIELD_CHECKS)), st.text(max_size=10))
args = st.dictionaries(
    st.sampled_from(["in_channels", "out_channels", "kernel_size", "padding", "stride", "bogus"]),
    st.one_of(st.integers(-3, 70), values), max_size=5,
)
benchmark = st.one_of(
    st.fixed_dictionaries(
        {"model": st.one_of(st.sampled_from(["conv", "depthwise_separable", "pixel_shuffle", "nope"]), values)},
        optional={"args": args, "input_shape": st.one_of(st.lists(st.integers(-2, 40), max_size=4), values),
                  "name": values, "metrics": values, "metric_options": values, "baseline": values},
    ),
    st.dictionaries(keys, values, max_size=5),
    values,
)
near_valid = st.fixed_dictionaries(  # mostly right: reaches the model checks and the dry run
    {
        "defaults": st.fixed_dictionaries({"device": st.just("cpu")}, optional={"batch_size": st.integers(-1, 4)}),
        "benchmarks": st.lists(
            st.fixed_dictionaries(
                {
                    "model": st.sampled_from(["conv", "depthwise_separable", "dilated", "pixel_shuffle"]),
                    "args": st.fixed_dictionaries(
                        {"in_channels": st.integers(-1, 16), "out_channels": st.integers(-1, 16), "kernel_size": st.integers(0, 6)},
                        optional={"padding": st.integers(-1, 3), "stride": st.integers(0, 3), "upscale_factor": st.integers(0, 3)},
                    ),
                },
                optional={"input_shape": st.lists(st.integers(-1, 12), max_size=4), "dry_run": st.booleans()},
            ),
            min_size=1, max_size=3, unique_by=lambda b: b["model"],
        ),
    }
)
suites = st.one_of(
    near_valid,
    st.fixed_dictionaries(
        {"benchmarks": st.one_of(st.lists(benchmark, max_size=4), values)},
        optional={"defaults": st.one_of(st.dictionaries(keys, values, max_size=5), values), "name": values,
                  "description": values, "executor": values},
    ),
    st.dictionaries(st.one_of(st.sampled_from(SUITE_KEYS), st.text(max_size=10)), values, max_size=5),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=suites)
def test_validation_never_raises_anything_but_usage_errors(data: dict) -> None:
    try:
        result = load_suite(data, MANAGER)
    except UsageError as error:
        assert str(error).strip()
    else:
        assert isinstance(result, Suite) and result.benchmarks


@pytest.mark.parametrize("text", ["[", "a: [1, 2", "- - - -", "{a: 1, a: 2}", "\t- x", "!!python/object:os.system ls", "*x"])
def test_yaml_text_errors_are_usage_errors(text: str) -> None:
    from benchbench.suitefile import parse_suite_text

    with pytest.raises(UsageError):
        parse_suite_text(text, "t.yaml")
