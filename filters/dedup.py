"""Deduplication at the document level: MinHash signatures in, duplicate decisions out.

Shingles are word n-grams (n = 5 by default) of the lower-cased normalized text; Japanese,
which has no spaces, uses character n-grams. Each word is hashed once per batch (BLAKE2b), and
n-gram hashes are combined from word hashes with numpy, so no Python code runs per shingle.
The MinHash itself is datasketch's `affine32` scheme (its seeded permutations and its MurmurHash3
pre-mix), applied to a whole batch of documents at once; a test checks that each signature is
the one datasketch's `MinHash.update_batch` gives on the same shingle hashes.

The exact-duplicate key is the 128-bit BLAKE2b digest of the normalized text.
"""

import hashlib
import io

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from datasketch import MinHash
from datasketch.lsh import _optimal_param
from datasketch.minhash import _fmix
from datatrove.data import Document
from datatrove.pipeline.base import PipelineStep
from datatrove.utils.batching import batched

from core.text import words
from filters.base import RecordedFilter

DEDUP_DIR = "dedup"
DOCS_SCHEMA = pa.schema([("id", pa.string()), ("text", pa.string()), ("metadata", pa.string())])
_NGRAM_MULTIPLIER = np.uint64(0x100000001B3)  # FNV-1a's 64-bit prime: mixes each position in
_SHINGLES_PER_CHUNK = 1 << 14  # shingles x num_perm uint32 values in flight: 8 MiB at 128 perms


def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """Bands and rows that datasketch's `MinHashLSH` would choose for this threshold (equal weights)."""
    return _optimal_param(threshold, num_perm, 0.5, 0.5)


def exact_digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


def _word_hash(word: str) -> int:
    return int.from_bytes(hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest(), "little")


class MinHasher:
    """Shingle hashes and MinHash signatures of a batch of documents, for one language."""

    def __init__(self, language: str, num_perm: int = 128, seed: int = 1, ngram: int = 5):
        self.language, self.num_perm, self.seed, self.ngram = language, num_perm, seed, ngram
        a, b = MinHash(num_perm=num_perm, seed=seed, scheme="affine32").permutations
        self.a, self.b = a.astype(np.uint32), b.astype(np.uint32)

    def _units(self, text: str, cache: dict) -> np.ndarray:
        """One uint64 per word (per character for ja): the sequence the n-grams are taken over."""
        if self.language == "ja":
            return np.frombuffer(text.lower().encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
        units = []
        for word in words(text.lower(), self.language):
            value = cache.get(word)
            if value is None:
                value = cache[word] = _word_hash(word)
            units.append(value)
        return np.array(units, dtype=np.uint64)

    def shingle_hashes(self, text: str, cache: dict | None = None) -> np.ndarray:
        """The 32-bit hash of every n-gram; a text shorter than n is one shingle, the whole of it."""
        units = self._units(text, {} if cache is None else cache)
        if len(units) < self.ngram:
            units = np.array([_word_hash(text)], dtype=np.uint64) if len(units) == 0 else units
            count, n = 1, len(units)
        else:
            count, n = len(units) - self.ngram + 1, self.ngram
        combined = np.zeros(count, dtype=np.uint64)
        for k in range(n):
            combined = combined * _NGRAM_MULTIPLIER + units[k : k + count]
        return (combined >> np.uint64(32)).astype(np.uint32)

    def signatures(self, texts: list[str]) -> np.ndarray:
        """(documents, num_perm) uint32: each row is datasketch's MinHash of that text's shingles."""
        cache: dict = {}
        shingles = [self.shingle_hashes(t, cache) for t in texts]
        out = np.empty((len(texts), self.num_perm), dtype=np.uint32)
        start = 0
        while start < len(texts):
            end, total = start, 0
            while end < len(texts) and (end == start or total + len(shingles[end]) <= _SHINGLES_PER_CHUNK):
                total += len(shingles[end])
                end += 1
            hv = _fmix(np.concatenate(shingles[start:end]), 32)[:, None]
            permuted = hv * self.a + self.b  # wraps modulo 2^32, as datasketch's affine32 does
            offsets = np.cumsum([0] + [len(s) for s in shingles[start : end - 1]])
            out[start:end] = np.minimum.reduceat(permuted, offsets, axis=0)
            start = end
        return out


class DedupSignatures(PipelineStep):
    """Last step of the filter stage: each kept document goes to `dedup/docs/<rank>.parquet`, its
    MinHash to `dedup/signatures/<rank>.bin` (uint32 rows) and its text digest to
    `dedup/digests/<rank>.bin` (16 bytes per row), all in the task's document order."""

    name = "🫂 MinHash signatures"
    type = "🫂 - DEDUP"

    def __init__(self, output_folder, language: str, num_perm: int, seed: int, ngram: int, batch_size: int = 1000):
        super().__init__()
        self.output_folder, self.batch_size = output_folder, batch_size
        self.hasher = MinHasher(language, num_perm, seed, ngram)

    def run(self, data, rank: int = 0, world_size: int = 1):
        paths = {kind: f"{DEDUP_DIR}/{kind}/{rank:05d}.{ext}" for kind, ext in
                 (("docs", "parquet"), ("signatures", "bin"), ("digests", "bin"))}
        with self.output_folder.open(paths["docs"] + ".tmp", "wb") as docs_file, \
                self.output_folder.open(paths["signatures"] + ".tmp", "wb") as signatures, \
                self.output_folder.open(paths["digests"] + ".tmp", "wb") as digests, \
                pq.ParquetWriter(docs_file, DOCS_SCHEMA, compression="zstd") as docs:
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
        for path in paths.values():
            self.output_folder.mv(path + ".tmp", path)
        yield from ()


class DedupDocsReader(PipelineStep):
    """First step of the tokenize stage: the filter stage's kept documents of this task, in order."""

    name = "📖 Filtered documents"
    type = "📖 - READER"

    def __init__(self, output_folder, batch_rows: int = 1000):
        super().__init__()
        self.output_folder, self.batch_rows = output_folder, batch_rows

    def run(self, data, rank: int = 0, world_size: int = 1):
        with self.output_folder.open(f"{DEDUP_DIR}/docs/{rank:05d}.parquet", "rb") as f:
            for batch in pq.ParquetFile(f).iter_batches(batch_size=self.batch_rows):
                for row in batch.to_pylist():
                    yield Document(text=row["text"], id=row["id"], metadata=orjson.loads(row["metadata"]))


def read_decisions(folder, rank: int) -> dict[int, dict]:
    """This task's rows of the cluster stage's decisions, by document index."""
    with folder.open(f"{DEDUP_DIR}/decisions/{rank:05d}.parquet", "rb") as f:
        table = pq.read_table(io.BytesIO(f.read()))
    return {row.pop("index"): row for row in table.to_pylist()}


class DedupFilter(RecordedFilter):
    """Removes exact and near duplicates as the cluster stage decided; kept documents get their
    cluster (the id of its kept representative) and its size in metadata."""

    name = "🫂 Dedup"
    step = "dedup"

    def run(self, data, rank: int = 0, world_size: int = 1):
        self._decisions = read_decisions(self.output_folder, rank)
        self._index = 0
        yield from super().run(data, rank, world_size)

    def filter(self, doc: Document):
        decision = self._decisions.get(self._index)
        self._index += 1
        if decision is None:  # in no cluster: its own
            doc.metadata.update(cluster_id=doc.id, cluster_size=1)
            return True
        doc.metadata.update(cluster_id=decision["cluster_id"], cluster_size=decision["cluster_size"])
        if decision["status"] == "kept":
            return True
        doc.metadata["duplicate_of"] = decision["duplicate_of"]
        return False, decision["status"]
