"""`load_data`: from a name on the command line (nothing, sine, -, a file) to a `Dataset`."""

from __future__ import annotations

import codecs
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError, UsageError
from .cache import cache_key, default_cache_dir, load_entry
from .dataset import Dataset, split_point
from .reading import decode_text, read_file, read_head
from .series import cache_series, joint_dataset, load_npy, looks_numeric, parse_series, series_dataset, table_dataset
from .table import looks_like_table, read_table
from .sine import SineConfig, sine_dataset
from .text import cache_text, cache_tokens, cached_tokens_dataset, text_dataset, tokenizer_key
from .tokenizers import Tokenizer, check_tokens


def load_data(
    path: str | None = None,
    *,
    kind: str = "auto",
    encoding: str = "utf-8",
    val_fraction: float = 0.1,
    sine: SineConfig | None = None,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    table: TableOptions | None = None,
    tokens: str = "char",
    vocab_size: int | None = None,
    tokenizer: Tokenizer | None = None,
) -> Dataset:
    """Load training data: `None` or "sine" for the built-in waves, "-" for stdin, else a file.

    `kind` is "auto", "text" or "series"; auto treats `.npy`/`.csv` and files whose first lines
    are all numbers as series, anything else as text. A text or series file is decoded once into
    `cache_dir` (default: see `seqgen.cache.default_cache_dir`) and its stream is a memmap of that.
    A CSV table (a header over a time column and columns of numbers; see table.py) is read whole,
    as `table` says (which columns, which id, how to fill gaps).

    Text becomes `tokens`: char (one per character), byte, word or bpe (see data/tokenizers),
    with at most `vocab_size` word or BPE tokens learnt from the training part; or the tokens of
    `tokenizer`, a byte, word or BPE tokenizer made before (a resumed run's, an evaluated
    checkpoint's), instead of learning one.
    """
    if not 0 < val_fraction < 1:
        raise UsageError(f"`val_fraction` must be between 0 and 1 (exclusive), got {val_fraction}")
    if kind not in ("auto", "text", "series"):
        raise UsageError(f"`kind` must be auto, text or series, got {kind!r}")
    if tokenizer is not None and tokenizer.kind == "char":
        raise UsageError("`tokenizer`: a char model reads the data's own characters; give `tokens` char instead")
    tokens = tokenizer.kind if tokenizer is not None else tokens
    check_tokens(tokens, vocab_size)
    text_as = TextOptions(tokens, vocab_size, tokenizer)
    if path is None or path == "sine":
        return sine_dataset(sine or SineConfig(), val_fraction, seed)
    table = table or TableOptions()
    if path == "-":
        return _memory_dataset(
            sys.stdin.buffer.read(), "stdin", "", "standard input", kind, encoding, val_fraction, table, text_as
        )
    suffix = Path(path).suffix.lower()
    if suffix == ".npy":
        data = _memory_dataset(
            read_file(path), Path(path).stem or "data", suffix, path, kind, encoding, val_fraction, table, text_as
        )
    elif kind != "text" and (table.forced or looks_like_table(read_head(path, encoding))):
        text = decode_text(read_file(path), path, encoding)
        data = table.dataset(text, Path(path).stem or "data", path, val_fraction)
    else:
        data = _file_dataset(path, kind, encoding, val_fraction, cache_dir, text_as)
    # The path as given names the file in messages; the absolute one finds it again from another folder.
    data.source = {**data.source, "absolute_path": str(Path(path).resolve())}
    return data


def stored_data_path(source: dict) -> str | None:
    """The training file a checkpoint's data `source` names, if it is still there: its absolute
    path (the very file trained on), else the path as it was given (relative to the folder the
    command runs in: a copy of the project elsewhere); None otherwise."""
    for key in ("absolute_path", "path"):
        candidate = source.get(key)
        if candidate and candidate != "standard input" and Path(candidate).is_file():
            return candidate
    return None


@dataclass
class TextOptions:
    """How text becomes tokens: learnt as `tokens` with at most `vocab_size`, or by `tokenizer`."""

    tokens: str = "char"
    vocab_size: int | None = None
    tokenizer: Tokenizer | None = None

    def dataset(self, text: str, name: str, label: str, val_fraction: float) -> Dataset:
        return text_dataset(text, name, label, val_fraction, self.tokens, self.vocab_size, self.tokenizer)


@dataclass
class TableOptions:
    """How to read a CSV table: which column holds the times (default: the first column of dates),
    which columns are series (default: every column of numbers), which column names the series of
    a long table, and how to fill missing values ("error", "previous", "linear" or "zero").
    Options given make the data a table; a checkpoint's (`stored`) apply only to data that looks
    like one, so that a plain file of numbers is still read as a series."""

    time_column: str | None = None
    columns: list[str] | None = None
    id_column: str | None = None
    fill: str = "error"
    stored: bool = False
    # The value columns are the channels of one series, modelled jointly, rather than several series.
    joint: bool = False

    @classmethod
    def from_source(cls, source: dict) -> "TableOptions":
        """How a checkpoint's training table was read, from its data source (defaults otherwise)."""
        return cls(
            source.get("time_column"),
            source.get("columns"),
            source.get("id_column"),
            source.get("fill", "error"),
            stored=True,
            joint=bool(source.get("joint")),
        )

    @property
    def given(self) -> bool:
        return (
            any(v is not None for v in (self.time_column, self.columns, self.id_column))
            or self.fill != "error"
            or self.joint
        )

    @property
    def forced(self) -> bool:
        """Whether the data is read as a table whatever it looks like: the user asked for one."""
        return self.given and not self.stored

    def read(self, text: str, label: str):
        """The table's series (a `Table`)."""
        return read_table(
            text,
            label,
            time_column=self.time_column,
            columns=self.columns,
            id_column=self.id_column,
            fill=self.fill,
            stored=self.stored,
        )

    def dataset(self, text: str, name: str, label: str, val_fraction: float) -> Dataset:
        table = self.read(text, label)
        if self.joint:
            data = joint_dataset(table, name, label, val_fraction, stored=self.stored)
        else:
            data = table_dataset(table, name, label, val_fraction, stored=self.stored)
        if self.fill != "error":
            data.source["fill"] = self.fill  # so that a resumed run reads the table the same way
        return data


def _memory_dataset(
    raw: bytes,
    name: str,
    suffix: str,
    label: str,
    kind: str,
    encoding: str,
    val_fraction: float,
    table: TableOptions,
    text_as: TextOptions,
) -> Dataset:
    """Data read whole into memory: standard input and .npy files."""
    if not raw:
        raise DataError(f"{label} is empty: give a file with some text or numbers in it")
    if suffix == ".npy":
        return series_dataset(load_npy(raw, label), name, label, val_fraction)
    text = decode_text(raw, label, encoding)
    if kind != "text" and (table.forced or looks_like_table(text)):
        return table.dataset(text, name, label, val_fraction)
    if kind == "series" or (kind == "auto" and looks_numeric(text)):
        return series_dataset(parse_series(text, label), name, label, val_fraction)
    return text_as.dataset(text, name, label, val_fraction)


def _file_dataset(
    path: str, kind: str, encoding: str, val_fraction: float, cache_dir: str | Path | None, text_as: TextOptions
) -> Dataset:
    """A text or series file, through the cache: decoded once, then mapped, never held whole in memory."""

    source, name = Path(path), Path(path).stem or "data"
    head = read_head(path, encoding)
    if kind == "auto":
        kind = "series" if source.suffix.lower() == ".csv" or looks_numeric(head) else "text"
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    params = {"kind": kind, "encoding": codecs.lookup(encoding).name}
    if kind == "series":
        params["val_fraction"] = val_fraction  # the stored values are scaled by the training part's statistics
    elif text_as.tokens != "char":
        # The tokens are learnt from the training part, so its end is part of what they depend on.
        params.update(val_fraction=val_fraction, **tokenizer_key(text_as.tokens, text_as.vocab_size, text_as.tokenizer))
    key = cache_key(source, **params)
    entry = load_entry(folder, key)
    if kind == "series":
        values, meta = entry or cache_series(path, encoding, val_fraction, folder, key)
        return Dataset(
            kind="series",
            name=name,
            description=f"numeric series from {path} ({len(values)} values)",
            streams=[values],
            splits=[meta["split"]],
            mean=meta["mean"],
            std=meta["std"],
            source={"type": "file", "path": path},
            val_fraction=val_fraction,
        )
    if text_as.tokens != "char":
        ids, meta = entry or cache_tokens(
            path, encoding, folder, key, val_fraction, text_as.tokens, text_as.vocab_size, text_as.tokenizer
        )
        return cached_tokens_dataset(ids, meta, name, path, val_fraction)
    ids, meta = entry or cache_text(path, encoding, folder, key)
    split = split_point(len(ids), val_fraction, path)
    return Dataset(
        kind="text",
        name=name,
        description=f"text from {path} ({len(ids)} characters, {len(meta['vocab'])} distinct)",
        streams=[ids],
        splits=[split],
        vocab=meta["vocab"],
        source={"type": "file", "path": path},
        val_fraction=val_fraction,
    )
