"""Loading data: sine waves, numeric series and character-level text."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest

from seqgen import DataError, SineConfig, UsageError, load_data


def test_sine_waves_stay_in_the_requested_ranges():
    data = load_data(None, sine=SineConfig(waves=50, length=300, amp_min=0.5, amp_max=1.0, scale_each=False), seed=3)
    waves = np.stack(data.streams)
    assert waves.shape == (50, 300)
    peaks = np.abs(waves).max(axis=1)
    assert peaks.min() > 0.45 and peaks.max() <= 1.0
    assert data.splits == [270] * 50
    assert data.kind == "series" and data.name == "sine"


def test_scaled_sine_waves_have_one_size_whatever_their_amplitude():
    # By default each wave is divided by the size of its first 100 values, the prime's length.
    data = load_data(None, sine=SineConfig(waves=50, length=300, amp_min=0.5, amp_max=1.0), seed=3)
    waves = np.stack(data.streams)
    np.testing.assert_allclose(np.sqrt(np.mean(waves[:, :100].astype(np.float64) ** 2, axis=1)), 1.0, rtol=1e-5)
    peaks = np.abs(waves).max(axis=1)
    assert 1.2 < peaks.min() and peaks.max() < 1.7  # a sine's peak is sqrt(2) times its RMS, give or take the start


def test_same_seed_same_waves():
    a, b = load_data(None, seed=5), load_data(None, seed=5)
    np.testing.assert_array_equal(a.streams[0], b.streams[0])


def test_text_vocabulary_keeps_whole_characters(tmp_path):
    path = tmp_path / "u.txt"
    path.write_text("café ☕ 漢字 🙂 e\u0301", encoding="utf-8")
    data = load_data(str(path))
    assert data.kind == "text"
    for ch in "é☕漢字🙂\u0301":
        assert ch in data.vocab
    decoded = "".join(data.vocab[i] for i in data.streams[0])
    assert decoded == path.read_text(encoding="utf-8")


def test_validation_is_the_last_fraction(text_file):
    data = load_data(str(text_file), val_fraction=0.25)
    n = len(data.streams[0])
    assert data.splits[0] == n - round(n * 0.25)


def test_numbers_one_per_line_are_a_scaled_series(series_file):
    data = load_data(str(series_file))
    assert data.kind == "series"
    train = data.train_streams[0]
    assert abs(train.mean()) < 1e-5 and abs(train.std() - 1) < 1e-4
    np.testing.assert_allclose(
        data.unscale(data.streams[0][:3]),
        [3.0, 3.0 + 2 * np.sin(2 * np.pi / 25), 3.0 + 2 * np.sin(4 * np.pi / 25)],
        atol=1e-5,
    )


def test_csv_with_header_and_npy(tmp_path):
    csv = tmp_path / "s.csv"
    csv.write_text("value\n" + "\n".join(str(i % 7) for i in range(50)))
    assert load_data(str(csv)).kind == "series"
    npy = tmp_path / "s.npy"
    np.save(npy, np.sin(np.arange(100) / 3))
    data = load_data(str(npy))
    assert data.kind == "series" and len(data.streams[0]) == 100


def test_bad_number_names_its_line(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("1\n2\n3\nfour\n5\n")
    with pytest.raises(DataError, match="line 4"):
        load_data(str(path))


def test_stdin_text(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(("abc\n" * 50).encode())))
    data = load_data("-")
    assert data.kind == "text" and data.name == "stdin" and set(data.vocab) == {"a", "b", "c", "\n"}


@pytest.mark.parametrize(
    "content,message", [(b"", "empty"), (b"\xff\xfeabc\xff", "byte 0"), (b"\x00\x01\x02\xff" * 10, "binary")]
)
def test_unusable_files_get_clear_errors(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        load_data(str(path))


def test_series_mistakes_name_the_line_and_what_is_wrong_with_it(tmp_path):
    two_columns = tmp_path / "two.csv"
    # A header over a counter and a column of numbers is a table: the counter is not a series.
    two_columns.write_text("time,value\n" + "".join(f"{t},{t % 3}\n" for t in range(1, 31)))
    assert load_data(str(two_columns), kind="series").source["columns"] == ["value"]
    two_columns.write_text("1,2,\n3,4,\n")  # trailing commas, no header
    with pytest.raises(DataError, match="line 1: more than one column"):
        load_data(str(two_columns), kind="series")
    prose = tmp_path / "prose.txt"
    prose.write_text("First Citizen:\nBefore we proceed, hear me speak.\n")
    with pytest.raises(
        DataError, match="line 2: 'Before we proceed, hear me speak.' is not a number; it looks like text"
    ):
        load_data(str(prose), kind="series")


def test_missing_file_and_bad_fraction(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_data(str(tmp_path / "nope.txt"))
    with pytest.raises(UsageError, match="`val_fraction`"):
        load_data(None, val_fraction=1.5)


def test_text_is_cached_as_a_memmap_reused_until_the_file_changes(tmp_path, monkeypatch):
    import os

    import seqgen.data.reading

    monkeypatch.setattr(seqgen.data.reading, "CHUNK_BYTES", 7)  # many chunk boundaries, some inside a character
    path, cache = tmp_path / "src" / "u.txt", tmp_path / "cache"
    path.parent.mkdir()
    text = "naïve café ☕ 漢字 🙂\n" * 5
    path.write_text(text, encoding="utf-8")
    data = load_data(str(path), cache_dir=cache)
    assert isinstance(data.streams[0], np.memmap) and data.streams[0].dtype == np.uint8
    assert "".join(data.vocab[i] for i in data.streams[0]) == text
    assert sorted(p.name for p in path.parent.iterdir()) == ["u.txt"]  # nothing beside the source
    entries = sorted(cache.glob("*.bin"))
    assert len(entries) == 1
    built = entries[0].stat().st_mtime_ns
    load_data(str(path), cache_dir=cache)
    assert entries[0].stat().st_mtime_ns == built  # reused, not rebuilt

    path.write_text("".join(chr(0x4E00 + i) for i in range(300)) * 2, encoding="utf-8")
    os.utime(path, ns=(built + 10**9, built + 10**9))
    changed = load_data(str(path), cache_dir=cache)
    assert changed.streams[0].dtype == np.uint16 and len(changed.vocab) == 300
    assert "".join(changed.vocab[i] for i in changed.streams[0]) == path.read_text(encoding="utf-8")


def test_series_is_cached_scaled_as_float32(tmp_path, series_file):
    data = load_data(str(series_file), cache_dir=tmp_path / "cache")
    again = load_data(str(series_file), cache_dir=tmp_path / "cache")
    assert data.streams[0].dtype == np.float32 and isinstance(again.streams[0], np.memmap)
    np.testing.assert_array_equal(data.streams[0], again.streams[0])
    assert (data.mean, data.std, data.splits) == (again.mean, again.std, again.splits)


def test_bad_byte_after_a_chunk_boundary_names_its_offset_and_line(tmp_path, monkeypatch):
    import seqgen.data.reading

    monkeypatch.setattr(seqgen.data.reading, "CHUNK_BYTES", 5)
    path = tmp_path / "bad.txt"
    path.write_bytes("abc\nd\u00e9f\ngh".encode() + b"\xff" + b"ij\n" * 20)
    with pytest.raises(DataError, match=r"byte 11 \(line 3\) is 0xff") as streamed:
        load_data(str(path), cache_dir=tmp_path / "cache")
    with pytest.raises(DataError) as whole:
        seqgen.data.decode_text(path.read_bytes(), str(path))
    assert str(streamed.value) == str(whole.value)
