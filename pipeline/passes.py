"""A curation run, what `aurora curate` and `aurora refilter` share: the passes over a recipe's
inputs (`passes`), run by `run_curation` into filtered, tokenized Megatron shards + manifest.

One datatrove task per work unit of the inputs (a whole file, or a part of a large one:
`readers.records.work_units`, split by the recipe's `read.unit_bytes` and the files' sizes only),
so what a task writes depends only on its unit: the shards and the manifest are the same whatever
the executor or the number of workers, and the documents and the funnel the same whatever the
split. With dedup, the passes between (one task per LSH band, then one per partition of the
corpus) depend only on the files the filter pass wrote. Passes run in order, each with its own
logs; a task that is killed is simply run again (datatrove skips the completed ones),
overwriting its own outputs.

`run.json` pins a run folder to its recipe and to its inputs (path, size, modification time or
ETag), so a rerun resumes only the same work: an input changed in place is refused, not reused.
One run at a time writes to a folder (`run.lock`); a failed task stops the run with one line
naming it and its log, and a rerun resumes (`run.executors`).
"""

import functools
import os
from dataclasses import replace
from typing import NamedTuple

from datatrove.io import get_datafolder

from core.errors import AuroraError
from core.storage import is_remote, local_asset
from core.tokenizer import eod_id, file_sha256, load_tokenizer
from dedup import DedupDocuments, DedupFilter, DedupLayout, DedupSignatures, dedup_passes, read_decisions
from filters.base import StepContext
from filters.decontamination import DecontaminationConfig, load_index
from filters.registry import BASIS_ORDER
from manifests.manifest import build_pool_manifest, write_manifest
from pipeline.cutoffs import Sampler, ensure_cutoffs
from pipeline.recipe import Recipe, Source
from pipeline.signals import SignalsEnd, SignalsStart, SignalsWriter, TaskSignals, filter_schema, signals_path, signals_schema
from pipeline.tokenize import MegatronShardWriter
from readers.records import RawDocumentReader, WorkUnit, input_format, work_units
from readers.warc import WARC_FORMATS
from run.executors import make_executor, run_pass
from run.inputs import absolute, input_identity, resolve_inputs
from run.lock import output_lock
from run.output import claim_output

DEDUP_LAYOUT = DedupLayout()  # where the dedup passes' files are; the manifest names its clusters file


class Replay(NamedTuple):
    """What a refilter replays instead of computing: the run folder whose signals and dedup files
    it reads, the perplexity cut-offs' sample taken from those signals (a function of the
    sample's size that gives its perplexities), the kept documents' token ids, and the step that
    replaces reading and filtering."""

    folder: object
    sample: object  # a step's sample values for its cut-offs, from the run's signals (`pipeline.refilter.Fates.sample`)
    tokens: object  # `pipeline.tokenize.StoredTokens`: the kept documents' token ids, from the run's shards
    filters: object  # makes the step that replaces reading and filtering (`pipeline.refilter.ReplayedFilters`)


def filter_schema_of(recipe: Recipe):
    """The filter signals' columns: each filter's, in run order."""
    return filter_schema([column for config in recipe.filters for column in config.columns(recipe.language)])


def filter_steps(recipe: Recipe, folder) -> list:
    """Every filter step of the recipe, in run order (`filters.registry`)."""
    context = StepContext(folder, recipe.language, absolute)
    return [step for config in recipe.filters for step in config.steps(context)]


def _sample_values(step, sampler: Sampler, before: int) -> list[dict]:
    return step.measure(sampler.sample(before, step.sample_size))


def filter_pass(recipe: Recipe, inputs, units: list[WorkUnit], folder, replay: Replay | None = None) -> list:
    """Read (a work unit per task), then the filters, between the steps that record each document's
    signals (`pipeline.signals`). A step whose cut-off comes from a sample (perplexity buckets, a
    quality classifier's top fraction) has it taken first (`pipeline.cutoffs`), from the documents
    that pass the filters before it, in run order."""
    filters = filter_steps(recipe, folder)
    sampler = Sampler([(s, absolute(p)) for s, p in inputs], filters, recipe.max_document_bytes, recipe.extractor)
    for i, step in enumerate(filters):
        if getattr(step, "sample_size", None):
            if replay is not None:
                sample = functools.partial(replay.sample, step)
            else:
                sample = functools.partial(_sample_values, step, sampler, i)
            ensure_cutoffs(folder, step, sample)
    if replay is not None:  # a refilter: the same outputs, from the run's files
        return [replay.filters(units, folder, filters, filter_schema_of(recipe))]
    signals = TaskSignals(folder, filter_schema_of(recipe))
    return [RawDocumentReader(units, folder, recipe.language, recipe.max_document_bytes, extractor=recipe.extractor), SignalsStart(signals),
            *filters, SignalsEnd(signals)]


def shard_writer(recipe: Recipe, folder, replay: Replay | None = None) -> MegatronShardWriter:
    return MegatronShardWriter(
        folder, recipe.name, absolute(recipe.tokenizer), recipe.eod_token, recipe.max_shard_tokens, recipe.batch_size,
        stored=replay.tokens if replay else None,
    )


def passes(recipe: Recipe, inputs, units: list[WorkUnit], folder, replay: Replay | None = None):
    """The passes of a curate run, (name, pipeline, tasks), in order: executor runs over all tasks,
    one after the other. Without dedup, one pass reads, filters and tokenizes each work unit; with
    it, the filter pass hands its kept documents to the dedup passes, then the tokenize pass drops
    the duplicates. Each task's last step writes its signals. A generator, like `dedup_passes`: a
    pass is made once the ones before it have run. ("Stage" is kept for the training stages, CAP
    and CAT.) A refilter (`replay`) runs the same passes on the replayed run's signals."""
    tasks, schema = len(units), signals_schema(filter_schema_of(recipe), bool(recipe.dedup))
    if not recipe.dedup:
        steps = filter_pass(recipe, inputs, units, folder, replay) + [shard_writer(recipe, folder, replay), SignalsWriter(folder, schema)]
        yield "curate", steps, tasks
        return
    d, layout = recipe.dedup, DEDUP_LAYOUT
    signatures = DedupSignatures(folder, layout, recipe.language, d["num_perm"], d["seed"], d["ngram"], recipe.batch_size,
                                 shingle_sets=d["verify"] == "shingles", stored_folder=replay.folder if replay else None)
    yield "filter", filter_pass(recipe, inputs, units, folder, replay) + [signatures], tasks
    partitions = yield from dedup_passes(folder, layout, tasks, d)
    decisions = functools.partial(read_decisions, folder, layout, partitions)
    yield "tokenize", [DedupDocuments(folder, layout), DedupFilter(folder, layout, partitions), shard_writer(recipe, folder, replay),
                       SignalsWriter(folder, schema, decisions)], tasks


def _check_assets(recipe: Recipe) -> None:
    """The tokenizer and every filter's models exist (a remote one is fetched and checked here),
    and every filter's lists and evaluation sets are read whole, so a bad one stops the run before
    any work (the tasks read them again)."""
    for what, path in [("tokenizer", recipe.tokenizer)] + [model for config in recipe.filters for model in config.models()]:
        if not is_remote(path) and not os.path.exists(path):
            raise AuroraError(f"{what} {path} not found (run `make assets` or fix assets in {recipe.path})")
        local_asset(path)
    eod_id(load_tokenizer(recipe.tokenizer), recipe.tokenizer, recipe.eod_token)
    for config in recipe.filters:
        config.check(recipe.language)


def asset_sha256(path: str) -> str:
    with open(local_asset(path), "rb") as f:
        return file_sha256(f)


def signals_basis(recipe: Recipe, files: list[tuple[str, str]], sha=asset_sha256) -> dict:
    """What a run's signals depend on beyond the thresholds: a refilter of the run is exact only
    under a recipe with the same basis (`pipeline.refilter` says which part differs). Models by
    their sha256, so a path moved is the same model and a file rebuilt in place is not. The HTML
    extractor only where `files` (the run's inputs) hold WARC files: other inputs carry their text.
    Then each filter's part (`filters.base.FilterConfig.basis`), in run order, and dedup's."""
    basis = {
        "language": recipe.language,
        "read": {"max_document_bytes": recipe.max_document_bytes, "unit_bytes": recipe.unit_bytes},
        "tokenizer": {"sha256": sha(recipe.tokenizer), "eod_token": recipe.eod_token},
    }
    if any(input_format(path) in WARC_FORMATS for _, path in files):
        basis["read"]["extractor"] = recipe.extractor
    parts: dict = {}
    for config in recipe.filters:
        for key, value in config.basis(sha).items():  # the code recipe's `code` part is two filters' (code, PII)
            parts[key] = {**parts[key], **value} if key in parts else value
    order = {key: i for i, key in enumerate(BASIS_ORDER)}
    basis.update(sorted(parts.items(), key=lambda part: order.get(part[0], len(order))))
    if recipe.dedup:
        d = recipe.dedup
        basis["dedup"] = {"num_perm": d["num_perm"], "seed": d["seed"], "ngram": d["ngram"], "shingle_sets": d["verify"] == "shingles"}
    return basis


def prepare(recipe: Recipe, inputs: list[str] | None, output: str | None, workers: int) -> tuple[Recipe, list[tuple[str, str]]]:
    """The recipe pointed at `inputs` and `output`, its assets checked, and its input files."""
    if inputs:
        recipe = replace(recipe, sources=(Source("input", tuple(inputs)),))
    if output:
        recipe = replace(recipe, output=output)
    if workers < 1:
        raise AuroraError("--workers must be at least 1")
    _check_assets(recipe)
    return recipe, resolve_inputs(recipe.sources)


def run_curation(recipe: Recipe, files: list[tuple[str, str]], executor: str, workers: int, verbose: bool,
                 replay: Replay | None = None) -> dict:
    """Every pass of the recipe over its files into its output, then the manifest."""
    folder = get_datafolder(absolute(recipe.output))
    with output_lock(absolute(recipe.output)):
        claim_output(folder, {"recipe_sha256": recipe.sha256, "inputs": [input_identity(s, p) for s, p in files]})
        units = work_units([(source, absolute(path)) for source, path in files], recipe.unit_bytes)
        for name, pipeline, tasks in passes(recipe, files, units, folder, replay):
            logging_dir = os.path.join(absolute(recipe.output), "logs", name)
            run_pass(make_executor(executor, pipeline, tasks, min(workers, tasks), logging_dir, verbose), name, logging_dir, verbose)
        signals = {"basis": signals_basis(recipe, files), "files": [signals_path(task) for task in range(len(units))]}
        decontamination = recipe.filter(DecontaminationConfig)
        eval_sets = load_index(decontamination.sets, recipe.language).sets if decontamination else None
        dedup_files = [path for task in range(len(units)) for path in DEDUP_LAYOUT.filter_files(task)] if recipe.dedup else None
        manifest = build_pool_manifest(folder, recipe, files, DEDUP_LAYOUT.clusters if recipe.dedup else None,
                                       [unit.describe() for unit in units], signals, eval_sets, dedup_files)
        write_manifest(folder, manifest)
    return manifest
