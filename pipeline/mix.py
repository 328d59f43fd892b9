"""`aurora mix`: curated pools -> one training stage (CAP or CAT) with exact token budgets.

Each component of a stage recipe is a pool (a curation run's manifest) or a set of instruction
files (rendered by pipeline.instructions and tokenized into a pool of their own), with a token
budget. A budget of `k` whole pools plus a remainder takes every document `k` times, then the
documents with the smallest keys until the remainder is reached: the component lands at most
one document above its budget. A document's key is a 64-bit hash of the seed, the component and
the document (its pool shard and index), so the choice does not depend on workers or order.

The smallest-keys cut is found with bounded memory: a pass that sums tokens into 65,536 bins
of the key's top bits, then a sort of the documents in the one bin where the budget falls.

The stage is written in `parts` (a recipe setting, not the number of workers): a document goes
to the part its key names, and each part interleaves its components by filling each in
proportion to its budget. Each part streams pool documents one at a time, so memory does not
grow with the stage. Every stage shard has a lineage file: for each of its documents, the
component, pool shard and document index it came from.
"""

import hashlib
import heapq
import math
import os
import tempfile
from array import array
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from datatrove.io import get_datafolder
from datatrove.pipeline.base import PipelineStep

from core.config import NAME, read_yaml
from core.errors import AuroraError
from core.ledger import read_task_records, write_task_record
from core.rejects import RejectWriter
from core.shards import ShardWriter, decode_index, token_dtype
from core.tokenizer import EOD_TOKEN, eod_id, file_sha256, load_tokenizer, tokenizer_info
from manifests.manifest import MANIFEST, load_manifest, write_manifest
from pipeline.instructions import render
from pipeline.readers import iter_records, raw_text
from pipeline.tokenize import encode_documents

LINEAGE_DIR = "lineage"
SOURCES_DIR = "sources"  # instruction components' own pools
_BIN_SHIFT = np.uint64(48)  # 65,536 histogram bins of the key's top 16 bits
_NO_CUT = np.iinfo(np.uint64).max


@dataclass
class Component:
    name: str
    language: str
    tokens: float  # a share of the stage (0 < x <= 1, float) or an absolute count (int)
    max_epochs: float
    pool: str | None = None  # a pool manifest (or its folder)
    instructions: list[str] = field(default_factory=list)  # JSONL globs


@dataclass
class StageRecipe:
    path: str
    sha256: str
    name: str
    seed: int
    tokens: int
    output: str
    tokenizer: str
    parts: int
    max_shard_tokens: int
    eod_token: str
    validation_documents: int  # held out of each component for the trainer's validation
    components: list[Component]


def _error(path: str, message: str) -> AuroraError:
    return AuroraError(f"{path}: {message}")


def _positive_int(value, key: str, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _error(path, f"'{key}' must be a positive integer")
    return value


def load_stage_recipe(path: str) -> StageRecipe:
    raw, data = read_yaml(path, "stage recipe")
    allowed = {"name", "seed", "tokens", "output", "tokenizer", "parts", "max_shard_tokens", "eod_token",
               "validation_documents", "components"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise _error(path, f"unknown key '{unknown[0]}' (allowed: {', '.join(sorted(allowed))})")
    for key in ("name", "output", "tokenizer"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise _error(path, f"'{key}' must be a non-empty string")
    if not NAME.fullmatch(data["name"]):
        raise _error(path, f"'name' must be a file name of letters, digits, '.', '_' and '-', got {data['name']!r}")
    if isinstance(data.get("seed"), bool) or not isinstance(data.get("seed"), int):
        raise _error(path, "'seed' must be an integer")
    components = data.get("components")
    if not isinstance(components, list) or not components:
        raise _error(path, "'components' must be a non-empty list")
    recipe = StageRecipe(
        path=path, sha256=hashlib.sha256(raw).hexdigest(), name=data["name"], seed=data["seed"],
        tokens=_positive_int(data.get("tokens"), "tokens", path), output=data["output"], tokenizer=data["tokenizer"],
        parts=_positive_int(data.get("parts", 1), "parts", path),
        max_shard_tokens=_positive_int(data.get("max_shard_tokens", 1 << 27), "max_shard_tokens", path),
        eod_token=data.get("eod_token", EOD_TOKEN), components=[],
        validation_documents=data.get("validation_documents", 0),
    )
    if isinstance(recipe.validation_documents, bool) or not isinstance(recipe.validation_documents, int) \
            or recipe.validation_documents < 0:
        raise _error(path, "'validation_documents' must be a non-negative integer")
    names = set()
    for i, item in enumerate(components):
        where = f"components[{i}]"
        keys = {"name", "language", "pool", "instructions", "tokens", "max_epochs"}
        if not isinstance(item, dict) or set(item) - keys:
            raise _error(path, f"{where} must be a mapping of {', '.join(sorted(keys))}")
        if not isinstance(item.get("name"), str) or item["name"] in names:
            raise _error(path, f"{where} needs a unique string 'name'")
        if not NAME.fullmatch(item["name"]):  # it names the component's shards and its pool folder
            raise _error(path, f"{where}: 'name' must be a file name of letters, digits, '.', '_' and '-'")
        names.add(item["name"])
        if ("pool" in item) == ("instructions" in item):
            raise _error(path, f"component '{item['name']}' needs exactly one of 'pool' or 'instructions'")
        tokens = item.get("tokens")
        if isinstance(tokens, bool) or not (isinstance(tokens, int) and tokens >= 1 or isinstance(tokens, float) and 0 < tokens <= 1):
            raise _error(path, f"component '{item['name']}': 'tokens' must be a share (0 < x <= 1) or a token count")
        epochs = item.get("max_epochs")
        if isinstance(epochs, bool) or not isinstance(epochs, (int, float)) or not 0 < epochs < math.inf:
            raise _error(path, f"component '{item['name']}': 'max_epochs' must be a positive number")
        instructions = item.get("instructions", [])
        instructions = [instructions] if isinstance(instructions, str) else instructions
        if not isinstance(item.get("language"), str) or not all(isinstance(p, str) for p in instructions):
            raise _error(path, f"component '{item['name']}' needs a string 'language' and path globs")
        recipe.components.append(Component(item["name"], item["language"], tokens, epochs, item.get("pool"), instructions))
    return recipe


def budgets(recipe: StageRecipe) -> list[int]:
    """Each component's budget in tokens; refused when they add up to more than the stage."""
    values = [c.tokens if isinstance(c.tokens, int) else round(c.tokens * recipe.tokens) for c in recipe.components]
    if sum(values) > recipe.tokens:
        raise AuroraError(f"{recipe.path}: the component budgets add up to {sum(values):,} tokens, "
                          f"more than the stage total of {recipe.tokens:,}")
    return values


# --- pools --------------------------------------------------------------------------------------

def build_instruction_pool(component: Component, recipe: StageRecipe, folder) -> None:
    """Render and tokenize an instruction component into a pool of its own (shards, rejects, manifest)."""
    from pipeline.curate import resolve_inputs
    from pipeline.recipe import Source

    paths = [path for _, path in resolve_inputs([Source(component.name, component.instructions)])]
    tokenizer = load_tokenizer(recipe.tokenizer)
    eod = eod_id(tokenizer, recipe.tokenizer, recipe.eod_token)
    dtype = token_dtype(tokenizer.get_vocab_size())
    shards, writer, documents_in, malformed = [], None, 0, Counter()
    with RejectWriter(folder, "instructions") as rejects:
        for path in paths:
            for fallback_id, record, reason, raw in iter_records(path):
                documents_in += 1
                if reason is not None:  # not a parsable record at all
                    malformed[reason] += 1
                else:
                    text, reason = render(record)
                if reason is not None:
                    doc_id = record.get("id") if isinstance(record, dict) and isinstance(record.get("id"), str) else fallback_id
                    rejects.write_record({"id": doc_id, "reason": reason, "raw": raw_text(raw if raw is not None else record)}, 0)
                    continue
                tokens, lengths = encode_documents(tokenizer, [text], eod)
                if writer is not None and writer.tokens + len(tokens) > recipe.max_shard_tokens:
                    shards.append({**writer.close(), "source": component.name, "language": component.language})
                    writer = None
                if writer is None:
                    writer = ShardWriter(folder, f"shards/{component.name}_00000_{len(shards):04d}", dtype)
                writer.add_many(tokens, lengths)
        removed = rejects.counts - malformed
    if writer is not None:
        shards.append({**writer.close(), "source": component.name, "language": component.language})
    kept = sum(s["documents"] for s in shards)
    write_manifest(folder, {
        "kind": "pool",
        "name": component.name,
        "language": component.language,
        "tokenizer": tokenizer_info(recipe.tokenizer, recipe.eod_token),
        "recipe_sha256": recipe.sha256,
        "inputs": [{"source": component.name, "path": p} for p in paths],
        "shards": shards,
        "totals": {"documents": kept, "tokens": sum(s["tokens"] for s in shards)},
        "funnel": {"documents_in": documents_in, "malformed": dict(sorted(malformed.items())),
                   "removed": dict(sorted(removed.items())), "kept": kept},
    })


@dataclass
class Pool:
    component: Component
    manifest: dict
    folder: object
    manifest_sha256: str

    @property
    def tokens(self) -> int:
        return self.manifest["totals"]["tokens"]

    def shards(self):
        """(shard number, its index) of every shard, one index in memory at a time."""
        for number, shard in enumerate(self.manifest["shards"]):
            with self.folder.open(shard["prefix"] + ".idx", "rb") as f:
                yield number, decode_index(f.read())


def open_pool(component: Component, recipe: StageRecipe, sources_folder: str) -> Pool:
    """The component's pool; an instruction component's is built first, under `sources_folder`."""
    if component.instructions:
        path = os.path.join(sources_folder, component.name)
        build_instruction_pool(component, recipe, get_datafolder(path))
    else:
        path = component.pool
    try:
        manifest, folder = load_manifest(path)
    except AuroraError:
        raise AuroraError(f"component '{component.name}': no pool manifest at {path} (curate it first)") from None
    with folder.open(MANIFEST, "rb") as f:
        sha = file_sha256(f)
    expected = tokenizer_info(recipe.tokenizer, recipe.eod_token)["sha256"]
    if manifest["tokenizer"]["sha256"] != expected:
        raise AuroraError(f"component '{component.name}': pool {path} was tokenized with another tokenizer than {recipe.tokenizer}")
    return Pool(component, manifest, folder, sha)


# --- selection ----------------------------------------------------------------------------------

def _splitmix64(x: np.ndarray) -> np.ndarray:
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def document_keys(seed: int, component: str, shard_prefix: str, count: int) -> np.ndarray:
    """The selection key of each document of a pool shard: a hash of seed, component and document."""
    base = hashlib.blake2b(f"{seed}\0{component}\0{shard_prefix}".encode(), digest_size=8).digest()
    return _splitmix64(np.uint64(int.from_bytes(base, "little")) + np.arange(count, dtype=np.uint64))


def _keyed_shards(pool: Pool, seed: int, holdout: int | None = None):
    """(shard number, index, keys, which documents are for training: all but the held-out)."""
    for number, index in pool.shards():
        prefix = pool.manifest["shards"][number]["prefix"]
        keys = document_keys(seed, pool.component.name, prefix, len(index.lengths))
        yield number, index, keys, (keys < np.uint64(holdout)) if holdout is not None else np.ones(len(keys), bool)


def holdout_key(pool: Pool, seed: int, count: int) -> int | None:
    """The smallest key of the `count` documents with the largest keys: those are held out for
    validation (with bounded memory: at most `count` keys from each shard are kept)."""
    if count == 0:
        return None
    if count >= pool.manifest["totals"]["documents"]:
        raise AuroraError(f"component '{pool.component.name}': holding out {count} validation documents "
                          "leaves none to train on")
    top = np.zeros(0, dtype=np.uint64)
    for _, _, keys, _ in _keyed_shards(pool, seed):
        top = np.concatenate([top, keys])
        top = np.partition(top, len(top) - count)[-count:] if len(top) > count else top
    return int(top.min())


def partial_cut(pool: Pool, seed: int, remainder: int, holdout: int | None = None) -> np.uint64:
    """The largest key to take so the training documents with keys up to it first reach `remainder` tokens."""
    if remainder <= 0:
        return None
    histogram = np.zeros(1 << 16, dtype=np.int64)
    for _, index, keys, train in _keyed_shards(pool, seed, holdout):
        histogram += np.bincount((keys[train] >> _BIN_SHIFT).astype(np.int64), weights=index.lengths[train],
                                 minlength=1 << 16).astype(np.int64)
    cumulative = np.cumsum(histogram)
    crossing = int(np.searchsorted(cumulative, remainder))
    before = int(cumulative[crossing - 1]) if crossing else 0
    keys, lengths = [], []
    for _, index, shard_keys, train in _keyed_shards(pool, seed, holdout):
        inside = train & ((shard_keys >> _BIN_SHIFT) == crossing)
        keys.append(shard_keys[inside])
        lengths.append(index.lengths[inside].astype(np.int64))
    keys, lengths = np.concatenate(keys), np.concatenate(lengths)
    order = np.argsort(keys, kind="stable")
    taken = before + np.cumsum(lengths[order])
    return keys[order][int(np.searchsorted(taken, remainder))]


@dataclass
class Plan:
    """One component's share of the stage."""
    name: str
    language: str
    available: int
    budget: int
    full_epochs: int
    cut: int | None  # key cut of the partial epoch, or None
    holdout: int | None  # documents with keys from here on are held out for validation, or None
    part_tokens: list[int]  # tokens each part will write

    @property
    def epochs(self) -> float:
        return self.budget / self.available


def plan_stage(recipe: StageRecipe, pools: list[Pool]) -> list[Plan]:
    plans = []
    for pool, budget in zip(pools, budgets(recipe)):
        component = pool.component
        if pool.tokens == 0:
            raise AuroraError(f"component '{component.name}': its pool has no tokens")
        holdout = holdout_key(pool, recipe.seed, recipe.validation_documents)
        available = sum(int(index.lengths[train].sum()) for _, index, _, train in _keyed_shards(pool, recipe.seed, holdout))
        if budget > component.max_epochs * available:
            raise AuroraError(
                f"component '{component.name}': a budget of {budget:,} tokens needs {budget / available:.2f} "
                f"epochs of its {available:,}-token pool, more than max_epochs {component.max_epochs}"
            )
        full = budget // available
        cut = partial_cut(pool, recipe.seed, budget - full * available, holdout)
        part_tokens = np.zeros(recipe.parts, dtype=np.int64)
        for _, index, keys, train in _keyed_shards(pool, recipe.seed, holdout):
            parts = (keys % np.uint64(recipe.parts)).astype(np.int64)
            part_tokens += full * np.bincount(parts[train], weights=index.lengths[train], minlength=recipe.parts).astype(np.int64)
            if cut is not None:
                taken = train & (keys <= cut)
                part_tokens += np.bincount(parts[taken], weights=index.lengths[taken], minlength=recipe.parts).astype(np.int64)
        plans.append(Plan(component.name, component.language, available, budget, int(full),
                          None if cut is None else int(cut), holdout, part_tokens.tolist()))
    return plans


def format_plan(recipe: StageRecipe, plans: list[Plan]) -> str:
    lines = [f"stage {recipe.name}: {recipe.tokens:,} tokens, seed {recipe.seed}, {recipe.parts} parts",
             f"{'component':<16} {'language':<8} {'available':>12} {'budget':>12} {'share':>7}  sampling"]
    for p in plans:
        how = f"{p.epochs:.3f} of the pool" if p.epochs < 1 else f"{p.epochs:.2f} epochs ({p.full_epochs} whole + a sample)"
        lines.append(f"{p.name:<16} {p.language:<8} {p.available:>12,} {p.budget:>12,} {p.budget / recipe.tokens:>7.1%}  {how}")
    return "\n".join(lines)


# --- writing ------------------------------------------------------------------------------------

def _component_documents(pool: Pool, plan: Plan, seed: int, parts: int, part: int):
    """(pool shard, document index, tokens) of this part's documents of one component, in order:
    whole epochs first, then the partial sample; one document in memory at a time."""
    passes = [None] * plan.full_epochs + ([plan.cut] if plan.cut is not None else [])
    for cut in passes:
        for number, index, keys, train in _keyed_shards(pool, seed, plan.holdout):
            mine = train & ((keys % np.uint64(parts)) == np.uint64(part))
            if cut is not None:
                mine &= keys <= np.uint64(cut)
            prefix = pool.manifest["shards"][number]["prefix"]
            with pool.folder.open(prefix + ".bin", "rb") as f:
                for doc in np.flatnonzero(mine).tolist():
                    yield number, doc, np.frombuffer(index.read(f, doc), dtype=index.dtype)


def write_validation(folder, pool: Pool, plan: Plan, seed: int, dtype) -> dict:
    """The component's held-out documents, in pool order, as the shard `validation/<component>`."""
    writer = ShardWriter(folder, f"validation/{plan.name}", dtype)
    for number, index, _, train in _keyed_shards(pool, seed, plan.holdout):
        prefix = pool.manifest["shards"][number]["prefix"]
        with pool.folder.open(prefix + ".bin", "rb") as f:
            for doc in np.flatnonzero(~train).tolist():
                writer.add(np.frombuffer(index.read(f, doc), dtype=index.dtype))
    return {**writer.close(), "component": plan.name, "language": plan.language}


def interleave(streams: list, targets: list[int]):
    """(component, item) from each stream, always from the component furthest behind its target share."""
    heap = [(0.0, c) for c, target in enumerate(targets) if target > 0]
    iterators = {c: iter(stream) for c, stream in enumerate(streams)}
    written = [0] * len(streams)
    heapq.heapify(heap)
    while heap:
        _, c = heapq.heappop(heap)
        item = next(iterators[c], None)
        if item is None:
            continue
        yield c, item
        written[c] += len(item[2])
        heapq.heappush(heap, (written[c] / targets[c], c))


class StageShards:
    """A part's stage shards, each closed before it would pass `max_tokens`, with its lineage file."""

    def __init__(self, folder, prefix: str, dtype, max_tokens: int):
        self.folder, self.prefix, self.dtype, self.max_tokens = folder, prefix, dtype, max_tokens
        self.shards: list[dict] = []
        self._writer, self._lineage = None, None

    def add(self, component: int, shard: int, doc: int, tokens: np.ndarray) -> None:
        if self._writer is not None and self._writer.tokens + len(tokens) > self.max_tokens:
            self._close()
        if self._writer is None:
            self._writer = ShardWriter(self.folder, f"{self.prefix}_{len(self.shards):04d}", self.dtype)
            self._lineage = (array("i"), array("i"), array("q"))  # compact: 16 bytes a document
        self._writer.add(tokens)
        for column, value in zip(self._lineage, (component, shard, doc)):
            column.append(value)

    def _close(self) -> None:
        shard = self._writer.close()
        name = shard["prefix"].rsplit("/", 1)[-1]
        path = f"{LINEAGE_DIR}/{name}.parquet"
        component, pool_shard, document = (np.frombuffer(column, dtype=column.typecode) for column in self._lineage)
        table = pa.table({"component": pa.array(component, pa.int32()), "pool_shard": pa.array(pool_shard, pa.int32()),
                          "document": pa.array(document, pa.int64())})
        with self.folder.open(path + ".tmp", "wb") as f:
            pq.write_table(table, f, compression="zstd")
        self.folder.mv(path + ".tmp", path)
        with self.folder.open(path, "rb") as f:
            shard["lineage"] = {"path": path, "sha256": file_sha256(f)}
        self.shards.append(shard)
        self._writer, self._lineage = None, None

    def close(self) -> list[dict]:
        if self._writer is not None:
            self._close()
        return self.shards


class MixPart(PipelineStep):
    """One part of the stage: interleaves every component's documents of this part into shards."""

    name = "🥣 Mix"
    type = "🥣 - MIX"

    def __init__(self, folder, recipe: StageRecipe, pools: list[Pool], plans: list[Plan], dtype):
        super().__init__()
        self.folder, self.recipe, self.pools, self.plans, self.dtype = folder, recipe, pools, plans, dtype

    def run(self, data, rank: int = 0, world_size: int = 1):
        recipe = self.recipe
        streams = [_component_documents(pool, plan, recipe.seed, recipe.parts, rank) for pool, plan in zip(self.pools, self.plans)]
        shards = StageShards(self.folder, f"shards/{recipe.name}_{rank:05d}", self.dtype, recipe.max_shard_tokens)
        tokens, documents = [0] * len(self.plans), [0] * len(self.plans)
        for c, (pool_shard, doc, doc_tokens) in interleave(streams, [p.part_tokens[rank] for p in self.plans]):
            shards.add(c, pool_shard, doc, doc_tokens)
            tokens[c] += len(doc_tokens)
            documents[c] += 1
            self.stat_update("documents")
        write_task_record(self.folder, rank, "mix", {"shards": shards.close(), "tokens": tokens, "documents": documents})
        yield from ()


def stage_manifest(recipe: StageRecipe, pools: list[Pool], plans: list[Plan], folder) -> dict:
    shards, tokens, documents = [], np.zeros(len(plans), np.int64), np.zeros(len(plans), np.int64)
    for part in range(recipe.parts):
        record = read_task_records(folder, part).get("mix")
        if record is None:
            raise AuroraError(f"part {part} of stage {recipe.name} did not finish; run the same command again")
        shards += record["shards"]
        tokens += record["tokens"]
        documents += record["documents"]
    total = int(tokens.sum())
    components = []
    for pool, plan, actual, count in zip(pools, plans, tokens.tolist(), documents.tolist()):
        components.append({
            "name": plan.name, "language": plan.language,
            # A curated pool's path as the recipe gives it; an instruction pool's inside this stage.
            "pool": {"path": pool.component.pool or f"{SOURCES_DIR}/{pool.component.name}", "in_stage": pool.component.pool is None,
                     "manifest_sha256": pool.manifest_sha256, "shards": [s["prefix"] for s in pool.manifest["shards"]]},
            "available_tokens": plan.available, "budget_tokens": plan.budget, "tokens": actual, "documents": count,
            "epochs": round(actual / plan.available, 6), "full_epochs": plan.full_epochs, "cut": plan.cut, "holdout": plan.holdout,
            "planned_share": round(plan.budget / sum(p.budget for p in plans), 6), "share": round(actual / total, 6),
        })
    return {
        "kind": "stage",
        "name": recipe.name,
        "language": "+".join(sorted({p.language for p in plans})),
        "tokenizer": tokenizer_info(recipe.tokenizer, recipe.eod_token),
        "recipe_sha256": recipe.sha256,
        "seed": recipe.seed,
        "parts": recipe.parts,
        "planned_tokens": recipe.tokens,
        "components": components,
        "shards": shards,
        "totals": {"documents": int(documents.sum()), "tokens": total},
    }


def mix(recipe: StageRecipe, dry_run: bool = False, output: str | None = None, executor: str = "local",
        workers: int = 1, verbose: bool = False) -> tuple[str, dict | None]:
    """Plan the stage; unless a dry run, write it. Returns (the plan as text, the stage manifest)."""
    from pipeline.curate import absolute, claim_output, input_identity, resolve_inputs
    from pipeline.executors import make_executor, run_pass
    from pipeline.lock import output_lock
    from pipeline.recipe import Source

    if output:
        recipe.output = output
    tokenizer = load_tokenizer(recipe.tokenizer)
    eod_id(tokenizer, recipe.tokenizer, recipe.eod_token)
    budgets(recipe)
    curated = {c.name: open_pool(c, recipe, "") for c in recipe.components if c.pool}
    with tempfile.TemporaryDirectory(prefix="aurora-mix-") as scratch:  # plan before writing anything
        plans = plan_stage(recipe, [curated.get(c.name) or open_pool(c, recipe, scratch) for c in recipe.components])
    text = format_plan(recipe, plans)
    if dry_run:
        return text, None
    folder = get_datafolder(absolute(recipe.output))
    instruction_files = resolve_inputs([Source(c.name, c.instructions) for c in recipe.components if c.instructions])
    run = {"recipe_sha256": recipe.sha256, "pools": {n: p.manifest_sha256 for n, p in curated.items()},
           "inputs": [input_identity(source, path) for source, path in instruction_files]}
    with output_lock(absolute(recipe.output)):
        claim_output(folder, run)
        sources = os.path.join(absolute(recipe.output), SOURCES_DIR)
        pools = [curated.get(c.name) or open_pool(c, recipe, sources) for c in recipe.components]
        dtype = token_dtype(tokenizer.get_vocab_size())
        logging_dir = os.path.join(absolute(recipe.output), "logs", "mix")
        run_pass(make_executor(executor, [MixPart(folder, recipe, pools, plans, dtype)], recipe.parts,
                                min(workers, recipe.parts), logging_dir, verbose), "mix", logging_dir, verbose)
        manifest = stage_manifest(recipe, pools, plans, folder)
        if recipe.validation_documents:
            manifest["validation"] = [write_validation(folder, pool, plan, recipe.seed, dtype)
                                      for pool, plan in zip(pools, plans)]
        write_manifest(folder, manifest)
    return text, manifest
