"""Keep a training worker's freed memory in the process instead of handing it back to the kernel.

glibc serves large requests (activations, gradients) with fresh mmap'd pages
and returns them to the kernel on free, so every training step faults the same
buffers back in page by page and the kernel zeroes each page again. In a pool
worker, whose training set arrives through shared memory, glibc's adaptive
threshold does not rise early enough to stop it: measured in one worker's
first SynthFacesCNN model, 1.2 million minor page faults and 3.4 s of system
time in a 26 s training. Keeping freed memory (no mmap, no trimming) removes
them; a worker's memory then stays at its peak, which the next variant needs
anyway. The arithmetic is untouched (torch aligns its buffers itself), so the
weights are bit-identical either way.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
_M_MMAP_MAX = -4


@functools.cache  # a process-wide setting: a Ray worker runs many tasks, and each asks again
def keep_freed_memory() -> bool:
    """In this process, reuse freed heap memory rather than returning it; False where libc is not glibc."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # macOS, Windows, musl without mallopt: nothing to tune
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    # mallopt returns 1 on success; both must hold, or the faults come back through the other path.
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
