"""`aurora refilter RECIPE --from RUN --output NEW`: a recipe whose thresholds changed, applied to
the signals of RUN (a curate run): new shards, rejects, signals and manifest, byte for byte what
`aurora curate` of the recipe on RUN's inputs writes, without computing a metric again.

How it stays exact and fast: the curate passes run with their own code where they decide
something (`pipeline.passes.run_curation`), on what RUN stored instead of what it computed.

- The filter pass's read and filters are one step, `ReplayedFilters`: each record of the task's
  work unit is parsed for its id and fields only (the text is not normalized again), each
  document's fate is decided by the recipe's own filter steps (`judge`, each filter's one rule)
  on the values RUN stored (language label and score, heuristic metrics, the flagged-words
  ratio, perplexities unrounded, bucketed under cut-offs from the stored values of the sampling
  pass's sample; URLs are matched again, against RUN's lists), and its text is
  RUN's (its filter rejects, dedup's kept documents: files checked against RUN's manifest); the
  rejects, ledgers and filter signals are written as the filters write them (a step's rejects
  that are RUN's line for line are RUN's file, copied). MinHash signatures, digests and shingle
  sets are copied from RUN's dedup files by each document's key there.
- Dedup's bands, verification, components and clusters run again (decisions, not metrics: a
  document that leaves or joins changes its clusters as in a full run).
- The tokenize pass takes each kept document's token ids from RUN's shards
  (`pipeline.tokenize.StoredTokens`: every shard checked against RUN's manifest sha256 first) and
  tokenizes only documents RUN did not keep (a duplicate whose kept copy left).

What is refused, in one line, before any work: a RUN without signals; a RUN whose signals,
rejects, dedup filter-pass files or shards differ from its manifest (each file's sha256), or whose
manifest predates those checksums, or whose `run.json` is not the record of the run the manifest
describes; a recipe whose signals `basis` differs from RUN's (another language, read settings,
tokenizer, language-ID model, perplexity models, a heuristic group RUN did not run or whose
settings shape its metrics differently, dedup's MinHash parameters, shingle sets RUN did not keep,
perplexity or dedup that RUN did not run, URL or flagged-words lists other than RUN's); inputs changed since RUN; and a recipe that lets a
document reach a step RUN never ran on it. RUN stops at a document's first removal, so a threshold
loosened past a document RUN removed needs that document's later metrics, which RUN never
computed: curate the recipe instead. Tightening, dropping a group, changing the perplexity mode or
buckets kept, and dedup's threshold are exact.
"""

import functools
import os
import shutil
import sys
from contextlib import ExitStack, closing
from dataclasses import replace
from itertools import islice

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from datatrove.data import Document
from datatrove.io import get_datafolder
from datatrove.pipeline.base import PipelineStep

from core.atomic import AtomicFile
from core.errors import AuroraError
from core.ledger import write_task_record
from core.rejects import REJECTS_DIR, RejectWriter, read_rejects, rejects_path
from core.storage import uri
from dedup import DedupLayout
from filters.base import SIGNALS, DocumentSignals
from manifests.audit import audit_checksums, audit_rejects, audit_signals
from manifests.manifest import load_manifest
from pipeline.passes import Replay, asset_sha256, filter_steps, prepare, run_curation, signals_basis
from pipeline.recipe import Recipe, Source
from pipeline.signals import ROWS_PER_BATCH, RowGroups, filter_signals_path, parquet_rows, signals_path
from pipeline.tokenize import StoredTokens
from readers.html_text import DEFAULT_EXTRACTOR
from readers.records import REMOVAL_PREFIX, iter_records, parse_record, raw_text, work_units
from run.executors import start_executor
from run.inputs import absolute, input_identity
from run.output import RUN_FILE, read_run_file


def refilter(recipe: Recipe, run: str, output: str | None = None, executor: str = "local", workers: int = 1,
             verbose: bool = False) -> dict:
    """The curate passes with the read and the filters replaced by `ReplayedFilters`, and the kept
    documents' tokens taken from RUN's shards."""
    for config in recipe.filters:
        if config.not_replayed:
            raise AuroraError(f"refilter does not replay '{config.section}': {config.not_replayed}; curate the recipe instead")
    manifest, run_folder = load_manifest(run)
    if "signals" not in manifest:
        raise AuroraError(f"{run} has no signals (curated before they were recorded); curate the recipe instead")
    start_executor(executor, workers, verbose)  # its workers import while the run is prepared
    recipe, files = prepare(replace(recipe, sources=_sources(manifest["inputs"])), None, output, workers)  # RUN's inputs, as RUN named them
    if absolute(recipe.output).rstrip("/") == absolute(uri(run_folder)).rstrip("/"):
        raise AuroraError(f"--output is {run} itself; refilter writes a new run folder")
    check_run_files(manifest, run_folder, run)
    check_basis(recipe, manifest["signals"]["basis"], files, run)
    _check_inputs(run_folder, manifest, files, run)
    units = work_units([(source, absolute(path)) for source, path in files], recipe.unit_bytes)
    fates = Fates(recipe, run_folder, [unit.path for unit in units], run)
    tokens = StoredTokens(run_folder, manifest["shards"], signals_path)
    tokens.check()
    filters = functools.partial(ReplayedFilters, run_folder=run_folder, language=recipe.language,
                                max_document_bytes=recipe.max_document_bytes, extractor=recipe.extractor)
    return run_curation(recipe, files, executor, workers, verbose, Replay(run_folder, fates.sample, tokens, filters))


def _sources(inputs: list[dict]) -> tuple[Source, ...]:
    sources: dict[str, list[str]] = {}
    for entry in inputs:
        sources.setdefault(entry["source"], []).append(entry["path"])
    return tuple(Source(name, tuple(paths)) for name, paths in sources.items())


def check_run_files(manifest: dict, run_folder, run: str) -> None:
    """Refuse, before any work, a RUN whose files that a refilter reads back differ from its
    manifest: its signals (checksums, rows, kept), its rejects (their texts become the new run's
    rejects, and its shards where a document is kept now) and dedup's filter-pass files (texts,
    signatures, digests and shingle sets, copied by key). Its shards: `StoredTokens.check`."""
    if "rejects" not in manifest or ("dedup" in manifest and "files" not in manifest["dedup"]):
        raise AuroraError(f"{run} records no sha256 of its rejects and dedup files (curated before they were recorded), "
                          "so what refilter reads back cannot be checked; curate the recipe instead")
    for what, audit_files, args in (("signals", audit_signals, (manifest["signals"]["files"], manifest["funnel"])),
                                    ("rejects", audit_rejects, (manifest["rejects"],)),
                                    ("dedup files", audit_checksums, (manifest.get("dedup", {}).get("files", []),))):
        problems = audit_files(run_folder, *args)
        if problems:
            raise AuroraError(f"{run}: {what} cannot be trusted: {problems[0]}; curate the recipe instead")


def check_basis(recipe: Recipe, old: dict, files: list[tuple[str, str]], run: str) -> None:
    """Refuse a recipe whose signals would not be RUN's (`old`, its signals basis): the first
    difference, in one line. Each filter says what of its part must be RUN's
    (`filters.base.FilterConfig.refilter_problem`)."""
    def refuse(what: str) -> None:
        raise AuroraError(f"refilter needs signals {run} does not have: {what}; curate the recipe instead")

    sha = functools.cache(asset_sha256)  # each file hashed once
    new = signals_basis(recipe, files, sha)
    if new["language"] != old["language"]:
        refuse(f"it is a {old['language']} run, the recipe is {new['language']}")
    for key, what in (("read", "read settings"), ("tokenizer", "tokenizer (or its EOD token)")):
        if new.get(key) != old.get(key):
            refuse(f"the {what} differs from the run's")
    for config in recipe.filters:
        problem = config.refilter_problem(config.basis(sha), old)
        if problem is not None:
            refuse(problem)
    if new.get("dedup") is not None:
        if old.get("dedup") is None:
            refuse("dedup was not run (no MinHash signatures)")
        for key in ("num_perm", "seed", "ngram"):
            if new["dedup"][key] != old["dedup"][key]:
                refuse(f"dedup.{key} {new['dedup'][key]} differs from the run's {old['dedup'][key]} (MinHash signatures would change)")
        if new["dedup"]["shingle_sets"] and not old["dedup"]["shingle_sets"]:
            refuse("dedup.verify: shingles needs the shingle sets the run did not keep")


def _check_inputs(run_folder, manifest: dict, files: list[tuple[str, str]], run: str) -> None:
    """RUN's inputs unchanged since it was curated: each one's identity now, against the one RUN's
    `run.json` recorded, which must be the record of the run the manifest describes (its recipe
    and inputs). The identities (sizes, modification times) are not in the manifest, which holds
    nothing that differs between two runs of the same recipe on the same data."""
    recorded = read_run_file(run_folder, "the run is damaged; curate the recipe instead")
    if recorded is None:
        raise AuroraError(f"{run} has no {RUN_FILE} to tell whether its inputs changed; curate the recipe instead")
    if recorded["recipe_sha256"] != manifest["recipe_sha256"] or \
            [(i["source"], i["path"]) for i in recorded["inputs"]] != [(i["source"], i["path"]) for i in manifest["inputs"]]:
        raise AuroraError(f"{run}: {RUN_FILE} records another recipe or other inputs than the manifest; curate the recipe instead")
    before = {i["path"]: i for i in recorded["inputs"]}
    for source, path in files:
        now = input_identity(source, path)
        if before.get(path) != now:
            raise AuroraError(f"input {path} changed since {run} was curated; curate the recipe instead")


def _columns(recipe: Recipe) -> list[str]:
    columns = ["id", "removed_by"] + [name for config in recipe.filters for name, _ in config.columns(recipe.language)]
    return columns + (["dedup"] if recipe.dedup else [])


class Fates:
    """What the recipe's filters decide of RUN's documents before any work, from RUN's signals, by
    the filter steps' own rules (`stored` values, `decide`): the samples of the steps whose
    cut-offs come from one (`pipeline.cutoffs`: perplexity buckets, a quality classifier's top
    fraction), and the refusal of a recipe under which a document reaches a filter (or dedup)
    that RUN never ran on it.

    RUN's signals are read as a stream, task after task, `ROWS_PER_BATCH` rows at a time (as
    dicts, which cost several times their columns: in batches of 65,536 rows, the refilter's own
    process grew 134 -> 252 MiB here on a 100,000-document run of 4 tasks; in batches of 1,024,
    136 -> 189), once per sampled step and once more for the rest: what is held of every document
    is whether it is still alive and its place in the sampling order (about 10 bytes), not its row."""

    def __init__(self, recipe: Recipe, folder, unit_paths: list[str], run: str):
        self.folder, self.run, self.columns = folder, run, _columns(recipe)
        self.counts = []  # rows of each task
        for task in range(len(unit_paths)):
            with folder.open(signals_path(task), "rb") as f:
                self.counts.append(pq.ParquetFile(f).metadata.num_rows)
        self.missing: dict[str, list] = {}  # step -> [documents that reach it without its values, the first one's row]
        steps = filter_steps(recipe, get_datafolder(absolute(recipe.output)))  # made, never run: their rules only
        self.order, self.samples = self._round_robin(unit_paths), {}
        alive, start = None, 0
        for i, step in enumerate(steps):
            if step.sample_size:  # its sample: the first documents, round-robin, that pass every filter before it
                alive = self._fates(steps[start:i], alive)
                start = i
                rows = self._take(self.order[alive[self.order]][: step.sample_size])
                self.samples[step.step] = [step.stored(row) for row in rows]
                for row, values in zip(rows, self.samples[step.step]):
                    if None in values.values():
                        self.missing.setdefault(step.step, [0, row])[0] += 1
                self._refuse_missing()
                step.cutoffs_record(self.samples[step.step])  # the step decides under them below
        alive = self._fates(steps[start:], alive)
        if recipe.dedup:
            self._refuse_unseen_by_dedup(alive)

    def _batches(self, columns: list[str]):
        """RUN's rows of every task, in order, these columns, a batch at a time."""
        for task in range(len(self.counts)):
            with self.folder.open(signals_path(task), "rb") as f:
                yield from pq.ParquetFile(f).iter_batches(batch_size=ROWS_PER_BATCH, columns=columns)

    def _take(self, places: np.ndarray) -> list[dict]:
        """RUN's rows at these places (in all tasks' rows, in order), in the order given; a task's
        rows are read only where one is taken."""
        rows, offset = {}, 0
        for task, count in enumerate(self.counts):
            mine = places[(places >= offset) & (places < offset + count)]
            if len(mine):
                with self.folder.open(signals_path(task), "rb") as f:
                    table = pq.read_table(f, columns=self.columns)
                rows.update(zip(mine.tolist(), table.take(pa.array(mine - offset, pa.int64())).to_pylist()))
            offset += count
        return [rows[place] for place in places.tolist()]

    def _fates(self, steps: list, reaching: np.ndarray | None = None) -> np.ndarray:
        """Which documents pass `steps` (those that reach them: all, or `reaching`), refused when one
        reaches a step whose values RUN never computed for it."""
        passed, i = np.zeros(sum(self.counts), dtype=bool), 0
        columns = dict.fromkeys(["id", "removed_by"] + [c for step in steps for c in step.columns if c in self.columns])
        for batch in self._batches(list(columns)):  # rows as dicts, a batch at a time
            for row in batch.to_pylist():
                passed[i] = (reaching is None or reaching[i]) and self._passes(steps, row)
                i += 1
        self._refuse_missing()
        return passed

    def _refuse_unseen_by_dedup(self, alive: np.ndarray) -> None:
        """Refuse a recipe under which a document RUN removed before dedup reaches it."""
        count, first, i = 0, None, 0
        for batch in self._batches(self.columns):
            unseen = alive[i : i + batch.num_rows] & batch.column("dedup").is_null().to_numpy(zero_copy_only=False)
            if unseen.any():
                count += int(unseen.sum())
                if first is None:
                    first = batch.slice(int(np.flatnonzero(unseen)[0]), 1).to_pylist()[0]
            i += batch.num_rows
        if count:
            self.missing["dedup"] = [count, first]
            self._refuse_missing()

    def _passes(self, steps: list, row: dict) -> bool:
        for step in steps:
            values = step.stored(row)
            if step.columns and None in values.values():
                missing = self.missing.setdefault(step.step, [0, row])
                missing[0] += 1
                return False
            if step.decide(values) is not None:
                return False
        return True

    def _refuse_missing(self) -> None:
        for step, (count, first) in self.missing.items():
            raise AuroraError(
                f"{count} documents would reach {step} under the recipe but {self.run} removed them before it "
                f"(first {first['id']}, removed by {first['removed_by']}), "
                f"so their {step} signals were never computed; curate the recipe instead")

    def _round_robin(self, unit_paths: list[str]) -> np.ndarray:
        """The documents in the order the sampling pass reads them (`pipeline.cutoffs`): one from each
        input file in turn."""
        tasks = np.repeat(np.arange(len(self.counts)), self.counts)
        paths = list(dict.fromkeys(unit_paths))
        file_of = np.array([paths.index(path) for path in unit_paths], dtype=np.int64)[tasks]
        position = np.zeros(len(tasks), dtype=np.int64)  # a document's place in its file, over the file's units
        for f in range(len(paths)):
            mine = np.flatnonzero(file_of == f)
            position[mine] = np.arange(len(mine))
        return np.lexsort((file_of, position))  # round-robin: every file's first document, then every second one

    def sample(self, step) -> list[dict]:
        """The step's sample as the sampling pass takes it: the stored values of the first documents,
        round-robin over the files, that pass the filters before it."""
        return self.samples[step.step]


class ReplayedFilters(PipelineStep):
    """What the filter steps of a curate task write (`pipeline.passes.filter_pass`: the reader, the
    signals steps, the filters), decided by the recipe's filter steps (`filters`, as
    `filter_steps` makes them) on RUN's stored values (`RecipeFilter.replay`, then `judge`: the
    same rules, records and metadata as in a curate run), without measuring anything again: the
    `read` ledger and malformed rejects, each filter's rejects and ledger, the filter signals file,
    and the documents that pass (metadata as the filters leave it), for dedup's signatures or the
    shards.

    Each record of the task's work unit is parsed for its id and fields only (cheap); the texts
    are RUN's (normalized, as the reader made them): its filter rejects and dedup's documents
    (`_RunTexts`). The documents must be RUN's signals rows, in order: anything else is an error.
    Everything is streamed in read order (RUN's rows and texts in, rows, rejects and documents
    out), so a task's memory does not grow with its documents."""

    name = "📝 Replayed filters"
    type = "📖 - READER"

    def __init__(self, units, output_folder, filters: list, schema: pa.Schema, run_folder=None, language: str = "",
                 max_document_bytes: int = 0, extractor: str = DEFAULT_EXTRACTOR):
        super().__init__()
        self.units, self.output_folder, self.filters, self.schema = units, output_folder, filters, schema
        self.run_folder, self.language, self.max_document_bytes, self.extractor = run_folder, language, max_document_bytes, extractor

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        folder, unit = self.output_folder, self.units[rank]
        for f in self.filters:
            f.reset()
        position, read, run_row = 0, 0, -1  # documents that reached dedup in RUN; records read; the row of RUN's
        with ExitStack() as stack:
            stored_rows = stack.enter_context(self.run_folder.open(signals_path(rank), "rb"))
            documents = parquet_rows(stored_rows)
            texts = stack.enter_context(_RunTexts(self.run_folder, rank))
            malformed = stack.enter_context(RejectWriter(folder, "malformed"))
            large = stack.enter_context(RejectWriter(folder, "read"))
            rejects = {f.step: stack.enter_context(_ReplayedRejects(self.run_folder, folder, f.step, rank)) for f in self.filters}
            out = stack.enter_context(AtomicFile(folder, filter_signals_path(rank)))
            groups = RowGroups(stack.enter_context(pq.ParquetWriter(out.file, self.schema, compression="zstd")), self.schema)
            for fallback_id, record, reason, raw in iter_records(unit.path, self.max_document_bytes, unit.start, unit.end, self.extractor):
                read += 1
                doc = None
                if reason is None:
                    text = record.get("text") if isinstance(record, dict) else None
                    light = isinstance(text, str) and text.strip()  # the id and fields without normalizing the text
                    doc, reason = parse_record({**record, "text": "-"} if light else record, fallback_id)
                if reason is not None:
                    writer = large if reason.startswith(REMOVAL_PREFIX) else malformed
                    writer.write_record({"id": fallback_id, "reason": reason, "raw": raw_text(raw if raw is not None else record)}, rank)
                    continue
                stored, run_row = next(documents, None), run_row + 1
                if stored is None or stored["id"] != doc.id:
                    raise ValueError(f"document {doc.id} is not the replayed run's next document "
                                     f"({None if stored is None else stored['id']}): its inputs changed")
                key = None
                if stored.get("dedup") is not None:  # it reached dedup there: its MinHash files are at this key
                    key, position = rank << 32 | position, position + 1
                signals = DocumentSignals({"id": doc.id}, stored_row=run_row, stored_key=key, done=True)
                metadata = {**doc.metadata, "source": unit.source, "language": self.language, "file": os.path.basename(unit.path),
                            SIGNALS: signals}
                step, why = self._judge(stored, doc, metadata)
                text = texts.text(stored, doc.id, lambda: parse_record(record, fallback_id)[0].text)
                if why is not None:
                    signals.row["removed_by"] = why
                    del metadata[SIGNALS]
                    groups.append(signals.row)
                    rejects[step].write({"id": doc.id, "reason": why, "text": text, "metadata": metadata})
                    continue
                groups.append(signals.row)
                yield Document(text=text, id=doc.id, metadata=metadata)
            if next(documents, None) is not None:
                raise ValueError("the replayed run has more documents than the inputs: its inputs changed")
            groups.close()
            large_counts, malformed_counts = dict(large.counts), dict(malformed.counts)
        write_task_record(folder, rank, "read", {"read": read, "malformed": malformed_counts, "removed": large_counts})
        for f in self.filters:
            write_task_record(folder, rank, f.step, {"removed": rejects[f.step].counts, **f.task_summary()})

    def _judge(self, stored: dict, doc: Document, metadata: dict) -> tuple[str | None, str | None]:
        """(step, reason) of the first filter that removes the document, or (None, None): each filter
        judges the values RUN stored for it, recording them in the document's signals row."""
        for f in self.filters:
            values = f.replay(stored, doc)
            if f.columns and None in values.values():  # `Fates` refused such a recipe
                raise ValueError(f"document {doc.id} has no stored {f.step} values: the replayed run never computed them")
            verdict = f.judge(metadata, values)
            if verdict is not True:
                return f.step, verdict[1]
        return None, None


class _RunTexts:
    """RUN's text of each document of a task, in read order, where RUN holds one: a document it
    removed in the filters is in its rejects of that step (the reason is its `removed_by`), one
    that reached dedup is in dedup's documents; every file is read once, as a stream, so a task's
    texts are never all held. A document RUN holds no text for (a run without dedup kept it) is
    parsed whole, as the reader does."""

    def __init__(self, run_folder, rank: int):
        self.run_folder, self.rank = run_folder, rank

    def __enter__(self):
        with ExitStack() as stack:  # what is open so far is closed if opening the rest fails
            self.steps = {}  # step -> its rejects, each (line, record), not yet matched to a document
            for path in self.run_folder.glob(f"{REJECTS_DIR}/*/{self.rank:05d}.jsonl.gz"):  # checked against RUN's manifest first
                step = path.split("/")[-2]
                if step not in ("malformed", "read"):
                    self.steps[step] = _Peekable(stack.enter_context(closing(read_rejects(self.run_folder, path))))
            self.deduped, docs = _Peekable(iter(())), DedupLayout().docs(self.rank)
            if self.run_folder.exists(docs):  # checked against RUN's manifest first, as the rejects
                batches = pq.ParquetFile(stack.enter_context(self.run_folder.open(docs, "rb"))).iter_batches(
                    batch_size=ROWS_PER_BATCH, columns=["id", "text"])
                self.deduped = _Peekable((None, row) for batch in batches for row in batch.to_pylist())
            self.stack = stack.pop_all()
        return self

    def __exit__(self, *exc):
        return self.stack.__exit__(*exc)

    def text(self, stored: dict, doc_id: str, parse) -> str:
        """The document's text: RUN's, or `parse()`. Where two of RUN's files hold the same id with
        the same reason next (a task holding an id twice), the text is parsed and the file whose
        next text it is gives it up: a document is never given another's text."""
        if stored.get("dedup") is not None:
            candidates = [self.deduped]
        elif stored["removed_by"] is not None:
            candidates = [s for s in self.steps.values() if s.head is not None and s.head[1]["reason"] == stored["removed_by"]]
        else:
            return parse()
        candidates = [c for c in candidates if c.head is not None and c.head[1]["id"] == doc_id and "text" in c.head[1]]
        if len(candidates) == 1:
            return candidates[0].take()[1]["text"]
        text = parse()
        same = next((c for c in candidates if c.head[1]["text"] == text), None)
        if same is not None:
            same.take()
        return text


class _Peekable:
    """An iterator whose next item is seen before it is taken."""

    def __init__(self, items):
        self.items = items
        self.head = next(items, None)

    def take(self):
        item, self.head = self.head, next(self.items, None)
        return item


class _ReplayedRejects:
    """One step's rejects in a refilter, written as they come. While they are RUN's line for line
    nothing is written, and RUN's file (checked against its manifest's sha256 before any work) is
    copied at the end: the same bytes without compressing them again. At the first line that
    differs, RUN's lines so far are written (they are ours), then ours. `counts`: by reason, for
    the ledger."""

    def __init__(self, run_folder, output_folder, step: str, rank: int):
        self.run_folder, self.output_folder, self.step, self.rank = run_folder, output_folder, step, rank
        self.path = rejects_path(step, rank)
        self.same, self.writer, self.counts = 0, None, {}

    def __enter__(self):
        exists = self.run_folder.exists(self.path)
        self.run_lines = read_rejects(self.run_folder, self.path) if exists else (line for line in ())
        return self

    def write(self, record: dict) -> None:
        self.counts[record["reason"]] = self.counts.get(record["reason"], 0) + 1
        if self.writer is None:
            line = next(self.run_lines, None)
            if line is not None and line[0] == orjson.dumps(record) + b"\n":
                self.same += 1
                return
            self._differ()
        self.writer.write_record(record, self.rank)

    def _differ(self) -> None:
        self.writer = RejectWriter(self.output_folder, self.step).__enter__()
        with closing(read_rejects(self.run_folder, self.path)) as lines:
            for _, record in islice(lines, self.same):
                self.writer.write_record(record, self.rank)

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None and self.writer is None and self.same:
                if next(self.run_lines, None) is None:  # RUN's file, whole
                    with self.run_folder.open(self.path, "rb") as f, AtomicFile(self.output_folder, self.path) as out:
                        shutil.copyfileobj(f, out)
                    return
                try:
                    self._differ()  # RUN's file goes on: its first lines only
                except BaseException:
                    self.writer.__exit__(*sys.exc_info())  # its temporary file removed
                    raise
            if self.writer is not None:
                self.writer.__exit__(exc_type, exc, tb)
        finally:
            self.run_lines.close()
