"""Top-k / top-p filtering shared by the Folk tunes and Continue samplers."""
import math

import torch

from composer.models.sampling import filter_logits


def kept(logits, **kw):
    return [i for i, v in enumerate(filter_logits(torch.tensor(logits), **kw).tolist()) if v > -math.inf]


def test_top_k_keeps_the_k_most_likely_tokens():
    assert kept([0.0, 3.0, 1.0, 2.0], top_k=2) == [1, 3]
    assert kept([0.0, 3.0, 1.0, 2.0], top_k=0) == [0, 1, 2, 3]


def test_top_p_keeps_the_smallest_set_reaching_the_mass():
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    logits = probs.log().tolist()
    assert kept(logits, top_p=0.5) == [0]           # the first token alone reaches 0.5
    assert kept(logits, top_p=0.75) == [0, 1]
    assert kept(logits, top_p=0.9) == [0, 1, 2]
    assert kept(logits, top_p=0.01) == [0]          # the most likely token always stays
    assert kept(logits, top_p=1.0) == [0, 1, 2, 3]


def test_the_input_is_not_modified():
    x = torch.tensor([1.0, 2.0, 3.0])
    filter_logits(x, top_k=1, top_p=0.5)
    assert x.tolist() == [1.0, 2.0, 3.0]
