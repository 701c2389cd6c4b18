"""Text and series behind the same seams: every model has an input side and an output head
(model/inputs.py, model/heads.py), the weights keep the names checkpoints have always used, and
what else differs between them is a kind of data (seqgen/kinds.py) with one interface."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from seqgen import ModelConfig, NumpyModel, SeqModel, load_checkpoint, sample
from seqgen.errors import UsageError
from seqgen.kinds import Kind, SeriesKind, TextKind
from seqgen.model.heads import CategoricalHead, GaussianHead, head_for
from seqgen.model.inputs import TokenInput, ValueInput, input_for

SHIPPED = Path(__file__).resolve().parents[1] / "checkpoints"


def test_every_model_has_an_input_and_a_head():
    text, series = ModelConfig(vocab_size=30, hidden=8), ModelConfig(hidden=8, head="gaussian", calendar=(7.0,))
    assert isinstance(input_for(text), TokenInput) and isinstance(head_for(text), CategoricalHead)
    assert isinstance(input_for(series), ValueInput) and isinstance(head_for(series), GaussianHead)
    assert (input_for(text).size, head_for(text).size) == (text.embed, 30)
    assert input_for(series).size == 3  # the value, then the calendar cycle's two places


def test_the_weights_keep_the_names_the_shipped_checkpoints_have():
    for name in ("tinyshakespeare", "sine"):
        ckpt = load_checkpoint(SHIPPED / f"{name}.safetensors")
        assert set(SeqModel(ckpt.model_config).state_dict()) == set(ckpt.weights)


def test_the_categorical_head_scores_tokens_by_cross_entropy():
    logits, targets = torch.randn(2, 5, 11), torch.randint(0, 11, (2, 5))
    head = CategoricalHead(11)
    assert torch.equal(head.loss(logits, targets), F.cross_entropy(logits.reshape(-1, 11), targets.reshape(-1)))
    total, spread = head.validation_sums(logits, targets)
    assert np.isclose(total, 10 * head.loss(logits, targets).item(), rtol=1e-6) and spread == 0.0


def test_both_backends_read_tokens_and_values_through_their_input_side():
    torch.manual_seed(0)
    for config, x in (
        (ModelConfig(cell="gru", layers=1, hidden=8, vocab_size=12), np.array([[1, 5, 7, 2]])),
        (ModelConfig(cell="lstm", layers=2, hidden=8), np.array([[0.1, -0.4, 0.3, 0.9]], dtype=np.float32)),
    ):
        model = SeqModel(config).eval()
        weights = {k: v.detach().numpy() for k, v in model.state_dict().items()}
        with torch.no_grad():
            expected, _ = model(torch.as_tensor(x))
        got, _ = NumpyModel(weights, config).forward(x)
        np.testing.assert_allclose(got, expected.numpy(), atol=1e-5)


def test_text_and_series_are_two_kinds_of_data_behind_one_interface():
    text = load_checkpoint(SHIPPED / "tinyshakespeare.safetensors").data_kind
    series = load_checkpoint(SHIPPED / "sine.safetensors").data_kind
    assert isinstance(text, TextKind) and isinstance(series, SeriesKind)
    assert Kind.__abstractmethods__ and not TextKind.__abstractmethods__ and not SeriesKind.__abstractmethods__
    assert (text.default_format, series.default_format) == ("text", "values")
    assert text.allows("stop") and not series.allows("stop")
    with pytest.raises(UsageError, match="^`stop` applies to text models$"):
        series.check("stop")


def test_a_series_model_refuses_a_text_option_as_it_always_has():
    with pytest.raises(UsageError, match="^`stop` applies to text models$"):
        sample(SHIPPED / "sine.safetensors", length=5, stop="\n")
    with pytest.raises(UsageError, match="^`min_p` chooses characters; this model generates numbers$"):
        sample(SHIPPED / "sine.safetensors", length=5, min_p=0.1)
    with pytest.raises(UsageError, match="^`series` names a series of a model of numbers; this model generates text$"):
        sample(SHIPPED / "tinyshakespeare.safetensors", length=5, series="a")
