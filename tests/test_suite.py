"""Suite files: defaults, overrides, and every problem reported at once with a suggestion."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import benchbench
from benchbench import checks
from benchbench.cli import main
from benchbench.errors import SuiteError, UsageError
from benchbench.manager import PluginManager
from benchbench.registry import ModelEntry
from benchbench.spec import DEFAULT_METRICS
from benchbench.suite import UnrunnableSuite, load_suite
from benchbench.suitefile import parse_suite_text, read_suite_file
from tests.helpers import PluginFiles, tiny_suite

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def manager() -> PluginManager:
    return PluginManager()


def problems_of(data: dict, manager: PluginManager, **kwargs) -> list[str]:
    with pytest.raises(SuiteError) as error:
        load_suite(data, manager, **kwargs)
    return error.value.problems


def test_defaults_merge_and_benchmark_values_win(manager: PluginManager) -> None:
    suite = load_suite(tiny_suite(), manager)
    std, sep = suite.benchmarks
    assert suite.name == "tiny" and std.name == "std" and sep.baseline == "std"
    assert (std.device, std.batch_size, std.metrics) == ("cpu", 2, DEFAULT_METRICS)
    assert std.input_shape == (8, 8, 8)
    assert std.metric_options["latency"]["min_runs"] == 3


def test_name_defaults_to_model_and_input_shape_to_the_registered_rule(manager: PluginManager) -> None:
    suite = load_suite({"benchmarks": [{"model": "conv", "args": {"in_channels": 16, "out_channels": 4, "kernel_size": 1}}]}, manager)
    [spec] = suite.benchmarks
    assert spec.name == "conv" and suite.name == "suite"
    assert spec.input_shape[0] == 16


def test_overrides_win_over_the_file(manager: PluginManager) -> None:
    suite = load_suite(tiny_suite(batch_size=64, cpu_batch_size=8), manager, overrides={"batch_size": 4, "cpu_batch_size": None})
    assert {(b.batch_size, b.cpu_batch_size) for b in suite.benchmarks} == {(4, None)}


def test_only_selects_benchmarks_and_rejects_unknown_names(manager: PluginManager) -> None:
    assert [b.name for b in load_suite(tiny_suite(), manager, only=["std"]).benchmarks] == ["std"]
    suite = load_suite(tiny_suite(), manager, only=["sep"])  # its baseline comes along, with a note
    assert [b.name for b in suite.benchmarks] == ["std", "sep"]
    assert suite.notes == ("baseline 'std' also runs, for the ratio columns of 'sep' (--only)",)
    assert problems_of(tiny_suite(), manager, only=["spe"]) == ["--only 'spe': no such benchmark (did you mean 'sep'?)"]


def test_every_problem_is_reported_at_once_with_suggestions(manager: PluginManager) -> None:
    data = tiny_suite()
    data["benchmark"] = []  # typo of a top-level key
    data["defaults"]["batchsize"] = 4
    data["benchmarks"][0]["model"] = "conv2d"
    data["benchmarks"][1]["metrics"] = ["params", "flop"]
    data["benchmarks"][1]["batch_size"] = "big"
    problems = problems_of(data, manager)
    assert "unknown top-level key 'benchmark' (did you mean 'benchmarks'?)" in problems
    assert "defaults: unknown key 'batchsize' (did you mean 'batch_size'?)" in problems
    joined = "\n".join(problems)
    assert "benchmark 'std' (#1): key 'model': unknown model 'conv2d' (did you mean 'conv'?)" in joined
    assert "benchmark 'sep' (#2): key 'metrics': unknown metric 'flop' (did you mean 'flops'?)" in joined
    assert "benchmark 'sep' (#2): key 'batch_size' must be a positive whole number, got 'big'" in joined
    assert len(problems) == 5


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("batch_size", 0, "must be a positive whole number"),
        ("batch_size", True, "must be a positive whole number"),
        ("input_shape", [3, -1], "must be a list of positive whole numbers"),
        ("device", "gpu", "must be auto, cpu, cuda or cuda:N"),
        ("dtype", "float33", "(did you mean 'float32'?)"),
        ("mode", "training", "must be one of eval, train"),
        ("channels_last", "yes", "must be true or false"),
        ("args", [1, 2], "must be a mapping"),
        ("metrics", 3, "must be a list of names"),
    ],
)
def test_wrong_types_name_the_benchmark_and_key(manager: PluginManager, key: str, value: object, expected: str) -> None:
    data = tiny_suite()
    data["benchmarks"][0][key] = value
    [problem] = problems_of(data, manager)
    assert problem.startswith(f"benchmark 'std' (#1): key '{key}'") and expected in problem


def test_model_arguments_are_checked_against_the_factory(manager: PluginManager) -> None:
    data = tiny_suite()
    data["benchmarks"][0]["args"] = {"in_channel": 8, "out_channels": 8, "kernel_size": 3}
    [unknown, missing] = problems_of(data, manager)
    assert "unknown argument 'in_channel' (did you mean 'in_channels'?)" in unknown
    assert "missing required argument(s): in_channels" in missing


def test_duplicate_names_and_dangling_baselines(manager: PluginManager) -> None:
    data = tiny_suite()
    data["benchmarks"][1]["name"] = "std"
    data["benchmarks"][1]["baseline"] = "stdd"
    problems = problems_of(data, manager)
    assert any("duplicate name, also used by benchmark #1" in p for p in problems)
    assert any("'baseline' names no benchmark of this suite: 'stdd' (did you mean 'std'?)" in p for p in problems)


def test_metric_options_are_checked(manager: PluginManager) -> None:
    data = tiny_suite()
    data["defaults"]["metric_options"] = {"latency": {"min_runz": 3}, "flopz": {}}
    joined = "\n".join(problems_of(data, manager))
    assert "unknown option 'min_runz' (did you mean 'min_runs'?)" in joined
    assert "unknown metric 'flopz' (did you mean 'flops'?)" in joined


def test_missing_input_shape_without_a_default_is_reported(manager: PluginManager, tmp_path: Path) -> None:
    plugin = tmp_path / "noshape.py"
    plugin.write_text(
        "import benchbench, torch\n"
        "@benchbench.hookimpl\n"
        "def benchbench_register_models(register):\n"
        "    register('shapeless', torch.nn.Identity)\n"
    )
    own = PluginManager([str(plugin)])
    [problem] = problems_of({"benchmarks": [{"model": "shapeless"}]}, own)
    assert "key 'input_shape' is needed" in problem


def test_structural_errors(manager: PluginManager) -> None:
    assert "non-empty list" in problems_of({"benchmarks": []}, manager)[0]
    assert "must be a mapping with at least 'model'" in problems_of({"benchmarks": ["conv"]}, manager)[0]
    assert "missing key 'model'" in problems_of({"benchmarks": [{"name": "x"}]}, manager)[0]


def test_file_errors_name_the_file_and_the_line(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not found"):
        read_suite_file(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("benchmarks:\n  - model: conv\n    args: {in_channels: 3\n")
    with pytest.raises(UsageError, match=r"bad.yaml: YAML syntax error at line \d+, column \d+"):
        read_suite_file(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- model: conv\n")
    with pytest.raises(UsageError, match="must be a mapping with a 'benchmarks' list, got list"):
        read_suite_file(listy)


@pytest.mark.parametrize("path", sorted((REPO / "suites").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_suites_are_valid(manager: PluginManager, path: Path) -> None:
    """Valid as files, on any machine: ci.yaml needs valgrind to run, not to be valid (whether
    this machine can run a suite is the next test's question)."""
    suite = load_suite(path, manager, machine=False)
    assert suite.name == path.stem and suite.benchmarks and suite.text


def test_a_valid_suite_this_machine_cannot_run_says_so_apart_from_file_problems(
    manager: PluginManager, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A machine without valgrind (PATH hides it): suites/ci.yaml is valid, and cannot run here."""
    monkeypatch.setenv("PATH", str(tmp_path))  # no valgrind on it
    ci = REPO / "suites" / "ci.yaml"
    assert load_suite(ci, manager, machine=False).benchmarks  # the file alone: valid
    with pytest.raises(UnrunnableSuite) as error:
        load_suite(ci, manager)
    text = str(error.value)
    assert text.startswith(f"{ci} is a valid suite, but this machine cannot run it:\n  - metric 'instructions' cannot run")
    assert "it needs valgrind, which is not installed: apt-get install valgrind" in text
    assert isinstance(error.value, SuiteError) and error.value.exit_code == 2
    assert main(["run", str(ci), "-q", "--no-history", "--out", str(tmp_path / "res")]) == 2
    err = capsys.readouterr().err
    assert "is a valid suite, but this machine cannot run it" in err and "Traceback" not in err
    assert not (tmp_path / "res").exists()  # refused before any work
    # A file with problems lists them, and what this machine lacks after them, marked as such.
    data = read_suite_file(ci).data
    data["benchmarks"][0]["batch_size"] = 0
    problems = problems_of(data, manager)
    assert "key 'batch_size' must be a positive whole number, got 0" in problems[0]
    assert problems[-1].startswith("(and this machine cannot run it) metric 'instructions' cannot run")


@pytest.mark.parametrize("rounds", [0, 1001, 1_000_000_000, True, "5"])
def test_rounds_have_one_bound_in_the_suite_the_api_and_the_command_line(
    manager: PluginManager, tmp_path: Path, capsys: pytest.CaptureFixture[str], rounds: object
) -> None:
    """``rounds: 1000000000`` would run (or spin) for decades: one check, from 1 to 1000, everywhere."""
    [problem] = problems_of({**tiny_suite(), "rounds": rounds}, manager)
    assert problem.startswith(f"key 'rounds' must be a whole number from 1 to {checks.MAX_ROUNDS}, got {rounds!r}")
    assert "1000 rounds already take over 20 minutes a benchmark" in problem
    with pytest.raises(UsageError, match=f"--rounds must be a whole number from 1 to {checks.MAX_ROUNDS}"):
        benchbench.run_suite(tiny_suite(), rounds=rounds, manager=manager)
    if type(rounds) is int:
        suite = tmp_path / "s.yaml"
        suite.write_text(yaml.safe_dump(tiny_suite()))
        assert main(["run", str(suite), "--rounds", str(rounds), "--no-history"]) == 2
        assert f"argument --rounds: must be a whole number from 1 to {checks.MAX_ROUNDS}" in capsys.readouterr().err
    assert load_suite({**tiny_suite(), "rounds": checks.MAX_ROUNDS}, manager).rounds == checks.MAX_ROUNDS


ALIAS_BOMB = "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}' if prev else 'x'] * 10)}]\n"
    for prev, name in zip(["", *"abcdefgh"], "abcdefghi")
) + "benchmarks: *i\n"


def test_an_alias_bomb_is_refused_before_it_is_built(tmp_path: Path) -> None:
    """Nine aliases that each repeat the one before ten times: 10^9 values from 400 bytes of YAML."""
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(ALIAS_BOMB)
    assert len(ALIAS_BOMB) < 500
    with pytest.raises(UsageError, match=r"bomb.yaml: YAML error at line \d+, column \d+: its aliases \(\*name\) expand "
                                         r"to more than 1,000,000 values"):
        read_suite_file(bomb)
    with pytest.raises(UsageError, match="refers to a list or mapping that contains it"):
        parse_suite_text("a: &a [1, *a]\nbenchmarks: []\n", "loop.yaml")
    # aliases within the bound are fine: 10,000 values
    small = "".join(ALIAS_BOMB.splitlines(keepends=True)[:4]) + "benchmarks: [{model: conv, args: {x: *d}}]\n"
    assert len(parse_suite_text(small, "ok.yaml").data["benchmarks"][0]["args"]["x"]) == 10


def test_echoed_input_is_shortened(manager: PluginManager, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A benchmark that is not a mapping (here a list standing for 10^5 values) is shown in a line, not whole."""
    wide = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{n}: &{n} [{', '.join([f'*{p}'] * 10)}]\n" for p, n in zip("abcd", "bcde"))
    data = parse_suite_text(wide + "benchmarks: [*e, {model: conv, args: {in_channels: 3, out_channels: 3, kernel_size: 1},"
                            " name: " + "n" * 5000 + "}]\n", "wide.yaml").data
    problems = problems_of(data, manager)
    assert any(p.startswith("benchmark #1: must be a mapping with at least 'model', got [[[") for p in problems), problems
    assert all(len(p) < 600 for p in problems), [len(p) for p in problems]
    assert "..." in checks.shown("x" * 10_000) and len(checks.shown("x" * 10_000)) <= checks.SHOWN_CHARS
    name = "conv[in_channels=64,kernel_size=3,batch_size=1,dtype=float32]"
    assert checks.shown(name) == repr(name)  # a name of a usual length shows whole


def test_a_merge_key_written_twice_is_an_error_like_any_key() -> None:
    text = "x: &x {batch_size: 2}\ny: &y {batch_size: 4}\nbenchmarks:\n  - {<<: *x, <<: *y, model: conv}\n"
    with pytest.raises(UsageError, match=r"t.yaml: YAML error at line 4, column \d+: merge key '<<' appears twice .*"
                                         r"<<: \[\*first, \*second\]"):
        parse_suite_text(text, "t.yaml")
    merged = parse_suite_text(text.replace("<<: *x, <<: *y", "<<: [*x, *y]"), "t.yaml").data["benchmarks"][0]
    assert merged["batch_size"] == 2  # the first wins


def test_an_unknown_compile_backend_is_bad_input_before_any_benchmark_runs(
    manager: PluginManager, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tiny_suite(metrics=["params"])
    data["benchmarks"][1]["compile"] = {"backend": "inductr"}
    with pytest.raises(SuiteError) as error:
        load_suite(data, manager)
    [problem] = error.value.problems
    assert problem.startswith("benchmark 'sep': key 'compile': backend 'inductr' is not registered with torch.compile")
    assert "(did you mean 'inductor'?); registered backends: " in problem and "eager" in problem
    assert load_suite(data, manager, machine=False)  # which backends exist is this installation's matter
    suite = tmp_path / "s.yaml"
    data["benchmarks"][1]["compile"] = {"backend": "nosuchbackend"}
    suite.write_text(yaml.safe_dump(data))
    assert main(["run", str(suite), "-q", "--no-history", "--json", str(tmp_path / "run.json")]) == 2
    err = capsys.readouterr().err
    assert "backend 'nosuchbackend' is not registered" in err and "Traceback" not in err
    assert not (tmp_path / "run.json").exists()  # nothing ran: 'std' did not run first


@pytest.mark.parametrize("where", ["name", "model", "key", "arg"])
def test_text_that_utf8_cannot_encode_is_bad_input(manager: PluginManager, tmp_path: Path, where: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """``"\\ud800"`` in YAML is a lone surrogate: no character, and no run file, history or terminal takes it."""
    line = {"name": '{name: "c\\ud800", model: conv}', "model": '{model: "conv\\ud800"}',
            "key": '{model: conv, "\\udcff": 1}', "arg": '{model: conv, args: {padding_mode: "\\ud800"}}'}[where]
    suite = tmp_path / "s.yaml"
    suite.write_text("defaults: {device: cpu, metrics: [params]}\nbenchmarks:\n  - " + line + "\n")
    problems = problems_of(read_suite_file(suite).data, manager)
    assert any("a lone surrogate, which is no character and cannot be written as UTF-8" in p for p in problems), problems
    assert main(["run", str(suite), "-q", "--no-history", "--json", str(tmp_path / "run.json")]) == 2
    assert "lone surrogate" in capsys.readouterr().err
    assert not (tmp_path / "run.json").exists()


def test_efficiency_suite_states_the_real_configuration(manager: PluginManager) -> None:
    suite = load_suite(REPO / "suites" / "efficiency.yaml", manager)
    by_name = {b.name: b for b in suite.benchmarks}
    standard, separable = by_name["standard_3x3"], by_name["separable_3x3"]
    assert (standard.batch_size, standard.input_shape, standard.args["in_channels"]) == (64, (512, 32, 32), 512)
    assert separable.baseline == "standard_3x3"
    families = {PluginManager().registry.get(ModelEntry, b.model).family for b in suite.benchmarks}
    assert families == {"standard", "depthwise-separable", "dilated", "bottleneck", "inverted-residual", "transposed", "pixel-shuffle"}


def test_a_key_written_twice_is_an_error_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("benchmarks:\n  - model: conv\n    args: {in_channels: 3, out_channels: 4, kernel_size: 3, in_channels: 64}\n")
    with pytest.raises(UsageError, match=r"dup.yaml: YAML error at line 3, column \d+: key 'in_channels' appears twice"):
        read_suite_file(path)


def test_empty_and_absurdly_nested_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing yet\n")
    with pytest.raises(UsageError, match="the file is empty"):
        read_suite_file(empty)
    deep = tmp_path / "deep.yaml"
    deep.write_text("benchmarks: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(UsageError, match="nested too deeply"):
        read_suite_file(deep)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("threads", 65536, "must be a whole number from 1 to 1024"),
        ("threads", 0, "must be a whole number from 1 to 1024"),
        ("seed", 10**23, "must be a whole number from 0 to"),
        ("seed", -1, "must be a whole number from 0 to"),
    ],
)
def test_bounded_numbers(manager: PluginManager, key: str, value: int, expected: str) -> None:
    data = tiny_suite()
    data["benchmarks"][0][key] = value
    [problem] = problems_of(data, manager)
    assert expected in problem


def test_every_problem_at_once_includes_duplicates_and_defaults_once(manager: PluginManager) -> None:
    data = {
        "defaults": {"metrics": ["params", "flop"]},
        "benchmarks": [
            {"model": "conv", "args": {"in_channels": 3, "out_channels": 4, "kernel_size": 1}, "batch_size": -1},
            {"model": "conv", "args": {"in_channels": 3, "out_channels": 4, "kernel_size": 1}},
        ],
    }
    problems = problems_of(data, manager)
    assert problems[0].startswith("defaults: key 'metrics': unknown metric 'flop' (did you mean 'flops'?)")
    assert sum("unknown metric 'flop'" in p for p in problems) == 1
    assert any("benchmark 'conv' (#2): duplicate name, also used by benchmark #1" in p for p in problems)
    assert any("benchmark 'conv' (#1): key 'batch_size' must be a positive whole number" in p for p in problems)


def test_input_shape_problems_name_the_real_cause(manager: PluginManager, tmp_path: Path, plugins: PluginFiles) -> None:
    # args missing in_channels: one problem about args, not a false "no default input shape"
    [problem] = problems_of({"benchmarks": [{"model": "conv", "args": {"out_channels": 4, "kernel_size": 1}}]}, manager)
    assert "missing required argument(s): in_channels" in problem
    plugins.write("weird", """
        import benchbench, torch
        @benchbench.hookimpl
        def benchbench_register_models(register):
            register('weird', torch.nn.Identity, input_shape=lambda args: 'abc')
            register('picky', torch.nn.Identity, input_shape=lambda args: (args['size'],))
    """)
    own = PluginManager(plugins_dir=plugins.path)
    [weird] = problems_of({"benchmarks": [{"model": "weird"}]}, own)
    assert "model 'weird' (plugin 'weird') gave an invalid default input shape" in weird
    [picky] = problems_of({"benchmarks": [{"model": "picky"}]}, own)
    assert "could not derive its input shape from these args (KeyError: 'size')" in picky


def test_sweeps_expand_into_named_benchmarks(manager: PluginManager) -> None:
    suite = load_suite(
        {"defaults": {"device": "cpu"},
         "benchmarks": [{"name": "c", "model": "conv", "args": {"in_channels": 8, "out_channels": 8, "padding": 1},
                         "sweep": {"args.kernel_size": [1, 3], "batch_size": [1, 4]}}]},
        manager,
    )
    assert [b.name for b in suite.benchmarks] == [
        "c[kernel_size=1,batch_size=1]", "c[kernel_size=1,batch_size=4]", "c[kernel_size=3,batch_size=1]", "c[kernel_size=3,batch_size=4]"
    ]
    assert suite.benchmarks[3].args == {"in_channels": 8, "out_channels": 8, "padding": 1, "kernel_size": 3}
    assert suite.benchmarks[3].batch_size == 4


@pytest.mark.parametrize(
    ("sweep", "expected"),
    [
        ({"args.kernel_size": []}, "must be a non-empty list"),
        ({"batchsize": [1]}, "is no suite key (did you mean 'batch_size'?)"),
        ({"metric_options.latency": [1]}, "only args.NAME and dataset_args.NAME"),
        ([1, 2], "must map keys to lists"),
    ],
)
def test_bad_sweeps(manager: PluginManager, sweep: object, expected: str) -> None:
    data = {"benchmarks": [{"model": "conv", "args": {"in_channels": 8, "out_channels": 8, "kernel_size": 3}, "sweep": sweep}]}
    [problem] = problems_of(data, manager)
    assert expected in problem


def test_yaml_anchors_and_merge_keys_build_variants_of_one_benchmark(tmp_path: Path) -> None:
    """suites/modes.yaml writes each variant as `{<<: *base, name: ..., compile: true}`: merged keys may
    be overridden, while a key written twice in one mapping is still an error."""
    from benchbench.errors import UsageError
    from benchbench.suitefile import parse_suite_text

    text = ("benchmarks:\n  - &base {name: a, model: conv, batch_size: 2}\n"
            "  - {<<: *base, name: b, batch_size: 4}\n")
    data = parse_suite_text(text, "t.yaml").data
    assert data["benchmarks"][1] == {"name": "b", "model": "conv", "batch_size": 4}
    with pytest.raises(UsageError, match="key 'name' appears twice"):
        parse_suite_text("benchmarks:\n  - {name: a, name: b}\n", "t.yaml")
