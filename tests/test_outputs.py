"""Request folders do not pile up in /tmp."""
import os
import time

from composer.render import outputs


def test_old_and_surplus_request_folders_are_swept(tmp_path, monkeypatch):
    monkeypatch.setattr(outputs, "OUTPUT_ROOT", tmp_path)
    old = outputs.new_output_dir("composer-test-")
    (old / "piece.wav").write_bytes(b"x" * 1000)
    past = time.time() - 2 * outputs.OUTPUT_MAX_AGE_S
    os.utime(old, (past, past))
    fresh = [outputs.new_output_dir("composer-test-") for _ in range(5)]
    for k, p in enumerate(fresh):
        os.utime(p, (time.time() - 100 + k, time.time() - 100 + k))
    assert outputs.sweep_outputs(max_folders=3) == 3  # the old one, and the two oldest beyond 3
    assert not old.exists() and [p.exists() for p in fresh] == [False, False, True, True, True]
