"""`aurora refilter RECIPE --from RUN --output NEW`: a recipe whose thresholds changed, applied to
the signals of RUN (a curate run): new shards, rejects, signals and manifest, byte for byte what
`aurora curate` of the recipe on RUN's inputs writes, without computing a metric again.

How it stays exact and fast: the curate passes run with their own code where they decide
something (`pipeline.passes.run_curation`), on what RUN stored instead of what it computed.

- The filter pass's read and filters are one step, `ReplayedFilters`: each record of the task's
  work unit is parsed for its id and fields only (the text is not normalized again), each
  document's fate is decided from RUN's signals by the recipe's filters' own rules (language
  label and score, heuristic metrics with `filters.heuristics.broken_rule`, perplexities
  unrounded, the cut-offs from the stored values of the sampling pass's sample), and its text is
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
from collections import Counter
from contextlib import ExitStack

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from datatrove.data import Document
from datatrove.pipeline.base import PipelineStep

from core.atomic import AtomicFile
from core.errors import AuroraError
from core.ledger import write_task_record
from core.rejects import REJECTS_DIR, RejectWriter, read_rejects, rejects_path
from core.storage import uri
from dedup import DedupLayout
from dedup.signatures import DOCS_SCHEMA
from filters.base import SIGNALS, DocumentSignals, MissingSignal
from filters.flagged_words import FlaggedWordsFilter
from filters.heuristics import GROUPS, SETTINGS, HeuristicFilter, metric_names
from filters.language_id import LanguageFilter, recipe_language
from filters.perplexity import BUCKETS, PerplexityFilter, bucket_cutoffs
from filters.url import URLFilter, document_url
from manifests.audit import audit_checksums, audit_rejects, audit_signals
from manifests.manifest import load_manifest
from pipeline.passes import Replay, prepare, run_curation, signals_basis
from pipeline.recipe import Recipe, Source
from pipeline.signals import filter_signals_path, signals_path, write_row_groups
from pipeline.tokenize import StoredTokens
from readers.html_text import DEFAULT_EXTRACTOR
from readers.records import REMOVAL_PREFIX, iter_records, parse_record, raw_text, work_units
from run.inputs import absolute, input_identity
from run.output import RUN_FILE, read_run_file

URL_REASON = URLFilter.step + "."  # the reasons of a URL list's removals: url.<list name>


def refilter(recipe: Recipe, run: str, output: str | None = None, executor: str = "local", workers: int = 1,
             verbose: bool = False) -> dict:
    """The curate passes with the read and the filters replaced by `ReplayedFilters`, and the kept
    documents' tokens taken from RUN's shards."""
    if recipe.language == "code":
        raise AuroraError("refilter replays text recipes: a code rule is measured only when the rules before it pass")
    if recipe.decontamination:  # a clean document's check leaves no signal, so a document it never checked cannot be told apart
        raise AuroraError("refilter does not replay 'decontamination'; curate the recipe instead")
    manifest, run_folder = load_manifest(run)
    if "signals" not in manifest:
        raise AuroraError(f"{run} has no signals (curated before they were recorded); curate the recipe instead")
    recipe.sources = _sources(manifest["inputs"])  # RUN's inputs, as RUN named them
    files = prepare(recipe, None, output, workers)
    if absolute(recipe.output).rstrip("/") == absolute(uri(run_folder)).rstrip("/"):
        raise AuroraError(f"--output is {run} itself; refilter writes a new run folder")
    check_run_files(manifest, run_folder, run)
    check_basis(manifest["signals"]["basis"], signals_basis(recipe, files), run)
    _check_inputs(run_folder, manifest, files, run)
    units = work_units([(source, absolute(path)) for source, path in files], recipe.unit_bytes)
    table = _read_signals(run_folder, len(units), _columns(recipe))
    sample = _sampler(recipe, table, [unit.path for unit in units], run)
    check_replayable(recipe, table, sample, run)
    tokens = StoredTokens(run_folder, manifest["shards"], signals_path)
    tokens.check()
    filters = functools.partial(ReplayedFilters, run_folder=run_folder, language=recipe.language,
                                max_document_bytes=recipe.max_document_bytes, extractor=recipe.extractor)
    return run_curation(recipe, files, executor, workers, verbose, Replay(run_folder, sample, tokens, filters))


def _sources(inputs: list[dict]) -> list[Source]:
    sources: dict[str, list[str]] = {}
    for entry in inputs:
        sources.setdefault(entry["source"], []).append(entry["path"])
    return [Source(name, paths) for name, paths in sources.items()]


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


def check_basis(old: dict, new: dict, run: str) -> None:
    """Refuse a recipe whose signals would not be RUN's: the first difference, in one line."""
    def refuse(what: str) -> None:
        raise AuroraError(f"refilter needs signals {run} does not have: {what}; curate the recipe instead")

    if new["language"] != old["language"]:
        refuse(f"it is a {old['language']} run, the recipe is {new['language']}")
    for key, what in (("read", "read settings"), ("tokenizer", "tokenizer (or its EOD token)"), ("lid_model", "language-ID model")):
        if new.get(key) != old.get(key):
            refuse(f"the {what} differs from the run's")
    for group, settings in new["heuristics"].items():
        if group not in old["heuristics"]:
            refuse(f"heuristics.{group} was not run")
        if settings != old["heuristics"][group]:
            refuse(f"heuristics.{group} settings {settings} differ from the run's {old['heuristics'][group]}")
    for key in ("url_filter", "flagged_words"):  # RUN's URL removals and ratios are replayed as they are: its lists only
        if new.get(key) is not None and new[key] != old.get(key):
            refuse(f"{key} was not run" if old.get(key) is None else f"the {key} lists differ from the run's")
    if new.get("perplexity") is not None and new["perplexity"] != old.get("perplexity"):
        refuse("perplexity was not run" if old.get("perplexity") is None else "the perplexity models (or strip_accents) differ")
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
    columns = ["id", "removed_by", "language", "language_score"]
    columns += [f"{g}.{m}" for g in GROUPS if g in recipe.heuristics for m in metric_names(g, recipe.language)]
    columns += ["flagged_words.ratio"] if recipe.flagged_words else []
    return columns + (["perplexity"] if recipe.perplexity else []) + (["dedup"] if recipe.dedup else [])


def _read_signals(folder, tasks: int, columns: list[str]) -> pa.Table:
    """The columns the decisions need, of every task in order, with each row's task."""
    tables = []
    for task in range(tasks):
        with folder.open(signals_path(task), "rb") as f:
            table = pq.read_table(f, columns=columns)
        tables.append(table.append_column("task", pa.array(np.full(table.num_rows, task, dtype=np.int64))))
    return pa.concat_tables(tables)


def _values(table: pa.Table, column: str) -> np.ndarray:
    return table.column(column).to_numpy(zero_copy_only=False)


def _missing(table: pa.Table, column: str) -> np.ndarray:
    return table.column(column).is_null().to_numpy(zero_copy_only=False)


def _before_perplexity(recipe: Recipe, table: pa.Table, run: str) -> np.ndarray:
    """Which documents pass language ID and the heuristics under the recipe, from the stored
    metrics (the rules as `filters.heuristics.broken_rule` applies them); refused when a document
    reaches a group whose metrics the run never computed for it."""
    labels = table.column("language").to_pylist()
    blocked = [reason is not None and reason.startswith(URL_REASON) for reason in table.column("removed_by").to_pylist()]
    ours = np.array([label is not None and recipe_language(label) == recipe.language for label in labels], dtype=bool)
    alive = ours & ~np.array(blocked, dtype=bool) & ~(_values(table, "language_score") < recipe.min_language_score)
    for group in GROUPS:
        if group not in recipe.heuristics:
            continue
        names = [f"{group}.{m}" for m in metric_names(group, recipe.language)]
        _refuse_missing(table, alive, names[0], group, run)
        metrics = {name.split(".", 1)[1]: _values(table, name) for name in names}
        broken = np.zeros(len(alive), dtype=bool)
        for rule, limit in recipe.heuristics[group].items():
            if limit is not None and rule not in SETTINGS:
                values = metrics[rule[4:]]
                broken |= (values < limit) if rule.startswith("min_") else (values > limit)
        alive &= ~broken
    if recipe.flagged_words:
        _refuse_missing(table, alive, "flagged_words.ratio", "flagged_words", run)
        alive &= ~(_values(table, "flagged_words.ratio") > recipe.flagged_words["max_ratio"])
    return alive


def _refuse_missing(table: pa.Table, reaching: np.ndarray, column: str, step: str, run: str) -> None:
    missing = reaching & _missing(table, column)
    if missing.any():
        first = int(np.flatnonzero(missing)[0])
        raise AuroraError(
            f"{int(missing.sum())} documents would reach {step} under the recipe but {run} removed them before it "
            f"(first {table.column('id')[first].as_py()}, removed by {table.column('removed_by')[first].as_py()}), "
            f"so their {step} signals were never computed; curate the recipe instead")


def _sampler(recipe: Recipe, table: pa.Table, unit_paths: list[str], run: str):
    """The perplexity cut-offs' sample as the sampling pass takes it (`pipeline.buckets`): the
    documents that pass language ID and the heuristics, one from each input file in turn, the
    first `count`; their stored perplexities. None without perplexity buckets."""
    if not recipe.perplexity or recipe.perplexity["mode"] != "buckets":
        return None
    tasks = _values(table, "task")
    paths = list(dict.fromkeys(unit_paths))
    file_of = np.array([paths.index(unit_paths[t]) for t in tasks], dtype=np.int64)
    position = np.zeros(len(tasks), dtype=np.int64)  # a document's place in its file, over the file's units
    for f in range(len(paths)):
        mine = np.flatnonzero(file_of == f)
        position[mine] = np.arange(len(mine))
    order = np.lexsort((file_of, position))  # round-robin: every file's first document, then every second one
    perplexities = table.column("perplexity")

    def sample(count: int) -> list[float]:
        passing = order[_before_perplexity(recipe, table, run)[order]][:count]
        return [perplexities[int(i)].as_py() for i in passing]
    return sample


def check_replayable(recipe: Recipe, table: pa.Table, sample, run: str) -> None:
    """Refuse, before any work, a recipe under which a document reaches a step (a heuristic group,
    perplexity, dedup) that the run never ran on it."""
    alive = _before_perplexity(recipe, table, run)
    if recipe.perplexity:
        _refuse_missing(table, alive, "perplexity", "perplexity", run)
        values = _values(table, "perplexity")
        if recipe.perplexity["mode"] == "max":
            alive &= ~(values > recipe.perplexity["max_perplexity"])
        else:
            perplexities = sample(recipe.perplexity["sample_documents"])
            if len(perplexities) < 10:
                raise AuroraError(f"only {len(perplexities)} documents pass the filters before perplexity: too few for buckets")
            buckets = np.array(BUCKETS)[np.searchsorted(bucket_cutoffs(perplexities), np.where(alive, values, 0), side="right")]
            alive &= np.isin(buckets, recipe.perplexity["keep"])
    if recipe.dedup:
        _refuse_missing(table, alive, "dedup", "dedup", run)



def _rules(thresholds: dict) -> list[tuple]:
    """`filters.heuristics.broken_rule` made once for a group's thresholds: (rule, metric, limit,
    is a minimum) of each rule it checks, in its order."""
    rules = []
    for rule, limit in thresholds.items():
        if limit is not None and rule not in SETTINGS and rule.startswith(("min_", "max_")):
            rules.append((rule, rule[4:], limit, rule.startswith("min_")))
    return rules


class ReplayedFilters(PipelineStep):
    """What the filter steps of a curate task write (`pipeline.passes.filter_steps`: the reader, the
    signals steps, language ID, the heuristic groups, perplexity), decided from RUN's signals with
    the recipe's filters (`filters`, as `filter_steps` makes them: their thresholds, steps and
    rules), without running the filters' per-document machinery: the `read` ledger and malformed
    rejects, each filter's rejects and ledger, the filter signals file, and the documents that pass
    (metadata as the filters leave it), for dedup's signatures or the shards.

    Each record of the task's work unit is parsed for its id and fields only (cheap); the texts
    are RUN's (normalized, as the reader made them): its filter rejects and dedup's kept documents,
    by id. A document whose text RUN does not hold (a run without dedup kept it; an id its task
    holds twice) is parsed whole, as the reader does. The documents must be RUN's signals rows, in
    order: anything else is an error."""

    name = "📝 Replayed filters"
    type = "📖 - READER"

    def __init__(self, units, output_folder, filters: list, schema: pa.Schema, run_folder=None, language: str = "",
                 max_document_bytes: int = 0, extractor: str = DEFAULT_EXTRACTOR):
        super().__init__()
        self.units, self.output_folder, self.filters, self.schema = units, output_folder, filters, schema
        self.run_folder, self.language, self.max_document_bytes, self.extractor = run_folder, language, max_document_bytes, extractor

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        folder, unit = self.output_folder, self.units[rank]
        with self.run_folder.open(signals_path(rank), "rb") as f:
            stored_rows = pq.read_table(f).to_pylist()
        texts, twice, run_rejects = self._texts(rank, stored_rows)
        language = next(f for f in self.filters if isinstance(f, LanguageFilter))
        groups = [(f, [(m, f"{f.group}.{m}") for m in metric_names(f.group, self.language)], _rules(f.thresholds))
                  for f in self.filters if isinstance(f, HeuristicFilter)]
        perplexity = next((f for f in self.filters if isinstance(f, PerplexityFilter)), None)
        url = next((f for f in self.filters if isinstance(f, URLFilter)), None)
        flagged = next((f for f in self.filters if isinstance(f, FlaggedWordsFilter)), None)
        cutoffs = None  # each document's perplexity bucket, as `filters.perplexity.bucket` gives it, at once
        if perplexity is not None and perplexity.cutoffs_path:
            with folder.open(perplexity.cutoffs_path, "rb") as f:
                cutoffs = orjson.loads(f.read())["cutoffs"]
            values = np.array([np.nan if r.get("perplexity") is None else r["perplexity"] for r in stored_rows], dtype=np.float64)
            cutoffs = np.array(BUCKETS)[np.searchsorted(cutoffs, values, side="right")].tolist()
        buckets, rows, position, read, no_url = Counter(), [], 0, 0, 0
        with ExitStack() as stack:
            malformed = stack.enter_context(RejectWriter(folder, "malformed"))
            large = stack.enter_context(RejectWriter(folder, "read"))
            rejects = {f.step: [] for f in self.filters}  # each step's records, written once the task is done
            documents = iter(stored_rows)
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
                no_url += url is not None and document_url(doc) is None
                stored = next(documents, None)
                if stored is None or stored["id"] != doc.id:
                    raise ValueError(f"document {doc.id} is not the replayed run's next document "
                                     f"({None if stored is None else stored['id']}): its inputs changed")
                key = None
                if stored.get("dedup") is not None:  # it reached dedup there: its MinHash files are at this key
                    key, position = rank << 32 | position, position + 1
                metadata = {**doc.metadata, "source": unit.source, "language": self.language, "file": os.path.basename(unit.path)}
                which = None if cutoffs is None else cutoffs[len(rows)]
                row, step, why = self._decide(stored, metadata, language, groups, perplexity, which, buckets, url, flagged)
                rows.append(row)
                if doc.id in texts and doc.id not in twice:
                    text = texts[doc.id]
                else:
                    text = parse_record(record, fallback_id)[0].text
                if why is not None:
                    rejects[step].append({"id": doc.id, "reason": why, "text": text, "metadata": metadata})
                    continue
                metadata[SIGNALS] = DocumentSignals(row, stored_key=key, done=True)
                yield Document(text=text, id=doc.id, metadata=metadata)
            if next(documents, None) is not None:
                raise ValueError("the replayed run has more documents than the inputs: its inputs changed")
            large_counts, malformed_counts = dict(large.counts), dict(malformed.counts)
        removed = {step: self._write_rejects(rank, step, records, run_rejects.get(step)) for step, records in rejects.items()}
        write_task_record(folder, rank, "read", {"read": read, "malformed": malformed_counts, "removed": large_counts})
        for f in self.filters:
            summary = {"perplexity_buckets": dict(buckets)} if f is perplexity and cutoffs is not None else \
                {"no_url": no_url} if f is url else {}
            write_task_record(folder, rank, f.step, {"removed": removed[f.step], **summary})
        with AtomicFile(folder, filter_signals_path(rank)) as out, pq.ParquetWriter(out.file, self.schema, compression="zstd") as writer:
            write_row_groups(writer, rows, self.schema, final=True, empty=not rows)

    def _decide(self, stored: dict, metadata: dict, language, groups, perplexity, which, buckets, url, flagged):
        """(signals row, step, reason or None) of one document under the recipe's filters, as they
        decide it (`URLFilter`, `LanguageFilter`, `HeuristicFilter`, `FlaggedWordsFilter`,
        `PerplexityFilter`), from its stored values; `metadata` gets what they add. The URL lists
        are the run's (the signals basis holds their sha256), so a URL removal is the run's."""
        row = {"id": stored["id"]}
        if url is not None and (stored["removed_by"] or "").startswith(URL_REASON):
            return {**row, "removed_by": stored["removed_by"]}, url.step, stored["removed_by"]

        def need(column):
            value = stored.get(column)
            if value is None:
                raise MissingSignal(f"document {stored['id']} has no stored {column}: the replayed run never computed it")
            return value

        label, score = need("language"), need("language_score")
        row.update(language=label, language_score=score)
        metadata["language_score"] = round(score, 4)
        if recipe_language(label) != self.language:
            metadata["predicted_language"] = label
            return {**row, "removed_by": "wrong_language"}, language.step, "wrong_language"
        if score < language.min_score:
            row.update(removed_value=score, removed_threshold=float(language.min_score), removed_by="low_language_score")
            return row, language.step, "low_language_score"
        for group, names, rules in groups:
            metrics = {}
            for metric, column in names:
                value = stored[column]
                metrics[metric] = value if value is not None else need(column)
                row[column] = float(metrics[metric])
            rule = next((r for r, metric, limit, low in rules
                         if (metrics[metric] < limit if low else metrics[metric] > limit)), None)
            if rule is not None:
                reason = f"{group.group}.{rule}"
                row.update(removed_value=float(metrics[rule[4:]]), removed_threshold=float(group.thresholds[rule]), removed_by=reason)
                return row, group.step, reason
        if flagged is not None:
            ratio = row["flagged_words.ratio"] = need("flagged_words.ratio")
            if ratio > flagged.max_ratio:
                row.update(removed_value=ratio, removed_threshold=float(flagged.max_ratio), removed_by="flagged_words.max_ratio")
                return row, flagged.step, "flagged_words.max_ratio"
        if perplexity is None:
            return row, None, None
        value = need("perplexity")
        row["perplexity"] = value
        metadata["perplexity"] = round(value, 1)
        if which is not None:  # buckets
            metadata["perplexity_bucket"] = row["perplexity_bucket"] = which
            buckets[which] += 1
            if which in perplexity.keep:
                return row, None, None
            return {**row, "removed_by": f"perplexity.bucket_{which}"}, perplexity.step, f"perplexity.bucket_{which}"
        if value <= perplexity.max_perplexity:
            return row, None, None
        row.update(removed_value=value, removed_threshold=float(perplexity.max_perplexity), removed_by="perplexity.max_perplexity")
        return row, perplexity.step, "perplexity.max_perplexity"

    def _write_rejects(self, rank: int, step: str, records: list[dict], run_file) -> dict:
        """A step's rejects; where their lines are RUN's, line for line (RUN's file checked against
        its manifest's sha256 before any work), RUN's file is copied instead of compressed again:
        the same bytes. Returns the counts by reason, for the ledger."""
        counts = Counter(record["reason"] for record in records)
        if not records:
            return {}
        if run_file is not None and len(run_file[1]) == len(records) and \
                all(orjson.dumps(r) + b"\n" == line for r, line in zip(records, run_file[1])):
            with self.run_folder.open(run_file[0], "rb") as f, AtomicFile(self.output_folder, rejects_path(step, rank)) as out:
                out.write(f.read())
            return dict(counts)
        with RejectWriter(self.output_folder, step) as writer:
            for record in records:
                writer.write_record(record, rank)
        return dict(writer.counts)

    def _texts(self, rank: int, stored_rows: list[dict]) -> tuple[dict, set, dict]:
        """RUN's text of each document of the task it holds one for, by id (its rejects, its dedup
        documents); the ids the task holds twice (their texts are parsed again); and RUN's rejects
        of the task by step (path, lines)."""
        counts = Counter(row["id"] for row in stored_rows)
        twice = {doc_id for doc_id, n in counts.items() if n > 1}
        texts, run_rejects = {}, {}
        folder = self.run_folder
        for path in folder.glob(f"{REJECTS_DIR}/*/{rank:05d}.jsonl.gz"):  # checked against RUN's manifest first
            step = path.split("/")[-2]
            if step in ("malformed", "read"):
                continue
            lines = []
            for line, record in read_rejects(folder, path):
                lines.append(line)
                if "text" in record:
                    texts[record["id"]] = record["text"]
            run_rejects[step] = (path, lines)
        layout = DedupLayout()
        if folder.exists(layout.docs(rank)):  # checked against RUN's manifest first, as the rejects
            with folder.open(layout.docs(rank), "rb") as f:
                table = pq.read_table(f, columns=["id", "text"], schema=DOCS_SCHEMA)
            texts.update(zip(table.column("id").to_pylist(), table.column("text").to_pylist()))
        return texts, twice, run_rejects
