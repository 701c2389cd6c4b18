"""Output heads of continuous models: what the network's output at each step means, how it is
scored in training and how the next value is drawn from it in generation.

A head says how many numbers the network outputs per step (`size`), turns the network's outputs
into predictions (`forward` in torch for training, `forward_numpy` for generation; a head may keep
a state of its own per stream, carried like the network's), gives the training loss (`loss`) and
draws the value to feed back (`draw`, in NumPy, with the generator's random numbers). The
likelihood heads (Gaussian, Student-t) output a distribution's parameters per step instead of a
value: trained by its negative log-likelihood, they are sampled from in generation, so that
several samples are several plausible futures. Every head is registered in HEADS and named by
`ModelConfig.head`. A text model's head is `CategoricalHead`: its output is logits over the
vocabulary, scored by cross-entropy, and the sampling policy (generate/sampling.py) chooses the
next token from them. `head_for(config)` gives every model its head, text or series.
"""

from __future__ import annotations

import math

import numpy as np

from ..config import ModelConfig


class PointHead:
    """The output is the next value itself, trained by mean squared error; generation feeds it
    back as it is, or with Gaussian noise of a given size added (the `noise` sampling setting)."""

    name = "point"
    size = 1
    # Whether the head outputs a distribution to sample from (the likelihood heads) or a value.
    probabilistic = False
    # Whether the network's output layer starts at exactly zero (see OscillatorHead).
    zero_start = False
    # Whether the head predicts values (a series'), whose forecasts' spread calibrate.py fits.
    continuous = True
    # Whether the output is the next input itself, so that training may free-run the model on it.
    feeds_back = True
    # Whether the loss is a cross-entropy in nats per token: comparable across runs and models of
    # the same text, so that a rise by a fixed factor means a run blew up (train/trainer.py).
    in_nats = False

    def per_step(self, y, channels: int):
        """The network's outputs (torch or NumPy) as predictions per step: (..., head size), or
        for several channels (..., channels, head size), a head size of 1 squeezed out."""
        if channels > 1:
            y = y.reshape(*y.shape[:-1], channels, -1)
        return y[..., 0] if y.shape[-1] == 1 else y

    def init_state(self, batch: int):
        return None

    def forward(self, x, output, state):
        """(prediction, state, mask): the prediction of each next value, and which to score (None: all)."""
        return output, state, None

    forward_numpy = forward

    def loss(self, prediction, target, mask=None):
        import torch.nn.functional as F

        if mask is None:
            return F.mse_loss(prediction, target)
        return ((prediction - target) ** 2 * mask).sum() / mask.sum().clamp_min(1)

    def mean(self, output):
        """The point prediction in an output (torch or NumPy): the value itself, here."""
        return output

    def validation_sums(self, prediction, target) -> tuple[float, float]:
        """Validation's sums over a stretch: the squared error of the point prediction for every
        head, so that validation figures compare across heads (a likelihood's value is not an
        error), and for a likelihood head each squared error over the variance it predicted."""
        error = self.mean(prediction) - target
        squared = error * error
        spread = (squared / self.variance(prediction)).sum().item() if self.probabilistic else 0.0
        return squared.sum().item(), spread

    def draw(
        self, output: np.ndarray, rng: np.random.Generator, noise: float | np.ndarray = 0.0, spread: float = 1.0
    ) -> np.ndarray:
        """The values to feed back, one per stream (a copy: backends reuse their output buffer).
        `noise`: the size of Gaussian noise to add; `spread` scales a likelihood head's own
        spread (0: its mean, 1: a draw from the distribution it predicts)."""
        values = output.astype(np.float64)
        if np.any(noise > 0):
            values += rng.normal(0.0, noise, size=values.shape)
        return values


# Predictions of the oscillator head before a stream has shown this many values are not scored
# in training: its recurrence has seen too little of the stream to be right, and a network taught
# to correct those early errors would also "correct" the recurrence once it is exact.
OSCILLATOR_WARMUP = 10
# The network's output enters the oscillator's prediction at this scale, so that the correction
# starts small beside the recurrence and stays there unless the data ask for more.
CORRECTION_SCALE = 0.01


class OscillatorHead(PointHead):
    """The next value is the order-2 linear recurrence x[t+1] = a x[t] - x[t-1] plus the
    network's correction (its output, times CORRECTION_SCALE).

    A sine wave of any frequency w obeys that recurrence exactly with a = 2 cos w, and its roots lie
    on the unit circle for any |a| <= 2: fed back on itself, it neither grows nor decays. `a` is the
    least-squares fit to every value the stream has shown, kept in the head's state as two running
    sums (so each step costs a few multiplications, whatever the length): after a 100-value prime
    of a clean sine it is right to the last bits of a float64, where a network reading the
    frequency off the prime errs by about 1e-3 and the phase slips within a few periods. The
    network learns what the recurrence misses (a second frequency, noise); on clean sines it learns
    to add almost nothing. State per stream (float64): the last two inputs, the two sums, and how
    many values the stream has shown.
    """

    name = "oscillator"
    feeds_back = False  # its output is a correction to the recurrence, not the value
    # The network's output layer starts at exactly zero, so an untrained correction is none at all
    # and a run stopped after a handful of steps holds the period as the recurrence alone does.
    # With PyTorch's random start, a model stopped at step 59 of 2,500 drifted to a free-run RMSE
    # of 0.30 over 1,000 steps where the recurrence alone keeps 1e-10 (issue 30).
    zero_start = True

    def init_state(self, batch: int) -> dict:
        return {name: np.zeros(batch) for name in ("x1", "x2", "num", "den", "seen")}

    def forward(self, x, output, state):
        import torch

        state = {k: torch.as_tensor(v, dtype=torch.float64, device=x.device) for k, v in state.items()}
        values = torch.cat([state["x2"][:, None], state["x1"][:, None], x.double()], dim=1)
        before2, before1, current = values[:, :-2], values[:, 1:-1], values[:, 2:]
        seen = state["seen"][:, None] + torch.arange(x.shape[1], device=x.device, dtype=torch.float64)
        known = (seen >= 2).double()  # x[t-2] is a value of the stream, not the zero it starts from
        num = state["num"][:, None] + torch.cumsum(known * (current + before2) * before1, dim=1)
        den = state["den"][:, None] + torch.cumsum(known * before1 * before1, dim=1)
        a = torch.where(den > 0, num / torch.where(den > 0, den, torch.ones_like(den)), torch.full_like(den, 2.0))
        a = (a + CORRECTION_SCALE * output.double()).clamp(-2.0, 2.0)
        prediction = (a * current - before1).float()
        new_state = {
            "x1": values[:, -1],
            "x2": values[:, -2],
            "num": num[:, -1],
            "den": den[:, -1],
            "seen": state["seen"] + x.shape[1],
        }
        return prediction, new_state, (seen >= OSCILLATOR_WARMUP).float()

    def forward_numpy(self, x: np.ndarray, output: np.ndarray, state: dict):
        """`forward` in NumPy for generation: x and output (batch, time), the state as it returned."""
        values = np.concatenate([state["x2"][:, None], state["x1"][:, None], np.asarray(x, dtype=np.float64)], axis=1)
        before2, before1, current = values[:, :-2], values[:, 1:-1], values[:, 2:]
        seen = state["seen"][:, None] + np.arange(values.shape[1] - 2)
        known = seen >= 2
        num = state["num"][:, None] + np.cumsum(np.where(known, (current + before2) * before1, 0.0), axis=1)
        den = state["den"][:, None] + np.cumsum(np.where(known, before1 * before1, 0.0), axis=1)
        a = np.where(den > 0, num / np.where(den > 0, den, 1.0), 2.0)
        a = np.clip(a + CORRECTION_SCALE * np.asarray(output, dtype=np.float64), -2.0, 2.0)
        prediction = a * current - before1
        new_state = {
            "x1": values[:, -1].copy(),
            "x2": values[:, -2].copy(),
            "num": num[:, -1].copy(),
            "den": den[:, -1].copy(),
            "seen": state["seen"] + values.shape[1] - 2,
        }
        return prediction, new_state, None

    def step_numpy(self, x: np.ndarray, output: np.ndarray, state: dict):
        """`forward_numpy` for one (batch,) step, the generation hot path: the same arithmetic
        on a handful of (batch,) arrays, none of the concatenating a whole window needs."""
        known = state["seen"] >= 2
        x = np.asarray(x, dtype=np.float64)
        num = state["num"] + np.where(known, (x + state["x2"]) * state["x1"], 0.0)
        den = state["den"] + np.where(known, state["x1"] * state["x1"], 0.0)
        a = np.where(den > 0, num / np.where(den > 0, den, 1.0), 2.0)
        a = np.clip(a + CORRECTION_SCALE * np.asarray(output, dtype=np.float64), -2.0, 2.0)
        prediction = a * x - state["x1"]
        return prediction, {"x1": x, "x2": state["x1"], "num": num, "den": den, "seen": state["seen"] + 1}


# The smallest spread a likelihood head predicts, in model units (the training part's standard
# deviation is 1): without a floor the likelihood rewards a spread shrinking towards zero on the
# values it has learnt by heart, and the loss runs off to minus infinity.
MIN_SPREAD = 1e-3


class GaussianHead(PointHead):
    """The network outputs a normal distribution of the next value: its mean and, through a
    softplus, its standard deviation. Trained by the negative log-likelihood; generation feeds
    back a draw from it (or its mean, with `spread` 0)."""

    name = "gaussian"
    size = 2
    probabilistic = True
    feeds_back = False  # its output is a distribution's parameters

    def mean(self, output):
        return output[..., 0]

    def _sigma_torch(self, output):
        import torch.nn.functional as F

        return F.softplus(output[..., 1]) + MIN_SPREAD

    def variance(self, output):
        """The variance of the predicted distribution (torch)."""
        return self._sigma_torch(output) ** 2

    def loss(self, prediction, target, mask=None):
        import torch

        sigma = self._sigma_torch(prediction)
        z = (target - prediction[..., 0]) / sigma
        nll = torch.log(sigma) + 0.5 * z * z + 0.5 * math.log(2 * math.pi)
        return _masked_mean(nll, mask)

    def draw(self, output, rng, noise=0.0, spread=1.0):
        output = np.asarray(output, dtype=np.float64)
        values = output[..., 0].copy()
        if spread > 0:
            sigma = _softplus(output[..., 1]) + MIN_SPREAD
            values += spread * sigma * rng.standard_normal(values.shape)
        return PointHead.draw(self, values, rng, noise)


class StudentTHead(GaussianHead):
    """A Student-t distribution of the next value: location, scale (softplus) and degrees of
    freedom (2 + softplus, so that its variance is finite). Its heavier tails let a few large
    moves in the data widen the intervals without stretching the spread of every step."""

    name = "studentt"
    size = 3

    def variance(self, output):
        import torch.nn.functional as F

        df = 2.0 + F.softplus(output[..., 2])
        return self._sigma_torch(output) ** 2 * df / (df - 2).clamp_min(1e-3)

    def loss(self, prediction, target, mask=None):
        import torch
        import torch.nn.functional as F

        scale = self._sigma_torch(prediction)
        df = 2.0 + F.softplus(prediction[..., 2])
        z = (target - prediction[..., 0]) / scale
        nll = (
            torch.lgamma(df / 2)
            - torch.lgamma((df + 1) / 2)
            + 0.5 * torch.log(df * math.pi)
            + torch.log(scale)
            + (df + 1) / 2 * torch.log1p(z * z / df)
        )
        return _masked_mean(nll, mask)

    def draw(self, output, rng, noise=0.0, spread=1.0):
        output = np.asarray(output, dtype=np.float64)
        values = output[..., 0].copy()
        if spread > 0:
            scale = _softplus(output[..., 1]) + MIN_SPREAD
            df = 2.0 + _softplus(output[..., 2])
            values += spread * scale * rng.standard_t(df)
        return PointHead.draw(self, values, rng, noise)


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def _masked_mean(values, mask):
    if mask is None:
        return values.mean()
    return (values * mask).sum() / mask.sum().clamp_min(1)


class CategoricalHead:
    """A text model's output: logits over the vocabulary, one per token, trained by cross-entropy.
    The next token is chosen from them by the sampling policy (generate/sampling.py), which the
    `Generator` applies; the head has no state of its own."""

    name = "categorical"
    continuous = False
    probabilistic = False
    zero_start = False
    feeds_back = False  # its output is logits, not a token
    in_nats = True

    def __init__(self, vocab_size: int):
        self.size = vocab_size

    def init_state(self, batch: int):
        return None

    def forward(self, x, output, state):
        return output, state, None

    forward_numpy = forward

    def per_step(self, y, channels: int):
        return y

    def loss(self, prediction, target, mask=None):
        import torch.nn.functional as F

        return F.cross_entropy(prediction.reshape(-1, prediction.shape[-1]), target.reshape(-1))

    def validation_sums(self, prediction, target) -> tuple[float, float]:
        """The summed cross-entropy of a stretch (there is no spread to measure)."""
        import torch.nn.functional as F

        logits = prediction.reshape(-1, prediction.shape[-1])
        return F.cross_entropy(logits, target.reshape(-1), reduction="sum").item(), 0.0


HEADS = {"point": PointHead, "oscillator": OscillatorHead, "gaussian": GaussianHead, "studentt": StudentTHead}


def head_for(config: ModelConfig) -> PointHead | CategoricalHead:
    """The head a model's configuration names: the categorical head for a vocabulary, else the
    continuous head of `config.head`."""
    if config.vocab_size > 0:
        return CategoricalHead(config.vocab_size)
    return HEADS[config.head]()
