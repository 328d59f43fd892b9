"""`mix()`: plan the stage, then write it; the steps in the order they run."""

import os
import tempfile
from dataclasses import replace

from datatrove.io import get_datafolder

from core.shards import token_dtype
from core.tokenizer import eod_id, load_tokenizer, tokenizer_info
from filters.decontamination import load_index
from manifests.manifest import write_manifest
from manifests.stage import build_stage_manifest
from pipeline.mix.plan import Plan, format_plan, plan_stage
from pipeline.mix.pools import SOURCES_DIR, Pool, open_pool
from pipeline.mix.recipe import StageRecipe
from pipeline.mix.write import MixPart, write_validation


def _component_record(pool: Pool, plan: Plan) -> dict:
    """What the stage manifest records of a component's pool and plan."""
    component = pool.component
    return {
        "name": plan.name, "language": plan.language,
        # A curated pool's path as the recipe gives it; an instruction pool's inside this stage.
        "pool": {"path": component.pool or f"{SOURCES_DIR}/{component.name}", "in_stage": component.pool is None,
                 "manifest_sha256": pool.manifest_sha256, "shards": [s["prefix"] for s in pool.manifest["shards"]]},
        "available_tokens": plan.available, "budget_tokens": plan.budget, "full_epochs": plan.full_epochs,
        "cut": plan.cut, "holdout": plan.holdout,
        # A budget given in words, and the pool's tokens per word that made it tokens.
        **({"budget_words": component.words, "tokens_per_word": round(plan.tokens_per_word, 6)} if component.words else {}),
    }


def mix(recipe: StageRecipe, dry_run: bool = False, output: str | None = None, executor: str = "local",
        workers: int = 1, verbose: bool = False) -> tuple[str, dict | None]:
    """Plan the stage; unless a dry run, write it. Returns (the plan as text, the stage manifest)."""
    from pipeline.recipe import Source
    from run.executors import make_executor, run_pass
    from run.inputs import absolute, input_identity, resolve_inputs
    from run.lock import output_lock
    from run.output import claim_output

    if output:
        recipe = replace(recipe, output=output)
    tokenizer = load_tokenizer(recipe.tokenizer)
    eod_id(tokenizer, recipe.tokenizer, recipe.eod_token)
    # The evaluation sets are read whole first: a malformed item stops the mix before any work.
    eval_sets = load_index(recipe.decontamination, "en").sets if recipe.decontamination else None
    # 1. Plan before writing anything: instruction pools are built in a scratch folder for it.
    curated = {c.name: open_pool(c, recipe, "", verbose) for c in recipe.components if c.pool}
    with tempfile.TemporaryDirectory(prefix="aurora-mix-") as scratch:
        plans = plan_stage(recipe, [curated.get(c.name) or open_pool(c, recipe, scratch, verbose) for c in recipe.components])
    text = format_plan(recipe, plans)
    if dry_run:
        return text, None
    folder = get_datafolder(absolute(recipe.output))
    instruction_files = resolve_inputs([Source(c.name, c.instructions) for c in recipe.components if c.instructions])
    run = {"recipe_sha256": recipe.sha256, "pools": {n: p.manifest_sha256 for n, p in curated.items()},
           "inputs": [input_identity(source, path) for source, path in instruction_files]}
    with output_lock(absolute(recipe.output)):
        claim_output(folder, run)
        # 2. The instruction pools again, inside the stage (`sources/<component>`).
        sources = os.path.join(absolute(recipe.output), SOURCES_DIR)
        pools = [curated.get(c.name) or open_pool(c, recipe, sources, verbose) for c in recipe.components]
        # 3. The parts, one task each.
        dtype = token_dtype(tokenizer.get_vocab_size())
        logging_dir = os.path.join(absolute(recipe.output), "logs", "mix")
        run_pass(make_executor(executor, [MixPart(folder, recipe, pools, plans, dtype)], recipe.parts,
                               min(workers, recipe.parts), logging_dir, verbose), "mix", logging_dir, verbose)
        # 4. The held-out validation shards, then the manifest.
        validation = [write_validation(folder, pool, plan, recipe.seed, dtype)
                      for pool, plan in zip(pools, plans)] if recipe.validation_documents else None
        manifest = build_stage_manifest(
            folder, name=recipe.name, seed=recipe.seed, parts=recipe.parts, planned_tokens=recipe.tokens,
            recipe_sha256=recipe.sha256, tokenizer=tokenizer_info(recipe.tokenizer, recipe.eod_token),
            components=[_component_record(pool, plan) for pool, plan in zip(pools, plans)], validation=validation,
            eval_sets=eval_sets)
        write_manifest(folder, manifest)
    return text, manifest
