"""The network: an input layer, a stack of recurrent cells (LSTM, GRU or Elman) and an output head.

One `forward(x, state) -> (y, state)` serves both training (whole windows) and generation
(windows of length one): the state is a plain value that the caller keeps and passes back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ModelConfig
from .heads import head_for
from .inputs import input_for

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}

# The recurrent state: (h, c) for an LSTM, h for a GRU or Elman cell; each (layers, batch, hidden).
State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


class SeqModel(nn.Module):
    """Input side -> RNN -> output head: token -> embedding -> RNN -> logits, or values (and
    calendar places) -> RNN -> the next value or its distribution (model/inputs.py, heads.py)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        config.check()
        self.config = config
        self.reader, self.output = input_for(config), head_for(config)
        # The input's own layer (a token embedding, or none), under the name checkpoints store it by.
        self.embed = self.reader.layer()
        self.rnn = CELLS[config.cell](
            self.reader.size,
            config.hidden,
            num_layers=config.layers,
            batch_first=True,
            dropout=config.dropout if config.layers > 1 else 0.0,
        )
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden, config.channels * self.output.size)
        if self.output.zero_start:
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def init_state(self, batch_size: int, device: torch.device | str = "cpu") -> State:
        """The zero state for `batch_size` streams."""
        c = self.config
        zeros = torch.zeros(c.layers, batch_size, c.hidden, device=device)
        return (zeros, zeros.clone()) if c.cell == "lstm" else zeros

    def forward(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """x: (batch, time) token ids or values, or (batch, time, inputs) for a model with calendar
        inputs. Returns logits (batch, time, vocab) or values (batch, time)."""
        out, state = self.rnn(self.reader.read(self.embed, x), state)
        y = self.head(self.drop(out))
        return self.output.per_step(y, self.config.channels), state

    def step(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """One time step, x: (batch,) (or (batch, inputs)) -> (batch, vocab) logits or (batch,) values.

        Same result as `forward` on a window of length one, but through the per-layer cell
        functions, which cost a fraction of a full `nn.LSTM` call: this is what makes
        free-running (feeding the model its own output) affordable in training.
        """
        c = self.config
        inputs = self.reader.read(self.embed, x, steps=False)
        is_lstm = c.cell == "lstm"
        h_all, c_all = (state[0], state[1]) if is_lstm else (state, None)
        new_h, new_c = [], []
        for layer in range(c.layers):
            weights = [
                getattr(self.rnn, f"{name}_l{layer}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
            ]
            if is_lstm:
                h, cell = torch.lstm_cell(inputs, (h_all[layer], c_all[layer]), *weights)
                new_c.append(cell)
            else:
                h = CELL_STEPS[c.cell](inputs, h_all[layer], *weights)
            new_h.append(h)
            inputs = F.dropout(h, self.rnn.dropout, self.training) if layer < c.layers - 1 else h
        y = self.head(self.drop(inputs))
        state = (torch.stack(new_h), torch.stack(new_c)) if is_lstm else torch.stack(new_h)
        return self.output.per_step(y, c.channels), state


CELL_STEPS = {"gru": torch.gru_cell, "rnn": torch.rnn_tanh_cell}


def detach_state(state: State) -> State:
    """Cut the graph between windows (truncated backpropagation through time)."""
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    return state.detach()


def state_tensors(state: State) -> list[torch.Tensor]:
    return list(state) if isinstance(state, tuple) else [state]


def state_from_tensors(tensors: list[torch.Tensor], cell: str) -> State:
    return (tensors[0], tensors[1]) if cell == "lstm" else tensors[0]


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
