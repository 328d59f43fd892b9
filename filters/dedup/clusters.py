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

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from datatrove.pipeline.base import PipelineStep

from core.atomic import AtomicFile
from filters.dedup.files import read_edges, read_rows
from filters.dedup.layout import DedupLayout, partition_of, position_of, task_of

STATUS_KEPT, STATUS_EXACT, STATUS_NEAR = "kept", "exact_duplicate", "near_duplicate"
DECISIONS_SCHEMA = pa.schema([("key", pa.uint64()), ("id", pa.string()), ("cluster_id", pa.string()),
                              ("cluster_size", pa.int64()), ("status", pa.string())])
_ROW_GROUP = 1 << 16  # rows; a filter task's key range skips the others by their statistics


def decide(stars: np.ndarray, digests: dict[int, bytes] | None = None) -> dict[str, np.ndarray]:
    """Decisions for every node of these stars (leaf, centre), sorted by key: key, cluster (the
    centre), cluster_size and status. `digests` (key -> text digest) tells exact duplicates apart."""
    centres = np.unique(stars[:, 1])
    keys = np.concatenate([centres, stars[:, 0]])
    cluster = np.concatenate([centres, stars[:, 1]])
    order = np.argsort(keys, kind="stable")
    keys, cluster = keys[order], cluster[order]
    cluster_keys, sizes = np.unique(cluster, return_counts=True)
    status = np.where(keys == cluster, STATUS_KEPT, STATUS_NEAR).astype(object)
    if digests is not None:
        seen = set()
        for i in np.lexsort((keys, cluster)):  # cluster by cluster, in input order
            text = (int(cluster[i]), digests[int(keys[i])])
            if text in seen:
                status[i] = STATUS_EXACT
            seen.add(text)
    return {"key": keys, "cluster": cluster, "cluster_size": sizes[np.searchsorted(cluster_keys, cluster)], "status": status}


def document_names(folder, layout: DedupLayout, keys: np.ndarray) -> dict[int, str]:
    """The document ids of these keys, one filter task's id column at a time."""
    names = {}
    for task in np.unique(task_of(keys)):
        mine = keys[task_of(keys) == task]
        with folder.open(layout.docs(int(task)), "rb") as f:
            column = pq.read_table(f, columns=["id"]).column("id")
        names.update(zip(mine.tolist(), column.take(pa.array(position_of(mine), pa.int64())).to_pylist()))
    return names


def text_digests(folder, layout: DedupLayout, keys: np.ndarray) -> dict[int, bytes]:
    digests = {}
    for task in np.unique(task_of(keys)):
        mine = keys[task_of(keys) == task]
        rows = read_rows(folder, layout.digests(int(task)), 16, position_of(mine))
        digests.update(zip(mine.tolist(), map(bytes, rows)))
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
        stars = edges[partition_of(edges[:, 1], self.partitions) == rank]
        decided = decide(stars, text_digests(folder, layout, np.unique(stars)))
        names = document_names(folder, layout, decided["key"])
        with AtomicFile(folder, layout.decisions(rank)) as f:
            pq.write_table(pa.table({
                "key": pa.array(decided["key"], pa.uint64()),
                "id": [names[k] for k in decided["key"].tolist()],
                "cluster_id": [names[k] for k in decided["cluster"].tolist()],
                "cluster_size": pa.array(decided["cluster_size"], pa.int64()),
                "status": pa.array(decided["status"].tolist(), pa.string()),
            }, schema=DECISIONS_SCHEMA), f.file, compression="zstd", row_group_size=_ROW_GROUP)
        self.stat_update("clusters", value=int((decided["status"] == STATUS_KEPT).sum()))
        self.stat_update("documents", value=len(decided["key"]))
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


def write_clusters_file(folder, layout: DedupLayout, partitions: int, tasks: int) -> None:
    """`layout.clusters`: every document in a cluster of two or more, in input order: id,
    cluster_id (the kept document's id), cluster_size, kept. Written a filter task at a time."""
    schema = pa.schema([("id", pa.string()), ("cluster_id", pa.string()), ("cluster_size", pa.int64()), ("kept", pa.bool_())])
    with AtomicFile(folder, layout.clusters) as f, pq.ParquetWriter(f.file, schema, compression="zstd") as writer:
        for task in range(tasks):
            table = read_decisions(folder, layout, partitions, task)
            if table.num_rows == 0:
                continue
            writer.write_table(pa.table({
                "id": table.column("id"), "cluster_id": table.column("cluster_id"),
                "cluster_size": table.column("cluster_size"), "kept": pc.equal(table.column("status"), STATUS_KEPT),
            }, schema=schema))
