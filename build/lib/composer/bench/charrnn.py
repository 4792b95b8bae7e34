"""Sampling speed of the folk-tune LSTM (batch 1, CPU), for ``python -m composer bench``."""
from __future__ import annotations

import time


def bench(checkpoint=None, n_chars: int = 1000, seed: int = 0) -> dict:
    """Measure writing ABC at batch 1 on the CPU.

    Returns
    -------
    dict
        ``charrnn_chars_per_s`` (characters of finished tunes per wall-clock second, best of
        3 runs, with the line guard as the UI samples; checks excluded),
        ``charrnn_chars_per_cpu_s`` (per CPU second: an idle core), ``charrnn_raw_chars_per_s``
        (no guard), ``charrnn_load_s`` (loading the
        checkpoint), ``charrnn_first_tune_s`` (one whole tune, from the start), and
        ``charrnn_check_s`` (checking that tune with music21).
    """
    import torch
    from composer.api import charrnn as api
    from composer.evaluation.charrnn import measure_sampling
    from composer.music.abc import check_abc
    t = time.perf_counter()
    model = api.FolkModel(checkpoint)
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    tune = model.sample(seed=seed)
    first = time.perf_counter() - t
    t = time.perf_counter()
    check_abc(tune)
    check_s = time.perf_counter() - t
    speed = measure_sampling(model, n_chars, seed)
    raw = measure_sampling(model, n_chars, seed, guard=False)
    return {"charrnn_chars_per_s": round(speed["chars_per_s"], 1),
            "charrnn_chars_per_cpu_s": round(speed["chars_per_cpu_s"], 1),
            "charrnn_raw_chars_per_s": round(raw["chars_per_s"], 1), "charrnn_load_s": round(load_s, 3),
            "charrnn_first_tune_s": round(first, 3), "charrnn_first_tune_chars": len(tune),
            "charrnn_check_s": round(check_s, 3), "charrnn_threads": torch.get_num_threads()}


if __name__ == "__main__":
    import json
    print(json.dumps(bench(), indent=1))
