"""Shared fixtures. GPU tests carry ``@pytest.mark.cuda`` and skip without a GPU."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _isolated_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see only the plugins they ask for beyond the installed ones: no env leakage."""
    monkeypatch.delenv("BENCHBENCH_DISABLE_PLUGIN_AUTOLOAD", raising=False)
