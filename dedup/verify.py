"""The verify pass: each candidate pair of the bands is kept as an edge only if the two documents
really are at least `threshold` similar.

One task per partition. A task reads its partition's candidates from every band task (merged
file by file, so no task holds more than its own distinct pairs) and measures each pair's
Jaccard similarity:

- `shingles` (the default): exactly, from the two documents' shingle sets written by the filter
  pass. Pairs are taken in chunks whose shingle sets fit in the memory bound, each set read once
  per chunk.
- `signatures`: estimated, as the share of equal MinHash values (its standard deviation at 0.8
  and 128 permutations is 0.035, so pairs near the threshold go either way).
- `none`: every candidate is an edge (datatrove's and datasketch's behaviour).

Exact duplicates (the digests' task of the bands pass) are edges without measurement. The edges
go to the first connected-components pass, to the partitions of both their documents.
"""

import numpy as np
from datatrove.pipeline.base import PipelineStep

from dedup.files import EdgeFiles, read_edges, read_ranges, read_rows, record_bounds, unique_edges
from dedup.layout import DedupLayout, position_of, task_of

VERIFY_METHODS = ("shingles", "signatures", "none")
_SHARE = 0.25  # of the memory bound, for the shingle sets of one chunk


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard similarity of two sorted sets of distinct values."""
    both = np.intersect1d(a, b, assume_unique=True).size
    return both / (len(a) + len(b) - both)


class DedupVerify(PipelineStep):
    """Task p: the verified edges of partition p, written as the layout's edges of step "verify"."""

    name = "🔎 Verify candidates"
    type = "🫂 - DEDUP"

    def __init__(self, output_folder, layout: DedupLayout, bands: int, partitions: int, threshold: float,
                 method: str, num_perm: int, memory_mb: int):
        super().__init__()
        self.output_folder, self.layout, self.bands, self.partitions = output_folder, layout, bands, partitions
        self.threshold, self.method, self.num_perm, self.memory_mb = threshold, method, num_perm, memory_mb

    def run(self, data, rank: int = 0, world_size: int = 1):
        folder, layout = self.output_folder, self.layout
        candidates = read_edges(folder, [layout.edges("bands", band, rank) for band in range(self.bands)])
        exact = read_edges(folder, [layout.edges("bands", self.bands, rank)])
        # An exact duplicate's pairs with other documents are measured like any pair; with its first copy it needs none.
        candidates = candidates[~_rows_in(candidates, exact)]
        kept = candidates[self._similar(candidates)] if len(candidates) else candidates
        self.stat_update("candidates", value=len(candidates))
        self.stat_update("near_edges", value=len(kept))
        self.stat_update("exact_edges", value=len(exact))
        with EdgeFiles(folder, layout, "verify", rank, self.partitions, by_both_ends=True) as out:
            out.write(unique_edges(np.concatenate([kept, exact])))
        yield from ()

    def _similar(self, pairs: np.ndarray) -> np.ndarray:
        if self.method == "none":
            return np.ones(len(pairs), dtype=bool)
        if self.method == "signatures":
            return self._signature_similarity(pairs) >= self.threshold
        return self._shingle_similarity(pairs) >= self.threshold

    def _signature_similarity(self, pairs: np.ndarray) -> np.ndarray:
        """Pairs in chunks whose signatures fit the memory share, each signature read once per chunk."""
        similarity = np.empty(len(pairs))
        chunk = max(1, int(self.memory_mb * _SHARE * (1 << 20)) // (2 * self.num_perm * 4))
        for start in range(0, len(pairs), chunk):
            nodes, index = np.unique(pairs[start : start + chunk], return_inverse=True)
            signatures = np.empty((len(nodes), self.num_perm), dtype=np.uint32)
            for task in np.unique(task_of(nodes)):
                mine = task_of(nodes) == task
                rows = read_rows(self.output_folder, self.layout.signatures(int(task)), self.num_perm * 4, position_of(nodes[mine]))
                signatures[mine] = rows.view(np.uint32)
            index = index.reshape(-1, 2)
            similarity[start : start + chunk] = (signatures[index[:, 0]] == signatures[index[:, 1]]).mean(axis=1)
        return similarity

    def _shingle_similarity(self, pairs: np.ndarray) -> np.ndarray:
        folder, layout = self.output_folder, self.layout
        nodes, index = np.unique(pairs, return_inverse=True)
        index = index.reshape(-1, 2)
        starts, ends = np.empty(len(nodes), dtype=np.int64), np.empty(len(nodes), dtype=np.int64)
        for task in np.unique(task_of(nodes)):
            mine = np.flatnonzero(task_of(nodes) == task)
            starts[mine], ends[mine] = record_bounds(folder, layout.shingles(int(task)), position_of(nodes[mine]))
        sizes = (ends - starts) // 4
        similarity = np.zeros(len(pairs))
        # Sets of very different sizes cannot reach the threshold: |A n B| / |A u B| <= min / max.
        small, large = np.minimum(sizes[index[:, 0]], sizes[index[:, 1]]), np.maximum(sizes[index[:, 0]], sizes[index[:, 1]])
        todo = np.flatnonzero(small / large >= self.threshold)  # divided as `jaccard` divides: equal at the threshold
        todo = todo[np.argsort(index[todo, 1], kind="stable")]  # by the earlier document: its set is read once per chunk
        budget = self.memory_mb * _SHARE * (1 << 20) / 4
        i = 0
        while i < len(todo):
            needed, total, j = set(), 0, i
            while j < len(todo) and (j == i or total <= budget):
                for node in index[todo[j]]:
                    if node not in needed:
                        needed.add(node)
                        total += sizes[node]
                j += 1
            sets = self._read_sets(np.array(sorted(needed)), nodes, starts, ends)
            for pair in todo[i:j]:
                a, b = index[pair]
                similarity[pair] = jaccard(sets[a], sets[b])
            i = j
        return similarity

    def _read_sets(self, needed: np.ndarray, nodes, starts, ends) -> dict[int, np.ndarray]:
        sets = {}
        for task in np.unique(task_of(nodes[needed])):
            mine = needed[task_of(nodes[needed]) == task]
            chunks = read_ranges(self.output_folder, self.layout.shingles(int(task)) + ".bin", starts[mine], ends[mine])
            sets.update((int(node), np.frombuffer(chunk, dtype=np.uint32)) for node, chunk in zip(mine, chunks))
        return sets


def _rows_in(edges: np.ndarray, among: np.ndarray) -> np.ndarray:
    """Which rows of `edges` are rows of `among`."""
    def rows(x):
        return np.ascontiguousarray(x).view(np.dtype((np.void, 16))).ravel()
    return np.isin(rows(edges), rows(among))
