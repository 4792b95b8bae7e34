"""Sandbox workers: untrusted, slow work in child processes that yield the CPU to the server."""
import os

from composer import sandbox


def test_workers_run_below_the_servers_priority():
    sb = sandbox.Sandbox(workers=1)
    sb.run("composer.paths:checkpoints_dir", timeout=60.0)  # starts a worker and leaves it idle
    worker = sb._idle.queue[0]
    try:
        assert os.getpriority(os.PRIO_PROCESS, worker.proc.pid) == os.nice(0) + sandbox.WORKER_NICE
    finally:
        worker.kill()
