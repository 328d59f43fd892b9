"""Where the dedup steps' files are, and how a document is numbered across them.

A document's key is its global number, `task << 32 | position in the task`: the filter pass's
task (its input file) and the document's place among the task's kept documents. Sorting by key
is input order (input file, then place in the file), which is what "first" means in a cluster.
"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DedupLayout:
    """Every path the dedup steps share, relative to the run folder. Per task, in document order:
    the filter pass's kept documents, MinHash signatures (uint32 rows) and text digests (16 bytes
    each); per task of the bands pass, its edges (uint64 pairs); per filter task, the decisions of
    the clusters pass; and the run's clusters file, which the manifest names."""

    root: str = "dedup"
    clusters: str = "clusters.parquet"

    def docs(self, task: int) -> str:
        return f"{self.root}/docs/{task:05d}.parquet"

    def signatures(self, task: int) -> str:
        return f"{self.root}/signatures/{task:05d}.bin"

    def digests(self, task: int) -> str:
        return f"{self.root}/digests/{task:05d}.bin"

    def band_edges(self, task: int) -> str:
        """Edges of a bands-pass task: band `task`, or the exact duplicates for the last task."""
        return f"{self.root}/bands/{task:05d}.bin"

    def decisions(self, task: int) -> str:
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
