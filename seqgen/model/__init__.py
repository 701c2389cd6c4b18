"""The network, twice: `network.SeqModel` in torch for training (and the torch backend), and
`numpy_backend.NumpyModel`, its inference-only twin in NumPy for generation on the CPU. Both
step a state that the caller keeps. `heads.py` says what a continuous model's output means.

Nothing is imported here, so that generation on the NumPy backend never imports torch:
import from the modules themselves (or from `seqgen`).
"""
