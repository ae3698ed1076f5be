"""Give the memory a finished step freed back to the operating system.

Every step of an in-process run (`custpipe run`, the bench, `make demo`) shares one process.
Python's allocator (glibc malloc) and Arrow's memory pool keep freed memory for reuse, so a
step would start with the high-water mark of the steps before it. Trimming after each step
returns it: the process's peak is then the largest step's, not their sum.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from functools import cache

import pyarrow as pa


@cache
def _malloc_trim():
    """glibc's malloc_trim, or None on a C library without it (musl, macOS)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    return getattr(ctypes.CDLL(name), "malloc_trim", None)


_frozen = False


def release_memory() -> None:
    """Collect garbage, return free heap pages and Arrow's unused pool memory to the OS.

    The first call freezes what survives its collection (the modules, the definitions, the
    instance: ~400,000 long-lived objects): later collections skip them, which takes a full
    collection from ~0.2 s to what the step left behind."""
    global _frozen
    gc.collect()
    if not _frozen:
        gc.freeze()
        _frozen = True
    pa.default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
