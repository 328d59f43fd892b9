"""The start of the tokenize pass: the filter pass's kept documents, then the clusters pass's decisions.

`DedupDocuments` puts each document's key on it (`metadata["dedup_key"]`); `DedupFilter` looks
the document's decision (from the clusters pass) up by that key, whatever order the documents
come in, and takes the key off a document it removes (its reject records what the filter pass
did). A kept document keeps it to the shard writer: in a refilter, the key finds its row in the
replayed run (`pipeline.tokenize.TaskTokens`).
"""

import orjson
import pyarrow.parquet as pq
from datatrove.data import Document
from datatrove.pipeline.base import PipelineStep

from core.text import WORD_COUNT
from dedup.clusters import STATUS_KEPT, read_decisions
from dedup.layout import DedupLayout, document_key
from filters.base import RecordedFilter

KEY = "dedup_key"


class DedupDocuments(PipelineStep):
    """The filter pass's kept documents of this task, each with its key in `metadata["dedup_key"]`
    and its number of words in `metadata[WORD_COUNT]` (for the shard writer)."""

    name = "📖 Filtered documents"
    type = "📖 - READER"

    def __init__(self, output_folder, layout: DedupLayout, batch_rows: int = 1000):
        super().__init__()
        self.output_folder, self.layout, self.batch_rows = output_folder, layout, batch_rows

    def run(self, data, rank: int = 0, world_size: int = 1):
        position = 0
        with self.output_folder.open(self.layout.docs(rank), "rb") as f:
            for batch in pq.ParquetFile(f).iter_batches(batch_size=self.batch_rows):
                for row in batch.to_pylist():
                    metadata = orjson.loads(row["metadata"])
                    metadata[KEY] = document_key(rank, position)
                    if row.get("words") is not None:  # a file of an earlier version has none: the shard writer counts them
                        metadata[WORD_COUNT] = row["words"]
                    position += 1
                    yield Document(text=row["text"], id=row["id"], metadata=metadata)


class DedupFilter(RecordedFilter):
    """Removes exact and near duplicates as the clusters pass decided; kept documents get their
    cluster (the id of its kept representative) and its size in metadata."""

    name = "🫂 Dedup"
    step = "dedup"

    def __init__(self, output_folder, layout: DedupLayout, partitions: int):
        super().__init__(output_folder)
        self.layout, self.partitions = layout, partitions

    def run(self, data, rank: int = 0, world_size: int = 1):
        table = read_decisions(self.output_folder, self.layout, self.partitions, rank)
        self._decisions = {row.pop("key"): row for row in table.to_pylist()}
        yield from super().run(data, rank, world_size)

    def filter(self, doc: Document):
        if KEY not in doc.metadata:
            raise ValueError(f"document {doc.id} has no {KEY!r}: DedupFilter takes its documents from DedupDocuments")
        decision = self._decisions.get(doc.metadata[KEY])
        if decision is None:  # in no cluster: its own
            doc.metadata.update(cluster_id=doc.id, cluster_size=1)
            return True
        doc.metadata.update(cluster_id=decision["cluster_id"], cluster_size=decision["cluster_size"])
        if decision["status"] == STATUS_KEPT:
            return True
        doc.metadata["duplicate_of"] = decision["cluster_id"]
        del doc.metadata[KEY]
        doc.metadata.pop(WORD_COUNT, None)  # the shard writer's; a duplicate's reject records what the filter pass did
        return False, decision["status"]
