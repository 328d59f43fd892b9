"""Writing a stage: its parts, each interleaving its components' documents into stage shards
with their lineage files, and the held-out validation shards.

The stage is written in `parts` (a recipe setting, not the number of workers): a document goes
to the part its key names, and each part interleaves its components by filling each in
proportion to its budget. Each part streams pool documents one at a time, so memory does not
grow with the stage. Every stage shard has a lineage file: for each of its documents, the
component, pool shard and document index it came from.
"""

import hashlib
import heapq
import io
from array import array

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from datatrove.pipeline.base import PipelineStep

from core.atomic import write_atomic
from core.ledger import write_task_record
from core.shards import ShardSequence, ShardWriter
from pipeline.mix.plan import Plan
from pipeline.mix.pools import Pool
from pipeline.mix.recipe import StageRecipe
from pipeline.mix.selection import pool_passes, selected

LINEAGE_DIR = "lineage"
_NO_LABELS = [{}]  # stage shards carry no source or language of their own: lineage says where each document is from


def component_documents(pool: Pool, plan: Plan, seed: int, parts: int, part: int):
    """(pool shard, document index, tokens) of this part's documents of one component, in order:
    whole epochs first, then the partial sample; one document in memory at a time."""
    for cut in pool_passes(plan.full_epochs, plan.cut):
        for number, index, keys, train in pool.keyed_shards(seed, plan.holdout):
            for doc, tokens in pool.documents(number, index, selected(keys, train, parts, part, cut)):
                yield number, doc, tokens


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
    """A part's stage shards (rolled over by `core.shards.ShardSequence`), each with its lineage file."""

    def __init__(self, folder, prefix: str, dtype, max_tokens: int):
        self.folder = folder
        self._shards = ShardSequence(folder, prefix, dtype, max_tokens, on_close=self._write_lineage)
        self._lineage = self._columns()

    @staticmethod
    def _columns() -> tuple[array, array, array]:
        return array("i"), array("i"), array("q")  # component, pool shard, document: 16 bytes a document

    def add(self, component: int, shard: int, doc: int, tokens: np.ndarray) -> None:
        self._shards.add(tokens, [len(tokens)], _NO_LABELS)  # closes the shard before, when the document does not fit
        for column, value in zip(self._lineage, (component, shard, doc)):
            column.append(value)

    def _write_lineage(self, shard: dict) -> dict:
        """The lineage file of the shard just closed: its documents so far."""
        path = f"{LINEAGE_DIR}/{shard['prefix'].rsplit('/', 1)[-1]}.parquet"
        component, pool_shard, document = (np.frombuffer(column, dtype=column.typecode) for column in self._lineage)
        table = pa.table({"component": pa.array(component, pa.int32()), "pool_shard": pa.array(pool_shard, pa.int32()),
                          "document": pa.array(document, pa.int64())})
        data = io.BytesIO()
        pq.write_table(table, data, compression="zstd")
        write_atomic(self.folder, path, data.getvalue())
        self._lineage = self._columns()
        return {"lineage": {"path": path, "sha256": hashlib.sha256(data.getvalue()).hexdigest()}}

    def close(self) -> list[dict]:
        return self._shards.close()


class MixPart(PipelineStep):
    """One part of the stage: interleaves every component's documents of this part into shards."""

    name = "🥣 Mix"
    type = "🥣 - MIX"

    def __init__(self, folder, recipe: StageRecipe, pools: list[Pool], plans: list[Plan], dtype):
        super().__init__()
        self.folder, self.recipe, self.pools, self.plans, self.dtype = folder, recipe, pools, plans, dtype

    def run(self, data, rank: int = 0, world_size: int = 1):
        recipe = self.recipe
        streams = [component_documents(pool, plan, recipe.seed, recipe.parts, rank) for pool, plan in zip(self.pools, self.plans)]
        shards = StageShards(self.folder, f"shards/{recipe.name}_{rank:05d}", self.dtype, recipe.max_shard_tokens)
        tokens, documents = [0] * len(self.plans), [0] * len(self.plans)
        for c, (pool_shard, doc, doc_tokens) in interleave(streams, [p.part_tokens[rank] for p in self.plans]):
            shards.add(c, pool_shard, doc, doc_tokens)
            tokens[c] += len(doc_tokens)
            documents[c] += 1
            self.stat_update("documents")
        write_task_record(self.folder, rank, "mix", {"shards": shards.close(), "tokens": tokens, "documents": documents})
        yield from ()


def write_validation(folder, pool: Pool, plan: Plan, seed: int, dtype) -> dict:
    """The component's held-out documents, in pool order, as the shard `validation/<component>`."""
    writer = ShardWriter(folder, f"validation/{plan.name}", dtype)
    for number, index, _, train in pool.keyed_shards(seed, plan.holdout):
        for _, tokens in pool.documents(number, index, ~train):
            writer.add(tokens)
    return {**writer.close(), "component": plan.name, "language": plan.language}
