"""Harmonizer figures for ``python -m composer bench --json``.

* ``harmonize_s_per_4_bars`` - wall seconds per 4 bars to harmonize an 8-bar melody with the
  shipped MuseGAN and the default search (3 restarts, 300 Adam steps), on one CPU thread,
  median of 3 after a warm-up; ``harmonize_cpu_s_per_4_bars`` the process's CPU seconds (the
  same on an idle machine; lower than wall time when other work shares the cores);
  ``harmonize_bench_soprano_match`` what that run reproduced (the generator's own soprano).
"""
from __future__ import annotations

import statistics
import time

import torch

#: An 8-bar tune typed as in the Continue tab (quarters, eighths, halves; a cadence at bar 4 and 8).
MELODY = ("G4 G4 A4 B4 C5 B4 A4/2 G4 A4/0.5 B4/0.5 C5 B4 A4/2 "
          "B4 C5 D5 B4 C5/2 A4/2 B4 A4 G4/2 G4/2 R/2 "
          "D5 D5 E5 D5 C5 B4 A4/2 B4 C5 D5 C5/0.5 B4/0.5 A4/2 G4/2 G4/2")


def bench(repeats: int = 3) -> dict:
    from composer.api import harmonize as H
    from composer.api.compose import cached_composer
    from composer.errors import CheckpointError
    try:
        comp = cached_composer()
    except CheckpointError:
        return {"harmonize_s_per_4_bars": None}
    mel = H.melody_from_text(MELODY)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        H.harmonize(mel, comp, H.Settings(steps=5))  # warm: oneDNN primitives, the one-track copy
        walls, cpus, match = [], [], []
        for _ in range(repeats):
            t, c = time.perf_counter(), time.process_time()
            res = H.harmonize(mel, comp)
            walls.append(time.perf_counter() - t)
            cpus.append(time.process_time() - c)
            match.append(res.soprano_match)
    finally:
        torch.set_num_threads(threads)
    per = 4 / mel.n_bars
    return {"harmonize_s_per_4_bars": round(statistics.median(walls) * per, 3),
            "harmonize_cpu_s_per_4_bars": round(statistics.median(cpus) * per, 3),
            "harmonize_bench_soprano_match": round(statistics.median(match), 4)}
