"""Training: the `Trainer` (trainer.py: truncated backpropagation through time, validation,
checkpoints, recovery from blow-ups), the thread count it measures as it goes (threads.py), and
training in several processes (distributed.py)."""

from .trainer import Trainer, TrainResult, evaluate_loss, make_tracks, stop_on_signals
from .threads import ThreadTuner

__all__ = ["ThreadTuner", "TrainResult", "Trainer", "evaluate_loss", "make_tracks", "stop_on_signals"]
