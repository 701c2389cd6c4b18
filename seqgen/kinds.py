"""Text and series as two kinds of data behind one interface: what each refuses (the options and
endpoints that belong to the other), what its items are (primes, collected samples, written cells
and records), how its sampling options read, and how training talks about it.

A checkpoint, a generator and a served model give theirs as `data_kind`, a dataset's is
`kind_named(dataset.kind)`; callers ask it, instead of testing for text. A new kind of data is a third
subclass of `Kind` here, and an entry in `kind_named`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Iterable

import numpy as np

from .errors import DataError, UsageError

Steps = Iterable[tuple[Any, np.ndarray]]

# How many values of a series (its last) the checkpoint keeps as the default prime for `seqgen sample`.
PRIME_KEEP = 200


def format_value(value: float) -> str:
    """A value as every writer writes it."""
    return f"{value:.6g}"


def prime_rows(prime, batch_size: int) -> np.ndarray:
    """A continuous prime as one row per sample: a shared prime repeated, or each sample's own."""
    values = np.asarray(prime, dtype=np.float64)
    return np.broadcast_to(values, (batch_size, values.shape[-1]))


class Kind(ABC):
    """What differs between kinds of data. `refusals` maps what a kind cannot do (an option, a
    command, an endpoint, a capability) to why, worded for the user: parameters in backquotes,
    and `{path}`-style blanks filled from what the caller knows."""

    name: str
    default_format: str  # what `seqgen sample` writes when no format is asked for
    answer_key: str  # what a sample is called in JSON: its "text" or its "values"
    refusals: dict[str, str] = {}

    def allows(self, what: str) -> bool:
        """Whether this kind of data takes `what` (a key of some kind's `refusals`)."""
        return what not in self.refusals

    def check(self, what: str, error: type[Exception] = UsageError, /, **blanks: Any) -> None:
        """Raise `error` saying why, when this kind of data does not take `what`."""
        if what in self.refusals:
            raise error(self.refusals[what].format(**blanks))

    # --- generation: primes, items, samples ---------------------------------------------------
    @abstractmethod
    def as_prime(self, prime: str | Any | None, label: str = "`prime`") -> str | np.ndarray | None:
        """A prime as the model reads it (None when none was given); `label` names it in errors."""

    def readable(self, tokenizer, prime, unknown: str):
        """A prime with what the model cannot read handled by `unknown` (see `Tokenizer.known`)."""
        return prime

    @abstractmethod
    def nothing(self) -> str | np.ndarray:
        """What was fed when nothing was."""

    @abstractmethod
    def collect(self, gen, steps: Steps, final: bool = True) -> list[str] | np.ndarray:
        """Every stream's items from the steps of `generate_steps`, a stream a row: its text, or
        its values (and channels)."""

    @abstractmethod
    def per_sample(self, collected) -> list:
        """`collect`'s result as one entry a sample (a JSON line each)."""

    @abstractmethod
    def prime_cells(self, prime, batch_size: int) -> list[list]:
        """A prime as CSV rows, one cell a sample."""

    @abstractmethod
    def cells(self, items) -> Iterable:
        """A step's items as CSV cells, one a sample."""

    @abstractmethod
    def answer(self, text: str, values: list):
        """What a sample is, of a row's text and values (under `answer_key`)."""

    @abstractmethod
    def step_record(self, gen, items, k: int) -> dict:
        """What a JSON line says of stream `k`'s item at a step (after its step and sample)."""

    @abstractmethod
    def same_samples(self, count: int, sampling, varied: bool) -> str | None:
        """Why `count` samples will all be the same, if they will (`varied`: each starts from a
        prime of its own, or draws from a distribution)."""

    @abstractmethod
    def greedy_at_zero(self, probabilistic: bool) -> bool:
        """Whether a `temperature` of 0 means the most likely item every time (OpenAI's meaning)."""

    # --- sampling options ------------------------------------------------------------------------
    @abstractmethod
    def sample_config(self, *, temperature, top_k, top_p, greedy: bool, noise, probabilistic: bool, given: dict):
        """The sampling settings, with each option's meaning for this kind (`given`: the
        TEXT_CHOICES set, min_p and the penalties)."""

    @abstractmethod
    def resumed_sampling(self, config, saved, *, temperature, top_k, top_p, greedy: bool, noise, probabilistic, given):
        """The settings a continuation goes on with: `saved`'s, each option given replacing its own."""

    # --- training ----------------------------------------------------------------------------------
    @abstractmethod
    def unit(self, tokens: str) -> str:
        """What training counts the data in (plural), for `tokens` (the tokenizer's kind)."""

    @abstractmethod
    def loss_text(self, value: float) -> str:
        """A validation loss as training prints it."""

    @abstractmethod
    def summary_rows(self, result, tokens: str) -> list[tuple[str, str]]:
        """The rows that say the best validation loss at the end of training."""

    @abstractmethod
    def size(self, dataset) -> int:
        """How many characters (text, whatever its tokens) or values the data holds."""

    @abstractmethod
    def fitted(self, model_config, data):
        """A copy of `model_config` reading what `data` holds."""

    @abstractmethod
    def check_training_options(self, target, calendar, tokens, series_options: list[str]) -> None:
        """Refuse the options of `seqgen train` that apply to the other kind of data."""

    @abstractmethod
    def describe(self, data) -> dict:
        """What generation needs to know about `data`, for the checkpoint's data section: its
        tokens, or its scaling and a default prime."""

    @abstractmethod
    def check_resumed(self, ckpt, data) -> None:
        """Refuse to resume `ckpt` on `data` read otherwise than the run read its own."""


class TextKind(Kind):
    """Text: tokens in, tokens chosen by the sampling policy out."""

    name, default_format, answer_key = "text", "text", "text"
    refusals = {
        "series": "`series` names a series of a model of numbers; this model generates text",
        "follow": "follow works with continuous models; this one generates text",
        "seqgen follow": "{path} is a text model; follow forecasts numbers",
        "forecast": "{path} is a text model; forecast continues numbers (use 'seqgen sample' for text)",
        "learn": "{path} is a text model; `learn` follows series (see seqgen.adapt for text)",
        "free-running evaluation": "{path} is a text model; free-running evaluation needs a continuous model",
        "backtest": "{path}: a backtest forecasts a series a model was trained on; this one is text",
        "plot": "`plot` and `plot_file` draw continuous output; this model generates text",
        "continuous measures": "`long`, `waves` and `seed` measure continuous models; this checkpoint generates text",
        "format values": "`format` values is for continuous models; this model generates text (use text, csv or jsonl)",
        "noise": "`noise` applies to continuous models; for text use `temperature`",
        "target": "`target` applies to numeric series; this data is text",
        "calendar": "`calendar` applies to numeric series; this data is text",
        "series options": "{names} apply to numeric series; this data is text",
        "prompt of numbers": "`prompt` must be text for {name}, a text model",
        "/v1/follow": "{name} is a text model; /v1/follow forecasts series",
        "prediction": "a text model's next item is a token to choose, not a value to forecast",
    }

    def as_prime(self, prime, label: str = "`prime`"):
        return prime if prime is None or isinstance(prime, str) else np.asarray(prime, dtype=np.float64)

    def readable(self, tokenizer, prime, unknown: str):
        if not isinstance(prime, str):
            return prime
        readable = tokenizer.known(prime, unknown)
        if prime and not readable:
            raise DataError("the model has never seen any character of the prime; `unknown` skip left nothing to feed")
        return readable

    def nothing(self) -> str:
        return ""

    def collect(self, gen, steps: Steps, final: bool = True) -> list[str]:
        # `final`: the generation ends here (not continued from a saved state), so a character
        # left incomplete becomes U+FFFD.
        streams: list[list[str]] = [[] for _ in range(gen.batch_size)]
        live = np.ones(gen.batch_size, dtype=bool)
        for step, live in steps:
            for k in np.flatnonzero(live):
                streams[k].append(step.text[k])
        if final:
            for k, rest in enumerate(gen.text_end()):
                if live[k]:  # a stream that ended on its stop string ends with it
                    streams[k].append(rest)
        return ["".join(s) for s in streams]

    def per_sample(self, collected: list[str]) -> list[str]:
        return collected

    def prime_cells(self, prime: str, batch_size: int) -> list[list]:
        return [[item] * batch_size for item in prime]

    def cells(self, items) -> Iterable:
        return items.text

    def answer(self, text: str, values: list) -> str:
        return text

    def step_record(self, gen, items, k: int) -> dict:
        record = {"token": items.text[k]}
        # Beyond characters a token's text can be empty (a byte inside a character): its id says which it was.
        if gen.tokenizer.kind != "char":
            record["id"] = int(items[k])
        record["probability"] = float(gen.last_probability[k])
        return record

    def same_samples(self, count: int, sampling, varied: bool) -> str | None:
        if not sampling.greedy:
            return None
        return f"warning: the {count} samples will be the same: `greedy` makes the same choice in each"

    def greedy_at_zero(self, probabilistic: bool) -> bool:
        return True

    def sample_config(self, *, temperature, top_k, top_p, greedy, noise, probabilistic, given):
        from .generate.sampling import SampleConfig

        if noise is not None:
            self.check("noise")
        if greedy and any(v is not None for v in (temperature, top_k, top_p)):
            raise UsageError(
                "`greedy` always takes the most likely character: `temperature`, `top_k` and `top_p` "
                "would change nothing (drop one or the other)"
            )
        if greedy and given.get("min_p") is not None:
            raise UsageError("`greedy` always takes the most likely character: `min_p` would change nothing")
        return SampleConfig(
            temperature=1.0 if temperature is None else temperature, top_k=top_k, top_p=top_p, greedy=greedy, **given
        )

    def resumed_sampling(self, config, saved, *, temperature, top_k, top_p, greedy, noise, probabilistic, given):
        from .generate.sampling import TEXT_CHOICES, SampleConfig

        sampled = [v for v in (temperature, top_k, top_p) if v is not None]
        return SampleConfig(
            temperature=_keep(temperature, saved.temperature),
            top_k=_keep(top_k, saved.top_k),
            top_p=_keep(top_p, saved.top_p),
            greedy=greedy or (saved.greedy and not sampled),
            **{k: _keep(given.get(k), getattr(saved, k)) for k in TEXT_CHOICES},
        )

    def unit(self, tokens: str) -> str:
        return "chars" if tokens == "char" else "tokens"

    def loss_text(self, value: float) -> str:
        return f"{value:.4f}"  # a text's loss is a few nats

    def summary_rows(self, result, tokens: str) -> list[tuple[str, str]]:
        per = "char" if tokens == "char" else "token"
        return [
            (f"best val loss (nats/{per})", f"{self.loss_text(result.best_val)} at step {result.best_step}"),
            ("best val bits/char", f"{result.best_bpc:.4f}"),
        ]

    def size(self, dataset) -> int:
        return sum(dataset.characters(stream) for stream in dataset.streams)

    def fitted(self, model_config, data):
        from dataclasses import replace

        return replace(model_config, vocab_size=len(data.vocab))

    def check_training_options(self, target, calendar, tokens, series_options: list[str]) -> None:
        if target is not None:
            self.check("target")
        if calendar is not None:
            self.check("calendar")
        if series_options:
            self.check("series options", names=" and ".join(series_options))

    def describe(self, data) -> dict:
        # Characters are stored as their `vocab`, as every checkpoint stored them before other tokens.
        return {"tokenizer": data.tokenizer.to_dict()} if data.tokenizer is not None else {"vocab": data.vocab}

    def check_resumed(self, ckpt, data) -> None:
        from .data.tokenizers import tokenization

        ours = data.tokenizer.kind if data.tokenizer is not None else "char"
        if tokenization(ckpt.data) != ours:
            raise UsageError(
                f"`resume` {ckpt.path}: that run's tokens are {tokenization(ckpt.data)}, not {ours} "
                "(give the same `tokens`)"
            )
        if ours == "char" and ckpt.vocab != data.vocab:
            raise UsageError(f"`resume` {ckpt.path}: the data's characters differ from the checkpoint's vocabulary")
        if ours != "char" and ckpt.described.tokenizer != data.tokenizer.to_dict():
            raise UsageError(f"`resume` {ckpt.path}: the data's tokens differ from the checkpoint's")


class SeriesKind(Kind):
    """Numeric series: values in, values drawn from the output head out."""

    name, default_format, answer_key = "series", "values", "values"
    refusals = {
        "stop": "`stop` applies to text models",
        "beam": "`beam` searches for likely text; this model generates numbers",
        "beam search": "beam search chooses characters; this model generates numbers",
        "adapt": "`adapt` works with text models so far; {path} models numbers",
        "dynamic evaluation": "`adapt`: dynamic evaluation works with text models so far; {path} models numbers",
        "adapting": "{path} is a {kind} model; adapting to what it reads works with text models",
        "text evaluation": "{path} is a {kind} model; text evaluation needs a text model",
        "format text": "`format` text is for text models; this model generates numbers (use values, csv or jsonl)",
        "text choices": "`{option}` chooses characters; this model generates numbers",
        "tokens": "`tokens` and `vocab_size` apply to text; this data is a numeric series",
        "logprobs": "`logprobs` applies to text models (a series model's values have no probabilities)",
        "logit_bias": "`logit_bias` applies to text models (a series model has no tokens)",
        "echo": "`echo` applies to text models",
        "chat": "{name} is a series model: chat completions need a text model",
        "tokenize": "{name} is a series model: it reads numbers, not tokens (/{endpoint} needs a text model)",
        # What a series has no use for, said for a reader of this table (never raised):
        "several prompts": "a list given as a series model's prompt is its values, one prompt",
        "token ids": "a series model reads values, not token ids",
        "prefill": "a series prompt is fed in one call, not token by token in the engine",
        "training samples": "samples during training show how a text reads; a series' validation says it",
        "loop warnings": "a loop is text that repeats; values have none to warn of",
    }

    def as_prime(self, prime, label: str = "`prime`"):
        from .data.series import parse_numbers

        if prime is None:
            return None
        if isinstance(prime, str):
            return parse_numbers(prime, label)
        return np.asarray(prime, dtype=np.float64)

    def nothing(self) -> np.ndarray:
        return np.zeros(0)

    def collect(self, gen, steps: Steps, final: bool = True) -> np.ndarray:
        channels = (gen.channels,) if gen.channels > 1 else ()
        items = [items for items, _ in steps]
        return np.swapaxes(np.array(items, dtype=np.float64).reshape((len(items), gen.batch_size) + channels), 0, 1)

    def per_sample(self, collected: np.ndarray) -> list:
        return collected.tolist()

    def prime_cells(self, prime, batch_size: int) -> list[list]:
        return [list(map(format_value, column)) for column in prime_rows(prime, batch_size).T]

    def cells(self, items) -> Iterable:
        return map(format_value, items)

    def answer(self, text: str, values: list) -> list:
        return values

    def step_record(self, gen, items, k: int) -> dict:
        return {"value": float(items[k])}

    def same_samples(self, count: int, sampling, varied: bool) -> str | None:
        if sampling.noise or varied:
            return None
        return (
            f"warning: the {count} streams will be the same (up to rounding): a continuous model is "
            "deterministic without `noise` (give `noise` 0.05, say, for different streams)"
        )

    def greedy_at_zero(self, probabilistic: bool) -> bool:
        return probabilistic  # a point model takes it as no noise

    def sample_config(self, *, temperature, top_k, top_p, greedy, noise, probabilistic, given):
        from .generate.sampling import SampleConfig

        if given:
            self.check("text choices", option=next(iter(given)))
        if probabilistic:
            # Each value is drawn from the distribution the head predicts: `temperature` scales
            # its spread, `greedy` feeds back its mean.
            if top_k is not None or top_p is not None:
                raise UsageError("`top_k` and `top_p` choose characters; this model generates numbers")
            if greedy and temperature is not None:
                raise UsageError(
                    "`greedy` feeds back the mean of each predicted distribution: a `temperature` "
                    "would change nothing (drop one or the other)"
                )
            if temperature is not None and temperature <= 0:
                raise UsageError(
                    f"`temperature` must be > 0, got {temperature} (for the mean of each step, use `greedy`)"
                )
            return SampleConfig(
                temperature=1.0 if temperature is None else temperature,
                greedy=greedy,
                noise=0.0 if noise is None else noise,
            )
        # A point model: `temperature` is another name for the noise added to each fed-back value.
        if top_k is not None or top_p is not None or greedy:
            raise UsageError("`top_k`, `top_p` and `greedy` choose characters; this model generates numbers")
        if temperature is not None and noise is not None and temperature != noise:
            raise UsageError("for a continuous model `temperature` is another name for `noise`: give one of them")
        if temperature is not None and temperature < 0:
            raise UsageError(f"`temperature` must be >= 0, got {temperature}")
        return SampleConfig(noise=next((v for v in (noise, temperature) if v is not None), 0.0))

    def resumed_sampling(self, config, saved, *, temperature, top_k, top_p, greedy, noise, probabilistic, given):
        from .generate.sampling import SampleConfig

        if not probabilistic:
            return config if noise is not None or temperature is not None else saved  # both name the one noise
        return SampleConfig(
            temperature=_keep(temperature, saved.temperature),
            noise=_keep(noise, saved.noise),
            greedy=greedy or (saved.greedy and temperature is None),
        )

    def unit(self, tokens: str) -> str:
        return "values"

    def loss_text(self, value: float) -> str:
        return f"{value:.4g}"  # a series' MSE can be 1e-12 (the oscillator head on sines)

    def summary_rows(self, result, tokens: str) -> list[tuple[str, str]]:
        return [("best val MSE (scaled)", f"{self.loss_text(result.best_val)} at step {result.best_step}")]

    def size(self, dataset) -> int:
        return sum(int(stream.size) for stream in dataset.streams)  # channels read jointly count each value

    def fitted(self, model_config, data):
        from dataclasses import replace

        channels = len(data.channels) if data.channels else 1
        return replace(model_config, calendar=tuple(data.cycles or ()), channels=channels)

    def check_training_options(self, target, calendar, tokens, series_options: list[str]) -> None:
        if tokens is not None:
            self.check("tokens")

    def describe(self, data) -> dict:
        meta = {"mean": np.asarray(data.mean).tolist(), "std": np.asarray(data.std).tolist()}
        if data.channels is not None:
            meta["channels"] = data.channels
        if data.typical_scale is not None:
            meta["typical_scale"] = data.typical_scale
        if data.target != "level":
            meta["target"] = data.target
        if data.series is not None:
            # Each series' own scaling and end: a forecast of one of them continues from there.
            meta["series"] = [
                {
                    "name": e["name"],
                    "mean": e["mean"],
                    "std": e["std"],
                    "last_time": e["last_time"],
                    "prime": [float(v) for v in e["values"][-PRIME_KEEP:]],
                }
                for e in data.series
            ]
        elif data.source.get("type") != "sine":
            # The end of the data, validation tail included: a forecast with no prime continues
            # from the last value the user has, not from a point they already know the sequel of.
            values = (
                data.levels
                if data.levels is not None
                else data.unscale(data.streams[0][-PRIME_KEEP:].astype(np.float64))
            )
            meta["prime"] = np.asarray(values[-PRIME_KEEP:], dtype=np.float64).tolist()
        return meta

    def check_resumed(self, ckpt, data) -> None:
        pass  # nothing beyond what every kind checks: the target, the model's shape


def _keep(value, stored):
    return stored if value is None else value


TEXT, SERIES = TextKind(), SeriesKind()


def kind_named(name: str) -> Kind:
    """The kind of data a checkpoint or dataset records by `name` ("text", "series"; the
    pretrained forecaster's is a series)."""
    return TEXT if name == "text" else SERIES
