"""The plan of a stage: per component, what the selection rules (`pipeline.mix.selection`) make of
its pool and budget: whole epochs, the partial cut, the held-out documents and each part's
tokens. Pools are read shard by shard, so memory does not grow with them."""

from dataclasses import dataclass

import numpy as np

from core.errors import AuroraError
from pipeline.mix.pools import Pool
from pipeline.mix.recipe import StageRecipe, budgets
from pipeline.mix.selection import holdout_key, part_tokens, partial_cut, whole_epochs


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
    tokens_per_word: float | None  # the pool's (EOD included), to show the budget in words; None if not measured
    tokens_per_character: float | None

    @property
    def epochs(self) -> float:
        return self.budget / self.available


def plan_component(pool: Pool, budget: int, seed: int, parts: int, validation_documents: int) -> Plan:
    component = pool.component
    if pool.tokens == 0:
        raise AuroraError(f"component '{component.name}': its pool has no tokens")
    if validation_documents and validation_documents >= pool.manifest["totals"]["documents"]:
        raise AuroraError(f"component '{component.name}': holding out {validation_documents} validation documents "
                          "leaves none to train on")
    holdout = holdout_key((keys for _, _, keys, _ in pool.keyed_shards(seed)), validation_documents)
    available = sum(int(index.lengths[train].sum()) for _, index, _, train in pool.keyed_shards(seed, holdout))
    full, remainder = whole_epochs(component.name, budget, available, component.max_epochs)
    cut = partial_cut(lambda: ((keys[train], index.lengths[train]) for _, index, keys, train in pool.keyed_shards(seed, holdout)),
                      remainder)
    tokens = np.zeros(parts, dtype=np.int64)
    for _, index, keys, train in pool.keyed_shards(seed, holdout):
        tokens += part_tokens(keys, index.lengths, train, parts, full, cut)
    return Plan(component.name, component.language, available, budget, full, cut, holdout, tokens.tolist(),
                pool.tokens_per("words"), pool.tokens_per("characters"))


def plan_stage(recipe: StageRecipe, pools: list[Pool]) -> list[Plan]:
    return [plan_component(pool, budget, recipe.seed, recipe.parts, recipe.validation_documents)
            for pool, budget in zip(pools, budgets(recipe, [pool.tokens_per("words") for pool in pools]))]


def _in(budget: int, tokens_per: float | None) -> str:
    return "-" if tokens_per is None else f"{round(budget / tokens_per):,}"


def format_plan(recipe: StageRecipe, plans: list[Plan]) -> str:
    """Per component: its pool's tokens, its budget in tokens and, at its pool's measured
    fertility, in words and characters, its share of the stage and how it is sampled."""
    lines = [f"stage {recipe.name}: {recipe.tokens:,} tokens, seed {recipe.seed}, {recipe.parts} parts",
             f"{'component':<16} {'language':<8} {'available':>12} {'budget':>12} {'words':>12} {'characters':>13} {'share':>7}  sampling"]
    for p in plans:
        how = f"{p.epochs:.3f} of the pool" if p.epochs < 1 else f"{p.epochs:.2f} epochs ({p.full_epochs} whole + a sample)"
        lines.append(f"{p.name:<16} {p.language:<8} {p.available:>12,} {p.budget:>12,} {_in(p.budget, p.tokens_per_word):>12} "
                     f"{_in(p.budget, p.tokens_per_character):>13} {p.budget / recipe.tokens:>7.1%}  {how}")
    lines.append("(words and characters: the budget at the pool's tokens per word and per character, EOD included)")
    return "\n".join(lines)
