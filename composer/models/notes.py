"""Note/chord token models (seed 002): an LSTM and a WaveNet-style dilated causal CNN. Pure torch.

Both read the same tokens (:mod:`composer.music.tokens`) with the same context length and
predict the next token at *every* position (the seed trained many-to-one on overlapping
windows). The WaveNet's receptive field is ``1 + (kernel - 1) * sum(dilations)`` tokens and
is made equal to ``context`` by the default dilations (1, 2, ..., 32 with kernel 2 -> 64).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from composer.checkpoints import load_checkpoint, pair_paths
from composer.errors import CheckpointError

#: The model card's ``format`` for this model.
CARD_FORMAT = "composer.notes/1"


@dataclass
class NotesConfig:
    """One config for both architectures; ``arch`` picks which fields matter."""
    arch: str = "lstm"           # "lstm" or "wavenet"
    vocab_size: int = 512
    context: int = 64            # tokens seen per prediction (both models)
    embed: int = 96
    # LSTM
    hidden: int = 256
    layers: int = 2
    # WaveNet
    channels: int = 96           # residual channels
    skip: int = 128              # skip channels
    kernel: int = 2
    dilations: tuple = (1, 2, 4, 8, 16, 32)
    dropout: float = 0.1
    # bar position: an embedding of where in the bar each token leaves the music
    # (composer.music.tokens.position_ids) is added to the token embedding
    bar_pos: bool = False
    n_pos: int = 480

    def __post_init__(self):
        self.dilations = tuple(int(d) for d in self.dilations)
        if self.arch not in ("lstm", "wavenet"):
            raise ValueError(f"arch must be lstm or wavenet, not {self.arch!r}")

    def receptive_field(self) -> int:
        return 1 + (self.kernel - 1) * sum(self.dilations)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["dilations"] = list(self.dilations)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> NotesConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


class _Embed(nn.Module):
    """Token embedding, plus the bar-position embedding when the config asks for it."""

    def __init__(self, config: NotesConfig):
        super().__init__()
        self.tok = nn.Embedding(config.vocab_size, config.embed)
        self.pos = nn.Embedding(config.n_pos, config.embed) if config.bar_pos else None

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        if prefix + "weight" in state_dict:  # checkpoints before bar positions: a plain nn.Embedding
            state_dict[prefix + "tok.weight"] = state_dict.pop(prefix + "weight")
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x, pos=None):
        e = self.tok(x)
        if self.pos is not None:
            if pos is None:
                raise ValueError("this model reads bar positions: pass pos (composer.music.tokens.position_ids)")
            e = e + self.pos(pos)
        return e


def dilations_for(context: int, kernel: int = 2) -> tuple:
    """Doubling dilations whose receptive field covers ``context`` exactly when possible."""
    out, d = [], 1
    while 1 + (kernel - 1) * sum(out) < context:
        out.append(d)
        d *= 2
    return tuple(out)


class NotesLSTM(nn.Module):
    """Embedding -> LSTM -> dropout -> linear over the vocabulary."""

    def __init__(self, config: NotesConfig):
        super().__init__()
        self.config = config
        self.embed = _Embed(config)
        self.lstm = nn.LSTM(config.embed, config.hidden, num_layers=config.layers, batch_first=True,
                            dropout=config.dropout if config.layers > 1 else 0.0)
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden, config.vocab_size)

    def forward(self, x: torch.Tensor, pos: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` (batch, time) int64 -> logits (batch, time, vocab); position t sees x[:, :t+1]
        (and ``pos[:, :t+1]``, the bar positions, for a ``bar_pos`` model)."""
        out, _ = self.lstm(self.embed(x, pos))
        return self.head(self.drop(out))

    def last_logits(self, x: torch.Tensor, pos: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of the last position only (batch, vocab): what sampling needs."""
        out, _ = self.lstm(self.embed(x, pos))
        return self.head(out[:, -1])


class CausalConv1d(nn.Conv1d):
    """Conv1d padded on the left only: output t depends on inputs <= t."""

    def __init__(self, cin, cout, kernel, dilation=1):
        super().__init__(cin, cout, kernel, dilation=dilation)
        self.left = (kernel - 1) * dilation

    def forward(self, x):
        return super().forward(F.pad(x, (self.left, 0)))


class GatedBlock(nn.Module):
    """tanh(W_f * x) . sigmoid(W_g * x) with a dilated causal conv, then 1x1 residual and skip."""

    def __init__(self, channels, skip, kernel, dilation, dropout):
        super().__init__()
        self.conv = CausalConv1d(channels, 2 * channels, kernel, dilation)
        self.res = nn.Conv1d(channels, channels, 1)
        self.skip = nn.Conv1d(channels, skip, 1)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        f, g = self.conv(x).chunk(2, dim=1)
        h = self.drop(torch.tanh(f) * torch.sigmoid(g))
        return x + self.res(h), self.skip(h)


class NotesWaveNet(nn.Module):
    """Embedding -> causal conv -> gated dilated residual blocks (skips summed) ->
    ReLU -> 1x1 -> ReLU -> 1x1 logits."""

    def __init__(self, config: NotesConfig):
        super().__init__()
        self.config = config
        self.embed = _Embed(config)
        self.inp = CausalConv1d(config.embed, config.channels, 1)
        self.blocks = nn.ModuleList(GatedBlock(config.channels, config.skip, config.kernel, d, config.dropout)
                                    for d in config.dilations)
        self.out1 = nn.Conv1d(config.skip, config.skip, 1)
        self.out2 = nn.Conv1d(config.skip, config.vocab_size, 1)

    def _skips(self, x: torch.Tensor, pos: torch.Tensor | None = None) -> torch.Tensor:
        h = self.inp(self.embed(x, pos).transpose(1, 2))
        skips = 0
        for block in self.blocks:
            h, s = block(h)
            skips = skips + s
        return skips

    def forward(self, x: torch.Tensor, pos: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` (batch, time) int64 -> logits (batch, time, vocab); position t sees x[:, :t+1]
        (and ``pos[:, :t+1]``, the bar positions, for a ``bar_pos`` model)."""
        y = self.out2(F.relu(self.out1(F.relu(self._skips(x, pos)))))
        return y.transpose(1, 2)

    def last_logits(self, x: torch.Tensor, pos: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of the last position only (batch, vocab): what sampling needs."""
        rf = self.config.receptive_field()
        s = self._skips(x[:, -rf:], None if pos is None else pos[:, -rf:])[:, :, -1:]
        return self.out2(F.relu(self.out1(F.relu(s))))[:, :, 0]


def build_model(config: NotesConfig) -> nn.Module:
    return NotesLSTM(config) if config.arch == "lstm" else NotesWaveNet(config)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


#: Named sizes. The shipped models are "small" (train in ~20 min on one shared CPU thread).
PRESETS = {
    "lstm": {"small": dict(embed=96, hidden=256, layers=2, dropout=0.1),
             "tiny": dict(embed=16, hidden=32, layers=1, dropout=0.0)},
    "wavenet": {"small": dict(embed=96, channels=96, skip=128, kernel=2, dropout=0.1),
                "tiny": dict(embed=16, channels=16, skip=16, kernel=2, dropout=0.0)},
}


def load(path, dtype=torch.float32):
    """(model, card) of a notes checkpoint (``path`` with or without .safetensors/.json)."""
    weights, card_path = pair_paths(path)
    if not weights.exists() or not card_path.exists():
        raise CheckpointError(f"checkpoint {weights.with_suffix('')}(.safetensors, .json) not found")
    tensors, card = load_checkpoint(weights)
    if card.get("format") != CARD_FORMAT:
        raise CheckpointError(f"{weights.name} is not a notes model (format {card.get('format')!r})")
    try:
        model = build_model(NotesConfig.from_dict(card["config"]))
        model.load_state_dict({k: v.to(dtype) for k, v in tensors.items()})
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise CheckpointError(f"cannot load {weights.name}: {str(exc).splitlines()[0]}") from None
    model.eval()
    return model, card
