"""The process settings a trial trains under, each put back after it: trials run in users' own
processes too (`latent_sweep.train`, the rebuilds of `resume`), not only in Ray's workers.

* `trial_process`: denormal floats flushed to zero, and freed memory kept for reuse (glibc).
* `threads`: torch's intra-op thread count.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Iterator
from contextlib import contextmanager

import torch

# mallopt parameter numbers (malloc.h).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
# What a trial sets (`reuse_freed_memory`), and what it puts back: glibc has no getter for either,
# so the documented defaults (mallopt(3): 128 KiB each) stand in for the values found. Setting
# either, these included, also ends glibc's dynamic adjustment of both for the process.
TRIAL_MMAP_THRESHOLD, TRIAL_TRIM_THRESHOLD = 256 * 2**20, 1024 * 2**20
GLIBC_MMAP_THRESHOLD, GLIBC_TRIM_THRESHOLD = 128 * 2**10, 128 * 2**10

# Below float32's smallest normal number (1.18e-38): a denormal.
_DENORMAL = 1e-39


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """glibc, or None elsewhere (macOS, musl), where the allocator is left alone."""
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def _mallopt(mmap_threshold: int, trim_threshold: int) -> None:
    libc = _libc()
    if libc is None:
        return
    libc.mallopt(M_MMAP_THRESHOLD, mmap_threshold)
    libc.mallopt(M_TRIM_THRESHOLD, trim_threshold)


def reuse_freed_memory() -> None:
    """Let glibc keep freed blocks for reuse. By default it hands blocks over 128 KiB back to the
    OS at once (its adaptive threshold does not reliably adapt), so each step's [K, B, B]
    temporaries are page-faulted in anew: measured ~1,000 faults and +2 ms per step at K = 64,
    more than the arithmetic. Linux/glibc only; elsewhere a no-op."""
    _mallopt(TRIAL_MMAP_THRESHOLD, TRIAL_TRIM_THRESHOLD)


def flushes_denormals() -> bool:
    """Whether this thread flushes denormal floats to zero. torch sets the mode but cannot read it,
    so a denormal float32 is doubled: flushed, it comes out zero."""
    return (torch.tensor([_DENORMAL], dtype=torch.float32) * 2).item() == 0.0


@contextmanager
def trial_process() -> Iterator[None]:
    """Train under the trial's settings: denormals flushed to zero (powers like 1.7's c¹⁰ underflow
    into denormals, which CPUs multiply tens of times slower; flushing changes no loss by a
    representable amount) and freed memory kept for reuse. After it: the denormal mode found, and
    glibc's default thresholds (see GLIBC_MMAP_THRESHOLD)."""
    flushing = flushes_denormals()
    try:
        torch.set_flush_denormal(True)
        reuse_freed_memory()
        yield
    finally:
        torch.set_flush_denormal(flushing)
        _mallopt(GLIBC_MMAP_THRESHOLD, GLIBC_TRIM_THRESHOLD)


@contextmanager
def threads(n: int | None) -> Iterator[None]:
    """torch's intra-op threads set to `n` while inside (None: left as they are), then put back."""
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
