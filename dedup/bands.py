"""The bands pass: LSH band by band, the candidate pairs of documents whose keys are equal.

One task per band plus one for exact duplicates. Each band's key is its `rows` signature values
(the 16-byte digest for exact duplicates). Keys are spread over as many sort partitions as the
memory bound needs, written to local temporary files, and each is sorted in memory (a
distribution sort: memory is bounded by the setting, not by the corpus).

Documents with equal band keys form a bucket, in input order. Each member is paired with the
bucket's first `PARTNERS` members before it: every pair of a bucket of up to PARTNERS + 1, and a
number of pairs linear in the bucket beyond (a template shared by a million pages is a million
times PARTNERS pairs, not 10^12). A bucket's first member is everyone's partner, so a bucket whose
members are near duplicates of each other stays one cluster. Exact duplicates pair with their
first copy only: equal text needs no other partner. The pairs (later document, earlier one) go
to the verification partitions (`layout.partition_of` of the later document).
"""

import math
import os
import tempfile

import numpy as np
from datatrove.pipeline.base import PipelineStep

from dedup.files import EdgeFiles, allow_open_files, read_row_blocks, row_count
from dedup.layout import DedupLayout, global_ids

PARTNERS = 8
DIGEST_COLUMNS = 4  # the 16-byte digest as uint32 columns
# Bytes per record while a partition is sorted: key columns and id, lexsort's index, group scan, pairs.
_SORT_BYTES_PER_KEY_COLUMN = 12
_SORT_BYTES_FIXED = 48 + 16 * PARTNERS
SORT_SHARE = 0.5  # of the memory bound, for sorting; the rest is the interpreter, libraries, reading


def bucket_pairs(keys: np.ndarray, ids: np.ndarray, partners: int):
    """(member, earlier member) for each member and each of the first `partners` members of its
    bucket (equal key rows) that come before it: one array per partner rank, so that a bucket of
    millions is handed on a rank at a time."""
    if len(ids) == 0:
        return
    order = np.lexsort((ids, *keys.T[::-1]))
    keys, ids = keys[order], ids[order]
    new_bucket = np.ones(len(ids), dtype=bool)
    new_bucket[1:] = np.any(keys[1:] != keys[:-1], axis=1)
    start = np.maximum.accumulate(np.where(new_bucket, np.arange(len(ids)), 0))
    rank = np.arange(len(ids)) - start
    for w in range(partners):
        later = rank > w
        if not later.any():
            return
        yield np.stack([ids[later], ids[start[later] + w]], axis=1)


class DedupBands(PipelineStep):
    """Task b < bands: candidate pairs of band b; task `bands`: pairs of exact duplicates. Writes
    the layout's edges of step "bands", one file per verification partition."""

    name = "🪢 LSH bands"
    type = "🫂 - DEDUP"

    def __init__(self, output_folder, layout: DedupLayout, tasks: int, num_perm: int, bands: int, rows: int,
                 memory_mb: int, partitions: int):
        super().__init__()
        self.output_folder, self.layout, self.tasks, self.partitions = output_folder, layout, tasks, partitions
        self.num_perm, self.bands, self.rows, self.memory_mb = num_perm, bands, rows, memory_mb

    def _sources(self, band: int):
        """(file, width, columns) of every filter task's keys for this band."""
        if band == self.bands:
            return [(self.layout.digests(t), DIGEST_COLUMNS, slice(None)) for t in range(self.tasks)]
        columns = slice(band * self.rows, (band + 1) * self.rows)
        return [(self.layout.signatures(t), self.num_perm, columns) for t in range(self.tasks)]

    def run(self, data, rank: int = 0, world_size: int = 1):
        sources = self._sources(rank)
        width = self.rows if rank < self.bands else DIGEST_COLUMNS
        partners = PARTNERS if rank < self.bands else 1
        total = sum(row_count(self.output_folder, path, w * 4) for path, w, _ in sources)
        record_bytes = width * _SORT_BYTES_PER_KEY_COLUMN + _SORT_BYTES_FIXED
        sort_parts = max(1, math.ceil(total * record_bytes / (self.memory_mb * SORT_SHARE * (1 << 20))))
        allow_open_files(sort_parts + self.partitions)  # the sort files and the partitions' files, open together
        with tempfile.TemporaryDirectory(prefix="aurora-bands-") as tmp, \
                EdgeFiles(self.output_folder, self.layout, "bands", rank, self.partitions, by_both_ends=False) as out:
            parts = [open(os.path.join(tmp, f"{p}.bin"), "wb") for p in range(sort_parts)]
            for task, (path, w, columns) in enumerate(sources):
                for first_row, block in read_row_blocks(self.output_folder, path, w):
                    keys = np.ascontiguousarray(block[:, columns])
                    ids = global_ids(task, len(block), first_row)
                    records = np.concatenate([keys, ids[:, None].view(np.uint32).reshape(-1, 2)], axis=1)
                    which = keys[:, 0] % sort_parts
                    for p in np.unique(which):
                        parts[p].write(records[which == p].tobytes())
            for f in parts:
                f.close()
            for p in range(sort_parts):  # a document has one key per band: no pair comes from two sort partitions
                records = np.fromfile(os.path.join(tmp, f"{p}.bin"), dtype=np.uint32).reshape(-1, width + 2)
                ids = np.ascontiguousarray(records[:, width:]).view(np.uint64).ravel()
                for pairs in bucket_pairs(records[:, :width], ids, partners):
                    out.write(pairs)
                    self.stat_update("pairs", value=len(pairs))
                self.stat_update("documents", value=len(ids))
        yield from ()
