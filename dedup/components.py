"""Connected components of the verified edges, in passes of many tasks, none holding all edges.

The alternating algorithm of Kiveris et al., "Connected Components in MapReduce and Beyond"
(SoCC 2014): each pass applies one operation to every node's neighbourhood, and the passes
alternate until neither changes anything. Nodes are document keys; an edge (v, u) has v > u.

- large-star: for each node u, m = the smallest of u and its neighbours; every neighbour v > u is
  linked to m instead of u. A task needs all edges of its nodes, so edges come to the partitions
  of both ends. It changes u when m < u and u has a larger neighbour.
- small-star: for each node u, m = the smallest of its smaller neighbours; u and each of them are
  linked to m. A task needs only the edges to smaller neighbours, so edges come to the partition
  of the later end. It changes u when u has two or more smaller neighbours.

Both keep each component connected and never join two. When neither changes a node, every node is
either a centre (no smaller neighbour) or a leaf with exactly one smaller neighbour, a centre: each
component is a star around its smallest key, its first document in input order. The number of
passes is O(log^2 n) in theory and a few in practice (dedup graphs are shallow). Every task's
output is sorted and distinct, and depends only on its input, so the result is the same for any
number of workers; the number of partitions follows the corpus (`partitions_for`).
"""

import math
from collections.abc import Callable

import numpy as np
from datatrove.pipeline.base import PipelineStep

from core.atomic import write_atomic
from dedup.files import EdgeFiles, read_edges, unique_edges
from dedup.layout import DedupLayout, partition_of

LARGE_STAR, SMALL_STAR = "large-star", "small-star"
# Memory per document of its partition that a task of the verify, components and clusters passes
# budgets for (measured by bench/dedup.py: a verify task holds about 235 bytes per document at 1M
# documents with 15% duplicates), so a partition is about a million documents at 512 MiB.
_BYTES_PER_DOCUMENT = 256


def partitions_for(documents: int, memory_mb: int) -> int:
    """Partitions for the verify, components and clusters passes: enough that a task's share of the
    corpus fits half the memory bound. Grows with the corpus, so a task's cost stays flat."""
    return max(1, math.ceil(documents * _BYTES_PER_DOCUMENT / (memory_mb * 0.5 * (1 << 20))))


def _neighbourhoods(source: np.ndarray, target: np.ndarray):
    """Directed edges sorted by source, and per edge the smallest target of its source's group."""
    order = np.lexsort((target, source))
    source, target = source[order], target[order]
    first = np.ones(len(source), dtype=bool)
    first[1:] = source[1:] != source[:-1]
    starts = np.flatnonzero(first)
    smallest = np.minimum.reduceat(target, starts) if len(starts) else target
    return source, target, np.repeat(smallest, np.diff(np.append(starts, len(source))))


def large_star(edges: np.ndarray, mine: Callable[[np.ndarray], np.ndarray] | None = None) -> tuple[np.ndarray, int]:
    """Large-star over the neighbourhoods of the nodes `mine` selects (all by default): the new
    edges and the number of nodes changed. `mine(keys)` says which keys are this task's."""
    later, earlier = edges[:, 0], edges[:, 1]
    take_later = mine(later) if mine is not None else np.ones(len(edges), bool)
    take_earlier = mine(earlier) if mine is not None else np.ones(len(edges), bool)
    source = np.concatenate([later[take_later], earlier[take_earlier]])
    target = np.concatenate([earlier[take_later], later[take_earlier]])
    source, target, smallest = _neighbourhoods(source, target)
    m = np.minimum(source, smallest)
    larger = target > source
    out = unique_edges(np.stack([target[larger], m[larger]], axis=1))
    changed = len(np.unique(source[larger & (m < source)]))
    return out, changed


def small_star(edges: np.ndarray, mine: Callable[[np.ndarray], np.ndarray] | None = None) -> tuple[np.ndarray, int]:
    """Small-star over the nodes `mine` selects as later ends: the new edges and the nodes changed."""
    if mine is not None:
        edges = edges[mine(edges[:, 0])]
    source, target, smallest = _neighbourhoods(edges[:, 0], edges[:, 1])
    out = np.concatenate([np.stack([source, smallest], axis=1), np.stack([target, smallest], axis=1)])
    out = unique_edges(out[out[:, 0] != out[:, 1]])
    _, degree = np.unique(source, return_counts=True)
    return out, int((degree >= 2).sum())


class DedupComponents(PipelineStep):
    """One pass of connected components: task p applies `operation` to the nodes of partition p,
    reading the previous pass's edges for p, and writes edges for the next pass and its count of
    changed nodes (`layout.changes`)."""

    name = "🕸️ Components"
    type = "🫂 - DEDUP"

    def __init__(self, output_folder, layout: DedupLayout, step: str, previous: str, operation: str, partitions: int):
        super().__init__()
        self.output_folder, self.layout, self.partitions = output_folder, layout, partitions
        self.step, self.previous, self.operation = step, previous, operation

    def run(self, data, rank: int = 0, world_size: int = 1):
        folder, layout, partitions = self.output_folder, self.layout, self.partitions
        edges = read_edges(folder, [layout.edges(self.previous, task, rank) for task in range(partitions)])

        def mine(keys):
            return partition_of(keys, partitions) == rank

        operation = large_star if self.operation == LARGE_STAR else small_star
        out, changed = operation(edges, mine) if len(edges) else (edges, 0)
        # Large-star's output goes to small-star (later ends); small-star's to large-star (both ends).
        with EdgeFiles(folder, layout, self.step, rank, partitions, by_both_ends=self.operation == SMALL_STAR) as files:
            files.write(out)
        write_atomic(folder, layout.changes(self.step, rank), str(changed).encode())
        self.stat_update("edges", value=len(out))
        self.stat_update("changed", value=changed)
        yield from ()


def changed_nodes(folder, layout: DedupLayout, step: str, partitions: int) -> int:
    """The nodes a components pass changed, over all its tasks."""
    total = 0
    for task in range(partitions):
        with folder.open(layout.changes(step, task), "rb") as f:
            total += int(f.read())
    return total
