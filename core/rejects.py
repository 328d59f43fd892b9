"""Where removed documents and malformed records go: `rejects/<step>/<rank>.jsonl.gz`.

Each line is `{"id", "reason", ...}` with the document's text (or the raw line for a record
that could not be parsed), so nothing a run drops is lost. Files are gzip with a zero mtime and
are renamed into place when complete, like every output of a run.
"""

import gzip
from collections import Counter

import orjson

from core.atomic import AtomicFile

REJECTS_DIR = "rejects"
MAX_REJECT_BYTES = 1 << 30  # a reject holds one document (at most 1 GiB, the reader's largest cap)


def rejects_path(step: str, rank: int) -> str:
    return f"{REJECTS_DIR}/{step}/{rank:05d}.jsonl.gz"


class RejectWriter:
    """A context manager for one rank of one step; `write(doc, rank)` matches datatrove's exclusion writers."""

    def __init__(self, folder, step: str):
        self.folder, self.step = folder, step
        self.counts: Counter = Counter()
        self._file = self._gzip = None

    def __enter__(self):
        self.counts = Counter()
        return self

    def _open(self, rank: int) -> None:
        self._file = AtomicFile(self.folder, rejects_path(self.step, rank))
        self._gzip = gzip.GzipFile(fileobj=self._file.file, mode="wb", mtime=0)

    def write_record(self, record: dict, rank: int) -> None:
        """Write one reject; `record` holds at least `id` and `reason`."""
        if self._gzip is None:
            self._open(rank)
        self._gzip.write(orjson.dumps(record) + b"\n")
        self.counts[record["reason"]] += 1

    def write(self, doc, rank: int = 0) -> None:
        metadata = dict(doc.metadata)
        reason = metadata.pop("filter_reason", self.step)
        self.write_record({"id": doc.id, "reason": reason, "text": doc.text, "metadata": metadata}, rank)

    def __exit__(self, exc_type, exc, tb):
        if self._gzip is not None:
            if exc_type is None:
                self._gzip.close()
                self._file.commit()
            else:
                self._file.discard()
            self._file = self._gzip = None


def count_rejects(folder) -> Counter:
    """Recount every reject on disk by reason (the audit's view, independent of the ledger)."""
    counts: Counter = Counter()
    for path in sorted(folder.glob(f"{REJECTS_DIR}/*/*.jsonl.gz")):
        with folder.open(path, "rb") as raw, gzip.GzipFile(fileobj=raw) as f:
            while line := f.readline(MAX_REJECT_BYTES + 1):  # bounded: a damaged file may hold no newline
                if len(line) > MAX_REJECT_BYTES:
                    raise ValueError(f"{path}: a line longer than any reject")
                counts[orjson.loads(line)["reason"]] += 1
    return counts
