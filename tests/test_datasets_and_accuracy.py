"""Datasets (plugins/datasets.py, real loaders on tiny generated files) and the accuracy metric."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import benchbench
from benchbench.cli import main
from benchbench.data import Dataset
from benchbench.errors import SuiteError
from benchbench_plugins import datasets
from tests.helpers import PluginFiles

# --------------------------------------------------------------------------- offline datasets


def test_digits_are_real_and_split_stratified() -> None:
    data = datasets.digits()
    assert data.train_x.shape[1:] == (1, 8, 8) and len(data.train_x) + len(data.test_x) == 1797
    assert data.num_classes == 10 and set(data.test_y.tolist()) == set(range(10))
    again = datasets.digits()
    assert torch.equal(data.test_x, again.test_x)  # seeded
    assert not torch.equal(data.test_y, datasets.digits(seed=1).test_y)


def test_synthetic_timeseries_classes_and_determinism() -> None:
    data = datasets.synthetic_timeseries(n_per_class=10, length=32, channels=2, noise=0.0)
    assert data.train_x.shape[1:] == (2, 32) and data.num_classes == 5
    assert torch.bincount(torch.cat([data.train_y, data.test_y])).tolist() == [10] * 5
    assert torch.equal(data.train_x, datasets.synthetic_timeseries(n_per_class=10, length=32, channels=2, noise=0.0).train_x)
    trend = torch.cat([data.train_x, data.test_x])[torch.cat([data.train_y, data.test_y]) == 0]
    assert bool((trend[..., -1] > trend[..., 0]).all())  # class 0 is an upward trend


def test_synthetic_downscaling_is_a_4x_regression() -> None:
    data = datasets.synthetic_downscaling(n=20)
    assert data.task == "regression" and data.train_x.shape[1:] == (6, 16, 16) and data.train_y.shape[1:] == (1, 64, 64)
    assert abs(float(data.train_y.mean())) < 1e-5  # standardised with the training statistics


def test_synthetic_text_needs_word_order() -> None:
    data = datasets.synthetic_text(n=200)
    assert data.train_x.dtype == torch.long and data.train_x.shape[1:] == (32,)
    assert 0.3 < float(data.train_y.float().mean()) < 0.7
    assert bool((data.train_x == 2).any())  # negations are there


# --------------------------------------------------------------------------- real loaders on generated files


def write_cifar(root: Path, per_batch: int = 4) -> None:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        batch = {b"data": rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8),
                 b"labels": list(rng.integers(0, 10, size=per_batch))}
        (root / name).write_bytes(pickle.dumps(batch))


def test_cifar10_reads_the_python_batches(tmp_path: Path) -> None:
    root = tmp_path / "cifar-10-batches-py"
    write_cifar(root)
    data = datasets.cifar10(str(root))
    assert data.train_x.shape == (20, 3, 32, 32) and data.test_x.shape == (4, 3, 32, 32)
    raw = pickle.loads((root / "test_batch").read_bytes())
    first = torch.tensor(raw[b"data"][0].reshape(3, 32, 32), dtype=torch.float32) / 255
    expected = (first - torch.tensor(datasets.CIFAR_MEAN).view(3, 1, 1)) / torch.tensor(datasets.CIFAR_STD).view(3, 1, 1)
    assert torch.allclose(data.test_x[0], expected) and data.test_y[0] == raw[b"labels"][0]
    augmented = data.augment(data.train_x, torch.Generator().manual_seed(0))
    assert augmented.shape == data.train_x.shape and not torch.equal(augmented, data.train_x)
    assert len(datasets.cifar10(str(root), max_train=7).train_x) == 7


def write_imdb(root: Path) -> None:
    reviews = {
        "train": {"pos": ["A great film, truly great.", "Loved it<br />great acting"], "neg": ["Awful. Boring plot.", "not great at all, awful"]},
        "test": {"pos": ["great great"], "neg": ["boring and awful"]},
    }
    for split_name, labels in reviews.items():
        for label, texts in labels.items():
            folder = root / split_name / label
            folder.mkdir(parents=True)
            for i, text in enumerate(texts):
                (folder / f"{i}_7.txt").write_text(text)


def test_imdb_reads_the_aclimdb_layout(tmp_path: Path) -> None:
    root = tmp_path / "aclImdb"
    write_imdb(root)
    data = datasets.imdb(str(root), vocab_size=6, max_length=5)
    assert data.train_x.shape == (4, 5) and data.test_x.shape == (2, 5)
    assert data.train_y.tolist() == [0, 0, 1, 1] and data.test_y.tolist() == [0, 1]
    great = 2  # the most frequent training word gets the first id
    assert data.test_x[1].tolist() == [great, great, 0, 0, 0]  # padded with 0
    assert int(data.train_x.max()) <= 5  # vocab_size 6: ids 0 (pad), 1 (unknown), 2-5
    assert datasets.tokenize("It's<br />GREAT!") == ["it's", "great"]


def test_missing_roots_say_what_to_download(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from benchbench.arguments import with_defaults

    cifar = with_defaults(datasets.cifar10, {"root": str(tmp_path / "none")})  # as the suite validator calls it
    assert "download https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in datasets._cifar_check(**cifar)
    imdb = with_defaults(datasets.imdb, {"root": str(tmp_path)})
    assert "download https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz" in datasets._imdb_check(**imdb)
    suite = tmp_path / "s.yaml"
    suite.write_text(
        "benchmarks:\n  - model: simple_cnn\n    metrics: [accuracy]\n    dataset: cifar10\n"
        f"    dataset_args: {{root: {tmp_path / 'nowhere'}}}\n"
    )
    assert main(["run", str(suite)]) == 2
    err = capsys.readouterr().err
    assert "key 'dataset': cifar10:" in err and "cifar-10-python.tar.gz" in err and "Traceback" not in err


# --------------------------------------------------------------------------- the accuracy metric

QUICK = {"epochs": 3, "batch_size": 64, "lr": 0.003}


def digits_suite(**benchmark: object) -> dict:
    return {
        "defaults": {"device": "cpu", "metrics": ["params", "accuracy"], "train": dict(QUICK)},
        "benchmarks": [{"name": "cnn", "model": "simple_cnn", "args": {"in_channels": 1, "num_classes": 10}, "dataset": "digits", **benchmark}],
    }


@pytest.mark.slow
def test_a_short_training_learns_and_keeps_its_curves(capsys: pytest.CaptureFixture[str]) -> None:
    [record] = benchbench.run_suite(digits_suite()).records
    assert record["status"] == "ok", record["error"]
    assert record["accuracy"] > 0.8  # chance is 0.1
    assert record["input_shape"] == [1, 8, 8]  # from the dataset
    [losses] = record["train_loss_curve"]
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert record["train_recipe"]["epochs"] == 3 and record["dataset_summary"]["train"] == 1438
    err = capsys.readouterr().err
    assert "cnn: epoch 1/3: train loss" in err and "test accuracy" in err


def test_seeds_give_mean_spread_and_per_seed_values() -> None:
    [record] = benchbench.run_suite(digits_suite(seeds=[0, 1], train={**QUICK, "epochs": 1}), quiet=True).records
    assert record["seeds"] == [0, 1] and len(record["accuracy_per_seed"]) == 2
    assert record["accuracy"] == pytest.approx(sum(record["accuracy_per_seed"]) / 2)
    assert record["accuracy_std"] >= 0 and len(record["test_score_curve"]) == 2
    [again] = benchbench.run_suite(digits_suite(seeds=[0, 1], train={**QUICK, "epochs": 1}), quiet=True).records
    assert again["accuracy_per_seed"] == record["accuracy_per_seed"]  # reproducible


@pytest.mark.parametrize("recipe", ["augment", "mixup"])
def test_recipes_change_the_training(recipe: str) -> None:
    plain, other = benchbench.run_suite(
        {
            "defaults": {"device": "cpu", "metrics": ["accuracy"], "dataset": "digits", "train": {**QUICK, "epochs": 1}},
            "benchmarks": [
                {"name": "plain", "model": "simple_cnn", "args": {"in_channels": 1}},
                {"name": recipe, "model": "simple_cnn", "args": {"in_channels": 1}, "train": {**QUICK, "epochs": 1, "recipe": recipe}},
            ],
        },
        quiet=True,
    ).records
    assert other["status"] == "ok", other["error"]
    assert other["train_recipe"]["recipe"] == recipe
    assert other["train_loss_curve"] != plain["train_loss_curve"]


def test_regression_datasets_are_scored_with_rmse_and_mae() -> None:
    [record] = benchbench.run_suite(
        {"defaults": {"device": "cpu", "metrics": ["accuracy"]},
         "benchmarks": [{"model": "downscale_pixel_shuffle", "args": {"width": 8}, "dataset": "synthetic_downscaling",
                         "dataset_args": {"n": 40}, "train": {"epochs": 2, "batch_size": 16, "lr": 0.003}}]},
        quiet=True,
    ).records
    assert record["status"] == "ok", record["error"]
    assert 0 < record["rmse"] < 2 and 0 < record["mae"] <= record["rmse"] and "accuracy" not in record


def test_mismatched_classes_fail_with_a_clear_message() -> None:
    [record] = benchbench.run_suite(digits_suite(args={"in_channels": 1, "num_classes": 3}), quiet=True).records
    assert record["status"] == "failed"
    assert "dataset 'digits' has 10 classes: set the model's num_classes to 10" in record["error"]


def test_training_keys_are_validated() -> None:
    with pytest.raises(SuiteError) as error:
        benchbench.run_suite(digits_suite(train={"epoch": 3, "recipe": "cutmix"}), quiet=True)
    joined = "\n".join(error.value.problems)
    assert "unknown option 'epoch' (did you mean 'epochs'?)" in joined
    with pytest.raises(SuiteError, match="recipe must be one of none, augment, mixup"):
        benchbench.run_suite(digits_suite(train={"recipe": "cutmix"}), quiet=True)
    with pytest.raises(SuiteError, match="metric 'accuracy' needs a dataset"):
        benchbench.run_suite({"benchmarks": [{"model": "simple_cnn", "metrics": ["accuracy"]}]}, quiet=True)
    with pytest.raises(SuiteError, match="unknown dataset 'digitz' \\(did you mean 'digits'\\?\\)"):
        benchbench.run_suite(digits_suite(dataset="digitz"), quiet=True)
    with pytest.raises(SuiteError, match="key 'dataset_args': unknown argument 'sed'"):
        benchbench.run_suite(digits_suite(dataset_args={"sed": 1}), quiet=True)


def test_a_third_party_dataset_plugin(tmp_path: Path, plugins: PluginFiles) -> None:
    plugins.write("xor", """
        import torch, benchbench
        from benchbench.data import Dataset
        def xor(n: int = 400):
            g = torch.Generator().manual_seed(0)
            x = torch.rand(n, 2, generator=g) * 2 - 1
            y = ((x[:, 0] > 0) ^ (x[:, 1] > 0)).long()
            return Dataset(x[:300], y[:300], x[300:], y[300:])
        class MLP(torch.nn.Sequential):
            def __init__(self):
                super().__init__(torch.nn.Linear(2, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))
        @benchbench.hookimpl
        def benchbench_register_datasets(register):
            register('xor', xor, input_shape=(2,), description='the XOR problem')
        @benchbench.hookimpl
        def benchbench_register_models(register):
            register('mlp', MLP)
    """)
    [record] = benchbench.run_suite(
        {"defaults": {"device": "cpu"}, "benchmarks": [{"model": "mlp", "dataset": "xor", "metrics": ["params", "latency", "accuracy"],
                                                        "metric_options": {"latency": {"min_run_time_s": 0.01, "warmup_s": 0.0}},
                                                        "train": {"epochs": 40, "batch_size": 32, "lr": 0.01}}]},
        plugins_dir=plugins.path, quiet=True,
    ).records
    assert record["status"] == "ok", record["error"]
    assert record["accuracy"] > 0.9 and record["input_shape"] == [2] and record["latency_ms"] > 0


def test_dataset_container_checks_its_splits() -> None:
    with pytest.raises(ValueError, match="train split: 3 inputs for 2 targets"):
        Dataset(torch.zeros(3, 1), torch.zeros(2), torch.zeros(1, 1), torch.zeros(1))
    with pytest.raises(ValueError, match="task must be"):
        Dataset(torch.zeros(1, 1), torch.zeros(1), torch.zeros(1, 1), torch.zeros(1), task="ranking")
