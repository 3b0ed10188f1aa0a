"""``accuracy``: train the model with a recipe, then score it on the held-out split.

The benchmark names its ``dataset:`` and its ``train:`` recipe (the options below;
``train:`` is shorthand for ``metric_options: {accuracy: ...}``). For each seed (``seeds:
[0, 1, 2]``, else the benchmark's ``seed``) a fresh model is built, trained for
``epochs`` on the train split and evaluated after every epoch on the test split.

* classification: ``accuracy`` (fraction of the test split classified right);
* regression: ``rmse`` (the score, lower is better) and ``mae``.

With several seeds the fields are the mean, with ``<field>_std`` (sample standard
deviation) and ``<field>_per_seed``. The run file keeps the per-epoch curves
(``train_loss_curve``, ``test_score_curve``: one list per seed), ``final_loss`` and
``train_time_s``. A model benchmarked in float16 or bfloat16 trains with float32 master
weights under ``torch.autocast`` (pure half-precision training diverges); a loss that
stops being finite fails the metric. Recipes: ``none``; ``augment`` (the dataset's own standard
augmentation, e.g. random crop + flip + colour jitter for CIFAR-10); ``mixup`` (Zhang et
al., 2018: inputs and losses mixed with a Beta(``mixup_alpha``, ``mixup_alpha``) weight).
"""

from __future__ import annotations

import contextlib
import math
import statistics
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

import benchbench
from benchbench.context import MeasureContext
from benchbench.data import CLASSIFICATION, Dataset
from benchbench.plots import finished

LOW_PRECISION = (torch.float16, torch.bfloat16)
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("cosine", "step", "none")
RECIPES = ("none", "augment", "mixup")
OPTIONS: dict[str, Any] = {
    "epochs": 5,
    "batch_size": 64,
    "lr": 1e-3,
    "optimizer": "adam",
    "momentum": 0.9,
    "weight_decay": 0.0,
    "schedule": "cosine",
    "recipe": "none",
    "mixup_alpha": 0.2,
    "seeds": None,
    "eval_batch_size": 512,
}


def check_options(options: dict[str, Any]) -> list[str]:
    problems = [f"{k} must be at least 1, got {options[k]}" for k in ("epochs", "batch_size", "eval_batch_size") if options[k] < 1]
    problems += [f"{k} must be above 0, got {options[k]}" for k in ("lr", "mixup_alpha") if options[k] <= 0]
    if options["weight_decay"] < 0 or not 0 <= options["momentum"] < 1:
        problems.append("weight_decay must be 0 or more and momentum from 0 to below 1")
    for key, choices in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES), ("recipe", RECIPES)):
        if options[key] not in choices:
            problems.append(f"{key} must be one of {', '.join(choices)}, got {options[key]!r}")
    seeds = options["seeds"]
    if seeds is not None and (
        not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
    ):
        problems.append(f"seeds must be a non-empty list of whole numbers 0 or more, got {seeds!r}")
    return problems


def measure(ctx: MeasureContext) -> dict[str, Any]:
    data: Dataset | None = ctx.dataset
    if data is None:
        raise ValueError("the accuracy metric needs a dataset: name one with 'dataset:' in the benchmark")
    if ctx.build_model is None:
        raise ValueError("the accuracy metric needs ctx.build_model to train fresh models")
    opts = ctx.options
    seeds = opts["seeds"] or [ctx.benchmark.seed]
    runs = [train_and_evaluate(ctx, data, opts, seed, which=(i, len(seeds))) for i, seed in enumerate(seeds)]
    names = ("accuracy",) if data.task == CLASSIFICATION else ("rmse", "mae")
    fields: dict[str, Any] = {}
    for name in names:
        values = [r[name] for r in runs]
        fields[name] = statistics.fmean(values)
        if len(values) > 1:
            fields[f"{name}_std"] = statistics.stdev(values)
            fields[f"{name}_per_seed"] = values
    fields.update(
        train_time_s=statistics.fmean(r["train_time_s"] for r in runs),
        final_loss=statistics.fmean(r["final_loss"] for r in runs),
        train_loss_curve=[r["train_loss_curve"] for r in runs],
        test_score_curve=[r["test_score_curve"] for r in runs],
        seeds=seeds,
        dataset_summary=data.summary(),
        train_recipe={k: opts[k] for k in OPTIONS if k != "seeds"},
    )
    return fields


def train_and_evaluate(ctx: MeasureContext, data: Dataset, opts: dict[str, Any], seed: int, which: tuple[int, int]) -> dict[str, Any]:
    """Train one fresh model (seeded) with the recipe; score it after every epoch."""
    assert ctx.build_model is not None
    model = ctx.build_model(seed)
    model.train()
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    autocast: contextlib.AbstractContextManager[Any]
    if dtype in LOW_PRECISION:  # float32 master weights, the low precision through autocast
        model.float()
        autocast = torch.autocast(ctx.device.type, dtype=dtype)
        dtype = torch.float32
    else:
        autocast = contextlib.nullcontext()
    if opts["recipe"] == "mixup" and not data.train_x.is_floating_point():
        raise ValueError(f"recipe mixup mixes inputs, but dataset {data.name!r} has integer inputs (token ids); use none")
    if opts["recipe"] == "augment" and data.augment is None:
        raise ValueError(f"recipe augment: dataset {data.name!r} has no standard augmentation; use none or mixup")
    augment = data.augment if opts["recipe"] == "augment" else None
    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    optimizer = _optimizer(model, opts)
    n = len(data.train_x)
    steps = opts["epochs"] * math.ceil(n / opts["batch_size"])
    scheduler = _scheduler(optimizer, opts, steps)
    classify = data.task == CLASSIFICATION
    loss_fn: nn.Module = nn.CrossEntropyLoss() if classify else nn.MSELoss()
    _check_outputs(model, data, ctx.device, dtype)
    losses: list[float] = []
    scores: list[float] = []
    started = time.perf_counter()
    for epoch in range(opts["epochs"]):
        model.train()
        order = torch.randperm(n, generator=generator)
        total, seen = 0.0, 0
        for start in range(0, n, opts["batch_size"]):
            index = order[start : start + opts["batch_size"]]
            x, y = data.train_x[index], data.train_y[index]
            if augment is not None:
                x = augment(x, generator)
            x, y = _to(x, ctx.device, dtype), _to(y, ctx.device, dtype if not classify else None)
            with autocast:
                if opts["recipe"] == "mixup":
                    lam = float(rng.beta(opts["mixup_alpha"], opts["mixup_alpha"]))
                    partner = torch.randperm(len(x), generator=generator).to(ctx.device)
                    output = model(lam * x + (1 - lam) * x[partner])
                    loss = lam * loss_fn(output.float(), y) + (1 - lam) * loss_fn(output.float(), y[partner])
                else:
                    loss = loss_fn(model(x).float(), y)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"training diverged: the loss is {loss.item()} in epoch {epoch + 1} (seed {seed}); lower lr, or train in float32"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            total += loss.item() * len(x)
            seen += len(x)
        losses.append(total / seen)
        with autocast:
            score = evaluate(model, data, ctx.device, dtype, opts["eval_batch_size"])
        scores.append(score["accuracy"] if classify else score["rmse"])
        label = "accuracy" if classify else "rmse"
        seed_text = f", seed {seed} ({which[0] + 1}/{which[1]})" if which[1] > 1 else ""
        ctx.report(f"epoch {epoch + 1}/{opts['epochs']}{seed_text}: train loss {losses[-1]:.4f}, test {label} {scores[-1]:.4f}")
    train_time = time.perf_counter() - started
    with autocast:
        final = evaluate(model, data, ctx.device, dtype, opts["eval_batch_size"])
    return {**final, "train_time_s": train_time, "final_loss": losses[-1], "train_loss_curve": losses, "test_score_curve": scores}


def evaluate(model: nn.Module, data: Dataset, device: torch.device, dtype: torch.dtype, batch_size: int) -> dict[str, float]:
    """Accuracy (classification) or RMSE and MAE (regression) on the test split."""
    model.eval()
    correct, squared, absolute, count = 0, 0.0, 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(data.test_x), batch_size):
            x = _to(data.test_x[start : start + batch_size], device, dtype)
            y = data.test_y[start : start + batch_size].to(device)
            output = model(x)
            if data.task == CLASSIFICATION:
                correct += int((output.argmax(dim=-1) == y).sum())
                count += len(y)
            else:
                diff = output.float() - y.float()
                squared += float((diff**2).sum())
                absolute += float(diff.abs().sum())
                count += diff.numel()
    if data.task == CLASSIFICATION:
        return {"accuracy": correct / count}
    return {"rmse": math.sqrt(squared / count), "mae": absolute / count}


def _check_outputs(model: nn.Module, data: Dataset, device: torch.device, dtype: torch.dtype) -> None:
    """A clear error when the model's output cannot fit the dataset's targets."""
    with torch.no_grad():
        was_training = model.training
        model.eval()
        output = model(_to(data.train_x[:2], device, dtype))
        model.train(was_training)
    if data.task == CLASSIFICATION:
        if output.dim() != 2 or output.shape[-1] < (data.num_classes or 0):
            raise ValueError(
                f"the model outputs shape {list(output.shape[1:])} per sample, but dataset {data.name!r} has "
                f"{data.num_classes} classes: set the model's num_classes to {data.num_classes}"
            )
    elif tuple(output.shape[1:]) != tuple(data.train_y.shape[1:]):
        raise ValueError(
            f"the model outputs shape {list(output.shape[1:])} per sample, but dataset {data.name!r} has targets "
            f"of shape {list(data.train_y.shape[1:])}"
        )


def _to(tensor: torch.Tensor, device: torch.device, dtype: torch.dtype | None) -> torch.Tensor:
    tensor = tensor.to(device)
    return tensor.to(dtype) if dtype is not None and tensor.is_floating_point() else tensor


def _optimizer(model: nn.Module, opts: dict[str, Any]) -> torch.optim.Optimizer:
    params = model.parameters()
    if opts["optimizer"] == "sgd":
        return torch.optim.SGD(params, lr=opts["lr"], momentum=opts["momentum"], weight_decay=opts["weight_decay"])
    cls = torch.optim.AdamW if opts["optimizer"] == "adamw" else torch.optim.Adam
    return cls(params, lr=opts["lr"], weight_decay=opts["weight_decay"])


def _scheduler(optimizer: torch.optim.Optimizer, opts: dict[str, Any], steps: int) -> Any:
    if opts["schedule"] == "cosine":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, steps) / steps)))
    if opts["schedule"] == "step":  # divide by 10 after each third of the training
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, steps // 3), gamma=0.1)
    return None


@benchbench.hookimpl
def benchbench_register_metrics(register: Any) -> None:
    register(
        "accuracy",
        measure,
        fields=["accuracy", "accuracy_std", "rmse", "rmse_std", "mae", "train_time_s"],
        options=OPTIONS,
        check_options=check_options,
        train_options=True,
        needs_dataset=True,
        exclusive=True,  # train_time_s is a time
        compare={"accuracy": {"higher_is_better": True}, "rmse": {}, "mae": {}},
        description="trains with the benchmark's train: recipe on its dataset; test accuracy (or RMSE, MAE)",
        formats={
            "accuracy": lambda v: f"{v:.2%}", "accuracy_std": lambda v: f"{v:.2%}",
            "rmse": lambda v: f"{v:.4f}", "rmse_std": lambda v: f"{v:.4f}", "mae": lambda v: f"{v:.4f}",
            "train_time_s": lambda v: f"{v:.1f} s",
        },
        side_by_side=["accuracy", "rmse"],
        plots={"training": {"draw": draw_training, "heading": "Training curves", "alt": "training curves",
                            "needs": "a benchmark measured with the accuracy metric (training curves)"}},
    )


def draw_training(runs: Sequence[Any], names: list[str]) -> Any:
    """The test score after each epoch of each benchmark's first seed: accuracy for classification
    (left), RMSE for regression (right); None when no benchmark trained."""
    import matplotlib.pyplot as plt

    series = [(r["benchmark"], r["test_score_curve"][0], "accuracy" in r) for run in runs for r in finished(run)
              if isinstance(r.get("test_score_curve"), list) and r["test_score_curve"]]
    if not series:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, curve, classification in series:
        ax = axes[0] if classification else axes[1]
        ax.plot(range(1, len(curve) + 1), curve, marker=".", label=name)
    axes[0].set_title("test accuracy per epoch (classification)", fontsize=9)
    axes[1].set_title("test RMSE per epoch (regression)", fontsize=9)
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
    return fig
