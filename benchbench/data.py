"""What a dataset plugin returns: tensors split into train and test, and the task.

A dataset is registered with ``benchbench_register_datasets`` as
``register(name, loader, *, task, description, check=None, **meta)``; ``loader(**args)``
returns a :class:`Dataset`. Keeping everything as tensors in memory is deliberate: the
datasets benchbench trains on (digits, synthetic series, CIFAR-10, IMDB) fit, and a
tensor is what every model, metric and augmentation understands.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

CLASSIFICATION, REGRESSION = "classification", "regression"


@dataclass
class Dataset:
    """Train and test splits as tensors (inputs first, targets second)."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    task: str = CLASSIFICATION
    """``classification`` (targets are class indices: the score is accuracy) or
    ``regression`` (targets are tensors: the score is RMSE, with MAE beside it)."""
    num_classes: int | None = None
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None
    """The dataset's "standard augmentation" for ``recipe: augment`` (a batch in, a batch
    out): random crops and flips for photos, shifts for digits, jitter for series."""
    name: str = ""
    info: dict[str, Any] | None = None
    """Facts for the run file (sizes, vocabulary, generator parameters...)."""

    def __post_init__(self) -> None:
        if self.task not in (CLASSIFICATION, REGRESSION):
            raise ValueError(f"dataset task must be {CLASSIFICATION} or {REGRESSION}, got {self.task!r}")
        for split, x, y in (("train", self.train_x, self.train_y), ("test", self.test_x, self.test_y)):
            if len(x) != len(y) or len(x) == 0:
                raise ValueError(f"{split} split: {len(x)} inputs for {len(y)} targets (need the same, above 0)")
        if self.task == CLASSIFICATION and self.num_classes is None:
            self.num_classes = int(max(self.train_y.max(), self.test_y.max())) + 1

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one input sample: the default ``input_shape`` of its benchmarks."""
        return tuple(self.train_x.shape[1:])

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name, "task": self.task, "train": len(self.train_x), "test": len(self.test_x),
            "input_shape": list(self.input_shape), "num_classes": self.num_classes, **(self.info or {}),
        }


def split(x: torch.Tensor, y: torch.Tensor, test_fraction: float, seed: int, *, stratify: bool) -> tuple[torch.Tensor, ...]:
    """A seeded train/test split (stratified by class when asked): train_x, train_y, test_x, test_y."""
    generator = torch.Generator().manual_seed(seed)
    if stratify:
        test_idx = []
        for label in torch.unique(y):
            members = torch.nonzero(y == label).flatten()
            members = members[torch.randperm(len(members), generator=generator)]
            test_idx.append(members[: max(1, round(len(members) * test_fraction))])
        test = torch.cat(test_idx)
    else:
        order = torch.randperm(len(x), generator=generator)
        test = order[: max(1, round(len(x) * test_fraction))]
    mask = torch.ones(len(x), dtype=torch.bool)
    mask[test] = False
    return x[mask], y[mask], x[~mask], y[~mask]
