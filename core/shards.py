"""Megatron indexed-dataset shards: `<prefix>.bin` holds the tokens, `<prefix>.idx` the index.

Layout of `.idx` (MMIDIDX version 1, as megatron-core's IndexedDataset reads it): 9-byte magic,
u64 version, u8 dtype code, u64 sequence count, u64 document count, then int32 sequence
lengths, int64 byte pointers and int64 document indices. One sequence is one document here.

`ShardSequence` holds the one rule by which shards roll over, for curation, instruction pools and
stages alike: documents fill `<prefix>_NNNN` in order, and a shard is closed before it would pass
`max_tokens` (a document longer than that gets a shard of its own).
"""

import hashlib
import struct
from dataclasses import dataclass

import numpy as np

from core.atomic import AtomicFile, write_atomic

INDEX_MAGIC = b"MMIDIDX\x00\x00"
INDEX_VERSION = 1
# Megatron's dtype codes.
DTYPE_CODES = {np.dtype(np.uint8): 1, np.dtype(np.int32): 4, np.dtype(np.int64): 5, np.dtype(np.uint16): 8}
CODE_DTYPES = {code: dtype for dtype, code in DTYPE_CODES.items()}
_HEADER = struct.Struct("<9sQBQQ")
INDEX_HEADER_BYTES = _HEADER.size


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 when every token id fits, int32 otherwise (Megatron's own rule)."""
    return np.dtype(np.uint16 if vocab_size <= 65536 else np.int32)


def encode_index(lengths: np.ndarray, dtype: np.dtype) -> bytes:
    lengths = np.asarray(lengths, dtype=np.int32)
    pointers = np.zeros(len(lengths), dtype=np.int64)
    if len(lengths):
        np.cumsum(lengths[:-1].astype(np.int64) * dtype.itemsize, out=pointers[1:])
    document_indices = np.arange(len(lengths) + 1, dtype=np.int64)
    header = _HEADER.pack(INDEX_MAGIC, INDEX_VERSION, DTYPE_CODES[dtype], len(lengths), len(document_indices))
    return header + lengths.tobytes() + pointers.tobytes() + document_indices.tobytes()


@dataclass
class ShardIndex:
    dtype: np.dtype
    lengths: np.ndarray
    pointers: np.ndarray
    document_indices: np.ndarray

    def read(self, f, document: int) -> bytes:
        """One document's token bytes from the shard's open `.bin` file."""
        f.seek(int(self.pointers[document]))
        return f.read(int(self.lengths[document]) * self.dtype.itemsize)


def decode_index(data: bytes) -> ShardIndex:
    """Parse an `.idx` file; raises ValueError with the reason when it is not a valid index."""
    if len(data) < _HEADER.size:
        raise ValueError("index shorter than its header")
    magic, version, code, n_seq, n_doc = _HEADER.unpack_from(data)
    if magic != INDEX_MAGIC:
        raise ValueError("index has a wrong magic header")
    if version != INDEX_VERSION:
        raise ValueError(f"index version {version} is not {INDEX_VERSION}")
    if code not in CODE_DTYPES:
        raise ValueError(f"index has unknown dtype code {code}")
    expected = _HEADER.size + 4 * n_seq + 8 * n_seq + 8 * n_doc
    if len(data) != expected:
        raise ValueError(f"index is {len(data)} bytes, its header implies {expected}")
    offset = _HEADER.size
    lengths = np.frombuffer(data, np.int32, n_seq, offset)
    pointers = np.frombuffer(data, np.int64, n_seq, offset + 4 * n_seq)
    document_indices = np.frombuffer(data, np.int64, n_doc, offset + 12 * n_seq)
    return ShardIndex(CODE_DTYPES[code], lengths, pointers, document_indices)


class ShardWriter:
    """Streams documents into one shard under temporary names; `close` renames them into place.

    `folder` is an fsspec filesystem rooted at the output (datatrove's DataFolder), so the same
    code writes local folders and s3:// buckets.
    """

    def __init__(self, folder, prefix: str, dtype: np.dtype):
        self.folder, self.prefix, self.dtype = folder, prefix, dtype
        self.lengths: list[int] = []
        self.tokens = 0
        self._bin_sha = hashlib.sha256()
        self._bin = AtomicFile(folder, f"{prefix}.bin")

    def add(self, tokens: np.ndarray) -> None:
        """Append one document's tokens (EOD included)."""
        data = tokens.astype(self.dtype, copy=False).tobytes()
        self._bin.write(data)
        self._bin_sha.update(data)
        self.lengths.append(len(tokens))
        self.tokens += len(tokens)

    def add_many(self, tokens: np.ndarray, lengths: list[int]) -> None:
        """Append several documents at once: their tokens concatenated, and each one's length."""
        data = tokens.astype(self.dtype, copy=False).tobytes()
        self._bin.write(data)
        self._bin_sha.update(data)
        self.lengths.extend(lengths)
        self.tokens += len(tokens)

    def close(self) -> dict:
        index = encode_index(np.array(self.lengths, dtype=np.int32), self.dtype)
        self._bin.commit()  # the index last: a shard whose .idx exists is complete
        write_atomic(self.folder, f"{self.prefix}.idx", index)
        return {
            "prefix": self.prefix,
            "bin_sha256": self._bin_sha.hexdigest(),
            "idx_sha256": hashlib.sha256(index).hexdigest(),
            "documents": len(self.lengths),
            "tokens": self.tokens,
        }


class ShardSequence:
    """The shards of one writer (a curation task, a pool, a stage part), filled in document order.

    Each shard records the labels of its first document (e.g. source and language); `on_close`,
    when given, is called with each closed shard's record and returns fields to add to it (a
    stage's lineage file)."""

    def __init__(self, folder, prefix: str, dtype: np.dtype, max_tokens: int, on_close=None):
        self.folder, self.prefix, self.dtype, self.max_tokens = folder, prefix, dtype, max_tokens
        self.on_close = on_close
        self.shards: list[dict] = []
        self._writer, self._labels = None, {}

    def add(self, tokens: np.ndarray, lengths: list[int], labels: list[dict]) -> None:
        """Append documents: their tokens concatenated, each one's length and labels."""
        start = i = 0  # first token and first document not yet written
        while i < len(lengths):
            if self._writer is None:
                self._writer = ShardWriter(self.folder, f"{self.prefix}_{len(self.shards):04d}", self.dtype)
                self._labels = dict(labels[i])
            # As many documents as fit; at least one, so an oversized document gets a shard of its own.
            j, size, used = i, 0, self._writer.tokens
            while j < len(lengths) and (used + size + lengths[j] <= self.max_tokens or (j == i and used == 0)):
                size += lengths[j]
                j += 1
            if j > i:
                self._writer.add_many(tokens[start : start + size], lengths[i:j])
                start, i = start + size, j
            if i < len(lengths):
                self._close_shard()

    def _close_shard(self) -> None:
        shard = {**self._writer.close(), **self._labels}
        if self.on_close is not None:
            shard.update(self.on_close(shard))
        self.shards.append(shard)
        self._writer = None

    def close(self) -> list[dict]:
        if self._writer is not None:
            self._close_shard()
        return self.shards
