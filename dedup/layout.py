"""Where the dedup steps' files are, how a document is numbered across them, and which partition a key belongs to.

A document's key is its global number, `task << 32 | position in the task`: the filter pass's
task (its input file) and the document's place among the task's kept documents. Sorting by key
is input order (input file, then place in the file), which is what "first" means in a cluster.

The passes after the bands exchange edges through `partitions` files per task: an edge's
partition is a hash of one of its keys (`partition_of`), so a task reads only its own share, and
the number of partitions follows the corpus and the memory bound, never the number of workers.
"""

from dataclasses import dataclass

import numpy as np

from dedup.minhash import mix64


@dataclass(frozen=True)
class DedupLayout:
    """Every path the dedup steps share, relative to the run folder: per filter task, in document
    order, the kept documents, MinHash signatures (uint32 rows), text digests (16 bytes each),
    shingle sets and ids (records, each readable alone); per task of the later passes, one edge
    file (uint64 pairs) per partition; per clusters task, its documents' cluster decisions; and
    the run's clusters file, which the manifest names."""

    root: str = "dedup"
    clusters: str = "clusters.parquet"

    def docs(self, task: int) -> str:
        return f"{self.root}/docs/{task:05d}.parquet"

    def signatures(self, task: int) -> str:
        return f"{self.root}/signatures/{task:05d}.bin"

    def digests(self, task: int) -> str:
        return f"{self.root}/digests/{task:05d}.bin"

    def shingles(self, task: int) -> str:
        """Records (`files.RecordsWriter`): each document's distinct shingle hashes, sorted uint32."""
        return f"{self.root}/shingles/{task:05d}"

    def names(self, task: int) -> str:
        """Records: each document's id, UTF-8."""
        return f"{self.root}/names/{task:05d}"

    def filter_files(self, task: int) -> list[str]:
        """Every file the filter pass writes for task `task` (`DedupSignatures`): what the later
        passes read, and what a refilter copies from (the manifest records their sha256)."""
        return [self.docs(task), self.signatures(task), self.digests(task),
                *(base + ext for base in (self.shingles(task), self.names(task)) for ext in (".bin", ".ends"))]

    def edges(self, step: str, task: int, partition: int) -> str:
        """What task `task` of pass `step` hands to partition `partition` of the next pass."""
        return f"{self.root}/edges/{step}/{task:05d}-{partition:05d}.bin"

    def changes(self, step: str, task: int) -> str:
        """How many nodes a connected-components task changed (a number, as text)."""
        return f"{self.root}/edges/{step}/{task:05d}.changes"

    def decisions(self, task: int) -> str:
        """Decisions of clusters task `task`: every document of its clusters, sorted by key."""
        return f"{self.root}/decisions/{task:05d}.parquet"


def document_key(task: int, position: int) -> int:
    return task << 32 | position


def global_ids(task: int, count: int, start: int = 0) -> np.ndarray:
    """The keys of `count` documents of a task from position `start` on."""
    return (np.uint64(task) << np.uint64(32)) | np.arange(start, start + count, dtype=np.uint64)


def task_of(keys: np.ndarray) -> np.ndarray:
    return (keys >> np.uint64(32)).astype(np.int64)


def position_of(keys: np.ndarray) -> np.ndarray:
    return (keys & np.uint64(0xFFFFFFFF)).astype(np.int64)


def partition_of(keys: np.ndarray, partitions: int) -> np.ndarray:
    """A key's partition: the key mixed (SplitMix64), modulo `partitions`, so that the documents
    of one input file spread over all partitions."""
    return (mix64(keys) % np.uint64(partitions)).astype(np.int64)
