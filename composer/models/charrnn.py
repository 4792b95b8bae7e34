"""Character-level LSTM over ABC text (seed 003: embedding -> LSTM -> linear). Pure torch."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
from torch import nn


@dataclass
class CharRNNConfig:
    """Size of a :class:`CharRNN`.

    The seed notebook uses ``embed=256, hidden=1024, layers=1`` (:data:`PRESETS` "seed");
    the shipped model is the "default" preset, sized to train on one CPU thread in
    about 90 minutes and to sample faster than 1000 characters/s at batch 1.
    """
    vocab_size: int = 96
    embed: int = 256
    hidden: int = 512
    layers: int = 2
    dropout: float = 0.25

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "CharRNNConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


#: Named sizes. "seed" is the MIT lab's model; "default" the shipped one; "tiny" for tests.
PRESETS = {
    "seed": dict(embed=256, hidden=1024, layers=1, dropout=0.0),
    "default": dict(embed=256, hidden=512, layers=2, dropout=0.25),
    "small": dict(embed=128, hidden=384, layers=2, dropout=0.1),
    "tiny": dict(embed=16, hidden=64, layers=1, dropout=0.0),
}


class CharRNN(nn.Module):
    """Embedding -> multi-layer LSTM -> dropout -> linear logits over the vocabulary."""

    def __init__(self, config: CharRNNConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.embed)
        self.lstm = nn.LSTM(config.embed, config.hidden, num_layers=config.layers, batch_first=True,
                            dropout=config.dropout if config.layers > 1 else 0.0)
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden, config.vocab_size)

    def init_state(self, batch: int, device=None, dtype=None):
        """Zero (h, c), each ``(layers, batch, hidden)``."""
        p = self.head.weight
        shape = (self.config.layers, batch, self.config.hidden)
        return (torch.zeros(shape, device=device or p.device, dtype=dtype or p.dtype),
                torch.zeros(shape, device=device or p.device, dtype=dtype or p.dtype))

    def forward(self, x: torch.Tensor, state=None):
        """``x`` (batch, time) int64 -> logits (batch, time, vocab), new state."""
        if state is None:
            state = self.init_state(x.shape[0], x.device)
        out, state = self.lstm(self.embed(x), state)
        return self.head(self.drop(out)), state

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


class Stepper:
    """Fast one-character steps for sampling at batch 1.

    ``nn.LSTM`` costs milliseconds per call on the CPU at batch 1 and length 1 (its
    sequence kernels do not pay off); this does the same arithmetic with plain matrix
    products: the first layer's input projection is a lookup table over the vocabulary,
    the other layers use one ``addmm`` on ``[x, h]``. States are ``nn.LSTM``'s
    ``(h, c)`` of shape ``(layers, 1, hidden)``, so both can be mixed.
    """

    def __init__(self, model: CharRNN):
        lstm, H = model.lstm, model.config.hidden
        with torch.no_grad():
            w0, b0 = lstm.weight_ih_l0, lstm.bias_ih_l0 + lstm.bias_hh_l0
            self.table = (model.embed.weight @ w0.t() + b0).float().contiguous()  # (V, 4H)
            self.w_hh0 = lstm.weight_hh_l0.t().float().contiguous()  # (H, 4H)
            self.layers = []
            for k in range(1, model.config.layers):
                w = torch.cat([getattr(lstm, f"weight_ih_l{k}"), getattr(lstm, f"weight_hh_l{k}")], 1)
                b = getattr(lstm, f"bias_ih_l{k}") + getattr(lstm, f"bias_hh_l{k}")
                self.layers.append((w.t().float().contiguous(), b.float().contiguous()))
            self.head_w = model.head.weight.t().float().contiguous()
            self.head_b = model.head.bias.float().contiguous()
        self.H = H

    @staticmethod
    def _cell(gates, c):
        i, f, g, o = gates.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c

    def __call__(self, idx: int, state):
        """Logits ``(vocab,)`` after reading character id ``idx``, and the new state."""
        h_all, c_all = state
        hs, cs = [], []
        gates = torch.addmm(self.table[idx:idx + 1], h_all[0], self.w_hh0)
        h, c = self._cell(gates, c_all[0])
        hs.append(h)
        cs.append(c)
        for k, (w, b) in enumerate(self.layers, start=1):
            gates = torch.addmm(b, torch.cat([h, h_all[k]], 1), w)
            h, c = self._cell(gates, c_all[k])
            hs.append(h)
            cs.append(c)
        logits = torch.addmm(self.head_b, h, self.head_w)[0]
        return logits, (torch.stack(hs), torch.stack(cs))
