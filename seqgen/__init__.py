"""seqgen: train a recurrent network on a sequence (signal or text) and generate from it.

The library API, in the order data flows:

    from seqgen import load_data, ModelConfig, TrainConfig, Trainer, Generator

Importing the package does not import torch; the training names load it when first used.
"""

__version__ = "0.1.0"

from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .config import ModelConfig, TrainConfig, defaults_for
from .data import Dataset, SineConfig, load_data
from .errors import CheckpointError, DataError, SeqgenError, TrainingError, UsageError
from .evaluate import evaluate_series, evaluate_text, free_run_rmse
from .generate import Generator, SampleConfig, follow, sample
from .info import checkpoint_info

_TORCH_NAMES = {"Trainer": "train", "SeqModel": "model", "evaluate_loss": "train"}


def __getattr__(name):
    # Training needs torch; generation on the NumPy backend does not, so torch loads only on demand.
    if name in _TORCH_NAMES:
        import importlib

        return getattr(importlib.import_module(f".{_TORCH_NAMES[name]}", __name__), name)
    raise AttributeError(f"module 'seqgen' has no attribute {name!r}")


__all__ = [
    "Checkpoint", "CheckpointError", "DataError", "Dataset", "Generator", "ModelConfig", "SampleConfig",
    "SeqModel", "SeqgenError", "SineConfig", "TrainConfig", "Trainer", "TrainingError", "UsageError",
    "checkpoint_info", "defaults_for", "evaluate_loss", "evaluate_series", "evaluate_text", "follow", "free_run_rmse",
    "load_checkpoint", "load_data", "sample", "save_checkpoint",
]
