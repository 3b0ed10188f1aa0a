"""``python -m benchbench`` is the same as the ``benchbench`` command."""

from benchbench.cli import main

raise SystemExit(main())
