"""The pieces of a generation from a checkpoint (the default prime, sampling settings, the weights
to run, a series' scaling, getting a generator ready from a prime or a saved state, the steps of
sampling or beam search), which request.py puts together for `sample()`, `seqgen sample` and the
server; and `follow()`: one-step-ahead forecasts of a live stream.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Iterable, Iterator, Sequence

import numpy as np

from ..checkpoint import Checkpoint
from ..data import SCALE_PRIME, SineConfig, sine_waves
from ..data.tokenizers import UNKNOWN_POLICIES, stored_tokenizer, tokenizer_for
from ..errors import UsageError
from ..kinds import TEXT, kind_named
from ..model.heads import head_for
from .generator import Generator, Step, scaling_for, series_entry
from .sampling import TEXT_CHOICES, SampleConfig, stop_matcher
from . import state as state_files

if TYPE_CHECKING:
    from ..adapt import AdaptConfig
    from ..learn import OnlineLearner


def default_prime(
    ckpt: Checkpoint, seed: int | None = None, length: int = 100, count: int = 1, entry: dict | None = None
) -> str | np.ndarray:
    """What to prime with when the user gives nothing: a newline for text; for a series its last
    `length` values, validation tail included, so the continuation follows the end of the data (a
    checkpoint written before seqgen 0.2 holds the values just before the tail instead; a model of
    several series: `entry`'s, default the first); for sine, a fresh wave in the training range, or
    with `count` > 1 a (count, length) array: a fresh wave for each sample (the first is the wave
    `count` 1 gives, for the same `seed`)."""
    data = ckpt.data
    tokenizer = stored_tokenizer(data)
    if tokenizer is not None:
        return "\n" if not tokenizer.unknown("\n") else tokenizer.vocab[0]
    source = data.get("source", {})
    if source.get("type") == "sine":
        config = SineConfig(**{k: v for k, v in source.items() if k != "type"})
        rng = np.random.default_rng(seed)
        # One wave at a time from one generator: sample k's wave is the same whatever `count` is.
        waves = np.concatenate([sine_waves(1, length, config, rng) for _ in range(count)]).astype(np.float64)
        return waves[0] if count == 1 else waves
    entry = entry if entry is not None and "prime" in entry else series_entry(ckpt)
    return np.asarray((entry or data)["prime"][-length:], dtype=np.float64)


def is_probabilistic(ckpt: Checkpoint) -> bool:
    """Whether a checkpoint's model predicts a distribution of each next value (a likelihood head)."""
    return head_for(ckpt.model_config).probabilistic


def as_prime(
    ckpt: Checkpoint, prime: str | None, prime_values: Sequence[float] | None = None
) -> str | np.ndarray | None:
    """A prime as the model reads it (None when none was given): text for a text model, else an
    array of values (`prime_values`, or a string of numbers parsed)."""
    return ckpt.data_kind.as_prime(prime_values if prime_values is not None else prime)


def scaling_to_sample(
    ckpt: Checkpoint, prime: str | np.ndarray | None, series: str | None = None, load_state: str | None = None
) -> dict | None:
    """The scaling a model of several series samples in (None: the generator's default): the series
    named; else the one the prime belongs to (see `scaling_for`); else, with no prime, the first,
    whose end the default prime continues. A saved state brings the scaling it was generated in."""
    if series is not None:
        ckpt.data_kind.check("series")
    if load_state is not None:
        if series is not None:
            raise UsageError("`series`: a state loaded with `load_state` goes on in the series it was saved in")
        return None
    # A model of one series (and text, which has none) has no scaling of its own to choose: None.
    return scaling_for(ckpt, prime, series) if prime is not None else series_entry(ckpt, series)


def generate_steps(gen: Generator, length: int, stop: str | None = None) -> Iterator[tuple[Step, np.ndarray]]:
    """Like `gen.generate(length)`, yielding (step, live): `live` marks the streams whose item
    counts (for text, `step.text` holds each item's text). A stream ends once its
    text has produced `stop` (that step is still live); when every stream has ended, so does the
    iteration."""
    live = np.ones(gen.batch_size, dtype=bool)
    matcher = None
    if stop is not None:
        matcher = stop_matcher(check_stop(gen, stop), gen.tokenizer, gen.batch_size)
    for _ in range(length):
        items = gen.step()
        yield items, live
        if matcher is not None:
            live = live & ~matcher.update(items, items.text)
            if not live.any():
                return


def check_stop(gen: Generator, stop: str) -> str:
    """A stop string, checked for what the model cannot make."""
    gen.data_kind.check("stop")
    if stop == "":
        raise UsageError("`stop` needs at least one character")
    unknown = gen.tokenizer.unknown(stop)
    if unknown:
        raise UsageError(f"`stop` {stop!r}: the model never produces {', '.join(map(repr, unknown))}")
    return stop


def beam_steps(
    gen: Generator,
    ckpt: Checkpoint,
    prime: str | None,
    length: int,
    beam: int,
    *,
    results: int = 1,
    stop: str | None = None,
    length_penalty: float = 1.0,
    load_state: str | None = None,
    unknown: str = "error",
) -> tuple[str, Iterator[tuple[Step, np.ndarray]]]:
    """Beam search from a prime (or a saved state of one stream), as (what was fed, steps): the
    `results` best continuations as `generate_steps` yields steps, a row each, so that every
    output format writes them; a continuation that stopped early is not live after its end."""
    from .beam import beam_search

    gen.data_kind.check("beam")
    s = gen.sampling
    if s.greedy or s.top_k is not None or s.top_p is not None or s.min_p is not None:
        raise UsageError(
            "`beam` ranks whole continuations by probability: `greedy`, `top_k`, `top_p` and `min_p` "
            "choose single characters by sampling (drop them, or drop `beam`)"
        )
    stop = check_stop(gen, stop) if stop is not None else None
    fed = start(gen, ckpt, prime, num_samples=1, load_state=load_state, unknown=unknown)
    held = gen.detokenizer.pending()[0]  # bytes of a character begun before the search (a loaded state's)
    found = beam_search(gen, length, beam, results, stop, length_penalty)

    def steps():
        # The search is over: its continuations are replayed, each step's text made as `step` makes it.
        text = gen.tokenizer.detokenizer(len(found))
        text.set_pending([held] * len(found))
        for t in range(max(len(h.tokens) for h in found)):
            live = np.array([t < len(h.tokens) for h in found])
            items = np.array([h.tokens[t] if t < len(h.tokens) else 0 for h in found])
            yield Step.of(items, text.add(items)), live

    return fed, steps()


def sampling_config(
    kind: str,
    *,
    temperature: float | None = None,
    top_k: int | None = None,
    top_p: float | None = None,
    greedy: bool = False,
    noise: float | None = None,
    probabilistic: bool = False,
    **choices,
) -> SampleConfig:
    """The sampling settings for a "text" or "series" model, with each option's meaning there.

    For a continuous model with a likelihood head (`probabilistic`), each value is drawn from the
    distribution it predicts: `temperature` scales that distribution's spread (default 1) and
    `greedy` feeds back its mean. For a point model `temperature` is another name for `noise`
    (the std of the noise added to each fed-back value, in the data's units; default 0).
    top_k and top_p are text-only, as are the `choices` of TEXT_CHOICES (min_p and the penalties;
    None leaves one at its default).
    """
    unknown = set(choices) - set(TEXT_CHOICES)
    if unknown:
        raise UsageError(f"unknown sampling setting `{sorted(unknown)[0]}`")
    given = {k: v for k, v in choices.items() if v is not None}
    config = kind_named(kind).sample_config(
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        greedy=greedy,
        noise=noise,
        probabilistic=probabilistic,
        given=given,
    )
    config.check()
    return config


def sampling_for(
    kind: str,
    load_state: str | None = None,
    *,
    temperature: float | None = None,
    top_k: int | None = None,
    top_p: float | None = None,
    greedy: bool = False,
    noise: float | None = None,
    probabilistic: bool = False,
    **choices,
) -> SampleConfig:
    """`sampling_config`, except that a continuation (`load_state`) keeps the settings its state
    was saved with, so that it goes on as one long call would; an option given replaces its own
    saved value (and `greedy`, or a temperature, top-k or top-p, switches between greedy and
    sampled choice)."""
    config = sampling_config(
        kind,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        greedy=greedy,
        noise=noise,
        probabilistic=probabilistic,
        **choices,
    )
    if load_state is None:
        return config
    saved = state_files.saved_sampling(load_state)
    if saved is None:  # a state from before sampling settings were saved
        return config
    return kind_named(kind).resumed_sampling(
        config,
        saved,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        greedy=greedy,
        noise=noise,
        probabilistic=probabilistic,
        given=choices,
    )


def start(
    gen: Generator,
    ckpt: Checkpoint,
    prime: str | np.ndarray | None = None,
    *,
    num_samples: int = 1,
    seed: int | None = None,
    load_state: str | None = None,
    unknown: str = "error",
) -> str | np.ndarray:
    """Get `gen` ready to step: from a saved state (then the prime, if any, is fed after it) or from
    the prime (default: see `default_prime`) for `num_samples` streams. A text prime's characters
    the model has never seen are handled by `unknown` (see `CharTokenizer.known`). Returns what
    was fed."""
    if unknown not in UNKNOWN_POLICIES:
        raise UsageError(f"`unknown` must be one of {', '.join(UNKNOWN_POLICIES)}, got {unknown!r}")
    prime = gen.data_kind.readable(gen.tokenizer, prime, unknown)
    if load_state is not None:
        gen.restore(state_files.load_state(load_state, gen))
        if prime is None:
            return gen.data_kind.nothing()
        gen.feed(prime)
        return prime
    if num_samples < 1:
        raise UsageError(f"`num_samples` must be >= 1, got {num_samples}")
    prime = prime if prime is not None else default_prime(ckpt, seed, count=num_samples, entry=gen.series)
    gen.reset(num_samples)
    if np.ndim(prime) < (2 if gen.channels == 1 else 3):  # one prime for every stream
        gen.feed(prime)
    else:
        gen.feed_values(prime)  # a prime of its own for each stream
    return prime


def checkpoint_to_generate(
    ckpt: Checkpoint,
    prime: str | np.ndarray | None = None,
    adapt: bool | AdaptConfig = False,
    load_state: str | None = None,
    unknown: str = "error",
) -> Checkpoint:
    """The checkpoint a generation runs: `ckpt`; with `adapt` (True, or an `AdaptConfig`), a copy
    in memory whose weights have learnt from the text `prime` (see seqgen/adapt.py); with
    `load_state`, the weights that state was generated with (adapted ones, when it holds them)."""
    from ..adapt import adapt_config, adapt_to_prime

    config = adapt_config(adapt)
    if load_state is not None:
        if config is not None:
            raise UsageError(
                "`adapt` adapts the weights to the prime of a new generation; a state loaded with "
                "`load_state` goes on with the weights it was saved with (drop `adapt`)"
            )
        return state_files.saved_weights(load_state, ckpt) or ckpt
    if config is None:
        return ckpt
    ckpt.data_kind.check("adapt", path=ckpt.path)
    if not isinstance(prime, str):
        raise UsageError("`adapt` learns from the prime: give a prime (a few hundred characters or more)")
    tokenizer = tokenizer_for(ckpt.data)
    return adapt_to_prime(ckpt, tokenizer.encode(tokenizer.known(prime, unknown)), config)


def text_prime(gen: Generator, ckpt: Checkpoint, prime: str | None = None, unknown: str = "error") -> str:
    """The text `start` would feed a text generator for `prime` (None: the default prime), its
    characters the model has never seen handled by `unknown`, without feeding it: for a caller
    that feeds it itself (a server's engine, a token per batched step)."""
    if unknown not in UNKNOWN_POLICIES:
        raise UsageError(f"`unknown` must be one of {', '.join(UNKNOWN_POLICIES)}, got {unknown!r}")
    return gen.data_kind.readable(gen.tokenizer, prime, unknown) if prime is not None else default_prime(ckpt)


def channel_index(ckpt: Checkpoint, series: str | None) -> int | None:
    """`series` naming a channel of a model of several channels (`joint`): its index, the one
    channel to give back (all of them are still read and generated together); None otherwise."""
    channels = ckpt.described.channels if ckpt.model_config.channels > 1 else None
    if not channels or series is None:
        return None
    if series not in channels:
        raise UsageError(
            f"`series` {series!r}: {ckpt.path} models the channels {', '.join(map(repr, channels))}; name one of them"
        )
    return channels.index(series)


def collect_text(gen: Generator, steps: Iterable[tuple[Step, np.ndarray]], final: bool = True) -> list[str]:
    """Each stream's text from the steps of `generate_steps`. `final`: the generation ends here
    (not continued from a saved state), so a character left incomplete becomes U+FFFD."""
    return TEXT.collect(gen, steps, final)


def follow(
    gen: Generator,
    values: Iterable[float],
    horizon: int = 1,
    samples: int = 0,
    quantiles: Sequence[float] = (),
    learn: OnlineLearner | None = None,
) -> Iterator[np.ndarray]:
    """Feed true values one at a time; after each, yield the forecast of the next `horizon` values.

    The forecast beyond one step free-runs on a copy of the state, so the real state only ever
    sees true values; a likelihood head's point forecast feeds back its mean. With `samples`,
    each forecast is instead `samples` sampled paths from that copy, and what is yielded is their
    mean and then each of `quantiles`: a (1 + len(quantiles), horizon) array. `gen` is a
    continuous-model Generator with one stream. For a model of several channels each value is a
    row of one per channel, and each forecast gains a last axis of them: (horizon, channels).

    With `learn` (a `seqgen.learn.OnlineLearner` made on `gen`), the weights keep training on the
    recent values as they arrive, and each forecast comes from them (see seqgen/learn.py).
    """
    gen.data_kind.check("follow")
    if horizon < 1:
        raise UsageError(f"`horizon` must be >= 1, got {horizon}")
    if samples < 0 or (quantiles and samples < 1):
        raise UsageError(f"`samples` must be >= 1 for intervals, got {samples}")
    if gen.batch_size != 1:
        gen.reset(1)
    # A generator already primed (or restored) keeps its state and its measured size.
    measuring = gen.scale_each and gen.last_output is None
    # A model of steps sees its first step only with the second value; until then its forecast
    # is the naive one, the value repeated (one line per input all the same).
    first: float | None = None
    waiting = gen.target == "diff" and gen.last_output is None
    seen: list[float] = []
    for value in values:
        if waiting:
            if first is None:
                first = value
                shape = (horizon,) if not samples else (1 + len(quantiles), horizon)
                yield np.broadcast_to(np.asarray(first, dtype=np.float64), shape + np.shape(first)).copy()
                continue
            waiting = False
            gen.feed([first, value])
        elif measuring and len(seen) < SCALE_PRIME:
            # The stream's size is measured on its first SCALE_PRIME values, as on a prime; until
            # there are that many, each new value refines the measure and the state is run again
            # from the start under it (at most SCALE_PRIME short runs, once).
            seen.append(value)
            gen.reset(1)
            gen.feed(seen)
            if learn is not None:
                learn.forget()
        elif learn is not None:
            learn.feed(value)
        else:
            gen.feed([value])
        if samples:
            yield _sampled_forecast(gen, horizon, samples, quantiles)
        elif horizon == 1:
            yield gen.prediction()
        else:
            yield _point_forecast(gen, horizon)


def _point_forecast(gen: Generator, horizon: int) -> np.ndarray:
    """The free run of `horizon` steps from a copy of the state, feeding back each step's mean."""
    saved, sampling = gen.snapshot(), gen.sampling
    gen.sampling = replace(sampling, greedy=True) if gen.head.probabilistic else sampling
    try:
        return np.array([gen.step()[0] for _ in range(horizon)])
    finally:
        gen.sampling = sampling
        gen.restore(saved)


def _sampled_forecast(gen: Generator, horizon: int, samples: int, quantiles: Sequence[float]) -> np.ndarray:
    """Mean and quantiles of `samples` paths from a copy of the state; the random numbers go on."""
    saved = gen.snapshot()
    gen.fork(samples)
    paths = np.array([gen.step() for _ in range(horizon)])  # (horizon, samples[, channels])
    drawn = gen.rng.bit_generator.state
    gen.restore(saved)
    gen.rng.bit_generator.state = drawn
    rows = [paths.mean(axis=1)]
    if quantiles:
        rows.extend(np.quantile(paths, list(quantiles), axis=1))
    return np.array(rows)
