"""Reading files as bytes or decoded text, a chunk at a time, with errors that say where the problem is."""

from __future__ import annotations

import codecs
import itertools
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

from ..errors import DataError, UsageError

# Files are read, decoded and encoded this many bytes at a time, so memory stays flat whatever their size.
CHUNK_BYTES = 4 << 20


def open_source(path: str) -> BinaryIO:
    p = Path(path)
    if not p.exists():
        raise DataError(
            f"{path}: no such file (give a text file, a numeric series, '-' for stdin, or nothing for sine waves)"
        )
    if p.is_dir():
        raise DataError(f"{path} is a directory: give a file")
    try:
        return p.open("rb")
    except PermissionError:
        raise DataError(f"{path}: permission denied (check the file's read permission)") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None


def read_chunks(path: str, size: int | None = None) -> Iterator[bytes]:
    """The bytes of a file, `size` (default CHUNK_BYTES) at a time; an empty file is an error."""
    size = size or CHUNK_BYTES  # read when called, so that a test can make chunks tiny
    with open_source(path) as f:
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


def decoded_chunks(path: str, encoding: str = "utf-8", size: int | None = None) -> Iterator[str]:
    """The text of a file, decoded a chunk at a time. A character split across two chunks is
    joined by the incremental decoder; an undecodable byte gets `decode_text`'s message."""
    try:
        decoder = codecs.getincrementaldecoder(encoding)()
    except LookupError:
        raise UsageError(f"`encoding` {encoding!r} is not an encoding Python knows (try utf-8 or latin-1)") from None
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
            raise undecodable(path, encoding, head, start, line, data[e.start]) from None
        if chunk is not None:
            offset += len(chunk)
            lines += chunk.count(b"\n")
        if text:
            yield text


def read_head(path: str, encoding: str) -> str:
    """The first characters of a file, enough to tell a series from text (a cut last line dropped)."""
    chunks = decoded_chunks(path, encoding, size=65536)
    head = next(chunks, "")
    more = next(chunks, None) is not None
    chunks.close()
    cut = max(head.rfind("\n"), head.rfind("\r"))
    return head[: cut + 1] if more and cut >= 0 else head


def read_file(path: str) -> bytes:
    with open_source(path) as f:
        try:
            return f.read()
        except OSError as e:
            raise DataError(f"{path}: cannot read ({e.strerror})") from None


def decode_text(raw: bytes, label: str, encoding: str = "utf-8") -> str:
    """Decode bytes, saying where the first undecodable byte is."""
    try:
        return raw.decode(encoding)
    except LookupError:
        raise UsageError(f"`encoding` {encoding!r} is not an encoding Python knows (try utf-8 or latin-1)") from None
    except UnicodeDecodeError as e:
        raise undecodable(label, encoding, raw[:8192], e.start, raw[: e.start].count(b"\n") + 1, raw[e.start]) from None


def undecodable(label: str, encoding: str, head: bytes, offset: int, line: int, byte: int) -> DataError:
    if str(label).endswith(".safetensors"):
        return DataError(f"{label} is a checkpoint, not training data; to continue its run, use `resume` {label}")
    if b"\x00" in head:
        return DataError(
            f"{label} looks like a binary file (NUL bytes, not {encoding} text); give a text file or a numeric series"
        )
    return DataError(
        f"{label} is not valid {encoding}: byte {offset} (line {line}) is 0x{byte:02x}; "
        "if the file uses another encoding, pass it as `encoding` (for example latin-1)"
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


def stream_lines(chunks: Iterable[str]) -> Iterator[str]:
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
