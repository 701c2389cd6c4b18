"""Training: the `Trainer` (trainer.py: truncated backpropagation through time, validation,
checkpoints, recovery from blow-ups), the plan of a run with its measured defaults (plan.py), the thread count it measures when a run starts (threads.py), and
training in several processes (distributed.py)."""

from .trainer import Trainer, TrainResult, evaluate_loss, make_tracks, stop_on_signals
from .threads import measure_threads
from .plan import RunPlan, plan_run

__all__ = [
    "RunPlan",
    "plan_run",
    "measure_threads",
    "TrainResult",
    "Trainer",
    "evaluate_loss",
    "make_tracks",
    "stop_on_signals",
]
