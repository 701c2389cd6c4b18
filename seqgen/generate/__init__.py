"""Generation: the stateful `Generator` (generator.py), the sampling policy that chooses each
token (sampling.py), state files that let a later call continue exactly (state.py), and the
pieces built on them (api.py), one generation request prepared from a checkpoint and what was
asked, with `sample()`, `seqgen sample` as a function (request.py), and `follow()` (api.py)."""

from .api import follow
from .generator import Generator, Step, TorchRunner
from .request import Request, prepare, sample
from .sampling import SampleConfig

__all__ = ["Generator", "Request", "SampleConfig", "Step", "TorchRunner", "follow", "prepare", "sample"]
