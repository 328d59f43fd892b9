"""The bands pass: LSH band by band, the pairs of documents whose keys are equal.

One task per band plus one for exact duplicates. Each band's key is its `rows` signature values
(the 16-byte digest for exact duplicates). Keys are spread over as many partitions as the memory
bound needs, written to local temporary files, and each partition is sorted in memory (a
distribution sort: memory is bounded by the setting, not by the corpus). Documents with equal
keys share the band; every one after the first gets an edge to the first.
"""

import math
import os
import tempfile

import numpy as np
from datatrove.pipeline.base import PipelineStep

from core.atomic import AtomicFile
from filters.dedup.layout import DedupLayout, global_ids

DIGEST_COLUMNS = 4  # the 16-byte digest as uint32 columns
# Bytes per record while a partition is sorted: key columns and id, lexsort's index, group scan.
_SORT_BYTES_PER_KEY_COLUMN = 12
_SORT_BYTES_FIXED = 48
SORT_SHARE = 0.5  # of the memory bound, for sorting; the rest is the interpreter, libraries, reading
_READ_ROWS = 1 << 16


def _rows(folder, path: str, width: int) -> int:
    return folder.size(path) // (width * 4)


def _read_row_blocks(folder, path: str, width: int):
    """(first row, block) over a file of uint32 rows `width` wide."""
    row = 0
    with folder.open(path, "rb") as f:
        while block := f.read(_READ_ROWS * width * 4):
            values = np.frombuffer(block, dtype=np.uint32).reshape(-1, width)
            yield row, values
            row += len(values)


def band_edges(keys: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """(member, first member) for every member after the first of each group of equal key rows."""
    if len(ids) == 0:
        return np.empty((0, 2), dtype=np.uint64)
    order = np.lexsort((ids, *keys.T[::-1]))
    keys, ids = keys[order], ids[order]
    new_group = np.ones(len(ids), dtype=bool)
    new_group[1:] = np.any(keys[1:] != keys[:-1], axis=1)
    first = ids[np.maximum.accumulate(np.where(new_group, np.arange(len(ids)), 0))]
    return np.stack([ids[~new_group], first[~new_group]], axis=1)


class DedupBands(PipelineStep):
    """Task b < bands: edges of band b; task `bands`: edges of exact duplicates. Writes the
    layout's `band_edges` of the task (uint64 pairs)."""

    name = "🪢 LSH bands"
    type = "🫂 - DEDUP"

    def __init__(self, output_folder, layout: DedupLayout, tasks: int, num_perm: int, bands: int, rows: int, memory_mb: int):
        super().__init__()
        self.output_folder, self.layout, self.tasks = output_folder, layout, tasks
        self.num_perm, self.bands, self.rows, self.memory_mb = num_perm, bands, rows, memory_mb

    def _sources(self, band: int):
        """(file, width, columns) of every filter task's keys for this band."""
        if band == self.bands:
            return [(self.layout.digests(t), DIGEST_COLUMNS, slice(None)) for t in range(self.tasks)]
        columns = slice(band * self.rows, (band + 1) * self.rows)
        return [(self.layout.signatures(t), self.num_perm, columns) for t in range(self.tasks)]

    def run(self, data, rank: int = 0, world_size: int = 1):
        sources = self._sources(rank)
        width = sources[0][2].stop - sources[0][2].start if rank < self.bands else DIGEST_COLUMNS
        total = sum(_rows(self.output_folder, path, w) for path, w, _ in sources)
        record_bytes = width * _SORT_BYTES_PER_KEY_COLUMN + _SORT_BYTES_FIXED
        partitions = max(1, math.ceil(total * record_bytes / (self.memory_mb * SORT_SHARE * (1 << 20))))
        out = self.layout.band_edges(rank)
        with tempfile.TemporaryDirectory(prefix="aurora-bands-") as tmp, \
                AtomicFile(self.output_folder, out) as edges:
            parts = [open(os.path.join(tmp, f"{p}.bin"), "wb") for p in range(partitions)]
            for task, (path, w, columns) in enumerate(sources):
                for first_row, block in _read_row_blocks(self.output_folder, path, w):
                    keys = np.ascontiguousarray(block[:, columns])
                    ids = global_ids(task, len(block), first_row)
                    records = np.concatenate([keys, ids[:, None].view(np.uint32).reshape(-1, 2)], axis=1)
                    which = keys[:, 0] % partitions
                    for p in np.unique(which):
                        parts[p].write(records[which == p].tobytes())
            for f in parts:
                f.close()
            for p in range(partitions):
                records = np.fromfile(os.path.join(tmp, f"{p}.bin"), dtype=np.uint32).reshape(-1, width + 2)
                ids = np.ascontiguousarray(records[:, width:]).view(np.uint64).ravel()
                edges.write(band_edges(records[:, :width], ids).tobytes())
                self.stat_update("documents", value=len(ids))
        yield from ()
