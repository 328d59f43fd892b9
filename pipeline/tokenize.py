"""Tokenization into Megatron shards: HF tokenizers in batches, one EOD after each document.

A task's documents fill `shards/<name>_<task>_<part>` in order; a shard is closed before it
would pass `max_shard_tokens` (a document longer than that gets a shard of its own). The
task's shard list, with checksums and counts, goes to the task ledger for the manifest.
"""

from itertools import chain

import numpy as np
from datatrove.pipeline.base import PipelineStep
from datatrove.utils.batching import batched

from pipeline.ledger import write_task_record
from pipeline.shards import ShardWriter, token_dtype

SHARDS_DIR = "shards"


def load_tokenizer(path: str):
    from tokenizers import Tokenizer

    return Tokenizer.from_file(path)


def encode_documents(tokenizer, texts: list[str], eod_id: int) -> tuple[np.ndarray, list[int]]:
    """Token ids of all texts, each followed by EOD, concatenated; and each document's length.

    `encode_batch_fast` skips the character offsets that `encode_batch` computes and we never use."""
    encodings = tokenizer.encode_batch_fast(texts, add_special_tokens=False)
    ids = [e.ids for e in encodings]
    for doc_ids in ids:
        doc_ids.append(eod_id)
    lengths = [len(doc_ids) for doc_ids in ids]
    return np.fromiter(chain.from_iterable(ids), dtype=np.int64, count=sum(lengths)), lengths


class ShardSequence:
    """The shards of one task, filled in document order; each records its first document's source and language."""

    def __init__(self, folder, prefix: str, dtype: np.dtype, max_tokens: int):
        self.folder, self.prefix, self.dtype, self.max_tokens = folder, prefix, dtype, max_tokens
        self.shards: list[dict] = []
        self._writer, self._labels = None, {}

    def write(self, docs, tokens: np.ndarray, lengths: list[int]) -> None:
        start = i = 0  # first token and first document not yet written
        while i < len(docs):
            if self._writer is None:
                self._writer = ShardWriter(self.folder, f"{self.prefix}_{len(self.shards):04d}", self.dtype)
                self._labels = {k: docs[i].metadata.get(k) for k in ("source", "language")}
            # As many documents as fit; at least one, so an oversized document gets a shard of its own.
            j, size, used = i, 0, self._writer.tokens
            while j < len(docs) and (used + size + lengths[j] <= self.max_tokens or (j == i and used == 0)):
                size += lengths[j]
                j += 1
            if j > i:
                self._writer.add_many(tokens[start : start + size], lengths[i:j])
                start, i = start + size, j
            if i < len(docs):
                self._close_shard()

    def _close_shard(self) -> None:
        self.shards.append({**self._writer.close(), **self._labels})
        self._writer = None

    def close(self) -> list[dict]:
        if self._writer is not None:
            self._close_shard()
        return self.shards


class MegatronShardWriter(PipelineStep):
    name = "🔢 Megatron shards"
    type = "🔢 - TOKENIZER"

    def __init__(self, output_folder, name: str, tokenizer_path: str, eod_token: str,
                 max_shard_tokens: int, batch_size: int = 1000):
        super().__init__()
        self.output_folder, self.name_prefix = output_folder, name
        self.tokenizer_path, self.eod_token = tokenizer_path, eod_token
        self.max_shard_tokens, self.batch_size = max_shard_tokens, batch_size

    def run(self, data, rank: int = 0, world_size: int = 1):
        tokenizer = load_tokenizer(self.tokenizer_path)
        eod_id = tokenizer.token_to_id(self.eod_token)
        prefix = f"{SHARDS_DIR}/{self.name_prefix}_{rank:05d}"
        shards = ShardSequence(self.output_folder, prefix, token_dtype(tokenizer.get_vocab_size()), self.max_shard_tokens)
        for batch in batched(data, self.batch_size):
            with self.track_time("batch"):
                tokens, lengths = encode_documents(tokenizer, [doc.text for doc in batch], eod_id)
            shards.write(batch, tokens, lengths)
            self.stat_update("documents", value=len(batch))
            self.stat_update("tokens", value=len(tokens))
        write_task_record(self.output_folder, rank, "tokenize", {"shards": shards.close()})
