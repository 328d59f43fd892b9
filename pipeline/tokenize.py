"""Tokenization into Megatron shards: HF tokenizers in batches, one EOD after each document.

A task's documents fill `shards/<name>_<rank>_<part>` in order; a shard is closed before it
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
    """Token ids of all texts, each followed by EOD, concatenated; and each document's length."""
    encodings = tokenizer.encode_batch_fast(texts, add_special_tokens=False)
    ids = [e.ids for e in encodings]
    for doc_ids in ids:
        doc_ids.append(eod_id)
    lengths = [len(doc_ids) for doc_ids in ids]
    return np.fromiter(chain.from_iterable(ids), dtype=np.int64, count=sum(lengths)), lengths


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
        dtype = token_dtype(tokenizer.get_vocab_size())
        shards, writer = [], None
        first_doc = {}  # the source and language of each shard, from its first document

        def open_shard():
            prefix = f"{SHARDS_DIR}/{self.name_prefix}_{rank:05d}_{len(shards):04d}"
            return ShardWriter(self.output_folder, prefix, dtype)

        def close_shard(writer):
            shards.append({**writer.close(), **first_doc})

        for batch in batched(data, self.batch_size):
            with self.track_time("batch"):
                tokens, lengths = encode_documents(tokenizer, [doc.text for doc in batch], eod_id)
            start = 0  # first token of the documents not yet written
            i = 0
            while i < len(batch):
                if writer is None:
                    writer = open_shard()
                    first_doc = {k: batch[i].metadata.get(k) for k in ("source", "language")}
                # Take as many documents as fit; at least one, so an oversized document has its own shard.
                j, size = i, 0
                while j < len(batch) and (
                    writer.tokens + size + lengths[j] <= self.max_shard_tokens or (j == i and writer.tokens == 0)
                ):
                    size += lengths[j]
                    j += 1
                if j > i:
                    writer.add_many(tokens[start : start + size], lengths[i:j])
                    start += size
                    i = j
                if i < len(batch):
                    close_shard(writer)
                    writer = None
            self.stat_update("documents", value=len(batch))
            self.stat_update("tokens", value=len(tokens))
        if writer is not None:
            close_shard(writer)
        write_task_record(self.output_folder, rank, "tokenize", {"shards": shards})
