"""Keep freed tensor memory in the process during training, instead of faulting it in each step.

TensorFlow's `from_generator` datasets (Keras feeds a `PyDataset` through one) set glibc's
`M_TRIM_THRESHOLD` to 128 KiB the first time they run ("Memory patch applied" in the log), which
also freezes glibc's adaptive mmap threshold. Every training step then hands its freed
activations (MBs each) back to the kernel and the next step takes fresh pages, one page fault
per 4 KiB: 10,000 faults an image on the cpu profile, and on the virtual machines measured
here (docs/model.md, `bench/bench_train_heap.py`) the kernel's time spent on them reached the
time of the arithmetic. `KeepHeap` sets both thresholds back after TensorFlow's patch (at
every epoch's start and after its first batch, where the patch has run), so freed memory is
reused. glibc only: elsewhere (or with `CHECKOUT_AGE_KEEP_HEAP=0`) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

import keras

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's <malloc.h>
TRIM_THRESHOLD = 512 << 20  # freed memory at the heap's top kept up to this much
MMAP_THRESHOLD = 32 << 20  # blocks below this come from the heap (glibc's largest dynamic value)


def _mallopt():  # noqa: ANN202 - the C function, or None
    if os.environ.get("CHECKOUT_AGE_KEEP_HEAP", "1").lower() in ("0", "false", "no", "off"):
        return None
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        # musl and other C libraries have no mallopt (or ignore it): nothing to undo there.
        return libc.mallopt if libc is not None and hasattr(libc, "mallopt") else None
    except OSError:
        return None


def keep_heap() -> bool:
    """Set glibc's trim and mmap thresholds for a training process; True when they were set."""
    mallopt = _mallopt()
    if mallopt is None:
        return False
    return bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)) and bool(
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))


class KeepHeap(keras.callbacks.Callback):
    """`keep_heap()` wherever TensorFlow may just have patched the thresholds back."""

    def __init__(self) -> None:
        super().__init__()
        self.applied = False

    def _apply(self) -> None:
        applied = keep_heap()
        if applied and not self.applied:
            log.debug("glibc trim threshold %d MiB, mmap threshold %d MiB",
                      TRIM_THRESHOLD >> 20, MMAP_THRESHOLD >> 20)
        self.applied = self.applied or applied

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._apply()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if batch == 0:
            self._apply()

    def on_test_begin(self, logs: dict | None = None) -> None:
        self._apply()
