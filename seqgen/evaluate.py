"""How good is a checkpoint: validation loss for text, free-running error for continuous data.

Text: the mean loss over the validation tail of the data, every token counted once, with the
state carried through the whole tail in one stream (as generation would run it), per character
of that text whatever the tokens, so that models with different vocabularies compare. Continuous: prime
with 100 true values, let the model eat its own output, and compare with the true continuation.
These are the figures `seqgen eval` prints and the quality benchmark reads.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from .checkpoint import Checkpoint, load_checkpoint
from .config import from_dict
from .data import Dataset, SineConfig, load_data, sine_waves
from .data.load import TableOptions
from .data.tokenizers import tokenizer_for
from .errors import DataError, UsageError

if TYPE_CHECKING:
    from .adapt import AdaptConfig

PRIME_STEPS = 100
HORIZONS = (100, 1000)
LONG_HORIZONS = (100, 1000, 10_000)
# The amplitude ratio compares the spread of the last stretch of the free run with the truth's.
AMPLITUDE_WINDOW = 1000


@dataclass
class TextEval:
    """Validation loss of a text model over the tail of `data`."""

    checkpoint: str
    data: str
    val_fraction: float
    characters: int
    loss: float  # nats per character, by `protocol`
    seconds: float
    kind: str = "text"
    protocol: str = "stream"
    stream_loss: float | None = None  # the whole tail as one stream, the state carried through
    windows_loss: float | None = None  # windows of `window` tokens, each from a zero state
    window: int = 256
    tokenization: str = "char"
    tokens: int = 0  # in the validation text
    loss_per_token: float | None = None  # nats per token, by `protocol` (for characters, `loss`)
    # Dynamic evaluation (seqgen/adapt.py) on the stream of `stream_loss`, per character the same
    # way; never in `loss`, which stays the static figure whatever was asked.
    adapted_loss: float | None = None
    adapt: dict | None = None  # its settings

    @property
    def bits_per_char(self) -> float:
        return self.loss / math.log(2)

    def to_dict(self) -> dict:
        return {**asdict(self), "bits_per_char": self.bits_per_char}


@dataclass
class FreeRunEval:
    """Free-running error after a prime: RMSE (in the data's units) over the first `steps` generated
    values, and the generated amplitude over the truth's (1.0 = neither decay nor growth)."""

    rmse: dict[int, float]  # over all streams
    rmse_worst: dict[int, float]  # of the stream with the largest error
    amplitude_ratio: float
    amplitude_ratio_min: float
    amplitude_ratio_max: float
    streams: int
    prime: int
    seconds: float = 0.0
    checkpoint: str = ""
    source: dict = field(default_factory=dict)
    kind: str = "series"

    def to_dict(self) -> dict:
        out = asdict(self)
        out["rmse"] = {str(k): v for k, v in self.rmse.items()}
        out["rmse_worst"] = {str(k): v for k, v in self.rmse_worst.items()}
        return out


def resolve_data(ckpt: Checkpoint, data: str | Path | None) -> str:
    """DATA as given, else the file the checkpoint was trained on (when it is still there)."""
    if data is not None:
        return str(data)
    from .data.load import stored_data_path

    source = ckpt.described.source
    found = stored_data_path(source)
    if found is not None:
        return found
    path = source.get("path")
    where = f" ({path} is not a file here)" if path else ""
    from .generate.zero_shot import called

    raise UsageError(f"give the DATA to evaluate on: {called(ckpt.path)} does not point to its training file{where}")


def checkpoint_val_fraction(ckpt: Checkpoint) -> float:
    return float(ckpt.described.val_fraction)


PROTOCOLS = ("stream", "windows")


def evaluate_text(
    checkpoint: str | Path | Checkpoint,
    data: str | Path | None = None,
    *,
    val_fraction: float | None = None,
    encoding: str = "utf-8",
    device: str = "cpu",
    protocol: str = "stream",
    window: int = 256,
    adapt: bool | AdaptConfig = False,
) -> TextEval:
    """Mean validation loss (nats/char) over the last `val_fraction` of `data`, measured two ways:
    in one unbroken stream (`stream`: every token once, the state carried through the whole
    tail, as generation runs), and as nanoGPT scores its models (`windows`: the tail cut into
    windows of `window` tokens, each run from a zero state, every position of each counted).
    `protocol` says which of the two is `loss`. A loss per character is the total loss in nats
    over the text divided by its characters, whatever the model's tokens. `adapt` (True, or an
    `AdaptConfig`): also the loss of dynamic evaluation on the same stream (`adapted_loss`),
    the weights learning from each window after scoring it (see seqgen/adapt.py)."""
    if protocol not in PROTOCOLS:
        raise UsageError(f"`protocol` must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    if window < 2:
        raise UsageError(f"`window` must be >= 2, got {window}")
    from .adapt import adapt_config
    from .generate.generator import torch_model_from_checkpoint
    from .train import evaluate_loss

    ckpt = _load(checkpoint)
    ckpt.data_kind.check("text evaluation", path=ckpt.path, kind=ckpt.kind)
    path = resolve_data(ckpt, data)
    fraction = val_fraction if val_fraction is not None else checkpoint_val_fraction(ckpt)
    tokenizer = tokenizer_for(ckpt.data)
    tail = _validation_tail(ckpt, tokenizer, path, encoding, fraction)
    adapting = adapt_config(adapt)
    runner = torch_model_from_checkpoint(ckpt, device)
    started = time.perf_counter()
    stream = evaluate_loss(runner.model, tail, warmup=0, device=runner.device, pieces=1)
    ids = tail.streams[0][1:]
    # A tail shorter than one window has no windows figure; that is an error only when asked for.
    windows = (
        windows_loss(runner.model, ids, window, runner.device) if protocol == "windows" or len(ids) > window else None
    )
    per_token = stream if protocol == "stream" else windows
    adapted = None
    if adapting is not None:
        from .adapt import dynamic_loss

        adapted = dynamic_loss(
            ckpt, tail.streams[0], adapting, _training_part(ckpt, tokenizer, path, encoding, fraction)
        )
    if tokenizer.kind != "char":  # per token so far; per character from here on
        stream = per_character(stream, ids, tokenizer)
        adapted = None if adapted is None else per_character(adapted, ids, tokenizer)
        windows = (
            None
            if windows is None
            else per_character(windows, ids[1 : 1 + (len(ids) - 1) // window * window], tokenizer)
        )
    return TextEval(
        str(ckpt.path),
        path,
        fraction,
        tokenizer.characters(ids),
        stream if protocol == "stream" else windows,
        time.perf_counter() - started,
        protocol=protocol,
        stream_loss=stream,
        windows_loss=windows,
        window=window,
        tokenization=tokenizer.kind,
        tokens=len(ids),
        loss_per_token=per_token,
        adapted_loss=adapted,
        adapt=None if adapting is None else adapting.to_dict(),
    )


def per_character(loss: float, ids: np.ndarray, tokenizer) -> float:
    """A mean loss per token over `ids` as nats per character of the text they spell."""
    return loss * len(ids) / max(1, tokenizer.characters(ids))


def _validation_tail(ckpt: Checkpoint, tokenizer, path: str, encoding: str, fraction: float) -> Dataset:
    """The validation tail of `path` as the checkpoint's token ids, after the token before it."""
    if tokenizer.kind == "char":
        return _in_checkpoint_vocab(load_data(path, kind="text", encoding=encoding, val_fraction=fraction), ckpt, path)
    dataset = load_data(path, kind="text", encoding=encoding, val_fraction=fraction, tokenizer=tokenizer)
    split = dataset.splits[0]
    return Dataset(
        kind="text",
        name=dataset.name,
        description=dataset.description,
        streams=[dataset.streams[0][split - 1 :]],
        splits=[1],
        vocab=tokenizer.vocab,
        tokenizer=tokenizer,
    )


def _training_part(ckpt: Checkpoint, tokenizer, path: str, encoding: str, fraction: float) -> np.ndarray:
    """The token ids of `path` before its validation tail: what the `rms` update of dynamic
    evaluation measures its gradient scale on (see seqgen/adapt.py)."""
    if tokenizer.kind == "char":
        dataset = load_data(path, kind="text", encoding=encoding, val_fraction=fraction)
        index = {ch: i for i, ch in enumerate(ckpt.vocab)}
        mapping = np.array([index.get(ch, -1) for ch in dataset.vocab], dtype=np.int64)
        ids = mapping[dataset.streams[0][: dataset.splits[0]]]
        return ids[ids >= 0]  # a character the model never saw cannot be learnt from; the rest can
    dataset = load_data(path, kind="text", encoding=encoding, val_fraction=fraction, tokenizer=tokenizer)
    return np.asarray(dataset.streams[0][: dataset.splits[0]], dtype=np.int64)


def windows_loss(model, ids: np.ndarray, window: int, device, batch: int = 64) -> float:
    """Mean loss over every position of the non-overlapping windows of `window` inputs in `ids`
    (each with the character after it as its last target), each window from a zero state."""
    import torch
    import torch.nn.functional as F

    count = (len(ids) - 1) // window
    if count < 1:
        raise DataError(
            f"the validation text ({len(ids)} characters) is shorter than one window of {window}; "
            "give a smaller `window`"
        )
    total = 0.0
    model.eval()
    with torch.no_grad():
        for first in range(0, count, batch):
            starts = np.arange(first, min(first + batch, count)) * window
            block = torch.as_tensor(np.stack([ids[s : s + window + 1] for s in starts]).astype(np.int64), device=device)
            logits, _ = model(block[:, :-1])
            total += F.cross_entropy(
                logits.float().reshape(-1, logits.shape[-1]), block[:, 1:].reshape(-1), reduction="sum"
            ).item()
    return total / (count * window)


def _in_checkpoint_vocab(dataset: Dataset, ckpt: Checkpoint, label: str) -> Dataset:
    """The validation tail (and the character before it) as the checkpoint's token ids."""
    index = {ch: i for i, ch in enumerate(ckpt.vocab)}
    mapping = np.array([index.get(ch, -1) for ch in dataset.vocab], dtype=np.int64)
    split = dataset.splits[0]
    tail = dataset.streams[0][split - 1 :]
    ids = mapping[tail]
    if (ids < 0).any():
        unseen = [dataset.vocab[t] for t in np.unique(tail) if mapping[t] < 0]
        shown = ", ".join(repr(ch) for ch in unseen[:20])
        raise DataError(f"{label}: the validation text has characters the model's vocabulary lacks: {shown}")
    return Dataset(
        kind="text", name=dataset.name, description=dataset.description, streams=[ids], splits=[1], vocab=ckpt.vocab
    )


def free_run_rmse(
    gen, prime: np.ndarray, truth: np.ndarray, horizons: Sequence[int] = HORIZONS, end: float | None = None
) -> FreeRunEval:
    """Prime every stream with its row of `prime` (batch, P), free-run for truth's length, compare.

    `gen` is a continuous-model Generator; all rows run as one batch. Horizons longer than the
    truth are left out; the whole run is always reported. `end`: the step index of the prime's
    last value, for a model with calendar inputs (see `Generator.feed`).
    """
    prime, truth = np.atleast_2d(prime), np.atleast_2d(truth)
    started = time.perf_counter()
    batch, length = truth.shape
    gen.reset(batch)
    gen.feed_values(prime, end)
    generated = np.empty((length, batch))
    for t in range(length):
        generated[t] = gen.step()
    generated = generated.T
    steps = sorted({h for h in horizons if h <= length} | {length})
    rmse = {h: float(np.sqrt(np.mean((generated[:, :h] - truth[:, :h]) ** 2))) for h in steps}
    worst = {h: float(np.sqrt(np.mean((generated[:, :h] - truth[:, :h]) ** 2, axis=1)).max()) for h in steps}
    last = slice(max(0, length - AMPLITUDE_WINDOW), length)
    ratio = generated[:, last].std(axis=1) / np.maximum(truth[:, last].std(axis=1), 1e-12)
    return FreeRunEval(
        rmse,
        worst,
        float(ratio.mean()),
        float(ratio.min()),
        float(ratio.max()),
        batch,
        prime.shape[1],
        time.perf_counter() - started,
    )


def evaluate_series(
    checkpoint: str | Path | Checkpoint,
    data: str | Path | None = None,
    *,
    horizons: Sequence[int] = HORIZONS,
    waves: int = 32,
    seed: int | None = None,
    val_fraction: float | None = None,
    backend: str = "auto",
) -> FreeRunEval:
    """Free-run error of a continuous model: on fresh sine waves from its training range, or on
    the validation tail of a numeric series (primed with the values just before the tail)."""
    from .generate import Generator
    from .generate.generator import own_scaling, series_entry
    from .generate.forecast import end_before
    from .generate.sampling import SampleConfig

    ckpt = _load(checkpoint)
    ckpt.data_kind.check("free-running evaluation", path=ckpt.path)
    # A likelihood head free-runs on its mean: the error of its point forecast.
    greedy = SampleConfig(greedy=True)
    source = ckpt.described.source
    if data is None and source.get("type") == "sine":
        gen = Generator.from_checkpoint(ckpt, backend=backend, sampling=greedy)
        if waves < 1:
            raise UsageError(f"`waves` must be >= 1, got {waves}")
        seed = seed if seed is not None else int(np.random.SeedSequence().entropy % 2**31)
        # Clean waves: the truth to compare with is the wave itself, whatever noise training used.
        config = from_dict(SineConfig, {**source, "noise": 0.0})
        series = sine_waves(waves, PRIME_STEPS + max(horizons), config, np.random.default_rng(seed)).astype(np.float64)
        result = free_run_rmse(gen, series[:, :PRIME_STEPS], series[:, PRIME_STEPS:], horizons)
        result.source = {"type": "sine", "waves": waves, "seed": seed}
    else:
        path = resolve_data(ckpt, data)
        fraction = val_fraction if val_fraction is not None else checkpoint_val_fraction(ckpt)
        dataset = load_data(path, kind="series", val_fraction=fraction, table=TableOptions.from_source(source))
        # A model of several series free-runs on the data's first, in that series' own scale.
        first = (
            dataset.series[0]
            if dataset.series
            else {"name": None, "values": dataset.unscale(dataset.streams[0].astype(np.float64))}
        )
        values, split = first["values"], dataset.splits[0]
        if len(values) - split < 1:
            raise DataError(f"{path}: the validation tail is empty")
        series = stored_series(ckpt, first["name"], values)
        scaling = (
            series_entry(ckpt, series) if series or not ckpt.described.series else own_scaling(ckpt, values[:split])
        )
        gen = Generator.from_checkpoint(ckpt, backend=backend, sampling=greedy, series=scaling)
        prime = values[max(0, split - PRIME_STEPS) : split]
        result = free_run_rmse(
            gen, prime, values[split:], horizons, end=end_before(ckpt, dataset, 0, len(values) - split)
        )
        result.source = {"type": "file", "path": path, "val_fraction": fraction}
        if ckpt.described.series:
            result.source["series"] = first["name"] if first["name"] is not None else series
    result.checkpoint = str(ckpt.path)
    return result


# Backtest defaults: forecast origins over the validation tail, and the interval scored.
BACKTEST_ORIGINS = 5
BACKTEST_LEVEL = 0.8
METRICS = ("mae", "rmse", "mase", "crps", "coverage")
UNIT_FREE = ("mase", "coverage")


@dataclass
class Backtest:
    """A rolling-origin backtest of a series model: forecasts of `horizon` steps from `origins`
    points in the validation tail of each series, scored against what followed; the mean of each
    metric over every origin and series, for seqgen and for the seasonal naive forecast made from
    the same origins. `season` is the one MASE and the naive forecast use."""

    checkpoint: str
    data: str
    horizon: int
    origins: int
    season: int
    samples: int
    series: list[str]
    seqgen: dict[str, float | None]
    seasonal_naive: dict[str, float | None]
    seconds: float
    kind: str = "backtest"
    # With several series or channels, each one's own means ({name: {"seqgen": ..., "seasonal_naive": ...}}):
    # MAE, RMSE and CRPS are in each one's units, so only MASE and coverage mean anything across them.
    per_series: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    joint: bool = False  # the series are the channels of one series, modelled jointly
    # Classical baselines made from the same origins where statsforecast is installed ({"ETS": means, ...}).
    others: dict[str, dict[str, float | None]] = field(default_factory=dict)
    where: str = "the validation tail"  # where the origins lie

    def to_dict(self) -> dict:
        return asdict(self)


def backtest(
    checkpoint: str | Path | Checkpoint,
    data: str | Path | None = None,
    *,
    horizon: int | None = None,
    origins: int = BACKTEST_ORIGINS,
    season: int | None = None,
    samples: int = 200,
    seed: int = 0,
    val_fraction: float | None = None,
    backend: str = "auto",
) -> Backtest:
    """Forecast each series of `data` (default: the checkpoint's training file) from `origins`
    evenly spaced points of its validation tail, `samples` paths each, and score them: MAE, RMSE,
    MASE (against the in-sample seasonal naive error of the history before each origin), CRPS and
    the coverage of the central 80% interval. `season` defaults to the one detected in the
    training part (1 when there is none), `horizon` to that season (8 steps without one), cut to
    half the validation tail. `origins` in the result counts the forecasts made over all series."""
    from .generate.forecast import end_before, forecast
    from .metrics import backtest_origins, default_horizon, detect_season, score, seasonal_naive

    if origins < 1:
        raise UsageError(f"`origins` must be >= 1, got {origins}")
    ckpt = _load(checkpoint)
    source = ckpt.described.source
    ckpt.data_kind.check("backtest", path=ckpt.path)
    if source.get("type") == "sine":
        raise UsageError(
            f"{ckpt.path}: a backtest forecasts a series a model was trained on; this one is built-in sine waves"
        )
    path = resolve_data(ckpt, data)
    fraction = val_fraction if val_fraction is not None else checkpoint_val_fraction(ckpt)
    dataset = load_data(path, kind="series", val_fraction=fraction, table=TableOptions.from_source(source))
    named = dataset.series or [{"name": None, "values": dataset.unscale(dataset.streams[0].astype(np.float64))}]
    first = min(dataset.splits)
    if season is None:
        # Channels modelled jointly: the season of the first channel.
        season = detect_season(named[0]["values"][:first].reshape(first, -1)[:, 0])
    if season < 1:
        raise UsageError(f"`season` must be >= 1, got {season}")
    # A forecast from the first value of the shortest tail is the longest every series can score.
    tail, shortest = min((len(e["values"]) - s, e["name"]) for e, s in zip(named, dataset.splits))
    if horizon is None:
        horizon = default_horizon(named[0]["values"][:first], tail, season)
    if horizon < 1:
        raise UsageError(f"`horizon` must be >= 1, got {horizon}")
    if horizon > tail:
        whose = f" (of series {shortest!r}, the shortest)" if len(named) > 1 else ""
        raise UsageError(
            f"`horizon` {horizon} is longer than the validation tail{whose}, {tail} values: the largest "
            f"usable `horizon` is {tail} (or give a larger `val_fraction`)"
        )
    started = time.perf_counter()
    if ckpt.model_config.channels > 1 and dataset.channels is None:
        raise DataError(
            f"{path}: {ckpt.path} models the columns {', '.join(map(repr, ckpt.described.channels))} jointly; "
            "give the data as a CSV with those columns"
        )
    labels = dataset.channels or [e["name"] for e in named]
    ours, naive, made_count, whose, classical = [], [], 0, [], {}
    for index, (entry, split) in enumerate(zip(named, dataset.splits)):
        values = entry["values"]
        # Decided once per series, on all its values: a history that is none of the model's series is scaled by its own.
        stored = stored_series(ckpt, entry["name"], values)
        for origin in backtest_origins(len(values), horizon, origins, split):
            history, truth = values[:origin], values[origin : origin + horizon]
            made = forecast(
                ckpt,
                history,
                horizon,
                samples=samples,
                seed=seed + origin,
                backend=backend,
                series=stored,
                end=end_before(ckpt, dataset, index, len(values) - origin),
            )
            made_count += 1
            # Channels modelled jointly are each scored in their own units, like separate series.
            paths = made.paths if made.paths.ndim == 3 else made.paths[..., None]
            for k in range(paths.shape[2]):
                own = (lambda a: a) if values.ndim == 1 else (lambda a, k=k: a[:, k])
                whose.append(labels[k] if dataset.channels else labels[index])
                ours.append(score(own(truth), paths[..., k], own(history), season, BACKTEST_LEVEL))
                naive.append(
                    score(
                        own(truth), seasonal_naive(own(history), horizon, season), own(history), season, BACKTEST_LEVEL
                    )
                )
                _score_classical(classical, own(history), own(truth), season, samples)
    mean = lambda scores: {k: float(np.mean([s[k] for s in scores])) for k in METRICS}
    names = dataset.channels or [e["name"] for e in named if e["name"] is not None]
    per_series = {}
    overall = mean
    if len(names) > 1:
        for name in names:
            rows = [i for i, owner in enumerate(whose) if owner == name]
            per_series[name] = {
                "seqgen": mean([ours[i] for i in rows]),
                "seasonal_naive": mean([naive[i] for i in rows]),
            }

        def overall(scores):  # across series MAE, RMSE and CRPS would add up different units: None
            return {k: (v if k in UNIT_FREE else None) for k, v in mean(scores).items()}

    return Backtest(
        str(ckpt.path),
        path,
        horizon,
        made_count,
        season,
        samples,
        names,
        overall(ours),
        overall(naive),
        time.perf_counter() - started,
        per_series=per_series,
        joint=bool(dataset.channels),
        others=_classical_means(classical, len(ours), overall),
    )


def _score_classical(scores: dict, history: np.ndarray, truth: np.ndarray, season: int, samples: int) -> None:
    """Add the classical baselines' scores of one forecast (see baselines.py) to `scores`."""
    from .baselines import classical_paths
    from .metrics import score

    for name, paths in classical_paths(history, len(truth), season, samples).items():
        scores.setdefault(name, []).append(score(truth, paths, history, season, BACKTEST_LEVEL))


def _classical_means(scores: dict, forecasts: int, overall) -> dict:
    """Each baseline's means, for those that forecast from every origin (a partial mean would not compare)."""
    return {name: overall(rows) for name, rows in scores.items() if len(rows) == forecasts}


def backtest_forecaster(
    checkpoint: str | Path | Checkpoint,
    series: list[tuple[str | None, np.ndarray, int]],
    *,
    horizon: int | None = None,
    origins: int = BACKTEST_ORIGINS,
    samples: int = 200,
    label: str = "",
) -> Backtest:
    """A rolling-origin backtest of the pretrained forecaster on `series` ([(name, values, season)]):
    forecasts of `horizon` steps (default: the first series' season, or 8 without one) from
    `origins` evenly spaced points of each series' last third, scored as `backtest` scores a
    trained model's, beside the seasonal naive forecast and the classical baselines."""
    from .generate.zero_shot import zero_shot
    from .metrics import backtest_origins, score, seasonal_naive

    ckpt = _load(checkpoint)
    if origins < 1:
        raise UsageError(f"`origins` must be >= 1, got {origins}")
    season = series[0][2]
    horizon = horizon or (season if season > 1 else 8)
    started = time.perf_counter()
    ours, naive, classical = [], [], {}
    for name, values, m in series:
        first = max(len(values) - max(len(values) // 3, horizon), 2 * m + 1, 3)
        if first + horizon > len(values):
            raise DataError(
                f"{label or 'the data'}{'' if name is None else f', series {name!r}'}: {len(values)} values "
                f"are too few to forecast {horizon} steps from past origins; give a smaller `horizon`"
            )
        for origin in backtest_origins(len(values), horizon, origins, first):
            history, truth = values[:origin], values[origin : origin + horizon]
            ours.append(
                score(truth, zero_shot(ckpt, history, horizon, m, samples=samples).paths, history, m, BACKTEST_LEVEL)
            )
            naive.append(score(truth, seasonal_naive(history, horizon, m), history, m, BACKTEST_LEVEL))
            _score_classical(classical, history, truth, m, samples)
    mean = lambda scores: {k: float(np.mean([s[k] for s in scores])) for k in METRICS}
    names = [name for name, _, _ in series if name is not None]

    def overall(scores):
        means = mean(scores)
        return means if len(series) == 1 else {k: (v if k in UNIT_FREE else None) for k, v in means.items()}

    return Backtest(
        str(ckpt.path),
        label,
        horizon,
        len(ours),
        season,
        samples,
        names,
        overall(ours),
        overall(naive),
        time.perf_counter() - started,
        others=_classical_means(classical, len(ours), overall),
        where="the last third",
    )


def stored_series(ckpt: Checkpoint, name: str | None, values: np.ndarray) -> str | None:
    """Which stored series of a model of several the data's series `name` (None: unnamed) with
    `values` is: the one of that name, else the one its values are (see `matching_series`);
    None when it is none of them (or the model has one series)."""
    from .generate.generator import matching_series

    entries = ckpt.described.series
    if name is not None and any(e["name"] == name for e in entries):
        return name
    match = matching_series(ckpt, values)
    return match["name"] if match else None


def _load(checkpoint: str | Path | Checkpoint) -> Checkpoint:
    return checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)


__all__ = ["Backtest", "FreeRunEval", "TextEval", "backtest", "evaluate_series", "evaluate_text", "free_run_rmse"]
