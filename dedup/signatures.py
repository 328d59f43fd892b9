"""The last step of the filter pass: what the later dedup passes read, for each kept document."""

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from datatrove.pipeline.base import PipelineStep
from datatrove.utils.batching import batched

from core.atomic import AtomicFile
from core.text import words
from dedup.files import RecordsWriter, read_records, read_rows
from dedup.layout import DedupLayout, position_of, task_of
from dedup.minhash import MinHasher, exact_digest
from filters.base import SIGNALS

DOCS_SCHEMA = pa.schema([("id", pa.string()), ("text", pa.string()), ("metadata", pa.string()), ("words", pa.int64())])


class DedupSignatures(PipelineStep):
    """Each kept document goes to the layout's `docs` (with its number of words, for the shard
    writer's fertility in the tokenize pass: `core.text.WORD_COUNT`), its MinHash to `signatures` (uint32 rows),
    its text digest to `digests` (16 bytes per row), its id to `names` and, with `shingle_sets`,
    its distinct shingle hashes to `shingles` (what verification by shingles compares), all in the
    task's document order.

    In a refilter (`stored_folder`, the replayed run's folder), a document's signature, digest and
    shingle set are that run's, copied by the key the document had there (its `DocumentSignals.stored_key`),
    and so is its number of words: nothing is hashed or counted again, and the rows are the bytes
    a full run writes."""

    name = "🫂 MinHash signatures"
    type = "🫂 - DEDUP"

    def __init__(self, output_folder, layout: DedupLayout, language: str, num_perm: int, seed: int, ngram: int,
                 batch_size: int = 1000, shingle_sets: bool = True, stored_folder=None):
        super().__init__()
        self.output_folder, self.layout, self.batch_size, self.shingle_sets = output_folder, layout, batch_size, shingle_sets
        self.hasher, self.language = MinHasher(language, num_perm, seed, ngram), language
        self.stored_folder = stored_folder
        self._stored_words = (None, None)  # (task, the replayed run's word counts of its documents)

    def run(self, data, rank: int = 0, world_size: int = 1):
        layout, folder = self.layout, self.output_folder
        with AtomicFile(folder, layout.docs(rank)) as docs_file, AtomicFile(folder, layout.signatures(rank)) as signatures, \
                AtomicFile(folder, layout.digests(rank)) as digests, RecordsWriter(folder, layout.shingles(rank)) as shingles, \
                RecordsWriter(folder, layout.names(rank)) as names, \
                pq.ParquetWriter(docs_file.file, DOCS_SCHEMA, compression="zstd") as docs:
            for batch in batched(data, self.batch_size):
                with self.track_time("batch"):
                    stored_keys = [getattr(doc.metadata.pop(SIGNALS, None), "stored_key", None) for doc in batch]
                    texts, counts = [doc.text for doc in batch], None
                    if self.stored_folder is None:
                        cache: dict = {}
                        units = [self.hasher.units(t, cache) for t in texts]
                        hashes = [self.hasher.shingles(t, u) for t, u in zip(texts, units)]
                        if self.language != "ja":  # one unit per word (MinHasher.units)
                            counts = [len(u) for u in units]
                        signatures.write(self.hasher.signatures_of(hashes).tobytes())
                        digests.write(b"".join(exact_digest(t) for t in texts))
                        if self.shingle_sets:
                            shingles.write([np.unique(h).tobytes() for h in hashes])
                    else:
                        counts = self._copy_stored(batch, stored_keys, signatures, digests, shingles)
                    names.write([doc.id.encode("utf-8") for doc in batch])
                    docs.write_table(pa.table({
                        "id": [doc.id for doc in batch],
                        "text": texts,
                        "metadata": [orjson.dumps(doc.metadata, option=orjson.OPT_SORT_KEYS).decode() for doc in batch],
                        "words": counts or [len(words(t, self.language)) for t in texts],
                    }, schema=DOCS_SCHEMA))
                self.stat_update("documents", value=len(batch))
        yield from ()

    def _copy_stored(self, batch, keys: list, signatures, digests, shingles) -> list[int]:
        """The replayed run's rows of these documents, which all come from one of its tasks (this
        one); returns their word counts, from its documents file (the same texts: for ja, counting
        them again would segment every text)."""
        if any(key is None for key in keys):
            doc = batch[keys.index(None)]
            raise ValueError(f"document {doc.id} never reached dedup in the replayed run: it has no MinHash signature")
        keys = np.array(keys, dtype=np.uint64)
        task, positions = int(task_of(keys[:1])[0]), position_of(keys)
        folder, layout = self.stored_folder, self.layout
        signatures.write(read_rows(folder, layout.signatures(task), 4 * self.hasher.num_perm, positions).tobytes())
        digests.write(read_rows(folder, layout.digests(task), 16, positions).tobytes())
        if self.shingle_sets:
            shingles.write(read_records(folder, layout.shingles(task), positions))
        if self._stored_words[0] != task:
            with folder.open(layout.docs(task), "rb") as f:
                self._stored_words = task, pq.read_table(f, columns=["words"]).column("words").to_numpy()
        return self._stored_words[1][positions].tolist()
