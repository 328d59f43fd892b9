"""One run at a time per output folder.

Two runs writing one folder would overwrite each other's temporary files and ledgers. A run holds
an exclusive `flock` on `<output>/.lock` (for object storage, on a file named after the URI in the
machine's temporary folder, so it guards runs started on this machine only). The kernel drops the
lock when the process dies, however it dies, so a killed run never leaves a stale lock behind.
"""

import fcntl
import hashlib
import os
import tempfile
from contextlib import contextmanager

from core.errors import AuroraError

LOCK_FILE = ".lock"


def lock_path(output: str) -> str:
    if "://" in output:
        folder = os.path.join(tempfile.gettempdir(), "aurora-locks")
        os.makedirs(folder, exist_ok=True)
        return os.path.join(folder, hashlib.sha256(output.encode()).hexdigest()[:32] + LOCK_FILE)
    os.makedirs(output, exist_ok=True)
    return os.path.join(output, LOCK_FILE)


@contextmanager
def output_lock(output: str):
    """Hold the output's lock for the block; another holder is a one-line error naming its process."""
    path = lock_path(output)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise AuroraError(f"{output} is being written by another aurora run (process {holder}); "
                              "wait for it to finish or use another --output") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)
