"""The clusters pass: the bands pass's edges joined into clusters, and what to do with each document.

One task. Edges of exact duplicates point at their first copy; near-duplicate edges, with exact
duplicates taken out, are joined into connected components. The kept representative of a
cluster is its first document by key (input order); the others are near duplicates of it.
Exact duplicates join their first copy's cluster. Memory grows with the number of documents that
have a duplicate (and one task's id column at a time), not with the corpus.
"""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from datatrove.pipeline.base import PipelineStep

from core.atomic import AtomicFile
from filters.dedup.layout import DedupLayout, position_of, task_of

STATUS_KEPT, STATUS_EXACT, STATUS_NEAR = "kept", "exact_duplicate", "near_duplicate"


def _read_edges(folder, path: str) -> np.ndarray:
    with folder.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint64).reshape(-1, 2)


def _lookup(keys: np.ndarray, values: np.ndarray, queries: np.ndarray, default: np.ndarray) -> np.ndarray:
    """values[i] where keys[i] == query (keys sorted), else the default."""
    if len(keys) == 0:
        return default.copy()
    at = np.minimum(np.searchsorted(keys, queries), len(keys) - 1)
    return np.where(keys[at] == queries, values[at], default)


def clusters(exact: np.ndarray, near: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Decisions for every document in a cluster of two or more, sorted by key: id (the key),
    cluster (the key of its kept representative), cluster_size, status, duplicate_of."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    exact_dups, exact_firsts = exact[:, 0], exact[:, 1]
    edges = np.concatenate(near)
    edges = edges[~np.isin(edges, exact_dups).any(axis=1)]
    nodes, index = np.unique(edges, return_inverse=True)
    index = index.reshape(-1, 2)
    graph = coo_matrix((np.ones(len(index), dtype=np.int8), (index[:, 0], index[:, 1])), shape=(len(nodes),) * 2)
    _, labels = connected_components(graph, directed=False)
    representative = np.full(len(nodes), np.iinfo(np.uint64).max, dtype=np.uint64)
    np.minimum.at(representative, labels, nodes)
    node_cluster = representative[labels]

    # Exact duplicates join their first copy's cluster; a first copy in no near cluster leads its own.
    exact_cluster = _lookup(nodes, node_cluster, exact_firsts, exact_firsts)
    lone = np.setdiff1d(exact_firsts, nodes)

    ids = np.concatenate([nodes, exact_dups, lone])
    cluster = np.concatenate([node_cluster, exact_cluster, lone])
    duplicate_of = np.concatenate([node_cluster, exact_firsts, lone])
    status = np.concatenate([
        np.where(nodes == node_cluster, STATUS_KEPT, STATUS_NEAR),
        np.full(len(exact_dups), STATUS_EXACT),
        np.full(len(lone), STATUS_KEPT),
    ])
    order = np.argsort(ids, kind="stable")
    cluster_ids, sizes = np.unique(cluster, return_counts=True)
    return {
        "id": ids[order],
        "cluster": cluster[order],
        "cluster_size": sizes[np.searchsorted(cluster_ids, cluster[order])],
        "status": status[order],
        "duplicate_of": duplicate_of[order],
    }


def _document_ids(folder, path: str, positions: np.ndarray) -> list[str]:
    """The ids of a task's documents at these positions (the column stays in Arrow's memory)."""
    with folder.open(path, "rb") as f:
        column = pq.read_table(f, columns=["id"]).column("id")
    return column.take(pa.array(positions, pa.int64())).to_pylist()


def _write_parquet(folder, path: str, table: pa.Table) -> None:
    with AtomicFile(folder, path) as f:
        pq.write_table(table, f.file, compression="zstd")


class DedupClusters(PipelineStep):
    """One task: joins every bands task's edges into clusters; writes the layout's `clusters` file
    (every document in a cluster of two or more) and, per filter task, its `decisions` (by
    document key) for the tokenize pass."""

    name = "🕸️ Clusters"
    type = "🫂 - DEDUP"

    def __init__(self, output_folder, layout: DedupLayout, tasks: int, bands: int):
        super().__init__()
        self.output_folder, self.layout, self.tasks, self.bands = output_folder, layout, tasks, bands

    def run(self, data, rank: int = 0, world_size: int = 1):
        folder, layout = self.output_folder, self.layout
        decided = clusters(_read_edges(folder, layout.band_edges(self.bands)),
                           [_read_edges(folder, layout.band_edges(b)) for b in range(self.bands)])
        tasks = task_of(decided["id"])
        names: dict[int, str] = {}  # key -> document id, for every document in a cluster
        needed = np.unique(np.concatenate([decided["id"], decided["cluster"], decided["duplicate_of"]]))
        for task in np.unique(task_of(needed)):
            keys = needed[task_of(needed) == task]
            names.update(zip(keys.tolist(), _document_ids(folder, layout.docs(int(task)), position_of(keys))))

        def name(values):
            return [names[int(v)] for v in values]

        for task in range(self.tasks):
            mine = tasks == task
            _write_parquet(folder, layout.decisions(task), pa.table({
                "key": pa.array(decided["id"][mine], pa.uint64()),
                "cluster_id": name(decided["cluster"][mine]),
                "cluster_size": pa.array(decided["cluster_size"][mine], pa.int64()),
                "status": pa.array(list(decided["status"][mine]), pa.string()),
                "duplicate_of": name(decided["duplicate_of"][mine]),
            }))
        order = np.lexsort((decided["id"], decided["cluster"]))  # cluster by cluster, members in input order
        _write_parquet(folder, layout.clusters, pa.table({
            "id": name(decided["id"][order]),
            "cluster_id": name(decided["cluster"][order]),
            "cluster_size": pa.array(decided["cluster_size"][order], pa.int64()),
            "kept": pa.array(decided["status"][order] == STATUS_KEPT, pa.bool_()),
        }))
        self.stat_update("clusters", value=int((decided["status"] == STATUS_KEPT).sum()))
        yield from ()
