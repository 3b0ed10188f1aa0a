"""The plugin manager: built-ins, entry points, -p, --plugins-dir, clashes and failures."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchbench.errors import PluginError
from benchbench.manager import AUTOLOAD_ENV, BUILTIN_PLUGINS, PluginManager
from benchbench.registry import MetricEntry, ModelEntry, ReporterEntry
from tests.helpers import PluginFiles, fake_distribution, write_plugin


def test_builtins_register_the_four_cost_metrics_and_reporters() -> None:
    manager = PluginManager(autoload=False)
    registry = manager.registry
    assert {"params", "flops", "latency", "memory"} <= set(registry.names(MetricEntry))
    assert {"table", "csv", "json"} <= set(registry.names(ReporterEntry))
    assert all(registry.get(MetricEntry, m).plugin.startswith("benchbench.metrics.") for m in ("params", "flops"))
    assert [p.name for p in manager.plugins] == list(BUILTIN_PLUGINS)


def test_first_party_layers_load_through_the_entry_point_group() -> None:
    models = PluginManager().registry.table(ModelEntry)
    assert models["conv"].plugin == "layers"
    assert models["conv"].family == "standard"


def test_autoload_env_var_leaves_entry_points_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(AUTOLOAD_ENV, "1")
    manager = PluginManager()
    assert "conv" not in manager.registry.names(ModelEntry)
    message = manager.unknown(ModelEntry, "conv")
    assert AUTOLOAD_ENV in message and "-p" in message
    # ... and -p brings the first-party plugin back explicitly
    assert "conv" in PluginManager(["benchbench_plugins.layers"]).registry.names(ModelEntry)


def test_third_party_entry_point_from_an_installed_distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_plugin(tmp_path, "acme_models", prefix="acme_")
    fake_distribution(tmp_path, "acme-bench", {"acme": "acme_models"}, version="2.3")
    monkeypatch.syspath_prepend(str(tmp_path))
    manager = PluginManager()
    entry = manager.registry.get(ModelEntry, "acme_scale")
    assert entry.plugin == "acme" and entry.family == "toy"
    info = next(p for p in manager.plugins if p.name == "acme")
    assert (info.source, info.distribution, info.version) == ("entry point", "acme-bench", "2.3")


def test_plugin_that_fails_to_import_is_reported_and_the_rest_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "broken_plugin.py").write_text("import not_a_real_module_xyz\n")
    write_plugin(tmp_path, "good_plugin", prefix="good_")
    fake_distribution(tmp_path, "broken-dist", {"broken": "broken_plugin"})
    fake_distribution(tmp_path, "good-dist", {"good": "good_plugin"})
    monkeypatch.syspath_prepend(str(tmp_path))
    manager = PluginManager()
    assert "good_scale" in manager.registry.names(ModelEntry)
    [failure] = manager.failures
    assert failure.name == "broken" and failure.distribution == "broken-dist"
    assert "not_a_real_module_xyz" in failure.error
    # when a suite needs something that plugin might have provided, the error says why it is missing
    assert "broken" in manager.unknown(ModelEntry, "broken_model")


def test_same_model_name_from_two_plugins_is_an_error_naming_both(tmp_path: Path) -> None:
    write_plugin(tmp_path, "first", prefix="dup_")
    write_plugin(tmp_path / "other", "second", prefix="dup_")
    with pytest.raises(PluginError) as error:  # when the manager is made: the registry is built at once
        PluginManager([str(tmp_path / "first.py"), str(tmp_path / "other" / "second.py")], autoload=False)
    message = str(error.value)
    assert "'dup_scale'" in message and "first.py" in message and "second.py" in message


def test_clash_with_a_first_party_name_is_an_error(tmp_path: Path, plugins: PluginFiles) -> None:
    plugins.write("mine", """
        import benchbench, torch
        @benchbench.hookimpl
        def benchbench_register_models(register):
            register('conv', torch.nn.Identity)
    """)
    with pytest.raises(PluginError, match=r"'conv' is registered twice: by plugin 'layers' and by plugin 'mine'"):
        _ = PluginManager(plugins_dir=plugins.path).registry  # reading the registry loads the plugins


def test_dash_p_accepts_module_names_and_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_plugin(tmp_path, "by_name", prefix="n_")
    write_plugin(tmp_path / "files", "by_file", prefix="f_")
    monkeypatch.syspath_prepend(str(tmp_path))
    manager = PluginManager(["by_name", str(tmp_path / "files" / "by_file.py")], autoload=False)
    assert {"n_scale", "f_scale"} <= set(manager.registry.names(ModelEntry))
    assert manager.registry.get(ModelEntry, "n_scale").plugin == "by_name"


def test_dash_p_that_cannot_import_is_a_usage_error() -> None:
    with pytest.raises(PluginError, match="could not import plugin 'no_such_plugin_mod'"):
        PluginManager(["no_such_plugin_mod"], autoload=False)


def test_dash_p_naming_an_autoloaded_plugin_is_not_a_clash() -> None:
    manager = PluginManager(["benchbench_plugins.layers"])
    assert manager.registry.get(ModelEntry, "conv").plugin == "layers"


def test_plugins_dir_loads_every_py_file_and_reports_broken_ones(tmp_path: Path) -> None:
    write_plugin(tmp_path, "alpha", prefix="a_")
    (tmp_path / "beta.py").write_text("raise ValueError('beta is broken')\n")
    (tmp_path / "_private.py").write_text("raise AssertionError('never imported')\n")
    manager = PluginManager(plugins_dir=tmp_path, autoload=False)
    assert "a_scale" in manager.registry.names(ModelEntry)
    assert [(f.name, f.source) for f in manager.failures] == [("beta", "plugins-dir")]
    assert "ValueError: beta is broken" in manager.failures[0].error


def test_plugins_dir_must_exist(tmp_path: Path) -> None:
    with pytest.raises(PluginError, match="is not a folder"):
        PluginManager(plugins_dir=tmp_path / "nope", autoload=False)


def test_registration_hook_that_raises_leaves_that_plugin_out(tmp_path: Path, plugins: PluginFiles) -> None:
    plugins.copy("toys", name="good", prefix="g_")
    plugins.write("oops", """
        import benchbench, torch
        @benchbench.hookimpl
        def benchbench_register_models(register):
            register('half_done', torch.nn.Identity)
        @benchbench.hookimpl
        def benchbench_register_metrics(register):
            raise KeyError('boom')
        @benchbench.hookimpl
        def benchbench_run_start(suite, benchmarks):
            raise AssertionError('a failed plugin must not run')
    """)
    manager = PluginManager(plugins_dir=plugins.path, autoload=False)
    names = manager.registry.names(ModelEntry)
    assert "g_scale" in names and "half_done" not in names  # none of the failed plugin's entries
    [failure] = manager.failures
    assert failure.name == "oops" and "raised in benchbench_register_metrics: KeyError: 'boom'" in failure.error
    assert "oops" not in [p.name for p in manager.plugins]
    manager.pm.unregister(name="benchbench.progress")
    manager.hook.benchbench_run_start(suite=None, benchmarks=[], rounds={})  # its lifecycle hooks are gone too
    # named explicitly with -p, the same plugin is an error
    with pytest.raises(PluginError, match=r"plugin '.*oops.py' raised in benchbench_register_metrics: KeyError"):
        _ = PluginManager([str(plugins.path / "oops.py")], autoload=False).registry


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("@benchbench.hookimpl\ndef benchbench_register_model(register):\n    pass\n",
         "benchbench_register_model is not a benchbench hook (did you mean 'benchbench_register_models'?)"),
        ("def benchbench_register_models(register):\n    pass\n",
         "benchbench_register_models lacks the @benchbench.hookimpl decorator"),
        ("@benchbench.hookimpl\ndef benchbench_register_models(reg):\n    pass\n",
         "Argument(s) {'reg'} are declared in the hookimpl but can not be found in the hookspec"),
    ],
    ids=["misspelled", "undecorated", "wrong-argument"],
)
def test_hooks_that_would_be_ignored_are_errors(tmp_path: Path, source: str, expected: str) -> None:
    (tmp_path / "mistake.py").write_text("import benchbench\n" + source)
    with pytest.raises(PluginError) as error:
        PluginManager([str(tmp_path / "mistake.py")], autoload=False)
    assert expected in str(error.value) and "mistake" in str(error.value)
    manager = PluginManager(plugins_dir=tmp_path, autoload=False)  # discovered: reported, not fatal
    assert [f.name for f in manager.failures] == ["mistake"] and expected in manager.failures[0].error


def test_dash_p_finds_modules_in_the_current_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_plugin(tmp_path, "here_blocks", prefix="here_")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.path", [p for p in __import__("sys").path if p not in ("", str(tmp_path))])
    assert "here_scale" in PluginManager(["here_blocks"], autoload=False).registry.names(ModelEntry)


def test_dash_p_errors_say_what_went_wrong(tmp_path: Path) -> None:
    (tmp_path / "syntax.py").write_text("def broken(:\n")
    with pytest.raises(PluginError, match=r"failed to import: SyntaxError") as error:
        PluginManager([str(tmp_path / "syntax.py")], autoload=False)
    assert "PYTHONPATH" not in str(error.value)
    with pytest.raises(PluginError, match="no module named 'nope_not_here'"):
        PluginManager(["nope_not_here"], autoload=False)


def test_the_same_file_named_twice_is_loaded_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_plugin(tmp_path, "twice", prefix="t_")
    monkeypatch.chdir(tmp_path)
    manager = PluginManager(["twice.py", "./twice.py", str(tmp_path / "twice.py")], autoload=False)
    assert manager.registry.names(ModelEntry).count("t_scale") == 1


def test_one_file_through_dash_p_and_plugins_dir_is_one_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_plugin(tmp_path, "my_blocks", prefix="mb_")
    monkeypatch.chdir(tmp_path)
    for named in ("my_blocks", str(tmp_path / "my_blocks.py")):
        manager = PluginManager([named], plugins_dir=tmp_path, autoload=False)
        assert manager.registry.get(ModelEntry, "mb_scale").plugin == named
        assert not manager.failures and "None" not in str([p.name for p in manager.plugins])


def test_two_different_plugins_of_one_name_are_told_apart_by_where_they_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_plugin(tmp_path / "a", "blocks", prefix="a_")
    write_plugin(tmp_path / "b", "blocks", prefix="b_")
    monkeypatch.syspath_prepend(str(tmp_path / "a"))
    manager = PluginManager(["blocks"], plugins_dir=tmp_path / "b", autoload=False)
    assert manager.registry.get(ModelEntry, "a_scale").plugin == "blocks"
    assert manager.registry.get(ModelEntry, "b_scale").plugin == "plugins-dir:blocks"


def test_an_unknown_name_with_no_close_match_says_where_plugins_come_from() -> None:
    message = PluginManager().unknown(ModelEntry, "squeeze_excite")
    assert "did you mean" not in message  # 'squeezenet1_1' only shares a prefix
    assert "no loaded plugin registers a model of that name" in message and "-p MODULE" in message
    assert "did you mean 'depthwise_separable'" in PluginManager().unknown(ModelEntry, "depthwise_seperable")


def test_dash_p_no_blocks_a_plugin_before_it_is_imported(tmp_path: Path) -> None:
    (tmp_path / "bomb.py").write_text("raise RuntimeError('imported although blocked')\n")
    manager = PluginManager(["no:progress", "no:bomb"], plugins_dir=tmp_path)
    assert manager.pm.get_plugin("benchbench.progress") is None and not manager.failures
    assert {info.name for info in manager.blocked} == {"benchbench.progress", "bomb"}
    layers_off = PluginManager(["no:layers"])
    assert not layers_off.registry.has(ModelEntry, "conv")
    assert "blocked with -p no:NAME: layers" in layers_off.unknown(ModelEntry, "conv")
    with pytest.raises(PluginError, match=r"-p no:layres: no plugin of that name is loaded \(did you mean 'layers'\?\)"):
        PluginManager(["no:layres"])


def test_a_plugin_whose_registration_raises_is_reported_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, plugins: PluginFiles) -> None:
    """The registry is built with the manager, so the CLI's warning about it always comes out."""
    plugins.write("oops", """
        import benchbench
        @benchbench.hookimpl
        def benchbench_register_models(register):
            raise KeyError('x')
    """)
    manager = PluginManager(plugins_dir=plugins.path, autoload=False)
    assert [f.name for f in manager.failures] == ["oops"] and "KeyError" in manager.failures[0].error


TINY_SUITE = """
name: tiny
defaults: {device: cpu, batch_size: 1, metrics: [params]}
benchmarks:
  - {name: c, model: conv, args: {in_channels: 3, out_channels: 4, kernel_size: 3}, input_shape: [3, 8, 8]}
"""


@pytest.mark.parametrize(("block", "module", "why"), [
    ("reporters", "benchbench.reporters", "reporters a run prints its results with"),
    ("benchbench.reporters", "benchbench.reporters", "--format NAME"),
    ("executors", "benchbench.executors", "the default executor 'inline'"),
])
def test_an_essential_builtin_cannot_be_blocked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], block: str, module: str, why: str
) -> None:
    """Without the reporters a run ended in an internal error after its work; without the executors
    it was refused as an 'unknown executor inline'. Both are refused first, saying what they do."""
    from benchbench.cli import main

    with pytest.raises(PluginError, match=rf"-p no:{block}: the built-in plugin '{module}' cannot be blocked: .*{why}"):
        PluginManager([f"no:{block}"], autoload=False)
    (tmp_path / "tiny.yaml").write_text(TINY_SUITE)
    assert main(["run", "tiny.yaml", "-p", f"no:{block}", "--out", "out"]) == 2
    err = capsys.readouterr().err
    assert "cannot be blocked: it" in err and "internal error" not in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()  # refused before any work


def test_optional_builtins_can_still_be_blocked(tmp_path: Path) -> None:
    from benchbench.cli import main

    (tmp_path / "tiny.yaml").write_text(TINY_SUITE)
    assert main(["run", "tiny.yaml", "-p", "no:derived", "-p", "no:progress", "-p", "no:latency", "--out", "out", "-q"]) == 0
    assert {info.name for info in PluginManager(["no:derived"], autoload=False).blocked} == {"benchbench.derived"}
