"""Process settings for training: glibc keeps freed memory, so big activations are not re-faulted."""
import platform
import subprocess
import sys

import pytest

CODE = """
import resource, sys, torch
from composer.device import keep_freed_memory
ok = keep_freed_memory() if sys.argv[1] == "on" else False
x = torch.rand(64, 128, 16, 84)               # 44 MB: a critic activation at the seed's sizes
def step():                                   # temporaries of the same size, freed at the end
    return (torch.nn.functional.leaky_relu(x * 2, 0.3) + 1).sum()
for _ in range(3):                            # warm-up: the heap grows to its working size
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
print(ok, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_training_process_reuses_large_blocks_instead_of_faulting_them_in_again():
    def faults(mode):
        out = subprocess.run([sys.executable, "-c", CODE, mode], capture_output=True, text=True, check=True)
        ok, n = out.stdout.split()
        return ok == "True", int(n)

    on_ok, on = faults("on")
    _, off = faults("off")
    assert on_ok
    assert off > 10 * 20_000         # glibc's default: every 44 MB temporary is faulted in again
    assert on < off / 5              # kept: reused (at most a one-off growth of the heap faults)
