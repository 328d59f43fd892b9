"""Stage manifests (`kind: stage`): what `aurora mix` wrote, summed from its parts' task ledgers.

Built from plain values, so any writer of a stage can make one: the stage's settings, and per
component (in recipe order) its pool and plan. The parts' ledgers (`tasks/<part>/mix.json`)
give the shards and, per component, the tokens and documents each part wrote.
"""

import numpy as np

from core.errors import AuroraError
from core.ledger import read_task_records


def build_stage_manifest(folder, *, name: str, seed: int, parts: int, planned_tokens: int, recipe_sha256: str,
                         tokenizer: dict, components: list[dict], validation: list[dict] | None = None,
                         eval_sets: list[dict] | None = None) -> dict:
    """`components`: per component, `name`, `language`, `pool` ({path, in_stage, manifest_sha256,
    shards}), `available_tokens`, `budget_tokens`, `full_epochs`, `cut` and `holdout`, and for a
    budget given in words, `budget_words` and the pool's `tokens_per_word` that converted it; the actual
    tokens, documents, epochs and shares come from the ledgers. Every part must have finished.
    `eval_sets`: the evaluation sets the instruction components were decontaminated against."""
    shards, tokens, documents = [], np.zeros(len(components), np.int64), np.zeros(len(components), np.int64)
    for part in range(parts):
        record = read_task_records(folder, part).get("mix")
        if record is None:
            raise AuroraError(f"part {part} of stage {name} did not finish; run the same command again")
        shards += record["shards"]
        tokens += record["tokens"]
        documents += record["documents"]
    total = int(tokens.sum())
    planned = sum(c["budget_tokens"] for c in components)
    manifest = {
        "kind": "stage",
        "name": name,
        "language": "+".join(sorted({c["language"] for c in components})),
        "tokenizer": tokenizer,
        "recipe_sha256": recipe_sha256,
        "seed": seed,
        "parts": parts,
        "planned_tokens": planned_tokens,
        "components": [{
            "name": c["name"], "language": c["language"], "pool": c["pool"],
            "available_tokens": c["available_tokens"], "budget_tokens": c["budget_tokens"], "tokens": actual, "documents": count,
            "epochs": round(actual / c["available_tokens"], 6), "full_epochs": c["full_epochs"], "cut": c["cut"],
            "holdout": c["holdout"], "planned_share": round(c["budget_tokens"] / planned, 6), "share": round(actual / total, 6),
            **{key: c[key] for key in ("budget_words", "tokens_per_word") if key in c},
        } for c, actual, count in zip(components, tokens.tolist(), documents.tolist())],
        "shards": shards,
        "totals": {"documents": int(documents.sum()), "tokens": total},
    }
    if validation is not None:
        manifest["validation"] = validation
    if eval_sets is not None:
        manifest["decontamination"] = eval_sets
    return manifest
