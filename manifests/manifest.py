"""Pool manifests: what a curation run produced, with checksums, counts and the curation funnel.

`manifest.json` sits at the root of a run's output; shard prefixes are relative to it. It holds
no timestamps or absolute output paths, so two runs of the same recipe on the same inputs
write the same bytes.
"""

import hashlib
from collections import Counter

import orjson

from pipeline.errors import AuroraError
from pipeline.ledger import read_task_records

MANIFEST = "manifest.json"


def file_sha256(f) -> str:
    digest = hashlib.sha256()
    for block in iter(lambda: f.read(1 << 20), b""):
        digest.update(block)
    return digest.hexdigest()


def tokenizer_info(path: str, eod_token: str) -> dict:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(path)
    with open(path, "rb") as f:
        sha = file_sha256(f)
    return {"path": path, "sha256": sha, "vocab_size": tokenizer.get_vocab_size(), "eod_id": tokenizer.token_to_id(eod_token)}


def build_pool_manifest(folder, recipe, inputs: list[tuple[str, str]]) -> dict:
    """Sum the task ledgers into the manifest; every task must have finished."""
    shards, malformed, removed, redacted, buckets = [], Counter(), Counter(), Counter(), Counter()
    documents_in = 0
    for rank in range(len(inputs)):
        records = read_task_records(folder, rank)
        if "tokenize" not in records or "read" not in records:
            raise AuroraError(f"task {rank} ({inputs[rank][1]}) did not finish; see {folder.path}/logs and run again")
        documents_in += records["read"]["read"]
        malformed.update(records["read"]["malformed"])
        for step, record in records.items():
            removed.update(record.get("removed", {}))
            redacted.update(record.get("redacted", {}))
            buckets.update(record.get("perplexity_buckets", {}))
        shards += records["tokenize"]["shards"]
    kept = sum(s["documents"] for s in shards)
    funnel = {
        "documents_in": documents_in,
        "malformed": dict(sorted(malformed.items())),
        "removed": dict(sorted(removed.items())),
        "kept": kept,
    }
    if buckets:  # documents scored per CCNet bucket, kept or not
        funnel["perplexity_buckets"] = {b: buckets[b] for b in ("head", "middle", "tail")}
    if documents_in != kept + sum(malformed.values()) + sum(removed.values()):
        raise AuroraError(f"funnel does not balance: {funnel}")
    manifest = {
        "kind": "pool",
        "name": recipe.name,
        "language": recipe.language,
        "tokenizer": tokenizer_info(recipe.tokenizer, recipe.eod_token),
        "recipe_sha256": recipe.sha256,
        "inputs": [{"source": source, "path": path} for source, path in inputs],
        "shards": shards,
        "totals": {"documents": kept, "tokens": sum(s["tokens"] for s in shards)},
        "funnel": funnel,
    }
    if redacted:
        manifest["redactions"] = dict(sorted(redacted.items()))
    if recipe.dedup:
        manifest["dedup"] = dedup_summary(folder, recipe.dedup)
    return manifest


def dedup_summary(folder, settings: dict) -> dict:
    """The dedup settings and `clusters.parquet`: its checksum, clusters and documents in them."""
    import pyarrow.parquet as pq

    from pipeline.dedup import CLUSTERS_FILE

    with folder.open(CLUSTERS_FILE, "rb") as f:
        sha = file_sha256(f)
    with folder.open(CLUSTERS_FILE, "rb") as f:
        kept = pq.read_table(f, columns=["kept"]).column("kept").to_pylist()
    return {
        "settings": dict(sorted(settings.items())),
        "clusters_file": {"path": CLUSTERS_FILE, "sha256": sha},
        "clusters": sum(kept),
        "documents_in_clusters": len(kept),
    }


def write_manifest(folder, manifest: dict) -> None:
    with folder.open(MANIFEST + ".tmp", "wb") as f:
        f.write(orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n")
    folder.mv(MANIFEST + ".tmp", MANIFEST)


def load_manifest(path: str) -> tuple[dict, object]:
    """Read a manifest (a manifest.json or its folder; local or s3://) -> (manifest, its folder)."""
    from datatrove.io import get_datafolder

    root = path[: -len(MANIFEST)].rstrip("/") if path.endswith(MANIFEST) else path
    folder = get_datafolder(root or ".")
    try:
        with folder.open(MANIFEST, "rb") as f:
            return orjson.loads(f.read()), folder
    except FileNotFoundError:
        raise AuroraError(f"no manifest at {path}") from None
    except orjson.JSONDecodeError as e:
        raise AuroraError(f"{path}: manifest is not valid JSON ({e})") from None


def format_stage(manifest: dict) -> str:
    """A plain-text table of a stage's components: budgets, actual tokens and shares."""
    lines = [f"stage {manifest['name']}: {manifest['totals']['tokens']:,} tokens in {manifest['totals']['documents']:,} "
             f"documents, {len(manifest['shards'])} shards, seed {manifest['seed']}",
             f"{'component':<16} {'language':<8} {'budget':>12} {'tokens':>12} {'documents':>10} {'epochs':>7} {'share':>7}"]
    for c in manifest["components"]:
        lines.append(f"{c['name']:<16} {c['language']:<8} {c['budget_tokens']:>12,} {c['tokens']:>12,} {c['documents']:>10,} "
                     f"{c['epochs']:>7.2f} {c['share']:>7.1%}")
    return "\n".join(lines)


def format_manifest(manifest: dict) -> str:
    """A plain-text table of the shards, totals and funnel."""
    if manifest["kind"] == "stage":
        return format_stage(manifest)
    lines = [f"{manifest['kind']} {manifest['name']} ({manifest['language']}), tokenizer {manifest['tokenizer']['path']}"]
    width = max([len(s["prefix"]) for s in manifest["shards"]] + [5])
    lines.append(f"{'shard':<{width}}  {'source':<10} {'documents':>10} {'tokens':>12}")
    for s in manifest["shards"]:
        lines.append(f"{s['prefix']:<{width}}  {str(s['source']):<10} {s['documents']:>10,} {s['tokens']:>12,}")
    totals = manifest["totals"]
    lines.append(f"{'total':<{width}}  {'':<10} {totals['documents']:>10,} {totals['tokens']:>12,}")
    funnel = manifest["funnel"]
    lines.append("")
    lines.append(f"funnel: {funnel['documents_in']:,} in")
    for group in ("malformed", "removed"):
        for reason, n in funnel[group].items():
            lines.append(f"  - {n:>8,}  {group}: {reason}")
    lines.append(f"  = {funnel['kept']:>8,}  kept")
    if "perplexity_buckets" in funnel:
        lines.append("  perplexity buckets: " + ", ".join(f"{b} {n:,}" for b, n in funnel["perplexity_buckets"].items()))
    for kind, n in manifest.get("redactions", {}).items():
        lines.append(f"  PII redacted: {n:,} {kind}")
    return "\n".join(lines)
