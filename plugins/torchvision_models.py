"""Every torchvision classification model, under its torchvision name (``resnet18``, ...).

Each is built as the architecture of its published weights (``DEFAULT``), with random
initialisation (``weights=None``: nothing is downloaded; params, FLOPs, latency and
memory do not depend on the weights' values), so its parameter count is the published
``num_params``:

* the default input is the published weights' crop size (``weights.transforms()``):
  224 for most, 299 for inception_v3, 600 for efficientnet_b7, 518 for vit_h_14...;
* vision transformers get the ``image_size`` their weights were trained at (vit_h_14's
  positional embedding is sized for 518x518);
* googlenet is built without its auxiliary heads (``aux_logits=False``), as the
  published weights are; inception_v3 keeps them, as its weights do.

Suite ``args`` go to torchvision's builder and win over these (``num_classes``,
``aux_logits``...). torchvision is imported only when a model is built, or once per
torchvision version to read the catalogue of names and sizes (cached in
``$BENCHBENCH_CACHE``, ``~/.cache/benchbench`` by default): ``benchbench list`` does
not pay for importing it.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
from functools import cache, partial
from pathlib import Path
from typing import Any

import benchbench

CATALOGUE_FORMAT = 1


def build(name: str, defaults: dict[str, Any], **kwargs: Any) -> Any:
    """``torchvision.models.get_model(name, weights=None, **defaults, **kwargs)``."""
    import torchvision

    return torchvision.models.get_model(name, weights=None, **{**defaults, **kwargs})


def published_architecture(name: str, weights: Any) -> dict[str, Any]:
    """The builder arguments that make ``weights=None`` build what the published weights load into."""
    if name == "googlenet":
        return {"aux_logits": False}  # torchvision drops the auxiliary heads when it loads weights
    if name.startswith("vit_"):
        return {"image_size": int(weights.meta["min_size"][0])}
    return {}


def read_catalogue() -> dict[str, dict[str, Any]]:
    """name -> {input_side, defaults, num_params, gflops} for every classification model (imports torchvision)."""
    import torchvision
    from torchvision.models import get_model_weights, list_models

    catalogue = {}
    for name in list_models(module=torchvision.models):
        weights = get_model_weights(name).DEFAULT
        crop = getattr(weights.transforms(), "crop_size", None) or [224]
        catalogue[name] = {
            "input_side": int(crop[0]),
            "defaults": published_architecture(name, weights),
            "num_params": weights.meta.get("num_params"),
            "gflops": weights.meta.get("_ops"),
            "weights": str(weights),
        }
    return catalogue


@cache
def catalogue() -> dict[str, dict[str, Any]]:
    """The catalogue of the installed torchvision, from the cache file when it has it."""
    try:
        version = importlib.metadata.version("torchvision")
    except importlib.metadata.PackageNotFoundError:
        version = None
    path = Path(os.environ.get("BENCHBENCH_CACHE") or Path.home() / ".cache" / "benchbench") / f"torchvision-{version}.json"
    if version is not None:
        try:
            stored = json.loads(path.read_text())
            if stored.get("format") == CATALOGUE_FORMAT:
                return stored["models"]
        except (OSError, ValueError, KeyError, AttributeError):
            pass
    models = read_catalogue()
    if version is not None:
        try:  # best effort: a read-only home only costs the import next time
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"format": CATALOGUE_FORMAT, "models": models}))
            os.replace(tmp, path)
        except OSError:
            pass
    return models


@benchbench.hookimpl
def benchbench_register_models(register: Any) -> None:
    for name, entry in catalogue().items():
        side = entry["input_side"]
        factory = partial(build, name, entry["defaults"])
        factory.__doc__ = f"torchvision.models.{name}(weights=None, **args)"
        shown = ", ".join(f"{k}={v}" for k, v in entry["defaults"].items())
        register(name, factory, family="torchvision", input_shape=(3, side, side),
                 description=f"torchvision {name} (weights=None{', ' + shown if shown else ''}), {side}x{side} input",
                 published_params=entry["num_params"], published_gflops=entry["gflops"])
