"""Training data: built-in sine waves, numeric series files and text.

Everything becomes a `Dataset` (dataset.py): one or more streams of numbers (token ids for text,
scaled values for series), each split into a training part and a validation tail. `load_data`
(load.py) picks the source; sine.py, series.py and text.py build each kind; reading.py reads
files a chunk at a time; cache.py keeps the decoded copy of a large file; tokenizers/ turns
text into token ids and back (characters, bytes, words or BPE).
"""

from .dataset import Dataset
from .load import load_data
from .reading import decode_text
from .series import looks_numeric, parse_numbers, parse_series, read_values, series_dataset
from .sine import MIN_SCALE_PRIME, SCALE_PRIME, SineConfig, sine_dataset, sine_waves, stream_scale
from .text import text_dataset

__all__ = [
    "Dataset",
    "MIN_SCALE_PRIME",
    "SCALE_PRIME",
    "SineConfig",
    "decode_text",
    "load_data",
    "looks_numeric",
    "parse_numbers",
    "parse_series",
    "read_values",
    "series_dataset",
    "sine_dataset",
    "sine_waves",
    "stream_scale",
    "text_dataset",
]
