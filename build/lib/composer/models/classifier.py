"""The paper's genre classifier (Brunner et al. 2018, Table 2), pure torch.

A binary roll ``(B, 1, 64, 84)`` -> logits ``(B, n_classes)``. The kernels tile the input
exactly: 1x12 over pitch (an octave, stride 12: 84 -> 7), then 4x1, 2x1, 8x1 over time
(stride = kernel: 64 -> 16 -> 8 -> 1), then 1x7 over the 7 octave groups. Leaky ReLU, instance
norm after the second and third convolutions, dropout before the last; softmax at use.
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
        return self.net(x).flatten(1)

    @torch.no_grad()
    def probs(self, x) -> torch.Tensor:
        was = self.training
        self.eval()
        p = torch.softmax(self(x), dim=1)
        self.train(was)
        return p
