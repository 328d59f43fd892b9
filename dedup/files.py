"""Reading and writing the dedup passes' binary files: fixed-width rows, rows at given positions,
byte ranges, and edge files (uint64 pairs, the later document first) spread over partitions."""

import resource

import numpy as np

from core.atomic import AtomicFile
from dedup.layout import DedupLayout, partition_of

_BLOCK_ROWS = 1 << 16
_GAP_BYTES = 1 << 16  # ranges closer than this are read in one request
_SPAN_BYTES = 8 << 20  # of at most this size


def allow_open_files(count: int) -> None:
    """Room for `count` more files open at once: the soft limit on open files raised toward the
    hard one (a common soft limit, 1024, is below the partitions of a billion documents)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = count + 256  # the interpreter's, the libraries' and the executor's own
    if needed <= soft:
        return
    if hard != resource.RLIM_INFINITY and needed > hard:
        raise OSError(f"{count} files must be open at once, and the limit on open files is {hard} "
                      "(raise `ulimit -n`, or raise dedup.memory_mb for fewer partitions)")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def row_count(folder, path: str, row_bytes: int) -> int:
    return folder.size(path) // row_bytes


def read_row_blocks(folder, path: str, width: int):
    """(first row, block) over a file of uint32 rows `width` wide."""
    row = 0
    with folder.open(path, "rb") as f:
        while block := f.read(_BLOCK_ROWS * width * 4):
            values = np.frombuffer(block, dtype=np.uint32).reshape(-1, width)
            yield row, values
            row += len(values)


def read_ranges(folder, path: str, starts: np.ndarray, ends: np.ndarray) -> list[bytes]:
    """The bytes [start, end) of the file for each range, in the order given. Ranges are read in
    file order, and ranges close together in one request of at most `_SPAN_BYTES` (object stores
    charge per request), so the memory held is what is returned and one request."""
    out: list[bytes] = [b""] * len(starts)
    order = np.argsort(starts, kind="stable")
    with folder.open(path, "rb") as f:
        i = 0
        while i < len(order):
            j, span_start, span_end = i + 1, int(starts[order[i]]), int(ends[order[i]])
            while j < len(order) and int(starts[order[j]]) - span_end <= _GAP_BYTES and int(ends[order[j]]) - span_start <= _SPAN_BYTES:
                span_end = max(span_end, int(ends[order[j]]))
                j += 1
            f.seek(span_start)
            span = memoryview(f.read(span_end - span_start))
            for k in order[i:j]:
                out[k] = span[int(starts[k]) - span_start : int(ends[k]) - span_start].tobytes()
            i = j
    return out


def read_rows(folder, path: str, row_bytes: int, positions: np.ndarray) -> np.ndarray:
    """(len(positions), row_bytes) uint8: the file's rows at these positions, in the order given."""
    starts = positions.astype(np.int64) * row_bytes
    chunks = read_ranges(folder, path, starts, starts + row_bytes)
    return np.frombuffer(b"".join(chunks), dtype=np.uint8).reshape(len(positions), row_bytes)


class RecordsWriter:
    """Variable-length records, one per document in order, written whole or not at all as
    `<base>.bin` (the records one after another) and `<base>.ends` (each record's end, uint64),
    so that any document's record is read alone (`record_bounds`, `read_ranges`)."""

    def __init__(self, folder, base: str):
        self.data, self.ends, self.end = AtomicFile(folder, base + ".bin"), AtomicFile(folder, base + ".ends"), 0

    def write(self, records: list[bytes]) -> None:
        if records:
            ends = self.end + np.cumsum([len(r) for r in records], dtype=np.uint64)
            self.data.write(b"".join(records))
            self.ends.write(ends.tobytes())
            self.end = int(ends[-1])

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.data.__exit__(exc_type, exc, tb)
        self.ends.__exit__(exc_type, exc, tb)


def record_bounds(folder, base: str, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where the records at these positions start and end in `<base>.bin`."""
    ends = read_rows(folder, base + ".ends", 8, positions).view(np.uint64).ravel().astype(np.int64)
    before = read_rows(folder, base + ".ends", 8, np.maximum(positions - 1, 0)).view(np.uint64).ravel().astype(np.int64)
    return np.where(positions > 0, before, 0), ends


def read_records(folder, base: str, positions: np.ndarray) -> list[bytes]:
    """The records at these positions, in the order given."""
    starts, ends = record_bounds(folder, base, positions)
    return read_ranges(folder, base + ".bin", starts, ends)


def unique_edges(edges: np.ndarray) -> np.ndarray:
    """The distinct edges, sorted (by the later document, then the earlier)."""
    if len(edges) == 0:
        return np.empty((0, 2), dtype=np.uint64)
    edges = edges[np.lexsort((edges[:, 1], edges[:, 0]))]
    new = np.ones(len(edges), dtype=bool)
    new[1:] = (edges[1:] != edges[:-1]).any(axis=1)
    return edges[new]


def read_edges(folder, paths: list[str]) -> np.ndarray:
    """The distinct edges of these files, sorted; merged file by file, so the largest array held
    is the distinct edges so far plus one file."""
    edges = np.empty((0, 2), dtype=np.uint64)
    for path in paths:
        with folder.open(path, "rb") as f:
            more = np.frombuffer(f.read(), dtype=np.uint64).reshape(-1, 2)
        if len(more):
            edges = unique_edges(np.concatenate([edges, more]))
    return edges


class EdgeFiles:
    """The edge files of one task of a pass, one per partition of the next, written whole or not at
    all. Each edge goes to the partition of its later document, and with `by_both_ends` also to
    that of its earlier one; each file keeps the order in which its edges were written."""

    def __init__(self, folder, layout: DedupLayout, step: str, task: int, partitions: int, by_both_ends: bool):
        self.partitions, self.by_both_ends = partitions, by_both_ends
        allow_open_files(partitions)
        self.files = [AtomicFile(folder, layout.edges(step, task, p)) for p in range(partitions)]

    def write(self, edges: np.ndarray) -> None:
        later = partition_of(edges[:, 0], self.partitions)
        rows, where = np.arange(len(edges)), later
        if self.by_both_ends:
            earlier = partition_of(edges[:, 1], self.partitions)
            other = earlier != later
            rows, where = np.concatenate([rows, rows[other]]), np.concatenate([later, earlier[other]])
        order = np.lexsort((rows, where))
        bounds = np.searchsorted(where[order], np.arange(self.partitions + 1))
        for p in np.flatnonzero(np.diff(bounds)):
            self.files[p].write(edges[rows[order[bounds[p] : bounds[p + 1]]]].tobytes())

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        for f in self.files:
            f.__exit__(exc_type, exc, tb)
