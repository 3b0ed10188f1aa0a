"""Every hook benchbench calls, in one place.

A plugin is any module (or object) with functions named like the hooks below and
decorated with ``@benchbench.hookimpl``. A plugin implements only the hooks it needs,
and may accept only some of a hook's arguments (pluggy passes them by name).

Three kinds of hooks:

* **Configuration hooks**: ``benchbench_addoption(parser)`` adds command-line options to
  ``benchbench run`` and ``benchbench_configure(config)`` sees the run's configuration
  once it is made (pytest's ``pytest_addoption`` and ``pytest_configure``).
* **Registration hooks** (``benchbench_register_*``) are called once when the plugin
  manager is built. Each receives a ``register`` callable; a plugin calls it once per
  thing it provides. Its arguments are the fields of that kind's entry in
  :mod:`benchbench.registry` (``ModelEntry``, ``MetricEntry``...), which checks them. benchbench records which plugin registered what, so that
  ``benchbench list`` can say where a model comes from and a name registered twice is
  an error that names both plugins.
* **Run-lifecycle hooks** (``benchbench_run_start`` ... ``benchbench_run_end``) are
  called while a suite runs, so that a plugin can show progress, stream results
  elsewhere or add to the run file, without the runner knowing about it.

The built-in metrics, reporters and progress display are plugins written on these same
hooks (``benchbench/metrics/``, ``reporters.py``, ``progress.py``, listed in
``benchbench.manager.BUILTIN_PLUGINS``): what they can do, a third party can do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

    from benchbench.config import Config
    from benchbench.results import Record, RunResult
    from benchbench.spec import BenchmarkSpec, Suite

hookspec = pluggy.HookspecMarker("benchbench")


# --------------------------------------------------------------------------- configuration


@hookspec
def benchbench_addoption(parser: argparse._ArgumentGroup) -> None:
    """Add command-line options to ``benchbench run`` (and its ``--help``).

    ``parser`` is an argparse argument group: call ``parser.add_argument("--address",
    metavar="ADDR", help=...)`` as with argparse. Use long names that say whose they are;
    a name benchbench or another plugin already uses is an error. The values reach the run
    as ``config.getoption("address")`` (by argparse ``dest``), in :func:`benchbench_configure`
    and in an executor's ``session.config``; the Python API passes them as
    ``run_suite(..., executor_options={"address": ...})``.
    """


@hookspec
def benchbench_configure(config: Config) -> None:
    """A run's :class:`~benchbench.config.Config` is made, before its suite is loaded.

    Called once per run, by ``benchbench run`` and by :func:`benchbench.run_suite`: a plugin
    reads the options it cares about here (``config.quiet``, ``config.getoption(...)``).
    """


# --------------------------------------------------------------------------- registration


@hookspec
def benchbench_register_models(register: Callable[..., None]) -> None:
    """Register models that suites can name in ``model:``.

    ``register(name, factory, *, family=None, input_shape=None, description=None, **meta)``

    * ``factory(**args)`` returns a ``torch.nn.Module``; ``args`` come from the suite's
      ``args:`` mapping, so torch-style keyword names make suites read naturally.
    * ``input_shape`` is the per-sample input shape used when the suite gives none; it
      may also be a callable ``input_shape(args) -> shape`` for layers whose input
      depends on their arguments (``lambda a: (a["in_channels"], 32, 32)``); ``args``
      then holds every argument of the factory, its defaults filled in.
    * ``family`` groups related models (``standard``, ``depthwise-separable``...); it is a
      field of every record and a column of ``benchbench list models``.
    * ``description`` is the one line ``benchbench list models`` shows.
    * ``meta`` is kept with the entry. One key is understood by the core:
      ``make_input(batch_size, input_shape, device, dtype[, args]) -> Tensor`` for models
      whose input is not a float tensor from ``torch.randn`` (token ids, for instance);
      it receives the suite's ``args`` when it has a parameter of that name. A benchmark
      that names a ``dataset:`` is fed that dataset's samples instead.
    """


@hookspec
def benchbench_register_metrics(register: Callable[..., None]) -> None:
    """Register metrics that suites can list in ``metrics:``.

    ``register(name, measure, *, fields, description=None, ratio_fields=(), options=None,
    formats=None, check_options=None, compare=None, merge_rounds=None, train_options=False,
    needs_dataset=False, exclusive=False, available=None, inline_only=None, applies=None,
    footnotes=None, bars=None, side_by_side=(), plots=None, explain=None)``

    * ``measure(ctx: MeasureContext) -> dict`` returns the metric's result fields. It is
      called once per benchmark with the model already built, on its device, in its mode.
      Raising marks the benchmark ``failed`` but keeps the other metrics' fields.
    * ``fields``: the fields ``measure`` returns that belong in tables; anything else it
      returns (raw samples, per-operator breakdowns) is kept in the run file only.
    * ``ratio_fields``: fields that get a ``<field>_ratio`` column against a baseline row.
    * ``options``: the per-metric options a suite may set under ``metric_options.<name>``,
      with their defaults; unknown option names, and values of another type than the
      default, are rejected when the suite is validated.
    * ``check_options``: optional ``check(options) -> list[str]`` of problems with the
      values (ranges, consistency), called on the defaults updated by the suite's values.
    * ``compare``: the fields ``benchbench compare`` judges, each with how:
      ``{"exact": True}`` (deterministic: any change counts), ``{"samples": "<field of raw
      samples>", "rounds": "<field of samples per round>"}`` (timed: statistics), or ``{}``
      (one value against the threshold); add ``"higher_is_better": True`` for scores,
      ``"budget": True`` for an error that a suite may bound (the suite's ``thresholds:``
      value for the field is then an upper limit on the value itself, not on its change: a
      benchmark over it fails, and compare calls a value that crosses it a regression; the
      field's ``threshold`` is then a factor both ways: 1.0 is "2x worse" and "2x better"),
      ``"threshold": 0.01`` for the field's own default threshold (kept unless the field or
      its metric is named: a blanket ``--threshold`` does not change it), and
      ``"settings": [...]``: the record fields that must be equal in both runs for the
      field to be judged, else it is "not comparable" (default: the model's settings for
      exact fields, the model's and the run's for the others; a metric may add facts it
      records, such as the CPU its count depends on).
    * ``merge_rounds``: optional ``merge(records) -> fields`` that combines this metric's
      fields of one benchmark measured in several rounds (``rounds:``); without it, the
      metric is measured in the first round only.
    * ``train_options``: the suite's ``train:`` and ``seeds:`` keys feed this metric's
      options (``accuracy``); ``needs_dataset``: a benchmark listing it must name ``dataset:``
      (``ctx.dataset`` is then the loaded :class:`~benchbench.data.Dataset`);
      ``exclusive``: it measures time, so an executor that runs benchmarks in parallel
      gives such a benchmark its device (or its cores) to itself.
    * ``available``: optional ``available(device) -> str | None``, called while a suite is
      validated for each benchmark that lists the metric (``device`` as the suite gives it:
      ``auto``, ``cpu``, ``cuda:0``...): a sentence saying why the metric cannot run there
      on this machine (a missing tool and how to install it, the wrong device), or None.
      The suite is then rejected before anything runs (exit code 2), with its other problems.
    * ``inline_only``: a sentence saying why the metric runs only with the inline executor
      (the default: every benchmark in this process), or None. A suite listing it with
      another executor (``--isolate``, ``--executor``, ``executor:``) is rejected before
      anything runs (exit code 2), with this reason.
    * ``applies``: optional ``applies(output) -> str | None``, called with the model's output
      of the dry run on the meta device (shapes and dtypes, no values) for each benchmark that
      lists the metric: a sentence saying why the metric cannot measure this model (numerics:
      "the output holds no floating-point tensor"), or None. The suite is then rejected before
      anything runs (exit code 2); with ``dry_run: false`` the metric finds out when it runs.
    * ``formats``: optional ``{field: callable(value) -> str}`` used by table reporters.

    How the metric's fields are shown is declared here too, so that the core names no
    metric's field and a new metric needs no change elsewhere:

    * ``footnotes``: ``{field: text}``, the sentence printed under any table that shows the
      field as a column (``{"flops": "flops: fvcore's count for ONE sample, ..."}``), in
      column order. The run file keeps them (the run's ``footnotes``): they say how *that*
      run was measured, and a report of the file shows them without the plugin.
    * ``bars``: ``{field: title}``, a panel of the report's bar chart of each benchmark
      (the ``bars`` plot, "Cost per benchmark"): ``{"params": "parameters"}``. A panel is
      drawn when a run has the field.
    * ``side_by_side``: the fields ``benchbench report A.json B.json`` sets side by side,
      each later run with its ratio to the first (``["latency_ms"]``).
    * ``plots``: ``{name: {"draw": draw, "heading": ..., "alt": ..., "explanation": ...,
      "needs": ...}}``, plots of the HTML report and of ``RunResult.plot(name)``.
      ``draw(runs, labels)`` gets the runs (:class:`~benchbench.results.RunResult`) and
      their short names, and returns a matplotlib ``Figure``, or None when the runs have
      nothing to draw (import matplotlib inside it: loading a plugin stays cheap);
      ``heading`` titles the plot's section of the page; ``alt`` (default: the heading) is
      the image's text; ``explanation`` is the sentence under the heading (plain text; a
      word in backquotes is shown as code); ``needs`` what a run must have for it, said by
      ``RunResult.plot`` when there is nothing to draw (default: "a benchmark measured
      with the NAME metric"). The page shows ``bars`` first, then the field sets' plots
      (:func:`benchbench_register_fields`), then the metrics', in plugin order. A plot name
      is one namespace across plugins (``bars`` is the core's): declared twice is an error.
    * ``explain``: ``{name: {"explain": explain, "heading": ..., "explanation": ...,
      "needs": ...}}``, breakdown tables: ``benchbench report RUN.json --explain NAME``
      prints one (``--format csv``/``json`` for the raw rows), and the HTML page shows each
      that has rows, after the comparison. ``explain(runs, labels)`` returns a
      :class:`~benchbench.reporters.Breakdown` (raw rows, and a table of them formatted,
      with its title and notes); no rows means nothing to explain, and ``needs`` says
      what is missing (``--explain`` then exits 2).

    ``footnotes``, ``bars`` and ``side_by_side`` may name only the metric's ``fields``.
    A report or a notebook takes the formats, bars, plots and breakdowns from the plugins
    loaded where it is made (``benchbench report -p MODULE`` as ``run`` does), since
    they are code; a run file from before footnotes were stored gets those from them too.
    """


@hookspec
def benchbench_register_fields(register: Callable[..., None]) -> None:
    """Declare fields that a :func:`benchbench_derive_fields` implementation adds, by name.

    ``register(name, *, fields, description=None, formats=None, footnotes=None, bars=None,
    side_by_side=(), plots=None, explain=None)``

    ``name`` names the set (``benchbench list fields`` shows each field with it); ``fields``
    are the fields the plugin derives, in column order; the other arguments are those of
    :func:`benchbench_register_metrics`, meaning the same. A declared field is a valid
    ``--columns`` name and gets its footnote under the table; a field derived without a
    declaration still joins the table, as before. The built-in ``benchbench.derived``
    plugin declares ``achieved_gflops``, ``arithmetic_intensity``, ``peak_precision`` and
    ``peak_fraction`` so, with the report's ``scatter`` (latency against FLOPs) and
    ``roofline`` plots::

        register("roofline", fields=["achieved_gflops", "arithmetic_intensity"],
                 footnotes={"achieved_gflops": "achieved_gflops: 2 x flops x batch / latency ..."},
                 plots={"roofline": {"draw": draw_roofline, "heading": "Roofline"}})
    """


@hookspec
def benchbench_register_datasets(register: Callable[..., None]) -> None:
    """Register datasets, for metrics that train and evaluate a model (accuracy).

    ``register(name, loader, *, task="classification", description=None, **meta)``;
    ``loader(**args)`` (args from the suite's ``dataset_args:``) returns a
    :class:`benchbench.data.Dataset` of tensors. Two ``meta`` keys are understood:
    ``input_shape`` (a shape, or a callable of the args) is the default ``input_shape`` of
    benchmarks using the dataset, and ``check(**args) -> str | None`` is a cheap test run
    while the suite is validated (a missing download folder is bad input, exit code 2,
    before anything runs). Both receive every argument of the loader, its defaults filled
    in, so the defaults are written once, in the loader's signature.
    """


@hookspec
def benchbench_register_reporters(register: Callable[..., None]) -> None:
    """Register reporters: ways to render a finished run (``--format NAME``).

    ``register(name, render, *, description=None)`` where
    ``render(run: RunResult, options: dict) -> str`` returns the text to print.
    """


@hookspec
def benchbench_register_executors(register: Callable[..., None]) -> None:
    """Register executors: where the benchmarks of a run execute (``--executor NAME``).

    ``register(name, factory, *, description=None)``; ``factory()`` returns an object
    with ``run(jobs, session) -> Iterator[(job, record)]`` (see
    :mod:`benchbench.executors`, whose ``inline`` and ``subprocess`` executors are
    registered through this hook). An executor may run jobs anywhere and in any order:
    it calls ``session.started(job)`` when one starts, and gets a record either from
    ``session.run_here(job)`` in this process or by running
    ``python -m benchbench.worker`` elsewhere; ``session.failed(job, error)`` makes the
    record of a job that produced none.
    """


# --------------------------------------------------------------------------- run lifecycle


@hookspec
def benchbench_run_start(suite: Suite, benchmarks: list[BenchmarkSpec], rounds: dict[str, int]) -> None:
    """A suite is about to run ``benchmarks`` (already validated and expanded).

    ``rounds``: how many rounds each benchmark that runs now will run, by name: the suite's
    ``rounds`` for one whose metrics pool rounds (latency), 1 for one whose metrics do not
    (params, FLOPs: measured once). A benchmark a resumed run had already finished is not
    in it. Their sum is the number of :func:`benchbench_benchmark_start` calls to expect (fewer
    when a benchmark fails or is skipped: it runs no more rounds).
    """


@hookspec
def benchbench_benchmark_start(benchmark: BenchmarkSpec, index: int, total: int, round: int, rounds: int) -> None:
    """Benchmark number ``index`` (0-based) of ``total`` is starting its round ``round`` (0-based)
    of ``rounds`` (this benchmark's own: 1 for one measured once, whatever the suite's ``rounds``)."""


@hookspec
def benchbench_benchmark_progress(benchmark: BenchmarkSpec, message: str) -> None:
    """A metric reports progress of long work (``ctx.report``: a training epoch and its loss)."""


@hookspec
def benchbench_result_ready(record: Record, index: int, total: int) -> None:
    """A benchmark finished all its rounds (``record["status"]`` says how); its record is final."""


@hookspec
def benchbench_derive_fields(record: Record, environment: dict[str, Any]) -> dict[str, Any] | None:
    """Return fields computed from a finished ``ok`` record's other fields, or None.

    Called once per record when the run ends (after ratios), with the run's environment.
    The returned fields join the record and, in first-seen order, the table's columns;
    ``warnings`` (a list of strings) is added to the record's warnings instead. Declare the
    fields with :func:`benchbench_register_fields` to give them footnotes, formats, plots
    and a place in ``--columns``.
    The built-in ``benchbench.derived`` plugin adds achieved GFLOP/s, an arithmetic
    intensity estimate and the fraction of the device's measured peak.
    """


@hookspec
def benchbench_run_end(run: RunResult) -> None:
    """The run finished (or was interrupted: ``run.complete`` is then False)."""


@hookspec
def benchbench_environment() -> dict[str, Any] | None:
    """Return extra facts to store in the run file's ``environment`` (merged by key)."""
