"""Tokenization into Megatron shards: HF tokenizers in batches, one EOD after each document.

A task's documents fill `shards/<name>_<task>_<part>` in order; a shard is closed before it
would pass `max_shard_tokens` (a document longer than that gets a shard of its own). The
task's shard list, with checksums and counts, goes to the task ledger for the manifest.

Each task also counts, per source, the documents, tokens (EOD excluded), words and characters it
wrote: the tokenizer's fertility on the kept documents, which the manifest sums (`fertility`).
Words are `core.text.words`' (the real segmenter of the language: fugashi morphemes for ja,
syllables for vi); characters are Unicode code points of the normalized text.

In a refilter (`StoredTokens`), a document the replayed run kept in the same task is not
tokenized again: its token ids (EOD included) are read from that run's shards as the task's
documents come (found by the document's row in the task, `TaskTokens`), each shard checked against
the sha256 its manifest records, so the shards written are the bytes tokenizing writes. Any other
document (one the replayed run removed as a duplicate, say) is tokenized as usual.
"""

import hashlib
from array import array
from contextlib import ExitStack, nullcontext

import numpy as np
from datatrove.data import Document
from datatrove.pipeline.base import PipelineStep
from datatrove.utils.batching import batched

from core.errors import AuroraError
from core.ledger import write_task_record
from core.shards import ShardSequence, decode_index, token_dtype
from core.text import WORD_COUNT, words
from core.tokenizer import eod_id, file_sha256, load_tokenizer
from dedup.filter import KEY
from filters.base import SIGNALS
from pipeline.signals import filter_signals_path, parquet_rows

SHARDS_DIR = "shards"


def encode_documents(tokenizer, texts: list[str], eod: int) -> tuple[np.ndarray, list[int]]:
    """Token ids of all texts, each followed by EOD, concatenated (unsigned 32-bit, as tokenizers
    gives them); and each document's length.

    `encode_batch_fast` skips the character offsets that `encode_batch` computes and we never use.
    Each document's ids (a list) are copied into one `array` by its C loop, not by `np.fromiter`
    over the chained lists: on 20 MB of the tokenize bench's generated documents, from the
    encodings to the array took 0.39 s before and 0.20 after, of which making the lists takes 0.12."""
    ids, lengths = array("I"), []
    for encoding in tokenizer.encode_batch_fast(texts, add_special_tokens=False):
        doc_ids = encoding.ids
        ids.extend(doc_ids)
        ids.append(eod)
        lengths.append(len(doc_ids) + 1)
    return np.frombuffer(ids, dtype=np.uintc), lengths


FERTILITY_COUNTS = ("documents", "tokens", "words", "characters")


def count_fertility(fertility: dict[str, list[int]], batch: list, lengths: list[int]) -> None:
    """Add each document's counts to its source's: one document, its tokens without the EOD, its
    words in its language (as a step before counted them, `WORD_COUNT`, or counted here) and its
    characters."""
    for doc, length in zip(batch, lengths):
        counts = fertility.setdefault(str(doc.metadata.get("source")), [0, 0, 0, 0])
        counted = doc.metadata.pop(WORD_COUNT, None)
        counts[0] += 1
        counts[1] += length - 1
        counts[2] += len(words(doc.text, doc.metadata.get("language"))) if counted is None else counted
        counts[3] += len(doc.text)


class StoredTokens:
    """The token ids of the documents a replayed run kept: that run's folder, its manifest's shards
    (with their sha256) and the path of each task's signals file (every document of the task in
    read order, the kept ones with their token counts, in shard order)."""

    def __init__(self, folder, shards: list[dict], signals_path):
        self.folder, self.shards, self.signals_path = folder, shards, signals_path

    def check(self) -> None:
        """Refuse, before any work, a run whose shards differ from its manifest."""
        for shard in self.shards:
            for ext, key in (("bin", "bin_sha256"), ("idx", "idx_sha256")):
                try:
                    with self.folder.open(f"{shard['prefix']}.{ext}", "rb") as f:
                        sha = file_sha256(f)
                except FileNotFoundError:
                    sha = None
                if sha != shard[key]:
                    raise AuroraError(f"the run's {shard['prefix']}.{ext} differs from its manifest's sha256; "
                                      "its tokens cannot be reused (curate the recipe instead)")

    def task(self, rank: int, output_folder) -> "TaskTokens":
        """The stored tokens of task `rank`, for the task of the same rank writing to `output_folder`."""
        mine = [s for s in self.shards if s["prefix"].startswith(f"{SHARDS_DIR}/") and s["prefix"].rsplit("_", 2)[-2] == f"{rank:05d}"]
        return TaskTokens(self.folder, mine, self.signals_path(rank), output_folder, filter_signals_path(rank), rank)


class TaskTokens:
    """One task's stored tokens, read as its documents come, in read order: the replayed run's
    signals rows (row for row the documents of this task: the same inputs), its shards' documents
    one after another (one per kept row), and, after dedup, which rows reach this run's dedup (this
    task's filter signals, by the document's dedup key). A document is found by its row, never by
    its id (a task can hold an id twice), so a task holds one document's tokens, not all of them.
    Each shard is hashed as it is read and checked against its manifest's sha256 at its end (every
    shard is read to its end when the task ends): a damaged run fails the task, whose outputs are
    then never committed."""

    def __init__(self, folder, shards: list[dict], signals_file: str, output_folder, filter_signals_file: str, rank: int):
        self.folder, self.shards, self.signals_file = folder, shards, signals_file
        self.output_folder, self.filter_signals_file, self.rank = output_folder, filter_signals_file, rank

    def __enter__(self):
        with ExitStack() as stack:  # what is open so far is closed if opening the rest fails
            self.rows = parquet_rows(stack.enter_context(self.folder.open(self.signals_file, "rb")), ["id", "tokens", "removed_by"])
            self.documents = self._documents()
            stack.callback(self.documents.close)
            self.stack = stack.pop_all()
        self.next_row = 0  # rows read
        self.reached, self.next_position = None, 0  # rows that reach this run's dedup (read when needed); positions read
        return self

    def __exit__(self, exc_type, exc, tb):
        with self.stack:
            if exc_type is None:  # the rest of the run's rows and documents: every shard is checked whole
                self._row(None, None)
                if next(self.documents, None) is not None:
                    raise ValueError("the replayed run's shards hold more documents than its signals kept")
        return False

    def take(self, doc: Document) -> np.ndarray | None:
        """The document's tokens (EOD included) as the replayed run wrote them; None where that run
        did not keep it. After dedup the document carries its dedup key (`DedupDocuments`); in a
        pass without dedup, its row (`DocumentSignals.stored_row`)."""
        key = doc.metadata.pop(KEY, None)
        if key is not None:
            if key >> 32 != self.rank:
                raise ValueError(f"document {doc.id} has the dedup key of task {key >> 32}, not of task {self.rank}")
            row = self._reached_row(key & 0xFFFFFFFF)
        else:
            row = getattr(doc.metadata.get(SIGNALS), "stored_row", None)
            if row is None:
                raise ValueError(f"document {doc.id} has no row in the replayed run")
        return self._row(row, doc.id)

    def _reached_row(self, position: int) -> int:
        if self.reached is None:
            f = self.stack.enter_context(self.output_folder.open(self.filter_signals_file, "rb"))
            self.reached = (row for row, values in enumerate(parquet_rows(f, ["removed_by"])) if values["removed_by"] is None)
        row = None
        while self.next_position <= position:
            row = next(self.reached, None)
            if row is None:
                raise ValueError(f"dedup position {position} is past the documents that reached dedup")
            self.next_position += 1
        if row is None:
            raise ValueError(f"dedup position {position} comes out of order")
        return row

    def _row(self, row: int | None, doc_id: str | None) -> np.ndarray | None:
        """The tokens of the run's document at `row` (None: every row left), reading the rows
        before it and the kept ones' tokens."""
        if row is not None and row < self.next_row:
            raise ValueError(f"document {doc_id} comes out of order")
        while True:
            stored = next(self.rows, None)
            if stored is None:
                if row is None:
                    return None
                raise ValueError(f"document {doc_id} is past the replayed run's rows")
            index, self.next_row, tokens = self.next_row, self.next_row + 1, None
            if stored["removed_by"] is None:
                tokens = next(self.documents, None)
                if tokens is None or len(tokens) != stored["tokens"]:
                    raise ValueError(f"the replayed run's shards disagree with its signals at document {stored['id']}")
            if index == row:
                if stored["id"] != doc_id:
                    raise ValueError(f"document {doc_id} is not the replayed run's ({stored['id']}) at its row")
                return tokens

    def _documents(self):
        """Each document's tokens, shard after shard; a shard's bytes checked at its end."""
        for shard in self.shards:
            with self.folder.open(f"{shard['prefix']}.idx", "rb") as f:
                data = f.read()
            if hashlib.sha256(data).hexdigest() != shard["idx_sha256"]:
                raise ValueError(f"the replayed run's {shard['prefix']}.idx differs from its manifest's sha256")
            index, digest = decode_index(data), hashlib.sha256()
            with self.folder.open(f"{shard['prefix']}.bin", "rb") as f:
                for length in index.lengths.tolist():
                    data = f.read(length * index.dtype.itemsize)
                    if len(data) != length * index.dtype.itemsize:
                        raise ValueError(f"the replayed run's {shard['prefix']}.bin differs from its manifest's sha256 (shorter)")
                    digest.update(data)
                    yield np.frombuffer(data, dtype=index.dtype)
                digest.update(f.read())  # anything after its last document
            if digest.hexdigest() != shard["bin_sha256"]:
                raise ValueError(f"the replayed run's {shard['prefix']}.bin differs from its manifest's sha256")



class MegatronShardWriter(PipelineStep):
    name = "🔢 Megatron shards"
    type = "🔢 - TOKENIZER"

    def __init__(self, output_folder, name: str, tokenizer_path: str, eod_token: str,
                 max_shard_tokens: int, batch_size: int = 1000, stored: StoredTokens | None = None):
        super().__init__()
        self.stored = stored
        self.output_folder, self.name_prefix = output_folder, name
        self.tokenizer_path, self.eod_token = tokenizer_path, eod_token
        self.max_shard_tokens, self.batch_size = max_shard_tokens, batch_size

    def run(self, data, rank: int = 0, world_size: int = 1):
        tokenizer = load_tokenizer(self.tokenizer_path)
        eod = eod_id(tokenizer, self.tokenizer_path, self.eod_token)
        prefix = f"{SHARDS_DIR}/{self.name_prefix}_{rank:05d}"
        shards = ShardSequence(self.output_folder, prefix, token_dtype(tokenizer.get_vocab_size()), self.max_shard_tokens)
        fertility: dict[str, list[int]] = {}  # source -> documents, tokens, words, characters
        with self.stored.task(rank, self.output_folder) if self.stored is not None else nullcontext() as stored:
            for batch in batched(data, self.batch_size):
                with self.track_time("batch"):
                    if stored is not None:
                        tokens, lengths = self._reuse(stored, tokenizer, batch, eod)
                    else:
                        tokens, lengths = encode_documents(tokenizer, [doc.text for doc in batch], eod)
                shards.add(tokens, lengths, [{k: doc.metadata.get(k) for k in ("source", "language")} for doc in batch])
                with self.track_time("fertility"):
                    count_fertility(fertility, batch, lengths)
                self.stat_update("documents", value=len(batch))
                self.stat_update("tokens", value=len(tokens))
        write_task_record(self.output_folder, rank, "tokenize", {
            "shards": shards.close(),
            "fertility": {source: dict(zip(FERTILITY_COUNTS, counts)) for source, counts in sorted(fertility.items())},
        })

    def _reuse(self, stored: TaskTokens, tokenizer, batch: list, eod: int) -> tuple[np.ndarray, list[int]]:
        """The batch's tokens as `encode_documents` gives them: the stored ones where the run kept
        the document, the others tokenized."""
        pieces = [stored.take(doc) for doc in batch]
        missing = [i for i, piece in enumerate(pieces) if piece is None]
        if missing:
            tokens, lengths = encode_documents(tokenizer, [batch[i].text for i in missing], eod)
            for i, end, n in zip(missing, np.cumsum(lengths).tolist(), lengths):
                pieces[i] = tokens[end - n : end]
        lengths = [len(piece) for piece in pieces]
        return np.concatenate(pieces), lengths
