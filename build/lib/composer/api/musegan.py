"""MuseGAN from Python: load the shipped generator, make latents, turn them into music.

    from composer.api import musegan as mg
    model = mg.load_generator()                  # checkpoints/musegan.safetensors
    z = mg.random_latents(model, 2, seed=7)      # dict of numpy arrays (JSON-able)
    codes = mg.generate(model, z)                # (2, 4, bars, 16, 84) REST/HOLD/ONSET codes
    pm = mg.to_pretty_midi(codes[0])             # string quartet PrettyMIDI

For live editing (the Compose tab): ``grid = mg.expand(model, z)`` gives the
``(batch, tracks, bars, 4*z)`` vectors after the temporal networks; change any cell and
``mg.decode(model, grid)`` changes that track's bar and nothing else.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from composer.paths import checkpoints_dir
from composer.errors import CheckpointError
from composer.models.musegan import Generator, MuseGANConfig

LATENT_KEYS = ("chords", "style", "melody", "groove")
#: Quarter notes per minute of a chorale phrase when the model card names none (one default for
#: the Compose tab, `generate` and the previews).
DEFAULT_TEMPO = 90.0


def default_checkpoint() -> Path:
    return checkpoints_dir() / "musegan.safetensors"


@dataclass
class LoadedGenerator:
    generator: Generator
    config: MuseGANConfig
    card: dict
    path: Path
    device: torch.device


def load_generator(path=None, device: str | torch.device = "cpu", weights: str = "ema") -> LoadedGenerator:
    """Load a generator from a shipped checkpoint or a training ``last.safetensors`` (its EMA weights).

    Raises :class:`CheckpointError` with a one-line reason when the file is missing or
    does not fit the model. Weights are read with safetensors, never pickle. ``weights="raw"``
    picks a training checkpoint's current generator instead of its moving average.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path) if path else default_checkpoint()
    if not path.is_file():
        raise CheckpointError(f"no MuseGAN checkpoint at {path}")
    card_path = path.with_suffix(".json")
    if not card_path.is_file():
        raise CheckpointError(f"checkpoint {path.name} has no model card {card_path.name} (its config)")
    try:
        card = json.loads(card_path.read_text())
        cfg = MuseGANConfig.from_dict(card["config"])
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"model card {card_path.name} is unreadable ({exc})") from None
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path.name} is not a readable safetensors file ({exc})") from None
    if weights == "raw" and any(k.startswith("G.") for k in tensors):  # a training checkpoint's raw weights
        tensors = {k[2:]: v for k, v in tensors.items() if k.startswith("G.")}
    elif any(k.startswith("G_ema.") for k in tensors):  # a training checkpoint: use the EMA weights
        tensors = {k[6:]: v for k, v in tensors.items() if k.startswith("G_ema.")}
    elif any(k.startswith("G.") for k in tensors):
        tensors = {k[2:]: v for k, v in tensors.items() if k.startswith("G.")}
    G = Generator(cfg)
    try:
        G.load_state_dict({k: v.float() for k, v in tensors.items()})
    except RuntimeError as exc:
        raise CheckpointError(f"{path.name} does not fit a MuseGAN {cfg.n_bars}-bar generator: "
                              f"{str(exc).splitlines()[0]}") from None
    device = torch.device(device)
    G.to(device).eval()  # eval: BatchNorm uses its running statistics, cells stay independent
    return LoadedGenerator(G, cfg, card, path, device)


def resolve_truncation(model: LoadedGenerator, truncation: float | None) -> float | None:
    """The caller's truncation; None -> the checkpoint's recommended one (model card); 0 -> none."""
    if truncation is None:
        truncation = model.card.get("truncation")
    return float(truncation) if truncation else None


def random_latents(model: LoadedGenerator, n: int, seed: int = 0, truncation: float | None = None) -> dict:
    """Standard-normal latents as float32 numpy arrays; ``truncation`` clips them to ``[-t, t]``."""
    cfg = model.config
    rng = np.random.default_rng(seed)
    z = {"chords": rng.standard_normal((n, cfg.z_dim)), "style": rng.standard_normal((n, cfg.z_dim)),
         "melody": rng.standard_normal((n, cfg.n_tracks, cfg.z_dim)),
         "groove": rng.standard_normal((n, cfg.n_tracks, cfg.z_dim))}
    z = {k: v.astype(np.float32) for k, v in z.items()}
    return truncate(z, truncation) if truncation else z


def truncate(latents: dict, t: float) -> dict:
    return {k: np.clip(v, -t, t).astype(np.float32) for k, v in latents.items()}


def _tensors(model: LoadedGenerator, latents: dict) -> dict[str, torch.Tensor]:
    cfg = model.config
    want = {"chords": (cfg.z_dim,), "style": (cfg.z_dim,), "melody": (cfg.n_tracks, cfg.z_dim),
            "groove": (cfg.n_tracks, cfg.z_dim)}
    out = {}
    for k in LATENT_KEYS:
        if k not in latents:
            raise CheckpointError(f"latents lack '{k}' (need {', '.join(LATENT_KEYS)})")
        v = np.asarray(latents[k], dtype=np.float32)
        if v.shape[1:] != want[k]:
            raise CheckpointError(f"latent '{k}' has shape {v.shape}; this model needs (n, {', '.join(map(str, want[k]))})")
        out[k] = torch.from_numpy(v).to(model.device)
    return out


@torch.no_grad()
def expand(model: LoadedGenerator, latents: dict) -> np.ndarray:
    """Latents -> the ``(n, tracks, bars, 4*z)`` grid after the temporal networks."""
    return model.generator.expand_latents(**_tensors(model, latents)).cpu().numpy()


@torch.no_grad()
def decode(model: LoadedGenerator, grid: np.ndarray, raw: bool = False) -> np.ndarray:
    """Grid -> codes ``(n, tracks, bars, steps, pitches)`` (or the raw [-1, 1] output if ``raw``)."""
    x = model.generator.decode(torch.as_tensor(np.asarray(grid, dtype=np.float32), device=model.device))
    x = x.float().cpu().numpy()
    return x if raw else to_codes(x)


@torch.no_grad()
def generate(model: LoadedGenerator, latents: dict, raw: bool = False, batch: int = 256) -> np.ndarray:
    """Latents -> codes ``(n, tracks, bars, steps, pitches)``, in batches of ``batch``."""
    t = _tensors(model, latents)
    n = t["chords"].shape[0]
    outs = []
    for i in range(0, n, batch):
        outs.append(model.generator(**{k: v[i:i + batch] for k, v in t.items()}).float().cpu().numpy())
    x = np.concatenate(outs) if outs else np.zeros((0,))
    return x if raw else to_codes(x)


def to_codes(x: np.ndarray) -> np.ndarray:
    """Model output in [-1, 1] -> codes; chorale voices are monophonic, one pitch per step."""
    from composer.music.pianoroll import float_to_codes
    return float_to_codes(x, monophonic=True)


def to_pretty_midi(codes: np.ndarray, tempo: float = DEFAULT_TEMPO):
    """One window (or several bars joined) ``(tracks, bars, steps, pitches)`` -> PrettyMIDI."""
    from composer.music.corpus import CHORALE_PROGRAMS, CHORALE_VOICES
    from composer.music.pianoroll import MultiTrackRoll
    codes = np.asarray(codes)
    T = codes.shape[0]
    return MultiTrackRoll(codes=codes, programs=list(CHORALE_PROGRAMS[:T]), names=list(CHORALE_VOICES[:T]),
                          tempo=tempo).to_pretty_midi()


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation between latent arrays (per last-axis vector), linear when parallel."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    na, nb = np.linalg.norm(a, axis=-1, keepdims=True), np.linalg.norm(b, axis=-1, keepdims=True)
    cos = np.clip(np.sum(a * b, axis=-1, keepdims=True) / np.maximum(na * nb, 1e-12), -1.0, 1.0)
    omega = np.arccos(cos)
    so = np.sin(omega)
    small = so < 1e-6
    wa = np.where(small, 1 - t, np.sin((1 - t) * omega) / np.where(small, 1, so))
    wb = np.where(small, t, np.sin(t * omega) / np.where(small, 1, so))
    return (wa * a + wb * b).astype(np.float32)

