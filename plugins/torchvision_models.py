"""Every torchvision classification model, under its torchvision name (``resnet18``, ...).

Built with ``weights=None`` (random initialisation: nothing is downloaded, and parameter
counts, FLOPs, latency and memory do not depend on the weights' values). Arguments in
the suite go to torchvision's builder (``num_classes``, ``dropout``...). The default
input is 3x224x224 (3x299x299 for ``inception_v3``); models that need a fixed size (the
vision transformers) say so in their errors, which the dry run reports before a run.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import benchbench

INPUT_SIDE = {"inception_v3": 299}


def build(name: str, **kwargs: Any) -> Any:
    """``torchvision.models.get_model(name, weights=None, **kwargs)``."""
    import torchvision

    return torchvision.models.get_model(name, weights=None, **kwargs)


@benchbench.hookimpl
def benchbench_register_models(register: Any) -> None:
    import torchvision

    for name in torchvision.models.list_models(module=torchvision.models):
        side = INPUT_SIDE.get(name, 224)
        factory = partial(build, name)
        factory.__doc__ = f"torchvision.models.{name}(weights=None, **args)"  # type: ignore[attr-defined]
        register(name, factory, family="torchvision", input_shape=(3, side, side),
                 description=f"torchvision {name} (weights=None), {side}x{side} input")
