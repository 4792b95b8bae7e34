"""Checkpoints: a ``.safetensors`` file (tensors only, never a pickle) and its ``.json``
model card, written and read as one pair by every model.

Writing is crash-safe: both files are written under temporary names and then renamed, and
the card carries the SHA-256 of the weights it describes, so an interrupted save is either
rolled forward (:func:`recover`) or not visible at all, and a pair put together by hand from
two saves is refused with a message by :func:`load_checkpoint`. Imports only torch, safetensors and the standard library, so trainers can
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

    The card gains ``weights_sha256``. A crash at any moment leaves the old pair, the new
    pair, or a state that :func:`recover` (called by :func:`load_checkpoint`) turns into the
    new pair; never a pair that loads with the wrong card.
    """
    from safetensors.torch import save_file
    weights, card_path = pair_paths(path)
    weights.parent.mkdir(parents=True, exist_ok=True)
    w_tmp, c_tmp = Path(str(weights) + ".tmp"), Path(str(card_path) + ".tmp")
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(w_tmp), metadata=metadata)
    os.chmod(w_tmp, 0o644)  # readable like the card, whatever the umask of temporary files
    card = dict(card, weights_sha256=file_sha256(w_tmp))
    c_tmp.write_text(json.dumps(card, indent=1))
    # The card goes first: a crash between the two renames leaves the new card, the old
    # weights and the new weights still under their temporary name, which the card's hash
    # names, so recover() rolls the save forward. A crash before leaves the old pair.
    c_tmp.replace(card_path)
    w_tmp.replace(weights)
    return weights


def recover(path: str | Path) -> None:
    """Finish or undo a save that a crash interrupted (see :func:`save_checkpoint`).

    New card + old weights + the new weights under ``.tmp``: the rename is finished. Stale
    temporaries beside a consistent pair are removed.
    """
    weights, card_path = pair_paths(path)
    w_tmp, c_tmp = Path(str(weights) + ".tmp"), Path(str(card_path) + ".tmp")
    if w_tmp.exists() and card_path.exists():
        try:
            want = json.loads(card_path.read_text()).get("weights_sha256")
        except (OSError, ValueError):
            want = None
        if want and (not weights.exists() or file_sha256(weights) != want) and file_sha256(w_tmp) == want:
            w_tmp.replace(weights)
    for tmp in (w_tmp, c_tmp):
        tmp.unlink(missing_ok=True)


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
    if verify:
        recover(weights)
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


def prefixed(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """``{"prefix.k": v}``: several modules' tensors in one file."""
    return {f"{prefix}.{k}": v for k, v in state.items()}


def unprefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors saved under ``prefix`` by :func:`prefixed`, without it."""
    n = len(prefix) + 1
    return {k[n:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
