"""Checkpoints are written as a pair that survives kill -9 at any moment."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from composer.checkpoints import load_checkpoint, save_checkpoint
from composer.errors import CheckpointError
from conftest import ROOT

WRITER = """
import sys, torch
from composer.checkpoints import save_checkpoint
path = sys.argv[1]
step = 0
while True:
    step += 1
    save_checkpoint(path, {"w": torch.full((256, 256), float(step))}, {"step": step})
"""


@pytest.mark.slow
def test_kill_minus_nine_during_writes_always_leaves_a_consistent_pair(tmp_path):
    path = tmp_path / "last.safetensors"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for attempt in range(10):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], env=env)
        deadline = time.monotonic() + 60
        while not path.with_suffix(".json").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05 + 0.037 * attempt)  # land the kill at different moments of a save
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        tensors, card = load_checkpoint(path)  # recovers an interrupted save
        assert float(tensors["w"][0, 0]) == card["step"] > 0
        assert not list(tmp_path.glob("*.tmp"))


def test_a_pair_from_two_saves_is_refused(tmp_path):
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    save_checkpoint(a, {"w": torch.zeros(3)}, {"step": 1})
    save_checkpoint(b, {"w": torch.ones(3)}, {"step": 2})
    (tmp_path / "a.json").write_text((tmp_path / "b.json").read_text())
    with pytest.raises(CheckpointError, match="do not belong together"):
        load_checkpoint(a)


def test_log_keeps_only_rows_up_to_the_resumed_step(tmp_path):
    from composer.training.loop import JsonlLog, read_jsonl
    log = JsonlLog(tmp_path / "log.jsonl")
    for s in (10, 20, 30, 40):
        log.write(step=s, loss=1.0)
    log.keep_until(20)
    assert [r["step"] for r in read_jsonl(log.path)] == [10, 20]
    log.keep_until(0)  # a fresh start (killed before the first checkpoint): no duplicate rows
    assert read_jsonl(log.path) == []


def test_hostile_checkpoint_header_is_refused(tmp_path):
    bad = tmp_path / "x.safetensors"
    bad.write_bytes((10**12).to_bytes(8, "little") + b"{}")
    with pytest.raises(CheckpointError):
        load_checkpoint(bad)
    (tmp_path / "y.json").write_text(json.dumps({"step": 1}))
