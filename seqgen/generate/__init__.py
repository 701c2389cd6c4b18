"""Generation: the stateful `Generator` (generator.py), the sampling policy that chooses each
token (sampling.py), state files that let a later call continue exactly (state.py), and the
one-call functions built on them, `sample()` and `follow()` (api.py)."""

from .api import follow, sample
from .generator import Generator, TorchRunner
from .sampling import SampleConfig

__all__ = ["Generator", "SampleConfig", "TorchRunner", "follow", "sample"]
