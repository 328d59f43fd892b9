"""Per-document signals: what the filters computed for each document of a curate run, so that
changed thresholds can be applied later without computing anything again (`aurora refilter`).

One parquet file per task, `signals/<task>.parquet`, a row per parsed document in read order
(malformed records and records over `read.max_document_bytes` are not documents: they are in
`rejects/` only): its id; the language label and score; every metric of every heuristic group it
went through (`<group>.<metric>`); the perplexity (unrounded) and its bucket; with dedup, its
cluster, the cluster's size and the verdict; the tokens it has in the shards (EOD included); and
the first rule that removed it (`removed_by`, the reason in `rejects/`) with the metric's value
and the threshold where the rule has them. A step a document never reached leaves its columns
null: a document removed early carries the signals computed up to that point.

How a pass records them: `SignalsStart` (after the reader) gives each document an empty row
(`doc.metadata["signals"]`), each filter step records what it measured
(`filters.base.RecipeFilter.judge`), a removal is noted by the filter's reject writer, and `SignalsEnd` (after the last filter) writes the rows
of the documents that are done, in read order, to `signals/filter/<task>.parquet`. `SignalsWriter`
(after the shard writer, the task's last step) adds the dedup verdicts and token counts and
writes the task's signals file. A refilter replaces the reader and the filters by one step that
decides from the stored rows (`pipeline.refilter.ReplayedFilters`).
"""

from collections import deque

import pyarrow as pa
import pyarrow.parquet as pq
from datatrove.pipeline.base import PipelineStep

from core.atomic import AtomicFile
from core.ledger import read_task_records
from core.shards import decode_index
from dedup.clusters import STATUS_KEPT
from filters.base import SIGNALS, DocumentSignals

SIGNALS_DIR = "signals"
# Parquet row groups, and the rows written at once: a group is held whole until written (as Arrow
# columns, and the writer's encoded pages), so this bounds a task's signals memory. With 65,536, a
# task of 25,000 generated en documents held all its rows: its tokenize-pass workers peaked 15 to
# 30 MiB higher than with 8,192 (bench/curate.py's inputs, per-process peaks).
ROWS_PER_GROUP = 1 << 13
ROWS_PER_BATCH = 1 << 10  # rows turned into Arrow columns at once, while their group fills
REMOVAL = [("removed_by", pa.string()), ("removed_value", pa.float64()), ("removed_threshold", pa.float64())]
DEDUP = [("cluster_id", pa.string()), ("cluster_size", pa.int64()), ("dedup", pa.string())]


def signals_path(task: int) -> str:
    return f"{SIGNALS_DIR}/{task:05d}.parquet"


def filter_signals_path(task: int) -> str:
    """What the filter pass recorded, before dedup and tokenization."""
    return f"{SIGNALS_DIR}/filter/{task:05d}.parquet"


def parquet_rows(f, columns: list[str] | None = None):
    """The rows of an open parquet file (these columns, or all), as dicts, `ROWS_PER_BATCH` at a
    time: a dict per row costs several times its columns, so a file is never held as dicts whole."""
    return (row for batch in pq.ParquetFile(f).iter_batches(batch_size=ROWS_PER_BATCH, columns=columns) for row in batch.to_pylist())


def filter_schema(columns: list[tuple[str, str]]) -> pa.Schema:
    """The columns the filter steps of a recipe fill in (`filters.base.FilterConfig.columns`: what
    each computes, in run order), between the id and the removal. (A URL blocklist has no value
    but the list, which is the removal's reason.)"""
    return pa.schema([("id", pa.string())] + [(name, pa.type_for_alias(kind)) for name, kind in columns] + REMOVAL)


def signals_schema(filter_columns: pa.Schema, dedup: bool) -> pa.Schema:
    """The columns of a task's signals file: the filter steps', then dedup's and the token count."""
    columns = [(f.name, f.type) for f in filter_columns if f.name not in dict(REMOVAL)]
    columns += (DEDUP if dedup else []) + [("tokens", pa.int64())]
    return pa.schema(columns + REMOVAL)


class RowGroups:
    """Rows to a parquet writer in row groups of exactly `ROWS_PER_GROUP`, whatever order documents
    finished in, so a signals file has the same bytes however it was made (a curate run, or a
    refilter that replays it); `close` writes the last shorter group. Rows wait for their group as
    Arrow batches of `ROWS_PER_BATCH`, not as dicts: a dict per row costs several times its
    columns, and a task would grow with its rows up to a group (en, 25,000 generated documents a
    task: 58 MiB)."""

    def __init__(self, writer: pq.ParquetWriter, schema: pa.Schema):
        self.writer, self.schema = writer, schema
        self.rows: list[dict] = []  # the newest rows, until a batch is full
        self.batches: list[pa.RecordBatch] = []  # the older rows of the group being filled
        self.held = self.written = 0  # rows in `batches`; rows written

    def append(self, row: dict) -> None:
        self.rows.append(row)
        if len(self.rows) >= ROWS_PER_BATCH:
            self._columns()

    def add(self, table: pa.Table) -> None:
        """Rows already in Arrow columns, after those appended."""
        self._columns()
        self.batches += table.to_batches()
        self.held += table.num_rows
        while self.held >= ROWS_PER_GROUP:
            table = pa.Table.from_batches(self.batches, schema=self.schema)
            self._write(table.slice(0, ROWS_PER_GROUP))
            rest = table.slice(ROWS_PER_GROUP)
            self.batches, self.held = rest.to_batches(), rest.num_rows

    def close(self, empty_group: bool = True) -> None:
        """The last group; with `empty_group`, one empty group where the file has no rows at all
        (a filter signals file has one; a task's signals file, written from it, none)."""
        self._columns()
        if self.held or (empty_group and not self.written):
            self._write(pa.Table.from_batches(self.batches, schema=self.schema))

    def _columns(self) -> None:
        """The rows appended, as a batch that waits with the others."""
        if self.rows:
            rows, self.rows = self.rows, []
            self.add(pa.Table.from_pylist(rows, schema=self.schema))

    def _write(self, table: pa.Table) -> None:
        # In one chunk, as the rows of a group were when they were dicts: the writer cuts a
        # column's pages where its chunks end, so chunks would change the bytes of large groups.
        self.writer.write_table(table.combine_chunks())
        self.written += table.num_rows


class TaskSignals:
    """The rows of one task's documents, from `SignalsStart` to `SignalsEnd`, which share it: the
    rows of documents still in the pass wait here, so memory holds only the documents in flight."""

    def __init__(self, output_folder, schema: pa.Schema):
        self.output_folder, self.schema = output_folder, schema
        self.pending: deque = deque()


class _TaskSignalsStep(PipelineStep):
    """A step of the filter pass that shares the task's rows."""

    name = "📝 Signals"
    type = "📝 - SIGNALS"

    def __init__(self, task: TaskSignals):
        super().__init__()
        self.task = task


class SignalsStart(_TaskSignalsStep):
    """Gives each document its row."""

    def run(self, data, rank: int = 0, world_size: int = 1):
        self.task.pending.clear()  # the same deque SignalsEnd holds (it starts first: generators run from the last)
        for doc in data:
            doc.metadata[SIGNALS] = signals = DocumentSignals({"id": doc.id})
            self.task.pending.append(signals)
            yield doc


class SignalsEnd(_TaskSignalsStep):
    """After the last filter: documents that get here are done with the filters; the rows of every
    document done, up to the first still in flight, go to the task's filter signals file."""

    def run(self, data, rank: int = 0, world_size: int = 1):
        pending = self.task.pending
        with AtomicFile(self.task.output_folder, filter_signals_path(rank)) as out, \
                pq.ParquetWriter(out.file, self.task.schema, compression="zstd") as writer:
            groups = RowGroups(writer, self.task.schema)
            for doc in data:
                doc.metadata[SIGNALS].done = True  # left on the document for dedup's signatures (refilter), which take it off
                while pending and pending[0].done:
                    groups.append(pending.popleft().row)
                yield doc
            if any(not signals.done for signals in pending):
                raise ValueError("a document left the filters without its removal recorded")
            while pending:
                groups.append(pending.popleft().row)
            groups.close()


class SignalsWriter(PipelineStep):
    """The task's last step: its filter signals, with dedup's verdict for each document that
    reached dedup (`decisions(task)`: the clusters pass's rows for the task, by key) and the token
    count of each kept one (from the task's shards, in order), as `signals/<task>.parquet`."""

    name = "📝 Signals"
    type = "📝 - SIGNALS"

    def __init__(self, output_folder, schema: pa.Schema, decisions=None):
        super().__init__()
        self.output_folder, self.schema, self.decisions = output_folder, schema, decisions

    def run(self, data, rank: int = 0, world_size: int = 1):
        for _ in data or ():  # the shard writer before has consumed the documents already
            pass
        folder = self.output_folder
        tokens = self._token_counts(rank)
        decisions = None if self.decisions is None else {row.pop("key"): row for row in self.decisions(rank).to_pylist()}
        position = 0  # among the documents that reached dedup: their key's low half
        with folder.open(filter_signals_path(rank), "rb") as f, AtomicFile(folder, signals_path(rank)) as out, \
                pq.ParquetWriter(out.file, self.schema, compression="zstd") as writer:
            groups = RowGroups(writer, self.schema)
            for batch in pq.ParquetFile(f).iter_batches(batch_size=ROWS_PER_BATCH):
                table = pa.Table.from_batches([batch])
                ids, removed_by = table.column("id").to_pylist(), table.column("removed_by").to_pylist()
                added = {name: [None] * len(ids) for name in ("tokens", *(dict(DEDUP) if decisions is not None else ()))}
                for i, reason in enumerate(removed_by):
                    if reason is not None:
                        continue
                    if decisions is not None:  # a document in no cluster is its own, of one, and kept
                        decision = decisions.get(rank << 32 | position) or {"cluster_id": ids[i], "cluster_size": 1, "status": STATUS_KEPT}
                        position += 1
                        added["cluster_id"][i], added["cluster_size"][i] = decision["cluster_id"], decision["cluster_size"]
                        added["dedup"][i] = decision["status"]
                        if decision["status"] != STATUS_KEPT:
                            removed_by[i] = decision["status"]
                            continue
                    added["tokens"][i] = next(tokens)
                columns = {name: table.column(name) for name in table.column_names}
                columns.update({name: pa.array(values, self.schema.field(name).type) for name, values in added.items()})
                columns["removed_by"] = pa.array(removed_by, pa.string())
                groups.add(pa.table([columns[name] for name in self.schema.names], schema=self.schema))
            groups.close(empty_group=False)
        if next(tokens, None) is not None:
            raise ValueError("the shards hold more documents than the signals kept")
        yield from ()

    def _token_counts(self, rank: int):
        """Each kept document's tokens, EOD included, in order, from the index of each of the task's shards."""
        for shard in read_task_records(self.output_folder, rank)["tokenize"]["shards"]:
            with self.output_folder.open(f"{shard['prefix']}.idx", "rb") as f:
                yield from decode_index(f.read()).lengths.tolist()
