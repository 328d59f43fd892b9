"""The last step of the filter pass: what the later dedup passes read, for each kept document."""

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from datatrove.pipeline.base import PipelineStep
from datatrove.utils.batching import batched

from core.atomic import AtomicFile
from filters.dedup.layout import DedupLayout
from filters.dedup.minhash import MinHasher, exact_digest

DOCS_SCHEMA = pa.schema([("id", pa.string()), ("text", pa.string()), ("metadata", pa.string())])


class DedupSignatures(PipelineStep):
    """Each kept document goes to the layout's `docs`, its MinHash to `signatures` (uint32 rows)
    and its text digest to `digests` (16 bytes per row), all in the task's document order."""

    name = "🫂 MinHash signatures"
    type = "🫂 - DEDUP"

    def __init__(self, output_folder, layout: DedupLayout, language: str, num_perm: int, seed: int, ngram: int,
                 batch_size: int = 1000):
        super().__init__()
        self.output_folder, self.layout, self.batch_size = output_folder, layout, batch_size
        self.hasher = MinHasher(language, num_perm, seed, ngram)

    def run(self, data, rank: int = 0, world_size: int = 1):
        paths = [self.layout.docs(rank), self.layout.signatures(rank), self.layout.digests(rank)]
        with AtomicFile(self.output_folder, paths[0]) as docs_file, \
                AtomicFile(self.output_folder, paths[1]) as signatures, \
                AtomicFile(self.output_folder, paths[2]) as digests, \
                pq.ParquetWriter(docs_file.file, DOCS_SCHEMA, compression="zstd") as docs:
            for batch in batched(data, self.batch_size):
                with self.track_time("batch"):
                    texts = [doc.text for doc in batch]
                    signatures.write(self.hasher.signatures(texts).tobytes())
                    digests.write(b"".join(exact_digest(t) for t in texts))
                    docs.write_table(pa.table({
                        "id": [doc.id for doc in batch],
                        "text": texts,
                        "metadata": [orjson.dumps(doc.metadata, option=orjson.OPT_SORT_KEYS).decode() for doc in batch],
                    }, schema=DOCS_SCHEMA))
                self.stat_update("documents", value=len(batch))
        yield from ()
