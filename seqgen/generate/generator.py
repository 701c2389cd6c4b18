"""The stateful `Generator`: it owns the recurrent state and feeds each choice back in.

`reset` sets the state to zero, `feed` runs a prime through the network in one call, `step`
chooses the next item from the last output and feeds it back (one step of the network, whatever
the length so far), and `generate(n)` iterates `step`. The randomness is NumPy's, seeded, so the
same seed gives the same output on either backend for the same weights. Each step returns what
it made, a `Step`: the items, and for text the text the chosen tokens complete, holding back the
first bytes of a character whose last byte is still to come.
"""

from __future__ import annotations

import math
from typing import Iterator

import numpy as np

from ..checkpoint import Checkpoint, load_checkpoint
from ..config import ModelConfig
from ..data import MIN_SCALE_PRIME, stream_scale
from ..data.calendar import calendar_features, step_index
from ..data.times import Frequency
from ..data.tokenizers import CharTokenizer, Tokenizer, stored_tokenizer
from ..errors import DataError, UsageError
from ..kinds import Kind, kind_named
from ..model.heads import head_for
from ..model.numpy_backend import NumpyModel
from .sampling import SampleConfig, choose_tokens, draw_tokens, keep_allowed, sampling_weights, token_probability

BACKENDS = ("auto", "numpy", "torch")


class TorchRunner:
    """Adapts a torch `SeqModel` to the NumPy-in, NumPy-out interface the Generator uses."""

    def __init__(self, model, device: str = "cpu"):
        import torch

        self.torch, self.model, self.device = torch, model.to(device).eval(), device
        self.config: ModelConfig = model.config

    def init_state(self, batch_size: int):
        return self.model.init_state(batch_size, self.device)

    def state_from_arrays(self, arrays: list[np.ndarray]):
        tensors = [self.torch.as_tensor(a, dtype=self.torch.float32, device=self.device) for a in arrays]
        return (tensors[0], tensors[1]) if self.config.cell == "lstm" else tensors[0]

    def forward(self, x: np.ndarray, state):
        with self.torch.no_grad():
            y, state = self.model(self._tensor(x), state)
        return y.float().cpu().numpy(), state

    def step(self, x: np.ndarray, state):
        with self.torch.no_grad():
            y, state = self.model.step(self._tensor(x), state)
        return y.float().cpu().numpy(), state

    def _tensor(self, x: np.ndarray):
        dtype = self.torch.long if self.model.reader.dtype == np.int64 else self.torch.float32
        return self.torch.as_tensor(np.array(x), dtype=dtype, device=self.device)


class Step(np.ndarray):
    """What one step made: an array of each stream's item (token ids, or values), so that code
    that reads only the items reads it as before; for text also `text`, the text each stream's
    token completed ("" for the first bytes of a character whose last byte is still to come)."""

    text: list[str] | None = None

    @classmethod
    def of(cls, items: np.ndarray, text: list[str] | None = None) -> Step:
        step = np.asarray(items).view(cls)
        step.text = text
        return step


class Generator:
    """Stateful generation from a trained model; each `step()` costs one step of the network.

    For text, items are token ids (use `decode`/`encode`); for series, values in the data's units.
    `model` is a backend with `config`, `init_state(batch)`, `forward(x, state)` for whole
    (batch, time) inputs and `step(x, state)` for one (batch,) input: `NumpyModel` or `TorchRunner`.
    """

    def __init__(
        self,
        model,
        *,
        vocab: list[str] | None = None,
        tokenizer: Tokenizer | None = None,
        mean: float = 0.0,
        std: float = 1.0,
        sampling: SampleConfig | None = None,
        seed: int | None = None,
        target: str = "level",
    ):
        """Text models take a `tokenizer` (or, for characters, just their `vocab`); a series model
        its scaling (`mean`, `std`) and what it predicts (`target`: values, or "diff": steps)."""
        self.model = model
        self.config: ModelConfig = model.config
        self.tokenizer = tokenizer or (CharTokenizer(vocab) if vocab else None)
        self.vocab = self.tokenizer.vocab if self.tokenizer else None
        # What the network's output means (model/heads.py): logits to choose a token from, or a
        # value or distribution to draw the next value from.
        self.head = head_for(self.config)
        # A model of several channels has a mean and std per channel (lists, as stored).
        self.mean, self.std, self.target = _scaling(mean), _scaling(std), target
        self.channels = self.config.channels
        # A model of several series: the stored entry of the one generated (its scaling, end and
        # default prime), set by from_checkpoint; None for a model of one series.
        self.series: dict | None = None
        self.sampling = sampling or SampleConfig()
        self.sampling.check()
        self.rng = np.random.default_rng(seed)
        self._last_choice: tuple[np.ndarray, np.ndarray] | None = None
        self.checkpoint_checksum: str | None = None  # set by from_checkpoint; ties saved states to their model
        # Weights adapted to a prime (seqgen/adapt.py) and how, set by from_checkpoint: a saved
        # state carries them, since it goes on only with them. None: the checkpoint's own.
        self.adapted_weights: dict[str, np.ndarray] | None = None
        self.adapted_how: dict | None = None
        # A likelihood head's spread is widened by this factor: how far its errors on validation
        # data exceeded the spread it predicted there (see train/trainer.validation_pass).
        self.spread_scale = 1.0
        # Series models trained with each stream divided by its own size (SineConfig.scale_each)
        # divide each stream by its prime's size the same way; `scale` holds those sizes.
        self.scale_each, self.typical_scale = False, 1.0
        # A model with calendar inputs reads each value's place in its cycles (data/calendar.py):
        # it needs to know when the values are. `data_end` is the step index of the training
        # data's last value, where a prime fed without an `end` is taken to end.
        self.cycles = tuple(self.config.calendar)
        self.data_end: float | None = None
        self.reset()

    @property
    def data_kind(self) -> Kind:
        """Text (the items are tokens) or series (values): see seqgen/kinds.py."""
        return kind_named("series" if self.head.continuous else "text")

    @property
    def last_probability(self) -> np.ndarray | None:
        """For text: the probability each stream's last chosen token had (None before a step)."""
        return None if self._last_choice is None else token_probability(*self._last_choice)

    def reset(self, batch_size: int = 1) -> None:
        """Zero the state for `batch_size` independent streams; nothing has been fed yet."""
        self.batch_size = batch_size
        self.state = self.model.init_state(batch_size)
        self._set_scale(None)
        self.last_output: np.ndarray | None = None
        # Text: what turns each stream's tokens into the text they complete.
        self.detokenizer = self.tokenizer.detokenizer(batch_size) if self.tokenizer else None
        # A model of differences adds each step to the stream's last value, kept here.
        self.level: np.ndarray | None = None
        # An output head with a state of its own (the oscillator's sums) keeps it here.
        self.head_state = self.head.init_state(batch_size)
        # With calendar inputs: the step index of each stream's last value fed.
        self.clock: np.ndarray | None = None
        self._reset_memory()

    def _reset_memory(self, recent: np.ndarray | None = None) -> None:
        """The tokens of the penalty window (text with penalties on), oldest first, -1 where the
        window is not yet full, and how often each token occurs in it."""
        if self.head.continuous or not self.sampling.penalised:  # penalties weigh tokens
            self.recent = self.counts = None
            return
        window = self.sampling.penalty_window
        self.recent = np.full((self.batch_size, window), -1, dtype=np.int64)
        if recent is not None:
            keep = np.asarray(recent, dtype=np.int64)[:, -window:]
            self.recent[:, window - keep.shape[1] :] = keep
        self.counts = np.zeros((self.batch_size, self.config.vocab_size), dtype=np.int64)
        rows = np.repeat(np.arange(self.batch_size), window)
        seen = self.recent.reshape(-1) >= 0
        np.add.at(self.counts, (rows[seen], self.recent.reshape(-1)[seen]), 1)

    def _remember(self, tokens: np.ndarray) -> None:
        """Push tokens (batch, n) into the penalty window."""
        if self.recent is None:
            return
        rows = np.arange(self.batch_size)
        for column in tokens[:, -self.recent.shape[1] :].T:
            dropped = self.recent[:, 0]
            np.subtract.at(self.counts, (rows[dropped >= 0], dropped[dropped >= 0]), 1)
            self.recent[:, :-1] = self.recent[:, 1:]
            self.recent[:, -1] = column
            np.add.at(self.counts, (rows, column), 1)

    def feed(self, inputs, end: float | np.ndarray | None = None) -> np.ndarray:
        """Run inputs through the network, updating the state; returns the outputs for each input.

        `inputs`: a string (text), a sequence of values (series), or a (batch, time) array of
        token ids / scaled values. A 1-D input is given to every stream; `feed_values` gives
        each stream values of its own. `end`, for a model with calendar inputs: the step index
        (`data.calendar.step_index`) of the last value, one for all streams or one each; by
        default the values follow those fed before, or else end where the training data ended.
        """
        x = self._as_model_input(inputs)
        if x.shape[1] == 0:
            raise DataError("the prime is empty: give at least one character or value")
        if self.scale_each:
            if self.scale is None:
                # Measured on the first feed (the prime); a few values say little about a wave's
                # size, so below MIN_SCALE_PRIME the training waves' mean size stands in for it.
                self._set_scale(
                    stream_scale(x) if x.shape[1] >= MIN_SCALE_PRIME else np.full(len(x), self.typical_scale)
                )
            x = x / self.scale[:, None]
        outputs, self.state = self.model.forward(self._with_calendar(x, end), self.state)
        self._remember(x)
        if self.detokenizer:
            # Bytes of a character left incomplete can never be completed now that whole text
            # follows them: they are dropped, not shown.
            self.detokenizer.set_pending([b""] * self.batch_size)
        if self.head_state is not None:
            outputs, self.head_state, _ = self.head.forward_numpy(x, outputs, self.head_state)
        self.last_output = outputs[:, -1]
        return outputs

    def step(self) -> Step:
        """Choose the next item for every stream from the last output, feed it back, return it
        (with the text it completed, for text)."""
        x, items = self.choose()
        output, self.state = self.model.step(x, self.state)
        self.took(x, output)
        return items

    def choose(self) -> tuple[np.ndarray, Step]:
        """The first half of `step`: each stream's next item, drawn from the last output, as the
        network's next input and in the data's terms: (inputs, items as a `Step`). A server steps the network
        of many generators at once between each one's `choose` and `took`."""
        if self.last_output is None:
            raise UsageError("feed a prime before stepping: the generator has no output to continue from")
        return self._choose_value() if self.head.continuous else self._choose_token()

    def _choose_token(self) -> tuple[np.ndarray, Step]:
        """A token per stream, chosen from the logits by the sampling policy; it is its own input."""
        items, weights = choose_tokens(self.last_output, self.sampling, self.rng, self.counts)
        items, weights = self._well_formed(items, weights)
        return items, self._chose(items, weights)

    def _choose_value(self) -> tuple[np.ndarray, Step]:
        """A value per stream, drawn from the head's output, in model units (the input) and the data's."""
        # A likelihood head is sampled at the temperature's spread; greedy feeds back its mean.
        spread = 0.0 if self.sampling.greedy else self.sampling.temperature * self.spread_scale
        x = self.head.draw(self.last_output, self.rng, self.sampling.noise / self.unit, spread)
        items = self.to_values(x)
        if self.level is not None:
            self.level = items
        return self._next_input(x), Step.of(items)

    def _with_calendar(self, x: np.ndarray, end=None) -> np.ndarray:
        """Scaled values (batch, time) as the network reads them: with calendar inputs,
        (batch, time, inputs), each value's places in the cycles beside it."""
        if not self.cycles:
            return x
        steps = x.shape[1]
        if end is not None:
            last = np.broadcast_to(np.asarray(end, dtype=np.float64), (self.batch_size,)).copy()
        elif self.clock is not None:
            last = self.clock + steps
        elif self.data_end is not None:
            last = np.full(self.batch_size, self.data_end)
        else:
            raise UsageError("this model reads calendar inputs: say when the values end (`end`, a step index)")
        self.clock = last
        places = calendar_features(last[:, None] - (steps - 1) + np.arange(steps), self.cycles)
        values = np.asarray(x, dtype=np.float32)
        return np.concatenate([values[..., None] if self.channels == 1 else values, places], axis=-1)

    def _next_input(self, x: np.ndarray) -> np.ndarray:
        """One value per stream, fed back as the network reads it (the next step's places beside it)."""
        if not self.cycles:
            return x
        self.clock = self.clock + 1
        values = np.asarray(x, dtype=np.float32)
        return np.concatenate(
            [values[:, None] if self.channels == 1 else values, calendar_features(self.clock, self.cycles)], axis=1
        )

    def allowed_tokens(self) -> np.ndarray | None:
        """(streams, vocab): the tokens each text stream may take next for its bytes to stay
        well-formed UTF-8 (None when every token may: characters and words)."""
        return self.tokenizer.allowed(self.detokenizer.pending())

    def _well_formed(self, items: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Chosen tokens that would make a malformed UTF-8 sequence, chosen again from those that
        would not (see sampling.keep_allowed): a byte or BPE model's text never holds U+FFFD."""
        return keep_allowed(items, weights, self.allowed_tokens(), self.last_output, self.sampling.greedy, self.rng)

    def _chose(self, items: np.ndarray, weights: np.ndarray) -> Step:
        self._last_choice = (items, weights)
        self._remember(items[:, None])
        return Step.of(items, self.detokenizer.add(items))

    def advance(self, items: np.ndarray) -> Step:
        """Feed one given item per stream (text: token ids), as `step` feeds its own choices; return
        them as `step` returns its own."""
        return (self._advance_values if self.head.continuous else self._advance_tokens)(items)

    def _advance_values(self, items: np.ndarray) -> Step:
        self.feed_values(np.asarray(items, dtype=np.float64)[:, None])
        return Step.of(items)

    def _advance_tokens(self, items: np.ndarray) -> Step:
        x = np.asarray(items, dtype=np.int64)
        self._remember(x[:, None])
        step = Step.of(x, self.detokenizer.add(x))
        output, self.state = self.model.step(x, self.state)
        self.took(x, output)
        return step

    def select(self, rows: np.ndarray) -> None:
        """Keep the given streams, in that order, a stream named twice becoming two (beam search
        moves its hypotheses between rows this way)."""
        self.restore(snapshot_rows(self.snapshot(), np.asarray(rows, dtype=np.int64)))

    def took(self, x: np.ndarray, output: np.ndarray) -> None:
        """The second half of `step`: the network's output for inputs `x` (the state is already
        advanced) becomes the output the next item is drawn from."""
        self.last_output = output
        if self.head_state is not None:
            values = x if np.ndim(x) == 1 else x[:, 0]  # without calendar inputs
            self.last_output, self.head_state = self.head.step_numpy(values, output, self.head_state)

    def prediction(self) -> np.ndarray:
        """A series model's point prediction of each stream's next value, in the data's units
        (a likelihood head's mean), without stepping."""
        if self.last_output is None or not self.head.continuous:
            raise UsageError("feed a series model a prime first: there is no prediction yet")
        return self.to_values(self.head.mean(self.last_output))

    def generate(self, n: int) -> Iterator[Step]:
        """Yield `n` steps; each is an array with one item per stream (see `Step`)."""
        for _ in range(n):
            yield self.step()

    def snapshot(self) -> dict:
        """A copy of everything the next step depends on: recurrent state, last output, random state."""
        if self.last_output is None:
            raise UsageError("nothing to save yet: feed a prime first")
        parts = self.state if isinstance(self.state, (list, tuple)) else [self.state]
        arrays = [np.array(p.detach().cpu().numpy() if hasattr(p, "detach") else p, dtype=np.float32) for p in parts]
        snap = {"state": arrays, "last_output": np.array(self.last_output), "rng": self.rng.bit_generator.state}
        if self.scale is not None:
            snap["scale"] = self.scale.copy()
        if self.level is not None:
            snap["level"] = self.level.copy()
        if self.clock is not None:
            snap["clock"] = self.clock.copy()
        if self.head_state is not None:
            snap["head"] = {name: np.array(value, dtype=np.float64) for name, value in self.head_state.items()}
        if self.recent is not None:
            snap["recent"] = self.recent.copy()
        if self.head.continuous:
            # A model of several series generates in the scale of one of them: a state goes on in it.
            snap["scaling"] = {"mean": np.asarray(self.mean).tolist(), "std": np.asarray(self.std).tolist()}
        pending = self.detokenizer.pending() if self.detokenizer else []
        if any(pending):
            snap["pending"] = pending
        return snap

    def restore(self, snapshot: dict) -> None:
        """Continue exactly where `snapshot()` was taken (the batch size comes with it)."""
        arrays = [np.array(a) for a in snapshot["state"]]
        if hasattr(self.model, "state_from_arrays"):
            self.state = self.model.state_from_arrays(arrays)
        else:
            dtype = getattr(self.model, "dtype", np.float32)
            self.state = [a.astype(dtype) for a in arrays]
        self.batch_size = len(snapshot["last_output"])
        self.last_output = np.array(snapshot["last_output"])
        self.rng.bit_generator.state = snapshot["rng"]
        if snapshot.get("scaling"):
            self.mean, self.std = _scaling(snapshot["scaling"]["mean"]), _scaling(snapshot["scaling"]["std"])
        self._set_scale(None if snapshot.get("scale") is None else np.array(snapshot["scale"], dtype=np.float64))
        self.level = None if snapshot.get("level") is None else np.array(snapshot["level"], dtype=np.float64)
        self.clock = None if snapshot.get("clock") is None else np.array(snapshot["clock"], dtype=np.float64)
        saved = snapshot.get("head")
        self.head_state = (
            {k: np.array(v, dtype=np.float64) for k, v in saved.items()}
            if saved
            else self.head.init_state(self.batch_size)
        )
        # A state saved without penalties starts the window afresh (one with another window keeps its last tokens).
        self._reset_memory(snapshot.get("recent"))
        if self.tokenizer:
            self.detokenizer = self.tokenizer.detokenizer(self.batch_size)
            self.detokenizer.set_pending(snapshot.get("pending") or [b""] * self.batch_size)

    def fork(self, n: int) -> None:
        """Turn the one stream fed so far into `n` identical streams, each going on on its own:
        a history is fed once, not once per sample path."""
        if self.batch_size != 1 or self.last_output is None:
            raise UsageError("fork a generator that has one stream with a prime fed to it")
        self.select(np.zeros(n, dtype=np.int64))

    # --- text helpers -------------------------------------------------------------------
    def encode(self, text: str) -> np.ndarray:
        if self.head.continuous:
            raise DataError("this model generates numbers, not text: give the prime as numbers")
        return self.tokenizer.encode(text)

    def decode(self, tokens) -> str:
        """The text of a whole sequence of token ids."""
        return self.tokenizer.decode(tokens)

    def text_end(self) -> list[str]:
        """What each stream's text still lacks at its end: U+FFFD for a character whose last
        bytes never came (byte tokens), else "". Call it once the generation is over."""
        return self.detokenizer.end()

    def _as_model_input(self, inputs) -> np.ndarray:
        if isinstance(inputs, str):
            seq = self.encode(inputs)
        elif isinstance(inputs, np.ndarray) and inputs.ndim == (2 if self.channels == 1 else 3):
            return inputs  # (batch, time[, channels]), scaled
        elif not self.head.continuous:
            seq = np.asarray(inputs, dtype=np.int64)
        else:
            values = self._check_channels(np.asarray(inputs, dtype=np.float64), 2)
            return self._from_values(np.broadcast_to(values, (self.batch_size, *values.shape)))
        return np.broadcast_to(seq, (self.batch_size, len(seq)))

    def feed_values(self, values: np.ndarray, end: float | np.ndarray | None = None) -> np.ndarray:
        """`feed` for a series model, with a row of values of its own for each stream: (batch, time)."""
        values = self._check_channels(np.asarray(values, dtype=np.float64), 3)
        if values.ndim != (2 if self.channels == 1 else 3) or len(values) != self.batch_size:
            shape = (
                f"({self.batch_size}, time)" if self.channels == 1 else f"({self.batch_size}, time, {self.channels})"
            )
            raise UsageError(f"give one row of values per stream: {shape}, got shape {values.shape}")
        return self.feed(self._from_values(values), end)

    def _check_channels(self, values: np.ndarray, dims: int) -> np.ndarray:
        """A model of several channels takes `dims`-dimensional values whose last axis holds them."""
        if self.channels > 1 and (values.ndim != dims or values.shape[-1] != self.channels):
            raise DataError(
                f"this model reads {self.channels} channels a step: give the values as rows of "
                f"{self.channels} numbers, got an array of shape {values.shape}"
            )
        return values

    def _from_values(self, values: np.ndarray) -> np.ndarray:
        """(batch, time) values in the data's units as model inputs. A model of differences takes
        the steps between them, from each stream's last value on, which it then remembers."""
        if self.target == "diff":
            if self.level is not None:
                values = np.concatenate([self.level[:, None], values], axis=1)
            elif values.shape[1] < 2:
                raise DataError("this model predicts the steps between values: give a prime of at least 2 values")
            self.level = values[:, -1].copy()
            values = np.diff(values, axis=1)
        return (values - self.mean) / self.std

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: str | Checkpoint,
        *,
        backend: str = "auto",
        device: str = "cpu",
        sampling: SampleConfig | None = None,
        seed: int | None = None,
        series: str | dict | None = None,
        model=None,
    ) -> "Generator":
        """Load a checkpoint into a generator on the NumPy backend (default on CPU) or torch. A model
        of several series generates in the scale of the one named by `series` (default: the first),
        or of a dict with its "mean" and "std" (a stored entry, or see `scaling_for`). `model`: a
        backend already made from this checkpoint, to share (a server's generators share one)."""
        ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
        if backend not in BACKENDS:
            raise UsageError(f"`backend` must be one of {', '.join(BACKENDS)}, got {backend!r}")
        if model is None:
            model = backend_for(ckpt, backend, device)
        data = ckpt.data
        scaling = series if isinstance(series, dict) else series_entry(ckpt, series) or data
        gen = cls(
            model,
            tokenizer=stored_tokenizer(data),
            mean=scaling.get("mean", 0.0),
            std=scaling.get("std", 1.0),
            sampling=sampling,
            seed=seed,
            target=ckpt.described.target,
        )
        gen.series = scaling if scaling is not data else None
        gen.checkpoint_checksum = ckpt.meta.get("checksum")
        if "adapted" in ckpt.meta:
            gen.adapted_weights, gen.adapted_how = ckpt.weights, ckpt.meta["adapted"]
        # The factor that made the 80% intervals of forecasts in the validation tail cover 80% (see calibrate.py).
        gen.spread_scale = stored_scale(ckpt.meta.get("progress") or {})
        gen.scale_each = bool(ckpt.described.source.get("scale_each", False))
        gen.typical_scale = float(1.0 if ckpt.described.typical_scale is None else ckpt.described.typical_scale)
        if gen.cycles:
            gen.data_end = data_end(ckpt, scaling)
        return gen

    def to_values(self, outputs: np.ndarray) -> np.ndarray:
        """A continuous model's (batch,) outputs in the data's units (for a model of differences,
        the value its step leads to from each stream's last one)."""
        values = outputs * self.unit + self.mean
        return values if self.level is None else self.level + values

    def _set_scale(self, scale: np.ndarray | None) -> None:
        # `unit` (data units per model unit) is worked out here, once, not on every step.
        self.scale = scale
        self.unit = self.std if scale is None else self.std * scale


def stored_scale(progress: dict) -> float:
    """The spread factor a checkpoint's progress holds: its calibrated one, or, for a checkpoint
    written before calibration, the one-step `spread_ratio` when it widens (never narrowing: a
    ratio from one step of a short tail was too little to narrow on)."""
    scale = progress.get("interval_scale")
    if scale is not None and math.isfinite(scale) and scale > 0:
        return float(scale)
    return max(1.0, float(progress.get("spread_ratio") or 1.0))


def data_end(ckpt: Checkpoint, entry: dict | None = None) -> float | None:
    """The step index of the last value of a dated series' training data: of the stored series
    `entry` (its last time), else of the first or only one; None without times."""
    source = ckpt.described.source
    if not source.get("frequency"):
        return None
    first = (ckpt.described.series or [{}])[0]
    last = (entry or {}).get("last_time") or source.get("last_time") or first.get("last_time")
    return None if last is None else step_index(last, Frequency(*source["frequency"]))


def _scaling(value) -> float | np.ndarray:
    """A stored mean or std: one number, or one per channel."""
    return np.asarray(value, dtype=np.float64) if isinstance(value, (list, tuple, np.ndarray)) else float(value)


# What a snapshot holds one row of per stream (besides the state and the head's sums).
BATCHED = ("last_output", "scale", "level", "clock", "recent")


def choose_together(gens: list[Generator]) -> list[tuple[np.ndarray, Step]]:
    """`choose` for many generators at once, as a server steps them: the text generators that
    sample alike have their rows weighed in one call, each drawing from its own random numbers,
    so each makes exactly what its own `choose` would have made."""
    chosen: list = [None] * len(gens)
    alike: dict[tuple, list[int]] = {}
    for i, gen in enumerate(gens):
        if not gen.head.continuous and gen.last_output is not None:
            alike.setdefault(tuple(vars(gen.sampling).values()), []).append(i)
        else:
            chosen[i] = gen.choose()
    for members in alike.values():
        if len(members) == 1:
            chosen[members[0]] = gens[members[0]].choose()
            continue
        group = [gens[i] for i in members]
        sampling = group[0].sampling
        counts = None if group[0].counts is None else np.concatenate([gen.counts for gen in group])
        weights = sampling_weights(np.concatenate([gen.last_output for gen in group]), sampling, counts)
        if sampling.greedy:
            tokens = weights.argmax(axis=1)
        else:
            tokens = draw_tokens(weights, np.concatenate([gen.rng.random(gen.batch_size) for gen in group]))
        row = 0
        for i, gen in zip(members, group):
            rows = slice(row, row + gen.batch_size)
            row = rows.stop
            # After every generator has drawn its first numbers, as each one's `choose` draws them.
            mine, its_weights = gen._well_formed(tokens[rows], weights[rows])
            chosen[i] = (mine, gen._chose(mine, its_weights))
    return chosen


def snapshot_rows(snapshot: dict, rows: np.ndarray) -> dict:
    """A snapshot of the given rows (streams) only, in that order."""
    picked = dict(snapshot)
    picked["state"] = [a[:, rows] for a in snapshot["state"]]  # (layers, batch, hidden)
    for key in BATCHED:
        if snapshot.get(key) is not None:
            picked[key] = snapshot[key][rows]
    if "head" in snapshot:
        picked["head"] = {k: v[rows] for k, v in snapshot["head"].items()}
    if "pending" in snapshot:
        picked["pending"] = [snapshot["pending"][row] for row in rows.tolist()]
    return picked


def joined_snapshots(snapshots: list[dict]) -> dict:
    """One snapshot of the rows of several."""
    whole = dict(snapshots[0])
    whole.pop("stopped", None)
    whole["state"] = [np.concatenate(parts, axis=1) for parts in zip(*(s["state"] for s in snapshots))]
    for key in BATCHED:
        if snapshots[0].get(key) is not None:
            whole[key] = np.concatenate([s[key] for s in snapshots])
    if any("pending" in s for s in snapshots):
        whole["pending"] = [held for s in snapshots for held in s.get("pending") or [b""] * len(s["last_output"])]
    return whole


def series_entry(ckpt: Checkpoint, name: str | None = None) -> dict | None:
    """What a model of several series stored about one of them (its scaling, end and last time):
    the one named, or the first; None for a model of one series."""
    entries = ckpt.described.series
    if not entries:
        if name is not None and name != ckpt.described.source.get("series", name):
            raise UsageError(
                f"{ckpt.path} was trained on one series, {ckpt.described.source['series']!r}, not {name!r}"
            )
        return None
    if name is None:
        return entries[0]
    for entry in entries:
        if entry["name"] == name:
            return entry
    known = ", ".join(repr(e["name"]) for e in entries[:10])
    raise UsageError(f"{ckpt.path} knows no series {name!r}; its series are {known}")


def scaling_for(ckpt: Checkpoint, values, name: str | None = None) -> dict | None:
    """Which scaling a model of several series works in for `values` (in the data's units): the
    series named; else the stored series the values are a stretch of (`matching_series`); else,
    for values it never saw, their own (`own_scaling`). None for a model of one series."""
    if name is not None or not ckpt.described.series:
        return series_entry(ckpt, name)
    return matching_series(ckpt, values) or own_scaling(ckpt, values)


def matching_series(ckpt: Checkpoint, values) -> dict | None:
    """The stored series (of a model of several) that `values` belong to: the one whose stored end
    of the data (its default prime) holds them as a stretch, or that they hold; None when none
    does, an error when several do."""
    values = np.asarray(values, dtype=np.float64)
    found = [e for e in ckpt.described.series if _overlaps(np.asarray(e["prime"], dtype=np.float64), values)]
    if len(found) > 1:
        raise DataError(
            f"the values given are a stretch of several series of {ckpt.path} "
            f"({', '.join(repr(e['name']) for e in found)}); name one (`series`)"
        )
    return found[0] if found else None


def own_scaling(ckpt: Checkpoint, values) -> dict:
    """The scaling of values a model of several series never saw: their own mean and standard
    deviation (their steps', for a model of steps), as each of its series was scaled by its own."""
    values = np.asarray(values, dtype=np.float64)
    steps = np.diff(values) if ckpt.described.target == "diff" else values
    if len(values) < 3 or steps.std() == 0:
        known = ", ".join(repr(e["name"]) for e in ckpt.described.series[:10])
        raise DataError(
            f"{ckpt.path} models several series ({known}), each in its own scale, and these values are "
            "none of them: name the series they belong to (`series`), or give at least 3 values that are "
            "not all the same, to be scaled by their own mean and standard deviation"
        )
    return {"mean": float(steps.mean()), "std": float(steps.std())}


# Fewer values than this could match a stored series by chance.
MIN_MATCH = 3


def _overlaps(stored: np.ndarray, values: np.ndarray) -> bool:
    """Whether one array holds the other as a stretch, to float32 rounding (a series file's values
    come back from the cache as float32)."""
    inner, outer = (values, stored) if len(values) <= len(stored) else (stored, values)
    if len(inner) < MIN_MATCH:
        return False
    tolerance = 1e-5 * (float(stored.std()) + 1e-12)
    same = lambda a, b: np.allclose(a, b, rtol=1e-6, atol=tolerance)
    starts = np.flatnonzero(np.isclose(outer[: len(outer) - len(inner) + 1], inner[0], rtol=1e-6, atol=tolerance))
    return any(same(outer[k : k + len(inner)], inner) for k in starts)


def backend_for(ckpt: Checkpoint, backend: str, device: str):
    if backend == "torch" or (backend == "auto" and device != "cpu"):
        return torch_model_from_checkpoint(ckpt, device)
    if device != "cpu":
        raise UsageError("`backend` numpy runs on the CPU; use `backend` torch for another `device`")
    return NumpyModel(ckpt.weights, ckpt.model_config)


def torch_model_from_checkpoint(ckpt: Checkpoint, device: str = "cpu") -> TorchRunner:
    import torch

    from ..device import resolve_device
    from ..model.network import SeqModel

    model = SeqModel(ckpt.model_config)
    model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in ckpt.weights.items()})
    return TorchRunner(model, resolve_device(device))
