"""MuseGAN (Dong et al. 2018), the hybrid model of the seed document, batched.

Read top to bottom:

1. :class:`MuseGANConfig` - every size, with presets ``seed`` (the document's sizes) and
   ``default`` (what we ship: small enough to train on one CPU thread).
2. :class:`TemporalNet` - one latent vector -> one vector per bar.
3. :class:`Generator` - four latent inputs -> a ``(tracks, bars)`` grid of vectors
   (:meth:`Generator.expand_latents`) -> per-track bar generators (:meth:`Generator.decode`).
4. :class:`Critic` - a stack of Conv3d over ``(tracks, bars, steps, pitches)``.

The seed loops over tracks x bars in Python and calls one module per cell (and recomputes
each melody temporal net once per bar). Here the per-track melody nets are one grouped
convolution (``groups = tracks``), the per-track bar generators are grouped matrix
products (:class:`GroupedLinear`, one ``baddbmm`` per layer, tracks as the groups), and
bars are folded into the batch, so one call does all cells. G groups are exactly G
independent modules, and with BatchNorm in eval mode nothing mixes cells: changing one
cell of the grid changes that track's bar and nothing else (the Compose tab relies on this).

Tensors in ``[-1, 1]``: -1 rest, 0 hold, 1 onset (see composer.music.pianoroll). Two output
layers (``MuseGANConfig.output``): the seed's ``tanh`` per pitch and step, which the monophonic
decoder has to read, and ``categorical`` (preset ``chorale``, issue 15): each voice chooses,
per step, onset or hold and, at an onset, a rest or one pitch of its range, so the raw output
is always one sung line per voice, exactly -1/0/1 (:meth:`Generator.categorical_output`).
Both keep the four latents and the grid, so the Compose tab drives either. Pure torch: no
I/O, no music libraries.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.autograd.function import once_differentiable


# ---------------------------------------------------------------------------------------------
# 1. Configuration
# ---------------------------------------------------------------------------------------------

@dataclass
class MuseGANConfig:
    n_tracks: int = 4          # soprano, alto, tenor, bass
    n_bars: int = 4            # bars per phrase (2 in the seed, 4 in the official MuseGAN)
    steps_per_bar: int = 16    # sixteenth notes in 4/4
    n_pitches: int = 84        # MIDI 24-107; the bar generator builds it as 7 octaves x 12
    z_dim: int = 32            # size of each of the four latent inputs
    temporal_hidden: int = 1024  # hidden width of the temporal networks (seed: 1024)
    bar_channels: int = 512    # bar generator width (seed: 512; its first linear layer is 2x)
    critic_hidden: int = 128   # critic conv channels (seed: 128)
    critic_fc: int = 1024      # critic's last hidden linear layer (seed: 1024)
    # "bars_first" is the seed's critic (merges bars at full pitch resolution, costly);
    # "pitch_first" folds the 84 pitches to octaves first, so later layers run on 12x fewer
    # cells, but then it cannot tell a held note from one that flickers between pitches;
    # "beat_first" reads each pitch's 4-step beat pattern first, then pitch, bars and time.
    critic_order: str = "bars_first"
    # "tanh": one value in [-1, 1] per pitch and step (the seed's layer; decoded afterwards).
    # "categorical": each voice writes one choice per step, a pitch inside the voice's range
    # (VOICE_RANGES) or a rest, plus onset vs hold, as exact -1/0/1 levels; trained through a
    # straight-through softmax (see Generator.categorical_output)
    output: str = "tanh"
    gumbel: bool = False       # categorical: add Gumbel noise to the logits while training
    tau: float = 1.0           # categorical: softmax temperature of the straight-through gradient
    # categorical: where the onset-vs-hold choices learn from. "output": the critic's and every
    # loss's gradient on the output level (a wish for "more of this pitch" then also reads as
    # "more onsets"); "stats": only losses that read Generator.last_onsets (the trainer's voice terms)
    onset_grad: str = "output"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "MuseGANConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


PRESETS = {
    # The seed document's sizes, 2 bars: for timing against its loop-based code.
    "seed": MuseGANConfig(n_bars=2),
    # What we ship: 4-bar phrases (a chorale phrase is 2-4 bars, so 4 bars hold a cadence),
    # with narrower layers so it trains to quality on one CPU thread in about 90 minutes.
    "default": MuseGANConfig(n_bars=4, temporal_hidden=256, bar_channels=128, critic_hidden=64, critic_fc=256,
                             critic_order="beat_first"),
    # Issue 15: the default sizes with the categorical output layer (a pitch or a rest per
    # voice and step, onset vs hold), so the raw output is always one sung line per voice.
    "chorale": MuseGANConfig(n_bars=4, temporal_hidden=256, bar_channels=128, critic_hidden=64, critic_fc=256,
                             critic_order="beat_first", output="categorical"),
    # For tests only.
    "tiny_categorical": MuseGANConfig(n_bars=2, z_dim=8, temporal_hidden=16, bar_channels=16, critic_hidden=8,
                                      critic_fc=16, output="categorical"),
    "tiny": MuseGANConfig(n_bars=2, z_dim=8, temporal_hidden=16, bar_channels=16, critic_hidden=8, critic_fc=16),
}


def get_config(preset: str = "default", **overrides) -> MuseGANConfig:
    if preset not in PRESETS:
        raise KeyError(f"unknown MuseGAN preset {preset!r}; choose one of {', '.join(PRESETS)}")
    d = PRESETS[preset].to_dict()
    d.update({k: v for k, v in overrides.items() if v is not None})
    return MuseGANConfig(**d)


# ---------------------------------------------------------------------------------------------
# 2. Temporal network: a vector -> one vector per bar (G independent nets in one call)
# ---------------------------------------------------------------------------------------------

class TemporalNet(nn.Module):
    """The seed's temporal net (two transposed convs over time: 1 -> 2 -> n_bars), ``groups`` at once.

    Input ``(batch, groups, z)``, output ``(batch, groups, n_bars, z)``. ``groups=1`` is the
    shared chords net; ``groups=tracks`` are the per-track melody nets.
    """

    def __init__(self, z: int, hidden: int, n_bars: int, groups: int = 1):
        super().__init__()
        assert n_bars >= 2, "the temporal net needs at least 2 bars"
        self.groups, self.z, self.n_bars = groups, z, n_bars
        g = groups
        self.net = nn.Sequential(
            nn.ConvTranspose1d(g * z, g * hidden, 2, groups=g), nn.BatchNorm1d(g * hidden), nn.ReLU(inplace=True),
            nn.ConvTranspose1d(g * hidden, g * z, n_bars - 1, groups=g), nn.BatchNorm1d(g * z), nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        y = self.net(x.reshape(b, self.groups * self.z, 1))            # (b, g*z, bars)
        return y.view(b, self.groups, self.z, self.n_bars).transpose(2, 3)  # (b, g, bars, z)


# ---------------------------------------------------------------------------------------------
# 3. Generator
# ---------------------------------------------------------------------------------------------

class GroupedLinear(nn.Module):
    """``groups`` independent linear layers in one batched matmul: ``(G, rows, fin) -> (G, rows, fout)``.

    Every layer of the seed's bar generator has kernel == stride, so each output cell
    depends on exactly one input cell: it is a linear map per cell, and an up-sampling by
    ``k`` is a linear map to ``k * fout`` features followed by a reshape that turns the k
    blocks into k new rows. On a CPU this runs several times faster than
    ``ConvTranspose2d(groups=G)`` (whose grouped path is slow) and does the same maths.
    """

    def __init__(self, groups: int, fin: int, fout: int):
        super().__init__()
        bound = fin ** -0.5  # nn.Linear's default initialisation
        self.weight = nn.Parameter(torch.empty(groups, fin, fout).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(groups, 1, fout).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class GroupedBatchNorm(nn.Module):
    """BatchNorm over the rows of ``(G, rows, C)``: one mean/variance per group and feature.

    The same statistics ``BatchNorm2d(G*C)`` would compute on the conv layout, without
    permuting to it. In eval mode it is a fixed per-feature affine map, so rows (cells)
    stay independent.
    """

    def __init__(self, groups: int, features: int, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.weight = nn.Parameter(torch.ones(groups, 1, features))
        self.bias = nn.Parameter(torch.zeros(groups, 1, features))
        self.register_buffer("running_mean", torch.zeros(groups, 1, features))
        self.register_buffer("running_var", torch.ones(groups, 1, features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            # mean and E[x^2] over rows as batched mat-vec products: ~10x faster on a CPU
            # than torch.var_mean over the middle axis (measured), same statistics
            n = x.shape[1]
            avg = x.new_full((x.shape[0], 1, n), 1.0 / n)
            mean = torch.bmm(avg, x)
            var = (torch.bmm(avg, x * x) - mean * mean).clamp_min(0.0)
            with torch.no_grad():
                self.running_mean.lerp_(mean.float(), self.momentum)
                self.running_var.lerp_(var.float() * n / max(n - 1, 1), self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        scale = self.weight * torch.rsqrt(var + self.eps)
        return torch.addcmul(self.bias - mean * scale, x, scale)


class UpBlock(nn.Module):
    """Up-sample rows by ``k`` (kernel = stride = k), then BatchNorm and ReLU (or tanh at the end)."""

    def __init__(self, groups: int, fin: int, fout: int, k: int, last: bool = False):
        super().__init__()
        self.k, self.fout = k, fout
        self.lin = GroupedLinear(groups, fin, fout * k)
        self.norm = None if last else GroupedBatchNorm(groups, fout)
        self.act = nn.Tanh() if last else nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        G, R, _ = x.shape
        # (G, R, k*fout) -> (G, R*k, fout): row r becomes rows r*k .. r*k+k-1, i.e. the k
        # new positions sit next to each other along the axis being up-sampled
        x = self.lin(x).view(G, R * self.k, self.fout)
        if self.norm is not None:
            x = self.norm(x)
        return self.act(x)


#: (lowest, highest) MIDI pitch of each chorale voice (S, A, T, B), as composer.music.metrics.VOICE_RANGES
#: (repeated here: models import no music code).
VOICE_RANGES = ((60, 81), (52, 74), (46, 69), (36, 66))
PITCH_OFFSET = 24


def _range_mask(n_tracks: int, n_pitches: int) -> torch.Tensor:
    """``(tracks, 1, 1 + pitches)`` additive mask: 0 for rest and in-range pitches, -1e4 elsewhere.

    Tracks beyond the four chorale voices (or a pitch window that does not hold a range)
    may write any pitch.
    """
    m = torch.zeros(n_tracks, 1, 1 + n_pitches)
    for t in range(min(n_tracks, len(VOICE_RANGES))):
        lo, hi = VOICE_RANGES[t][0] - PITCH_OFFSET, VOICE_RANGES[t][1] - PITCH_OFFSET
        if 0 <= lo and hi < n_pitches:
            m[t, 0, 1:] = -1e4
            m[t, 0, 1 + lo:2 + hi] = 0.0
    return m


def straight_through(logits: torch.Tensor, tau: float = 1.0, gumbel: bool = False, hard_only: bool = False):
    """One-hot of the argmax in the forward pass, the softmax's gradient in the backward pass."""
    if gumbel:
        g = -torch.empty_like(logits).exponential_().log()
        logits = logits + g
    idx = logits.argmax(-1, keepdim=True)
    hard = torch.zeros_like(logits).scatter_(-1, idx, 1.0)
    if hard_only:
        return hard
    soft = torch.softmax(logits / tau, dim=-1)
    return hard + soft - soft.detach()


class Generator(nn.Module):
    """Chords, style, melody, groove -> ``(batch, tracks, bars, steps, pitches)`` in [-1, 1].

    Latent shapes (as in the seed; z_t / z / z_{i,t} / z_i in the paper's terms):
    ``chords (b, z)`` shared by all tracks, through a temporal net; ``style (b, z)`` shared
    by all tracks and bars; ``melody (b, tracks, z)`` through per-track temporal nets;
    ``groove (b, tracks, z)`` per track, all bars.
    """

    def __init__(self, cfg: MuseGANConfig):
        super().__init__()
        self.cfg = cfg
        T, z, c = cfg.n_tracks, cfg.z_dim, cfg.bar_channels
        assert cfg.steps_per_bar % 8 == 0 and cfg.n_pitches % 12 == 0
        self.chords_net = TemporalNet(z, cfg.temporal_hidden, cfg.n_bars, groups=1)
        self.melody_nets = TemporalNet(z, cfg.temporal_hidden, cfg.n_bars, groups=T)
        # Per-track bar generators, all tracks at once. Rows are (batch*bar, step, pitch)
        # cells, features are channels; as the seed: a linear layer to s0 = steps/8 time
        # positions of c channels, time x2 x2 x2, then pitch x octaves x12.
        self.s0 = cfg.steps_per_bar // 8
        self.fc = UpBlock(T, 4 * z, c, self.s0)
        self.ups = nn.Sequential(
            UpBlock(T, c, c, 2),                          # time s0 -> 2 s0
            UpBlock(T, c, c // 2, 2),                     # -> 4 s0
            UpBlock(T, c // 2, c // 2, 2),                # -> steps
            UpBlock(T, c // 2, c // 2, cfg.n_pitches // 12),  # pitch 1 -> octaves
            UpBlock(T, c // 2, 1, 12, last=True),         # -> octaves x 12 pitches, tanh
        )
        if cfg.output == "categorical":
            # the time layers give one row per beat, per eighth and per step; a linear head on
            # each writes logits for rest + every pitch, summed over the three levels (a note
            # tends to last a beat unless the finer levels outvote it), and the step head also
            # the onset logit. The pitch layers of the tanh output are not needed.
            self.ups = self.ups[:3]
            self.head_beat = GroupedLinear(T, c, cfg.n_pitches + 1)
            self.head_eighth = GroupedLinear(T, c // 2, cfg.n_pitches + 1)
            self.head = GroupedLinear(T, c // 2, cfg.n_pitches + 2)
            with torch.no_grad():  # finer levels start quieter; about one onset in four steps
                self.head_eighth.weight.mul_(0.5), self.head.weight[..., :-1].mul_(0.25)
                self.head.bias[..., -1] = -0.2
            self.register_buffer("range_mask", _range_mask(T, cfg.n_pitches), persistent=False)
        elif cfg.output != "tanh":
            raise ValueError(f"unknown MuseGAN output layer {cfg.output!r} (tanh or categorical)")

    def expand_latents(self, chords, style, melody, groove) -> torch.Tensor:
        """The four latents -> the grid ``(batch, tracks, bars, 4*z)`` the bar generators read.

        Cell ``[:, t, b]`` is ``[chords_b, style, melody_{t,b}, groove_t]`` as in the seed.
        """
        cfg = self.cfg
        B, T, N = chords.shape[0], cfg.n_tracks, cfg.n_bars
        ch = self.chords_net(chords[:, None, :])                 # (B, 1, N, z)
        mel = self.melody_nets(melody)                           # (B, T, N, z)
        return torch.cat([ch.expand(B, T, N, cfg.z_dim),
                          style[:, None, None, :].expand(B, T, N, cfg.z_dim),
                          mel,
                          groove[:, :, None, :].expand(B, T, N, cfg.z_dim)], dim=-1)

    def decode(self, grid: torch.Tensor) -> torch.Tensor:
        """Grid ``(batch, tracks, bars, 4*z)`` -> music ``(batch, tracks, bars, steps, pitches)``."""
        cfg = self.cfg
        B, T, N, D = grid.shape
        x = grid.transpose(0, 1).reshape(T, B * N, D)      # tracks are the groups, cells the rows
        if cfg.output == "categorical":
            return self.categorical_output(x, B, N)
        x = self.ups(self.fc(x))                            # (T, B*N*steps*pitches, 1)
        return x.view(T, B, N, cfg.steps_per_bar, cfg.n_pitches).transpose(0, 1)

    def categorical_output(self, x: torch.Tensor, B: int, N: int) -> torch.Tensor:
        """Cells ``(T, B*N, 4z)`` -> exact -1/0/1 levels ``(B, T, N, steps, pitches)``.

        Per voice and step two choices: onset or hold (a sigmoid), and what to sound from an
        onset on: rest or one pitch of the voice's range (argmax of the logits). A hold keeps
        what sounded on the step before, so a note lasts from its onset to the next one and
        cannot flicker between pitches; on a bar's first step a hold is a tie from the bar
        before (the bar's own choice says which pitch). While training, the softmax's and
        the sigmoid's gradients pass straight through the hard choices. Every output is a
        clean roll, so the monophonic decoder returns it unchanged.
        """
        cfg = self.cfg
        T, S, P = cfg.n_tracks, cfg.steps_per_bar, cfg.n_pitches
        h_beat = self.ups[0](self.fc(x))                    # (T, B*N*4, c): one row per beat
        h_eighth = self.ups[1](h_beat)                      # (T, B*N*8, c/2)
        head = self.head(self.ups[2](h_eighth)).float()     # (T, B*N*S, 1 + P + 1): one row per step
        R = B * N * S
        beat = self.head_beat(h_beat).float().repeat_interleave(S // (h_beat.shape[1] // (B * N)), 1)
        eighth = self.head_eighth(h_eighth).float().repeat_interleave(S // (h_eighth.shape[1] // (B * N)), 1)
        logits = head[..., :P + 1] + beat.view(T, R, P + 1) + eighth.view(T, R, P + 1) + self.range_mask
        hard_only = not self.training
        choice = straight_through(logits, cfg.tau, cfg.gumbel and self.training, hard_only)  # (T, R, 1 + P)
        o_logit = head[..., P + 1:]
        o = (o_logit > 0).float()
        if not hard_only:
            s = torch.sigmoid(o_logit)
            o = o + s - s.detach()
        choice = choice.view(T, B * N, S, P + 1)
        o = o.view(T, B * N, S, 1)
        if hard_only:  # the choice made at the latest onset (or on the bar's first step)
            steps = torch.arange(S, device=o.device).view(1, 1, S, 1)
            last = torch.where(o > 0, steps, 0).cummax(2).values
            y = choice.gather(2, last.expand(-1, -1, -1, P + 1))[..., 1:]
        else:  # the same as a recurrence; the onset choices get their gradient from the
            # onset/hold level below only: through the recurrence, every wish for another pitch
            # on a held step would also push for an onset there (measured: onsets crept up to
            # twice Bach's rate and half the notes became sixteenths)
            od = o.detach()
            cur = choice[:, :, 0]
            lines = [cur]
            for k in range(1, S):                           # a hold keeps the step before
                cur = od[:, :, k] * choice[:, :, k] + (1 - od[:, :, k]) * cur
                lines.append(cur)
            y = torch.stack(lines, 2)[..., 1:]              # (T, B*N, S, P): the sounding pitch
        if self.training:
            # (b, T, N*S): an onset where something sounds, for losses on the rhythm
            self.last_onsets = (o[..., 0] * y.detach().sum(-1)).view(T, B, N * S).transpose(0, 1)
            if cfg.onset_grad == "stats":
                o = o.detach()
        out = y * (1 + o) - 1                               # ONSET 1, HOLD 0, REST -1
        return out.view(T, B, N, S, P).transpose(0, 1)

    def forward(self, chords, style, melody, groove) -> torch.Tensor:
        return self.decode(self.expand_latents(chords, style, melody, groove))


def sample_latents(batch: int, cfg: MuseGANConfig, generator: torch.Generator | None = None,
                   device=None, truncation: float | None = None) -> dict[str, torch.Tensor]:
    """Standard normal latents (training draws ``randn``; the seed's ``rand`` at inference was a bug).

    ``truncation`` clips every value to ``[-t, t]`` (fewer outliers, safer music).
    """
    z, T = cfg.z_dim, cfg.n_tracks
    shapes = {"chords": (batch, z), "style": (batch, z), "melody": (batch, T, z), "groove": (batch, T, z)}
    out = {k: torch.randn(s, generator=generator, device=device) for k, s in shapes.items()}
    if truncation:
        out = {k: v.clamp(-truncation, truncation) for k, v in out.items()}
    return out


# ---------------------------------------------------------------------------------------------
# 4. Critic
# ---------------------------------------------------------------------------------------------

_CL = torch.channels_last_3d  # oneDNN's fast layout for Conv3d on a CPU

# The gradient penalty differentiates the critic twice. PyTorch's generic second derivative
# of a convolution transposes batch and channels of channels-last tensors (a 44 MB strided
# copy per layer at the seed's sizes) and, through LeakyReLU, back-propagates zeros through
# the whole forward pass. These two layers give the same numbers (tested against nn.Conv3d)
# with each derivative as one of oneDNN's own kernels. Measured at the seed's sizes on one
# thread: a training iteration went from 6.7 s to 4.9 s.

def _conv_backward(gy, x, W, stride, padding, mask, bias_sizes=None):
    """The library's convolution backward: ``(dL/dx, dL/dW, dL/db)`` for the ``mask``-ed ones."""
    return torch.ops.aten.convolution_backward(gy, x, W.to(gy.dtype), bias_sizes, stride, padding, (1, 1, 1),
                                               False, (0, 0, 0), 1, mask)


class _ConvInputGrad(torch.autograd.Function):
    """``dL/dx`` of a convolution from ``dL/dy`` and W, itself differentiable (the penalty's path)."""

    @staticmethod
    def forward(ctx, gy, x, W, stride, padding):
        ctx.save_for_backward(gy, W)  # (x gives the input's shape only)
        ctx.conf = stride, padding
        return _conv_backward(gy, x, W, stride, padding, (True, False, False))[0]

    @staticmethod
    @once_differentiable
    def backward(ctx, ggx):
        # <ggx, dL/dx> = <gy, conv(ggx, W)>: its gradient is a convolution for gy and a
        # weight gradient for W, the two kernels the library has for a conv's first derivative
        gy, W = ctx.saved_tensors
        stride, padding = ctx.conf
        ggx = ggx.to(gy.dtype).contiguous(memory_format=_CL)
        g_gy = F.conv3d(ggx, W.to(gy.dtype), None, stride, padding) if ctx.needs_input_grad[0] else None
        g_W = (_conv_backward(gy, ggx, W, stride, padding, (False, True, False))[1].to(W.dtype)
               if ctx.needs_input_grad[2] else None)
        return g_gy, None, g_W, None, None


class _ConvWeightGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, gy, x, W, stride, padding):
        return _conv_backward(gy, x, W, stride, padding, (False, True, False))[1].to(W.dtype)

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError("the second derivative of a critic weight gradient is not implemented")


class _Conv3d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, W, b, stride, padding, weight_grads):
        # the compute dtype: bf16 under autocast, else the input's (autocast is switched off
        # inside so that saved tensors and both derivatives agree on it)
        dev = x.device.type
        dtype = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else x.dtype
        with torch.autocast(dev, enabled=False):
            xc = x.to(dtype)
            y = F.conv3d(xc, W.to(dtype), None if b is None else b.to(dtype), stride, padding)
        ctx.save_for_backward(xc, W)
        ctx.conf, ctx.weight_grads, ctx.x_dtype = (stride, padding), weight_grads, x.dtype
        return y

    @staticmethod
    def backward(ctx, gy):
        x, W = ctx.saved_tensors
        stride, padding = ctx.conf
        need_x, need_W, need_b = ctx.needs_input_grad[:3]
        need_W, need_b = need_W and ctx.weight_grads, need_b and ctx.weight_grads
        gy = gy.to(x.dtype).contiguous(memory_format=_CL)
        if not torch.is_grad_enabled():
            # a plain backward (no create_graph): all gradients from one library call
            gx, gW, gb = _conv_backward(gy, x, W, stride, padding, (need_x, need_W, need_b), [W.shape[0]])
            return (gx.to(ctx.x_dtype) if need_x else None, gW.to(W.dtype) if need_W else None,
                    gb.to(W.dtype) if need_b else None, None, None, None)
        # x enters only as a constant (the input gradient does not depend on it): detached, so
        # the penalty's backward does not run the forward pass's backward on zeros
        x = x.detach()
        gx = _ConvInputGrad.apply(gy, x, W, stride, padding).to(ctx.x_dtype) if need_x else None
        gW = _ConvWeightGrad.apply(gy, x, W, stride, padding) if need_W else None
        gb = gy.sum((0, 2, 3, 4)).to(W.dtype) if need_b else None
        return gx, gW, gb, None, None, None


class CriticConv3d(nn.Conv3d):
    """``nn.Conv3d`` (same parameters and numbers) with fast first and second derivatives.

    ``weight_grads=False`` skips the weight and bias gradients of this call's backward: the
    penalty's forward pass needs only the input gradient (its weight gradients arrive
    through :class:`_ConvInputGrad`'s backward).
    """

    def forward(self, x: torch.Tensor, weight_grads: bool = True) -> torch.Tensor:
        return _Conv3d.apply(x, self.weight, self.bias, self.stride, self.padding, weight_grads)


class _LeakyReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, slope):
        y = F.leaky_relu_(x, slope)  # in place, as nn.LeakyReLU(inplace=True): x is a conv's output
        ctx.mark_dirty(y)
        ctx.save_for_backward(y)
        ctx.slope = slope
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved_tensors
        # differentiable in gy only: the slope pattern is a constant, so the penalty's backward
        # stops here instead of sending zeros back through the forward pass
        return torch.ops.aten.leaky_relu_backward(gy, y.detach(), ctx.slope, True), None


class CriticLeakyReLU(nn.Module):
    def __init__(self, slope: float = 0.3):
        super().__init__()
        self.slope = slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _LeakyReLU.apply(x, self.slope)


class Critic(nn.Module):
    """The seed's Conv3d critic over ``(batch, tracks, bars, steps, pitches)`` -> a score per sample.

    Tracks are the input channels. Bars are merged first (kernels 2 then n_bars-1), then
    pitch (12 per octave, then the octaves), then time (16 -> 1). No normalisation: the
    gradient penalty is per sample, which batch norm would break.
    """

    def __init__(self, cfg: MuseGANConfig):
        super().__init__()
        h, T, N = cfg.critic_hidden, cfg.n_tracks, cfg.n_bars
        octaves = cfg.n_pitches // 12
        act = lambda: CriticLeakyReLU(0.3)  # noqa: E731
        bars = [CriticConv3d(T, h, (2, 1, 1)), act(), CriticConv3d(h, h, (N - 1, 1, 1)), act()]
        pitch = [CriticConv3d(h, h, (1, 1, 12), (1, 1, 12)), act(),
                 CriticConv3d(h, h, (1, 1, octaves), (1, 1, octaves)), act()]
        steps = cfg.steps_per_bar
        if cfg.critic_order == "beat_first":
            # one beat (4 steps) of every pitch first: the critic sees whether a pitch is held
            # (onset, hold, hold, hold) or flickers, which per-step pitch summaries blur away
            beat = steps // 4
            bars[0] = CriticConv3d(h, h, (2, 1, 1))
            pitch[0] = CriticConv3d(h // 2, h, (1, 1, 12), (1, 1, 12))  # half width at full pitch resolution
            layers = [CriticConv3d(T, h // 2, (1, beat, 1), (1, beat, 1)), act()] + pitch + bars
            steps = 4
        elif cfg.critic_order == "pitch_first":
            pitch[0] = CriticConv3d(T, h, (1, 1, 12), (1, 1, 12))
            bars[0] = CriticConv3d(h, h, (2, 1, 1))
            layers = pitch + bars
        else:
            layers = bars + pitch
        # time: halve with kernel-2 convs down to 4 steps, then the seed's two strided convs
        while steps > 4:
            layers += [CriticConv3d(h, h, (1, 2, 1), (1, 2, 1)), act()]
            steps //= 2
        layers += [CriticConv3d(h, 2 * h, (1, 4, 1), (1, 2, 1), padding=(0, 1, 0)), act(),
                   CriticConv3d(2 * h, 4 * h, (1, 3, 1), (1, 2, 1), padding=(0, 1, 0)), act(),
                   nn.Flatten(), nn.Linear(4 * h, cfg.critic_fc), act(), nn.Linear(cfg.critic_fc, 1)]
        self.net = nn.Sequential(*layers)
        # Channels-last: oneDNN's Conv3d runs ~1.8x faster on a CPU in this layout (measured)
        self.to(memory_format=_CL)

    def forward(self, x: torch.Tensor, weight_grads: bool = True) -> torch.Tensor:
        """Scores ``(batch,)``. ``weight_grads=False``: see :class:`CriticConv3d` (the penalty's pass)."""
        x = x.contiguous(memory_format=_CL)
        for layer in self.net:
            x = layer(x, weight_grads) if isinstance(layer, CriticConv3d) else layer(x)
        return x.squeeze(-1)


def build(cfg: MuseGANConfig) -> tuple[Generator, Critic]:
    return Generator(cfg), Critic(cfg)


def count_parameters(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())
