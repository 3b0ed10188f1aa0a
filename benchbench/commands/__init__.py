"""One module per command: ``benchbench run`` is :mod:`benchbench.commands.run`, and so on.

Each module has ``add_parser(commands, parents)``, which adds its subcommand to the
argparse parser, and ``main(args, extra) -> ExitCode``, which does the work (``extra``
holds the arguments argparse did not know: options that plugins add to ``run``). Command
modules import what they need (torch, the plugins) inside ``main``, so ``benchbench
--help`` stays fast. :mod:`benchbench.cli` parses, dispatches and turns errors into exit codes.
"""

from __future__ import annotations

from types import ModuleType

from benchbench.commands import ab, bisect, compare, history, listing, peak, report, run

COMMANDS: dict[str, ModuleType] = {
    "run": run,
    "compare": compare,
    "ab": ab,
    "bisect": bisect,
    "report": report,
    "history": history,
    "peak": peak,
    "list": listing,
}
