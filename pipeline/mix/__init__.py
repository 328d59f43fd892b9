"""`aurora mix`: curated pools -> one training stage (CAP or CAT) with exact token budgets.

One module per job, in the order a stage is made:

- `recipe`: the stage recipe (components, budgets), validated up front;
- `pools`: the pools a stage draws from; instruction files become a pool by the curation path;
- `selection`: which documents are taken (keys, whole epochs plus a remainder, the cut, the
  held-out validation documents), as pure functions of keys and lengths;
- `plan`: the selection applied to each component's pool and budget;
- `write`: the stage's parts, interleaved, with their lineage files, and the validation shards;
- `run`: `mix()`, the steps in order; the stage manifest itself is `manifests.stage`.
"""

from pipeline.mix.recipe import Component, StageRecipe, budgets, load_stage_recipe
from pipeline.mix.run import mix

__all__ = ["Component", "StageRecipe", "budgets", "load_stage_recipe", "mix"]
