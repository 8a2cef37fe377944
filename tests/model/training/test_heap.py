"""`KeepHeap`: after TensorFlow's 128 KiB trim patch, freed tensor-sized blocks are reused."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# A child process (its allocator is the test's subject): TensorFlow's patch, then 200 steps that
# each fill and free an 8 MiB block, as a training step does with its activations.
_STEPS = """
import ctypes, json, resource, sys
from model.training.heap import keep_heap
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
libc.mallopt(-1, 128 << 10)  # what TensorFlow's generator dataset sets
applied = keep_heap() if sys.argv[1] == "keep" else False
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(200):  # plain malloc, as TensorFlow's CPU allocator (numpy asks for huge pages)
    block = libc.malloc(8 << 20)
    ctypes.memset(block, 1, 8 << 20)
    libc.free(block)
print(json.dumps({"applied": applied,
                  "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""


def _faults(mode: str, env: dict | None = None) -> dict:
    import os

    done = subprocess.run([sys.executable, "-c", _STEPS, mode], capture_output=True, text=True,
                          check=True, env={**os.environ, **(env or {})})
    return json.loads(done.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_blocks_are_reused_not_faulted_in_again():
    patched, kept = _faults("patched"), _faults("keep")
    assert kept["applied"]
    # Patched: every step's 2,048 pages faulted in again (measured ~409,000 in all).
    assert patched["faults"] > 200 * 2048 * 0.9
    assert kept["faults"] < patched["faults"] / 20


def test_it_can_be_turned_off():
    assert _faults("keep", {"CHECKOUT_AGE_KEEP_HEAP": "0"})["applied"] is False
