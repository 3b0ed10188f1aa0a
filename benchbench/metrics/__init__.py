"""The built-in metrics, each a plugin on ``benchbench_register_metrics``.

They use only what a third-party metric gets: a :class:`~benchbench.context.MeasureContext`
and the ``register`` callable. Each module is loaded by the plugin manager as a built-in
(``benchbench.manager.BUILTIN_PLUGINS``).
"""
