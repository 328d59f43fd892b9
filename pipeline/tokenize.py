"""Tokenization into Megatron shards: HF tokenizers in batches, one EOD after each document.

A task's documents fill `shards/<name>_<task>_<part>` in order; a shard is closed before it
would pass `max_shard_tokens` (a document longer than that gets a shard of its own). The
task's shard list, with checksums and counts, goes to the task ledger for the manifest.
"""

from itertools import chain

import numpy as np
from datatrove.pipeline.base import PipelineStep
from datatrove.utils.batching import batched

from core.ledger import write_task_record
from core.shards import ShardSequence, token_dtype
from core.tokenizer import eod_id, load_tokenizer

SHARDS_DIR = "shards"


def encode_documents(tokenizer, texts: list[str], eod: int) -> tuple[np.ndarray, list[int]]:
    """Token ids of all texts, each followed by EOD, concatenated; and each document's length.

    `encode_batch_fast` skips the character offsets that `encode_batch` computes and we never use."""
    encodings = tokenizer.encode_batch_fast(texts, add_special_tokens=False)
    ids = [e.ids for e in encodings]
    for doc_ids in ids:
        doc_ids.append(eod)
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
        eod = eod_id(tokenizer, self.tokenizer_path, self.eod_token)
        prefix = f"{SHARDS_DIR}/{self.name_prefix}_{rank:05d}"
        shards = ShardSequence(self.output_folder, prefix, token_dtype(tokenizer.get_vocab_size()), self.max_shard_tokens)
        for batch in batched(data, self.batch_size):
            with self.track_time("batch"):
                tokens, lengths = encode_documents(tokenizer, [doc.text for doc in batch], eod)
            shards.add(tokens, lengths, [{k: doc.metadata.get(k) for k in ("source", "language")} for doc in batch])
            self.stat_update("documents", value=len(batch))
            self.stat_update("tokens", value=len(tokens))
        write_task_record(self.output_folder, rank, "tokenize", {"shards": shards.close()})
