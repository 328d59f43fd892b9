"""Which allocator Arrow's buffers come from, in aurora's processes and the ones they start.

Arrow bundles mimalloc and uses it by default. mimalloc kept what a task's parquet reads and
writes had freed, so a process grew with its task: en, 10,000 to 100,000 generated documents in 4
tasks, a filter-pass worker's peak RSS went from 172-177 to 194-197 MiB, and a refilter's own
process (which reads RUN's signals) from 144 to 189 after its first checks; with the C library's
allocator, 157-160 to 168-171, and 133 to 151 (README, "Throughput and cost").
"""

import os

POOL_VARIABLE = "ARROW_DEFAULT_MEMORY_POOL"


def arrow_from_the_c_allocator() -> None:
    """This process, if it has not loaded Arrow yet, and the processes it starts from now on take
    Arrow's buffers from the C library's allocator, unless the environment names another pool.
    Arrow reads the setting once, when it is imported."""
    os.environ.setdefault(POOL_VARIABLE, "system")
