"""What every autoregressive model's sampler shares: top-k / nucleus (top-p) filtering.

Used by the char-RNN (``composer.api.charrnn``) and the note models (``composer.api.notes``),
so that "top-k 10, top-p 0.9" means the same thing in the Folk tunes and Continue tabs.
"""
from __future__ import annotations

import torch


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Logits of one step with the tokens outside top-k and outside the nucleus set to -inf.

    Parameters
    ----------
    logits : torch.Tensor
        One step's logits, shape ``(vocab,)``, already divided by the temperature.
    top_k : int
        Keep the ``top_k`` most likely tokens; 0 (or >= vocab) keeps all.
    top_p : float
        Keep the smallest set of most likely tokens whose probability reaches ``top_p``;
        1.0 keeps all. The most likely token is always kept.

    Returns
    -------
    torch.Tensor
        A new tensor; ``logits`` is not modified.
    """
    logits = logits.float().clone()
    if top_k and 0 < top_k < logits.numel():
        kth = torch.topk(logits, top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p and 0 < top_p < 1:
        sorted_logits, order = torch.sort(logits, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        drop = torch.cumsum(probs, dim=-1) - probs >= top_p  # mass before this token already reaches top_p
        drop[0] = False
        logits[order[drop]] = float("-inf")
    return logits
