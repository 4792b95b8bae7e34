"""Character-level LSTM over ABC text (seed 003: embedding -> LSTM -> linear). Pure torch."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from pathlib import Path

import numpy as np
import torch
from torch import nn

from composer.checkpoints import load_checkpoint, pair_paths, save_checkpoint
from composer.errors import CheckpointError

#: The model card's ``format`` for this model.
CARD_FORMAT = "composer.charrnn/1"


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


class CharVocab:
    """Characters <-> ids. The list of characters is saved in the model card."""

    def __init__(self, chars):
        self.chars = list(chars)
        self.index = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def from_texts(cls, *texts) -> "CharVocab":
        return cls(sorted(set("".join(texts)) | {"\n"}))

    def __len__(self):
        return len(self.chars)

    def encode(self, text: str, skip_unknown: bool = False) -> np.ndarray:
        if skip_unknown:
            return np.array([self.index[c] for c in text if c in self.index], dtype=np.int64)
        return np.array([self.index[c] for c in text], dtype=np.int64)

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)



def save_model(model: CharRNN, vocab: CharVocab, path: str | Path, card: dict, half: bool = True) -> None:
    """Write ``path.safetensors`` (weights, half precision by default) and ``path.json``
    (the model card, which holds the vocabulary and the config), as one pair."""
    dtype = torch.float16 if half else torch.float32
    tensors = {k: v.detach().to(dtype) for k, v in model.state_dict().items()}
    card = dict(card, format=CARD_FORMAT, config=model.config.to_dict(), vocab=vocab.chars,
                dtype="float16" if half else "float32")
    save_checkpoint(path, tensors, card, metadata={"format": CARD_FORMAT})


def load(path: str | Path, dtype=torch.float32) -> tuple[CharRNN, CharVocab, dict]:
    """(model, vocabulary, card) saved by :func:`save_model` (``path`` with or without its suffix)."""
    weights, card_path = pair_paths(path)
    if not card_path.exists() or not weights.exists():
        raise CheckpointError(f"checkpoint {weights.with_suffix('')}(.json, .safetensors) not found")
    tensors, card = load_checkpoint(weights)
    try:
        model = CharRNN(CharRNNConfig.from_dict(card["config"]))
        model.load_state_dict({k: v.to(dtype) for k, v in tensors.items()})
    except (KeyError, TypeError, RuntimeError) as exc:
        raise CheckpointError(f"{weights.name} is not a char-RNN checkpoint ({type(exc).__name__})") from None
    model.eval()
    return model, CharVocab(card["vocab"]), card
