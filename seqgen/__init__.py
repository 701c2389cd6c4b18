"""seqgen: train a recurrent network on a sequence (signal or text) and generate from it.

The library API, in the order data flows:

    from seqgen import load_data, ModelConfig, TrainConfig, Trainer, Generator

Every name loads its module on first use: `import seqgen` imports neither torch nor numpy, so
the command line can configure numpy's BLAS threads before numpy starts (see seqgen.cli), and
generation on the NumPy backend never imports torch.
"""

import importlib

__version__ = "0.2.0"

_MODULES = {
    "AdaptConfig": "adapt",
    "Checkpoint": "checkpoint",
    "load_checkpoint": "checkpoint",
    "save_checkpoint": "checkpoint",
    "ModelConfig": "config",
    "TrainConfig": "config",
    "defaults_for": "config",
    "Dataset": "data",
    "SineConfig": "data",
    "load_data": "data",
    "CheckpointError": "errors",
    "DataError": "errors",
    "SeqgenError": "errors",
    "TrainingError": "errors",
    "UsageError": "errors",
    "MissingPackage": "errors",
    "evaluate_series": "evaluate",
    "evaluate_text": "evaluate",
    "free_run_rmse": "evaluate",
    "Generator": "generate",
    "SampleConfig": "generate",
    "follow": "generate",
    "sample": "generate",
    "checkpoint_info": "info",
    "Trainer": "train",
    "evaluate_loss": "train",
    "plan_run": "train",
    "RunPlan": "train",
    "SeqModel": "model.network",
    "NumpyModel": "model.numpy_backend",
}


def __getattr__(name):
    if name in _MODULES:
        return getattr(importlib.import_module(f".{_MODULES[name]}", __name__), name)
    raise AttributeError(f"module 'seqgen' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_MODULES])


__all__ = sorted(_MODULES)
