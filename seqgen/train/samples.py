"""A short sample of a text model at its validations, as it trains: what char-rnn and nanoGPT
users watch to see a model learn (letters, then words, then lines that read), and the plainest
check that a falling loss means what it should.

`with_samples` wraps a run's event handler: after every `every`-th "eval" event it adds a
"sample" event with the text. The sample is drawn from the weights of that moment on the NumPy
backend with a NumPy generator of its own, so that it takes nothing from the run: no torch
random numbers, no training time (validation time is not counted), the same weights.
"""

from __future__ import annotations

from ..kinds import kind_named
from .trainer import EventHandler

# Characters per sample: a few lines, enough to tell words from letters at a glance.
SAMPLE_CHARS = 200
# Drawn at temperature 1: the model's own distribution, which is what its loss measures; a
# cooler sample would look better than the model is.
SAMPLE_TEMPERATURE = 1.0


def training_sample(trainer, length: int = SAMPLE_CHARS, seed: int = 0) -> str:
    """About `length` characters from the model `trainer` is training, at its current weights,
    primed with a newline (or, for a text without one, its first character)."""
    from ..data.tokenizers import CharTokenizer
    from ..generate.generator import Generator
    from ..generate.sampling import SampleConfig
    from ..model.numpy_backend import NumpyModel

    data = trainer.data
    tokenizer = data.tokenizer or CharTokenizer(data.vocab)
    gen = Generator(
        NumpyModel(trainer.weights(), trainer.model_config),
        tokenizer=tokenizer,
        sampling=SampleConfig(temperature=SAMPLE_TEMPERATURE),
        seed=seed,
    )
    gen.feed("\n" if not tokenizer.unknown("\n") else tokenizer.vocab[0])
    pieces, made = [], 0
    # A token spells at least a quarter of a character (a byte), so this many steps always end.
    for _ in range(4 * length):
        pieces.append(gen.step().text[0])
        made += len(pieces[-1])
        if made >= length:
            break
    return "".join(pieces)


def with_samples(
    trainer, on_event: EventHandler, every: int = 1, seconds: float = 0.0, length: int = SAMPLE_CHARS
) -> EventHandler:
    """`on_event`, and after validations of a text run a "sample" event: {"type": "sample",
    "step", "text"}: at every `every`-th validation that comes at least `seconds` of training
    time after the last sample (a small text is validated every few seconds, and a sample each
    time would bury the rest). `every` 0 (or a series run) adds none."""
    if every < 0:
        from ..errors import UsageError

        raise UsageError(f"`sample_every` must be >= 0 (0: no samples), got {every}")
    if not every or not kind_named(trainer.data.kind).allows("training samples"):
        return on_event
    seen, last = 0, None

    def handle(event: dict) -> None:
        nonlocal seen, last
        on_event(event)
        if event["type"] != "eval":
            return
        seen += 1
        if seen >= every and (last is None or event["elapsed"] - last >= seconds):
            seen, last = 0, event["elapsed"]
            # The run's seed: each sample differs from the last by the weights alone.
            text = training_sample(trainer, length, seed=trainer.config.seed)
            on_event({"type": "sample", "step": event["step"], "text": text})

    return handle
