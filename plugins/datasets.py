"""First-party datasets: offline defaults, and loaders for local copies of real data.

Registered through ``benchbench_register_datasets``, exactly as a third party would. Every
suite must run on a fresh machine without network access, so the defaults are either
bundled (scikit-learn's digits) or generated from a seed (series, downscaling, text);
``cifar10`` and ``imdb`` read the standard downloads from a folder the suite names, and
say what to download and where to put it when the folder is missing.

========================  ===============  ===============================================
name                      task             what
========================  ===============  ===============================================
``digits``                classification   scikit-learn's 1,797 8x8 handwritten digits
``synthetic_timeseries``  classification   5 classes of multivariate series (exercise 8.18)
``synthetic_downscaling`` regression       16x16x6 coarse fields -> 64x64 temperature (8.28)
``synthetic_text``        classification   token sequences whose label needs negations
``cifar10``               classification   the python-pickle batches of CIFAR-10
``imdb``                  classification   the aclImdb review folders (pos/neg)
========================  ===============  ===============================================
"""

from __future__ import annotations

import math
import pickle
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

import benchbench
from benchbench.data import CLASSIFICATION, REGRESSION, Dataset, split

# --------------------------------------------------------------------------- augmentations


def random_shift(x: torch.Tensor, generator: torch.Generator, pixels: int = 1, fill: float | None = None) -> torch.Tensor:
    """Shift each image by up to ``pixels`` in each direction (a random crop of the padded
    image), filling with ``fill``, by default the batch's background (its minimum: after
    standardisation the digits' background is not 0)."""
    padded = F.pad(x, (pixels,) * 4, value=float(x.min()) if fill is None else fill)
    h, w = x.shape[-2:]
    out = torch.empty_like(x)
    offsets = torch.randint(0, 2 * pixels + 1, (len(x), 2), generator=generator)
    for i, (dy, dx) in enumerate(offsets.tolist()):
        out[i] = padded[i, :, dy : dy + h, dx : dx + w]
    return out


def crop_flip_jitter(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Standard photo augmentation (the CIFAR-10 recipe of exercise 8.10): random crop with
    4-pixel zero padding (zero is the mean colour after normalisation), horizontal flip, and
    colour jitter: contrast scaled by up to 20% around each image's mean, brightness shifted
    by up to 0.2 standard deviations."""
    x = random_shift(x, generator, pixels=4, fill=0.0)
    flip = torch.rand(len(x), generator=generator) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    contrast = 1 + (torch.rand(len(x), 1, 1, 1, generator=generator) - 0.5) * 0.4
    brightness = (torch.rand(len(x), 1, 1, 1, generator=generator) - 0.5) * 0.4
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * contrast + mean + brightness


def jitter_series(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Series augmentation: Gaussian jitter (sigma 0.05) and amplitude scaling of up to 10%."""
    scale = 1 + (torch.rand(len(x), x.shape[1], 1, generator=generator) - 0.5) * 0.2
    return x * scale + 0.05 * torch.randn(x.shape, generator=generator)


# --------------------------------------------------------------------------- digits


def digits(test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """scikit-learn's bundled 8x8 digits (real handwriting, offline), standardised, split 80/20."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(bunch.target, dtype=torch.long)
    train_x, train_y, test_x, test_y = split(x, y, test_fraction, seed, stratify=True)
    mean, std = train_x.mean(), train_x.std()  # the training split's statistics only
    return Dataset((train_x - mean) / std, train_y, (test_x - mean) / std, test_y, CLASSIFICATION, 10,
                   augment=random_shift, name="digits")


def _digits_check(test_fraction: float, seed: int) -> str | None:
    try:
        import sklearn  # noqa: F401
    except ImportError:
        return "needs scikit-learn, which bundles the digits: pip install scikit-learn"
    return _fraction_problem(test_fraction, seed)


def _fraction_problem(test_fraction: Any, seed: Any = 0) -> str | None:
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)) or not 0 < test_fraction < 1:
        return f"test_fraction must be between 0 and 1, got {test_fraction!r}"
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        return f"seed must be a whole number 0 or more, got {seed!r}"
    return None


def _number_problem(**values: Any) -> str | None:
    bad = [f"{k} must be a number 0 or more, got {v!r}" for k, v in values.items()
           if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0]
    return bad[0] if bad else None


# --------------------------------------------------------------------------- time series

SERIES_CLASSES = ("upward trend", "periodic oscillation", "step", "damped oscillation", "random walk with drift")


def synthetic_timeseries(
    n_per_class: int = 200,
    length: int = 128,
    channels: int = 3,
    noise: float = 0.3,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> Dataset:
    """Multivariate series of 5 classes (exercise 8.18), each channel with its own parameters.

    0. upward trend: slope 1-3 over the series, random offset;
    1. periodic oscillation: two superposed sines, 3-5 and 8-12 cycles, random phases;
    2. step: 0, then a jump of 1-2 at a random time in the middle 40%;
    3. damped oscillation: sine of 4-8 cycles under exp(-decay t), decay 3-6;
    4. random walk with drift: cumulative Gaussian steps with a drift of +-1 over the series.

    Each channel then gets Gaussian noise of standard deviation ``noise``. Seeded: the same
    arguments give the same tensors.
    """
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, length)
    xs, ys = [], []
    for label in range(len(SERIES_CLASSES)):
        for _ in range(n_per_class):
            series = np.stack([_pattern(label, t, rng) for _ in range(channels)])
            xs.append(series + noise * rng.standard_normal(series.shape))
            ys.append(label)
    x = torch.tensor(np.stack(xs), dtype=torch.float32)
    y = torch.tensor(ys, dtype=torch.long)
    train_x, train_y, test_x, test_y = split(x, y, test_fraction, seed, stratify=True)
    info = {"classes": list(SERIES_CLASSES), "length": length, "channels": channels, "noise": noise, "seed": seed}
    return Dataset(train_x, train_y, test_x, test_y, CLASSIFICATION, len(SERIES_CLASSES), jitter_series, "synthetic_timeseries", info)


def _pattern(label: int, t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if label == 0:
        return rng.uniform(1, 3) * t + rng.uniform(-1, 1)
    if label == 1:
        slow, fast = rng.uniform(3, 5), rng.uniform(8, 12)
        return np.sin(2 * np.pi * slow * t + rng.uniform(0, 2 * np.pi)) + 0.5 * np.sin(2 * np.pi * fast * t + rng.uniform(0, 2 * np.pi))
    if label == 2:
        return np.where(t > rng.uniform(0.3, 0.7), rng.uniform(1, 2), 0.0)
    if label == 3:
        return np.exp(-rng.uniform(3, 6) * t) * np.sin(2 * np.pi * rng.uniform(4, 8) * t + rng.uniform(0, 2 * np.pi)) * 2
    drift = rng.choice([-1.0, 1.0])
    steps = rng.standard_normal(len(t)) * (1.5 / math.sqrt(len(t))) + drift / len(t)
    return np.cumsum(steps)


def _series_shape(args: dict[str, Any]) -> tuple[int, int]:
    return (args["channels"], args["length"])


def _positive_ints(**values: Any) -> str | None:
    bad = [f"{k} must be a positive whole number, got {v!r}" for k, v in values.items()
           if isinstance(v, bool) or not isinstance(v, int) or v < 1]
    return bad[0] if bad else None


def _series_check(n_per_class: int, length: int, channels: int, noise: float,
                  test_fraction: float, seed: int) -> str | None:
    return (_positive_ints(n_per_class=n_per_class, length=length, channels=channels) or _number_problem(noise=noise)
            or _fraction_problem(test_fraction, seed))


# --------------------------------------------------------------------------- downscaling


def synthetic_downscaling(n: int = 600, factor: int = 4, size: int = 64, test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """Coarse 16x16x6 fields and their 64x64 temperature (exercise 8.28), from a documented generator.

    For each sample, on the fine 64x64 grid: an elevation field (8 Gaussian hills of
    random height and width), a smooth large-scale temperature (a north-south gradient
    plus 4 broad random anomalies), and the fine temperature
    ``T = T_large - 0.6 * elevation + 0.1 * noise`` (a lapse rate: hills are colder, so
    the fine detail comes from terrain that the coarse grid only averages). The 6 coarse
    inputs are 4x4 averages of: T, elevation, humidity (a smooth field correlated with
    T), the two components of T's gradient, and latitude. Target: T at 64x64, one channel.
    Inputs and target are standardised with the training set's statistics. Score: RMSE.
    """
    rng = np.random.default_rng(seed)
    coords = np.linspace(0, 1, size)
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    inputs, targets = [], []
    for _ in range(n):
        elevation = sum(
            rng.uniform(0.3, 1.5) * np.exp(-((xx - rng.uniform()) ** 2 + (yy - rng.uniform()) ** 2) / (2 * rng.uniform(0.03, 0.12) ** 2))
            for _ in range(8)
        )
        large = 2.0 * (1 - yy) + sum(
            rng.normal(0, 0.8) * np.exp(-((xx - rng.uniform()) ** 2 + (yy - rng.uniform()) ** 2) / (2 * rng.uniform(0.2, 0.4) ** 2))
            for _ in range(4)
        )
        temperature = large - 0.6 * elevation + 0.1 * rng.standard_normal((size, size))
        humidity = 0.5 * large + sum(
            rng.normal(0, 0.5) * np.exp(-((xx - rng.uniform()) ** 2 + (yy - rng.uniform()) ** 2) / (2 * 0.3**2)) for _ in range(2)
        )
        grad_y, grad_x = np.gradient(temperature)
        fine = np.stack([temperature, elevation, humidity, grad_x * size, grad_y * size, yy])
        inputs.append(fine.reshape(6, size // factor, factor, size // factor, factor).mean(axis=(2, 4)))
        targets.append(temperature[None])
    x = torch.tensor(np.stack(inputs), dtype=torch.float32)
    y = torch.tensor(np.stack(targets), dtype=torch.float32)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    test = max(1, round(n * test_fraction))
    train_idx, test_idx = order[test:], order[:test]
    x_mean, x_std = x[train_idx].mean(dim=(0, 2, 3), keepdim=True), x[train_idx].std(dim=(0, 2, 3), keepdim=True)
    y_mean, y_std = y[train_idx].mean(), y[train_idx].std()
    x, y = (x - x_mean) / x_std, (y - y_mean) / y_std
    info = {"factor": factor, "size": size, "seed": seed, "target_std": float(y_std),
            "variables": ["temperature", "elevation", "humidity", "grad_x", "grad_y", "latitude"]}
    return Dataset(x[train_idx], y[train_idx], x[test_idx], y[test_idx], REGRESSION, None, None, "synthetic_downscaling", info)


def _downscaling_check(n: int, factor: int, size: int, test_fraction: float, seed: int) -> str | None:
    problem = _positive_ints(n=n, factor=factor, size=size) or _fraction_problem(test_fraction, seed)
    if problem is None and size % factor:
        problem = f"size ({size}) must be a multiple of factor ({factor})"
    return problem


# --------------------------------------------------------------------------- text

PAD, UNK = 0, 1


def synthetic_text(n: int = 4000, vocab_size: int = 1000, length: int = 32, test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """Token sequences with a sentiment label that only word order can get right.

    Token 2 is "not"; 3-22 are positive words, 23-42 negative, the rest neutral. Each
    sequence holds 3-7 sentiment words (never adjacent) among neutral ones, and each is
    preceded by "not" with probability 0.4, which flips it. The label is 1 when the
    (flipped) polarities sum above 0 (ties are redrawn). A bag of embeddings cannot see
    which word a "not" precedes, so it plateaus well below a convolution over 2 tokens.
    """
    if vocab_size < 200:
        raise ValueError(f"vocab_size must be at least 200, got {vocab_size}")
    rng = np.random.default_rng(seed)
    not_token, positive, negative = 2, np.arange(3, 23), np.arange(23, 43)
    xs: list[list[int]] = []
    ys: list[int] = []
    while len(xs) < n:
        tokens = list(rng.integers(43, vocab_size, size=length))
        total = 0
        slots = rng.choice(np.arange(1, length // 2), size=rng.integers(3, 8), replace=False) * 2  # even: never adjacent
        for position in sorted(slots):
            good = rng.random() < 0.5
            word = rng.choice(positive if good else negative)
            flipped = rng.random() < 0.4
            tokens[position] = word
            if flipped:
                tokens[position - 1] = not_token
            total += (1 if good else -1) * (-1 if flipped else 1)
        if total == 0:
            continue
        xs.append(tokens)
        ys.append(int(total > 0))
    x = torch.tensor(np.array(xs), dtype=torch.long)
    y = torch.tensor(ys, dtype=torch.long)
    train_x, train_y, test_x, test_y = split(x, y, test_fraction, seed, stratify=True)
    info = {"vocab_size": vocab_size, "length": length, "seed": seed}
    return Dataset(train_x, train_y, test_x, test_y, CLASSIFICATION, 2, None, "synthetic_text", info)


def _text_check(n: int, vocab_size: int, length: int, test_fraction: float, seed: int) -> str | None:
    problem = _positive_ints(n=n, vocab_size=vocab_size, length=length) or _fraction_problem(test_fraction, seed)
    if problem is None and (vocab_size < 200 or length < 16):
        problem = f"vocab_size must be at least 200 and length at least 16, got {vocab_size} and {length}"
    return problem


# --------------------------------------------------------------------------- CIFAR-10

CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def cifar10(root: str, max_train: int | None = None) -> Dataset:
    """CIFAR-10 from the python-pickle batches (``data_batch_1`` ... ``data_batch_5``,
    ``test_batch``) in ``root``; normalised with the usual per-channel mean and std.
    ``max_train`` keeps the first N training images (quick runs)."""
    folder = Path(root).expanduser()
    train = [_cifar_batch(folder / f"data_batch_{i}") for i in range(1, 6)]
    test_x, test_y = _cifar_batch(folder / "test_batch")
    train_x = torch.cat([x for x, _ in train])
    train_y = torch.cat([y for _, y in train])
    if max_train is not None:
        train_x, train_y = train_x[:max_train], train_y[:max_train]
    mean = torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD).view(1, 3, 1, 1)
    return Dataset((train_x - mean) / std, train_y, (test_x - mean) / std, test_y, CLASSIFICATION, 10,
                   crop_flip_jitter, "cifar10", {"root": str(folder)})


def _cifar_batch(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    with path.open("rb") as handle:
        batch = pickle.load(handle, encoding="bytes")  # pickle is the dataset's own format, from a local copy
    data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    labels = batch.get(b"labels", batch.get(b"fine_labels"))
    return torch.tensor(data, dtype=torch.float32) / 255.0, torch.tensor(labels, dtype=torch.long)


def _cifar_check(root: str, max_train: int | None) -> str | None:
    if max_train is not None and (problem := _positive_ints(max_train=max_train)):
        return problem
    folder = Path(str(root)).expanduser()
    missing = [n for n in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"] if not (folder / n).is_file()]
    if missing:
        return (
            f"{folder} does not hold the CIFAR-10 batches (missing {', '.join(missing[:3])}{'...' if len(missing) > 3 else ''}); "
            f"download {CIFAR_URL}, extract it, and give its cifar-10-batches-py folder as dataset_args: {{root: ...}}"
        )
    return None


# --------------------------------------------------------------------------- IMDB

IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
_WORD = re.compile(r"[a-z0-9']+")


def tokenize(text: str) -> list[str]:
    """Lower-case words, with the reviews' ``<br />`` line breaks removed."""
    return _WORD.findall(text.lower().replace("<br />", " "))


def imdb(root: str, vocab_size: int = 20000, max_length: int = 256, max_reviews: int | None = None) -> Dataset:
    """IMDB reviews from the ``aclImdb`` folder layout (``train|test/pos|neg/*.txt``).

    Token ids: 0 pads, 1 is an unknown word, and 2 .. ``vocab_size - 1`` are the
    ``vocab_size - 2`` most frequent training words (so ``vocab_size`` is the embedding
    table's size); each review is cut or padded to ``max_length`` tokens (exercise 8.16:
    20,000 words, 256 tokens). ``max_reviews`` keeps that many per split and class.
    """
    folder = Path(root).expanduser()
    texts = {s: {label: _reviews(folder / s / label, max_reviews) for label in ("neg", "pos")} for s in ("train", "test")}
    counts = Counter(word for label in ("neg", "pos") for text in texts["train"][label] for word in tokenize(text))
    vocab = {word: i + 2 for i, (word, _) in enumerate(counts.most_common(vocab_size - 2))}

    def encode(text: str) -> list[int]:
        ids = [vocab.get(word, UNK) for word in tokenize(text)][:max_length]
        return ids + [PAD] * (max_length - len(ids))

    def tensors(split_name: str) -> tuple[torch.Tensor, torch.Tensor]:
        rows = [(encode(t), label) for label, name in enumerate(("neg", "pos")) for t in texts[split_name][name]]
        return torch.tensor([r for r, _ in rows], dtype=torch.long), torch.tensor([label for _, label in rows], dtype=torch.long)

    train_x, train_y = tensors("train")
    test_x, test_y = tensors("test")
    info = {"root": str(folder), "vocab_size": vocab_size, "max_length": max_length, "words_seen": len(counts)}
    return Dataset(train_x, train_y, test_x, test_y, CLASSIFICATION, 2, None, "imdb", info)


def _reviews(folder: Path, limit: int | None) -> list[str]:
    files = sorted(folder.glob("*.txt"))[:limit]
    return [f.read_text(encoding="utf-8", errors="replace") for f in files]


def _imdb_check(root: str, vocab_size: int, max_length: int, max_reviews: int | None) -> str | None:
    folder = Path(str(root)).expanduser()
    missing = [f"{s}/{label}" for s in ("train", "test") for label in ("neg", "pos") if not (folder / s / label).is_dir()]
    if missing:
        return (
            f"{folder} does not have the aclImdb layout (missing {', '.join(missing)}); download {IMDB_URL}, "
            "extract it, and give its aclImdb folder as dataset_args: {root: ...}"
        )
    extra = {"max_reviews": max_reviews} if max_reviews is not None else {}
    problem = _positive_ints(vocab_size=vocab_size, max_length=max_length, **extra)
    if problem is None and vocab_size < 3:
        problem = f"vocab_size must be at least 3 (ids 0 and 1 are padding and unknown), got {vocab_size}"
    return problem


@benchbench.hookimpl
def benchbench_register_datasets(register: Any) -> None:
    register("digits", digits, task=CLASSIFICATION, input_shape=(1, 8, 8), check=_digits_check,
             description="scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes; offline)")
    register("synthetic_timeseries", synthetic_timeseries, task=CLASSIFICATION, input_shape=_series_shape, check=_series_check,
             description="5 classes of multivariate series: trend, oscillation, step, damped, random walk (seeded)")
    register("synthetic_downscaling", synthetic_downscaling, task=REGRESSION, input_shape=(6, 16, 16), check=_downscaling_check,
             description="coarse 16x16x6 fields -> 64x64 temperature with terrain detail (seeded; score RMSE)")
    register("synthetic_text", synthetic_text, task=CLASSIFICATION, input_shape=lambda a: (a["length"],),
             check=_text_check, description="token sequences whose sentiment label depends on negations (seeded)")
    register("cifar10", cifar10, task=CLASSIFICATION, input_shape=(3, 32, 32), check=_cifar_check,
             description="CIFAR-10 from a local copy of the python-pickle batches (dataset_args: {root: ...})")
    register("imdb", imdb, task=CLASSIFICATION, input_shape=lambda a: (a["max_length"],), check=_imdb_check,
             description="IMDB reviews from a local aclImdb folder, top-N vocabulary (dataset_args: {root: ...})")
