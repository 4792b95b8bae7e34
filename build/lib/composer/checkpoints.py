"""Checkpoints: a ``.safetensors`` file (tensors only, never a pickle) and its ``.json``
model card, written and read as one pair by every model.

Writing is crash-safe: both files are written under temporary names and then renamed, the
weights first, and the card carries the SHA-256 of the weights it describes, so a reader
can tell a card from an older or newer save (:func:`load_checkpoint` refuses such a pair
with a message). Imports only torch, safetensors and the standard library, so trainers can
use it on a bare GPU box. See ``docs/ARCHITECTURE.md``.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from composer.errors import CheckpointError

#: Largest safetensors header we read (a hostile file can declare gigabytes).
MAX_HEADER_BYTES = 16 * 1024 * 1024


def pair_paths(path: str | Path) -> tuple[Path, Path]:
    """(weights, card) for ``path`` given with or without ``.safetensors``/``.json``."""
    path = Path(path)
    base = path.with_suffix("") if path.suffix in (".json", ".safetensors") else path
    return Path(str(base) + ".safetensors"), Path(str(base) + ".json")


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_checkpoint(path: str | Path, tensors: dict[str, torch.Tensor], card: dict,
                    metadata: dict[str, str] | None = None) -> Path:
    """Write the weights and the model card of ``path`` as a pair; returns the weights' path.

    The card gains ``weights_sha256``. A crash at any moment leaves either the old pair or
    the new one (plus a stale ``*.tmp`` that the next save or :func:`remove_stale_temporaries`
    clears), never a new card beside old weights.
    """
    from safetensors.torch import save_file
    weights, card_path = pair_paths(path)
    weights.parent.mkdir(parents=True, exist_ok=True)
    w_tmp, c_tmp = Path(str(weights) + ".tmp"), Path(str(card_path) + ".tmp")
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(w_tmp), metadata=metadata)
    os.chmod(w_tmp, 0o644)  # readable like the card, whatever the umask of temporary files
    card = dict(card, weights_sha256=file_sha256(w_tmp))
    c_tmp.write_text(json.dumps(card, indent=1))
    # rename order: an old card beside new weights would name the wrong hash, so a crash
    # between the two renames is caught by load_checkpoint and by resume
    w_tmp.replace(weights)
    c_tmp.replace(card_path)
    return weights


def read_card(path: str | Path) -> dict:
    """The model card of ``path`` ({} when there is none)."""
    _, card_path = pair_paths(path)
    if not card_path.exists():
        return {}
    try:
        return json.loads(card_path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read the model card {card_path.name}: {exc}") from None


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu",
                    verify: bool = True) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, card) of a checkpoint pair.

    Raises
    ------
    CheckpointError
        The weights are missing or unreadable (not safetensors, a header over
        :data:`MAX_HEADER_BYTES`), or ``verify`` and the card names other weights.
    """
    from safetensors.torch import load_file
    weights, _ = pair_paths(path)
    if not weights.is_file():
        raise CheckpointError(f"no such checkpoint: {weights}")
    try:
        with open(weights, "rb") as f:
            header = int.from_bytes(f.read(8), "little")
        if header > MAX_HEADER_BYTES:
            raise CheckpointError(f"{weights.name} is not a usable safetensors file (header of {header} bytes)")
        tensors = load_file(str(weights), device=str(device))
    except CheckpointError:
        raise
    except Exception as exc:  # safetensors raises several kinds on a bad file
        raise CheckpointError(f"cannot read checkpoint {weights.name}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    card = read_card(weights)
    want = card.get("weights_sha256")
    if verify and want and want != file_sha256(weights):
        raise CheckpointError(f"{weights.name} and its model card do not belong together (the card describes "
                              "other weights; a save was interrupted): save again or restore both files")
    return tensors, card


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete ``*.safetensors.tmp`` / ``*.json.tmp`` left in ``folder`` by an interrupted save."""
    gone = []
    for p in Path(folder).glob("*.tmp"):
        if p.name.endswith((".safetensors.tmp", ".json.tmp")):
            p.unlink(missing_ok=True)
            gone.append(p)
    return gone


def prefixed(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """``{"prefix.k": v}``: several modules' tensors in one file."""
    return {f"{prefix}.{k}": v for k, v in state.items()}


def unprefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors saved under ``prefix`` by :func:`prefixed`, without it."""
    n = len(prefix) + 1
    return {k[n:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
