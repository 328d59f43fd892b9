"""Where removed documents and malformed records go: `rejects/<step>/<rank>.jsonl.gz`.

Each line is `{"id", "reason", ...}` with the document's text (or the raw line for a record
that could not be parsed), so nothing a run drops is lost. Files are gzip with a zero mtime and
are renamed into place when complete, like every output of a run.
"""

import gzip
import re
import zlib
from collections import Counter
from collections.abc import Iterator
from typing import NamedTuple

import orjson

from core.atomic import AtomicFile
from core.errors import AuroraError
from core.storage import uri

REJECTS_DIR = "rejects"
MAX_REJECT_BYTES = 1 << 30  # a reject holds one document (at most 1 GiB, the reader's largest cap)
_FILE_NAME = re.compile(rf"{REJECTS_DIR}/([A-Za-z0-9_-]+)/([0-9]{{5,}})\.jsonl\.gz")  # what `rejects_path` names


def rejects_path(step: str, rank: int) -> str:
    return f"{REJECTS_DIR}/{step}/{rank:05d}.jsonl.gz"


class RejectsFile(NamedTuple):
    path: str  # relative to the run folder
    step: str
    task: int


def rejects_file(path: str) -> RejectsFile | None:
    """The step and task of a path (relative to the run folder) that `rejects_path` names; None for any other."""
    match = _FILE_NAME.fullmatch(path)
    return None if match is None else RejectsFile(path, match[1], int(match[2]))


def reject_files(folder) -> list[RejectsFile]:
    """Every rejects file of a run folder, by path. A `.jsonl.gz` there that `rejects_path` does
    not name (`rejects/x/evil.jsonl.gz`) was not written by a run: an AuroraError naming it, for
    every reader alike (the report takes a file's task from its name)."""
    files = []
    for path in sorted(folder.glob(f"{REJECTS_DIR}/*/*.jsonl.gz")):
        file = rejects_file(path)
        if file is None:
            raise AuroraError(f"{uri(folder)}/{path}: not a rejects file of a run (those are {REJECTS_DIR}/<step>/<task>.jsonl.gz)")
        files.append(file)
    return files


def read_rejects(folder, path: str) -> Iterator[tuple[bytes, dict]]:
    """Each reject of a file: its line as written and its record. A file that is not gzip, a line
    longer than any reject (a damaged file may hold no newline), or a line that is not an object
    with a string `reason` is an AuroraError naming the file and the line: every reader of rejects
    (audit, report, refilter) meets a damaged file the same way."""
    where, number = f"{uri(folder)}/{path}", 0
    try:
        with folder.open(path, "rb") as raw, gzip.GzipFile(fileobj=raw) as f:
            while line := f.readline(MAX_REJECT_BYTES + 1):
                number += 1
                if len(line) > MAX_REJECT_BYTES:
                    raise AuroraError(f"{where}: line {number} is longer than any reject")
                try:
                    record = orjson.loads(line)
                except orjson.JSONDecodeError:
                    record = None
                if not isinstance(record, dict) or not isinstance(record.get("reason"), str):
                    raise AuroraError(f"{where}: line {number} is not a reject (a JSON object with a reason)")
                yield line, record
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise AuroraError(f"{where}: not a gzip file of rejects ({type(e).__name__}: {e})") from None


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
        # Level 6, zlib's and gzip's own default: GzipFile's 9 took five times as long for 4% smaller
        # files on the rejects of bench/curate.py's 10,000 generated hi documents, where it was 8% of
        # py-spy's samples of the whole curation.
        self._gzip = gzip.GzipFile(fileobj=self._file.file, mode="wb", compresslevel=6, mtime=0)

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
    for file in reject_files(folder):
        for _, record in read_rejects(folder, file.path):
            counts[record["reason"]] += 1
    return counts
