"""One generation request: from a checkpoint and what was asked (prime, sampling, series, state,
beam, adaptation) to a Generator fed and ready, and the steps it will make.

`seqgen sample`, `seqgen.sample()` and the server prepare their generations here, so that the
recipe (sampling settings, the weights to run, the series' scaling, the Generator, the prime or a
saved state, beam search or sampling) and the checks between options are written once, worded in
parameters. What the caller does with the steps (write them, collect them, stream them) is its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np

from ..checkpoint import Checkpoint, load_checkpoint
from ..errors import UsageError
from . import state as state_files
from .api import (
    as_prime,
    beam_steps,
    channel_index,
    checkpoint_to_generate,
    generate_steps,
    is_probabilistic,
    sampling_for,
    scaling_to_sample,
    start,
)
from .generator import Generator

if TYPE_CHECKING:
    from ..adapt import AdaptConfig
    from ..model.numpy_backend import NumpyModel


@dataclass
class Request:
    """What a generation asks for, with `seqgen sample`'s option names and defaults. `prime` is a
    text model's text, or a series model's values (or a string of numbers); `num_samples` None is
    one stream, or a loaded state's own count; `choices` holds text's `min_p` and penalties (see
    `SampleConfig`)."""

    length: int = 500
    prime: str | np.ndarray | list | None = None
    num_samples: int | None = None
    seed: int | None = None
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    greedy: bool = False
    noise: float | None = None
    choices: dict = field(default_factory=dict)
    stop: str | None = None
    beam: int | None = None
    length_penalty: float = 1.0
    series: str | None = None
    load_state: str | Path | None = None
    unknown: str = "error"
    adapt: bool | AdaptConfig = False
    backend: str = "auto"
    device: str = "cpu"

    def check(self) -> None:
        """The mistakes in the request itself, before a checkpoint is read."""
        if self.length < 0:
            raise UsageError(f"`length` must be >= 0, got {self.length}")
        if self.num_samples is not None and self.num_samples < 1:
            raise UsageError(f"`num_samples` must be >= 1, got {self.num_samples}")
        if self.load_state is not None and self.num_samples is not None:
            raise UsageError("`num_samples`: a state loaded with `load_state` brings its own number of samples")
        if self.beam is not None:
            if self.beam < 1:
                raise UsageError(f"`beam` must be >= 1, got {self.beam}")
            if self.num_samples is not None and not 1 <= self.num_samples <= self.beam:
                raise UsageError(
                    f"`num_samples` with `beam` {self.beam}: the best continuations found, between 1 "
                    f"and `beam`; got {self.num_samples}"
                )

    @property
    def samples(self) -> int:
        """How many streams a new generation makes (a loaded state brings its own)."""
        return 1 if self.num_samples is None else self.num_samples

    @property
    def state_file(self) -> str | None:
        return None if self.load_state is None else str(self.load_state)


@dataclass
class Prepared:
    """A generation ready to run: the checkpoint as loaded, the one whose weights run (adapted to
    the prime, or a loaded state's), the fed Generator, what was fed, the steps to come (as
    `generate_steps` yields them), and for a model of several channels the one to give back."""

    ckpt: Checkpoint
    running: Checkpoint
    gen: Generator
    fed: str | np.ndarray
    steps: Iterator[tuple[np.ndarray, np.ndarray]]
    channel: int | None = None


def generator_for(
    ckpt: Checkpoint,
    request: Request,
    prime=None,
    *,
    model: NumpyModel | None = None,
    running: Checkpoint | None = None,
) -> Generator:
    """The Generator a request asks for, nothing fed yet: its sampling settings (a loaded state's
    own where the request leaves them out), the scale of the series the prime belongs to (or the
    one named), and the weights of `running` (default: see `checkpoint_to_generate`). `model`: a
    network already loaded with those weights (a server's, shared by its requests)."""
    state = request.state_file
    sampling = sampling_for(
        ckpt.kind,
        state,
        temperature=request.temperature,
        top_k=request.top_k,
        top_p=request.top_p,
        greedy=request.greedy,
        noise=request.noise,
        probabilistic=is_probabilistic(ckpt),
        **request.choices,
    )
    series = None if channel_index(ckpt, request.series) is not None else request.series
    scaling = scaling_to_sample(ckpt, prime, series, state)  # None for text; `series` on text is refused
    if running is None:
        running = checkpoint_to_generate(ckpt, prime, request.adapt, state, request.unknown)
    return Generator.from_checkpoint(
        running,
        backend=request.backend,
        device=request.device,
        model=model,
        sampling=sampling,
        seed=request.seed,
        series=scaling,
    )


def prepare(checkpoint: str | Path | Checkpoint, request: Request) -> Prepared:
    """Everything before the first generated step: the request checked, the checkpoint read, the
    Generator made and fed its prime (or the default one, or a saved state), and the steps to come
    (sampled, or the best continuations of a beam search)."""
    request.check()
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
    prime = as_prime(ckpt, request.prime)
    channel = channel_index(ckpt, request.series)
    running = checkpoint_to_generate(ckpt, prime, request.adapt, request.state_file, request.unknown)
    gen = generator_for(ckpt, request, prime, running=running)
    if request.beam is not None:
        fed, steps = beam_steps(
            gen,
            ckpt,
            prime,
            request.length,
            request.beam,
            results=request.samples,
            stop=request.stop,
            length_penalty=request.length_penalty,
            load_state=request.state_file,
            unknown=request.unknown,
        )
    else:
        fed = start(
            gen,
            ckpt,
            prime,
            num_samples=request.samples,
            seed=request.seed,
            load_state=request.state_file,
            unknown=request.unknown,
        )
        steps = generate_steps(gen, request.length, request.stop)
    return Prepared(ckpt, running, gen, fed, steps, channel)


def sample(
    checkpoint: str | Checkpoint,
    *,
    length: int = 500,
    prime: str | Sequence[float] | None = None,
    temperature: float | None = None,
    top_k: int | None = None,
    top_p: float | None = None,
    greedy: bool = False,
    noise: float | None = None,
    stop: str | None = None,
    num_samples: int | None = None,
    seed: int | None = None,
    backend: str = "auto",
    device: str = "cpu",
    load_state: str | None = None,
    save_state: str | None = None,
    unknown: str = "error",
    beam: int | None = None,
    length_penalty: float = 1.0,
    series: str | None = None,
    adapt: bool | AdaptConfig = False,
    **choices,
) -> list[str] | np.ndarray:
    """Generate from a checkpoint, with the options of `seqgen sample`: a list of texts (one per
    sample, each ending with the token that completed `stop` when it was produced; `length`
    counts tokens) or a (num_samples, length) array of values ((num_samples, length, channels) for
    a model of several channels, whose prime is rows of one value per channel).
    `unknown` says what to do with characters of a text prime the model has never seen: "error",
    "skip" them or "replace" them with a space (see `CharTokenizer.known`). `choices`: text's
    min_p and penalties (see `SampleConfig`). `beam`: the `num_samples` most likely continuations
    by beam search over that many hypotheses (see seqgen/generate/beam.py), best first. `series`:
    which series of a model of several to generate (see `scaling_to_sample`), or of a model of
    several channels the one to give back (a (num_samples, length) array). `adapt` (True, or an
    `AdaptConfig`): generate from a copy of the weights fine-tuned on the text prime first (see
    `checkpoint_to_generate`); `save_state` then keeps those weights with the state."""
    if save_state is not None:
        state_files.check_state_target(save_state)
    request = Request(
        length=length,
        prime=prime,
        num_samples=num_samples,
        seed=seed,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        greedy=greedy,
        noise=noise,
        choices=choices,
        stop=stop,
        beam=beam,
        length_penalty=length_penalty,
        series=series,
        load_state=load_state,
        unknown=unknown,
        adapt=adapt,
        backend=backend,
        device=device,
    )
    ready = prepare(checkpoint, request)
    gen = ready.gen
    result = gen.data_kind.collect(gen, ready.steps, final=save_state is None)
    if ready.channel is not None:  # one channel of a model of several
        result = result[..., ready.channel]
    if save_state is not None:
        state_files.save_state(save_state, gen)
    return result


def notes(ready: Prepared, request: Request, seconds: float = 0.0) -> list[str]:
    """What to tell the person who asked, once a generation is prepared (parameters in backquotes):
    what `adapt` did, which series of several is continued, why samples will all be the same."""
    said = []
    how = ready.running.meta.get("adapted")
    if request.adapt:
        said.append(
            f"adapted a copy of the weights to the prime: {how['prime_tokens']:,} tokens read {how['passes']} times, "
            f"{how['method']} lr {how['lr']:g}, windows of {how['window']} ({seconds:.1f}s)"
        )
    elif how is not None:
        said.append(f"note: {request.load_state} holds weights adapted to its prime; the generation goes on with them")
    if request.load_state is None and request.series is None:
        said += _which_series(ready.ckpt, ready.gen.series, request.prime)
    return said + _same_samples(ready.ckpt, request, ready.gen.sampling)


def _which_series(ckpt: Checkpoint, scaling: dict | None, prime) -> list[str]:
    """A model of several series continues one of them: which, when the request did not name it."""
    entries = ckpt.described.series
    if scaling is None or len(entries) < 2:
        return []
    if "name" not in scaling:
        return [
            f"note: the prime is none of the {len(entries)} series this model knows; it is scaled by its own mean "
            "and standard deviation (`series` names one of them)"
        ]
    if prime is None:
        return [
            f"note: this model knows {len(entries)} series; continuing the first, {scaling['name']!r} "
            "(`series` chooses another)"
        ]
    return []


def _same_samples(ckpt: Checkpoint, request: Request, sampling) -> list[str]:
    """Several samples that will all be the same: why, and what makes them differ."""
    if request.samples < 2:
        return []
    # Without a prime, a sine model's samples each start from a fresh wave of their own.
    own_primes = request.prime is None and request.load_state is None and ckpt.described.is_sine
    drawn = is_probabilistic(ckpt) and not sampling.greedy
    warning = ckpt.data_kind.same_samples(request.samples, sampling, varied=own_primes or drawn)
    return [warning] if warning else []


def calendar_note(ckpt: Checkpoint, what: str) -> str | None:
    """A model that reads the calendar, given values without times: where they are taken to be."""
    if not ckpt.model_config.calendar:
        return None
    return (
        f"note: this model reads the calendar; {what} is taken to be at the training data's last time "
        "(`seqgen forecast` with a CSV of dated values forecasts from any time)"
    )
