"""The stage's shards as megatron-core datasets, and which language each trained token came from.

Training: `BlendedMegatronDatasetBuilder` over the stage shards, each weighted by its share of the
stage's tokens, makes one `GPTDataset` per shard (documents cut into sequences of
`sequence_length + 1` tokens, shuffled with the seed) and a `BlendedDataset` over them; megatron
writes its index caches under the run folder. Validation: one `GPTDataset` per language over the
stage's held-out `validation/<component>` shards.

Each sample also reports how many of its predicted tokens belong to each language: the sample's
documents (megatron's own document ids) are split at their EOD tokens and looked up in the stage
shard's lineage, which names each document's component.
"""

import os
import warnings
from collections import Counter

import numpy as np
import pyarrow.parquet as pq
import torch

with warnings.catch_warnings():  # megatron-core warns that Apex and Transformer Engine are absent: fine
    warnings.simplefilter("ignore")
    from megatron.core.datasets.blended_megatron_dataset_builder import BlendedMegatronDatasetBuilder
    from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig


class _Tokenizer:
    """What megatron's GPTDataset asks of a tokenizer: the EOD id, the vocabulary size and an
    identity for its cache names."""

    def __init__(self, eod: int, vocab_size: int):
        self.eod, self.vocab_size = eod, vocab_size
        self.unique_identifiers = {"class": "aurora", "eod": eod, "vocab_size": vocab_size}


def _config(seed: int, sequence_length: int, tokenizer: _Tokenizer, blend, split: str, cache: str) -> GPTDatasetConfig:
    return GPTDatasetConfig(
        random_seed=seed, sequence_length=sequence_length, blend=blend, split=split, path_to_cache=cache,
        tokenizer=tokenizer, reset_position_ids=False, reset_attention_mask=False, eod_mask_loss=False,
        create_attention_mask=False,
    )


class StageData:
    """Training samples of a stage (with their tokens per language) and validation samples per language."""

    def __init__(self, manifest: dict, folder: str, sequence_length: int, seed: int, samples: int, cache: str):
        self.eod = manifest["tokenizer"]["eod_id"]
        tokenizer = _Tokenizer(self.eod, manifest["tokenizer"]["vocab_size"])
        shards = manifest["shards"]
        prefixes = [os.path.join(folder, s["prefix"]) for s in shards]
        weights = [s["tokens"] / manifest["totals"]["tokens"] for s in shards]
        config = _config(seed, sequence_length, tokenizer, (prefixes, weights), "1,0,0", cache)
        self.train = BlendedMegatronDatasetBuilder(GPTDataset, [samples, 0, 0], lambda: True, config).build()[0]
        languages = [c["language"] for c in manifest["components"]]
        self.languages = sorted(set(languages))
        # Per stage shard, the language of each document (from its lineage).
        self.document_languages = [
            np.array(languages)[pq.read_table(os.path.join(folder, s["lineage"]["path"]), columns=["component"])
                                .column("component").to_numpy()]
            for s in shards
        ]
        self.validation = {}
        for shard in manifest["validation"]:
            blend = ([os.path.join(folder, shard["prefix"])], None)
            built = BlendedMegatronDatasetBuilder(
                GPTDataset, [0, None, 0], lambda: True, _config(seed, sequence_length, tokenizer, blend, "0,1,0", cache)
            ).build()
            self.validation.setdefault(shard["language"], []).append(built[1])

    def sample(self, index: int) -> tuple[np.ndarray, Counter]:
        """A training sample's `sequence_length + 1` tokens and the language of each predicted token, counted."""
        dataset_id = int(self.train.dataset_index[index])
        dataset = self.train.datasets[dataset_id]
        tokens, documents = dataset._query_document_sample_shuffle_indices(int(self.train.dataset_sample_index[index]))
        return tokens, self._languages(tokens, documents, self.document_languages[dataset_id])

    def _languages(self, tokens: np.ndarray, documents: np.ndarray, languages: np.ndarray) -> Counter:
        # Document k of the sample ends at its EOD (the last may be cut off by the sample's end).
        ends = list(np.flatnonzero(tokens == self.eod)[: len(documents) - 1]) + [len(tokens) - 1]
        counts, start = Counter(), 1  # position 0 is only an input, never predicted
        for document, end in zip(documents, ends):
            if end >= start:
                counts[str(languages[document])] += int(end - start + 1)
            start = max(start, end + 1)
        return counts

    def batch(self, indices: list[int]) -> tuple[torch.Tensor, Counter]:
        """Token ids [batch, sequence_length + 1] of these training samples, and tokens per language."""
        rows, counts = [], Counter()
        for index in indices:
            tokens, languages = self.sample(index)
            rows.append(torch.from_numpy(tokens.astype(np.int64)))
            counts.update(languages)
        return torch.stack(rows), counts

    def validation_batches(self, language: str, sequences: int, batch_size: int):
        """The first `sequences` validation samples of a language, in batches."""
        items = ((d, i) for d in self.validation[language] for i in range(len(d)))
        taken = [d[i] for _, (d, i) in zip(range(sequences), items)]
        for start in range(0, len(taken), batch_size):
            chunk = taken[start : start + batch_size]
            yield torch.stack([s["tokens"] for s in chunk]), torch.stack([s["labels"] for s in chunk])
