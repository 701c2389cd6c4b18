"""The `Dataset` every source becomes: streams of token ids or scaled values, each with a validation tail."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import DataError


@dataclass
class Dataset:
    """Streams of token ids (text) or scaled values (series), each with a validation tail.

    `splits[i]` is where the validation part of `streams[i]` begins. Series values are stored
    scaled as (value - mean) / std; `unscale` turns model outputs back into user values.
    """

    kind: str  # "text" or "series"
    name: str
    description: str
    streams: list[np.ndarray]
    splits: list[int]
    vocab: list[str] | None = None
    mean: float = 0.0
    std: float = 1.0
    source: dict = field(default_factory=dict)
    val_fraction: float = 0.1
    # With each stream scaled by its own size: the mean of those sizes, the best guess for a
    # stream too short to measure.
    typical_scale: float | None = None
    # What a series' streams hold: "level" (the values, scaled) or "diff" (their first
    # differences, scaled; see transforms.py), with the values themselves kept in `levels`.
    target: str = "level"
    levels: np.ndarray | None = None
    # Several series (a table's value columns or ids) are each scaled by their own training part,
    # so that one model serves series of any size: one dict per stream, {"name", "mean", "std",
    # "values" (the user's values), "last_time"}, and `mean`/`std` above are 0 and 1.
    series: list[dict] | None = None
    # A table's columns that were not read as series (none named), each with why: for a note to the user.
    left_out: dict[str, str] = field(default_factory=dict)
    # Text in tokens other than characters (bytes, words, BPE): the tokenizer, whose `vocab` is
    # `vocab`; None for characters, whose vocabulary is `vocab` itself.
    # Calendar inputs (data/calendar.py): the cycles, in steps, and for each stream its items' sine
    # and cosine places in them, (length, 2 x cycles); None without.
    cycles: list[float] | None = None
    # A table's value columns modelled jointly (`TableOptions.joint`): their names. Each stream is
    # then (length, channels), every column scaled by its own training part, and `mean`/`std` are
    # arrays of one entry per channel.
    channels: list[str] | None = None
    features: list[np.ndarray] | None = None
    tokenizer: object | None = (
        None  # a data.tokenizers.Tokenizer (not imported: tokenizers import series, which imports this)
    )

    @property
    def train_streams(self) -> list[np.ndarray]:
        return [s[:k] for s, k in zip(self.streams, self.splits)]

    @property
    def val_streams(self) -> list[np.ndarray]:
        return [s[k:] for s, k in zip(self.streams, self.splits)]

    def unscale(self, values: np.ndarray) -> np.ndarray:
        return values * self.std + self.mean

    def characters(self, ids: np.ndarray) -> int:
        """How many characters text token ids spell (one per token for characters)."""
        return len(ids) if self.tokenizer is None else self.tokenizer.characters(ids)


def split_point(n: int, val_fraction: float, label: str) -> int:
    split = n - max(1, int(round(n * val_fraction)))
    if n == 0:
        # A CSV export with its header and no rows lands here too; "0 items" read like a count gone wrong.
        raise DataError(f"{label} holds nothing to train on (no values or text after any header)")
    if split < 2:
        raise DataError(f"{label} is too short ({n} items) to split into training and validation data")
    return split
