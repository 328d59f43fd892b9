"""The middle of deduplication: band buckets, then clusters, between the filter and tokenize stages.

Documents are numbered globally as `task << 32 | position in the task`, which is also the
deterministic order in which "first" is meant: input file, then place in the file.

Bucket stage, one task per band plus one for exact duplicates. Each band's key is its `rows`
signature values (the 16-byte digest for exact duplicates). Keys are spread over as many
partitions as the memory bound needs, written to local temporary files, and each partition is
sorted in memory (a distribution sort: memory is bounded by the setting, not by the corpus).
Equal keys share a bucket; every member after the first gets an edge to the first.

Cluster stage, one task: edges of exact duplicates point at their first copy; near-duplicate
edges, with exact duplicates taken out, are joined into connected components. The kept
representative of a cluster is its first document in the order above; the others are near
duplicates of it. Exact duplicates join their first copy's cluster. Memory grows with the number
of documents that have a duplicate (and one task's id column at a time), not with the corpus.
"""

import math
import os
import tempfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from datatrove.pipeline.base import PipelineStep

from filters.dedup import DEDUP_DIR

DIGEST_COLUMNS = 4  # the 16-byte digest as uint32 columns
# Bytes per record while a partition is sorted: key columns and id, lexsort's index, group scan.
_SORT_BYTES_PER_KEY_COLUMN = 12
_SORT_BYTES_FIXED = 48
SORT_SHARE = 0.5  # of the memory bound, for sorting; the rest is the interpreter, libraries, reading
_READ_ROWS = 1 << 16
STATUS_KEPT, STATUS_EXACT, STATUS_NEAR = "kept", "exact_duplicate", "near_duplicate"


def global_ids(task: int, count: int, start: int = 0) -> np.ndarray:
    """The global ids of `count` documents of a task from position `start` on."""
    return (np.uint64(task) << np.uint64(32)) | np.arange(start, start + count, dtype=np.uint64)


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


def bucket_edges(keys: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """(member, first member) for every member after the first of each group of equal key rows."""
    if len(ids) == 0:
        return np.empty((0, 2), dtype=np.uint64)
    order = np.lexsort((ids, *keys.T[::-1]))
    keys, ids = keys[order], ids[order]
    new_group = np.ones(len(ids), dtype=bool)
    new_group[1:] = np.any(keys[1:] != keys[:-1], axis=1)
    first = ids[np.maximum.accumulate(np.where(new_group, np.arange(len(ids)), 0))]
    return np.stack([ids[~new_group], first[~new_group]], axis=1)


class BucketStage(PipelineStep):
    """Task b < bands: edges of band b; task `bands`: edges of exact duplicates.
    Writes `dedup/edges/<task>.bin` (uint64 pairs)."""

    name = "🪣 LSH buckets"
    type = "🫂 - DEDUP"

    def __init__(self, output_folder, tasks: int, num_perm: int, bands: int, rows: int, memory_mb: int):
        super().__init__()
        self.output_folder, self.tasks = output_folder, tasks
        self.num_perm, self.bands, self.rows, self.memory_mb = num_perm, bands, rows, memory_mb

    def _sources(self, band: int):
        """(file, width, columns) of every filter task's keys for this band."""
        if band == self.bands:
            return [(f"{DEDUP_DIR}/digests/{t:05d}.bin", DIGEST_COLUMNS, slice(None)) for t in range(self.tasks)]
        columns = slice(band * self.rows, (band + 1) * self.rows)
        return [(f"{DEDUP_DIR}/signatures/{t:05d}.bin", self.num_perm, columns) for t in range(self.tasks)]

    def run(self, data, rank: int = 0, world_size: int = 1):
        sources = self._sources(rank)
        width = sources[0][2].stop - sources[0][2].start if rank < self.bands else DIGEST_COLUMNS
        total = sum(_rows(self.output_folder, path, w) for path, w, _ in sources)
        record_bytes = width * _SORT_BYTES_PER_KEY_COLUMN + _SORT_BYTES_FIXED
        partitions = max(1, math.ceil(total * record_bytes / (self.memory_mb * SORT_SHARE * (1 << 20))))
        out = f"{DEDUP_DIR}/edges/{rank:05d}.bin"
        with tempfile.TemporaryDirectory(prefix="aurora-buckets-") as tmp, \
                self.output_folder.open(out + ".tmp", "wb") as edges:
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
                edges.write(bucket_edges(records[:, :width], ids).tobytes())
                self.stat_update("documents", value=len(ids))
        self.output_folder.mv(out + ".tmp", out)
        yield from ()


def _read_edges(folder, task: int) -> np.ndarray:
    with folder.open(f"{DEDUP_DIR}/edges/{task:05d}.bin", "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint64).reshape(-1, 2)


def _lookup(keys: np.ndarray, values: np.ndarray, queries: np.ndarray, default: np.ndarray) -> np.ndarray:
    """values[i] where keys[i] == query (keys sorted), else the default."""
    if len(keys) == 0:
        return default.copy()
    at = np.minimum(np.searchsorted(keys, queries), len(keys) - 1)
    return np.where(keys[at] == queries, values[at], default)


def clusters(exact: np.ndarray, near: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Decisions for every document in a cluster of two or more, sorted by id: id, cluster (the id
    of its kept representative), cluster_size, status, duplicate_of."""
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


def _document_ids(folder, task: int, positions: np.ndarray) -> list[str]:
    """The ids of the task's documents at these positions (the column stays in Arrow's memory)."""
    with folder.open(f"{DEDUP_DIR}/docs/{task:05d}.parquet", "rb") as f:
        column = pq.read_table(f, columns=["id"]).column("id")
    return column.take(pa.array(positions, pa.int64())).to_pylist()


def _write_parquet(folder, path: str, table: pa.Table) -> None:
    with folder.open(path + ".tmp", "wb") as f:
        pq.write_table(table, f, compression="zstd")
    folder.mv(path + ".tmp", path)


CLUSTERS_FILE = "clusters.parquet"


class ClusterStage(PipelineStep):
    """One task: joins every bucket task's edges into clusters; writes `clusters.parquet` (every
    document in a cluster of two or more) and `dedup/decisions/<task>.parquet` for the tokenize stage."""

    name = "🕸️ Clusters"
    type = "🫂 - DEDUP"

    def __init__(self, output_folder, tasks: int, bands: int):
        super().__init__()
        self.output_folder, self.tasks, self.bands = output_folder, tasks, bands

    def run(self, data, rank: int = 0, world_size: int = 1):
        folder = self.output_folder
        decided = clusters(_read_edges(folder, self.bands), [_read_edges(folder, b) for b in range(self.bands)])
        task_of = (decided["id"] >> np.uint64(32)).astype(np.int64)
        position = (decided["id"] & np.uint64(0xFFFFFFFF)).astype(np.int64)
        names: dict[int, str] = {}  # global id -> document id, for every document in a cluster
        needed = np.unique(np.concatenate([decided["id"], decided["cluster"], decided["duplicate_of"]]))
        for task in np.unique((needed >> np.uint64(32)).astype(np.int64)):
            gids = needed[(needed >> np.uint64(32)) == task]
            names.update(zip(gids.tolist(), _document_ids(folder, int(task), (gids & np.uint64(0xFFFFFFFF)).astype(np.int64))))

        def name(values):
            return [names[int(v)] for v in values]

        for task in range(self.tasks):
            mine = task_of == task
            _write_parquet(folder, f"{DEDUP_DIR}/decisions/{task:05d}.parquet", pa.table({
                "index": pa.array(position[mine], pa.int64()),
                "cluster_id": name(decided["cluster"][mine]),
                "cluster_size": pa.array(decided["cluster_size"][mine], pa.int64()),
                "status": pa.array(list(decided["status"][mine]), pa.string()),
                "duplicate_of": name(decided["duplicate_of"][mine]),
            }))
        order = np.lexsort((decided["id"], decided["cluster"]))  # cluster by cluster, members in input order
        _write_parquet(folder, CLUSTERS_FILE, pa.table({
            "id": name(decided["id"][order]),
            "cluster_id": name(decided["cluster"][order]),
            "cluster_size": pa.array(decided["cluster_size"][order], pa.int64()),
            "kept": pa.array(decided["status"][order] == STATUS_KEPT, pa.bool_()),
        }))
        self.stat_update("clusters", value=int((decided["status"] == STATUS_KEPT).sum()))
        yield from ()
