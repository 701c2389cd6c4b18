"""Training data: built-in sine waves, numeric series files and character-level text.

Everything becomes a `Dataset`: one or more streams of numbers (token ids for text, scaled
values for series), each split into a training part and a validation tail.
"""

from __future__ import annotations

import codecs
import itertools
import math
import sys
from array import array
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

import numpy as np

from .errors import DataError, UsageError

SERIES_SUFFIXES = {".npy", ".csv"}
# How many leading lines decide whether a file without a telling suffix is a numeric series.
SNIFF_LINES = 20
# Files are read, decoded and encoded this many bytes at a time, so memory stays flat whatever their size.
CHUNK_BYTES = 4 << 20
# Every code point Unicode has: the size of the tables that map characters to token ids.
CODE_POINTS = 0x110000


@dataclass
class SineConfig:
    """The built-in family of sine waves: random phase, period and amplitude in the given ranges."""

    waves: int = 256
    length: int = 1000
    period_min: float = 20.0
    period_max: float = 100.0
    amp_min: float = 0.5
    amp_max: float = 1.0
    noise: float = 0.0
    # Divide each wave by its own size, measured over its first SCALE_PRIME values, as generation
    # divides each stream by its prime's: the network then sees one amplitude and need not
    # remember the prime's over thousands of free-running steps (which it cannot: it drifts to an
    # amplitude of its own).
    scale_each: bool = True

    def check(self) -> None:
        if self.waves < 1 or self.length < 2:
            raise UsageError("--sine-waves must be >= 1 and --sine-length >= 2")
        if not 0 < self.period_min <= self.period_max:
            raise UsageError("sine periods must satisfy 0 < --period-min <= --period-max")
        if not 0 < self.amp_min <= self.amp_max:
            raise UsageError("sine amplitudes must satisfy 0 < --amp-min <= --amp-max")
        if self.noise < 0:
            raise UsageError("--sine-noise must be >= 0")


def sine_waves(count: int, length: int, config: SineConfig, rng: np.random.Generator) -> np.ndarray:
    """Return `count` sine waves of `length` steps as a (count, length) float32 array."""
    period = rng.uniform(config.period_min, config.period_max, size=(count, 1))
    amplitude = rng.uniform(config.amp_min, config.amp_max, size=(count, 1))
    phase = rng.uniform(0.0, 2 * math.pi, size=(count, 1))
    t = np.arange(length)[None, :]
    waves = amplitude * np.sin(2 * math.pi * t / period + phase)
    if config.noise > 0:
        waves = waves + rng.normal(0.0, config.noise, size=waves.shape)
    return waves.astype(np.float32)


# How many leading values measure a stream's size when each stream is scaled by its own (the
# length of the prime `seqgen sample` and `seqgen eval` give a sine model).
SCALE_PRIME = 100
# A shorter first feed is not measured (see Generator.feed).
MIN_SCALE_PRIME = 10


def stream_scale(values: np.ndarray) -> np.ndarray:
    """The size of each row of (streams, time) values: the root mean square of its first
    SCALE_PRIME values (a floor keeps a flat start from dividing by zero)."""
    head = np.asarray(values, dtype=np.float64)[:, :SCALE_PRIME]
    return np.maximum(np.sqrt(np.mean(head**2, axis=1)), 1e-3)


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

    @property
    def train_streams(self) -> list[np.ndarray]:
        return [s[:k] for s, k in zip(self.streams, self.splits)]

    @property
    def val_streams(self) -> list[np.ndarray]:
        return [s[k:] for s, k in zip(self.streams, self.splits)]

    def unscale(self, values: np.ndarray) -> np.ndarray:
        return values * self.std + self.mean


def load_data(
    path: str | None = None,
    *,
    kind: str = "auto",
    encoding: str = "utf-8",
    val_fraction: float = 0.1,
    sine: SineConfig | None = None,
    seed: int = 0,
    cache_dir: str | Path | None = None,
) -> Dataset:
    """Load training data: `None` or "sine" for the built-in waves, "-" for stdin, else a file.

    `kind` is "auto", "text" or "series"; auto treats `.npy`/`.csv` and files whose first lines
    are all numbers as series, anything else as text. A text or series file is decoded once into
    `cache_dir` (default: see `seqgen.cache.default_cache_dir`) and its stream is a memmap of that.
    """
    if not 0 < val_fraction < 1:
        raise UsageError(f"--val-fraction must be between 0 and 1 (exclusive), got {val_fraction}")
    if kind not in ("auto", "text", "series"):
        raise UsageError(f"--kind must be auto, text or series, got {kind!r}")
    if path is None or path == "sine":
        return sine_dataset(sine or SineConfig(), val_fraction, seed)
    if path == "-":
        return _memory_dataset(sys.stdin.buffer.read(), "stdin", "", "standard input", kind, encoding, val_fraction)
    suffix = Path(path).suffix.lower()
    if suffix == ".npy":
        return _memory_dataset(_read_file(path), Path(path).stem or "data", suffix, path, kind, encoding, val_fraction)
    return _file_dataset(path, kind, encoding, val_fraction, cache_dir)


def _memory_dataset(raw: bytes, name: str, suffix: str, label: str, kind: str, encoding: str, val_fraction: float) -> Dataset:
    """Data read whole into memory: standard input and .npy files."""
    if not raw:
        raise DataError(f"{label} is empty: give a file with some text or numbers in it")
    if suffix == ".npy":
        return series_dataset(_load_npy(raw, label), name, label, val_fraction)
    text = decode_text(raw, label, encoding)
    if kind == "series" or (kind == "auto" and looks_numeric(text)):
        return series_dataset(parse_series(text, label), name, label, val_fraction)
    return text_dataset(text, name, label, val_fraction)


def _file_dataset(path: str, kind: str, encoding: str, val_fraction: float, cache_dir: str | Path | None) -> Dataset:
    """A text or series file, through the cache: decoded once, then mapped, never held whole in memory."""
    from .cache import cache_key, default_cache_dir, load_entry

    source, name = Path(path), Path(path).stem or "data"
    head = _read_head(path, encoding)
    if kind == "auto":
        kind = "series" if source.suffix.lower() == ".csv" or looks_numeric(head) else "text"
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    params = {"kind": kind, "encoding": codecs.lookup(encoding).name}
    if kind == "series":
        params["val_fraction"] = val_fraction  # the stored values are scaled by the training part's statistics
    key = cache_key(source, **params)
    entry = load_entry(folder, key)
    if kind == "series":
        values, meta = entry or _cache_series(path, encoding, val_fraction, folder, key)
        return Dataset(
            kind="series", name=name, description=f"numeric series from {path} ({len(values)} values)",
            streams=[values], splits=[meta["split"]], mean=meta["mean"], std=meta["std"],
            source={"type": "file", "path": path}, val_fraction=val_fraction,
        )
    ids, meta = entry or _cache_text(path, encoding, folder, key)
    split = _split_point(len(ids), val_fraction, path)
    return Dataset(
        kind="text", name=name, description=f"text from {path} ({len(ids)} characters, {len(meta['vocab'])} distinct)",
        streams=[ids], splits=[split], vocab=meta["vocab"], source={"type": "file", "path": path},
        val_fraction=val_fraction,
    )


def _open_source(path: str) -> BinaryIO:
    p = Path(path)
    if not p.exists():
        raise DataError(f"{path}: no such file (give a text file, a numeric series, '-' for stdin, or nothing for sine waves)")
    if p.is_dir():
        raise DataError(f"{path} is a directory: give a file")
    try:
        return p.open("rb")
    except PermissionError:
        raise DataError(f"{path}: permission denied (check the file's read permission)") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None


def read_chunks(path: str, size: int = CHUNK_BYTES) -> Iterator[bytes]:
    """The bytes of a file, `size` at a time; an empty file is an error."""
    with _open_source(path) as f:
        first = True
        while True:
            try:
                chunk = f.read(size)
            except OSError as e:
                raise DataError(f"{path}: cannot read ({e.strerror})") from None
            if not chunk:
                if first:
                    raise DataError(f"{path} is empty: give a file with some text or numbers in it")
                return
            first = False
            yield chunk


def decoded_chunks(path: str, encoding: str = "utf-8", size: int = CHUNK_BYTES) -> Iterator[str]:
    """The text of a file, decoded a chunk at a time. A character split across two chunks is
    joined by the incremental decoder; an undecodable byte gets `decode_text`'s message."""
    try:
        decoder = codecs.getincrementaldecoder(encoding)()
    except LookupError:
        raise UsageError(f"--encoding {encoding!r} is not an encoding Python knows (try utf-8 or latin-1)") from None
    offset, lines, head = 0, 0, b""
    for chunk in itertools.chain(read_chunks(path, size), [None]):
        pending = decoder.getstate()[0]
        data = pending + (chunk or b"")
        head = head or data[:8192]
        try:
            text = decoder.decode(chunk or b"", final=chunk is None)
        except UnicodeDecodeError as e:
            start = offset - len(pending) + e.start
            line = lines - pending.count(b"\n") + data[: e.start].count(b"\n") + 1
            raise _undecodable(path, encoding, head, start, line, data[e.start]) from None
        if chunk is not None:
            offset += len(chunk)
            lines += chunk.count(b"\n")
        if text:
            yield text


def _read_head(path: str, encoding: str) -> str:
    """The first characters of a file, enough to tell a series from text (a cut last line dropped)."""
    chunks = decoded_chunks(path, encoding, size=65536)
    head = next(chunks, "")
    more = next(chunks, None) is not None
    chunks.close()
    cut = max(head.rfind("\n"), head.rfind("\r"))
    return head[: cut + 1] if more and cut >= 0 else head


def _cache_text(path: str, encoding: str, folder: Path, key: str) -> tuple[np.ndarray, dict]:
    """Two passes over the file: find the alphabet, then write every character's token id."""
    from .cache import store_entry

    seen = np.zeros(CODE_POINTS, dtype=bool)
    for text in decoded_chunks(path, encoding):
        seen[np.unique(_code_points(text))] = True
    alphabet = np.flatnonzero(seen)
    dtype = np.uint8 if len(alphabet) <= 1 << 8 else np.uint16 if len(alphabet) <= 1 << 16 else np.uint32
    table = np.zeros(CODE_POINTS, dtype=dtype)
    table[alphabet] = np.arange(len(alphabet))

    def fill(f: BinaryIO) -> dict:
        count = 0
        for text in decoded_chunks(path, encoding):
            ids = table[_code_points(text)]
            f.write(ids.tobytes())
            count += len(ids)
        return {"dtype": np.dtype(dtype).str, "count": count, "vocab": [chr(c) for c in alphabet], "source": path}

    return store_entry(folder, key, fill)


def _code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le", errors="surrogatepass"), dtype=np.uint32)


def _cache_series(path: str, encoding: str, val_fraction: float, folder: Path, key: str) -> tuple[np.ndarray, dict]:
    """Parse the numbers into a float64 scratch file, then store them scaled as float32."""
    import tempfile

    from .cache import store_entry

    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=folder) as raw:
        count, low, high = 0, math.inf, -math.inf
        for block in parse_series_lines(_stream_lines(decoded_chunks(path, encoding)), path):
            raw.write(block.tobytes())
            count, low, high = count + len(block), min(low, block.min()), max(high, block.max())
        split = _split_point(count, val_fraction, path)
        total, squares = 0.0, 0.0
        for block in _blocks(raw, split):
            total += float(block.sum())
        mean = total / split
        for block in _blocks(raw, split):
            squares += float(((block - mean) ** 2).sum())
        std = math.sqrt(squares / split)
        if std == 0 or low == high:
            raise DataError(f"{path}: the series has the same value everywhere; there is nothing to learn")

        def fill(f: BinaryIO) -> dict:
            for block in _blocks(raw, count):
                f.write(((block - mean) / std).astype(np.float32).tobytes())
            return {"dtype": np.dtype(np.float32).str, "count": count, "split": split, "mean": mean, "std": std,
                    "source": path}

        return store_entry(folder, key, fill)


def _blocks(f: BinaryIO, count: int, size: int = 1 << 20) -> Iterator[np.ndarray]:
    """The first `count` float64 values of a scratch file, `size` at a time."""
    f.seek(0)
    while count > 0:
        block = np.fromfile(f, dtype=np.float64, count=min(size, count))
        count -= len(block)
        yield block


def _stream_lines(chunks: Iterable[str]) -> Iterator[str]:
    """The lines of chunked text, as `iter_lines` gives them for the whole text."""
    rest, sep = "", None
    for chunk in chunks:
        if sep is None:
            sep = "\n" if "\n" in chunk or "\r" not in chunk else "\r"
        lines = (rest + chunk).split(sep)
        rest = lines.pop()
        yield from lines
    if rest:
        yield rest


def _read_file(path: str) -> bytes:
    with _open_source(path) as f:
        try:
            return f.read()
        except OSError as e:
            raise DataError(f"{path}: cannot read ({e.strerror})") from None


def decode_text(raw: bytes, label: str, encoding: str = "utf-8") -> str:
    """Decode bytes, saying where the first undecodable byte is."""
    try:
        return raw.decode(encoding)
    except LookupError:
        raise UsageError(f"--encoding {encoding!r} is not an encoding Python knows (try utf-8 or latin-1)") from None
    except UnicodeDecodeError as e:
        raise _undecodable(label, encoding, raw[:8192], e.start, raw[: e.start].count(b"\n") + 1, raw[e.start]) from None


def _undecodable(label: str, encoding: str, head: bytes, offset: int, line: int, byte: int) -> DataError:
    if str(label).endswith(".safetensors"):
        return DataError(f"{label} is a checkpoint, not training data; to continue its run, use --resume {label}")
    if b"\x00" in head:
        return DataError(f"{label} looks like a binary file (NUL bytes, not {encoding} text); give a text file or a numeric series")
    return DataError(
        f"{label} is not valid {encoding}: byte {offset} (line {line}) is 0x{byte:02x}; "
        "if the file uses another encoding, pass it with --encoding (for example --encoding latin-1)"
    )


def iter_lines(text: str) -> Iterator[str]:
    """The lines of `text`, one at a time: splitting a 100 MB series into a list costs a gigabyte."""
    sep = "\n" if "\n" in text or "\r" not in text else "\r"  # old Mac files end lines with CR alone
    start, end = 0, len(text)
    while start < end:
        stop = text.find(sep, start)
        stop = end if stop < 0 else stop
        yield text[start:stop]
        start = stop + 1


def looks_numeric(text: str) -> bool:
    """True when the first non-blank lines all parse as numbers (one column)."""
    lines = [ln for ln in itertools.islice(iter_lines(text), SNIFF_LINES * 4) if ln.strip()][:SNIFF_LINES]
    if not lines:
        return False
    return all(_parse_number(ln) is not None for ln in lines)


def _parse_number(line: str) -> float | None:
    try:
        return float(line.strip().rstrip(","))
    except ValueError:
        return None


def parse_series(text: str, label: str) -> np.ndarray:
    """Parse one number per line (or a one-column CSV, with an optional header line)."""
    blocks = list(parse_series_lines(iter_lines(text), label))
    return np.concatenate(blocks) if blocks else np.zeros(0)


def parse_series_lines(lines: Iterable[str], label: str, block: int = 1 << 20) -> Iterator[np.ndarray]:
    """Parse numbered lines into float64 blocks of up to `block` values, naming the line of any problem."""
    values = array("d")  # 8 bytes a value, where a list of floats takes 32
    first, seen = True, 0
    for number, line in enumerate(lines, start=1):
        cell = line.strip()
        if not cell:
            continue
        # Several cells with a number among them is a table; no number at all may be a header.
        if "," in cell.rstrip(",") and any(_parse_number(part) is not None for part in cell.split(",")):
            raise DataError(f"{label}, line {number}: more than one column ({cell[:40]!r}); give one number per line")
        value = _parse_number(cell)
        if value is None:
            if first:
                first = False
                continue  # a CSV header
            # A header and then no number at all: most likely text given where numbers were expected.
            looks = "" if seen else "; it looks like text, not one number per line"
            raise DataError(f"{label}, line {number}: {cell[:40]!r} is not a number{looks}")
        first = False
        if not math.isfinite(value):
            raise DataError(f"{label}, line {number}: {cell!r} is not a finite number (remove NaN/inf values)")
        values.append(value)
        seen += 1
        if len(values) >= block:
            yield np.frombuffer(values, dtype=np.float64).copy()
            values = array("d")
    if values:
        yield np.frombuffer(values, dtype=np.float64)


def _load_npy(raw: bytes, label: str) -> np.ndarray:
    import io

    try:
        array = np.load(io.BytesIO(raw), allow_pickle=False)
    except ValueError as e:
        raise DataError(f"{label} is not a readable .npy array ({e})") from None
    if array.ndim != 1 and not (array.ndim == 2 and 1 in array.shape):
        raise DataError(f"{label} holds an array of shape {array.shape}; give a 1-D series")
    if not np.issubdtype(array.dtype, np.number):
        raise DataError(f"{label} holds {array.dtype} values; give numbers")
    array = array.reshape(-1).astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise DataError(f"{label}: value {bad[0]} is not finite (remove NaN/inf values)")
    return array


def series_dataset(values: np.ndarray, name: str, label: str, val_fraction: float) -> Dataset:
    """A numeric series, scaled to zero mean and unit variance over its training part."""
    split = _split_point(len(values), val_fraction, label)
    mean, std = float(values[:split].mean()), float(values[:split].std())
    if std == 0 or np.ptp(values) == 0:
        raise DataError(f"{label}: the series has the same value everywhere; there is nothing to learn")
    scaled = ((values - mean) / std).astype(np.float32)
    return Dataset(
        kind="series", name=name, description=f"numeric series from {label} ({len(values)} values)",
        streams=[scaled], splits=[split], mean=mean, std=std, source={"type": "file", "path": label}, val_fraction=val_fraction,
    )


def text_dataset(text: str, name: str, label: str, val_fraction: float) -> Dataset:
    """Character-level text: every Unicode code point is one token."""
    codes = np.frombuffer(text.encode("utf-32-le", errors="surrogatepass"), dtype=np.uint32)
    alphabet, ids = np.unique(codes, return_inverse=True)
    vocab = [chr(c) for c in alphabet]
    split = _split_point(len(ids), val_fraction, label)
    return Dataset(
        kind="text", name=name, description=f"text from {label} ({len(ids)} characters, {len(vocab)} distinct)",
        streams=[ids.astype(np.int32)], splits=[split], vocab=vocab, source={"type": "file", "path": label},
        val_fraction=val_fraction,
    )


def sine_dataset(config: SineConfig, val_fraction: float, seed: int) -> Dataset:
    config.check()
    waves = sine_waves(config.waves, config.length, config, np.random.default_rng(seed))
    typical = None
    if config.scale_each:
        sizes = stream_scale(waves)
        waves, typical = (waves / sizes[:, None]).astype(np.float32), float(sizes.mean())
    split = _split_point(config.length, val_fraction, "the sine waves")
    desc = (
        f"{config.waves} sine waves of {config.length} steps, period {config.period_min:g}-{config.period_max:g}, "
        f"amplitude {config.amp_min:g}-{config.amp_max:g}" + (f", noise {config.noise:g}" if config.noise else "")
        + (", each scaled by its own size" if config.scale_each else "")
    )
    return Dataset(
        kind="series", name="sine", description=desc, streams=list(waves), splits=[split] * config.waves,
        source={"type": "sine", **asdict(config)}, val_fraction=val_fraction, typical_scale=typical,
    )


def _split_point(n: int, val_fraction: float, label: str) -> int:
    split = n - max(1, int(round(n * val_fraction)))
    if split < 2:
        raise DataError(f"{label} is too short ({n} items) to split into training and validation data")
    return split
