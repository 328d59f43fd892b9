"""The clusters pass: the converged components, as decisions on each document of a cluster.

One task per partition: after the last components pass every component is a star around its
smallest key, and its edges (leaf, centre) sit in the partition of the centre, so a task holds
whole clusters, and only its own. The centre is the cluster's first document in input order: it
is kept. Of the others, a document whose text digest equals an earlier member's is an
`exact_duplicate` (equal texts are always one cluster: the digests' edges join them), the rest are
`near_duplicate`; both are duplicates of the kept document. Each task writes its decisions sorted
by key; the tokenize pass reads a filter task's rows by key range, and `write_clusters_file`
lists them all in input order.
"""

from contextlib import ExitStack

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from datatrove.pipeline.base import PipelineStep

from core.atomic import AtomicFile
from dedup.files import read_edges, read_records, read_rows
from dedup.layout import DedupLayout, partition_of, position_of, task_of

STATUS_KEPT, STATUS_EXACT, STATUS_NEAR = "kept", "exact_duplicate", "near_duplicate"
STATUSES = pa.array([STATUS_KEPT, STATUS_EXACT, STATUS_NEAR])
DECISIONS_SCHEMA = pa.schema([("key", pa.uint64()), ("id", pa.string()), ("cluster_id", pa.string()),
                              ("cluster_size", pa.int64()), ("status", pa.string())])
CLUSTERS_SCHEMA = pa.schema([("id", pa.string()), ("cluster_id", pa.string()), ("cluster_size", pa.int64()), ("kept", pa.bool_())])
_ROW_GROUP = 1 << 16  # rows; a filter task's key range skips the others by their statistics


def members(stars: np.ndarray) -> dict[str, np.ndarray]:
    """Every node of these stars (leaf, centre), sorted by key: key, cluster (its centre) and
    cluster_size."""
    centres = np.unique(stars[:, 1])
    keys = np.concatenate([centres, stars[:, 0]])
    cluster = np.concatenate([centres, stars[:, 1]])
    order = np.argsort(keys, kind="stable")
    keys, cluster = keys[order], cluster[order]
    cluster_keys, sizes = np.unique(cluster, return_counts=True)
    return {"key": keys, "cluster": cluster, "cluster_size": sizes[np.searchsorted(cluster_keys, cluster)]}


def statuses(keys: np.ndarray, cluster: np.ndarray, digests: np.ndarray) -> np.ndarray:
    """Index into STATUSES of each member: its cluster's first document is kept; a member whose
    text digest (a row of `digests`, 16 bytes) an earlier member of its cluster has is an exact
    duplicate; the others are near duplicates."""
    halves = np.ascontiguousarray(digests).view(np.uint64).reshape(-1, 2)
    order = np.lexsort((keys, halves[:, 1], halves[:, 0], cluster))  # cluster, then text, then input order
    repeat = np.zeros(len(keys), dtype=bool)
    same = (cluster[order][1:] == cluster[order][:-1]) & (halves[order][1:] == halves[order][:-1]).all(axis=1)
    repeat[order[1:]] = same
    return np.where(keys == cluster, 0, np.where(repeat, 1, 2)).astype(np.int8)


def document_names(folder, layout: DedupLayout, keys: np.ndarray) -> pa.Array:
    """The document ids of these keys, in their order: each read alone from its filter task's `names`."""
    names: list[bytes] = [b""] * len(keys)
    for task in np.unique(task_of(keys)):
        mine = np.flatnonzero(task_of(keys) == task)
        for i, name in zip(mine.tolist(), read_records(folder, layout.names(int(task)), position_of(keys[mine]))):
            names[i] = name
    return pa.array(names, pa.binary()).cast(pa.string())


def text_digests(folder, layout: DedupLayout, keys: np.ndarray) -> np.ndarray:
    """(len(keys), 16) uint8: the text digest of each key."""
    digests = np.empty((len(keys), 16), dtype=np.uint8)
    for task in np.unique(task_of(keys)):
        mine = task_of(keys) == task
        digests[mine] = read_rows(folder, layout.digests(int(task)), 16, position_of(keys[mine]))
    return digests


class DedupClusters(PipelineStep):
    """Task p: decisions on every document of the clusters whose first document is in partition p,
    from the edges of the last components pass (`step`); writes the layout's `decisions(p)`."""

    name = "🕸️ Clusters"
    type = "🫂 - DEDUP"

    def __init__(self, output_folder, layout: DedupLayout, step: str, partitions: int):
        super().__init__()
        self.output_folder, self.layout, self.step, self.partitions = output_folder, layout, step, partitions

    def run(self, data, rank: int = 0, world_size: int = 1):
        folder, layout = self.output_folder, self.layout
        edges = read_edges(folder, [layout.edges(self.step, task, rank) for task in range(self.partitions)])
        cluster = members(edges[partition_of(edges[:, 1], self.partitions) == rank])
        keys = cluster["key"]
        status = statuses(keys, cluster["cluster"], text_digests(folder, layout, keys))
        names = document_names(folder, layout, keys)
        with AtomicFile(folder, layout.decisions(rank)) as f:
            pq.write_table(pa.table({
                "key": pa.array(keys, pa.uint64()),
                "id": names,
                "cluster_id": names.take(pa.array(np.searchsorted(keys, cluster["cluster"]), pa.int64())),
                "cluster_size": pa.array(cluster["cluster_size"], pa.int64()),
                "status": STATUSES.take(pa.array(status)),
            }, schema=DECISIONS_SCHEMA), f.file, compression="zstd", row_group_size=_ROW_GROUP)
        self.stat_update("clusters", value=int((status == 0).sum()))
        self.stat_update("documents", value=len(keys))
        yield from ()


def read_decisions(folder, layout: DedupLayout, partitions: int, task: int) -> pa.Table:
    """The decisions on the documents of one filter task, sorted by key."""
    low, high = task << 32, (task + 1) << 32
    tables = []
    for p in range(partitions):
        with folder.open(layout.decisions(p), "rb") as f:
            tables.append(pq.read_table(f, filters=[("key", ">=", low), ("key", "<", high)], schema=DECISIONS_SCHEMA))
    table = pa.concat_tables(tables)
    return table.take(pc.sort_indices(table, [("key", "ascending")]))


def write_clusters_file(folder, layout: DedupLayout, partitions: int) -> None:
    """`layout.clusters`: every document in a cluster of two or more, in input order: id,
    cluster_id (the kept document's id), cluster_size, kept. A streaming merge of the partitions'
    decisions (each sorted by key), a batch of each at a time."""
    with ExitStack() as stack:
        out = stack.enter_context(AtomicFile(folder, layout.clusters))
        writer = stack.enter_context(pq.ParquetWriter(out.file, CLUSTERS_SCHEMA, compression="zstd"))
        batches = [pq.ParquetFile(stack.enter_context(folder.open(layout.decisions(p), "rb"))).iter_batches(_ROW_GROUP)
                   for p in range(partitions)]
        current = [_next_rows(b) for b in batches]
        pending = CLUSTERS_SCHEMA.empty_table()
        while any(c is not None for c in current):
            # Every row up to the smallest of the batches' last keys is here: the partitions are sorted.
            bound = min(c.column("key")[-1].as_py() for c in current if c is not None)
            pieces = []
            for p, rows in enumerate(current):
                if rows is None:
                    continue
                upto = int(np.searchsorted(rows.column("key").to_numpy(), bound, side="right"))
                pieces.append(rows.slice(0, upto))
                current[p] = rows.slice(upto) if upto < rows.num_rows else _next_rows(batches[p])
            table = pa.Table.from_batches(pieces)
            table = table.take(pc.sort_indices(table, [("key", "ascending")]))
            pending = pa.concat_tables([pending, pa.table({
                "id": table.column("id"), "cluster_id": table.column("cluster_id"), "cluster_size": table.column("cluster_size"),
                "kept": pc.equal(table.column("status"), STATUS_KEPT),
            }, schema=CLUSTERS_SCHEMA)])
            while pending.num_rows >= _ROW_GROUP:  # row groups of a fixed size: the file does not depend on the partitions
                writer.write_table(pending.slice(0, _ROW_GROUP))
                pending = pending.slice(_ROW_GROUP)
        if pending.num_rows:
            writer.write_table(pending)


def _next_rows(batches):
    """The next batch with rows, or None at the end."""
    for batch in batches:
        if batch.num_rows:
            return batch
    return None
