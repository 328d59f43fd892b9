"""How aurora's processes allocate memory: where Arrow's buffers come from, and when the C
library's allocator gives freed memory back.

Arrow bundles mimalloc and uses it by default. mimalloc kept what a task's parquet reads and
writes had freed, so a process grew with its task: en, 10,000 to 100,000 generated documents in 4
tasks, a filter-pass worker's peak RSS went from 172-177 to 194-197 MiB, and a refilter's own
process (which reads RUN's signals) from 144 to 189 after its first checks; with the C library's
allocator, 157-160 to 168-171, and 133 to 151 (README, "Throughput and cost").

The C library's allocator (glibc's malloc) maps a block of 128 KiB or more on its own and unmaps it
when it is freed, but each time such a block is freed it raises that threshold to the block's size
(up to 32 MiB); blocks below the new threshold then come from the heap, which keeps the holes they
leave. A task's Arrow pages and tokenizer batches are such blocks: a tokenize-pass worker's peak
RSS grew from 175-177 to 208 MiB from 2,500 to 25,000 documents a task (en), and from 171-172 to
187 with the threshold fixed in each task (`large_blocks_unmapped`), in the same time.
"""

import ctypes
import os

POOL_VARIABLE = "ARROW_DEFAULT_MEMORY_POOL"
_M_MMAP_THRESHOLD = -3  # glibc's malloc.h
LARGE_BLOCK = 128 << 10  # glibc's own threshold, before it rises


def arrow_from_the_c_allocator() -> None:
    """This process, if it has not loaded Arrow yet, and the processes it starts from now on take
    Arrow's buffers from the C library's allocator, unless the environment names another pool.
    Arrow reads the setting once, when it is imported."""
    os.environ.setdefault(POOL_VARIABLE, "system")


def large_blocks_unmapped() -> None:
    """In this process, every block of LARGE_BLOCK bytes or more that glibc's malloc allocates from
    now on is mapped on its own and unmapped when freed: the threshold stops rising. A C library
    without `mallopt` (not glibc) is left as it is."""
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is not None:
        mallopt(_M_MMAP_THRESHOLD, LARGE_BLOCK)
