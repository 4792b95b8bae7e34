"""The paper's genre classifier (Brunner et al. 2018, Table 2), pure torch.

A binary roll ``(B, 1, 64, 84)`` -> logits ``(B, n_classes)``. The kernels tile the input
exactly: 1x12 over pitch (an octave, stride 12: 84 -> 7), then 4x1, 2x1, 8x1 over time
(stride = kernel: 64 -> 16 -> 8 -> 1), then 1x7 over the 7 octave groups. Leaky ReLU, instance
norm after the second and third convolutions, dropout before the last; softmax at use.

Register normalisation (``register_norm``, off in the paper): before the first layer each
window is moved along the pitch axis so that the mean pitch of its sounding cells lands on
pitch index ``centre``. A window and any transposition of it then look the same, so the
network cannot tell genres by register: the first shipped classifier called random notes in
MIDI 36-65 "bach" every time and Bach an octave up "folk" 92 % of the time. What is left to
hear is what the register leaves: texture, voicing, spread, rhythm, intervals.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn


@dataclass
class ClassifierConfig:
    width: int = 64          # first layer filters (paper 64); then 2x, 4x, 8x
    n_classes: int = 2
    dropout: float = 0.5
    register_norm: bool = False   # move each window's mean pitch to ``centre`` first (paper: no)
    centre: int = 42              # pitch index (MIDI 24 + 42 = 66) the mean pitch moves to

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ClassifierConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


class GenreClassifier(nn.Module):
    def __init__(self, cfg: ClassifierConfig | None = None):
        super().__init__()
        cfg = cfg or ClassifierConfig()
        self.cfg = cfg
        w = cfg.width
        self.net = nn.Sequential(
            nn.Conv2d(1, w, (1, 12), stride=(1, 12)), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(w, 2 * w, (4, 1), stride=(4, 1), bias=False), nn.InstanceNorm2d(2 * w, affine=True),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(2 * w, 4 * w, (2, 1), stride=(2, 1), bias=False), nn.InstanceNorm2d(4 * w, affine=True),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(4 * w, 8 * w, (8, 1), stride=(8, 1)), nn.LeakyReLU(0.2, inplace=True),
            nn.Dropout(cfg.dropout),
            nn.Conv2d(8 * w, cfg.n_classes, (1, 7), stride=(1, 7)))

    def forward(self, x):
        if self.cfg.register_norm:
            x = centre_register(x, self.cfg.centre)
        return self.net(x).flatten(1)

    @torch.no_grad()
    def probs(self, x) -> torch.Tensor:
        was = self.training
        self.eval()
        p = torch.softmax(self(x), dim=1)
        self.train(was)
        return p


def centre_register(x: torch.Tensor, centre: int) -> torch.Tensor:
    """Each roll of ``x`` ``(B, C, T, P)`` shifted along pitch so that the mean pitch of its
    sounding cells (cells above 0.5, so input noise does not pull it to the middle) rounds
    to ``centre``; cells pushed past either end are dropped, empty rolls stay as they are."""
    p = x.shape[-1]
    idx = torch.arange(p, dtype=x.dtype, device=x.device)
    w = (x > 0.5).to(x.dtype).sum(dim=(1, 2))                          # (B, P)
    mass = w.sum(1)
    mean = (w * idx).sum(1) / mass.clamp(min=1e-6)
    shift = torch.where(mass > 0, torch.round(centre - mean), torch.zeros_like(mean)).long()   # (B,)
    src = torch.arange(p, device=x.device)[None, :] - shift[:, None]                           # (B, P)
    valid = (src >= 0) & (src < p)
    gathered = torch.gather(x, -1, src.clamp(0, p - 1)[:, None, None, :].expand_as(x))
    return gathered * valid[:, None, None, :].to(x.dtype)
