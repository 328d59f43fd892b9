"""The pools a stage draws from: curated pools as their manifests name them, and instruction
pools, built from a component's instruction files by the curation path itself.

An instruction pool is one curation task over all the component's files: the ordinary reader
(whole records), `RenderInstructions` (a record that cannot be rendered is removed with its
reason), the ordinary Megatron shard writer, the task ledger and `build_pool_manifest` with its
funnel balance check. Its shards are `shards/<component>_00000_<part>`.
"""

import os
from dataclasses import dataclass

import numpy as np
from datatrove.io import get_datafolder

from core.errors import AuroraError
from core.shards import decode_index
from core.tokenizer import file_sha256, tokenizer_info
from filters.decontamination import DecontaminationFilter, load_index
from manifests.audit import audit_shard
from manifests.manifest import MANIFEST, ManifestMissing, build_pool_manifest, load_manifest, write_manifest
from pipeline.instructions import RenderInstructions
from pipeline.mix.recipe import Component, StageRecipe
from pipeline.mix.selection import document_keys, for_training
from readers.records import RawDocumentReader

SOURCES_DIR = "sources"  # instruction components' own pools, inside the stage's folder


@dataclass
class Pool:
    component: Component
    manifest: dict
    folder: object
    manifest_sha256: str

    @property
    def tokens(self) -> int:
        return self.manifest["totals"]["tokens"]

    def tokens_per(self, unit: str) -> float | None:
        """The pool's tokens (EOD included, as a budget counts them) per word or per character
        (`unit`) of its documents, from its manifest's fertility; None when it records none."""
        counted = self.manifest.get("fertility", {}).get("total", {}).get(unit)
        return self.tokens / counted if counted else None

    def shards(self):
        """(shard number, its index) of every shard, one index in memory at a time."""
        for number, shard in enumerate(self.manifest["shards"]):
            with self.folder.open(shard["prefix"] + ".idx", "rb") as f:
                yield number, decode_index(f.read())

    def keyed_shards(self, seed: int, holdout: int | None = None):
        """(shard number, index, keys, which documents are for training: all but the held-out)."""
        for number, index in self.shards():
            keys = document_keys(seed, self.component.name, self.manifest["shards"][number]["prefix"], len(index.lengths))
            yield number, index, keys, for_training(keys, holdout)

    def documents(self, number: int, index, which: np.ndarray):
        """(document, its tokens) of the chosen documents of one shard, one in memory at a time."""
        with self.folder.open(self.manifest["shards"][number]["prefix"] + ".bin", "rb") as f:
            for doc in np.flatnonzero(which).tolist():
                yield doc, np.frombuffer(index.read(f, doc), dtype=index.dtype)


def build_instruction_pool(component: Component, recipe: StageRecipe, path: str, verbose: bool = False) -> None:
    """Read, render and tokenize an instruction component into a pool at `path` (shards, rejects,
    task ledger, manifest). One task on the local executor: a rerun resumes like curation's."""
    from pipeline.passes import shard_writer
    from pipeline.recipe import Recipe, Source
    from run.executors import make_executor, run_pass
    from run.inputs import absolute, resolve_inputs

    pool = Recipe(path=recipe.path, sha256=recipe.sha256, name=component.name, language=component.language,
                  sources=(Source(component.name, component.instructions),), output=path, tokenizer=recipe.tokenizer,
                  eod_token=recipe.eod_token, max_shard_tokens=recipe.max_shard_tokens)
    inputs = resolve_inputs(pool.sources)
    folder = get_datafolder(absolute(path))
    sets = [s._replace(path=absolute(s.path)) for s in recipe.decontamination]
    steps = [
        RawDocumentReader([(source, absolute(p)) for source, p in inputs], folder, pool.language, pool.max_document_bytes,
                          whole_records=True),
        RenderInstructions(folder),
        *([DecontaminationFilter(folder, sets, pool.language)] if sets else []),
        shard_writer(pool, folder),
    ]
    logging_dir = os.path.join(absolute(path), "logs", "curate")
    run_pass(make_executor("local", steps, 1, 1, logging_dir, verbose), "curate", logging_dir, verbose)
    eval_sets = load_index(sets, pool.language).sets if sets else None
    write_manifest(folder, build_pool_manifest(folder, pool, inputs, eval_sets=eval_sets))


def open_pool(component: Component, recipe: StageRecipe, sources_folder: str, verbose: bool = False) -> Pool:
    """The component's pool; an instruction component's is built first, under `sources_folder`."""
    if component.instructions:
        path = os.path.join(sources_folder, component.name)
        build_instruction_pool(component, recipe, path, verbose)
    else:
        path = component.pool
    try:
        manifest, folder = load_manifest(path)
    except ManifestMissing:
        raise AuroraError(f"component '{component.name}': no pool manifest at {path} (curate it first)") from None
    except AuroraError as e:  # there, but unusable: say why
        raise AuroraError(f"component '{component.name}': {e}") from None
    if manifest["kind"] != "pool":
        raise AuroraError(f"component '{component.name}': {path} is a {manifest['kind']} manifest, not a pool")
    if manifest["language"] != component.language:
        raise AuroraError(f"component '{component.name}' says language '{component.language}', its pool {path} is "
                          f"'{str(manifest['language'])[:40]}'")
    with folder.open(MANIFEST, "rb") as f:
        sha = file_sha256(f)
    expected = tokenizer_info(recipe.tokenizer, recipe.eod_token)["sha256"]
    if manifest["tokenizer"]["sha256"] != expected:
        raise AuroraError(f"component '{component.name}': pool {path} was tokenized with another tokenizer than {recipe.tokenizer}")
    # Every shard is checked against the pool's manifest before a token of it is taken: a damaged
    # or swapped pool file would otherwise pass into the stage, whose audit trusts its pools.
    for shard in manifest["shards"]:
        problems = audit_shard(folder, shard, manifest["tokenizer"]["eod_id"])
        if problems:
            raise AuroraError(f"component '{component.name}': pool {path} fails its audit: {problems[0]}")
    return Pool(component, manifest, folder, sha)
